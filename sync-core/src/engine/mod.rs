//! The engine: one worker's claim → translate → push → record cycle, independent of the
//! runtime that schedules it.
//!
//! - [`claim`]: apply the touch log, lease due groups, translate them in batches, record their
//!   creates;
//! - [`push`] and [`create`]: push one group (updates, deletes, digest skips; creates recorded
//!   first and repeated exactly after a crash), keeping its lease alive;
//! - `decide.rs` (crate level): what a failed attempt leads to, a pure function;
//! - [`record`]: write the outcomes and the attempt log;
//! - [`pass`]: passes one after the other, for tests and one-shot runs;
//! - [`verify`]: compare what the remotes hold with the current translations.
//!
//! The product's scheduler is the apalis runtime in `sync-worker`, which claims ahead, keeps
//! every push slot busy and records in group commits; it drives the engine through
//! [`crate::__worker`].

mod claim;
mod config;
mod create;
mod pass;
mod push;
mod record;
mod report;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::Value;

pub use config::EngineConfig;
pub use report::{
    Attempt, Operation, Outcome, PassPhases, PassReport, PreparedGroup, Recorded, RunOptions,
};

use crate::retry::{ExponentialBackoff, RetryPolicy};
use crate::{Clock, Error, Registry, Result, SystemClock};

/// Called with every recorded attempt: its syncer, outcome and duration.
pub(crate) type Observer = Arc<dyn Fn(&str, Outcome, Duration) + Send + Sync>;

/// Claims, pushes and records groups. Cheap to clone.
///
/// Tests and one-shot runs step it with [`run_once`](Engine::run_once) and
/// [`run`](Engine::run); a worker process runs it under `sync_worker::Worker`.
#[derive(Clone)]
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
    /// Told about every recorded attempt (the worker's counters and metrics).
    observer: Option<Observer>,
    /// This worker's mark in `sync_sleepers` while it sleeps (see `claim_or_sleep`).
    sleep_mark: Arc<std::sync::Mutex<Option<i64>>>,
    /// On SQLite, the turn of this engine's writers (see [`Engine::write_turn`]).
    sqlite_writes: Arc<tokio::sync::Mutex<()>>,
    /// Claims may hold their groups locked while they are translated (see
    /// `claim_prepared_locked`): PostgreSQL, through a pool with room for that.
    locked_claims: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
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
        let locked_claims = locks_while_translating(&db);
        Ok(Engine {
            db,
            registry,
            config: Arc::new(config),
            syncer_names,
            clock: Arc::new(SystemClock),
            retry: Arc::new(ExponentialBackoff::default()),
            paused: Arc::default(),
            batchers,
            observer: None,
            sleep_mark: Arc::default(),
            sqlite_writes: Arc::default(),
            locked_claims,
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

    /// Tells `observer` about every recorded attempt.
    pub(crate) fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
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

    /// On SQLite, waits for this engine's other writers (a claim, the creates it records, a
    /// recorder's transaction) to finish and holds the turn until the guard is dropped. SQLite
    /// lets one writer in at a time and makes the others retry in its busy handler, which
    /// sleeps 1, 2, 5, 10 … ms between tries: a claim running beside a recorder's commit lost
    /// milliseconds every time. Taking turns here, each writer starts the moment the one before
    /// it is done. Other connections (the application, other processes) still meet the busy
    /// handler. `None` on other databases, whose writers lock rows, not the database.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.db.get_database_backend() == sea_orm::DbBackend::Sqlite {
            Some(self.sqlite_writes.lock().await)
        } else {
            None
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn payload_text(payload: &Value) -> String {
    serde_json::to_string(payload).unwrap_or_default()
}

/// Connections a PostgreSQL pool needs for claims that hold their groups locked while they are
/// translated: a worker's two claims each hold one for their transaction while their
/// translations read through others, beside the recorder. With fewer, a translation could wait
/// for a connection until the lock's time is up, so claims lease first and translate after.
#[cfg(feature = "sqlx-postgres")]
const LOCKED_CLAIM_CONNECTIONS: u32 = 4;

/// Whether claims over `db` may lock their groups while they are translated: a PostgreSQL pool
/// of at least [`LOCKED_CLAIM_CONNECTIONS`].
fn locks_while_translating(db: &DatabaseConnection) -> bool {
    #[cfg(feature = "sqlx-postgres")]
    if let sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &db.inner {
        return db
            .get_postgres_connection_pool()
            .options()
            .get_max_connections()
            >= LOCKED_CLAIM_CONNECTIONS;
    }
    let _ = db;
    false
}
