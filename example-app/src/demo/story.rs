//! The story the demo tells, one method per step.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sync_core::entity::{sync_attempt, sync_group};

use super::harness::{Demo, Requests};
use super::plural;
use crate::syncers::{CRM_CONTACTS, ERP_CUSTOMERS};

impl Demo {
    /// Runs every step. Fails only when the story cannot go on; expectations that do not hold
    /// are recorded and the story continues.
    pub(super) async fn story(&mut self) -> anyhow::Result<()> {
        let ada = self.create_a_customer().await?;
        let (bob, order) = self.create_an_order_for_a_new_customer().await?;
        self.change_a_field_both_remotes_watch(ada).await?;
        self.change_a_field_one_remote_watches(ada).await?;
        self.change_a_field_no_remote_watches(ada).await?;
        self.add_an_address_in_a_known_city(bob).await?;
        self.change_a_line_item(&order).await?;
        self.rename_fifty_times(ada).await?;
        self.move_an_address(ada, bob).await?;
        self.delete_the_order(&order).await?;
        self.archive_a_customer(ada).await?;
        self.inbound_story(bob.id).await?;
        self.drift_story(bob.id).await?;
        Ok(())
    }

    async fn create_a_customer(&mut self) -> anyhow::Result<Customer> {
        self.step("Create customer Ada, with an address in Paris");
        let paris = json!({ "street": "12 Rue de Rivoli", "city": "Paris", "label": "home" });
        let ada = self
            .post(
                "/customers",
                json!({ "name": "Ada Lovelace", "email": "ada@example.com", "addresses": [paris] }),
            )
            .await?;
        let got = self.settle().await?;
        self.expect(
            "one create in the ERP",
            got.erp.are(&[("POST", "/customers")]),
        );
        self.expect(
            "one create in the CRM",
            got.crm.are(&[("POST", "/contacts")]),
        );
        Customer::from_answer(&ada)
    }

    async fn create_an_order_for_a_new_customer(&mut self) -> anyhow::Result<(Customer, Order)> {
        self.step("Create customer Bob and, right after, an order for him");
        self.note("(the mock ERP holds Bob's create until the order has had to wait for it)");
        let mut hold = self.erp.hold(Some("/customers"));
        let bob = self
            .post(
                "/customers",
                json!({
                    "name": "Bob Stone",
                    "email": "bob@example.com",
                    "addresses": [{ "street": "3 High Street", "city": "London", "label": "home" }],
                }),
            )
            .await?;
        let bob = Customer::from_answer(&bob)?;
        let order = self
            .post(
                "/orders",
                json!({
                    "customer_id": bob.id,
                    "reference": "SO-1001",
                    "line_items": [
                        { "sku": "TEA-01", "quantity": 2, "unit_price_cents": 450 },
                        { "sku": "CUP-02", "quantity": 1, "unit_price_cents": 1200 },
                    ],
                    "billing": {
                        "company": "Stone Ltd",
                        "vat_id": "GB123456789",
                        "address": "3 High Street, London",
                    },
                }),
            )
            .await?;
        let order = Order::from_answer(&order)?;
        tokio::time::timeout(Duration::from_secs(10), hold.arrived(1))
            .await
            .context("the worker never sent Bob's create to the ERP")?;
        let waiting = self
            .wait_until_deferred("erp.sales_order", order.id)
            .await?;
        self.note(&format!(
            "… the sales order waits: {}",
            waiting
                .last_error
                .as_deref()
                .unwrap_or("(no reason recorded)")
        ));
        self.note("… now the ERP answers Bob's create");
        hold.release();
        let got = self.settle().await?;

        let outcomes = self.outcomes("erp.sales_order", order.id).await?;
        self.expect(
            "the order waited for Bob's ERP id: deferred, never failed",
            outcomes.iter().any(|o| o == "waiting") && !outcomes.iter().any(|o| o == "failed"),
        );
        let bob_erp_id = self.remote_id("erp.customer", bob.id).await?;
        let customer_creates = got.erp.matching("POST", "/customers");
        let order_creates = got.erp.matching("POST", "/sales_orders");
        self.expect(
            "then exactly one create of the sales order, after Bob's",
            matches!((customer_creates.as_slice(), order_creates.as_slice()),
                ([customer], [order]) if customer.finished <= order.started),
        );
        self.expect(
            &format!(
                "carrying Bob's ERP id ({}), typed as the ERP answered it",
                bob_erp_id.to_json()
            ),
            order_creates
                .first()
                .and_then(|r| r.body.as_ref())
                .is_some_and(|body| body["customer_id"] == bob_erp_id.to_json()),
        );
        self.expect(
            "one create in the CRM",
            got.crm.are(&[("POST", "/contacts")]),
        );
        Ok((bob, order))
    }

    async fn change_a_field_both_remotes_watch(&mut self, ada: Customer) -> anyhow::Result<()> {
        self.step("Change Ada's email, which both remotes show");
        self.patch(
            &format!("/customers/{}", ada.id),
            json!({ "email": "ada@lovelace.org" }),
        )
        .await?;
        let got = self.settle().await?;
        let (erp, crm) = self.remote_paths(ada).await?;
        self.expect("one update in the ERP", got.erp.are(&[("PUT", &erp)]));
        self.expect("one update in the CRM", got.crm.are(&[("PUT", &crm)]));
        Ok(())
    }

    async fn change_a_field_one_remote_watches(&mut self, ada: Customer) -> anyhow::Result<()> {
        self.step("Change Ada's phone number, which only the ERP shows");
        self.patch(
            &format!("/customers/{}", ada.id),
            json!({ "phone": "+44 20 7946 0000" }),
        )
        .await?;
        let got = self.settle().await?;
        let (erp, _) = self.remote_paths(ada).await?;
        self.expect("one update in the ERP", got.erp.are(&[("PUT", &erp)]));
        self.expect("nothing sent to the CRM", got.crm.is_empty());
        Ok(())
    }

    async fn change_a_field_no_remote_watches(&mut self, ada: Customer) -> anyhow::Result<()> {
        self.step("Change Ada's internal note, which no remote shows");
        let before = self.versions().await?;
        self.patch(
            &format!("/customers/{}", ada.id),
            json!({ "internal_note": "Prefers email to phone calls" }),
        )
        .await?;
        let after = self.versions().await?;
        let got = self.settle().await?;
        self.expect("no group marked dirty", before == after);
        self.expect(
            "nothing sent to either remote",
            got.erp.is_empty() && got.crm.is_empty(),
        );
        Ok(())
    }

    async fn add_an_address_in_a_known_city(&mut self, bob: Customer) -> anyhow::Result<()> {
        self.step("Give Bob a work address, also in London");
        let skipped_before = self.skips("crm.contact", bob.id).await?;
        self.post(
            &format!("/customers/{}/addresses", bob.id),
            json!({ "street": "1 Canada Square", "city": "London", "label": "work" }),
        )
        .await?;
        let got = self.settle().await?;
        let skipped = self.skips("crm.contact", bob.id).await? - skipped_before;
        let (erp, _) = self.remote_paths(bob).await?;
        self.expect(
            "one update in the ERP, which lists every address",
            got.erp.are(&[("PUT", &erp)]),
        );
        self.expect(
            "nothing sent to the CRM: its contact lists cities, unchanged (skipped by digest)",
            got.crm.is_empty() && skipped == 1,
        );
        Ok(())
    }

    async fn change_a_line_item(&mut self, order: &Order) -> anyhow::Result<()> {
        self.step("Change a line item of order SO-1001: 3 boxes of tea instead of 2");
        self.patch(
            &format!("/line_items/{}", order.first_item_id),
            json!({ "quantity": 3 }),
        )
        .await?;
        let got = self.settle().await?;
        let sales_order = self.remote_id("erp.sales_order", order.id).await?;
        let path = format!("/sales_orders/{sales_order}");
        self.expect(
            "the sales order is pushed again, once",
            got.erp.are(&[("PUT", &path)]) && got.crm.is_empty(),
        );
        let pushed = got.erp.matching("PUT", &path);
        self.expect(
            "with the new total: 3 × 4.50 + 1 × 12.00 = 25.50",
            pushed
                .first()
                .and_then(|r| r.body.as_ref())
                .is_some_and(|body| body["total_cents"] == 2550),
        );
        Ok(())
    }

    async fn rename_fifty_times(&mut self, ada: Customer) -> anyhow::Result<()> {
        self.step("Rename Ada 50 times in a row, while the remotes are slow to answer");
        self.note("(the mock remotes hold the first push until all 50 edits are in)");
        let mut erp_hold = self.erp.hold(Some("/customers"));
        let mut crm_hold = self.crm.hold(Some("/contacts"));
        let path = format!("/customers/{}", ada.id);
        let rename = |i: usize| json!({ "name": format!("Ada Lovelace {i}") });
        let started = Instant::now();
        self.patch_quietly(&path, rename(1)).await?;
        tokio::time::timeout(Duration::from_secs(10), async {
            erp_hold.arrived(1).await;
            crm_hold.arrived(1).await;
        })
        .await
        .context("the worker never pushed the first rename")?;
        for i in 2..=50 {
            self.patch_quietly(&path, rename(i)).await?;
        }
        self.note(&format!(
            "app ← PATCH {path} ×50, \"Ada Lovelace 1\" … \"Ada Lovelace 50\", in {:.2} s",
            started.elapsed().as_secs_f64()
        ));
        erp_hold.release();
        crm_hold.release();
        let got = self.settle().await?;
        self.note(&format!(
            "50 edits → {} to the ERP, {} to the CRM: the one held, then one with the last name",
            plural(got.erp.len(), "push", "pushes"),
            plural(got.crm.len(), "push", "pushes"),
        ));
        self.expect(
            "coalesced: at most 5 pushes per remote, never two at once",
            (1..=5).contains(&got.erp.len())
                && (1..=5).contains(&got.crm.len())
                && !overlapping(&got.erp)
                && !overlapping(&got.crm),
        );
        let erp_id = self.remote_id("erp.customer", ada.id).await?;
        let crm_id = self.remote_id("crm.contact", ada.id).await?;
        let erp_name = self
            .erp
            .record(ERP_CUSTOMERS, erp_id.as_str())
            .map(|r| r["name"].clone());
        let crm_name = self
            .crm
            .record(CRM_CONTACTS, crm_id.as_str())
            .map(|r| r["last_name"].clone());
        self.expect(
            "the ERP holds the last name",
            erp_name == Some(json!("Ada Lovelace 50")),
        );
        self.expect(
            "the CRM holds the last name",
            crm_name == Some(json!("Lovelace 50")),
        );
        Ok(())
    }

    async fn move_an_address(&mut self, ada: Customer, bob: Customer) -> anyhow::Result<()> {
        self.step("Move Ada's Paris address to Bob");
        self.patch(
            &format!("/addresses/{}", ada.first_address_id),
            json!({ "customer_id": bob.id }),
        )
        .await?;
        let got = self.settle().await?;
        let (ada_erp, ada_crm) = self.remote_paths(ada).await?;
        let (bob_erp, bob_crm) = self.remote_paths(bob).await?;
        self.expect(
            "both customers pushed again to the ERP",
            got.erp.are(&[("PUT", &ada_erp), ("PUT", &bob_erp)]),
        );
        self.expect(
            "both contacts pushed again to the CRM",
            got.crm.are(&[("PUT", &ada_crm), ("PUT", &bob_crm)]),
        );
        Ok(())
    }

    async fn delete_the_order(&mut self, order: &Order) -> anyhow::Result<()> {
        self.step("Delete order SO-1001, with its line items and billing info");
        let sales_order = self.remote_id("erp.sales_order", order.id).await?;
        self.delete(&format!("/orders/{}", order.id)).await?;
        let got = self.settle().await?;
        self.expect(
            "exactly one delete in the ERP",
            got.erp
                .are(&[("DELETE", &format!("/sales_orders/{sales_order}"))]),
        );
        self.expect("nothing sent to the CRM", got.crm.is_empty());
        Ok(())
    }

    async fn archive_a_customer(&mut self, ada: Customer) -> anyhow::Result<()> {
        self.step("Archive Ada: a soft delete, the row stays with `deleted_at` set");
        let (erp, crm) = self.remote_paths(ada).await?;
        self.delete(&format!("/customers/{}", ada.id)).await?;
        let got = self.settle().await?;
        self.expect("one delete in the ERP", got.erp.are(&[("DELETE", &erp)]));
        self.expect("one delete in the CRM", got.crm.are(&[("DELETE", &crm)]));
        Ok(())
    }

    /// The paths of a customer's records in the ERP and the CRM.
    async fn remote_paths(&self, customer: Customer) -> anyhow::Result<(String, String)> {
        let erp = self.remote_id("erp.customer", customer.id).await?;
        let crm = self.remote_id("crm.contact", customer.id).await?;
        Ok((
            format!("/{ERP_CUSTOMERS}/{erp}"),
            format!("/{CRM_CONTACTS}/{crm}"),
        ))
    }

    /// Waits until the group of `syncer` for `key` has been deferred ("not ready") at least once.
    async fn wait_until_deferred(
        &self,
        syncer: &str,
        key: i64,
    ) -> anyhow::Result<sync_group::Model> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let group = self.group(syncer, key).await?;
            if group.deferrals > 0 {
                return Ok(group);
            }
            if Instant::now() > deadline {
                bail!("`{syncer}` group `{key}` was never deferred");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The outcomes of every attempt at the group of `syncer` for `key`, oldest first.
    async fn outcomes(&self, syncer: &str, key: i64) -> anyhow::Result<Vec<String>> {
        let group = self.group(syncer, key).await?;
        Ok(sync_attempt::Entity::find()
            .filter(sync_attempt::Column::GroupId.eq(group.id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| a.outcome)
            .collect())
    }

    /// How many pushes of the group of `syncer` for `key` were skipped by digest.
    async fn skips(&self, syncer: &str, key: i64) -> anyhow::Result<usize> {
        let outcomes = self.outcomes(syncer, key).await?;
        Ok(outcomes.iter().filter(|o| *o == "skipped").count())
    }
}

/// A customer the story created.
#[derive(Debug, Clone, Copy)]
struct Customer {
    id: i64,
    first_address_id: i64,
}

impl Customer {
    fn from_answer(answer: &Value) -> anyhow::Result<Self> {
        Ok(Customer {
            id: number(answer, "/id")?,
            first_address_id: number(answer, "/addresses/0/id")?,
        })
    }
}

/// An order the story created.
#[derive(Debug)]
struct Order {
    id: i64,
    first_item_id: i64,
}

impl Order {
    fn from_answer(answer: &Value) -> anyhow::Result<Self> {
        Ok(Order {
            id: number(answer, "/id")?,
            first_item_id: number(answer, "/line_items/0/id")?,
        })
    }
}

/// Whether two of `requests` were in flight at the same time.
fn overlapping(requests: &Requests) -> bool {
    requests
        .0
        .windows(2)
        .any(|pair| pair[1].started < pair[0].finished)
}

fn number(answer: &Value, pointer: &str) -> anyhow::Result<i64> {
    answer
        .pointer(pointer)
        .and_then(Value::as_i64)
        .with_context(|| format!("the app's answer has no number at `{pointer}`: {answer}"))
}
