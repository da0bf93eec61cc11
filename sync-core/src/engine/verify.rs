//! Verification: read each pushed group's remote record and compare it with the group's current
//! translation (see [`crate::verify`]).

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Engine;
use crate::entity::sync_group;
use crate::verify::{Drift, GroupDrift, VerifyOptions, VerifyReport, compare};
use crate::{ClaimedGroup, Error, Result, TranslateContext};

impl Engine {
    /// Verifies the groups `options` selects (by default every group of every registered
    /// syncer) against what their remotes hold, `concurrency` reads at a time, each read under
    /// the syncer's [`Limits`](crate::Limits). Writes nothing.
    ///
    /// A group with no remote id is [`Drift::NotPushed`]; one whose remote answers 404 is
    /// [`Drift::Missing`]; a failed read or translation is [`Drift::Unreadable`]. Groups closed
    /// as deleted, and groups whose root is gone (their delete is pending), are not read.
    /// Fails with [`Error::Config`] when `options` names a syncer this engine does not have.
    pub async fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        if let Some(name) = &options.syncer
            && self.registry.get(name).is_none()
        {
            return Err(Error::Config(format!(
                "no syncer named `{name}` is registered (registered: {})",
                self.syncer_names.join(", ")
            )));
        }
        crate::touch_log::apply_touches(&self.db).await?;
        let mut query = sync_group::Entity::find()
            .filter(sync_group::Column::Syncer.is_in(self.syncer_names.iter().cloned()))
            .filter(sync_group::Column::State.ne("deleted"))
            .filter(sync_group::Column::RootDeleted.eq(false))
            .order_by_asc(sync_group::Column::Id);
        if let Some(name) = &options.syncer {
            query = query.filter(sync_group::Column::Syncer.eq(name.as_str()));
        }
        if let Some(id) = options.group {
            query = query.filter(sync_group::Column::Id.eq(id));
        }
        if let Some((of, index)) = options.slice {
            // Numbers of our own, not user text: written into the statement.
            query = query.filter(sea_orm::sea_query::Expr::cust(format!(
                "sync_groups.id % {of} = {index}"
            )));
        }
        if let Some(limit) = options.limit {
            query = query.limit(limit);
        }
        let rows = query
            .all(&self.db)
            .await
            .map_err(Error::db_while("reading the groups to verify"))?;
        let concurrency = self.config.concurrency.max(1);
        let groups: Vec<Option<GroupDrift>> = futures::stream::iter(rows)
            .map(|row| async move { self.verify_group(&row).await })
            .buffered(concurrency)
            .collect()
            .await;
        Ok(VerifyReport {
            groups: groups.into_iter().flatten().collect(),
        })
    }

    /// `None` when the group is not to be read (its root is gone).
    async fn verify_group(&self, row: &sync_group::Model) -> Option<GroupDrift> {
        let group = ClaimedGroup::unclaimed(row);
        let report = |drift| GroupDrift {
            group_id: row.id,
            syncer: row.syncer.clone(),
            root_key: row.root_key.clone(),
            version: row.version,
            remote_id: row.remote_id.clone(),
            drift,
        };
        let syncer = self.registry.get(&row.syncer)?;
        let Some(remote_id) = &group.remote_id else {
            return Some(report(Drift::NotPushed));
        };
        let payload = match syncer
            .translate(&TranslateContext::new(&self.db, &group))
            .await
        {
            Ok(Some(payload)) => payload,
            Ok(None) => return None,
            Err(error) => {
                return Some(report(Drift::Unreadable {
                    error: format!("translating the local record: {error}"),
                }));
            }
        };
        if let Err(error) = self.take_token(syncer.as_ref()).await {
            return Some(report(Drift::Unreadable {
                error: error.to_string(),
            }));
        }
        let drift = match syncer.fetch(remote_id.as_str()).await {
            Ok(None) => Drift::Missing,
            Ok(Some(remote)) => {
                let fields = compare(&payload, &remote, &syncer.comparison());
                if fields.is_empty() {
                    Drift::InStep
                } else {
                    Drift::Different { fields }
                }
            }
            Err(error) => Drift::Unreadable {
                error: error.to_string(),
            },
        };
        Some(report(drift))
    }
}
