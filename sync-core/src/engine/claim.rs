//! Claiming: apply the touch log, take due groups with a lease (respecting pauses and caps on
//! pushes in flight), translate them in one batch per syncer, and record their creates before
//! any is sent — the claim and the recorded creates commit together.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::Value;

use super::report::{PreparedGroup, RecordedCreate};
use super::{Engine, millis, payload_text};
use crate::queue::{self, ClaimRequest};
use crate::references::{Lookups, Reference};
use crate::{ClaimedGroup, Error, Result, digest};

/// How long a batch claimed on PostgreSQL may hold its groups locked while it is translated.
const LOCKED_TRANSLATION: std::time::Duration = std::time::Duration::from_secs(2);

impl Engine {
    /// Applies the logged touches ([`crate::apply_touches`]), then claims up to `limit` due
    /// groups of the registered syncers.
    pub(crate) async fn claim(&self, limit: u32) -> Result<Vec<ClaimedGroup>> {
        let _turn = self.write_turn().await;
        crate::touch_log::apply_touches(&self.db).await?;
        self.claim_on(&self.db, limit).await
    }

    /// Claims, through `db`, up to `limit` due groups of the registered syncers that are not
    /// paused; syncers with a cap on pushes in flight get what is left of their cap.
    async fn claim_on<C>(&self, db: &C, limit: u32) -> Result<Vec<ClaimedGroup>>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let now = self.clock.now_ms();
        let lease_until = now + millis(self.config.lease);
        let (capped, free) = self.claimable(db, now).await?;
        let owner = &self.config.worker_id;
        let request = ClaimRequest {
            owner,
            syncers: &free,
            limit,
            now,
            lease_until,
        };
        let mut claimed = queue::claim(db, &request).await?;
        // Syncers with a cap on pushes in flight: claim what is left of the cap, counted across
        // all workers under a lock on the syncer's row.
        for name in capped {
            let room = limit.saturating_sub(claimed.len() as u32);
            if room == 0 {
                break;
            }
            let max = self.max_in_flight(name).unwrap_or(u32::MAX);
            let syncers = [name.clone()];
            let more = crate::limits::claim_within(db, name, max, now, async |txn, free| {
                let request = ClaimRequest {
                    owner,
                    syncers: &syncers,
                    limit: free.min(room),
                    now,
                    lease_until,
                };
                queue::claim(txn, &request).await
            })
            .await?;
            claimed.extend(more);
        }
        Ok(claimed)
    }

    /// The syncers not paused at `now` (learning the pauses from the database), split into
    /// those with a cap on pushes in flight and the others.
    async fn claimable<C: ConnectionTrait>(
        &self,
        db: &C,
        now: i64,
    ) -> Result<(Vec<&String>, Vec<String>)> {
        let paused: Vec<String> = {
            let found = crate::limits::paused(db, now).await?;
            let mut known = self.paused.lock().expect("pause table");
            known.retain(|_, until| *until > now);
            known.extend(found.iter().cloned());
            found.into_iter().map(|(name, _)| name).collect()
        };
        let (capped, free): (Vec<&String>, Vec<&String>) = self
            .syncer_names
            .iter()
            .filter(|name| !paused.contains(name))
            .partition(|name| self.max_in_flight(name).is_some());
        Ok((capped, free.into_iter().cloned().collect()))
    }

    fn max_in_flight(&self, syncer: &str) -> Option<u32> {
        self.registry.get(syncer)?.limits()?.max_in_flight
    }

    /// Claims up to `limit` due groups, translates them in one batch per syncer
    /// ([`Syncer::translate_many`](crate::Syncer::translate_many)), and records the creates
    /// among them before any is sent. Push each with [`Engine::process_prepared`].
    ///
    /// On PostgreSQL see [`Engine::claim_prepared_locked`]. Elsewhere (and on PostgreSQL when a
    /// syncer caps its pushes in flight, or the pool has fewer than four connections) the claim
    /// commits before the translation, which reads through the pool: no transaction (and on
    /// SQLite, no write lock) is held while the translation waits for a connection.
    pub(crate) async fn claim_prepared(&self, limit: u32) -> Result<Vec<PreparedGroup>> {
        if self.locked_claims
            && !self
                .syncer_names
                .iter()
                .any(|name| self.max_in_flight(name).is_some())
        {
            return self.claim_prepared_locked(limit).await;
        }
        let claimed_at = Instant::now();
        let groups = self.claim(limit).await?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let (mut translations, references) = self
            .translate_batch(&groups, self.config.push_timeout)
            .await;
        let creates = self
            .record_creates(&self.db, &groups, &mut translations)
            .await;
        Ok(prepared(
            groups,
            translations,
            creates,
            references,
            claimed_at,
        ))
    }

    /// [`Engine::claim_prepared`] on PostgreSQL when no syncer caps its pushes in flight: the
    /// due groups are locked (`FOR UPDATE SKIP LOCKED`) in a transaction, translated, then
    /// leased with their creates recorded in one statement, and the transaction commits. Each
    /// group gets one new row version where a lease and then the recorded creates would write
    /// two (the second write was a fifth of the database's work per group pushed).
    ///
    /// The locks are held while the batch is translated (reads through the pool, which never
    /// wait for them), at most [`LOCKED_TRANSLATION`]: a batch that takes longer is translated
    /// one group at a time after the commit, as when `translate_many` fails. Other workers skip
    /// the locked groups; a worker applying touches to one of them waits for the commit. A
    /// worker killed meanwhile leaves nothing: its transaction is rolled back.
    async fn claim_prepared_locked(&self, limit: u32) -> Result<Vec<PreparedGroup>> {
        crate::touch_log::apply_touches(&self.db).await?;
        let now = self.clock.now_ms();
        let (_, free) = self.claimable(&self.db, now).await?;
        let owner = &self.config.worker_id;
        let context = || Error::db_while(format!("claiming groups for worker `{owner}`"));
        let txn = self.db.begin().await.map_err(context())?;
        let request = ClaimRequest {
            owner,
            syncers: &free,
            limit,
            now,
            lease_until: now + millis(self.config.lease),
        };
        let groups = queue::lock_due(&txn, &request).await?;
        if groups.is_empty() {
            txn.commit().await.map_err(context())?;
            return Ok(Vec::new());
        }
        let (translations, references) = self
            .translate_batch(&groups, LOCKED_TRANSLATION.min(self.config.push_timeout))
            .await;
        let creates: Vec<Option<RecordedCreate>> = groups
            .iter()
            .zip(&translations)
            .map(|(group, translated)| self.create_to_record(group, translated.as_ref()))
            .collect();
        let leases: Vec<(i64, Option<(&str, &str)>)> = groups
            .iter()
            .zip(&creates)
            .map(|(g, c)| {
                (
                    g.id,
                    c.as_ref().map(|c| (c.key.as_str(), c.payload.as_str())),
                )
            })
            .collect();
        // The lease, and the time the worker runtime measures its age from, start here.
        let claimed_at = Instant::now();
        let lease_until = self.clock.now_ms() + millis(self.config.lease);
        queue::lease_locked(&txn, owner, lease_until, &leases).await?;
        txn.commit().await.map_err(context())?;
        Ok(prepared(
            groups,
            translations,
            creates,
            references,
            claimed_at,
        ))
    }

    /// [`Engine::claim_prepared`], and the sleeping of a worker when nothing is due
    /// (see [`crate::sleepers`]): with nothing due, mark this worker asleep for `ttl` and look
    /// once more; with work found while asleep, mark it awake. Returns the groups and whether
    /// the worker is now asleep.
    pub(crate) async fn claim_or_sleep(
        &self,
        limit: u32,
        asleep: bool,
        ttl: std::time::Duration,
    ) -> Result<(Vec<PreparedGroup>, bool)> {
        let worker = &self.config.worker_id;
        let mut groups = self.claim_prepared(limit).await?;
        if groups.is_empty() {
            let mark = crate::sleepers::arm(&self.db, worker, ttl).await?;
            *self.sleep_mark.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark);
            // A transaction that appended before the arm committed sends no notification: wait
            // for those appending now to end, then look again (they may have committed since
            // the first look).
            if let Err(error) =
                crate::sleepers::await_appenders(&self.db, crate::sleepers::APPENDERS_WAIT).await
            {
                tracing::debug!(%error, "could not watch the transactions appending touches");
            }
            groups = self.claim_prepared(limit).await?;
            if groups.is_empty() {
                return Ok((groups, true));
            }
        } else if !asleep {
            return Ok((groups, false));
        }
        // Marked awake in the background: the pushes need not wait for that commit. Only this
        // mark is deleted, so a mark written meanwhile (the worker asleep again) stays.
        let mark = self
            .sleep_mark
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mark) = mark {
            let (db, worker) = (self.db.clone(), worker.clone());
            tokio::spawn(async move {
                if let Err(error) = crate::sleepers::disarm_mark(&db, &worker, mark).await {
                    // Harmless: the application's commits keep notifying until it expires.
                    tracing::debug!(%error, "could not mark the worker awake");
                }
            });
        }
        Ok((groups, false))
    }

    /// Translates the live groups of a batch with each syncer's `translate_many` (one query for a
    /// batch, where the syncer implements it). `None` for groups translated one by one later:
    /// deleted roots, and every group of a batch whose `translate_many` panicked or timed out.
    /// With each group, the remote ids of other groups its translation read.
    async fn translate_batch(
        &self,
        groups: &[ClaimedGroup],
        timeout: std::time::Duration,
    ) -> (Vec<Option<Result<Option<Value>>>>, Vec<Vec<Reference>>) {
        let mut out: Vec<Option<Result<Option<Value>>>> = (0..groups.len()).map(|_| None).collect();
        let mut references: Vec<Vec<Reference>> = (0..groups.len()).map(|_| Vec::new()).collect();
        let mut by_syncer: std::collections::BTreeMap<&str, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, g) in groups.iter().enumerate() {
            if !g.root_deleted {
                by_syncer.entry(g.syncer.as_str()).or_default().push(i);
            }
        }
        for (name, indexes) in by_syncer {
            let Some(syncer) = self.registry.get(name) else {
                continue;
            };
            // The usual batch (one syncer, no deleted root) is handed over as it is; otherwise
            // this syncer's groups are copied out.
            let copied: Vec<ClaimedGroup>;
            let batch: &[ClaimedGroup] = if indexes.len() == groups.len() {
                groups
            } else {
                copied = indexes.iter().map(|i| groups[*i].clone()).collect();
                &copied
            };
            let lookups = Lookups::default();
            let work = AssertUnwindSafe(lookups.scope(syncer.translate_many(&self.db, batch)))
                .catch_unwind();
            if let Ok(Ok(results)) = tokio::time::timeout(timeout, work).await
                && results.len() == batch.len()
            {
                for (i, result) in indexes.into_iter().zip(results) {
                    references[i] = lookups.take(groups[i].id);
                    out[i] = Some(result);
                }
            }
        }
        (out, references)
    }

    /// Records the creates the translated `groups` are about to send (see
    /// [`crate::PendingCreate`]), in one transaction. A group whose create could not be recorded
    /// (its lease was taken over, the database failed) gets that error as its translation, so
    /// that it is not pushed.
    async fn record_creates<C: ConnectionTrait + TransactionTrait>(
        &self,
        db: &C,
        groups: &[ClaimedGroup],
        translations: &mut [Option<Result<Option<Value>>>],
    ) -> Vec<Option<RecordedCreate>> {
        let mut creates: Vec<Option<RecordedCreate>> = groups
            .iter()
            .zip(translations.iter())
            .map(|(group, translated)| self.create_to_record(group, translated.as_ref()))
            .collect();
        let rows: Vec<(i64, &str, &str)> = groups
            .iter()
            .zip(&creates)
            .filter_map(|(g, c)| {
                c.as_ref()
                    .map(|c| (g.id, c.key.as_str(), c.payload.as_str()))
            })
            .collect();
        if rows.is_empty() {
            return creates;
        }
        let turn = self.write_turn().await;
        let held = queue::record_pending_creates(db, &self.config.worker_id, &rows).await;
        drop(turn);
        for (i, group) in groups.iter().enumerate() {
            if creates[i].is_none() {
                continue;
            }
            let refused = match &held {
                Ok(held) if held.contains(&group.id) => continue,
                Ok(_) => Error::retryable(
                    "lost the lease before the create was recorded: another worker took the group over",
                ),
                Err(error) => Error::retryable(format!(
                    "could not record the create before sending it: {error}"
                )),
            };
            creates[i] = None;
            translations[i] = Some(Err(refused));
        }
        creates
    }

    /// The create `group` will send, when it is a fresh create (no remote id, no create of an
    /// earlier attempt pending) of a syncer whose creates do not upsert.
    pub(super) fn create_to_record(
        &self,
        group: &ClaimedGroup,
        translated: Option<&Result<Option<Value>>>,
    ) -> Option<RecordedCreate> {
        if group.remote_id.is_some() || group.pending_create.is_some() || group.root_deleted {
            return None;
        }
        let Some(Ok(Some(payload))) = translated else {
            return None;
        };
        let syncer = self.registry.get(&group.syncer)?;
        if syncer.creates_upsert() {
            return None;
        }
        let digest = digest::digest(syncer.name(), syncer.payload_version(), payload);
        Some(RecordedCreate {
            key: group.idempotency_key(&digest),
            payload: payload_text(payload),
            digest,
        })
    }

    /// Syncers with dirty groups that this engine does not know (and so never claims), with how
    /// many groups each.
    pub async fn unknown_syncers(&self) -> Result<Vec<(String, i64)>> {
        queue::unknown_syncers(&self.db, &self.syncer_names).await
    }

    /// Gives back claimed groups that will not be processed.
    pub(crate) async fn release(&self, ids: &[i64]) -> Result<u64> {
        let _turn = self.write_turn().await;
        queue::release(&self.db, &self.config.worker_id, ids).await
    }

    /// Extends the leases on `ids`.
    pub(crate) async fn renew(&self, ids: &[i64]) -> Result<u64> {
        let until = self.clock.now_ms() + millis(self.config.lease);
        let _turn = self.write_turn().await;
        queue::renew(&self.db, &self.config.worker_id, ids, until).await
    }
}

/// The claimed groups with what the claim prepared for each.
fn prepared(
    groups: Vec<ClaimedGroup>,
    translations: Vec<Option<Result<Option<Value>>>>,
    creates: Vec<Option<RecordedCreate>>,
    references: Vec<Vec<Reference>>,
    claimed_at: Instant,
) -> Vec<PreparedGroup> {
    groups
        .into_iter()
        .zip(translations)
        .zip(creates)
        .zip(references)
        .map(
            |(((group, translated), create), references)| PreparedGroup {
                group,
                translated,
                create,
                references,
                claimed_at,
            },
        )
        .collect()
}
