//! Keep other systems — a CRM, an ERP, a webhook consumer — in step with a SeaORM
//! application's own data.
//!
//! # The pieces
//!
//! 1. **Declare what to sync.** `#[derive(Syncable)]` on a model names the *sync group* (one
//!    remote entity) it feeds, and the columns whose change matters; see
//!    [Declaring what to sync](#declaring-what-to-sync-derivesyncable) below. Saving a model
//!    through its `ActiveModel` logs a touch of its group in the same transaction.
//! 2. **Write a [`Syncer`]** per remote entity: [`Syncer::translate`] builds the payload from
//!    the local rows; the built-in [`HttpRemote`] pushes it (plain REST, idempotency keys,
//!    timeouts, `Retry-After`), the built-in [`TableSink`] upserts it into a table of another
//!    database (a reporting table, another service's read model), or the syncer implements
//!    `create`, `update` and `delete` itself.
//! 3. **Run a worker**: `sync_worker::cli::main` (a worker binary with the operator commands)
//!    or `sync_worker::Worker` in the application's process. It claims dirty groups, translates
//!    them, skips payloads the remote already holds, pushes the rest and records the outcome.
//! 4. **Operate it**: [`ops`] (status, failed groups, retry, forget, full runs, backfill,
//!    dry-run plans), which the CLI and the dashboard of `sync-worker` are built on.
//!
//! ```no_run
//! use serde_json::{Value, json};
//! use sync_core::{HttpRemote, Registry, Result, Syncer, TranslateContext, async_trait};
//!
//! struct ContactSyncer {
//!     remote: HttpRemote,
//! }
//!
//! #[async_trait]
//! impl Syncer for ContactSyncer {
//!     fn name(&self) -> &str {
//!         "crm.contact"
//!     }
//!
//!     async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
//!         let id: i32 = cx.key()?;
//!         // Read the customer (and its dependents) through `cx.db()`; `Ok(None)` when it is
//!         // gone, and the worker deletes the remote copy.
//!         Ok(Some(json!({ "id": id })))
//!     }
//!
//!     fn remote(&self) -> Option<&HttpRemote> {
//!         Some(&self.remote)
//!     }
//! }
//!
//! # fn demo() -> Result<()> {
//! let mut syncers = Registry::new();
//! syncers.register(ContactSyncer {
//!     remote: HttpRemote::from_env("CRM", "contacts")?,
//! })?;
//! # Ok(()) }
//! ```
//!
//! # Where things happen
//!
//! - The hooks and the helpers for writes that run no hooks ([`touch`], [`touch_matching`],
//!   [`mark_deleted`], [`sync`]) append to the touch log, `sync_touches`, through the
//!   connection they are given. Appending takes no lock anyone waits for: the framework adds no
//!   deadlock to the application. Workers apply the log ([`apply_touches`]) to `sync_groups`,
//!   one row per group, which is the queue.
//! - [`Engine`] is one worker's claim → translate → push → record cycle. Tests and one-shot
//!   runs step it with [`Engine::run_once`] and [`Engine::run`]. The worker's scheduler — the
//!   one a deployment runs, which claims ahead, keeps every push slot busy and records in group
//!   commits — is the apalis runtime of `sync_worker::Worker`.
//! - [`entity`] has SeaORM entities of the framework's tables, for reading them; the framework's
//!   migrations are in the `sync-migrations` crate, for the application's migrator.
//!
//! The guarantees — no lost change, coalescing, single flight, creates that survive crashes, no
//! added deadlocks — are listed with the tests that prove them in the repository's
//! `GUARANTEES.md`.
//!
#![doc = include_str!("../DERIVE.md")]

mod batch;
mod clock;
mod connect;
mod decide;
mod digest;
mod engine;
pub mod entity;
mod error;
mod hooks;
#[cfg(feature = "http")]
mod http;
mod key;
mod limits;
pub mod ops;
mod panic;
mod queue;
mod references;
mod refind;
mod remote_id;
pub mod retry;
mod schema;
mod sleepers;
pub mod source;
mod state;
mod store;
mod syncable;
mod syncer;
pub mod table;
mod touch_log;
pub mod verify;
#[doc(hidden)]
pub mod wake;

#[doc(inline)]
pub use clock::{Clock, ManualClock, SystemClock, now_ms};
#[doc(inline)]
pub use connect::{begin_write, connect, is_transient_conflict, redact_url, write_transaction};
#[doc(inline)]
pub use engine::{Engine, EngineConfig, Operation, Outcome, PassReport, RunOptions};
#[doc(inline)]
pub use error::{Disposition, Error, Result};
#[cfg(feature = "http")]
#[doc(inline)]
pub use http::{
    CreateMode, HttpRemote, HttpRemoteBuilder, Listing, Pagination, Secret, UpdateMethod,
};
#[doc(inline)]
pub use key::RootKey;
#[doc(inline)]
pub use limits::Limits;
#[doc(inline)]
pub use remote_id::RemoteId;
#[doc(inline)]
pub use schema::check_schema;
#[doc(inline)]
pub use state::{GroupState, UnknownState};
#[doc(inline)]
pub use store::{
    mark_deleted, mark_deleted_matching, sync, sync_as, touch, touch_many, touch_matching,
};
#[doc(inline)]
pub use syncable::{BoxFuture, ColumnOf, Link, Membership, Syncable};
#[doc(inline)]
pub use syncer::{
    BulkItem, ClaimedGroup, PendingCreate, PushContext, Registry, RootSource, Syncer,
    TranslateContext, WhenMissing,
};
#[doc(inline)]
pub use table::TableSink;
#[doc(inline)]
pub use touch_log::{apply_touches, settle_touches};

/// `#[derive(Syncable)]`: see the crate documentation.
pub use sync_derive::Syncable;

#[doc(inline)]
pub use sync_derive::hooks;

/// Re-exported for [`Syncer`] impls (`#[sync_core::async_trait]`).
pub use async_trait::async_trait;

/// Paths used by the code `#[derive(Syncable)]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
    pub use sea_orm;

    pub use crate::{BoxFuture, ColumnOf, Link, Membership, RootKey, Syncable};

    /// The framework's hooks, which `#[sync_core::hooks]` calls.
    pub mod hooks {
        pub use crate::hooks::{after_delete, after_save, before_delete, before_save};
    }

    /// Implemented by `#[sync_core::hooks]` for the `ActiveModel` whose impl it is on.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no sync hooks: its `impl ActiveModelBehavior` lacks `#[sync_core::hooks]`",
        label = "this model derives `Syncable`, but saving it would mark no sync group dirty",
        note = "write `#[sync_core::hooks]` on the line above `impl ActiveModelBehavior for ActiveModel`, \
                in place of `#[async_trait]`; hooks of your own stay inside it and run first"
    )]
    pub trait HooksInstalled {}

    /// Compile-time check, written by the derive, that the model's hooks are installed.
    pub fn hooks_installed<A: HooksInstalled>() {}

    /// The body of an application's own hook, with its output type spelt out so that `?`
    /// inside it converts into that type.
    pub fn user_hook<T, F: core::future::Future<Output = T>>(body: F) -> F {
        body
    }

    /// One `#[sync(...)]` attribute, as the derive writes it.
    pub const fn membership<C: Copy + 'static>(
        syncer: &'static str,
        watch: &'static [C],
        link: Link<C>,
        register_on_insert: bool,
        soft_delete: Option<C>,
    ) -> Membership<C> {
        Membership::new(syncer, watch, link, register_on_insert, soft_delete)
    }

    /// A syncer name a model declares, collected from every model linked into the program, so
    /// that a worker can check its registry against them at start.
    #[derive(Debug)]
    pub struct DeclaredSyncer {
        /// The name in the model's `#[sync(syncer = ...)]`.
        pub syncer: &'static str,
        /// The model, as `module::path::Model`.
        pub model: &'static str,
    }

    inventory::collect!(DeclaredSyncer);

    /// Column types that can hold a root's key: integers, strings and UUIDs, optionally nullable.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot hold a root key",
        label = "`root = ...` must name a column of an integer, string or UUID type (or an `Option` of one)"
    )]
    pub trait KeyColumn {}

    macro_rules! key_columns {
        ($($ty:ty),*) => {$(
            impl KeyColumn for $ty {}
            impl KeyColumn for Option<$ty> {}
        )*};
    }
    key_columns!(
        i8,
        i16,
        i32,
        i64,
        u8,
        u16,
        u32,
        u64,
        String,
        char,
        sea_orm::prelude::Uuid
    );

    /// Compile-time check that a `root = ...` column can hold a key.
    pub const fn assert_key_column<T: KeyColumn + ?Sized>() {}

    pub use crate::refind::{DependentRoots, FindRoots, FoundRoots, find_roots, table_of};

    /// Normalises what a `root_fn` returns.
    pub fn into_root<K: Into<RootKey>>(
        found: Result<Option<K>, sea_orm::DbErr>,
    ) -> Result<Option<RootKey>, sea_orm::DbErr> {
        found.map(|key| key.map(Into::into))
    }
}

/// What `sync-worker` (the worker runtime, its recorder and listener) and the repository's own
/// benchmarks and crash tests need from the engine's inside. Not public API: it changes without
/// notice.
#[doc(hidden)]
pub mod __worker {
    use std::time::Duration;

    pub use crate::digest::digest;
    pub use crate::engine::{Attempt, PassPhases, PreparedGroup, Recorded};
    pub use crate::limits::record_health;
    pub use crate::queue::{ClaimRequest, Synced, claim as claim_groups, due_select};

    use crate::{ClaimedGroup, Engine, Outcome, Result};

    /// `engine`, telling `observer` about every recorded attempt.
    pub fn observed(
        engine: Engine,
        observer: impl Fn(&str, Outcome, Duration) + Send + Sync + 'static,
    ) -> Engine {
        engine.with_observer(std::sync::Arc::new(observer))
    }

    /// Applies the touch log, then claims up to `limit` due groups.
    pub async fn claim(engine: &Engine, limit: u32) -> Result<Vec<ClaimedGroup>> {
        engine.claim(limit).await
    }

    /// Claims, translates in batches and records the creates of up to `limit` due groups.
    pub async fn claim_prepared(engine: &Engine, limit: u32) -> Result<Vec<PreparedGroup>> {
        engine.claim_prepared(limit).await
    }

    /// [`claim_prepared`], for a worker that sleeps when nothing is due: with nothing due it
    /// marks itself asleep for `ttl` (on PostgreSQL the application's commits then notify) and
    /// looks once more; with work found while asleep it marks itself awake. `asleep` says
    /// whether it was marked asleep before; the answer says whether it is now.
    pub async fn claim_or_sleep(
        engine: &Engine,
        limit: u32,
        asleep: bool,
        ttl: Duration,
    ) -> Result<(Vec<PreparedGroup>, bool)> {
        engine.claim_or_sleep(limit, asleep, ttl).await
    }

    /// Marks the worker awake (at shutdown).
    pub async fn wake_up(engine: &Engine) -> Result<()> {
        crate::sleepers::disarm(engine.db(), &engine.config().worker_id).await
    }

    /// Translates and pushes one claimed group.
    pub async fn process(engine: &Engine, group: ClaimedGroup, full: bool) -> Attempt {
        engine.process(group, full).await
    }

    /// Pushes one prepared group.
    pub async fn process_prepared(engine: &Engine, prepared: PreparedGroup, full: bool) -> Attempt {
        engine.process_prepared(prepared, full).await
    }

    /// Records attempts, in one transaction.
    pub async fn record(engine: &Engine, attempts: &[Attempt]) -> Result<Vec<Recorded>> {
        engine.record(attempts).await
    }

    /// Gives back claims this worker will not work on.
    pub async fn release(engine: &Engine, ids: &[i64]) -> Result<u64> {
        engine.release(ids).await
    }
}
