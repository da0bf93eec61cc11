//! The final check: every remote record equals the translation of the local data, and the
//! remotes hold nothing else.

use std::collections::BTreeSet;

use anyhow::Context;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::Value;
use sync_core::entity::sync_group;
use sync_core::{ClaimedGroup, TranslateContext};
use sync_worker::testing::MockRemote;

use super::harness::{Demo, cut};
use crate::syncers::{CRM_CONTACTS, ERP_CUSTOMERS, ERP_SALES_ORDERS};

impl Demo {
    /// For every group, translates the local data as the worker would and compares it with the
    /// record the remote holds (without the `id` the remote added). A root that is gone must be
    /// absent remotely, and no remote record may be left over.
    pub(super) async fn check_remotes(&mut self) -> anyhow::Result<()> {
        self.step("Check: each remote record equals the translation of the local data");
        let groups = sync_group::Entity::find()
            .order_by_asc(sync_group::Column::Syncer)
            .order_by_asc(sync_group::Column::Id)
            .all(&self.db)
            .await?;
        let mut accounted = BTreeSet::new();
        let mut mismatches = Vec::new();
        for group in &groups {
            let (remote_name, remote, collection) = self.remote_of(&group.syncer)?;
            let syncer = self
                .registry
                .get(&group.syncer)
                .with_context(|| format!("no syncer `{}` is registered", group.syncer))?;
            let claimed = ClaimedGroup::unclaimed(group);
            let local = syncer
                .translate(&TranslateContext::new(&self.db, &claimed))
                .await
                .with_context(|| {
                    format!("translating `{}` group `{}`", group.syncer, group.root_key)
                })?;
            let remote_record = group.remote_id.as_deref().and_then(|id| {
                accounted.insert((remote_name, collection, id.to_owned()));
                remote.record(collection, id).map(without_id)
            });
            let what = format!("{} {}", group.syncer, group.root_key);
            let verdict = match (&local, &remote_record) {
                _ if group.is_dirty() => Err(format!(
                    "still dirty (version {} > synced {})",
                    group.version, group.synced_version
                )),
                (Some(local), Some(held)) if local == held => Ok(format!(
                    "equals {remote_name} {collection}/{}",
                    group.remote_id.as_deref().unwrap_or_default()
                )),
                (None, None) => Ok(format!(
                    "deleted or archived here, absent from the {remote_name}"
                )),
                (Some(local), None) => Err(format!(
                    "the {remote_name} lacks {}",
                    cut(&local.to_string(), 60)
                )),
                (None, Some(_)) => Err(format!(
                    "deleted or archived here, still in the {remote_name}"
                )),
                (Some(local), Some(held)) => Err(format!(
                    "the {remote_name} holds {} instead of {}",
                    cut(&held.to_string(), 40),
                    cut(&local.to_string(), 40)
                )),
            };
            match verdict {
                Ok(detail) => println!("   ✓ {what:<18} {detail}"),
                Err(problem) => {
                    println!("   ✗ {what:<18} {problem}");
                    mismatches.push(format!("{what}: {problem}"));
                }
            }
        }
        for (remote_name, remote, collection) in self.collections() {
            for id in remote.records(collection).into_keys() {
                if !accounted.contains(&(remote_name, collection, id.clone())) {
                    let problem =
                        format!("{remote_name} {collection}/{id} belongs to no local data");
                    println!("   ✗ {problem}");
                    mismatches.push(problem);
                }
            }
        }
        self.expect(
            &format!(
                "{} groups checked: the remotes hold exactly the local data",
                groups.len()
            ),
            mismatches.is_empty(),
        );
        for mismatch in mismatches {
            self.record_mismatch(mismatch);
        }
        Ok(())
    }

    /// Where the records of `syncer` live.
    fn remote_of(&self, syncer: &str) -> anyhow::Result<(&'static str, &MockRemote, &'static str)> {
        Ok(match syncer {
            "erp.customer" => ("ERP", &self.erp, ERP_CUSTOMERS),
            "erp.sales_order" => ("ERP", &self.erp, ERP_SALES_ORDERS),
            "crm.contact" => ("CRM", &self.crm, CRM_CONTACTS),
            other => anyhow::bail!("the demo does not know where syncer `{other}` pushes"),
        })
    }
}

/// A remote record without the `id` the remote added.
fn without_id(mut record: Value) -> Value {
    if let Value::Object(fields) = &mut record {
        fields.remove("id");
    }
    record
}
