//! Verification: read each pushed group's remote record and compare it with the group's current
//! translation, list the remote collections for orphans, and delete orphans when asked (see
//! [`crate::verify`]).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use super::{Engine, millis};
use crate::entity::sync_group;
use crate::panic::panic_message;
use crate::queue::AttemptRecord;
use crate::store::statement;
use crate::verify::{
    Drift, GroupDrift, ListingReport, OrphansDeleted, VerifyOptions, VerifyProgress, VerifyReport,
    compare,
};
use crate::{
    ClaimedGroup, Error, PushContext, RemoteId, Result, RootKey, Syncer, TranslateContext,
};

/// How many remote ids one look-up statement carries.
const IDS_PER_STATEMENT: usize = 500;

impl Engine {
    /// Verifies the groups `options` selects (by default every group of every registered
    /// syncer) against what their remotes hold, `concurrency` reads at a time, each read under
    /// the syncer's [`Limits`](crate::Limits). Writes nothing.
    ///
    /// A group with no remote id is [`Drift::NotPushed`]; one whose remote answers 404 is
    /// [`Drift::Missing`]; a failed read or translation is [`Drift::Unreadable`]. Groups closed
    /// as deleted, and groups whose root is gone (their delete is pending), are not read.
    ///
    /// When `options` covers whole syncers ([`VerifyOptions::lists`]), each syncer that
    /// [can list](Syncer::can_list) its remote collection is then listed, one page after the
    /// other (one request and one token of its limits per page), and every listed record no
    /// group points at is reported as [`Drift::Orphan`] — only once the listing reached its
    /// end; a listing that failed is one [`Drift::Unreadable`] entry of that syncer, and none
    /// of its records is reported. See the [module documentation](crate::verify#orphans).
    ///
    /// Fails with [`Error::Config`] when `options` names a syncer this engine does not have.
    pub async fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        self.verify_with_progress(options, |_| {}).await
    }

    /// [`verify`](Self::verify), telling `progress` how far it got: once the groups are
    /// counted, after every group, and after every page listed.
    pub async fn verify_with_progress(
        &self,
        options: &VerifyOptions,
        progress: impl Fn(VerifyProgress) + Sync,
    ) -> Result<VerifyReport> {
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
        let mut state = VerifyProgress {
            checked: 0,
            total: rows.len() as u64,
            listed: 0,
        };
        progress(state);
        let concurrency = self.config.concurrency.max(1);
        let mut verified = futures::stream::iter(rows)
            .map(|row| async move { self.verify_group(&row).await })
            .buffered(concurrency);
        let mut report = VerifyReport::default();
        while let Some(found) = verified.next().await {
            state.checked += 1;
            progress(state);
            report.groups.extend(found);
        }
        if options.lists() {
            let listed: Vec<Arc<dyn Syncer>> = self
                .syncer_names
                .iter()
                .filter(|name| options.syncer.as_ref().is_none_or(|s| s == *name))
                .filter_map(|name| self.registry.get(name).cloned())
                .filter(|syncer| syncer.can_list())
                .collect();
            for syncer in listed {
                let (listing, found) = self.find_orphans(&syncer, &progress, &mut state).await;
                report.listings.push(listing);
                report.groups.extend(found);
            }
        }
        Ok(report)
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

    /// Lists `syncer`'s remote collection to its end and returns the records no group points
    /// at, as orphan entries, or one unreadable entry when the listing failed.
    ///
    /// Only the records whose id no group held before the listing are kept while it runs; once
    /// it ended, those a group learnt meanwhile (a create recorded during the listing) are
    /// dropped.
    async fn find_orphans(
        &self,
        syncer: &Arc<dyn Syncer>,
        progress: &(impl Fn(VerifyProgress) + Sync),
        state: &mut VerifyProgress,
    ) -> (ListingReport, Vec<GroupDrift>) {
        let name = syncer.name();
        let mut listing = ListingReport {
            syncer: name.to_owned(),
            pages: 0,
            records: 0,
            complete: false,
        };
        let entry = |remote_id: Option<String>, drift| GroupDrift {
            group_id: 0,
            syncer: name.to_owned(),
            root_key: String::new(),
            version: 0,
            remote_id,
            drift,
        };
        let failed = |pages: u64, error: &Error| {
            entry(
                None,
                Drift::Unreadable {
                    error: format!(
                        "listing the remote collection failed at page {}: {error}; no orphan \
                         is reported",
                        pages + 1
                    ),
                },
            )
        };
        let known = match self.known_remote_ids(name, None).await {
            Ok(known) => known,
            Err(error) => return (listing, vec![failed(0, &error)]),
        };
        let mut candidates: Vec<(RemoteId, Value)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut position: Option<Value> = None;
        let mut previous: Vec<String> = Vec::new();
        loop {
            let page = match self.take_token(syncer.as_ref()).await {
                Ok(()) => syncer.list(position.as_ref()).await,
                Err(error) => Err(error),
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let found = failed(listing.pages, &error);
                    return (listing, vec![found]);
                }
            };
            listing.pages += 1;
            let ids: Vec<String> = page
                .records
                .iter()
                .map(|(id, _)| id.as_str().to_owned())
                .collect();
            // A remote that ignores the pagination's parameters answers the same page forever.
            if (!ids.is_empty() && ids == previous)
                || (page.next.is_some() && page.next == position)
            {
                let error = Error::permanent(format!(
                    "page {} repeats the page before; does the remote honour the pagination's \
                     parameters?",
                    listing.pages
                ));
                let found = failed(listing.pages - 1, &error);
                return (listing, vec![found]);
            }
            listing.records += ids.len() as u64;
            state.listed += ids.len() as u64;
            progress(*state);
            for (id, record) in page.records {
                if !known.contains(id.as_str()) && seen.insert(id.as_str().to_owned()) {
                    candidates.push((id, record));
                }
            }
            previous = ids;
            match page.next {
                Some(next) => position = Some(next),
                None => break,
            }
        }
        listing.complete = true;
        let ids: Vec<String> = candidates
            .iter()
            .map(|(id, _)| id.as_str().to_owned())
            .collect();
        let learnt = match self.known_remote_ids(name, Some(&ids)).await {
            Ok(learnt) => learnt,
            Err(error) => {
                listing.complete = false;
                let found = failed(listing.pages, &error);
                return (listing, vec![found]);
            }
        };
        let orphans = candidates
            .into_iter()
            .filter(|(id, _)| !learnt.contains(id.as_str()))
            .map(|(id, record)| entry(Some(id.as_str().to_owned()), Drift::Orphan { record }))
            .collect();
        (listing, orphans)
    }

    /// The remote ids the groups of `syncer` hold (of `only` these, when given).
    async fn known_remote_ids(
        &self,
        syncer: &str,
        only: Option<&[String]>,
    ) -> Result<HashSet<String>> {
        let read = |ids: Option<&[String]>| {
            let mut query = sync_group::Entity::find()
                .select_only()
                .column(sync_group::Column::RemoteId)
                .filter(sync_group::Column::Syncer.eq(syncer))
                .filter(sync_group::Column::RemoteId.is_not_null());
            if let Some(ids) = ids {
                query = query.filter(sync_group::Column::RemoteId.is_in(ids.iter().cloned()));
            }
            query.into_tuple::<Option<String>>().all(&self.db)
        };
        let context = || format!("reading the remote ids of `{syncer}`");
        let mut known = HashSet::new();
        match only {
            None => known.extend(
                read(None)
                    .await
                    .map_err(Error::db_while(context()))?
                    .into_iter()
                    .flatten(),
            ),
            Some(ids) => {
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    known.extend(
                        read(Some(chunk))
                            .await
                            .map_err(Error::db_while(context()))?
                            .into_iter()
                            .flatten(),
                    );
                }
            }
        }
        Ok(known)
    }

    /// Deletes the orphans of `report` ([`Drift::Orphan`]) on their remotes, through each
    /// syncer's [`delete`](Syncer::delete), one at a time, each taking a token of the syncer's
    /// [`Limits`](crate::Limits) rate (and waiting out its pause). Other entries are left
    /// alone: [`ops::repair`](crate::ops::repair) queues the repair of differing and missing
    /// records.
    ///
    /// Before deleting, it looks again: an orphan a group points at by now is kept, and so are
    /// all orphans of a syncer that has creates in flight (a group with no remote id that has
    /// a create recorded or is leased: the record may be its create, whose answer is not
    /// recorded yet). After a 429, the syncer's remaining orphans are not attempted.
    ///
    /// Every attempt is written to the attempt log under group id 0 (no group), operation
    /// `delete`: outcome `repair` with the record it held (the first 1,000 characters), or
    /// `failed` with the error; `ops::attempts(db, 0, n)` lists them.
    pub async fn delete_orphans(&self, report: &VerifyReport) -> Result<OrphansDeleted> {
        let mut done = OrphansDeleted::default();
        let mut syncers: Vec<&str> = report.orphans().map(|g| g.syncer.as_str()).collect();
        syncers.sort_unstable();
        syncers.dedup();
        for name in syncers {
            let orphans: Vec<(&str, &Value)> = report
                .orphans()
                .filter(|g| g.syncer == name)
                .filter_map(|g| match (&g.remote_id, &g.drift) {
                    (Some(id), Drift::Orphan { record }) => Some((id.as_str(), record)),
                    _ => None,
                })
                .collect();
            let Some(syncer) = self.registry.get(name) else {
                done.failed.extend(
                    orphans.iter().map(|(id, _)| {
                        format!("{name} {id}: no syncer of that name is registered")
                    }),
                );
                continue;
            };
            if self.creates_in_flight(name).await? > 0 {
                tracing::warn!(
                    syncer = name,
                    orphans = orphans.len(),
                    "orphans not deleted: creates are in flight, and a listed record may be one \
                     of them; verify again when the workers are idle"
                );
                done.kept += orphans.len() as u64;
                continue;
            }
            let ids: Vec<String> = orphans.iter().map(|(id, _)| (*id).to_owned()).collect();
            let known = self.known_remote_ids(name, Some(&ids)).await?;
            let mut slowed = false;
            for (id, record) in orphans {
                if known.contains(id) {
                    done.kept += 1;
                    continue;
                }
                if slowed {
                    done.failed.push(format!(
                        "{name} {id}: not attempted: the remote answered 429 (slow down)"
                    ));
                    continue;
                }
                let started_at = self.clock.now_ms();
                let started = Instant::now();
                let result = match self.take_token(syncer.as_ref()).await {
                    Ok(()) => self.delete_orphan(syncer, id).await,
                    Err(error) => Err(error),
                };
                let (outcome, status_code, note) = match &result {
                    Ok(()) => {
                        done.deleted += 1;
                        let mut held = record.to_string();
                        if let Some((cut, _)) = held.char_indices().nth(1000) {
                            held.truncate(cut);
                            held.push('…');
                        }
                        (
                            "repair",
                            None,
                            format!(
                                "verify: orphan `{id}` deleted (no group pointed at it); it \
                                 held {held}"
                            ),
                        )
                    }
                    Err(error) => {
                        slowed |= error.status() == Some(429);
                        done.failed.push(format!("{name} {id}: {error}"));
                        (
                            "failed",
                            error.status(),
                            format!("verify: deleting orphan `{id}` failed: {error}"),
                        )
                    }
                };
                crate::queue::log_attempts(
                    &self.db,
                    &[AttemptRecord {
                        group_id: 0,
                        syncer: name.to_owned(),
                        version: 0,
                        operation: "delete",
                        outcome,
                        status_code,
                        error: Some(note),
                        duration_ms: millis(started.elapsed()),
                        worker: "verify".into(),
                        started_at,
                    }],
                )
                .await?;
            }
        }
        Ok(done)
    }

    /// Deletes one orphan through the syncer; a panic in the syncer becomes an error.
    async fn delete_orphan(&self, syncer: &Arc<dyn Syncer>, remote_id: &str) -> Result<()> {
        let group = ClaimedGroup {
            id: 0,
            syncer: syncer.name().to_owned(),
            root_key: RootKey::from(String::new()),
            version: 0,
            remote_id: Some(RemoteId::string(remote_id)),
            pending_create: None,
            last_digest: None,
            root_deleted: true,
            attempts: 0,
            deferrals: 0,
            lease_owner: "verify".into(),
            references_digest: None,
            remote_id_forgotten: false,
        };
        // The same key for every attempt at deleting this record.
        let key = blake3::hash(format!("{}\0{remote_id}", syncer.name()).as_bytes()).to_hex();
        let cx = PushContext::with_key(&group, format!("orphan-{}", &key[..16]), false);
        AssertUnwindSafe(syncer.delete(&cx, remote_id))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(Error::permanent(format!(
                    "the syncer panicked: {}",
                    panic_message(&panic)
                )))
            })
    }

    /// How many groups of `syncer` may be creating a record right now: no remote id yet, and a
    /// create recorded or a lease held.
    async fn creates_in_flight(&self, syncer: &str) -> Result<u64> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n FROM sync_groups WHERE syncer = ? AND state <> 'deleted' \
                 AND remote_id IS NULL AND (create_key IS NOT NULL OR lease_until >= ?)",
                vec![syncer.into(), self.clock.now_ms().into()],
            ))
            .await
            .map_err(Error::db_while(format!(
                "counting the creates of `{syncer}` in flight"
            )))?;
        Ok(row.map_or(Ok(0), |r| r.try_get::<i64>("", "n"))?.max(0) as u64)
    }
}
