//! Batch pushes: the creates and updates of a syncer with a [`batch_limit`](crate::Syncer::batch_limit)
//! that are ready at about the same moment travel in one [`push_many`](crate::Syncer::push_many)
//! request. Each push still waits for its own answer, under its own lease, timeout and rate-limit
//! token, so the engine records it exactly as a single push.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{BulkItem, Error, RemoteId, Result, Syncer};

/// How long the first push of a batch waits for others to join it.
const LINGER: Duration = Duration::from_millis(2);

type Waiting = (BulkItem, oneshot::Sender<Result<RemoteId>>);

/// One batching queue per syncer, started on first use.
#[derive(Debug, Clone)]
pub(crate) struct Batchers {
    queues: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Waiting>>>>,
    /// Batch requests in flight at once, for all syncers together.
    permits: Arc<Semaphore>,
}

impl Batchers {
    /// Queues sending at most `concurrency` batch requests at once.
    pub(crate) fn new(concurrency: usize) -> Self {
        Batchers {
            queues: Arc::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Pushes `item` with whatever else is waiting for `syncer`; returns its remote id.
    pub(crate) async fn push(
        &self,
        syncer: &Arc<dyn Syncer>,
        limit: usize,
        item: BulkItem,
    ) -> Result<RemoteId> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queues = self.queues.lock().expect("batch queues");
            let queue = queues
                .entry(syncer.name().to_owned())
                .or_insert_with(|| spawn(syncer.clone(), limit.max(1), self.permits.clone()));
            if let Err(mpsc::error::SendError((item, reply))) = queue.send((item, reply)) {
                // The queue's task ended with its runtime: start another.
                let fresh = spawn(syncer.clone(), limit.max(1), self.permits.clone());
                let _ = fresh.send((item, reply));
                *queue = fresh;
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::retryable(format!(
                "the batch push of `{}` was abandoned before it answered",
                syncer.name()
            )))
        })
    }
}

fn spawn(
    syncer: Arc<dyn Syncer>,
    limit: usize,
    permits: Arc<Semaphore>,
) -> mpsc::UnboundedSender<Waiting> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Waiting>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < limit {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(waiting)) => batch.push(waiting),
                    _ => break,
                }
            }
            // Requests go out concurrently, `concurrency` at most; the next batch collects
            // meanwhile.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let syncer = syncer.clone();
            tokio::spawn(async move {
                send(syncer, batch).await;
                drop(permit);
            });
        }
    });
    tx
}

async fn send(syncer: Arc<dyn Syncer>, batch: Vec<Waiting>) {
    let (items, replies): (Vec<BulkItem>, Vec<_>) = batch.into_iter().unzip();
    let results = AssertUnwindSafe(syncer.push_many(&items))
        .catch_unwind()
        .await;
    match results {
        Ok(results) if results.len() == items.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Ok(results) => {
            let message = format!(
                "`{}` push_many returned {} results for {} items",
                syncer.name(),
                results.len(),
                items.len()
            );
            for reply in replies {
                let _ = reply.send(Err(Error::permanent(message.clone())));
            }
        }
        Err(panic) => {
            let message = format!(
                "the syncer panicked in push_many: {}",
                crate::panic::panic_message(&panic)
            );
            for reply in replies {
                let _ = reply.send(Err(Error::permanent(message.clone())));
            }
        }
    }
}
