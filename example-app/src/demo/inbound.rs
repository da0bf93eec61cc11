//! The inbound part of the story: the ERP's products land in the app, a bad one is quarantined
//! and revived, a full run finds a deleted one, and a contact edited in the CRM reaches the ERP
//! through the app without coming back to the CRM.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{SecondsFormat, Utc};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use sync_core::source::{SourceStatus, request_full_run, request_run, source_status};

use super::harness::Demo;
use crate::entities::{customer, product};
use crate::sources::CRM_CONTACT_EDITS;

const PRODUCTS: &str = "products";

impl Demo {
    /// The inbound steps; `bob` is a live customer with a CRM contact.
    pub(super) async fn inbound_story(&mut self, bob: i64) -> anyhow::Result<()> {
        self.the_erp_publishes_products().await?;
        self.the_erp_fixes_the_bad_product().await?;
        self.the_erp_deletes_a_product().await?;
        self.a_sales_person_renames_a_contact_in_the_crm(bob)
            .await?;
        Ok(())
    }

    async fn the_erp_publishes_products(&mut self) -> anyhow::Result<()> {
        self.step("The ERP publishes three products; one has a negative price");
        self.erp.put_record(
            PRODUCTS,
            "1",
            erp_product(1, "TEA-01", "Green tea", 450, 120),
        );
        self.erp
            .put_record(PRODUCTS, "2", erp_product(2, "CUP-02", "Tea cup", 1200, 40));
        self.erp.put_record(
            PRODUCTS,
            "3",
            erp_product(3, "KETTLE-03", "Kettle", -3900, 5),
        );
        let run = self.run_source("erp.products", false).await?;
        let local = self.products().await?;
        self.expect(
            "the two good ones are in the app's products",
            local == [(1, "Green tea".into(), 450), (2, "Tea cup".into(), 1200)],
        );
        let quarantined =
            sync_core::source::quarantined(&self.db, Some("erp.products"), 10).await?;
        if let Some(q) = quarantined.first() {
            self.note(&format!(
                "… quarantined: product {}: {}",
                q.remote_id,
                q.error.as_deref().unwrap_or_default()
            ));
        }
        self.expect(
            "the bad one is quarantined with the app's validation error, not blocking the others",
            run.quarantined == 1
                && quarantined.len() == 1
                && quarantined[0]
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("cannot be negative")),
        );
        Ok(())
    }

    async fn the_erp_fixes_the_bad_product(&mut self) -> anyhow::Result<()> {
        self.step("The ERP corrects the kettle's price");
        self.erp.put_record(
            PRODUCTS,
            "3",
            erp_product(3, "KETTLE-03", "Kettle", 3900, 5),
        );
        let run = self.run_source("erp.products", false).await?;
        let local = self.products().await?;
        self.expect(
            "the new version revives it: three products, nothing quarantined",
            local.len() == 3 && local[2] == (3, "Kettle".into(), 3900) && run.quarantined == 0,
        );
        self.expect(
            "the two unchanged products were read again (the overlap window) and skipped",
            run.last_counts[2] >= 2 && run.last_counts[1] == 1,
        );
        Ok(())
    }

    async fn the_erp_deletes_a_product(&mut self) -> anyhow::Result<()> {
        self.step("The ERP deletes the tea cup (its listing has no tombstones)");
        self.erp.remove_record(PRODUCTS, "2");
        self.run_source("erp.products", false).await?;
        self.expect(
            "a normal run cannot see a record that vanished: still three products",
            self.products().await?.len() == 3,
        );
        self.note("… an operator asks for a full run (`worker sources --full erp.products`)");
        let run = self.run_source("erp.products", true).await?;
        let ids: Vec<i64> = self.products().await?.iter().map(|p| p.0).collect();
        self.expect(
            "the complete listing lacks it: the full run deletes it here",
            ids == [1, 3] && run.last_counts[4] == 1,
        );
        Ok(())
    }

    async fn a_sales_person_renames_a_contact_in_the_crm(
        &mut self,
        bob: i64,
    ) -> anyhow::Result<()> {
        self.step("A sales person changes Bob's last name in the CRM");
        let contact = self.remote_id("crm.contact", bob).await?;
        let mut record = self
            .crm
            .record("contacts", contact.as_str())
            .context("Bob's CRM contact")?;
        record["last_name"] = json!("Stone-Smith");
        self.crm.put_record("contacts", contact.as_str(), record);
        self.run_source(CRM_CONTACT_EDITS, false).await?;
        let name = customer::Entity::find_by_id(i32::try_from(bob)?)
            .one(&self.db)
            .await?
            .map(|c| c.name);
        self.expect(
            "the app's customer is renamed, through its model",
            name.as_deref() == Some("Bob Stone-Smith"),
        );
        let got = self.settle().await?;
        let (erp, _) = (
            format!("/customers/{}", self.remote_id("erp.customer", bob).await?),
            (),
        );
        self.expect("the ERP gets the new name", got.erp.are(&[("PUT", &erp)]));
        self.expect(
            "the CRM gets nothing back: the change came from it",
            got.crm.is_empty(),
        );
        Ok(())
    }

    /// Asks for a run (or a full run) of `source`, waits until the worker has done it, and
    /// prints what the run did.
    async fn run_source(&mut self, source: &str, full: bool) -> anyhow::Result<SourceStatus> {
        let before = self.source(source).await?;
        if full {
            request_full_run(&self.db, source).await?;
        } else {
            request_run(&self.db, source).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.source(source).await?;
            if now.last_run_at != before.last_run_at && now.running_on.is_none() && !now.full_run {
                let [fetched, applied, skipped, quarantined, deleted] = now.last_counts;
                self.note(&format!(
                    "… `{source}` ran{}: fetched {fetched}, applied {applied}, skipped {skipped}, \
                     quarantined {quarantined}, deleted {deleted}",
                    if full { " in full" } else { "" }
                ));
                if let Some(error) = &now.last_error {
                    bail!("source `{source}` failed: {error}");
                }
                return Ok(now);
            }
            if Instant::now() > deadline {
                bail!("the worker did not run source `{source}` within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn source(&self, source: &str) -> anyhow::Result<SourceStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = source_status(&self.db)
                .await?
                .into_iter()
                .find(|s| s.source == source && s.last_run_at.is_some())
            {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!("the worker never ran source `{source}`");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn products(&self) -> anyhow::Result<Vec<(i64, String, i64)>> {
        Ok(product::Entity::find()
            .order_by_asc(product::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name, p.price_cents))
            .collect())
    }
}

fn erp_product(id: i64, sku: &str, name: &str, price_cents: i64, stock: i64) -> Value {
    json!({
        "id": id,
        "sku": sku,
        "name": name,
        "price_cents": price_cents,
        "stock": stock,
        "updated_at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}
