//! What operators see and steer: status per syncer, failed and dead groups, retries, full runs,
//! backfills and dry-run plans. The CLI and the dashboard of `sync-worker` are built on these.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Iterable, PrimaryKeyToColumn,
    QueryFilter, QueryOrder, QuerySelect, Value,
};
use serde::Serialize;
use serde_json::Value as Json;

use crate::digest::digest;
use crate::entity::{sync_attempt, sync_group, sync_run, sync_syncer};
use crate::store::statement;
use crate::syncable::{Link, Syncable};
use crate::{ClaimedGroup, Error, GroupState, Registry, Result, RootKey, TranslateContext};

/// One syncer at a glance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncerStatus {
    /// The syncer.
    pub syncer: String,
    /// Groups by state (`pending`, `synced`, `failed`, `dead`, `deleted`).
    pub groups: BTreeMap<String, i64>,
    /// Groups the workers have work for: `pending` or `failed` (due now or later). Dead groups
    /// are counted under `groups["dead"]`, not here: no worker will push them until a touch or
    /// an operator revives them.
    pub dirty: i64,
    /// How long the oldest of the `dirty` groups has been dirty, in milliseconds.
    pub oldest_dirty_ms: Option<i64>,
    /// When a group of this syncer was last pushed or confirmed (ms since the epoch).
    pub last_success_at: Option<i64>,
    /// Failed attempts in the last hour.
    pub failures_last_hour: i64,
    /// Whether its last run with activity was clean.
    pub healthy: bool,
    /// Paused until this time after a 429, if it is.
    pub paused_until: Option<i64>,
    /// A one-time sync ([`Syncer::create_only`](crate::Syncer::create_only)). The database does
    /// not know: [`status`] leaves it `false`, and callers holding the registry set it.
    pub create_only: bool,
}

/// What a worker's gauges show of one syncer: the groups waiting, failed or dead.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backlog {
    /// The syncer.
    pub syncer: String,
    /// Groups the workers have work for: `pending` or `failed`, as in [`SyncerStatus::dirty`].
    pub dirty: i64,
    /// How long the oldest of the `dirty` groups has been dirty, in milliseconds.
    pub oldest_dirty_ms: Option<i64>,
    /// Groups in state `failed`.
    pub failed: i64,
    /// Groups in state `dead`.
    pub dead: i64,
}

/// The backlog of every syncer that has groups waiting, failed or dead, plus `known` syncers
/// without any, by name. What [`status`] says of the same, read from the groups that are not
/// synced only (on PostgreSQL and SQLite through the index of due groups), where `status`
/// counts every group and reads the last hour of the attempt log: a worker refreshes its
/// gauges with this every few seconds, whatever the size of `sync_groups`.
pub async fn backlog(db: &DatabaseConnection, known: &[String], now: i64) -> Result<Vec<Backlog>> {
    crate::apply_touches(db).await?;
    read_backlog(db, known, now).await
}

/// [`backlog`] with the touch log already applied.
async fn read_backlog(db: &DatabaseConnection, known: &[String], now: i64) -> Result<Vec<Backlog>> {
    let mut all: BTreeMap<String, Backlog> = known
        .iter()
        .map(|name| {
            let entry = Backlog {
                syncer: name.clone(),
                ..Backlog::default()
            };
            (name.clone(), entry)
        })
        .collect();
    let rows = db
        .query_all_raw(statement(
            db.get_database_backend(),
            "SELECT syncer, state, COUNT(*) AS n, MIN(COALESCE(dirty_since, touched_at)) AS since \
             FROM sync_groups WHERE state IN ('pending', 'failed', 'dead') GROUP BY syncer, state",
            vec![],
        ))
        .await
        .map_err(Error::db_while("reading the backlog"))?;
    for row in rows {
        let syncer: String = row.try_get("", "syncer")?;
        let state: String = row.try_get("", "state")?;
        let n: i64 = row.try_get("", "n")?;
        let since: Option<i64> = row.try_get("", "since")?;
        let entry = all.entry(syncer.clone()).or_insert_with(|| Backlog {
            syncer,
            ..Backlog::default()
        });
        match state.as_str() {
            "dead" => entry.dead = n,
            _ => {
                if state == "failed" {
                    entry.failed = n;
                }
                entry.dirty += n;
                if let Some(since) = since {
                    let age = (now - since).max(0);
                    entry.oldest_dirty_ms = Some(entry.oldest_dirty_ms.map_or(age, |a| a.max(age)));
                }
            }
        }
    }
    Ok(all.into_values().collect())
}

/// Status of every syncer that has groups, plus `known` syncers without any.
pub async fn status(
    db: &DatabaseConnection,
    known: &[String],
    now: i64,
) -> Result<Vec<SyncerStatus>> {
    crate::apply_touches(db).await?;
    let backend = db.get_database_backend();
    let mut all: BTreeMap<String, SyncerStatus> = BTreeMap::new();
    let entry = |all: &mut BTreeMap<String, SyncerStatus>, syncer: &str| {
        all.entry(syncer.to_owned())
            .or_insert_with(|| SyncerStatus {
                syncer: syncer.to_owned(),
                groups: BTreeMap::new(),
                dirty: 0,
                oldest_dirty_ms: None,
                last_success_at: None,
                failures_last_hour: 0,
                healthy: true,
                paused_until: None,
                create_only: false,
            })
            .syncer
            .clone()
    };
    for name in known {
        entry(&mut all, name);
    }
    let query = |sql: &str, values: Vec<Value>| statement(backend, sql, values);
    let context = || Error::db_while("reading the sync status");
    for row in db
        .query_all_raw(query(
            "SELECT syncer, state, COUNT(*) AS n, MAX(synced_at) AS synced_at \
             FROM sync_groups GROUP BY syncer, state",
            vec![],
        ))
        .await
        .map_err(context())?
    {
        let syncer: String = row.try_get("", "syncer")?;
        entry(&mut all, &syncer);
        let s = all.get_mut(&syncer).expect("inserted");
        let state: String = row.try_get("", "state")?;
        s.groups.insert(state, row.try_get::<i64>("", "n")?);
        if let Some(at) = row.try_get::<Option<i64>>("", "synced_at")? {
            s.last_success_at = Some(s.last_success_at.map_or(at, |a| a.max(at)));
        }
    }
    // Dirty groups: the same read as the workers' gauges.
    for b in read_backlog(db, &[], now).await? {
        entry(&mut all, &b.syncer);
        let s = all.get_mut(&b.syncer).expect("inserted");
        s.dirty = b.dirty;
        s.oldest_dirty_ms = b.oldest_dirty_ms;
    }
    for row in db
        .query_all_raw(query(
            "SELECT syncer, COUNT(*) AS n FROM sync_attempts WHERE started_at > ? \
             AND outcome IN ('retry', 'failed', 'dead') GROUP BY syncer",
            vec![(now - 3_600_000).into()],
        ))
        .await
        .map_err(context())?
    {
        let syncer: String = row.try_get("", "syncer")?;
        entry(&mut all, &syncer);
        all.get_mut(&syncer).expect("inserted").failures_last_hour = row.try_get("", "n")?;
    }
    for row in sync_syncer::Entity::find()
        .all(db)
        .await
        .map_err(context())?
    {
        if let Some(s) = all.get_mut(&row.syncer) {
            s.healthy = row.healthy;
            s.paused_until = (row.paused_until > now).then_some(row.paused_until);
        }
    }
    Ok(all.into_values().collect())
}

/// How many touches the application logged that no worker has applied to `sync_groups` yet.
/// They are work to do: each makes its group dirty once applied.
pub async fn logged_touches(db: &DatabaseConnection) -> Result<u64> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(
            backend,
            "SELECT COUNT(*) AS n FROM sync_touches",
            vec![],
        ))
        .await
        .map_err(Error::db_while("counting logged touches"))?;
    Ok(row.map_or(Ok(0), |r| r.try_get::<i64>("", "n"))? as u64)
}

/// Failed and dead groups (of one syncer, or all), dead first, then by next attempt.
pub async fn problems(
    db: &DatabaseConnection,
    syncer: Option<&str>,
    limit: u64,
) -> Result<Vec<sync_group::Model>> {
    crate::apply_touches(db).await?;
    let mut select =
        sync_group::Entity::find().filter(sync_group::Column::State.is_in(["failed", "dead"]));
    if let Some(syncer) = syncer {
        select = select.filter(sync_group::Column::Syncer.eq(syncer));
    }
    select
        .order_by_asc(sync_group::Column::State)
        .order_by_asc(sync_group::Column::NextAttemptAt)
        .order_by_asc(sync_group::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(Error::db_while("listing failed groups"))
}

/// One group, by id.
pub async fn group(db: &DatabaseConnection, id: i64) -> Result<Option<sync_group::Model>> {
    sync_group::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(Error::db_while(format!("reading group {id}")))
}

/// The latest attempts of a group, newest first.
pub async fn attempts(
    db: &DatabaseConnection,
    group_id: i64,
    limit: u64,
) -> Result<Vec<sync_attempt::Model>> {
    sync_attempt::Entity::find()
        .filter(sync_attempt::Column::GroupId.eq(group_id))
        .order_by_desc(sync_attempt::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(Error::db_while(format!(
            "reading the attempts of group {group_id}"
        )))
}

/// The latest runs (of one syncer, or all), newest first.
pub async fn runs(
    db: &DatabaseConnection,
    syncer: Option<&str>,
    limit: u64,
) -> Result<Vec<sync_run::Model>> {
    let mut select = sync_run::Entity::find();
    if let Some(syncer) = syncer {
        select = select.filter(sync_run::Column::Syncer.eq(syncer));
    }
    select
        .order_by_desc(sync_run::Column::FinishedAt)
        .limit(limit)
        .all(db)
        .await
        .map_err(Error::db_while("reading sync runs"))
}

/// Which failed or dead groups to retry now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryScope {
    /// One group.
    Group(i64),
    /// Every failed or dead group of a syncer.
    Syncer(String),
    /// Every dead group.
    AllDead,
}

/// Makes failed or dead groups due now, with their attempts reset (the error stays visible until
/// the next attempt). Returns how many.
pub async fn retry(db: &DatabaseConnection, scope: &RetryScope, now: i64) -> Result<u64> {
    crate::apply_touches(db).await?;
    let backend = db.get_database_backend();
    let (filter, value): (&str, Option<Value>) = match scope {
        RetryScope::Group(id) => ("id = ? AND state IN ('failed', 'dead')", Some((*id).into())),
        RetryScope::Syncer(name) => (
            "syncer = ? AND state IN ('failed', 'dead')",
            Some(name.as_str().into()),
        ),
        RetryScope::AllDead => ("state = 'dead'", None),
    };
    let mut values: Vec<Value> = vec![now.into()];
    values.extend(value);
    let sql = format!(
        "UPDATE sync_groups SET attempts = 0, deferrals = 0, next_attempt_at = ?, state = 'pending' WHERE {filter}"
    );
    let done = again_on_conflict(|| async {
        db.execute_raw(statement(backend, &sql, values.clone()))
            .await
            .map_err(Error::db_while("retrying groups"))
            .map(|r| r.rows_affected())
    })
    .await?;
    crate::sleepers::wake_workers(db).await;
    Ok(done)
}

/// Which groups' remote ids to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForgetScope {
    /// One group, whatever its state (a remote record known to be gone).
    Group(i64),
    /// Every failed or dead group (of one syncer, or all) whose last attempt the remote answered
    /// with 404: records the remote lost.
    Missing {
        /// Only this syncer.
        syncer: Option<String>,
    },
}

/// Forgets the remote ids of the groups in `scope`, so that their next push creates the record
/// again: for records the remote lost (deleted behind the framework's back, restored from an
/// old backup). The digest, last payload and any pending create are forgotten too; the groups
/// are due at once with their attempts reset. Closed groups (root deleted) and groups a worker
/// holds a lease on are left alone. Returns how many groups were changed.
pub async fn forget(db: &DatabaseConnection, scope: &ForgetScope, now: i64) -> Result<u64> {
    crate::apply_touches(db).await?;
    let (filter, values): (&str, Vec<Value>) = match scope {
        ForgetScope::Group(id) => ("id = ?", vec![(*id).into()]),
        ForgetScope::Missing { syncer: None } => {
            ("state IN ('failed', 'dead') AND last_status = 404", vec![])
        }
        ForgetScope::Missing { syncer: Some(name) } => (
            "syncer = ? AND state IN ('failed', 'dead') AND last_status = 404",
            vec![name.as_str().into()],
        ),
    };
    let done =
        again_on_conflict(|| make_due(db, Again::CreateAgain, filter, values.clone(), now)).await?;
    crate::sleepers::wake_workers(db).await;
    Ok(done)
}

/// How [`make_due`] makes a group due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// Its digest forgotten: the next push sends the translation even if unchanged.
    PushAgain,
    /// Its remote id forgotten too (and digest, last payload, pending create): the next push
    /// creates the record again.
    CreateAgain,
}

/// Makes the groups matching `filter` (with `values`) due now, with a new version, their
/// attempts reset, as `again` says. Closed groups and groups a worker holds a lease on are left
/// alone. Returns how many groups were changed.
async fn make_due<C: ConnectionTrait>(
    db: &C,
    again: Again,
    filter: &str,
    values: Vec<Value>,
    now: i64,
) -> Result<u64> {
    // A forgotten remote id is flagged (before it is cleared: MariaDB assigns left to right), so
    // that the create that follows touches the groups carrying it.
    let (forget, context) = match again {
        Again::PushAgain => ("", "making groups due again"),
        Again::CreateAgain => (
            "remote_id_forgotten = CASE WHEN remote_id IS NULL THEN remote_id_forgotten ELSE ? END, \
             remote_id = NULL, remote_id_numeric = ?, last_payload = NULL, create_key = NULL, \
             create_payload = NULL, last_status = NULL, ",
            "forgetting remote ids",
        ),
    };
    let mut all: Vec<Value> = Vec::new();
    if again == Again::CreateAgain {
        all.extend([true.into(), false.into()]);
    }
    all.extend([now.into(), now.into(), now.into(), now.into()]);
    all.extend(values);
    let backend = db.get_database_backend();
    Ok(db
        .execute_raw(statement(
            backend,
            &format!(
                "UPDATE sync_groups SET {forget}last_digest = NULL, version = version + 1, \
                 touched_at = ?, dirty_since = COALESCE(dirty_since, ?), attempts = 0, \
                 deferrals = 0, next_attempt_at = ?, state = 'pending' \
                 WHERE state <> 'deleted' AND (lease_until IS NULL OR lease_until < ?) AND {filter}"
            ),
            all,
        ))
        .await
        .map_err(Error::db_while(context))?
        .rows_affected())
}

/// "Run now": makes every failed group of `syncer` due at once (dead ones stay dead; use
/// [`retry`]) and lifts a pause. Returns how many groups were made due.
pub async fn run_now(db: &DatabaseConnection, syncer: &str, now: i64) -> Result<u64> {
    let backend = db.get_database_backend();
    db.execute_raw(statement(
        backend,
        "UPDATE sync_syncers SET paused_until = 0 WHERE syncer = ?",
        vec![syncer.into()],
    ))
    .await
    .map_err(Error::db_while(format!("running syncer `{syncer}` now")))?;
    let done = again_on_conflict(|| async {
        db.execute_raw(statement(
            backend,
            "UPDATE sync_groups SET next_attempt_at = ? WHERE syncer = ? AND state IN ('pending', 'failed') AND next_attempt_at > ?",
            vec![now.into(), syncer.into(), now.into()],
        ))
        .await
        .map_err(Error::db_while(format!("running syncer `{syncer}` now")))
        .map(|r| r.rows_affected())
    })
    .await?;
    crate::sleepers::wake_workers(db).await;
    Ok(done)
}

/// Starts a full run of `syncer`: every group whose root still exists is made dirty with its
/// digest forgotten, so the next pass pushes it even if the remote already holds the payload
/// (after a mapping change, data loss on the remote, or a periodic reconciliation). Returns the
/// number of groups.
pub async fn request_full_run(db: &DatabaseConnection, syncer: &str, now: i64) -> Result<u64> {
    crate::apply_touches(db).await?;
    let backend = db.get_database_backend();
    let done = again_on_conflict(|| async {
        db.execute_raw(statement(
            backend,
            "UPDATE sync_groups SET last_digest = NULL, version = version + 1, touched_at = ?, \
             dirty_since = COALESCE(dirty_since, ?), attempts = 0, deferrals = 0, next_attempt_at = ?, \
             state = 'pending' \
             WHERE syncer = ? AND state <> 'deleted' AND root_deleted = ?",
            vec![now.into(), now.into(), now.into(), syncer.into(), false.into()],
        ))
        .await
        .map_err(Error::db_while(format!("starting a full run of `{syncer}`")))
        .map(|r| r.rows_affected())
    })
    .await?;
    crate::sleepers::wake_workers(db).await;
    Ok(done)
}

/// How many groups (of `syncer`, or all) the workers are still working on: `pending` ones
/// (due, leased, or waiting shortly for a prerequisite), and `failed` ones due now or leased.
/// Failed groups waiting for a later retry are not counted: a command waiting for a run to end
/// stops there and reports them.
pub async fn in_progress(db: &DatabaseConnection, syncer: Option<&str>, now: i64) -> Result<u64> {
    crate::apply_touches(db).await?;
    let backend = db.get_database_backend();
    let mut sql = "SELECT COUNT(*) AS n FROM sync_groups WHERE (state = 'pending' OR \
                   (state = 'failed' AND (next_attempt_at <= ? OR lease_until >= ?)))"
        .to_owned();
    let mut values: Vec<Value> = vec![now.into(), now.into()];
    if let Some(syncer) = syncer {
        sql.push_str(" AND syncer = ?");
        values.push(syncer.into());
    }
    count(db, backend, &sql, values, "counting groups in progress").await
}

/// How many groups (of `syncer`, or all) are `failed` or `dead`.
pub async fn problem_count(db: &DatabaseConnection, syncer: Option<&str>) -> Result<u64> {
    let backend = db.get_database_backend();
    let mut sql =
        "SELECT COUNT(*) AS n FROM sync_groups WHERE state IN ('failed', 'dead')".to_owned();
    let mut values: Vec<Value> = Vec::new();
    if let Some(syncer) = syncer {
        sql.push_str(" AND syncer = ?");
        values.push(syncer.into());
    }
    count(db, backend, &sql, values, "counting failed and dead groups").await
}

async fn count(
    db: &DatabaseConnection,
    backend: sea_orm::DbBackend,
    sql: &str,
    values: Vec<Value>,
    what: &str,
) -> Result<u64> {
    let row = db
        .query_one_raw(statement(backend, sql, values))
        .await
        .map_err(Error::db_while(what.to_owned()))?;
    Ok(row.map_or(Ok(0), |r| r.try_get::<i64>("", "n"))?.max(0) as u64)
}

/// How many groups of `syncer` are still to push (dirty and not dead).
pub async fn remaining(db: &DatabaseConnection, syncer: &str) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    sync_group::Entity::find()
        .filter(sync_group::Column::Syncer.eq(syncer))
        .filter(sync_group::Column::State.is_in(["pending", "failed"]))
        .count(db)
        .await
        .map_err(Error::db_while(format!(
            "counting the groups of `{syncer}` left to push"
        )))
}

/// Registers, for `syncer`, one batch of existing roots of `E` that have no group yet, starting
/// after `after` (the last key of the previous batch, by primary key order). Existing groups
/// are left alone, so a backfill can be stopped and run again. Returns the batch's last key
/// (`None` when there are no more roots) and how many groups were created.
pub async fn backfill_batch<E>(
    db: &DatabaseConnection,
    syncer: &str,
    after: Option<Value>,
    batch: u64,
    now: i64,
) -> Result<(Option<Value>, u64)>
where
    E: EntityTrait,
    E::Model: Syncable,
{
    let membership = <E::Model as Syncable>::MEMBERSHIPS
        .iter()
        .find(|m| m.syncer() == syncer && matches!(m.link(), Link::Root))
        .ok_or_else(|| {
            Error::Config(format!(
                "`{}` is not a root of syncer `{syncer}`",
                crate::store::table_name::<E::Model>()
            ))
        })?;
    let pk = {
        let mut keys = E::PrimaryKey::iter();
        let (Some(pk), None) = (keys.next(), keys.next()) else {
            return Err(Error::Config(
                "backfill needs a single-column primary key".into(),
            ));
        };
        pk.into_column()
    };
    let mut select = E::find().order_by_asc(pk).limit(batch);
    if let Some(after) = after {
        select = select.filter(pk.gt(after));
    }
    let roots = select
        .all(db)
        .await
        .map_err(Error::db_while(format!("reading roots of `{syncer}`")))?;
    let Some(last) = roots.last() else {
        return Ok((None, 0));
    };
    let last = sea_orm::ModelTrait::get(last, pk);
    let mut created = 0;
    for root in &roots {
        if let Some(column) = membership.soft_delete()
            && crate::syncable::is_soft_deleted(&sea_orm::ModelTrait::get(root, column))
        {
            continue;
        }
        let key = crate::store::primary_key(root)?;
        created += crate::store::insert_if_missing(db, syncer, &key, now).await?;
    }
    if created > 0 {
        crate::sleepers::wake_workers(db).await;
    }
    Ok((Some(last), created))
}

/// What the next push of a group would do.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct PlanItem {
    /// The group.
    pub group_id: i64,
    /// Its syncer.
    pub syncer: String,
    /// Its root's key.
    pub root_key: String,
    /// `create`, `update`, `delete`, `skip`, `close` (deleted root never pushed), `wait` (not
    /// ready) or `error`.
    pub action: &'static str,
    /// The payload that would be sent.
    pub payload: Option<Json>,
    /// Why, for `wait` and `error`.
    pub reason: Option<String>,
}

/// A dry run: translates the due groups of `syncer` (every group with `all`) and says what a push
/// would do, without pushing or writing anything. At most `limit` groups.
pub async fn plan(
    db: &DatabaseConnection,
    registry: &Registry,
    syncer: Option<&str>,
    all: bool,
    full: bool,
    limit: u64,
) -> Result<Vec<PlanItem>> {
    crate::apply_touches(db).await?;
    let mut select = sync_group::Entity::find();
    if all {
        // Closed groups (their root deleted and the remote copy gone) have nothing to do.
        select = select.filter(sync_group::Column::State.ne("deleted"));
    } else {
        select = select.filter(sync_group::Column::State.is_in(["pending", "failed"]));
    }
    if let Some(syncer) = syncer {
        select = select.filter(sync_group::Column::Syncer.eq(syncer));
    }
    let rows = select
        .order_by_asc(sync_group::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(Error::db_while("reading groups to plan"))?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(s) = registry.get(&row.syncer) else {
            continue;
        };
        let group = ClaimedGroup::unclaimed(&row);
        let mut item = PlanItem {
            group_id: row.id,
            syncer: row.syncer.clone(),
            root_key: row.root_key.clone(),
            action: "skip",
            payload: None,
            reason: None,
        };
        let translated = if row.root_deleted || row.state() == Ok(GroupState::Deleted) {
            Ok(None)
        } else {
            s.translate(&TranslateContext::new(db, &group)).await
        };
        match translated {
            Ok(None) => {
                item.action = if row.remote_id.is_some() {
                    "delete"
                } else {
                    "close"
                }
            }
            Ok(Some(payload)) => {
                let d = digest(s.name(), s.payload_version(), &payload);
                item.action = match (
                    &row.remote_id,
                    row.last_digest.as_deref() == Some(d.as_str()) && !full,
                ) {
                    (None, _) => "create",
                    (Some(_), true) => "skip",
                    (Some(_), false) if s.create_only() => {
                        item.reason = Some("create-only: created once, never updated".into());
                        "skip"
                    }
                    (Some(_), false) => "update",
                };
                item.payload = Some(payload);
            }
            Err(e @ Error::NotReady { .. }) => {
                item.action = "wait";
                item.reason = Some(e.to_string());
            }
            Err(e) => {
                item.action = "error";
                item.reason = Some(e.to_string());
            }
        }
        items.push(item);
    }
    Ok(items)
}

/// Deletes old attempts and runs: successes older than `keep_ok_ms`, failures older than
/// `keep_failed_ms`. Returns (attempts, runs) deleted.
pub async fn prune(
    db: &DatabaseConnection,
    now: i64,
    keep_ok_ms: i64,
    keep_failed_ms: i64,
) -> Result<(u64, u64)> {
    let backend = db.get_database_backend();
    let context = || Error::db_while("pruning the attempt log");
    let attempts = db
        .execute_raw(statement(
            backend,
            "DELETE FROM sync_attempts WHERE (outcome IN ('ok', 'skipped', 'waiting') AND started_at < ?) OR started_at < ?",
            vec![(now - keep_ok_ms).into(), (now - keep_failed_ms).into()],
        ))
        .await
        .map_err(context())?
        .rows_affected();
    let runs = db
        .execute_raw(statement(
            backend,
            "DELETE FROM sync_runs WHERE (clean = ? AND finished_at < ?) OR finished_at < ?",
            vec![
                true.into(),
                (now - keep_ok_ms).into(),
                (now - keep_failed_ms).into(),
            ],
        ))
        .await
        .map_err(context())?
        .rows_affected();
    Ok((attempts, runs))
}

/// A root key, for messages.
pub fn key_text(value: &Value) -> String {
    RootKey::from_value(value).map_or_else(|| format!("{value:?}"), |k| k.to_string())
}

/// What [`repair`] queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Repaired {
    /// Groups whose remote record differed: pushed again with the current translation.
    pub pushed_again: u64,
    /// Groups whose remote record was missing: their remote id forgotten, created again.
    pub created_again: u64,
}

/// Repairs what a verification found, through the normal queue (the workers push; single
/// flight, rate limits, idempotency and the attempt log all apply): a group whose remote record
/// differs is made dirty with its digest forgotten, so that its next push sends the current
/// translation; a group whose remote record is missing has its remote id forgotten
/// ([`forget`]), so that its next push creates it again. Each repair is written to the attempt
/// log (operation `none`, outcome `repair`), the forgotten remote id with it. Groups a worker
/// holds a lease on, or closed since, are left alone. Unreadable groups are not touched.
pub async fn repair(
    db: &DatabaseConnection,
    report: &crate::verify::VerifyReport,
    now: i64,
) -> Result<Repaired> {
    crate::apply_touches(db).await?;
    let repaired = again_on_conflict(|| repair_once(db, report, now)).await?;
    crate::sleepers::wake_workers(db).await;
    Ok(repaired)
}

/// [`repair`]'s transaction.
async fn repair_once(
    db: &DatabaseConnection,
    report: &crate::verify::VerifyReport,
    now: i64,
) -> Result<Repaired> {
    use crate::verify::Drift;
    let context = || Error::db_while("queueing the repairs");
    // One transaction: each repair is written with its attempt-log entry, or neither is. The
    // report lists the groups in id order, the order every writer of `sync_groups` locks them.
    let txn = crate::begin_write(db).await?;
    let mut repaired = Repaired::default();
    let mut log = Vec::new();
    for g in &report.groups {
        let (again, note) = match &g.drift {
            Drift::Different { fields } => {
                let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
                (
                    Again::PushAgain,
                    format!(
                        "verify: the remote record differed ({}); pushed again",
                        paths.join(", ")
                    ),
                )
            }
            Drift::Missing => (
                Again::CreateAgain,
                format!(
                    "verify: the remote had no record `{}`; remote id forgotten, created again",
                    g.remote_id.as_deref().unwrap_or_default()
                ),
            ),
            _ => continue,
        };
        let done = make_due(&txn, again, "id = ?", vec![g.group_id.into()], now).await?;
        if done == 0 {
            continue;
        }
        match again {
            Again::PushAgain => repaired.pushed_again += done,
            Again::CreateAgain => repaired.created_again += done,
        }
        log.push(crate::queue::AttemptRecord {
            group_id: g.group_id,
            syncer: g.syncer.clone(),
            version: g.version,
            operation: "none",
            outcome: "repair",
            status_code: None,
            error: Some(note),
            duration_ms: 0,
            worker: "verify".into(),
            started_at: now,
        });
    }
    crate::queue::log_attempts(&txn, &log).await?;
    txn.commit().await.map_err(context())?;
    Ok(repaired)
}

/// Runs an operator's write (one statement, or one transaction) again when the database aborts
/// it in favour of a concurrent one ([`crate::is_transient_conflict`]): a bulk update locks the
/// groups it matches in the order of the index it scans, and can meet a worker locking some of
/// them in id order. Up to five attempts, after a short random pause; nothing of an aborted
/// attempt is kept.
async fn again_on_conflict<T, F, Fut>(mut work: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1_u32;
    loop {
        match work().await {
            Err(Error::DatabaseWhile { source, .. } | Error::Database(source))
                if attempt < 5 && crate::is_transient_conflict(&source) =>
            {
                tracing::debug!(error = %source, attempt, "an operator's write was aborted by a concurrent one; running it again");
                let pause = rand::random_range(5..=20_u64) << attempt;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
