//! Batch pushes: the creates and updates of a syncer with a [`batch_limit`](crate::Syncer::batch_limit)
//! that are ready at about the same moment travel in one [`push_many`](crate::Syncer::push_many)
//! request. Each push still waits for its own answer, under its own lease, timeout and rate-limit
//! token, so the engine records it exactly as a single push.
//!
//! A batch goes when it is full, or [`LINGER`] after its first push arrived. A pass of the engine
//! knows how many batched pushes it starts: it announces them ([`Batchers::expect`]), and a
//! batch then also waits for the announced pushes that have not arrived yet (at most
//! [`LONGEST_LINGER`]), so that a pass's pushes fill their batches even when a busy machine
//! spreads their arrival over more than [`LINGER`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::{BulkItem, Error, RemoteId, Result, Syncer};

/// How long the first push of a batch waits for others to join it.
const LINGER: Duration = Duration::from_millis(2);

/// How long the first push of a batch waits at most for announced pushes to join it.
const LONGEST_LINGER: Duration = Duration::from_millis(100);

type Waiting = (BulkItem, oneshot::Sender<Result<RemoteId>>);

/// The batched pushes announced to a syncer's queue that have not reached it yet.
#[derive(Debug, Default)]
struct Coming {
    count: AtomicUsize,
    /// Signalled whenever `count` goes down.
    fewer: Notify,
}

/// A syncer's queue.
#[derive(Debug)]
struct Queue {
    tx: mpsc::UnboundedSender<Waiting>,
    coming: Arc<Coming>,
}

/// One batching queue per syncer, started on first use.
#[derive(Debug, Clone)]
pub(crate) struct Batchers {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
    /// Batch requests in flight at once, for all syncers together.
    permits: Arc<Semaphore>,
}

/// An announced batched push ([`Batchers::expect`]): it counts as coming until the push reaches
/// its queue, or until this is dropped (the push ended without reaching it: skipped, failed).
#[derive(Debug)]
pub(crate) struct Expected(Arc<Coming>);

impl Drop for Expected {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.fewer.notify_one();
    }
}

impl Expected {
    /// Runs `push` with `announced` (if any): the batched push it makes ends the announcement
    /// on arrival.
    pub(crate) async fn scope<F: std::future::Future>(
        announced: Option<Expected>,
        push: F,
    ) -> F::Output {
        ANNOUNCED.scope(RefCell::new(announced), push).await
    }
}

tokio::task_local! {
    /// The announcement of the push being made ([`Expected::scope`]).
    static ANNOUNCED: RefCell<Option<Expected>>;
}

impl Batchers {
    /// Queues sending at most `concurrency` batch requests at once.
    pub(crate) fn new(concurrency: usize) -> Self {
        Batchers {
            queues: Arc::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Announces a batched push of `syncer` about to be made: until it arrives (or the
    /// returned announcement is dropped), the batch it would join waits for it.
    pub(crate) fn expect(&self, syncer: &Arc<dyn Syncer>, limit: usize) -> Expected {
        let mut queues = self.queues.lock().expect("batch queues");
        let queue = self.queue(&mut queues, syncer, limit);
        queue.coming.count.fetch_add(1, Ordering::AcqRel);
        Expected(queue.coming.clone())
    }

    /// `syncer`'s queue, started if it has none (or its task ended with its runtime).
    fn queue<'q>(
        &self,
        queues: &'q mut HashMap<String, Queue>,
        syncer: &Arc<dyn Syncer>,
        limit: usize,
    ) -> &'q mut Queue {
        let queue = queues
            .entry(syncer.name().to_owned())
            .or_insert_with(|| spawn(syncer.clone(), limit.max(1), self.permits.clone()));
        if queue.tx.is_closed() {
            *queue = spawn(syncer.clone(), limit.max(1), self.permits.clone());
        }
        queue
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
            let queue = self.queue(&mut queues, syncer, limit);
            if let Err(mpsc::error::SendError((item, reply))) = queue.tx.send((item, reply)) {
                // The queue's task ended with its runtime meanwhile: start another.
                *queue = spawn(syncer.clone(), limit.max(1), self.permits.clone());
                let _ = queue.tx.send((item, reply));
            }
        }
        // Arrived: no longer coming (after the send, so that a batch that sees the count fall
        // finds this push in its queue).
        drop(ANNOUNCED.try_with(|a| a.borrow_mut().take()).ok().flatten());
        answer.await.unwrap_or_else(|_| {
            Err(Error::retryable(format!(
                "the batch push of `{}` was abandoned before it answered",
                syncer.name()
            )))
        })
    }
}

fn spawn(syncer: Arc<dyn Syncer>, limit: usize, permits: Arc<Semaphore>) -> Queue {
    let (tx, mut rx) = mpsc::unbounded_channel::<Waiting>();
    let coming = Arc::new(Coming::default());
    let queue = Queue {
        tx,
        coming: coming.clone(),
    };
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let started = tokio::time::Instant::now();
            while batch.len() < limit {
                if let Ok(waiting) = rx.try_recv() {
                    batch.push(waiting);
                    continue;
                }
                // Registered before the count is read: a push arriving in between wakes it.
                let fewer = coming.fewer.notified();
                tokio::pin!(fewer);
                fewer.as_mut().enable();
                let linger = if coming.count.load(Ordering::Acquire) > 0 {
                    LONGEST_LINGER
                } else {
                    LINGER
                };
                let deadline = started + linger;
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::select! {
                    waiting = rx.recv() => match waiting {
                        Some(waiting) => batch.push(waiting),
                        None => break,
                    },
                    // An announced push arrived or dropped out: look again.
                    () = &mut fewer => {}
                    () = tokio::time::sleep_until(deadline) => break,
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
    queue
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
