//! One worker pass: claim due groups, translate, skip or push, record. Independent of the
//! runtime that schedules passes (the apalis worker in `sync-worker`, or a test stepping
//! [`Engine::run_once`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::Value;
use tracing::Instrument;

use crate::decide::{Decision, decide};
use crate::queue::{self, AttemptRecord, ClaimRequest, Failure, Synced};
use crate::retry::{ExponentialBackoff, RetryPolicy};
use crate::{
    ClaimedGroup, Clock, Error, PushContext, Registry, Result, SystemClock, TranslateContext,
    digest,
};

/// Settings of a worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// This worker's name in `lease_owner` and the attempt log (unique per process).
    pub worker_id: String,
    /// Groups claimed at once: per pass, and per claim of the worker runtime (which claims
    /// twice `concurrency` if that is more).
    pub batch_size: u32,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// How long a claim is held before another worker may take the group over.
    pub lease: Duration,
    /// The limit for one group's translate and push. A push longer than the lease renews it
    /// every third of the lease, and is abandoned if the lease cannot be renewed.
    pub push_timeout: Duration,
    /// Failed attempts after which a group is `dead`.
    pub max_attempts: u32,
    /// The wait after a "not ready" answer.
    pub not_ready_delay: Duration,
    /// "Not ready" answers after which waiting counts as a failure naming the prerequisite.
    pub max_deferrals: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: default_worker_id(),
            batch_size: 100,
            concurrency: 16,
            lease: Duration::from_secs(60),
            push_timeout: Duration::from_secs(30),
            max_attempts: 8,
            not_ready_delay: Duration::from_secs(1),
            max_deferrals: 60,
        }
    }
}

impl EngineConfig {
    /// Checks the settings, naming the one to fix.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        if self.worker_id.is_empty() || self.worker_id.len() > 64 {
            return fail(format!(
                "worker id `{}` must be 1 to 64 characters",
                self.worker_id
            ));
        }
        if self.batch_size == 0 {
            return fail("batch size must be at least 1".into());
        }
        if self.concurrency == 0 {
            return fail("concurrency must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return fail("max attempts must be at least 1".into());
        }
        if self.lease < Duration::from_secs(1) {
            return fail(format!(
                "the lease ({:?}) must be at least one second",
                self.lease
            ));
        }
        if self.push_timeout.is_zero() {
            return fail("the push timeout must be longer than zero".into());
        }
        Ok(())
    }
}

/// A name unique to this process: host, pid and a random suffix.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let host: String = host.chars().take(40).collect();
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A claimed group and its translation, made with the rest of its claim's batch
/// ([`Engine::claim_prepared`]).
#[derive(Debug)]
pub struct PreparedGroup {
    /// The group, as claimed.
    pub group: ClaimedGroup,
    /// `None` where the batch left it to be translated on its own (a deleted root, or a
    /// `translate_many` that failed as a whole).
    translated: Option<Result<Option<Value>>>,
    /// The create this attempt recorded before sending it, with the rest of its batch.
    create: Option<RecordedCreate>,
    /// When it was claimed: a group that waited long for a free slot renews its lease first.
    claimed_at: Instant,
}

/// A create recorded on its group before it is sent (see [`crate::PendingCreate`]).
#[derive(Debug, Clone)]
struct RecordedCreate {
    key: String,
    payload: String,
    digest: String,
}

/// What an attempt sent to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Nothing was sent (a digest skip, a translation error, a group closed without a push).
    None,
    /// A create (also a create repeated after a crash).
    Create,
    /// An update of the remote record.
    Update,
    /// A delete of the remote record.
    Delete,
}

impl Operation {
    /// The name in the attempt log: `none`, `create`, `update`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::None => "none",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// What one group's attempt came to, before it is recorded.
#[derive(Debug)]
pub struct Attempt {
    /// The group, as claimed.
    pub group: ClaimedGroup,
    /// What was sent.
    pub operation: Operation,
    /// Success, or the error.
    pub result: std::result::Result<Synced, Error>,
    /// When it started (ms since the epoch).
    pub started_at: i64,
    /// How long it took.
    pub duration: Duration,
}

/// How an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Created or updated on the remote.
    Pushed,
    /// The digest matched: nothing sent.
    Skipped,
    /// Deleted on the remote, or closed without a push.
    Deleted,
    /// Not ready; retried shortly without counting a failure.
    Waiting,
    /// A transient failure (timeout, connection, 408, 429, 5xx); retried later.
    Retry,
    /// A permanent failure (other 4xx, a bad answer, a translation error); retried later in
    /// case new data fixes it.
    Failed,
    /// Failed for the last time.
    Dead,
    /// The remote lost the record (an update answered 404) and the syncer's policy is
    /// [`WhenMissing::Recreate`](crate::WhenMissing): its id is forgotten and the record is
    /// created again at the next attempt.
    Recreating,
}

impl Outcome {
    /// The name in the attempt log.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pushed | Outcome::Deleted => "ok",
            Outcome::Skipped => "skipped",
            Outcome::Waiting => "waiting",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
            Outcome::Recreating => "recreate",
        }
    }
}

/// Counts of one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Groups claimed.
    pub claimed: usize,
    /// Created or updated on the remote.
    pub pushed: usize,
    /// Skipped by digest.
    pub skipped: usize,
    /// Deleted on the remote or closed.
    pub deleted: usize,
    /// Not ready, waiting.
    pub waiting: usize,
    /// Failed (transiently or not), to be retried.
    pub failed: usize,
    /// Failed for the last time.
    pub dead: usize,
    /// Lost by the remote, to be created again.
    pub recreating: usize,
    /// Completions that found the lease taken over (nothing written).
    pub lease_lost: usize,
    /// Where the pass's time went.
    pub phases: PassPhases,
}

/// Wall time of each phase of a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassPhases {
    /// Claiming the groups.
    pub claim: Duration,
    /// Translating them in batches (`Syncer::translate_many`).
    pub translate: Duration,
    /// Pushing them (and translating those not translated in batch).
    pub push: Duration,
    /// Recording the attempts.
    pub record: Duration,
}

impl PassPhases {
    /// The sum of two passes' phases.
    pub fn plus(self, other: PassPhases) -> PassPhases {
        PassPhases {
            claim: self.claim + other.claim,
            translate: self.translate + other.translate,
            push: self.push + other.push,
            record: self.record + other.record,
        }
    }
}

impl PassReport {
    fn add(&mut self, outcome: Outcome, lease_held: bool) {
        if !lease_held {
            self.lease_lost += 1;
        }
        *match outcome {
            Outcome::Pushed => &mut self.pushed,
            Outcome::Skipped => &mut self.skipped,
            Outcome::Deleted => &mut self.deleted,
            Outcome::Waiting => &mut self.waiting,
            Outcome::Retry | Outcome::Failed => &mut self.failed,
            Outcome::Dead => &mut self.dead,
            Outcome::Recreating => &mut self.recreating,
        } += 1;
    }
}

/// Claims, processes and records groups. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    db: DatabaseConnection,
    registry: Registry,
    config: Arc<EngineConfig>,
    syncer_names: Arc<Vec<String>>,
    clock: Arc<dyn Clock>,
    retry: Arc<dyn RetryPolicy>,
    /// Syncers paused after a 429, until when: written by claims (from the database) and by
    /// this engine's own 429s; read before every push.
    paused: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
    /// Batching queues of the syncers that push in batches.
    batchers: crate::batch::Batchers,
}

impl Engine {
    /// An engine over `db` pushing with the syncers in `registry`. Fails on invalid settings or
    /// an empty registry.
    pub fn new(db: DatabaseConnection, registry: Registry, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        if registry.is_empty() {
            return Err(Error::Config(
                "no syncer is registered; register at least one".into(),
            ));
        }
        let syncer_names = Arc::new(registry.names());
        let batchers = crate::batch::Batchers::new(config.concurrency);
        Ok(Engine {
            db,
            registry,
            config: Arc::new(config),
            syncer_names,
            clock: Arc::new(SystemClock),
            retry: Arc::new(ExponentialBackoff::default()),
            paused: Arc::default(),
            batchers,
        })
    }

    /// Uses `clock` for scheduling decisions (tests step a [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses `policy` for the delay between failed attempts.
    pub fn with_retry_policy(mut self, policy: impl RetryPolicy) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The syncers.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Now, by the engine's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Applies the logged touches ([`crate::apply_touches`]), then claims up to `limit` due
    /// groups of the registered syncers.
    pub async fn claim(&self, limit: u32) -> Result<Vec<ClaimedGroup>> {
        crate::touch_log::apply_touches(&self.db).await?;
        let now = self.clock.now_ms();
        let lease_until = now + millis(self.config.lease);
        let paused: Vec<String> = {
            let found = crate::limits::paused(&self.db, now).await?;
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
        let owner = &self.config.worker_id;
        let free: Vec<String> = free.into_iter().cloned().collect();
        let mut claimed = queue::claim(
            &self.db,
            &ClaimRequest {
                owner,
                syncers: &free,
                limit,
                now,
                lease_until,
            },
        )
        .await?;
        // Syncers with a cap on pushes in flight: claim what is left of the cap, counted across
        // all workers under a lock on the syncer's row.
        for name in capped {
            let room = limit.saturating_sub(claimed.len() as u32);
            if room == 0 {
                break;
            }
            let max = self.max_in_flight(name).unwrap_or(u32::MAX);
            let syncers = [name.clone()];
            let more = crate::limits::claim_within(&self.db, name, max, now, async |txn, free| {
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

    fn max_in_flight(&self, syncer: &str) -> Option<u32> {
        self.registry.get(syncer)?.limits()?.max_in_flight
    }

    /// Waits for the syncer's rate limit (and any pause) before a request.
    async fn take_token(&self, syncer: &dyn crate::Syncer) -> Result<()> {
        // A pause learnt at the last claim, or from a 429 this engine recorded, holds back the
        // groups already claimed too.
        let until = self
            .paused
            .lock()
            .expect("pause table")
            .get(syncer.name())
            .copied();
        if let Some(until) = until {
            let wait = until - self.clock.now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let Some(limits) = syncer.limits().filter(|l| l.per_second.is_some()) else {
            return Ok(());
        };
        while let Some(wait) =
            crate::limits::acquire(&self.db, syncer.name(), &limits, self.clock.now_ms()).await?
        {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Syncers with dirty groups that this engine does not know (and so never claims), with how
    /// many groups each.
    pub async fn unknown_syncers(&self) -> Result<Vec<(String, i64)>> {
        queue::unknown_syncers(&self.db, &self.syncer_names).await
    }

    /// Gives back claimed groups that will not be processed.
    pub async fn release(&self, ids: &[i64]) -> Result<u64> {
        queue::release(&self.db, &self.config.worker_id, ids).await
    }

    /// Extends the leases on `ids`.
    pub async fn renew(&self, ids: &[i64]) -> Result<u64> {
        let until = self.clock.now_ms() + millis(self.config.lease);
        queue::renew(&self.db, &self.config.worker_id, ids, until).await
    }

    /// Translates `group` and pushes it unless the remote already holds the payload (`full`
    /// pushes regardless). Never panics: a panic in the syncer becomes a permanent error.
    pub async fn process(&self, group: ClaimedGroup, full: bool) -> Attempt {
        self.process_translated(group, full, None, None).await
    }

    /// Claims up to `limit` due groups, as [`claim`](Self::claim), and translates them in one
    /// batch per syncer ([`Syncer::translate_many`](crate::Syncer::translate_many)) — what a
    /// worker handing groups out one by one calls, so that translation costs one query per
    /// batch, not one per group. Push each with [`process_prepared`](Self::process_prepared).
    pub async fn claim_prepared(&self, limit: u32) -> Result<Vec<PreparedGroup>> {
        let claimed_at = Instant::now();
        let groups = self.claim(limit).await?;
        let mut translations = self.translate_batch(&groups).await;
        let creates = self.record_creates(&groups, &mut translations).await;
        Ok(groups
            .into_iter()
            .zip(translations)
            .zip(creates)
            .map(|((group, translated), create)| PreparedGroup {
                group,
                translated,
                create,
                claimed_at,
            })
            .collect())
    }

    /// Records, in one round trip per 50, the creates the translated `groups` are about to send
    /// (see [`crate::PendingCreate`]), before any is sent. A group whose create could not be
    /// recorded gets that error as its translation, so that it is not pushed.
    async fn record_creates(
        &self,
        groups: &[ClaimedGroup],
        translations: &mut [Option<Result<Option<Value>>>],
    ) -> Vec<Option<RecordedCreate>> {
        let mut creates: Vec<Option<RecordedCreate>> = vec![None; groups.len()];
        for (i, group) in groups.iter().enumerate() {
            if let Some(create) = self.create_to_record(group, translations[i].as_ref()) {
                creates[i] = Some(create);
            }
        }
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
        let held = queue::record_pending_creates(&self.db, &self.config.worker_id, &rows).await;
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
    fn create_to_record(
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

    /// [`process`](Self::process) for a group from [`claim_prepared`](Self::claim_prepared),
    /// with its translation (or, where the batch could not translate it, translating it now).
    ///
    /// A group that waited for a slot longer than a third of the lease has its lease renewed
    /// before the push; if the lease is gone (another worker took the group over) or cannot be
    /// renewed, nothing is pushed and the attempt carries that error (recording it then changes
    /// nothing, the lease being someone else's).
    pub async fn process_prepared(&self, prepared: PreparedGroup, full: bool) -> Attempt {
        if prepared.claimed_at.elapsed() > self.config.lease / 3 {
            let lost = match self.renew(&[prepared.group.id]).await {
                Ok(1) => None,
                Ok(_) => Some(Error::retryable(
                    "lost the lease while waiting for a free slot: another worker took the group over",
                )),
                Err(error) => Some(Error::retryable(format!(
                    "could not renew the lease before the push: {error}"
                ))),
            };
            if let Some(error) = lost {
                return Attempt {
                    group: prepared.group,
                    operation: Operation::None,
                    result: Err(error),
                    started_at: self.clock.now_ms(),
                    duration: Duration::ZERO,
                };
            }
        }
        self.process_translated(prepared.group, full, prepared.translated, prepared.create)
            .await
    }

    /// Like [`process`](Self::process), with the translation already made (by
    /// [`Syncer::translate_many`](crate::Syncer::translate_many)) when `translated` is given.
    async fn process_translated(
        &self,
        group: ClaimedGroup,
        full: bool,
        translated: Option<Result<Option<Value>>>,
        create: Option<RecordedCreate>,
    ) -> Attempt {
        let started_at = self.clock.now_ms();
        let start = Instant::now();
        let span = tracing::info_span!("push", group = group.id, syncer = %group.syncer, version = group.version);
        let work = AssertUnwindSafe(self.translate_and_push(&group, full, translated, create))
            .catch_unwind();
        let guarded = async {
            tokio::select! {
                done = work => Ok(done),
                lost = self.keep_lease(&group) => Err(lost),
            }
        };
        let (operation, result) = match tokio::time::timeout(self.config.push_timeout, guarded)
            .instrument(span)
            .await
        {
            Ok(Err(lease_lost)) => (Operation::None, Err(lease_lost)),
            Ok(Ok(Ok(done))) => done,
            Ok(Ok(Err(panic))) => (
                Operation::None,
                Err(Error::permanent(format!(
                    "the syncer panicked: {}",
                    panic_message(&panic)
                ))),
            ),
            Err(_) => (
                Operation::None,
                Err(Error::retryable(format!(
                    "timed out after {:?}",
                    self.config.push_timeout
                ))),
            ),
        };
        Attempt {
            group,
            operation,
            result,
            started_at,
            duration: start.elapsed(),
        }
    }

    /// Renews the lease on `group` every third of the lease while its push runs. Returns (and
    /// so abandons the push) only when the lease is lost, or could not be renewed for two thirds
    /// of its length: past that point another worker may take the group over.
    async fn keep_lease(&self, group: &ClaimedGroup) -> Error {
        let every = self.config.lease / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.renew(&[group.id]).await {
                Ok(1) => renewed = Instant::now(),
                Ok(_) => {
                    return Error::retryable(
                        "lost the lease during the push: another worker took the group over",
                    );
                }
                Err(error) if renewed.elapsed() >= self.config.lease * 2 / 3 => {
                    return Error::retryable(format!(
                        "could not renew the lease during the push ({error}); abandoned it so that \
                         another worker can take the group over"
                    ));
                }
                Err(error) => {
                    tracing::warn!(group = group.id, %error, "could not renew a lease; retrying");
                }
            }
        }
    }

    async fn translate_and_push(
        &self,
        group: &ClaimedGroup,
        full: bool,
        translated: Option<Result<Option<Value>>>,
        recorded: Option<RecordedCreate>,
    ) -> (Operation, std::result::Result<Synced, Error>) {
        let Some(syncer) = self.registry.get(&group.syncer) else {
            return (
                Operation::None,
                Err(Error::Config(format!(
                    "no syncer `{}` is registered",
                    group.syncer
                ))),
            );
        };
        let payload = if group.root_deleted {
            None
        } else {
            let translation = match translated {
                Some(done) => done,
                None => {
                    syncer
                        .translate(&TranslateContext::new(&self.db, group))
                        .await
                }
            };
            match translation {
                Ok(payload) => payload,
                Err(e) => return (Operation::None, Err(e)),
            }
        };
        // A create an earlier attempt sent and never recorded comes first, exactly as it was
        // sent: the remote may hold its record already.
        if group.remote_id.is_none()
            && let Some(pending) = &group.pending_create
            && !syncer.creates_upsert()
        {
            return (
                Operation::Create,
                self.repeat_create(syncer, group, pending, payload.as_ref(), full)
                    .await,
            );
        }
        let Some(payload) = payload else {
            // The root is gone: delete the remote copy if there is one, then close the group.
            let Some(remote_id) = group.remote_id.as_ref() else {
                return (Operation::None, Ok(Synced::Deleted));
            };
            let cx = PushContext::new(group, "delete");
            if let Err(e) = self.take_token(syncer.as_ref()).await {
                return (Operation::None, Err(e));
            }
            return (
                Operation::Delete,
                syncer
                    .delete(&cx, remote_id.as_str())
                    .await
                    .map(|()| Synced::Deleted),
            );
        };
        let Some(remote_id) = group.remote_id.as_ref() else {
            return (
                Operation::Create,
                self.create(syncer, group, &payload, recorded).await,
            );
        };
        let digest = digest::digest(syncer.name(), syncer.payload_version(), &payload);
        if !full && group.last_digest.as_deref() == Some(digest.as_str()) {
            return (Operation::None, Ok(Synced::Skipped));
        }
        let cx = PushContext::new(group, &digest);
        if let Err(e) = self.take_token(syncer.as_ref()).await {
            return (Operation::None, Err(e));
        }
        let text = payload_text(&payload);
        let done = |remote_id: crate::RemoteId| Synced::Pushed {
            remote_id,
            digest: digest.clone(),
            payload: text.clone(),
            caught_up: true,
        };
        let result = if let Some(limit) = syncer.batch_limit() {
            let item = crate::BulkItem {
                remote_id: Some(remote_id.clone()),
                idempotency_key: cx.idempotency_key().to_owned(),
                payload,
            };
            self.batchers.push(syncer, limit, item).await.map(done)
        } else {
            syncer
                .update(&cx, remote_id.as_str(), &payload)
                .await
                .map(|()| done(remote_id.clone()))
        };
        (Operation::Update, result)
    }

    /// A fresh create of `payload`: recorded on the group first (unless the claim's batch did,
    /// or the syncer's creates upsert), then sent with the recorded key.
    async fn create(
        &self,
        syncer: &Arc<dyn crate::Syncer>,
        group: &ClaimedGroup,
        payload: &Value,
        recorded: Option<RecordedCreate>,
    ) -> std::result::Result<Synced, Error> {
        let create = match recorded {
            Some(create) => create,
            None => {
                let digest = digest::digest(syncer.name(), syncer.payload_version(), payload);
                let create = RecordedCreate {
                    key: group.idempotency_key(&digest),
                    payload: payload_text(payload),
                    digest,
                };
                if !syncer.creates_upsert() {
                    let row = [(group.id, create.key.as_str(), create.payload.as_str())];
                    let held = queue::record_pending_creates(&self.db, &group.lease_owner, &row)
                        .await
                        .map_err(|e| {
                            Error::retryable(format!(
                                "could not record the create before sending it: {e}"
                            ))
                        })?;
                    if !held.contains(&group.id) {
                        return Err(Error::retryable(
                            "lost the lease before the create was recorded: another worker took the group over",
                        ));
                    }
                }
                create
            }
        };
        self.take_token(syncer.as_ref()).await?;
        let cx = PushContext::with_key(group, create.key.clone(), false);
        let remote_id = self.send_create(syncer, &cx, payload).await?;
        Ok(Synced::Pushed {
            remote_id,
            digest: create.digest,
            payload: create.payload,
            caught_up: true,
        })
    }

    /// Repeats the create an earlier attempt recorded (same key, same body). The group stays
    /// due when the data changed since (or the root is gone), so that the next attempt updates
    /// (or deletes) the record it finds.
    async fn repeat_create(
        &self,
        syncer: &Arc<dyn crate::Syncer>,
        group: &ClaimedGroup,
        pending: &crate::PendingCreate,
        current: Option<&Value>,
        full: bool,
    ) -> std::result::Result<Synced, Error> {
        let body: Value = serde_json::from_str(&pending.payload).map_err(|e| {
            Error::permanent(format!(
                "the recorded body of the pending create of `{}` group `{}` is not JSON ({e})",
                group.syncer, group.root_key
            ))
        })?;
        self.take_token(syncer.as_ref()).await?;
        let cx = PushContext::with_key(group, pending.key.clone(), true);
        tracing::info!(group = group.id, syncer = %group.syncer, key = %pending.key, "repeating a create an earlier attempt may have delivered");
        let remote_id = self.send_create(syncer, &cx, &body).await?;
        let digest = digest::digest(syncer.name(), syncer.payload_version(), &body);
        let caught_up = !full
            && current.is_some_and(|p| {
                digest::digest(syncer.name(), syncer.payload_version(), p) == digest
            });
        Ok(Synced::Pushed {
            remote_id,
            digest,
            payload: pending.payload.clone(),
            caught_up,
        })
    }

    /// Sends a create, in a batch when the syncer pushes in batches.
    async fn send_create(
        &self,
        syncer: &Arc<dyn crate::Syncer>,
        cx: &PushContext<'_>,
        payload: &Value,
    ) -> Result<crate::RemoteId> {
        match syncer.batch_limit() {
            Some(limit) => {
                let item = crate::BulkItem {
                    remote_id: None,
                    idempotency_key: cx.idempotency_key().to_owned(),
                    payload: payload.clone(),
                };
                self.batchers.push(syncer, limit, item).await
            }
            None => syncer.create(cx, payload).await,
        }
    }

    /// Writes the attempt's result to its group (compare-and-set on the lease) and to the
    /// attempt log. Returns the outcome and whether the lease was still held.
    pub async fn record(&self, attempts: Vec<Attempt>) -> Result<Vec<(Outcome, bool)>> {
        self.record_slice(&attempts).await
    }

    async fn record_slice(&self, attempts: &[Attempt]) -> Result<Vec<(Outcome, bool)>> {
        // Rows are written in id order, so that concurrent recorders (other workers) lock them
        // in one order; the outcomes come back in the caller's order.
        let mut order: Vec<usize> = (0..attempts.len()).collect();
        order.sort_by_key(|&i| attempts[i].group.id);
        let sorted: Vec<&Attempt> = order.iter().map(|&i| &attempts[i]).collect();
        // A failed transaction wrote nothing; a deadlock or a dropped connection is worth
        // another try before the attempts are given up (and pushed again after the leases).
        let mut tries = 0;
        let outcomes = loop {
            match self.record_sorted(&sorted).await {
                Ok(outcomes) => break outcomes,
                Err(error) if tries < 3 => {
                    tries += 1;
                    tracing::warn!(%error, attempts = sorted.len(), "recording attempts failed; trying again");
                    tokio::time::sleep(Duration::from_millis(25 << tries)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let mut in_order = vec![(Outcome::Skipped, false); outcomes.len()];
        for (i, outcome) in order.into_iter().zip(outcomes) {
            in_order[i] = outcome;
        }
        Ok(in_order)
    }

    /// [`record`](Self::record), then `observe(syncer, outcome, duration)` for every attempt
    /// recorded.
    pub async fn record_observed(
        &self,
        attempts: Vec<Attempt>,
        mut observe: impl FnMut(&str, Outcome, Duration),
    ) -> Result<Vec<(Outcome, bool)>> {
        let recorded = self.record_slice(&attempts).await?;
        for (attempt, (outcome, _held)) in attempts.iter().zip(&recorded) {
            observe(&attempt.group.syncer, *outcome, attempt.duration);
        }
        Ok(recorded)
    }

    async fn record_sorted(&self, attempts: &[&Attempt]) -> Result<Vec<(Outcome, bool)>> {
        let txn = self
            .db
            .begin()
            .await
            .map_err(Error::db_while("recording attempts"))?;
        let now = self.clock.now_ms();
        let mut outcomes = Vec::with_capacity(attempts.len());
        let mut log = Vec::with_capacity(attempts.len());
        let successes: Vec<(&ClaimedGroup, &Synced)> = attempts
            .iter()
            .filter_map(|a| a.result.as_ref().ok().map(|s| (&a.group, s)))
            .collect();
        let completed = queue::complete_many(&txn, &successes, now).await?;

        for attempt in attempts {
            let group = &attempt.group;
            let (outcome, held, error) = match &attempt.result {
                Ok(synced) => {
                    let outcome = match synced {
                        Synced::Pushed { .. } => Outcome::Pushed,
                        Synced::Skipped => Outcome::Skipped,
                        Synced::Deleted => Outcome::Deleted,
                    };
                    (outcome, completed.contains(&group.id), None)
                }
                Err(error) => {
                    let (outcome, held) = self
                        .record_error(&txn, group, attempt.operation, error, now)
                        .await?;
                    (outcome, held, Some(error))
                }
            };
            if !held {
                tracing::warn!(group = group.id, syncer = %group.syncer, "lease lost before the attempt was recorded; another worker took the group over");
            }
            match (outcome, error) {
                (
                    Outcome::Retry | Outcome::Failed | Outcome::Dead | Outcome::Recreating,
                    Some(e),
                ) => {
                    tracing::warn!(group = group.id, syncer = %group.syncer, root = %group.root_key, version = group.version, outcome = outcome.label(), error = %e, "push failed");
                }
                _ => {
                    tracing::debug!(group = group.id, syncer = %group.syncer, version = group.version, outcome = outcome.label(), "attempt recorded");
                }
            }
            log.push(AttemptRecord {
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
            });
            outcomes.push((outcome, held));
        }
        queue::log_attempts(&txn, &log).await?;
        txn.commit()
            .await
            .map_err(Error::db_while("recording attempts"))?;
        Ok(outcomes)
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
                let held = queue::fail(db, group, &failure).await?;
                let outcome = match (dead, error.disposition()) {
                    (true, _) => Outcome::Dead,
                    (false, crate::Disposition::Retry { .. }) => Outcome::Retry,
                    (false, _) => Outcome::Failed,
                };
                Ok((outcome, held))
            }
        }
    }

    /// One pass: claims up to `batch_size` due groups, processes them `concurrency` at a time,
    /// records the results. Returns what happened; an empty report means nothing was due.
    pub async fn run_once(&self) -> Result<PassReport> {
        self.run_pass(false).await
    }

    /// Like [`run_once`](Self::run_once), pushing every claimed group regardless of digests.
    pub async fn run_once_full(&self) -> Result<PassReport> {
        self.run_pass(true).await
    }

    /// Passes until nothing is due (at most `max_passes`), summed; each pass is recorded while
    /// the next one pushes ([`run_until_idle_observed`](Self::run_until_idle_observed)).
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<PassReport> {
        self.run_until_idle_observed(false, max_passes, |_, _, _| {})
            .await
    }

    async fn run_pass(&self, full: bool) -> Result<PassReport> {
        self.run_pass_observed(full, |_, _, _| {}).await
    }

    /// Translates the live groups of a pass with each syncer's `translate_many` (one query for a
    /// batch, where the syncer implements it). `None` for groups translated one by one later: deleted
    /// roots, and every group of a batch whose `translate_many` panicked or timed out.
    async fn translate_batch(&self, groups: &[ClaimedGroup]) -> Vec<Option<Result<Option<Value>>>> {
        let mut out: Vec<Option<Result<Option<Value>>>> = (0..groups.len()).map(|_| None).collect();
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
            // The usual pass (one syncer, no deleted root) hands over the claimed groups as they
            // are; otherwise this syncer's groups are copied out.
            let copied: Vec<ClaimedGroup>;
            let batch: &[ClaimedGroup] = if indexes.len() == groups.len() {
                groups
            } else {
                copied = indexes.iter().map(|i| groups[*i].clone()).collect();
                &copied
            };
            let work = AssertUnwindSafe(syncer.translate_many(&self.db, batch)).catch_unwind();
            if let Ok(Ok(results)) = tokio::time::timeout(self.config.push_timeout, work).await
                && results.len() == batch.len()
            {
                for (i, result) in indexes.into_iter().zip(results) {
                    out[i] = Some(result);
                }
            }
        }
        out
    }

    /// One pass, calling `observe(syncer, outcome, duration)` for every recorded attempt: a
    /// run of at most one pass, recorded before this returns.
    pub async fn run_pass_observed(
        &self,
        full: bool,
        observe: impl FnMut(&str, Outcome, Duration),
    ) -> Result<PassReport> {
        self.run_until_idle_observed(full, 1, observe).await
    }

    /// Passes until a claim finds nothing due (at most `max_passes` claims that found work),
    /// summed, calling `observe` for every recorded attempt.
    ///
    /// The passes overlap: a pass's attempts are recorded while the next pass translates and
    /// pushes (its claim comes first, so on SQLite the two writes never wait for each other).
    /// Until recorded, a group keeps its lease, so the next claim does not take it; a group
    /// touched during its push is claimed again after its record, before this returns. If a
    /// record fails (after its retries), this returns the error; the pushes of the pass then in
    /// flight are not recorded either, and their groups are pushed again when the leases
    /// expire, as after a crash.
    pub async fn run_until_idle_observed(
        &self,
        full: bool,
        max_passes: usize,
        mut observe: impl FnMut(&str, Outcome, Duration),
    ) -> Result<PassReport> {
        let mut report = PassReport::default();
        let mut unrecorded: Option<Vec<Attempt>> = None;
        let mut passes = 0;
        loop {
            let started = Instant::now();
            let groups = if passes < max_passes {
                match self.claim(self.config.batch_size).await {
                    Ok(groups) => groups,
                    Err(error) => {
                        // Record what was pushed before giving up.
                        if let Some(attempts) = unrecorded.take() {
                            self.record_observed(attempts, &mut observe).await?;
                        }
                        return Err(error);
                    }
                }
            } else {
                Vec::new()
            };
            report.phases.claim += started.elapsed();
            if groups.is_empty() && unrecorded.is_none() {
                return Ok(report);
            }
            if !groups.is_empty() {
                passes += 1;
            }
            report.claimed += groups.len();
            let previous = unrecorded.take();
            let observe = &mut observe;
            let record = async move {
                let Some(attempts) = previous else {
                    return Ok((Vec::new(), Duration::ZERO));
                };
                let started = Instant::now();
                let recorded = self.record_observed(attempts, observe).await?;
                Ok::<_, Error>((recorded, started.elapsed()))
            };
            let mut phases = PassPhases::default();
            let push = async {
                if groups.is_empty() {
                    None
                } else {
                    Some(self.push_claimed(groups, full, &mut phases).await)
                }
            };
            let (recorded, attempts) = futures::join!(record, push);
            let (recorded, took) = recorded?;
            report.phases = report.phases.plus(phases);
            report.phases.record += took;
            for (outcome, held) in recorded {
                report.add(outcome, held);
            }
            unrecorded = attempts;
        }
    }

    /// Translates (in batches) and pushes claimed groups, `concurrency` at a time; adds the
    /// time taken to `phases`.
    async fn push_claimed(
        &self,
        groups: Vec<ClaimedGroup>,
        full: bool,
        phases: &mut PassPhases,
    ) -> Vec<Attempt> {
        let started = Instant::now();
        let mut translations = self.translate_batch(&groups).await;
        let creates = self.record_creates(&groups, &mut translations).await;
        phases.translate += started.elapsed();
        let started = Instant::now();
        // Groups of syncers that push in batches all go in flight at once, so that they fill
        // the batches; `concurrency` then bounds the batch requests. The others push one by one,
        // `concurrency` at a time.
        let (batched, single): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .zip(translations)
            .zip(creates)
            .partition(|((group, _), _)| {
                self.registry
                    .get(&group.syncer)
                    .and_then(|s| s.batch_limit())
                    .is_some()
            });
        let batched_in_flight = batched.len().max(1);
        let (mut attempts, single_attempts): (Vec<Attempt>, Vec<Attempt>) = futures::join!(
            futures::stream::iter(batched)
                .map(|((group, translated), create)| {
                    self.process_translated(group, full, translated, create)
                })
                .buffer_unordered(batched_in_flight)
                .collect(),
            futures::stream::iter(single)
                .map(|((group, translated), create)| {
                    self.process_translated(group, full, translated, create)
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
        );
        attempts.extend(single_attempts);
        phases.push += started.elapsed();
        attempts
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn payload_text(payload: &Value) -> String {
    serde_json::to_string(payload).unwrap_or_default()
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
