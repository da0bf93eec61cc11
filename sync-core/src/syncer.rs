//! The [`Syncer`] trait: how one kind of remote entity is built and pushed.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use serde_json::Value;

#[cfg(feature = "http")]
use crate::HttpRemote;
use crate::entity::sync_group;
use crate::references::Lookups;
use crate::{Error, RemoteId, Result, RootKey, TableSink};

/// One kind of remote entity: how to build its payload from the local rows, and how to push it.
///
/// A syncer is registered with the worker under [`name`](Syncer::name), the same name the models'
/// `#[sync(syncer = "...")]` attributes use. Most syncers implement [`translate`](Syncer::translate)
/// and hand pushing to a built-in remote: the [`HttpRemote`] by returning it from
/// [`remote`](Syncer::remote), or a [`TableSink`] (a table of another database) by returning it
/// from [`table`](Syncer::table). A syncer for a remote that is neither implements
/// [`create`](Syncer::create), [`update`](Syncer::update) and [`delete`](Syncer::delete) itself.
///
/// ```no_run
/// use sync_core::{HttpRemote, Result, Syncer, TranslateContext, async_trait};
/// use serde_json::{Value, json};
///
/// struct ContactSyncer { remote: HttpRemote }
///
/// #[async_trait]
/// impl Syncer for ContactSyncer {
///     fn name(&self) -> &str { "crm.contact" }
///     fn payload_version(&self) -> u32 { 1 }
///     async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
///         let id: i32 = cx.key()?;
///         # let _ = id;
///         // let Some(c) = customer::Entity::find_by_id(id).one(cx.db()).await? else { return Ok(None) };
///         Ok(Some(json!({ "id": id })))
///     }
///     fn remote(&self) -> Option<&HttpRemote> { Some(&self.remote) }
/// }
/// ```
#[async_trait]
pub trait Syncer: Send + Sync + 'static {
    /// The stable name, e.g. `crm.contact`. Stored in `sync_groups.syncer`: renaming it orphans
    /// the existing groups.
    fn name(&self) -> &str;

    /// The version of the mapping. It is part of every payload digest, so bumping it after
    /// changing [`translate`](Syncer::translate) makes every group's next push a real one
    /// instead of a digest skip.
    fn payload_version(&self) -> u32 {
        1
    }

    /// Reads the group's root (and dependents) through `cx.db()` and builds the payload the
    /// remote should hold. `Ok(None)` means the root no longer exists: the remote copy is deleted.
    ///
    /// Return [`Error::NotReady`] (see [`TranslateContext::remote_id_of`]) when a prerequisite
    /// is missing, [`Error::Permanent`] when the data cannot be translated.
    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>>;

    /// Translates several groups at once, in their order. The default translates them one by
    /// one; override it to read the roots of a whole batch in one query (the worker's passes call
    /// it with up to a batch of claimed groups). Each result means what `translate`'s does.
    async fn translate_many(
        &self,
        db: &DatabaseConnection,
        groups: &[ClaimedGroup],
    ) -> Vec<Result<Option<Value>>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            out.push(self.translate(&TranslateContext::new(db, group)).await);
        }
        out
    }

    /// Creates the entity on the remote and returns the id the remote gave it.
    ///
    /// When [`cx.is_repeat()`](PushContext::is_repeat), an earlier attempt sent this very
    /// create (same idempotency key, same payload) and may have reached the remote before its
    /// worker died: a remote that honours the key answers the first result again; one that can
    /// look the record up by its external key should adopt that record. The default does both
    /// through the built-in [`HttpRemote`] (see
    /// [`HttpRemoteBuilder::lookup_field`](crate::HttpRemoteBuilder::lookup_field)), or
    /// upserts the row through the [`table`](Self::table) sink.
    async fn create(&self, cx: &PushContext<'_>, payload: &Value) -> Result<RemoteId> {
        if let Some(table) = self.table() {
            return table.create(payload).await;
        }
        #[cfg(feature = "http")]
        {
            let remote = require_remote(self)?;
            if cx.is_repeat() {
                remote
                    .create_again(payload, cx.external_key(), cx.idempotency_key())
                    .await
            } else {
                remote
                    .create(payload, cx.external_key(), cx.idempotency_key())
                    .await
            }
        }
        #[cfg(not(feature = "http"))]
        {
            let _ = (cx, payload);
            Err(no_remote(self))
        }
    }

    /// Whether a create repeated with different data updates the record the first one made
    /// (the remote upserts by the external key) instead of making another. Then the worker
    /// sends creates without first recording them (see [`PendingCreate`]). The default: `true`
    /// with a [`table`](Self::table) sink, otherwise whether the built-in remote creates with
    /// [`CreateMode::PutByExternalKey`](crate::CreateMode).
    fn creates_upsert(&self) -> bool {
        if self.table().is_some() {
            return true;
        }
        #[cfg(feature = "http")]
        return self
            .remote()
            .is_some_and(|r| r.create_mode() == crate::CreateMode::PutByExternalKey);
        #[cfg(not(feature = "http"))]
        false
    }

    /// The inbound [`Source`](crate::source::Source) that pulls this syncer's remote records
    /// back into the application, if any. Then a record applied from the remote is not pushed
    /// straight back (an echo): when an update's payload equals, field by field, what that
    /// source last applied for the record's remote id, the worker records it as held by the
    /// remote and sends nothing. Changes the application makes afterwards are pushed as usual.
    fn mirrored_by(&self) -> Option<&str> {
        None
    }

    /// What to do when an update answers 404: the remote has lost (or someone deleted) the
    /// record. The default, [`WhenMissing::Fail`], fails the group visibly (retried with
    /// backoff, then dead) so that an operator decides, e.g. with the worker's `forget` command.
    fn when_missing(&self) -> WhenMissing {
        WhenMissing::Fail
    }

    /// Replaces the remote entity `remote_id` with `payload`. When the remote no longer has it,
    /// return an [`Error::Permanent`] with status 404: [`when_missing`](Self::when_missing)
    /// decides what follows (the built-in remotes do).
    async fn update(&self, cx: &PushContext<'_>, remote_id: &str, payload: &Value) -> Result<()> {
        if let Some(table) = self.table() {
            return table.update(remote_id, payload).await;
        }
        #[cfg(feature = "http")]
        return require_remote(self)?
            .update_keyed(
                remote_id,
                Some(cx.external_key()),
                payload,
                cx.idempotency_key(),
            )
            .await;
        #[cfg(not(feature = "http"))]
        {
            let _ = (cx, remote_id, payload);
            Err(no_remote(self))
        }
    }

    /// Deletes the remote entity `remote_id`. Deleting what is already gone succeeds.
    ///
    /// [`Engine::delete_orphans`](crate::Engine::delete_orphans) calls it too, for a record no
    /// group points at: then `cx.group()` has id 0, an empty root key and version 0.
    async fn delete(&self, cx: &PushContext<'_>, remote_id: &str) -> Result<()> {
        if let Some(table) = self.table() {
            return table.delete(remote_id).await;
        }
        #[cfg(feature = "http")]
        return require_remote(self)?
            .delete(remote_id, cx.idempotency_key())
            .await;
        #[cfg(not(feature = "http"))]
        {
            let _ = (cx, remote_id);
            Err(no_remote(self))
        }
    }

    /// How many entities one request may carry when this syncer pushes creates and updates in
    /// batches. `None` pushes one request per entity: the default, unless the remote has a bulk
    /// endpoint ([`HttpRemoteBuilder::bulk`](crate::HttpRemoteBuilder::bulk)) or is a
    /// [`table`](Self::table) sink (its [`batch_size`](crate::table::TableSinkBuilder::batch_size)).
    fn batch_limit(&self) -> Option<usize> {
        if let Some(table) = self.table() {
            return Some(table.batch_size());
        }
        #[cfg(feature = "http")]
        return self.remote().and_then(HttpRemote::bulk_limit);
        #[cfg(not(feature = "http"))]
        None
    }

    /// Creates or updates several entities in one request; called only when
    /// [`batch_limit`](Self::batch_limit) is set, with at most that many items. One result per
    /// item, in order: the entity's remote id. The default uses the remote's bulk endpoint, or
    /// upserts the rows through the [`table`](Self::table) sink.
    async fn push_many(&self, items: &[BulkItem]) -> Vec<Result<RemoteId>> {
        if let Some(table) = self.table() {
            return table.push_many(items).await;
        }
        #[cfg(feature = "http")]
        let remote = require_remote(self);
        #[cfg(not(feature = "http"))]
        let remote: Result<std::convert::Infallible> = Err(no_remote(self));
        match remote {
            #[cfg(feature = "http")]
            Ok(remote) => remote.push_many(items).await,
            #[cfg(not(feature = "http"))]
            Ok(never) => match never {},
            Err(error) => {
                let message = error.to_string();
                items
                    .iter()
                    .map(|_| Err(Error::Config(message.clone())))
                    .collect()
            }
        }
    }

    /// A one-time sync: the entity is created on the remote once and never updated (an invoice
    /// handed to an accounting system, a welcome record in a marketing tool). Later touches are
    /// recorded and push nothing (the attempt log shows them skipped); a full run does not
    /// update either. When the root is deleted, [`delete`](Self::delete) runs as for any syncer:
    /// implement it as a no-op to keep the remote record. Verification still compares the
    /// record with the current translation. Default `false`.
    fn create_only(&self) -> bool {
        false
    }

    /// Reads the remote entity `remote_id` as the remote holds it, for verification
    /// ([`Engine::verify`](crate::Engine::verify)). `Ok(None)`: the remote has no such entity.
    /// The default reads `GET {collection}/{id}` through the built-in remote, or the row through
    /// the [`table`](Self::table) sink (a soft-deleted row is missing); a syncer without either
    /// cannot be verified unless it implements this.
    async fn fetch(&self, remote_id: &str) -> Result<Option<Value>> {
        if let Some(table) = self.table() {
            return table.fetch(remote_id).await;
        }
        #[cfg(feature = "http")]
        return require_remote(self)?.fetch(remote_id).await;
        #[cfg(not(feature = "http"))]
        {
            let _ = remote_id;
            Err(no_remote(self))
        }
    }

    /// Whether [`list`](Syncer::list) can list the remote collection, so that a verification
    /// of the whole syncer also looks for orphans (records no group points at). The default:
    /// whether the built-in remote has a [`listing`](crate::HttpRemoteBuilder::listing).
    fn can_list(&self) -> bool {
        #[cfg(feature = "http")]
        return self.remote().is_some_and(|r| r.listing().is_some());
        #[cfg(not(feature = "http"))]
        false
    }

    /// Reads one page of the remote collection, for finding orphans
    /// ([`Engine::verify`](crate::Engine::verify)): `page` is `None` for the first page, then
    /// the [`next`](crate::verify::RemotePage::next) of the page before, until a page has none.
    /// Called only when [`can_list`](Syncer::can_list); each call takes a token of the
    /// syncer's [`Limits`](crate::Limits). The default reads the built-in remote's listing
    /// ([`HttpRemote::list`]).
    async fn list(&self, page: Option<&Value>) -> Result<crate::verify::RemotePage> {
        #[cfg(feature = "http")]
        return require_remote(self)?.list(page).await;
        #[cfg(not(feature = "http"))]
        {
            let _ = page;
            Err(no_remote(self))
        }
    }

    /// How verification compares a translation with the remote's record (default:
    /// [`Comparison::default`](crate::verify::Comparison)).
    fn comparison(&self) -> crate::verify::Comparison {
        crate::verify::Comparison::default()
    }

    /// Limits on requests to this syncer's remote, shared by all worker processes: a rate with
    /// a burst, and a cap on pushes in flight. `None` (the default): unlimited.
    fn limits(&self) -> Option<crate::Limits> {
        None
    }

    /// The built-in HTTP remote the default `create`, `update` and `delete` use (with the
    /// crate's `http` feature, on by default).
    #[cfg(feature = "http")]
    fn remote(&self) -> Option<&HttpRemote> {
        None
    }

    /// The built-in table sink the defaults of `create`, `update`, `delete`, `push_many`,
    /// `batch_limit`, `creates_upsert` and `fetch` use: this syncer's entities are rows of a
    /// table in another database (see [`TableSink`]). Consulted before
    /// [`remote`](Self::remote).
    fn table(&self) -> Option<&TableSink> {
        None
    }
}

/// One entity of a batch push ([`Syncer::push_many`]).
#[derive(Debug, Clone)]
pub struct BulkItem {
    /// The entity's remote id, `None` to create it.
    pub remote_id: Option<RemoteId>,
    /// The idempotency key of this push.
    pub idempotency_key: String,
    /// The payload.
    pub payload: Value,
}

/// The syncer's built-in remote, or an error saying what to implement instead.
#[cfg(feature = "http")]
fn require_remote<S: Syncer + ?Sized>(syncer: &S) -> Result<&HttpRemote> {
    syncer.remote().ok_or_else(|| no_remote(syncer))
}

fn no_remote<S: Syncer + ?Sized>(syncer: &S) -> Error {
    Error::Config(format!(
        "syncer `{}` returns neither an `HttpRemote` from `remote()` nor a `TableSink` from \
         `table()`, and does not implement `create`, `update` and `delete`",
        syncer.name()
    ))
}

/// A group claimed by a worker: what it read at claim time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimedGroup {
    /// `sync_groups.id`.
    pub id: i64,
    /// The syncer's name.
    pub syncer: String,
    /// The root's key.
    pub root_key: RootKey,
    /// The version read at claim time; completion records exactly this one as synced.
    pub version: i64,
    /// The remote's id, once created.
    pub remote_id: Option<RemoteId>,
    /// A create an earlier attempt sent (or was about to send) and did not record: the next
    /// attempt repeats it exactly.
    pub pending_create: Option<PendingCreate>,
    /// Digest of the last payload the remote accepted.
    pub last_digest: Option<String>,
    /// The root is gone: push a delete.
    pub root_deleted: bool,
    /// Failed attempts so far.
    pub attempts: i32,
    /// "Not ready" answers so far.
    pub deferrals: i32,
    /// The worker holding the lease.
    pub lease_owner: String,
    /// The digest of the references the group's last recorded push carried (see
    /// `sync_references`): a push carrying the same ones writes none.
    pub(crate) references_digest: Option<String>,
    /// The group's remote id was forgotten after other groups may have read it: the completion
    /// that gives it a new one touches them.
    pub(crate) remote_id_forgotten: bool,
}

impl ClaimedGroup {
    /// The group as a row shows it, not claimed by anyone: for inspecting what a syncer would
    /// push (`plan`, consistency checks), never for completing.
    pub fn unclaimed(row: &sync_group::Model) -> Self {
        ClaimedGroup {
            id: row.id,
            syncer: row.syncer.clone(),
            root_key: RootKey::from(row.root_key.clone()),
            version: row.version,
            remote_id: row.remote_id(),
            pending_create: match (&row.create_key, &row.create_payload) {
                (Some(key), Some(payload)) => Some(PendingCreate {
                    key: key.clone(),
                    payload: payload.clone(),
                }),
                _ => None,
            },
            last_digest: row.last_digest.clone(),
            root_deleted: row.root_deleted,
            attempts: row.attempts,
            deferrals: row.deferrals,
            lease_owner: String::new(),
            references_digest: row.references_digest.clone(),
            remote_id_forgotten: row.remote_id_forgotten,
        }
    }

    /// The idempotency key of a push of this group at this version with this payload digest.
    /// A repeated push (after a crash) carries the same key; a changed mapping gets a new one.
    pub fn idempotency_key(&self, digest: &str) -> String {
        let short = digest.get(..16).unwrap_or(digest);
        format!("{}-{}-{short}", self.id, self.version)
    }
}

/// A create that may have reached the remote without its answer being recorded: the
/// idempotency key and the exact body it was sent with.
///
/// Before a worker sends a create, it records these on the group (in the same round trip for a
/// whole claimed batch). If the worker dies before it records the remote's answer, the worker
/// that takes the group over sends the same body with the same key — whatever the data became
/// meanwhile — so that a remote honouring `Idempotency-Key` (even one that refuses a reused key
/// with a different body) answers the first record again instead of creating a second one.
/// The group is then pushed again, as an update, if the data changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingCreate {
    /// The idempotency key the create was sent with.
    pub key: String,
    /// The body, as JSON text.
    pub payload: String,
}

/// What the worker does when an update answers 404: the remote no longer has the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenMissing {
    /// Fail the group (retried with backoff, then dead), with an error saying how to recreate
    /// it: an operator decides (the record may have been deleted on purpose).
    #[default]
    Fail,
    /// Forget the remote id and create the record again on the next attempt.
    Recreate,
}

/// What [`Syncer::translate`] gets: the database and the group to translate.
#[derive(Debug)]
pub struct TranslateContext<'a> {
    db: &'a DatabaseConnection,
    group: &'a ClaimedGroup,
    /// Where [`remote_id_of`](Self::remote_id_of) records what it read, when a worker
    /// translates.
    lookups: Option<Lookups>,
}

impl<'a> TranslateContext<'a> {
    /// A context for `group`. The worker builds these; tests and `plan` may too. A context made
    /// while the worker runs [`Syncer::translate_many`] (as the default one does) records the
    /// remote ids [`remote_id_of`](Self::remote_id_of) reads for the worker.
    pub fn new(db: &'a DatabaseConnection, group: &'a ClaimedGroup) -> Self {
        TranslateContext {
            db,
            group,
            lookups: Lookups::current(),
        }
    }

    /// A context recording the remote ids it reads in `lookups`.
    pub(crate) fn recording(
        db: &'a DatabaseConnection,
        group: &'a ClaimedGroup,
        lookups: &Lookups,
    ) -> Self {
        TranslateContext {
            db,
            group,
            lookups: Some(lookups.clone()),
        }
    }

    /// The application's database.
    pub fn db(&self) -> &'a DatabaseConnection {
        self.db
    }

    /// The group being translated.
    pub fn group(&self) -> &'a ClaimedGroup {
        self.group
    }

    /// The root's key as text.
    pub fn root_key(&self) -> &'a RootKey {
        &self.group.root_key
    }

    /// The root's key parsed into its type, e.g. `let id: i32 = cx.key()?;`.
    pub fn key<T: std::str::FromStr>(&self) -> Result<T> {
        self.group.root_key.parse().map_err(|_| {
            Error::permanent(format!(
                "`{}` group key `{}` is not a valid `{}`",
                self.group.syncer,
                self.group.root_key,
                std::any::type_name::<T>()
            ))
        })
    }

    /// The remote id of another group, e.g. the ERP id of the customer a sales order refers to,
    /// with the JSON type the remote gave it (put it in a payload as it is:
    /// `json!({"customer_id": id})` writes `12` or `"c-12"` as the remote answered).
    /// When that group has no remote id yet, this returns [`Error::NotReady`] naming it, and the
    /// worker retries this group shortly without counting a failure.
    ///
    /// **The id is kept current.** When the worker translates, every id this returns is stored
    /// with the push as the one this group's remote record carries (in `sync_references`, in
    /// the transaction that records the push). When the other group later gets another remote
    /// id — created again after its root was archived and restored, after the remote lost the
    /// record ([`WhenMissing::Recreate`], the worker's `forget`, `verify --repair`), linked by an
    /// inbound source, or answered by the remote — this group is touched, like a write of its
    /// own data: its next translation reads the new id and pushes it (or nothing, when its
    /// payload does not change). A push whose lookup went stale while it was in flight (the
    /// other group was created again meanwhile) leaves this group dirty for one more push.
    /// Only ids read through this method are tracked, and only in the task the worker
    /// translates in (not in tasks a translation spawns); a group whose translations never call
    /// it costs nothing.
    pub async fn remote_id_of(&self, syncer: &str, key: impl Into<RootKey>) -> Result<RemoteId> {
        let key = key.into();
        let found: Option<(Option<String>, bool)> = sync_group::Entity::find()
            .select_only()
            .column(sync_group::Column::RemoteId)
            .column(sync_group::Column::RemoteIdNumeric)
            .filter(sync_group::Column::Syncer.eq(syncer))
            .filter(sync_group::Column::RootKey.eq(key.as_str()))
            .into_tuple()
            .one(self.db)
            .await
            .map_err(Error::db_while(format!(
                "looking up the remote id of `{syncer}` group `{key}`"
            )))?;
        match found {
            Some((Some(id), numeric)) => {
                let id = RemoteId::from_stored(id, numeric);
                if let Some(lookups) = &self.lookups {
                    lookups.record(self.group.id, syncer, key.as_str(), &id);
                }
                Ok(id)
            }
            Some((None, _)) => Err(Error::not_ready(format!(
                "`{syncer}` group `{key}` has no remote id yet"
            ))),
            None => Err(Error::not_ready(format!(
                "`{syncer}` group `{key}` is not registered (call `sync_core::sync` for its root)"
            ))),
        }
    }
}

/// What a push operation gets.
#[derive(Debug)]
pub struct PushContext<'a> {
    group: &'a ClaimedGroup,
    idempotency_key: String,
    external_key: String,
    repeat: bool,
}

impl<'a> PushContext<'a> {
    /// A context for pushing `group` with a payload whose digest is `digest`.
    pub fn new(group: &'a ClaimedGroup, digest: &str) -> Self {
        Self::with_key(group, group.idempotency_key(digest), false)
    }

    /// A context for a create sent with `key`; `repeat` when an earlier attempt sent the same
    /// create and may have reached the remote.
    pub fn with_key(group: &'a ClaimedGroup, key: String, repeat: bool) -> Self {
        PushContext {
            group,
            idempotency_key: key,
            external_key: format!("{}:{}", group.syncer, group.root_key),
            repeat,
        }
    }

    /// Whether this create repeats one an earlier attempt sent and did not record (see
    /// [`PendingCreate`]).
    pub fn is_repeat(&self) -> bool {
        self.repeat
    }

    /// The group being pushed.
    pub fn group(&self) -> &'a ClaimedGroup {
        self.group
    }

    /// Same for every repeat of this push; send it so the remote can drop duplicates.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// A stable key of the local entity (`syncer:root_key`), for remotes that upsert by an
    /// external key: a repeated create then updates instead of duplicating.
    pub fn external_key(&self) -> &str {
        &self.external_key
    }
}

/// Syncers by name, as the worker knows them.
#[derive(Clone, Default)]
pub struct Registry {
    syncers: Vec<Arc<dyn Syncer>>,
    roots: Vec<(String, Arc<dyn RootSource>)>,
}

/// Where `backfill` finds the existing roots of a syncer: a root entity. See
/// [`Registry::roots`].
pub trait RootSource: Send + Sync + 'static {
    /// Registers one batch of roots after `after` that have no group yet; returns the batch's last
    /// key (`None` when done) and how many groups were created.
    fn backfill_batch<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        syncer: &'a str,
        after: Option<sea_orm::Value>,
        batch: u64,
        now: i64,
    ) -> crate::BoxFuture<'a, Result<(Option<sea_orm::Value>, u64)>>;
}

struct EntityRoots<E>(std::marker::PhantomData<fn() -> E>);

impl<E> RootSource for EntityRoots<E>
where
    E: EntityTrait,
    E::Model: crate::Syncable,
{
    fn backfill_batch<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        syncer: &'a str,
        after: Option<sea_orm::Value>,
        batch: u64,
        now: i64,
    ) -> crate::BoxFuture<'a, Result<(Option<sea_orm::Value>, u64)>> {
        Box::pin(crate::ops::backfill_batch::<E>(
            db, syncer, after, batch, now,
        ))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.syncers.iter().map(|s| s.name()))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a syncer. Fails if its name is empty or already registered.
    pub fn register(&mut self, syncer: impl Syncer) -> Result<&mut Self> {
        self.register_arc(Arc::new(syncer))
    }

    /// Adds a shared syncer.
    pub fn register_arc(&mut self, syncer: Arc<dyn Syncer>) -> Result<&mut Self> {
        let name = syncer.name();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_whitespace) {
            return Err(Error::Config(format!(
                "syncer name `{name}` is invalid: use 1 to 100 characters without spaces, e.g. `crm.contact`"
            )));
        }
        if let Some(limits) = syncer.limits() {
            limits.validate(name)?;
        }
        if self.get(name).is_some() {
            return Err(Error::Config(format!(
                "syncer `{name}` is registered twice; each name must be registered once"
            )));
        }
        self.syncers.push(syncer);
        Ok(self)
    }

    /// The syncer named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Syncer>> {
        self.syncers.iter().find(|s| s.name() == name)
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.syncers.iter().map(|s| s.name().to_owned()).collect()
    }

    /// Whether no syncer is registered.
    pub fn is_empty(&self) -> bool {
        self.syncers.is_empty()
    }

    /// Declares `E` as the root entity of every syncer it is a root of (per its
    /// `#[sync(...)]` attributes), so that `backfill` can register its existing rows.
    pub fn roots<E>(&mut self) -> &mut Self
    where
        E: EntityTrait,
        E::Model: crate::Syncable,
    {
        for membership in <E::Model as crate::Syncable>::MEMBERSHIPS
            .iter()
            .filter(|m| m.is_root())
        {
            self.roots.push((
                membership.syncer().to_owned(),
                Arc::new(EntityRoots::<E>(std::marker::PhantomData)),
            ));
        }
        self
    }

    /// The root entity declared for `syncer` with [`roots`](Registry::roots).
    pub fn root_source(&self, syncer: &str) -> Option<&Arc<dyn RootSource>> {
        self.roots
            .iter()
            .find(|(name, _)| name == syncer)
            .map(|(_, source)| source)
    }

    /// Checks the registered syncers against the syncer names that the models linked into this
    /// program declare in their `#[sync(syncer = "...")]` attributes.
    ///
    /// A registered syncer that no model declares can never have a group: that is an error
    /// naming both spellings when they differ only slightly (`shop.catalog-item` registered,
    /// `shop.catalog_item` declared). A declared syncer that is not registered is returned as a
    /// warning: this worker will not push its groups (fine for a worker dedicated to some
    /// syncers, a mistake otherwise). When no model is linked in, there is nothing to check.
    pub fn check_declared(&self) -> Result<Vec<String>> {
        let declared: Vec<&crate::__private::DeclaredSyncer> =
            inventory::iter::<crate::__private::DeclaredSyncer>
                .into_iter()
                .collect();
        if declared.is_empty() {
            return Ok(Vec::new());
        }
        let models_of = |name: &str| {
            let mut models: Vec<&str> = declared
                .iter()
                .filter(|d| d.syncer == name)
                .map(|d| d.model)
                .collect();
            models.sort_unstable();
            models.dedup();
            models.join(", ")
        };
        let mut names: Vec<&str> = declared.iter().map(|d| d.syncer).collect();
        names.sort_unstable();
        names.dedup();
        let registered = self.names();
        let mut errors = Vec::new();
        for name in &registered {
            if names.contains(&name.as_str()) {
                continue;
            }
            let close = names.iter().find(|n| similar(n, name));
            errors.push(match close {
                Some(declared) => format!(
                    "syncer `{name}` is registered, but the models declare `{declared}` ({}), not \
                     `{name}`: the name in `Syncer::name` must equal the one in \
                     `#[sync(syncer = \"...\")]`",
                    models_of(declared)
                ),
                None => format!(
                    "syncer `{name}` is registered, but no model declares it in a \
                     `#[sync(syncer = \"...\")]` attribute (the models declare {})",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if !errors.is_empty() {
            return Err(Error::Config(errors.join("; ")));
        }
        Ok(names
            .iter()
            .filter(|n| !registered.iter().any(|r| r == *n))
            .map(|n| {
                format!(
                    "the models declare syncer `{n}` ({}), but no syncer of that name is \
                     registered: this worker does not push its groups",
                    models_of(n)
                )
            })
            .collect())
    }

    /// A registry with only `syncer` (and its root source), for work on one syncer.
    pub fn only(&self, syncer: &str) -> Option<Registry> {
        let found = self.get(syncer)?.clone();
        Some(Registry {
            syncers: vec![found],
            roots: self
                .roots
                .iter()
                .filter(|(name, _)| name == syncer)
                .cloned()
                .collect(),
        })
    }
}

/// Whether two syncer names differ only in case, `-` for `_`, or by one character.
fn similar(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let (a, b) = (norm(a), norm(b));
    if a == b {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    // One edit apart.
    let (mut i, mut j, mut edits) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        edits += 1;
        if edits > 1 {
            return false;
        }
        match a.len().cmp(&b.len()) {
            std::cmp::Ordering::Greater => i += 1,
            std::cmp::Ordering::Less => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    edits + (a.len() - i) + (b.len() - j) <= 1
}

#[cfg(test)]
mod tests {
    use super::similar;

    #[test]
    fn near_misses_are_similar() {
        assert!(similar("shop.catalog-item", "shop.catalog_item"));
        assert!(similar("crm.Contact", "crm.contact"));
        assert!(similar("crm.contacts", "crm.contact"));
        assert!(!similar("crm.contact", "erp.customer"));
    }
}
