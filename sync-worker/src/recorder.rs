//! Group commit for the apalis runtime: every task hands its finished attempt to one recorder
//! and is done; the recorder writes all the attempts waiting at that moment in one transaction,
//! while the next pushes run. Under load a transaction carries many attempts; alone, an attempt
//! is recorded after a 2 ms wait for others.
//!
//! A task does not wait for its attempt's commit: its concurrency slot goes to the next push at
//! once, so the pushes in flight stay at the worker's concurrency while the database records.
//! Until it is recorded the group keeps its lease, so no other worker or task takes it. The queue
//! is bounded: when the recorder falls behind, tasks wait to hand over (and so claim no more).
//! At shutdown the runtime stops first, then [`RecorderTask::finish`] records what is queued.

use std::time::Duration;

use apalis::prelude::BoxDynError;
use sync_core::__worker::{self, Attempt};
use sync_core::Engine;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long the recorder waits for more attempts before a commit that would carry few.
const LINGER: Duration = Duration::from_millis(2);

/// The sending side, shared by the tasks.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Attempt>,
}

/// The recorder's task; [`Recorder::finish`] waits for it.
pub(crate) struct RecorderTask(JoinHandle<()>);

impl Recorder {
    /// Starts the recorder, writing at most `max_batch` attempts per transaction and holding at
    /// most `max_batch` more in its queue.
    pub(crate) fn spawn(engine: Engine, max_batch: usize) -> (Self, RecorderTask) {
        let (tx, mut rx) = mpsc::channel::<Attempt>(max_batch.max(1));
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Let the attempts finishing about now join this commit: one commit per few
                // milliseconds instead of one per handful of attempts.
                if rx.len() < max_batch / 2 {
                    tokio::time::sleep(LINGER).await;
                }
                let mut attempts = vec![first];
                while attempts.len() < max_batch {
                    match rx.try_recv() {
                        Ok(attempt) => attempts.push(attempt),
                        Err(_) => break,
                    }
                }
                let count = attempts.len();
                // The engine's observer counts each recorded attempt in the activity.
                let recorded = __worker::record(&engine, &attempts).await;
                // `record` already tried again. Nothing of this batch was written: the groups
                // keep their claims and are attempted again when the leases expire.
                if let Err(error) = recorded {
                    tracing::error!(
                        %error,
                        attempts = count,
                        "could not record attempts; their groups are attempted again when their leases expire"
                    );
                }
            }
        });
        (Recorder { tx }, RecorderTask(task))
    }

    /// Queues `attempt` for the next commit; waits only while the queue is full.
    pub(crate) async fn submit(&self, attempt: Attempt) -> Result<(), BoxDynError> {
        self.tx
            .send(attempt)
            .await
            .map_err(|_| "the attempt recorder has stopped".into())
    }
}

impl RecorderTask {
    /// Once every [`Recorder`] clone is dropped, waits (at most `timeout`) for the queued
    /// attempts to be recorded.
    pub(crate) async fn finish(self, timeout: Duration) {
        let mut task = self.0;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            tracing::warn!(
                "recording the last attempts took longer than the shutdown timeout; their groups are attempted again when their leases expire"
            );
            task.abort();
        }
    }
}
