//! The inbound side: [`Source`]s pull the remote's changes into the application's own tables.
//!
//! A source is the inbound counterpart of a [`Syncer`](crate::Syncer): it fetches pages of
//! changed records from the remote, starting at a stored cursor, and applies each record through
//! the application's SeaORM models inside a transaction the framework gives it, so the
//! application's hooks and validations run and other syncers' groups get dirty as with any write.
//!
//! [`run_source`] is one run. What it promises:
//!
//! - **Atomic progress.** A page's applied records, their digests and the cursor past them commit
//!   in one transaction; a run that dies anywhere resumes at the last committed cursor, and what
//!   it re-reads is skipped by digest.
//! - **Nothing skipped twice, nothing applied twice.** A record whose data and delete flag equal
//!   the version last applied for its remote id is skipped; so is one older (by the remote's
//!   modification time) than the version applied.
//! - **No gummed-up works.** A page is applied at once in its transaction; when a record fails,
//!   the transaction is rolled back and the page applied again in a new one, record by record,
//!   each under a savepoint. One whose apply fails is quarantined in `sync_inbound` with its
//!   payload and error, retried with backoff after the pages of later runs, revived at once when
//!   the remote sends a new version of it, and never holds the cursor or the page's other
//!   records back.
//! - **Single flight.** A lease in `sync_sources` lets one worker at a time run a source; a
//!   worker that lost its lease (it stalled past it) commits nothing more.
//! - **Deletes.** A record with `deleted` set is handed to [`Source::apply`] like any other, which
//!   deletes or soft-deletes the local row. A full run that lists the whole collection to its end
//!   then hands a tombstone to `apply` for every record applied before that the listing no longer
//!   had; a full run that stops early (an error, a lost lease) acts on none.
//!
//! Where the digests live: by default one `sync_inbound` row per record, which also keeps the
//! data last applied (what [`ApplyContext::previous`] returns and what stops an outbound
//! syncer's echo). A source with a [`DigestColumn`] keeps them in the application's own table
//! instead, written by its apply with the row: a page then writes no row of the framework's
//! beside the application's (see [`Source::digest_column`]).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde_json::Value;

#[cfg(feature = "http")]
mod http;
mod run;

#[cfg(feature = "http")]
pub use crate::http::{Listing, Pagination};
#[cfg(feature = "http")]
pub use http::{HttpFeed, HttpFeedBuilder, Since};
pub use run::{
    PlannedRecord, RunTimes, SourcePlan, SourceReport, SourceRunOptions, SourceStatus, is_due,
    plan_source, quarantined, request_full_run, request_run, run_source, source_status,
};

use crate::retry::ExponentialBackoff;
use crate::store::statement;
use crate::{Error, RemoteId, Result, RootKey};
use sea_orm::{ColumnTrait, ColumnType, EntityName, EntityTrait, IdenStatic};

/// One record as the remote sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    /// The remote's id of the record.
    pub remote_id: RemoteId,
    /// The record's data (for a tombstone, whatever the remote sent, often `null`).
    pub data: Value,
    /// The remote says the record was deleted.
    pub deleted: bool,
    /// The remote's modification time of this version, when it has one.
    pub modified_at: Option<DateTime<Utc>>,
}

impl InboundRecord {
    /// A live record.
    pub fn new(remote_id: impl Into<RemoteId>, data: Value) -> Self {
        InboundRecord {
            remote_id: remote_id.into(),
            data,
            deleted: false,
            modified_at: None,
        }
    }

    /// A tombstone: the remote deleted the record.
    pub fn tombstone(remote_id: impl Into<RemoteId>) -> Self {
        InboundRecord {
            remote_id: remote_id.into(),
            data: Value::Null,
            deleted: true,
            modified_at: None,
        }
    }

    /// The same record with the remote's modification time.
    pub fn modified_at(mut self, at: DateTime<Utc>) -> Self {
        self.modified_at = Some(at);
        self
    }
}

/// One page of changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The records, in the remote's order.
    pub records: Vec<InboundRecord>,
    /// Where the next fetch starts: stored with this page's records. On the last page of a run
    /// (`more` false), where the *next run* starts. `None` keeps the stored cursor.
    pub cursor: Option<Value>,
    /// Another page follows in this run.
    pub more: bool,
    /// Keys to merge into the source's state (a JSON object; a key set to `null` is removed),
    /// saved with this page's records and cursor.
    pub state: Option<Value>,
}

/// What [`Source::fetch`] is given besides the cursor.
#[derive(Debug)]
pub struct FetchContext<'a> {
    pub(crate) source: &'a str,
    pub(crate) state: &'a Value,
    pub(crate) full: bool,
}

impl<'a> FetchContext<'a> {
    /// The source's name.
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// The source's state as saved with the last page (an object, empty at first).
    pub fn state(&self) -> &'a Value {
        self.state
    }

    /// This run is a full run: it started without a cursor and lists the whole collection.
    pub fn is_full_run(&self) -> bool {
        self.full
    }
}

/// What [`Source::apply`] is given: the transaction to write through, and what the framework
/// knows of the record.
#[derive(Debug)]
pub struct ApplyContext<'a> {
    pub(crate) db: &'a DatabaseTransaction,
    pub(crate) source: &'a str,
    pub(crate) previous: Option<&'a Value>,
    /// The digests the framework computed, by record.
    pub(crate) digests: &'a [(&'a InboundRecord, &'a str)],
    /// Where in `digests` the next record asked for probably is (records are asked for in
    /// order).
    pub(crate) hint: std::sync::atomic::AtomicUsize,
}

impl<'a> ApplyContext<'a> {
    /// The transaction: the page's own while a page is applied at once, a savepoint of it while
    /// records are applied one by one. Write the application's rows through it, with its
    /// models, so that their hooks run. What a failed apply wrote is rolled back.
    pub fn db(&self) -> &'a DatabaseTransaction {
        self.db
    }

    /// The source's name.
    pub fn source(&self) -> &'a str {
        self.source
    }

    /// The data last applied for this remote id, if any. Always `None` for a source with a
    /// [`DigestColumn`] (it keeps no copy of what it applied) and in
    /// [`apply_many`](Source::apply_many).
    pub fn previous(&self) -> Option<&'a Value> {
        self.previous
    }

    /// The digest of `record`'s version (64 hex characters): what a source with a
    /// [`DigestColumn`] writes into that column with the row it applies (`None` there for a
    /// tombstone that deletes the row).
    pub fn digest(&self, record: &InboundRecord) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.digests.len();
        let start = self.hint.load(Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            let (r, digest) = self.digests[i];
            if std::ptr::eq(r, record) {
                self.hint.store(i + 1, Relaxed);
                return digest.to_owned();
            }
        }
        record_digest(self.source, record)
    }

    /// The root key of the local row the outbound syncer `syncer` links to `remote_id` (the
    /// group that pushed it, or one [`link`](ApplyContext::link)ed before), if any.
    pub async fn linked_key(&self, syncer: &str, remote_id: &str) -> Result<Option<RootKey>> {
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT root_key FROM sync_groups WHERE syncer = ? AND remote_id = ? \
                 ORDER BY id LIMIT 1",
                vec![syncer.into(), remote_id.into()],
            ))
            .await
            .map_err(Error::db_while(format!(
                "looking up the `{syncer}` group of remote id `{remote_id}`"
            )))?;
        Ok(match row {
            Some(row) => Some(RootKey::from(row.try_get::<String>("", "root_key")?)),
            None => None,
        })
    }

    /// Records that the local root `key` of syncer `syncer` *is* the remote record `remote_id`
    /// (typically right after the apply created the row): the group holds the remote id, so the
    /// outbound side updates that record instead of creating another. Commits with the apply.
    pub async fn link(
        &self,
        syncer: &str,
        key: impl Into<RootKey>,
        remote_id: &RemoteId,
    ) -> Result<()> {
        let key = key.into();
        crate::store::link_group(self.db, syncer, &key, remote_id).await
    }
}

/// The digest of a record's version: its data and delete flag (not its modification time: the
/// same data sent again with a newer time is not a change).
pub(crate) fn record_digest(source: &str, record: &InboundRecord) -> String {
    crate::digest::digest_record(source, &record.data, record.deleted)
}

/// How a remote id is compared with the application's column that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdType {
    Integer,
    Text,
}

/// The column of the application's own table that holds the digest of the record each row was
/// applied from, beside the column holding the record's remote id: where a source declares it
/// (see [`Source::digest_column`]), the framework reads the page's digests from that table and
/// writes no `sync_inbound` row for a record applied, so that a page costs the application's
/// own write and little more.
///
/// ```ignore
/// fn digest_column(&self) -> Option<DigestColumn> {
///     Some(DigestColumn::new(price::Entity, price::Column::ErpId, price::Column::ErpDigest))
/// }
/// ```
///
/// The remote-id column holds this source's ids only (unique, e.g. a unique index), as text or
/// an integer; the digest column is a nullable string of at least 64 characters, which the
/// source's `apply` (or `apply_many`) sets to [`ApplyContext::digest`] with every row it
/// writes. A record whose apply fails is quarantined in `sync_inbound` as with any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestColumn {
    pub(crate) table: String,
    pub(crate) remote_id: String,
    pub(crate) digest: String,
    pub(crate) id_type: IdType,
}

impl DigestColumn {
    /// The digests of `entity`'s rows in column `digest`, their remote ids in `remote_id`.
    pub fn new<E, R, D>(entity: E, remote_id: R, digest: D) -> Self
    where
        E: EntityTrait + EntityName,
        R: ColumnTrait + IdenStatic,
        D: ColumnTrait + IdenStatic,
    {
        let id_type = match remote_id.def().get_column_type() {
            ColumnType::TinyInteger
            | ColumnType::SmallInteger
            | ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::TinyUnsigned
            | ColumnType::SmallUnsigned
            | ColumnType::Unsigned
            | ColumnType::BigUnsigned => IdType::Integer,
            _ => IdType::Text,
        };
        DigestColumn {
            table: entity.table_name().to_owned(),
            remote_id: remote_id.as_str().to_owned(),
            digest: digest.as_str().to_owned(),
            id_type,
        }
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The inbound counterpart of a [`Syncer`](crate::Syncer): how to fetch the remote's changes,
/// and how to apply one record to the local rows.
///
/// Most sources return an [`HttpFeed`] from [`feed`](Source::feed) (a plain REST list endpoint
/// with change queries and pagination) and implement only [`apply`](Source::apply).
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// The stable name, e.g. `erp.products`. Stored in `sync_sources` and `sync_inbound`:
    /// renaming it starts over from no cursor.
    fn name(&self) -> &str;

    /// How often a worker runs the source (default 60 s). Run now, Full run and webhooks run it
    /// at once.
    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// When a quarantined record is applied again (default: 1 s doubling up to 1 hour).
    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBackoff::default()
    }

    /// At most this many pages commit in one transaction (default 8; 1 commits each page by
    /// itself). A page joins the transaction of the page before only when it has arrived by the
    /// time that page is applied, so a transaction never waits on the remote; fewer commits
    /// when the remote is faster than the apply.
    fn pages_per_commit(&self) -> usize {
        8
    }

    /// No more pages join a transaction this long after it opened (default 20 ms): until it
    /// commits it holds the rows it wrote (on SQLite, the database's write lock), which the
    /// application's own writers then wait for.
    fn commit_within(&self) -> Duration {
        Duration::from_millis(20)
    }

    /// Where the application's own table keeps each applied record's digest, if it does
    /// (default: `None`, a `sync_inbound` row per record). With one, a page's records are
    /// skipped or applied by the digests read from that table, and nothing of the framework's
    /// is written for a record applied: the source's apply writes [`ApplyContext::digest`]
    /// into the column with the row. What it gives up: [`ApplyContext::previous`] is `None`,
    /// a version older than the one applied (by modification time) is applied again rather
    /// than skipped, and no outbound syncer may be [`mirrored_by`](crate::Syncer::mirrored_by)
    /// this source (the worker refuses to start: nothing records what to leave unechoed). A
    /// full run marks each listed record in `sync_inbound` and deletes the marks when it ends.
    /// A run deletes the source's rows of records applied before it declared a column.
    fn digest_column(&self) -> Option<DigestColumn> {
        None
    }

    /// The built-in REST feed, if the source uses one.
    #[cfg(feature = "http")]
    fn feed(&self) -> Option<&HttpFeed> {
        None
    }

    /// Fetches one page of changes after `cursor` (`None`: from the beginning, as on a first or
    /// full run). The default asks the [`feed`](Source::feed).
    ///
    /// A run asks for the next page while the previous one is applied, with the cursor and
    /// state that page moved to: a fetch must not depend on what `apply` writes.
    async fn fetch(&self, cx: &FetchContext<'_>, cursor: Option<&Value>) -> Result<Page> {
        #[cfg(feature = "http")]
        if let Some(feed) = self.feed() {
            return feed.fetch(cx, cursor).await;
        }
        let _ = cursor;
        Err(Error::Config(format!(
            "source `{}` implements neither `fetch` nor `feed`; return an `HttpFeed` from `feed` \
             or implement `fetch`",
            cx.source()
        )))
    }

    /// Applies a whole page at once, e.g. with one upsert statement, or returns `None` (the
    /// default) to have each record applied with [`apply`](Source::apply). `cx.previous()` is
    /// `None` here. On an error (or a panic) the framework rolls back what this wrote and applies
    /// the records one by one with `apply`, so that only the failing ones are quarantined.
    ///
    /// Writes that bypass the models' hooks (`insert_many`, raw SQL) mark no sync group dirty:
    /// call [`touch_matching`](crate::touch_matching) or [`touch_many`](crate::touch_many)
    /// here when other syncers should hear of them.
    async fn apply_many(
        &self,
        cx: &ApplyContext<'_>,
        records: &[&InboundRecord],
    ) -> Option<Result<()>> {
        let _ = (cx, records);
        None
    }

    /// Applies one record (or tombstone, `record.deleted`) to the local rows through
    /// `cx.db()`. An error quarantines the record: it is retried with backoff and shown to
    /// operators, and the other records go on.
    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()>;
}

/// The sources a worker runs, by name.
#[derive(Default, Clone)]
pub struct Sources {
    by_name: BTreeMap<String, std::sync::Arc<dyn Source>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Sources {
    /// No sources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source. Fails on an empty or over-long name, or a name already taken.
    pub fn register(&mut self, source: impl Source) -> Result<&mut Self> {
        let name = source.name().to_owned();
        if name.trim().is_empty() || name.len() > 100 {
            return Err(Error::Config(format!(
                "source name `{name}` must be 1 to 100 characters"
            )));
        }
        if self.by_name.contains_key(&name) {
            return Err(Error::Config(format!(
                "two sources are named `{name}`; names must be unique"
            )));
        }
        self.by_name.insert(name, std::sync::Arc::new(source));
        Ok(self)
    }

    /// The source named `name`.
    pub fn get(&self, name: &str) -> Option<&std::sync::Arc<dyn Source>> {
        self.by_name.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Every source, by name.
    pub fn iter(&self) -> impl Iterator<Item = &std::sync::Arc<dyn Source>> {
        self.by_name.values()
    }

    /// No source registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Fails, naming both, when a syncer of `registry` is
    /// [`mirrored_by`](crate::Syncer::mirrored_by) a source that keeps its digests in the
    /// application's table ([`Source::digest_column`]): such a source keeps no copy of what it
    /// applied, which is what tells an echo from a change.
    pub fn check_mirrors(&self, registry: &crate::Registry) -> Result<()> {
        for name in registry.names() {
            let Some(syncer) = registry.get(&name) else {
                continue;
            };
            let Some(mirrored) = syncer.mirrored_by() else {
                continue;
            };
            if let Some(source) = self.get(mirrored)
                && let Some(column) = source.digest_column()
            {
                return Err(Error::Config(format!(
                    "syncer `{name}` is mirrored by source `{mirrored}`, which keeps its digests \
                     in `{}`.`{}` and so no copy of what it applied to tell an echo from a \
                     change; drop the source's `digest_column` or the syncer's `mirrored_by`",
                    column.table, column.digest
                )));
            }
        }
        Ok(())
    }
}

/// Whether `payload` (an outbound syncer's translation) is what `source` last applied from the
/// remote record `remote_id`: every field of the payload equals the record's field of that name.
/// A payload that is not an object is compared whole.
pub(crate) async fn is_echo<C: ConnectionTrait>(
    db: &C,
    source: &str,
    remote_id: &str,
    payload: &Value,
) -> Result<bool> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(
            backend,
            "SELECT payload FROM sync_inbound WHERE source = ? AND remote_id = ? AND state = ? \
             AND deleted = ?",
            vec![
                source.into(),
                remote_id.into(),
                "applied".into(),
                false.into(),
            ],
        ))
        .await
        .map_err(Error::db_while(format!(
            "reading what source `{source}` applied for remote id `{remote_id}`"
        )))?;
    let Some(row) = row else { return Ok(false) };
    let Some(text) = row.try_get::<Option<String>>("", "payload")? else {
        return Ok(false);
    };
    let Ok(applied) = serde_json::from_str::<Value>(&text) else {
        return Ok(false);
    };
    Ok(match (payload, &applied) {
        (Value::Object(fields), Value::Object(record)) => fields
            .iter()
            .all(|(name, value)| record.get(name) == Some(value)),
        _ => payload == &applied,
    })
}
