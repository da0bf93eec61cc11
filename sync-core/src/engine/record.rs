//! Recording attempts: successes complete their groups, failures are decided
//! (see `decide.rs`) and written, and every attempt goes to the attempt log — one transaction
//! per batch of attempts.

use std::time::Duration;

use sea_orm::{DbBackend, IsolationLevel, TransactionTrait};

use super::report::{Attempt, Operation, Outcome, Recorded};
use super::{Engine, millis};
use crate::decide::{Decision, decide};
use crate::queue::{self, AttemptRecord, Completion, Failure, Synced};
use crate::references;
use crate::{ClaimedGroup, Error, Result};

impl Engine {
    /// Writes the attempts' results to their groups (compare-and-set on the lease) and to the
    /// attempt log, in one transaction, and tells the engine's observer. Returns, in the
    /// attempts' order, how each was recorded.
    pub(crate) async fn record(&self, attempts: &[Attempt]) -> Result<Vec<Recorded>> {
        // Rows are written in id order, so that concurrent recorders (other workers) lock them
        // in one order; the outcomes come back in the caller's order.
        let mut order: Vec<usize> = (0..attempts.len()).collect();
        order.sort_by_key(|&i| attempts[i].group.id);
        let sorted: Vec<&Attempt> = order.iter().map(|&i| &attempts[i]).collect();
        // A failed transaction wrote nothing; a deadlock or a dropped connection is worth
        // another try before the attempts are given up (and pushed again after the leases).
        let mut tries = 0;
        // First counting the completed groups only; exactly when a lease turns out lost.
        let mut exact = false;
        let recorded = loop {
            let turn = self.write_turn().await;
            let recorded = self.record_sorted(&sorted, exact).await;
            drop(turn);
            match recorded {
                Ok(Some(recorded)) => break recorded,
                Ok(None) => exact = true,
                Err(error) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(%error, attempts = sorted.len(), "recording attempts failed; trying again");
                    tokio::time::sleep(Duration::from_millis(25 << tries)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let mut in_order = vec![
            Recorded {
                outcome: Outcome::Skipped,
                lease_held: false,
            };
            recorded.len()
        ];
        for (i, recorded) in order.into_iter().zip(recorded) {
            in_order[i] = recorded;
        }
        if let Some(observe) = &self.observer {
            for (attempt, recorded) in attempts.iter().zip(&in_order) {
                observe(&attempt.group.syncer, recorded.outcome, attempt.duration);
            }
        }
        Ok(in_order)
    }

    /// Records `attempts` in one transaction; `None` (nothing written) when, not `exact`, a
    /// completed group's lease turned out lost: the caller records again, `exact`.
    async fn record_sorted(
        &self,
        attempts: &[&Attempt],
        exact: bool,
    ) -> Result<Option<Vec<Recorded>>> {
        // What the successes change in the references between groups (see `references.rs`):
        // a changed digest goes with the group's completion, the rest after the completions.
        let mut plan = references::Plan::default();
        let mut successes: Vec<Completion<'_>> = Vec::with_capacity(attempts.len());
        for attempt in attempts {
            let Ok(synced) = &attempt.result else {
                continue;
            };
            let group = &attempt.group;
            let mut references = None;
            if let Some(carried) = &attempt.references {
                let digest = references::digest(carried);
                if digest != group.references_digest {
                    plan.writes.push((group, carried));
                    references = Some(digest);
                }
            }
            if let Synced::Pushed { remote_id, .. } | Synced::Echo { remote_id, .. } = synced
                && references::changes_remote_id(group, remote_id)
            {
                plan.changed.push((group, remote_id.as_str()));
            }
            let created = matches!(synced, Synced::Pushed { .. })
                && group.remote_id.is_none()
                && self
                    .registry
                    .get(&group.syncer)
                    .is_some_and(|syncer| !syncer.creates_upsert());
            successes.push(Completion {
                group,
                synced,
                references,
                created,
            });
        }
        let context = || Error::db_while("recording attempts");
        let now = self.clock.now_ms();
        if plan.is_empty()
            && successes.len() == attempts.len()
            && self.db.get_database_backend() == DbBackend::Postgres
        {
            // Successes only, no references to change (the usual batch): on PostgreSQL one
            // statement completes the groups and writes the attempt log.
            let outcomes: Vec<Outcome> = successes.iter().map(|c| success(c.synced)).collect();
            let log: Vec<AttemptRecord> = attempts
                .iter()
                .zip(&outcomes)
                .map(|(attempt, outcome)| self.log_entry(attempt, *outcome, true, None))
                .collect();
            if let Some(mut completed) =
                queue::complete_and_log(&self.db, &successes, &log, now).await?
            {
                // The statement committed: an error now must not have the batch recorded
                // again. A linked group left leased is pushed again after its lease.
                match self.keep_linked_apart(&successes, &completed, now).await {
                    Ok(kept) => completed.extend(kept),
                    Err(error) => {
                        tracing::error!(%error, "could not record the creates of groups linked meanwhile; they are pushed again when their leases expire");
                    }
                }
                return Ok(Some(
                    attempts
                        .iter()
                        .zip(outcomes)
                        .map(|(attempt, outcome)| {
                            let held = completed.contains(&attempt.group.id);
                            if !held {
                                lease_lost(&attempt.group);
                            }
                            Recorded {
                                outcome,
                                lease_held: held,
                            }
                        })
                        .collect(),
                ));
            }
        }
        let txn = if plan.is_empty() || self.db.get_database_backend() != DbBackend::MySql {
            self.db.begin().await.map_err(context())?
        } else {
            // Read committed, as the touch applier: replacing a group's references takes no
            // gap lock that another worker's references wait for, and the look-ups read
            // `sync_groups` without locking it.
            self.db
                .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                .await
                .map_err(context())?
        };
        let mut outcomes = Vec::with_capacity(attempts.len());
        let mut log = Vec::with_capacity(attempts.len());
        let Some(mut completed) = queue::complete_many(&txn, &successes, now, exact).await? else {
            txn.rollback().await.map_err(context())?;
            return Ok(None);
        };
        plan.retain_held(&completed);
        let candidates = linked_meanwhile(&successes, &completed);
        let kept = self.keep_linked(&txn, &candidates, now).await?;
        completed.extend(kept);
        let touched = references::record(&txn, &plan).await?;

        for attempt in attempts {
            let group = &attempt.group;
            let (outcome, held, error) = match &attempt.result {
                Ok(synced) => (success(synced), completed.contains(&group.id), None),
                Err(error) => {
                    let (outcome, held) = self
                        .record_error(&txn, group, attempt.operation, error, now)
                        .await?;
                    (outcome, held, Some(error))
                }
            };
            log.push(self.log_entry(attempt, outcome, held, error));
            outcomes.push(Recorded {
                outcome,
                lease_held: held,
            });
        }
        queue::log_attempts(&txn, &log).await?;
        txn.commit()
            .await
            .map_err(Error::db_while("recording attempts"))?;
        if touched > 0 {
            tracing::debug!(
                touched,
                "touched groups whose pushes carry an outdated remote id"
            );
            crate::wake::notify();
        }
        Ok(Some(outcomes))
    }

    /// The attempt log's entry for `attempt`, recorded as `outcome` (traced, with a warning
    /// when `held` is false: the lease was lost).
    fn log_entry(
        &self,
        attempt: &Attempt,
        outcome: Outcome,
        held: bool,
        error: Option<&Error>,
    ) -> AttemptRecord {
        let group = &attempt.group;
        if !held {
            lease_lost(group);
        }
        match (outcome, error) {
            (Outcome::Retry | Outcome::Failed | Outcome::Dead | Outcome::Recreating, Some(e)) => {
                tracing::warn!(group = group.id, syncer = %group.syncer, root = %group.root_key, version = group.version, outcome = outcome.label(), error = %e, "push failed");
            }
            _ => {
                tracing::debug!(group = group.id, syncer = %group.syncer, version = group.version, outcome = outcome.label(), "attempt recorded");
            }
        }
        AttemptRecord {
            group_id: group.id,
            syncer: group.syncer.clone(),
            version: group.version,
            operation: attempt.operation.as_str(),
            outcome: outcome.label(),
            status_code: error.and_then(Error::status),
            error: error.map(ToString::to_string),
            duration_ms: attempt.duration.as_millis() as i64,
            worker: self.config.worker_id.clone(),
            started_at: attempt.started_at,
        }
    }

    async fn record_error<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        group: &ClaimedGroup,
        operation: Operation,
        error: &Error,
        now: i64,
    ) -> Result<(Outcome, bool)> {
        let when_missing = self
            .registry
            .get(&group.syncer)
            .map(|s| s.when_missing())
            .unwrap_or_default();
        match decide(
            error,
            operation,
            group,
            when_missing,
            &self.config,
            self.retry.as_ref(),
        ) {
            Decision::Wait {
                deferrals,
                delay,
                message,
            } => {
                let next = now + millis(delay);
                let held = queue::defer(db, group, deferrals, &message, next).await?;
                Ok((Outcome::Waiting, held))
            }
            Decision::Recreate {
                attempts,
                dead,
                message,
            } => {
                let held =
                    queue::forget_lost_record(db, group, attempts, &message, now, dead).await?;
                Ok((
                    if dead {
                        Outcome::Dead
                    } else {
                        Outcome::Recreating
                    },
                    held,
                ))
            }
            Decision::Fail {
                attempts,
                delay,
                dead,
                message,
                status,
                forget_create,
                pause,
            } => {
                if let Some(pause) = pause {
                    let until = now + millis(pause);
                    crate::limits::pause(db, &group.syncer, until, &message).await?;
                    self.paused
                        .lock()
                        .expect("pause table")
                        .insert(group.syncer.clone(), until);
                }
                let failure = Failure {
                    attempts,
                    error: &message,
                    status,
                    next_attempt_at: now + millis(delay),
                    dead,
                    forget_create,
                };
                let recorded = queue::fail(db, group, &failure).await?;
                let dead = dead && recorded != queue::FailRecorded::AfterRetry;
                let outcome = match (dead, error.disposition()) {
                    (true, _) => Outcome::Dead,
                    (false, crate::Disposition::Retry { .. }) => Outcome::Retry,
                    (false, _) => Outcome::Failed,
                };
                Ok((outcome, recorded != queue::FailRecorded::Lost))
            }
        }
    }
}

/// The creates among `successes` not `completed`: those whose group may have been linked to
/// another remote record meanwhile (see [`queue::keep_linked_remote_id`]).
fn linked_meanwhile<'c, 'a>(
    successes: &'c [Completion<'a>],
    completed: &std::collections::HashSet<i64>,
) -> Vec<&'c Completion<'a>> {
    successes
        .iter()
        .filter(|c| c.created && !completed.contains(&c.group.id))
        .collect()
}

impl Engine {
    /// [`Engine::keep_linked`] in a transaction of its own, when there is anything to look at
    /// (after PostgreSQL's one-statement record, which committed).
    async fn keep_linked_apart(
        &self,
        successes: &[Completion<'_>],
        completed: &std::collections::HashSet<i64>,
        now: i64,
    ) -> Result<Vec<i64>> {
        let candidates = linked_meanwhile(successes, completed);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let context = || Error::db_while("recording creates of groups linked meanwhile");
        let txn = self.db.begin().await.map_err(context())?;
        let kept = self.keep_linked(&txn, &candidates, now).await?;
        txn.commit().await.map_err(context())?;
        Ok(kept)
    }

    /// Records the `candidates` whose group was linked to another remote record while their
    /// create was in flight ([`queue::keep_linked_remote_id`]), and queues the delete of the
    /// record each create made ([`queue::queue_duplicate_delete`]), in `db`'s transaction.
    /// Returns their group ids.
    async fn keep_linked<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        candidates: &[&Completion<'_>],
        now: i64,
    ) -> Result<Vec<i64>> {
        let mut kept = Vec::new();
        for completion in candidates {
            let group = completion.group;
            let Synced::Pushed { remote_id, .. } = completion.synced else {
                continue;
            };
            if !queue::keep_linked_remote_id(db, group, remote_id.as_str(), now).await? {
                continue;
            }
            let duplicate = queue::queue_duplicate_delete(db, group, remote_id, now).await?;
            tracing::warn!(group = group.id, syncer = %group.syncer, root = %group.root_key, duplicate = %remote_id, deleting = %duplicate, "the group was linked to another remote record while its create was in flight: it keeps the linked record, and the record the create made is deleted");
            kept.push(group.id);
        }
        Ok(kept)
    }
}

/// How a successful attempt is recorded.
fn success(synced: &Synced) -> Outcome {
    match synced {
        Synced::Pushed { .. } => Outcome::Pushed,
        Synced::Skipped | Synced::Echo { .. } => Outcome::Skipped,
        Synced::Deleted => Outcome::Deleted,
    }
}

fn lease_lost(group: &ClaimedGroup) {
    tracing::warn!(group = group.id, syncer = %group.syncer, "lease lost before the attempt was recorded; another worker took the group over");
}
