//! Group commit for the apalis runtime: every task hands its finished attempt to one recorder,
//! which writes all the attempts waiting at that moment in one transaction, and answers each
//! task once its attempt is committed. Under load a transaction carries many attempts; alone,
//! an attempt is recorded at once.

use apalis::prelude::BoxDynError;
use sync_core::engine::Attempt;
use sync_core::{Engine, Outcome};
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<std::result::Result<(Outcome, bool), String>>;

/// The sending side, shared by the tasks. The recorder stops when every clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<(Attempt, Reply)>,
}

impl Recorder {
    /// Starts the recorder, writing at most `max_batch` attempts per transaction.
    pub(crate) fn spawn(engine: Engine, max_batch: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Attempt, Reply)>(max_batch.max(1));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut attempts = vec![first.0];
                let mut replies = vec![first.1];
                while attempts.len() < max_batch {
                    match rx.try_recv() {
                        Ok((attempt, reply)) => {
                            attempts.push(attempt);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                match engine.record(attempts).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(error) => {
                        // Nothing of this batch was recorded: the groups keep their claims and
                        // are attempted again when the leases expire.
                        let message = error.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Recorder { tx }
    }

    /// Records `attempt` with whatever else is waiting; returns once it is committed.
    pub(crate) async fn record(
        &self,
        attempt: Attempt,
    ) -> std::result::Result<(Outcome, bool), BoxDynError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((attempt, reply))
            .await
            .map_err(|_| "the attempt recorder has stopped")?;
        Ok(answer
            .await
            .map_err(|_| "the attempt recorder has stopped")??)
    }
}
