//! The drift part of the story: someone edits a record in the ERP and deletes one in the CRM
//! behind the framework's back; `verify` reports both, `verify --repair` puts them back through
//! the queue, and a second `verify` is clean.

use anyhow::Context;
use serde_json::json;
use sync_core::verify::{Drift, VerifyOptions, VerifyReport};
use sync_core::{Engine, EngineConfig};

use super::harness::Demo;
use crate::syncers::{CRM_CONTACTS, ERP_CUSTOMERS};

impl Demo {
    /// The drift steps; `bob` is a live customer with an ERP record and a CRM contact.
    pub(super) async fn drift_story(&mut self, bob: i64) -> anyhow::Result<()> {
        self.step(
            "Behind the framework's back: Bob's ERP email is edited, his CRM contact deleted",
        );
        let erp_id = self.remote_id("erp.customer", bob).await?;
        let crm_id = self.remote_id("crm.contact", bob).await?;
        let mut record = self
            .erp
            .record(ERP_CUSTOMERS, erp_id.as_str())
            .context("Bob's ERP record")?;
        record["email"] = json!("bob@typo.example");
        self.erp.put_record(ERP_CUSTOMERS, erp_id.as_str(), record);
        self.crm.remove_record(CRM_CONTACTS, crm_id.as_str());
        self.note("… an operator runs `worker verify`: one GET per pushed record");
        let report = self.verify().await?;
        let drift_of = |syncer: &str| {
            report
                .groups
                .iter()
                .find(|g| g.syncer == syncer && g.root_key == bob.to_string())
                .map(|g| g.drift.clone())
        };
        let erp_diff = match drift_of("erp.customer") {
            Some(Drift::Different { fields }) => fields
                .iter()
                .map(|f| {
                    format!(
                        "{}: here {}, there {}",
                        f.path,
                        f.local,
                        f.remote.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        for line in &erp_diff {
            self.note(&format!("  erp.customer {bob}  {line}"));
        }
        self.expect(
            "the ERP record is reported different, on the email only",
            erp_diff.len() == 1 && erp_diff[0].starts_with("/email"),
        );
        self.expect(
            "the CRM contact is reported missing",
            drift_of("crm.contact") == Some(Drift::Missing),
        );
        self.expect(
            "nothing else drifted, and every record could be read",
            report.count("different") == 1
                && report.count("missing") == 1
                && report.count("unreadable") == 0,
        );

        self.step("`worker verify --repair`: the fixes go through the queue");
        let repaired = sync_core::ops::repair(&self.db, &report, sync_core::now_ms()).await?;
        self.expect(
            "one record to push again, one to create again",
            (repaired.pushed_again, repaired.created_again) == (1, 1),
        );
        let got = self.settle().await?;
        let erp_path = format!("/{ERP_CUSTOMERS}/{erp_id}");
        let crm_path = format!("/{CRM_CONTACTS}");
        self.expect(
            "the ERP gets Bob's record again",
            got.erp.are(&[("PUT", &erp_path)]),
        );
        self.expect(
            "the CRM gets Bob's contact created again",
            got.crm.are(&[("POST", &crm_path)]),
        );
        let new_crm_id = self.remote_id("crm.contact", bob).await?;
        self.expect(
            "under a new remote id",
            new_crm_id.as_str() != crm_id.as_str(),
        );
        let again = self.verify().await?;
        self.expect("a second `verify` is clean", again.is_clean());
        Ok(())
    }

    async fn verify(&self) -> anyhow::Result<VerifyReport> {
        let engine = Engine::new(
            self.db.clone(),
            self.registry.clone(),
            EngineConfig::default(),
        )?;
        let report = engine.verify(&VerifyOptions::all()).await?;
        self.note(&format!(
            "  verify: {} in step, {} different, {} missing, {} unreadable",
            report.count("in_step"),
            report.count("different"),
            report.count("missing"),
            report.count("unreadable"),
        ));
        Ok(report)
    }
}
