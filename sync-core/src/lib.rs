//! Keep other systems in step with a SeaORM application's own data.
//!
//! See the README for the overview. This crate holds the runtime library: the [`Syncable`]
//! trait and its derive, the hooks that mark sync groups dirty in the same transaction as the
//! application's write, and the helpers for writes that run no hooks.
#![doc = include_str!("../DERIVE.md")]

mod batch;
mod clock;
mod connect;
mod decide;
mod digest;
pub mod engine;
pub mod entity;
mod error;
pub mod hooks;
mod http;
mod key;
pub mod limits;
pub mod ops;
pub mod queue;
mod remote_id;
pub mod retry;
mod schema;
mod state;
mod store;
mod syncable;
mod syncer;
pub mod touch_log;
pub mod wake;

#[doc(inline)]
pub use clock::{Clock, ManualClock, SystemClock, now_ms};
#[doc(inline)]
pub use connect::{begin_write, connect, is_transient_conflict, redact_url, write_transaction};
#[doc(inline)]
pub use digest::digest;
#[doc(inline)]
pub use engine::{Engine, EngineConfig, Operation, Outcome, PassPhases, PassReport, PreparedGroup};
#[doc(inline)]
pub use error::{Disposition, Error, Result};
#[doc(inline)]
pub use http::{BulkItem, CreateMode, HttpRemote, HttpRemoteBuilder, Secret, UpdateMethod};
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
    ClaimedGroup, PendingCreate, PushContext, Registry, RootSource, Syncer, TranslateContext,
    WhenMissing,
};
#[doc(inline)]
pub use touch_log::apply_touches;

/// `#[derive(Syncable)]`: see the crate documentation.
pub use sync_derive::Syncable;

/// Re-exported for hand-written `ActiveModelBehavior` impls (`#[sync_core::async_trait]`).
pub use async_trait::async_trait;

/// Paths used by the code `#[derive(Syncable)]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use sea_orm;

    use crate::RootKey;

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

    /// Normalises what a `root_fn` returns.
    pub fn into_root<K: Into<RootKey>>(
        found: Result<Option<K>, sea_orm::DbErr>,
    ) -> Result<Option<RootKey>, sea_orm::DbErr> {
        found.map(|key| key.map(Into::into))
    }
}
