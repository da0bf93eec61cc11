//! Stepping the engine: passes of claim, push and record, one after the other. This is the API
//! for tests, one-shot runs (`run --once`) and operator commands; the worker's scheduler — the
//! one that keeps every push slot busy, claims ahead and records in group commits — is the
//! apalis runtime in `sync-worker`.

use std::time::Instant;

use futures::StreamExt;

use super::Engine;
use super::report::{Attempt, PassPhases, PassReport, PreparedGroup, RunOptions};
use crate::Result;
use crate::batch::Expected;

impl Engine {
    /// One pass: claims up to `batch_size` due groups, pushes them `concurrency` at a time,
    /// records the results. Returns what happened; `claimed == 0` means nothing was due.
    pub async fn run_once(&self) -> Result<PassReport> {
        self.run(RunOptions::once()).await
    }

    /// Passes until a claim finds nothing due, at most `max_passes` of them, summed (see
    /// [`run`](Self::run)).
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<PassReport> {
        self.run(RunOptions::until_idle().max_passes(max_passes))
            .await
    }

    /// Passes until a claim finds nothing due (at most `options.max_passes` passes that found
    /// work), summed. A group touched during its push is claimed again by a later pass, before
    /// this returns. If a record fails (after its retries), this returns the error; the pass's
    /// groups keep their leases and are pushed again when they expire, as after a crash.
    pub async fn run(&self, options: RunOptions) -> Result<PassReport> {
        let mut report = PassReport::default();
        let mut passes = 0;
        while passes < options.max_passes {
            let mut phases = PassPhases::default();
            let started = Instant::now();
            let prepared = self.claim_prepared(self.config.batch_size).await?;
            phases.claim = started.elapsed();
            if prepared.is_empty() {
                break;
            }
            passes += 1;
            report.claimed += prepared.len();
            let started = Instant::now();
            let attempts = self.push_prepared(prepared, options.full).await;
            phases.push = started.elapsed();
            let started = Instant::now();
            for recorded in self.record(&attempts).await? {
                report.add(recorded);
            }
            phases.record = started.elapsed();
            report.phases.claim += phases.claim;
            report.phases.push += phases.push;
            report.phases.record += phases.record;
        }
        Ok(report)
    }

    /// Pushes prepared groups. Groups of syncers that push in batches all go in flight at once,
    /// announced to their batches, so that they fill them (`concurrency` then bounds the batch
    /// requests); the others push one by one, `concurrency` at a time.
    async fn push_prepared(&self, prepared: Vec<PreparedGroup>, full: bool) -> Vec<Attempt> {
        let mut batched = Vec::new();
        let mut single = Vec::new();
        for p in prepared {
            let Some(syncer) = self.registry.get(&p.group.syncer) else {
                single.push(p);
                continue;
            };
            let Some(limit) = syncer.batch_limit() else {
                single.push(p);
                continue;
            };
            // Announced unless it cannot join a batch: a delete (deleted root, or translated
            // to nothing) goes in a request of its own, a failed translation in none.
            let joins = match &p.translated {
                Some(translated) => matches!(translated, Ok(Some(_))),
                None => !p.group.root_deleted,
            };
            let expected = joins.then(|| self.batchers.expect(syncer, limit));
            batched.push((p, expected));
        }
        let batched_in_flight = batched.len().max(1);
        let (mut attempts, single_attempts): (Vec<Attempt>, Vec<Attempt>) = futures::join!(
            futures::stream::iter(batched)
                .map(|(p, expected)| Expected::scope(expected, self.process_prepared(p, full)))
                .buffer_unordered(batched_in_flight)
                .collect(),
            futures::stream::iter(single)
                .map(|p| self.process_prepared(p, full))
                .buffer_unordered(self.config.concurrency)
                .collect()
        );
        attempts.extend(single_attempts);
        attempts
    }
}
