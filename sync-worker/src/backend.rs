//! An apalis backend whose tasks are groups claimed from `sync_groups`.
//!
//! apalis drives it: it asks for the next task only when a concurrency slot is free, so claims
//! never outrun the pushes. There is no job table: the backend claims a batch of due
//! groups (with a lease), translates the batch at once (one query per syncer, where the syncer
//! implements `translate_many`), hands them out one by one — claiming the next batch as soon as
//! this one starts being handed out, and while work flows a second one beside it — and when
//! nothing is due it waits, without
//! spinning, for a wake-up (a touch in this process, or on PostgreSQL a notification from a
//! committing writer, which the application sends only while a worker is marked asleep: see
//! `sync_sleepers` in the migrations) or the poll interval.
//! Database errors are logged and retried with a growing delay; they never stop the worker.
//! On shutdown, groups claimed but not started are released at once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::task_id::RandomId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use sync_core::__worker::{self, PreparedGroup};
use sync_core::Engine;
use tower::layer::util::Identity;

/// How the backend waits for work.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// The longest wait between two claims when nothing is due and no wake-up came.
    pub poll_interval: Duration,
    /// Groups claimed at once (at most; the worker uses its `batch_size`, or twice its
    /// concurrency if that is more).
    pub claim_batch: u32,
    /// The first delay after a database error; doubles up to `poll_interval × 10`.
    pub error_backoff: Duration,
    /// How long to wait after a wake-up before claiming (zero: claim at once). A group being
    /// pushed already collects the writes that arrive meanwhile into its next push.
    pub wake_delay: Duration,
}

/// A claim running in a task of its own, with the wake-up generation it started at.
type ClaimTask = (
    tokio::task::JoinHandle<sync_core::Result<(Vec<PreparedGroup>, bool)>>,
    u64,
);

enum State {
    /// Ready to claim.
    Idle,
    /// A claim is running (in its own task, so that it proceeds while the buffer is handed out).
    Claiming(ClaimTask),
    /// Nothing due: wait for the timer or a wake-up.
    Waiting(
        Pin<Box<tokio::time::Sleep>>,
        Pin<Box<tokio::sync::futures::Notified<'static>>>,
    ),
    /// Woken: let the burst of writes finish before claiming.
    Settling(Pin<Box<tokio::time::Sleep>>),
    /// Shutting down: releasing what was claimed and not started.
    Releasing(BoxFuture<'static, ()>),
    /// Closed.
    Closed,
}

/// The backend. Build it with [`GroupBackend::new`] and give it to an apalis `WorkerBuilder`.
pub struct GroupBackend {
    engine: Engine,
    settings: PollSettings,
    buffer: VecDeque<PreparedGroup>,
    state: State,
    /// A second claim, started while the first runs and groups are being handed out: a claim
    /// (lease, translation, recorded creates) takes longer than pushing the batch it brings,
    /// so with one claim at a time the pushes waited for the next batch. Its groups follow the
    /// first claim's.
    ahead: Option<ClaimTask>,
    /// Consecutive database errors, for the backoff.
    errors: u32,
    /// Set after a wake-up found nothing: look once more shortly, the touching transaction may
    /// not have committed yet.
    recheck: bool,
    /// Marked asleep in the database (PostgreSQL): the application's commits notify.
    asleep: bool,
}

impl std::fmt::Debug for GroupBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBackend")
            .field("worker", &self.engine.config().worker_id)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl GroupBackend {
    /// A backend claiming through `engine`.
    pub fn new(engine: Engine, settings: PollSettings) -> Self {
        GroupBackend {
            engine,
            settings,
            buffer: VecDeque::new(),
            state: State::Idle,
            ahead: None,
            errors: 0,
            recheck: false,
            asleep: false,
        }
    }

    fn start_claim(&mut self) {
        self.state = State::Claiming(self.spawn_claim());
    }

    fn spawn_claim(&self) -> ClaimTask {
        let engine = self.engine.clone();
        let limit = self.settings.claim_batch.max(1);
        let generation = sync_core::wake::generation();
        let asleep = self.asleep;
        // A sleeping worker's mark outlives a few polls, so that a live worker's mark never
        // lapses between two of them.
        let ttl = self.settings.poll_interval.saturating_mul(3);
        (
            tokio::spawn(
                async move { __worker::claim_or_sleep(&engine, limit, asleep, ttl).await },
            ),
            generation,
        )
    }

    fn wait(&mut self, delay: Duration) {
        let notified = sync_core::wake::notified_future();
        self.state = State::Waiting(Box::pin(tokio::time::sleep(delay)), notified);
    }
}

/// The backend's errors. It reports none: database errors are retried inside.
#[derive(Debug, thiserror::Error)]
#[error("sync backend error: {0}")]
pub struct BackendError(String);

impl Backend for GroupBackend {
    type Task = Task<PreparedGroup>;
    type Error = BackendError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some(group) = self.buffer.pop_front() {
                // Claim the next batch as soon as this one is being handed out: the claim (with
                // its translation) then runs while the whole batch is pushed, and the pushes do
                // not wait for it at the batch boundary. While work flows in volume (half a
                // batch or more waiting), a second claim runs beside the first; with a few
                // groups due, one claim at a time finds them (and only one marks the worker
                // asleep when none is left). At most three batches are held.
                let batch = self.settings.claim_batch as usize;
                if self.buffer.len() < batch {
                    match self.state {
                        State::Idle => self.start_claim(),
                        State::Claiming(_)
                            if self.ahead.is_none() && self.buffer.len() >= batch / 2 =>
                        {
                            self.ahead = Some(self.spawn_claim());
                        }
                        _ => {}
                    }
                }
                return Poll::Ready(Some(Ok(Task::new(group))));
            }
            match &mut self.state {
                State::Idle => self.start_claim(),
                State::Claiming((claim, generation)) => {
                    let generation = *generation;
                    let result = match claim.poll_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(result) => result.unwrap_or_else(|e| {
                            Err(sync_core::Error::retryable(format!(
                                "the claim failed: {e}"
                            )))
                        }),
                    };
                    // The claim started after this one (if any) comes next, whatever this one
                    // found; what to do when nothing is due is decided on the last claim.
                    if let Some(ahead) = self.ahead.take() {
                        self.state = State::Claiming(ahead);
                        match result {
                            Ok((groups, asleep)) => {
                                self.asleep = asleep;
                                self.errors = 0;
                                self.buffer.extend(groups);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot claim groups; the database may be unavailable");
                            }
                        }
                        continue;
                    }
                    if let Ok((_, asleep)) = &result {
                        self.asleep = *asleep;
                    }
                    match result.map(|(groups, _)| groups) {
                        Ok(groups) if !groups.is_empty() => {
                            self.errors = 0;
                            self.recheck = false;
                            self.buffer.extend(groups);
                            self.state = State::Idle;
                        }
                        Ok(_) => {
                            self.errors = 0;
                            if sync_core::wake::generation() != generation {
                                // Touched while we were claiming: look again right away.
                                self.recheck = true;
                                self.state = State::Idle;
                            } else if std::mem::take(&mut self.recheck) {
                                self.wait(
                                    Duration::from_millis(50).min(self.settings.poll_interval),
                                );
                            } else {
                                self.wait(self.settings.poll_interval);
                            }
                        }
                        Err(error) => {
                            self.errors = self.errors.saturating_add(1);
                            let delay = self
                                .settings
                                .error_backoff
                                .saturating_mul(1 << self.errors.min(10).saturating_sub(1))
                                .min(self.settings.poll_interval.saturating_mul(10));
                            tracing::warn!(%error, retry_in = ?delay, "cannot claim groups; the database may be unavailable");
                            self.wait(delay);
                        }
                    }
                }
                State::Waiting(sleep, notified) => {
                    let woken = notified.as_mut().poll(cx).is_ready();
                    if woken {
                        self.recheck = true;
                        self.state = if self.settings.wake_delay.is_zero() {
                            State::Idle
                        } else {
                            State::Settling(Box::pin(tokio::time::sleep(self.settings.wake_delay)))
                        };
                    } else if sleep.as_mut().poll(cx).is_ready() {
                        self.state = State::Idle;
                    } else {
                        return Poll::Pending;
                    }
                }
                State::Settling(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.state = State::Idle;
                }
                State::Releasing(_) | State::Closed => return Poll::Pending,
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Closed => return Poll::Ready(Ok(())),
                State::Releasing(release) => {
                    if release.poll_unpin(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.state = State::Closed;
                }
                State::Claiming((claim, _)) => {
                    // Let a running claim finish, then release what it took.
                    match claim.poll_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(Ok((groups, asleep)))) => {
                            self.buffer.extend(groups);
                            self.asleep = asleep;
                        }
                        Poll::Ready(_) => {}
                    }
                    self.state = match self.ahead.take() {
                        Some(ahead) => State::Claiming(ahead),
                        None => State::Idle,
                    };
                }
                State::Idle | State::Waiting(..) | State::Settling(_) => {
                    let ids: Vec<i64> = self.buffer.drain(..).map(|p| p.group.id).collect();
                    let engine = self.engine.clone();
                    let asleep = std::mem::take(&mut self.asleep);
                    self.state = State::Releasing(
                        async move {
                            if asleep && let Err(error) = __worker::wake_up(&engine).await {
                                tracing::debug!(%error, "could not clear the worker's sleep mark; it expires");
                            }
                            if ids.is_empty() {
                                return;
                            }
                            match __worker::release(&engine, &ids).await {
                                Ok(n) => tracing::info!(released = n, "released claimed groups that were not started"),
                                Err(error) => tracing::warn!(%error, "could not release claims; their leases will expire"),
                            }
                        }
                        .boxed(),
                    );
                }
            }
        }
    }
}

impl BackendConfig for GroupBackend {
    type Args = PreparedGroup;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = PollSettings;
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &self.settings
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}
