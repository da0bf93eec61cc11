//! The queue side of `sync_groups`: claim with a lease, then complete, fail, defer or release.
//!
//! Every write after the claim is a compare-and-set on `lease_owner`, so a worker whose lease
//! expired (and whose group another worker took over) changes nothing. Completion records the
//! version read at claim time as synced, never "the current one": a touch that lands during the
//! push leaves the group dirty.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, TransactionSession,
    TransactionTrait, Value,
};

use crate::store::statement;
use crate::{ClaimedGroup, Error, GroupState, PendingCreate, RemoteId, Result, RootKey};

const RETURNED: &str = "id, syncer, root_key, version, remote_id, remote_id_numeric, last_digest, \
     root_deleted, attempts, deferrals, create_key, create_payload, references_digest, \
     remote_id_forgotten";

/// What to claim.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// The claiming worker; written to `lease_owner`.
    pub owner: &'a str,
    /// Only groups of these syncers are claimed (the ones this worker can push).
    pub syncers: &'a [String],
    /// At most this many groups.
    pub limit: u32,
    /// Now, in ms since the epoch.
    pub now: i64,
    /// The lease's end, in ms since the epoch.
    pub lease_until: i64,
}

/// Claims up to `limit` due groups: `pending` or `failed`, `next_attempt_at` passed, not leased
/// (or the lease expired), oldest due first. Concurrent claimers never get the same group:
/// PostgreSQL and MariaDB lock with `FOR UPDATE SKIP LOCKED`, SQLite serialises writers.
pub async fn claim<C>(db: &C, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedGroup>>
where
    C: ConnectionTrait + TransactionTrait,
{
    if request.syncers.is_empty() || request.limit == 0 {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let (due, due_values) = due_select(backend, request, "id");
    let context = || format!("claiming groups for worker `{}`", request.owner);

    let rows = match backend {
        DbBackend::Postgres | DbBackend::Sqlite => {
            // PostgreSQL: `id = ANY(ARRAY(…))` keeps the plan on the index even under a generic
            // plan, where `id IN (SELECT … FOR UPDATE SKIP LOCKED)` may scan the whole table.
            let selector = if backend == DbBackend::Postgres {
                format!("id = ANY(ARRAY({due} FOR UPDATE SKIP LOCKED))")
            } else {
                format!("id IN ({due})")
            };
            let sql = format!(
                "UPDATE sync_groups SET lease_owner = ?, lease_until = ? WHERE {selector} RETURNING {RETURNED}"
            );
            let mut values: Vec<Value> = vec![request.owner.into(), request.lease_until.into()];
            values.extend(due_values);
            db.query_all_raw(statement(backend, &sql, values))
                .await
                .map_err(Error::db_while(context()))?
        }
        _ => {
            // MariaDB/MySQL have no `UPDATE … RETURNING`: lock, read, then lease, in one
            // transaction.
            let txn = db.begin().await.map_err(Error::db_while(context()))?;
            let (sql, values) = due_select(backend, request, RETURNED);
            let sql = format!("{sql} FOR UPDATE SKIP LOCKED");
            let rows = txn
                .query_all_raw(statement(backend, &sql, values))
                .await
                .map_err(Error::db_while(context()))?;
            if !rows.is_empty() {
                let ids: Vec<i64> = rows
                    .iter()
                    .map(|r| r.try_get::<i64>("", "id"))
                    .collect::<Result<_, _>>()?;
                let placeholders = vec!["?"; ids.len()].join(", ");
                let mut values: Vec<Value> = vec![request.owner.into(), request.lease_until.into()];
                values.extend(ids.into_iter().map(Value::from));
                txn.execute_raw(statement(
                    backend,
                    &format!("UPDATE sync_groups SET lease_owner = ?, lease_until = ? WHERE id IN ({placeholders})"),
                    values,
                ))
                .await
                .map_err(Error::db_while(context()))?;
            }
            txn.commit().await.map_err(Error::db_while(context()))?;
            rows
        }
    };
    read_all_claimed(&rows, request.owner)
}

/// The due groups of `request`'s syncers, oldest due first: `SELECT {columns} … LIMIT n`, and
/// its values.
///
/// On SQLite the select names its index, `ix_sync_groups_due_order` (the due groups in claim
/// order). SQLite's planner, without statistics and with the times bound as parameters, took
/// `ix_sync_groups_due` instead, and sorted what it read in a temporary B-tree: the select of
/// 200 took 1.3 to 2.4 times as long (0.33–0.74 ms against 0.23–0.34, with 2,000 to 200,000
/// groups due).
///
/// On SQLite the limit is also written into the statement rather than bound. SQLite reads a
/// bound `LIMIT ?` while it compiles the statement, and then marks the statement to be compiled
/// again whenever that parameter is bound anew, which every claim does: each claim was compiled
/// again from its text, 1 % of the worker process's time (`sqlite3Reprepare` under
/// `sqlite3_step`). A worker claims in one size, or a few where syncers cap their pushes in
/// flight, each a statement of its own in the connection's cache.
pub fn due_select(
    backend: DbBackend,
    request: &ClaimRequest<'_>,
    columns: &str,
) -> (String, Vec<Value>) {
    let syncer_list = vec!["?"; request.syncers.len()].join(", ");
    let mut values: Vec<Value> = vec![request.now.into(), request.now.into()];
    values.extend(request.syncers.iter().map(|s| Value::from(s.as_str())));
    let (index, limit) = if backend == DbBackend::Sqlite {
        (
            " INDEXED BY ix_sync_groups_due_order",
            request.limit.to_string(),
        )
    } else {
        values.push(i64::from(request.limit).into());
        ("", "?".to_owned())
    };
    let sql = format!(
        "SELECT {columns} FROM sync_groups{index} \
         WHERE state IN ('pending', 'failed') AND next_attempt_at <= ? \
         AND (lease_until IS NULL OR lease_until < ?) AND syncer IN ({syncer_list}) \
         ORDER BY next_attempt_at, id LIMIT {limit}"
    );
    (sql, values)
}

/// Claimed groups from rows of [`RETURNED`] columns, in id order.
fn read_all_claimed(rows: &[QueryResult], owner: &str) -> Result<Vec<ClaimedGroup>> {
    let mut groups = rows
        .iter()
        .map(|row| read_claimed(row, owner))
        .collect::<Result<Vec<_>>>()?;
    groups.sort_by_key(|g| g.id);
    Ok(groups)
}

/// PostgreSQL: locks up to `limit` due groups in `txn` (`FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers never get the same group) without leasing them yet: [`lease_locked`]
/// leases them, with the creates about to be sent, in the same transaction. One new row version
/// per group where a lease and then the recorded creates would take two.
pub(crate) async fn lock_due(
    txn: &DatabaseTransaction,
    request: &ClaimRequest<'_>,
) -> Result<Vec<ClaimedGroup>> {
    if request.syncers.is_empty() || request.limit == 0 {
        return Ok(Vec::new());
    }
    let (sql, values) = due_select(txn.get_database_backend(), request, RETURNED);
    let rows = txn
        .query_all_raw(statement(
            txn.get_database_backend(),
            &format!("{sql} FOR UPDATE SKIP LOCKED"),
            values,
        ))
        .await
        .map_err(Error::db_while(format!(
            "claiming groups for worker `{}`",
            request.owner
        )))?;
    read_all_claimed(&rows, request.owner)
}

/// Leases the groups [`lock_due`] locked in `txn` to `owner` until `lease_until`, recording
/// the creates among them (`(id, Some((key, body)))`, see [`PendingCreate`]) before any is sent.
/// Fails, leaving the transaction to be rolled back, unless every group was leased.
pub(crate) async fn lease_locked(
    txn: &DatabaseTransaction,
    owner: &str,
    lease_until: i64,
    groups: &[(i64, Option<(&str, &str)>)],
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a str>,
    }
    let backend = txn.get_database_backend();
    let context = || Error::db_while(format!("leasing the groups claimed by worker `{owner}`"));
    let sql = "UPDATE sync_groups SET lease_owner = ?, lease_until = ?, \
               create_key = COALESCE(v.key, sync_groups.create_key), \
               create_payload = COALESCE(v.payload, sync_groups.create_payload) \
               FROM json_to_recordset(CAST(? AS json)) AS v(id bigint, key text, payload text) \
               WHERE sync_groups.id = v.id";
    let chunks = json_chunks(
        backend,
        groups.iter().map(|(id, create)| {
            let size = 24 + create.map_or(0, |(k, p)| 30 + k.len() + p.len());
            let row = Row {
                id: *id,
                key: create.map(|(k, _)| k),
                payload: create.map(|(_, p)| p),
            };
            (row, size)
        }),
    );
    for rows in chunks {
        let document = serde_json::to_string(&rows)
            .map_err(|e| Error::permanent(format!("cannot encode the creates: {e}")))?;
        let values = vec![owner.into(), lease_until.into(), document.into()];
        let leased = txn
            .execute_raw(statement(backend, sql, values))
            .await
            .map_err(context())?
            .rows_affected();
        if leased != rows.len() as u64 {
            return Err(Error::retryable(format!(
                "leased {leased} of the {} groups worker `{owner}` had locked",
                rows.len()
            )));
        }
    }
    Ok(())
}

fn read_claimed(row: &QueryResult, owner: &str) -> Result<ClaimedGroup> {
    let remote_id: Option<String> = row.try_get("", "remote_id")?;
    let numeric: bool = row.try_get("", "remote_id_numeric")?;
    let key: Option<String> = row.try_get("", "create_key")?;
    let payload: Option<String> = row.try_get("", "create_payload")?;
    Ok(ClaimedGroup {
        id: row.try_get("", "id")?,
        syncer: row.try_get("", "syncer")?,
        root_key: RootKey::from(row.try_get::<String>("", "root_key")?),
        version: row.try_get("", "version")?,
        remote_id: remote_id.map(|id| RemoteId::from_stored(id, numeric)),
        pending_create: match (key, payload) {
            (Some(key), Some(payload)) => Some(PendingCreate { key, payload }),
            _ => None,
        },
        last_digest: row.try_get("", "last_digest")?,
        root_deleted: row.try_get("", "root_deleted")?,
        attempts: row.try_get("", "attempts")?,
        deferrals: row.try_get("", "deferrals")?,
        lease_owner: owner.to_owned(),
        references_digest: row.try_get("", "references_digest")?,
        remote_id_forgotten: row.try_get("", "remote_id_forgotten")?,
    })
}

/// How a successful attempt changes what the group knows about the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synced {
    /// The remote accepted this payload (create or update).
    Pushed {
        /// The remote's id for the entity.
        remote_id: RemoteId,
        /// The digest of the payload.
        digest: String,
        /// The payload, as JSON text.
        payload: String,
        /// The payload is the translation of the claimed version. `false` after repeating an
        /// earlier attempt's create with its old body: the group stays due, so that the next
        /// attempt updates the record with the current data.
        caught_up: bool,
    },
    /// The payload's digest equals `last_digest`: nothing was sent.
    Skipped,
    /// The payload is what the syncer's inbound source last applied from the remote record (see
    /// [`Syncer::mirrored_by`](crate::Syncer::mirrored_by)): nothing was sent, and the remote is
    /// known to hold it.
    Echo {
        /// The remote's id for the entity.
        remote_id: RemoteId,
        /// The digest of the payload.
        digest: String,
        /// The payload, as JSON text.
        payload: String,
    },
    /// The remote copy was deleted (or never existed): the group is closed.
    Deleted,
}

/// A successful attempt to record.
#[derive(Debug, Clone)]
pub(crate) struct Completion<'a> {
    /// The group, as claimed.
    pub(crate) group: &'a ClaimedGroup,
    /// What the remote now holds.
    pub(crate) synced: &'a Synced,
    /// The digest of the references (remote ids of other groups) the remote's record now
    /// carries, when it differs from the group's stored one: `Some(None)` when it carries none.
    /// `None` leaves the stored one.
    pub(crate) references: Option<Option<String>>,
    /// The push made a new remote record: `Synced::Pushed` for a group without a remote id
    /// when claimed, whose syncer's creates do not upsert by an external key (which cannot
    /// duplicate).
    pub(crate) created: bool,
}

/// Records a create whose group an inbound source linked to a remote record while the create
/// was in flight ([`crate::source::ApplyContext::link`]), which [`complete`] and
/// [`complete_many`] leave alone: the group keeps the linked remote id, which the inbound side
/// follows, and is due again, so that its next push updates that record with the current data
/// (nothing is known of what it holds). The record the create made (`made`) is a duplicate,
/// whose delete the caller queues ([`queue_duplicate_delete`]). Returns `false` if the lease
/// was lost, or the group has no remote id or `made` itself.
pub(crate) async fn keep_linked_remote_id<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    made: &str,
    now: i64,
) -> Result<bool> {
    let sql = "UPDATE sync_groups SET last_digest = NULL, last_payload = NULL, synced_at = ?, \
               attempts = 0, deferrals = 0, last_error = NULL, last_status = NULL, \
               lease_owner = NULL, lease_until = NULL, next_attempt_at = ?, create_key = NULL, \
               create_payload = NULL, state = 'pending', \
               dirty_since = CASE WHEN dirty_since IS NULL THEN ? ELSE dirty_since END \
               WHERE id = ? AND lease_owner = ? AND remote_id IS NOT NULL AND remote_id <> ?";
    let values = vec![
        now.into(),
        now.into(),
        now.into(),
        group.id.into(),
        group.lease_owner.as_str().into(),
        made.into(),
    ];
    held(db, group, sql, values, "keeping the linked remote id of").await
}

/// Queues the delete of `duplicate`, the record a create made for `group` after an inbound
/// source linked the group to another record (see [`keep_linked_remote_id`]): a group of the
/// same syncer whose root is gone and whose remote id is `duplicate`, root key
/// `duplicate:{group id}:{duplicate}`. A worker pushes its delete (with retries, the attempt
/// log, the syncer's limits) and closes it, as for any deleted root; written in the
/// transaction that records the create, nothing is lost if the worker stops. Returns the key.
pub(crate) async fn queue_duplicate_delete<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    duplicate: &RemoteId,
    now: i64,
) -> Result<RootKey> {
    let key = RootKey::from(format!("duplicate:{}:{}", group.id, duplicate.as_str()));
    crate::store::insert_if_missing(db, &group.syncer, &key, now).await?;
    db.execute_raw(statement(
        db.get_database_backend(),
        "UPDATE sync_groups SET remote_id = ?, remote_id_numeric = ?, root_deleted = ?, \
         state = 'pending', next_attempt_at = ? WHERE syncer = ? AND root_key = ?",
        vec![
            duplicate.as_str().into(),
            duplicate.is_number().into(),
            true.into(),
            now.into(),
            group.syncer.as_str().into(),
            key.as_str().into(),
        ],
    ))
    .await
    .map_err(Error::db_while(format!(
        "queueing the delete of `{}` record `{duplicate}`, a duplicate",
        group.syncer
    )))?;
    Ok(key)
}

/// Records a successful attempt: `synced_version` becomes the version read at claim time, and
/// the group is `synced` (or `deleted`), or stays `pending` if it was touched meanwhile (or the
/// push was a repeated create of older data, see [`Synced::Pushed`]). Any pending create is
/// forgotten: the remote id is known now. A remote id set to `NULL` (the record deleted) is
/// flagged `remote_id_forgotten`; a remote id given clears the flag. Returns `false` if this
/// worker no longer holds the lease (nothing was written).
pub(crate) async fn complete<C: ConnectionTrait>(
    db: &C,
    completion: &Completion<'_>,
    now: i64,
) -> Result<bool> {
    let Completion {
        group,
        synced,
        references,
        ..
    } = completion;
    let (remote_sets, mut values): (&str, Vec<Value>) = match synced {
        Synced::Pushed {
            remote_id,
            digest,
            payload,
            ..
        }
        | Synced::Echo {
            remote_id,
            digest,
            payload,
        } => (
            "remote_id = ?, remote_id_numeric = ?, remote_id_forgotten = ?, last_digest = ?, \
             last_payload = ?, ",
            vec![
                remote_id.as_str().into(),
                remote_id.is_number().into(),
                false.into(),
                digest.as_str().into(),
                payload.as_str().into(),
            ],
        ),
        Synced::Skipped => ("", vec![]),
        // The flag first: MariaDB assigns left to right, so it reads the remote id before it is
        // cleared.
        Synced::Deleted => (
            "remote_id_forgotten = CASE WHEN remote_id IS NULL THEN remote_id_forgotten ELSE ? END, \
             remote_id = NULL, remote_id_numeric = ?, last_digest = NULL, last_payload = NULL, ",
            vec![true.into(), false.into()],
        ),
    };
    let references_set = match references {
        Some(digest) => {
            values.push(digest.clone().into());
            "references_digest = ?, "
        }
        None => "",
    };
    let closed_state = match synced {
        Synced::Deleted => GroupState::Deleted,
        _ => GroupState::Synced,
    };
    let caught_up = !matches!(
        synced,
        Synced::Pushed {
            caught_up: false,
            ..
        }
    );
    let (version_sets, version_values): (&str, Vec<Value>) = if caught_up {
        (
            "synced_version = ?, \
             dirty_since = CASE WHEN version > ? THEN dirty_since ELSE NULL END, \
             state = CASE WHEN version > ? THEN 'pending' ELSE ? END",
            vec![
                group.version.into(),
                group.version.into(),
                group.version.into(),
                closed_state.as_str().into(),
            ],
        )
    } else {
        ("state = 'pending'", vec![])
    };
    // A create's group given another remote id meanwhile is left to `keep_linked_remote_id`.
    let made = match synced {
        Synced::Pushed { remote_id, .. } if completion.created => Some(remote_id.as_str()),
        _ => None,
    };
    let linked = if made.is_some() {
        " AND (remote_id IS NULL OR remote_id = ?)"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE sync_groups SET {remote_sets}{references_set}synced_at = ?, attempts = 0, deferrals = 0, \
         last_error = NULL, last_status = NULL, lease_owner = NULL, lease_until = NULL, \
         next_attempt_at = ?, create_key = NULL, create_payload = NULL, {version_sets} \
         WHERE id = ? AND lease_owner = ?{linked}"
    );
    values.extend([now.into(), now.into()]);
    values.extend(version_values);
    values.extend([group.id.into(), group.lease_owner.as_str().into()]);
    values.extend(made.map(Value::from));
    held(db, group, &sql, values, "completing").await
}

/// Runs a compare-and-set `UPDATE` of one group (its SQL ends with `WHERE id = ? AND
/// lease_owner = ?`); returns whether this worker still held the lease (the row was written).
async fn held<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    sql: &str,
    values: Vec<Value>,
    doing: &str,
) -> Result<bool> {
    let backend = db.get_database_backend();
    let result = db
        .execute_raw(statement(backend, sql, values))
        .await
        .map_err(Error::db_while(format!(
            "{doing} `{}` group `{}`",
            group.syncer, group.root_key
        )))?;
    Ok(result.rows_affected() == 1)
}

/// Records many successful attempts at once (one statement on PostgreSQL and SQLite), with the
/// same meaning as [`complete`] for each. Returns the ids whose lease was still held.
///
/// Unless `exact`, the database only counts the groups it completed (on SQLite each row
/// returned is a message between threads); when some lease was lost, so that the count falls
/// short, it returns `None` and the caller rolls the transaction back and records again,
/// `exact`, to learn which groups were held.
pub(crate) async fn complete_many<C: ConnectionTrait>(
    db: &C,
    done: &[Completion<'_>],
    now: i64,
    exact: bool,
) -> Result<Option<std::collections::HashSet<i64>>> {
    let backend = db.get_database_backend();
    let mut held = std::collections::HashSet::new();
    if done.is_empty() {
        return Ok(Some(held));
    }
    if backend == DbBackend::MySql || done.len() == 1 {
        for completion in done {
            if complete(db, completion, now).await? {
                held.insert(completion.group.id);
            }
        }
        return Ok(Some(held));
    }
    let rows = completion_rows(done);
    let chunks = match backend {
        // One statement per lease owner (one, in practice): the owner is bound once.
        DbBackend::Sqlite => {
            let mut by_owner: Vec<Vec<CompletionRow<'_>>> = Vec::new();
            for (row, _) in rows {
                match by_owner.iter_mut().find(|c| c[0].owner == row.owner) {
                    Some(chunk) => chunk.push(row),
                    None => by_owner.push(vec![row]),
                }
            }
            by_owner
        }
        _ => json_chunks(backend, rows),
    };
    for rows in chunks {
        // The whole batch travels as one JSON parameter: one short statement, prepared once per
        // connection, whatever the batch size (a VALUES list of bound parameters is re-planned
        // for every size). On SQLite, `jsonb_each` (3.45+; sqlx bundles 3.51) hands each row over
        // in binary form, where `json_each` would turn each row into text to parse again, and
        // the row is an array read by position (see `DocumentRow` and `SQLITE_COMPLETIONS`).
        // Written straight to text, without a `serde_json::Value` tree per row.
        let document = json_document(backend, &rows)
            .map_err(|e| Error::permanent(format!("cannot encode the completions: {e}")))?;
        let (sql, values): (String, Vec<Value>) = match backend {
            DbBackend::Postgres => (
                format!("{COMPLETION_SET} FROM {PG_COMPLETIONS} WHERE {COMPLETION_WHERE}"),
                vec![now.into(), now.into(), document.into()],
            ),
            _ => (
                format!("{SQLITE_COMPLETIONS} {COMPLETION_SET} FROM v WHERE {COMPLETION_WHERE}"),
                vec![
                    document.into(),
                    rows[0].owner.into(),
                    now.into(),
                    now.into(),
                ],
            ),
        };
        let context = || Error::db_while("completing groups");
        if !exact {
            let completed = db
                .execute_raw(statement(backend, &sql, values))
                .await
                .map_err(context())?
                .rows_affected();
            if completed != rows.len() as u64 {
                return Ok(None);
            }
            held.extend(rows.iter().map(|r| r.id));
            continue;
        }
        held.extend(updated_ids(db, &sql, values, "completing groups").await?);
    }
    Ok(Some(held))
}

/// Runs `update` (an `UPDATE sync_groups …`) returning the ids of the groups it updated.
async fn updated_ids<C: ConnectionTrait>(
    db: &C,
    update: &str,
    values: Vec<Value>,
    doing: &'static str,
) -> Result<Vec<i64>> {
    let backend = db.get_database_backend();
    db.query_all_raw(statement(
        backend,
        &format!("{update} RETURNING sync_groups.id"),
        values,
    ))
    .await
    .map_err(Error::db_while(doing))?
    .iter()
    .map(|row| Ok(row.try_get::<i64>("", "id")?))
    .collect()
}

// `v.done` is the version the remote now holds the translation of: the claimed one, or
// (after a repeated create of older data) the synced version as it was, so that the group
// stays due.
const COMPLETION_SET: &str = "UPDATE sync_groups SET \
     remote_id = CASE v.kind WHEN 'pushed' THEN v.remote_id WHEN 'deleted' THEN NULL ELSE sync_groups.remote_id END, \
     remote_id_numeric = CASE v.kind WHEN 'pushed' THEN v.numeric WHEN 'deleted' THEN v.numeric ELSE sync_groups.remote_id_numeric END, \
     remote_id_forgotten = CASE v.kind WHEN 'pushed' THEN FALSE WHEN 'deleted' THEN (sync_groups.remote_id IS NOT NULL OR sync_groups.remote_id_forgotten) ELSE sync_groups.remote_id_forgotten END, \
     references_digest = CASE WHEN v.refs_set THEN v.refs ELSE sync_groups.references_digest END, \
     last_digest = CASE v.kind WHEN 'pushed' THEN v.digest WHEN 'deleted' THEN NULL ELSE sync_groups.last_digest END, \
     last_payload = CASE v.kind WHEN 'pushed' THEN v.payload WHEN 'deleted' THEN NULL ELSE sync_groups.last_payload END, \
     synced_version = CASE WHEN v.caught_up THEN v.version ELSE sync_groups.synced_version END, \
     synced_at = ?, attempts = 0, deferrals = 0, last_error = NULL, last_status = NULL, \
     lease_owner = NULL, lease_until = NULL, next_attempt_at = ?, create_key = NULL, create_payload = NULL, \
     dirty_since = CASE WHEN v.caught_up AND sync_groups.version <= v.version THEN NULL ELSE sync_groups.dirty_since END, \
     state = CASE WHEN v.caught_up AND sync_groups.version <= v.version \
     THEN (CASE v.kind WHEN 'deleted' THEN 'deleted' ELSE 'synced' END) ELSE 'pending' END";

/// Which groups of the document [`COMPLETION_SET`] completes: those whose lease is still held,
/// except a create's group that was given a remote id while the create was in flight (an
/// inbound source's link): [`keep_linked_remote_id`] records that one.
const COMPLETION_WHERE: &str = "sync_groups.id = v.id AND sync_groups.lease_owner = v.owner \
     AND (NOT v.created OR sync_groups.remote_id IS NULL OR sync_groups.remote_id = v.remote_id)";

/// The rows of the document that completes `done` (see [`complete_many`]), each with its size.
fn completion_rows<'a>(
    done: &'a [Completion<'a>],
) -> impl Iterator<Item = (CompletionRow<'a>, usize)> + 'a {
    done.iter().map(|completion| {
        let (group, synced) = (completion.group, completion.synced);
        let (kind, remote_id, digest, payload) = match synced {
            Synced::Pushed {
                remote_id,
                digest,
                payload,
                ..
            }
            | Synced::Echo {
                remote_id,
                digest,
                payload,
            } => (
                CompletionKind::Pushed,
                Some(remote_id),
                Some(digest.as_str()),
                Some(payload.as_str()),
            ),
            Synced::Skipped => (CompletionKind::Skipped, None, None, None),
            Synced::Deleted => (CompletionKind::Deleted, None, None, None),
        };
        let row = CompletionRow {
            id: group.id,
            version: group.version,
            kind,
            remote_id: remote_id.map(RemoteId::as_str),
            numeric: remote_id.is_some_and(RemoteId::is_number),
            caught_up: !matches!(
                synced,
                Synced::Pushed {
                    caught_up: false,
                    ..
                }
            ),
            digest,
            payload,
            owner: &group.lease_owner,
            created: completion.created,
            refs_set: completion.references.is_some(),
            refs: completion.references.as_ref().and_then(Option::as_deref),
        };
        let row_size = 160
            + group.lease_owner.len()
            + payload.map_or(0, str::len)
            + remote_id.map_or(0, |id| id.as_str().len())
            + completion.references.as_ref().map_or(0, |_| 60);
        (row, row_size)
    })
}

/// What a completion records: `COMPLETION_SET`'s `v.kind`, and on SQLite the low two bits of a
/// row's flags (see [`SQLITE_COMPLETIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum CompletionKind {
    /// The remote accepted the payload.
    Pushed = 0,
    /// Nothing the remote sees changed.
    Skipped = 1,
    /// The remote record was deleted (or was already gone).
    Deleted = 2,
}

/// One completed group in the document [`complete_many`] binds.
#[derive(serde::Serialize)]
struct CompletionRow<'a> {
    id: i64,
    version: i64,
    kind: CompletionKind,
    remote_id: Option<&'a str>,
    numeric: bool,
    caught_up: bool,
    digest: Option<&'a str>,
    payload: Option<&'a str>,
    owner: &'a str,
    /// The push created the record (the group had no remote id when claimed).
    created: bool,
    /// Set the stored references' digest to `refs` (left out of the document when not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    refs_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    refs: Option<&'a str>,
}

impl DocumentRow for CompletionRow<'_> {
    /// Seven fields, as [`SQLITE_COMPLETIONS`] reads them: the kind and the four flags packed
    /// into one number, the owner bound once for the statement.
    fn positional(&self) -> impl serde::Serialize {
        let flags = self.kind as u8
            | u8::from(self.numeric) << 2
            | u8::from(self.caught_up) << 3
            | u8::from(self.created) << 4
            | u8::from(self.refs_set) << 5;
        (
            self.id,
            self.version,
            flags,
            self.remote_id,
            self.digest,
            self.payload,
            self.refs,
        )
    }
}

/// A failed attempt, as [`fail`] records it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub(crate) struct Failure<'a> {
    /// Failed attempts in a row, this one included.
    pub attempts: i32,
    /// What went wrong, for people.
    pub error: &'a str,
    /// The remote's status code, if it answered.
    pub status: Option<u16>,
    /// When to try again.
    pub next_attempt_at: i64,
    /// Give up: the group is `dead`.
    pub dead: bool,
    /// The remote refused a create outright (it created nothing): forget the pending create, so
    /// that the next attempt sends the current data with a new key.
    pub forget_create: bool,
}

/// How [`fail`] recorded a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailRecorded {
    /// As decided.
    Held,
    /// An operator retried the group during the attempt (its attempts were reset below the
    /// claimed count): this failure is the first after the retry, `failed` and due when the
    /// retry made it due, never `dead`.
    AfterRetry,
    /// This worker no longer holds the lease: nothing written.
    Lost,
}

/// Records a failed attempt: the group is `failed` until `next_attempt_at`, or `dead` — unless
/// it was touched during this attempt, in which case the new data gets one more try before it
/// is declared dead, or an operator retried it meanwhile ([`FailRecorded::AfterRetry`]).
pub(crate) async fn fail<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    failure: &Failure<'_>,
) -> Result<FailRecorded> {
    let state = if failure.dead {
        GroupState::Dead
    } else {
        GroupState::Failed
    };
    let forget = if failure.forget_create {
        "create_key = NULL, create_payload = NULL, "
    } else {
        ""
    };
    let sql = format!(
        "UPDATE sync_groups SET {forget}attempts = ?, last_error = ?, last_status = ?, \
         next_attempt_at = ?, lease_owner = NULL, lease_until = NULL, \
         state = CASE WHEN version > ? THEN 'failed' ELSE ? END \
         WHERE id = ? AND lease_owner = ? AND attempts = ?"
    );
    let values: Vec<Value> = vec![
        failure.attempts.into(),
        truncate(failure.error, 4000).into(),
        failure.status.map(i32::from).into(),
        failure.next_attempt_at.into(),
        group.version.into(),
        state.as_str().into(),
        group.id.into(),
        group.lease_owner.as_str().into(),
        group.attempts.into(),
    ];
    if held(db, group, &sql, values, "failing").await? {
        return Ok(FailRecorded::Held);
    }
    let sql = format!(
        "UPDATE sync_groups SET {forget}attempts = attempts + 1, last_error = ?, last_status = ?, \
         lease_owner = NULL, lease_until = NULL, state = 'failed' \
         WHERE id = ? AND lease_owner = ? AND attempts < ?"
    );
    let values: Vec<Value> = vec![
        truncate(failure.error, 4000).into(),
        failure.status.map(i32::from).into(),
        group.id.into(),
        group.lease_owner.as_str().into(),
        group.attempts.into(),
    ];
    Ok(if held(db, group, &sql, values, "failing").await? {
        FailRecorded::AfterRetry
    } else {
        FailRecorded::Lost
    })
}

/// Records that the remote lost the group's record (an update answered 404) under
/// [`WhenMissing::Recreate`](crate::WhenMissing): the remote id and digest are forgotten (and
/// flagged `remote_id_forgotten`, so that the create that follows touches the groups carrying
/// the old id) and the group is due at once, to be created again — or `dead` when `dead` is set.
/// Returns `false` if this worker no longer holds the lease.
pub(crate) async fn forget_lost_record<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    attempts: i32,
    error: &str,
    now: i64,
    dead: bool,
) -> Result<bool> {
    let state = if dead { "dead" } else { "pending" };
    let sql = "UPDATE sync_groups SET remote_id_forgotten = ?, remote_id = NULL, \
               remote_id_numeric = ?, last_digest = NULL, \
               last_payload = NULL, create_key = NULL, create_payload = NULL, attempts = ?, \
               last_error = ?, last_status = 404, next_attempt_at = ?, lease_owner = NULL, \
               lease_until = NULL, state = ? WHERE id = ? AND lease_owner = ?";
    let values: Vec<Value> = vec![
        true.into(),
        false.into(),
        attempts.into(),
        truncate(error, 4000).into(),
        now.into(),
        state.into(),
        group.id.into(),
        group.lease_owner.as_str().into(),
    ];
    held(
        db,
        group,
        sql,
        values,
        "forgetting the lost remote record of",
    )
    .await
}

/// Records, before they are sent, the creates of claimed groups: per group id, the idempotency
/// key and the body (see [`PendingCreate`]). One statement (per 50 groups on MariaDB). Returns
/// the ids whose lease `owner` still held (the others must not be pushed).
pub(crate) async fn record_pending_creates<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    owner: &str,
    creates: &[(i64, &str, &str)],
) -> Result<std::collections::HashSet<i64>> {
    // SQLite takes the batch in one statement. Elsewhere a large batch takes several (on
    // PostgreSQL each under `PG_STATEMENT_BYTES`): one transaction makes them one commit, one
    // flush of the database's log.
    let size: usize = creates.iter().map(|(_, k, p)| 40 + k.len() + p.len()).sum();
    let several = match db.get_database_backend() {
        DbBackend::Sqlite => false,
        DbBackend::MySql => creates.len() > 50,
        _ => size > PG_STATEMENT_BYTES,
    };
    if !several {
        return record_pending_creates_in(db, owner, creates).await;
    }
    let txn = db
        .begin()
        .await
        .map_err(Error::db_while("recording creates before sending them"))?;
    let held = record_pending_creates_in(&txn, owner, creates).await?;
    txn.commit()
        .await
        .map_err(Error::db_while("recording creates before sending them"))?;
    Ok(held)
}

async fn record_pending_creates_in<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    creates: &[(i64, &str, &str)],
) -> Result<std::collections::HashSet<i64>> {
    let backend = db.get_database_backend();
    let mut held = std::collections::HashSet::new();
    if backend != DbBackend::MySql {
        // One statement for the whole batch, the rows bound as one JSON document (as
        // `complete_many` does), returning the ids whose lease is still ours.
        #[derive(serde::Serialize)]
        struct Row<'a> {
            id: i64,
            key: &'a str,
            payload: &'a str,
        }
        impl DocumentRow for Row<'_> {
            fn positional(&self) -> impl serde::Serialize {
                (self.id, self.key, self.payload)
            }
        }
        let chunks = json_chunks(
            backend,
            creates.iter().map(|(id, key, payload)| {
                let row = Row {
                    id: *id,
                    key,
                    payload,
                };
                (row, 40 + key.len() + payload.len())
            }),
        );
        let source = match backend {
            DbBackend::Postgres => {
                "json_to_recordset(CAST(? AS json)) AS v(id bigint, key text, payload text)"
            }
            _ => {
                "(SELECT value ->> 0 AS id, value ->> 1 AS key, value ->> 2 AS payload \
                 FROM jsonb_each(?)) AS v"
            }
        };
        let sql = format!(
            "UPDATE sync_groups SET create_key = v.key, create_payload = v.payload FROM {source} \
             WHERE sync_groups.id = v.id AND sync_groups.lease_owner = ?"
        );
        let context = || Error::db_while("recording creates before sending them");
        for rows in chunks {
            let document = json_document(backend, &rows)
                .map_err(|e| Error::permanent(format!("cannot encode the creates: {e}")))?;
            let values = vec![document.into(), owner.into()];
            // Usually every lease is still ours: the count says so without a row back per
            // group (on SQLite each returned row is a message between threads).
            let done = db
                .execute_raw(statement(backend, &sql, values.clone()))
                .await
                .map_err(context())?
                .rows_affected();
            if done == rows.len() as u64 {
                held.extend(rows.iter().map(|r| r.id));
                continue;
            }
            // Some leases were taken over: the same update again (it writes what it wrote),
            // returning the groups still ours.
            held.extend(
                updated_ids(db, &sql, values, "recording creates before sending them").await?,
            );
        }
        return Ok(held);
    }
    for chunk in creates.chunks(50) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5 + 1);
        let mut keys = String::from("create_key = CASE id");
        for (id, key, _) in chunk {
            keys.push_str(" WHEN ? THEN ?");
            values.extend([Value::from(*id), Value::from(*key)]);
        }
        keys.push_str(" END");
        let mut payloads = String::from("create_payload = CASE id");
        for (id, _, payload) in chunk {
            payloads.push_str(" WHEN ? THEN ?");
            values.extend([Value::from(*id), Value::from(*payload)]);
        }
        payloads.push_str(" END");
        values.push(owner.into());
        values.extend(chunk.iter().map(|(id, _, _)| Value::from(*id)));
        let list = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "UPDATE sync_groups SET {keys}, {payloads} WHERE lease_owner = ? AND id IN ({list})"
        );
        let context = || Error::db_while("recording creates before sending them");
        let done = db
            .execute_raw(statement(backend, &sql, values))
            .await
            .map_err(context())?
            .rows_affected();
        if done == chunk.len() as u64 {
            held.extend(chunk.iter().map(|(id, _, _)| *id));
            continue;
        }
        // Some leases were taken over meanwhile: find out which are still ours.
        let mut values: Vec<Value> = vec![owner.into()];
        values.extend(chunk.iter().map(|(id, _, _)| Value::from(*id)));
        for row in db
            .query_all_raw(statement(
                backend,
                &format!("SELECT id FROM sync_groups WHERE lease_owner = ? AND id IN ({list})"),
                values,
            ))
            .await
            .map_err(context())?
        {
            held.insert(row.try_get::<i64>("", "id")?);
        }
    }
    Ok(held)
}

/// Records a "not ready" answer: the group keeps its state and is due again at
/// `next_attempt_at`; `deferrals` counts these answers. Returns `false` if the lease was lost.
pub(crate) async fn defer<C: ConnectionTrait>(
    db: &C,
    group: &ClaimedGroup,
    deferrals: i32,
    reason: &str,
    next_attempt_at: i64,
) -> Result<bool> {
    let sql = "UPDATE sync_groups SET deferrals = ?, last_error = ?, next_attempt_at = ?, \
               lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?";
    let values: Vec<Value> = vec![
        deferrals.into(),
        truncate(reason, 4000).into(),
        next_attempt_at.into(),
        group.id.into(),
        group.lease_owner.as_str().into(),
    ];
    held(db, group, sql, values, "deferring").await
}

/// Gives back claims this worker will not work on (on shutdown): they are due again at once for
/// any worker. Returns how many were released.
pub(crate) async fn release<C: ConnectionTrait>(db: &C, owner: &str, ids: &[i64]) -> Result<u64> {
    lease_update(db, owner, ids, None).await
}

/// Extends this worker's leases on `ids` until `lease_until` (for pushes longer than the lease).
/// Returns how many are still held.
pub(crate) async fn renew<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    ids: &[i64],
    lease_until: i64,
) -> Result<u64> {
    lease_update(db, owner, ids, Some(lease_until)).await
}

async fn lease_update<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    ids: &[i64],
    until: Option<i64>,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let mut done = 0;
    for chunk in ids.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let (sets, mut values): (&str, Vec<Value>) = match until {
            Some(until) => ("lease_until = ?", vec![until.into()]),
            None => ("lease_owner = NULL, lease_until = NULL", vec![]),
        };
        values.push(owner.into());
        values.extend(chunk.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "UPDATE sync_groups SET {sets} WHERE lease_owner = ? AND id IN ({placeholders})"
        );
        done += db
            .execute_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!(
                "updating the leases of worker `{owner}`"
            )))?
            .rows_affected();
    }
    Ok(done)
}

/// Syncers that have dirty groups but are not in `known`, with how many: such groups are never
/// claimed by a worker that does not know their syncer, so they are reported instead.
pub(crate) async fn unknown_syncers<C: ConnectionTrait>(
    db: &C,
    known: &[String],
) -> Result<Vec<(String, i64)>> {
    let backend = db.get_database_backend();
    let mut sql =
        "SELECT syncer, COUNT(*) AS n FROM sync_groups WHERE state IN ('pending', 'failed')"
            .to_owned();
    if !known.is_empty() {
        sql.push_str(&format!(
            " AND syncer NOT IN ({})",
            vec!["?"; known.len()].join(", ")
        ));
    }
    sql.push_str(" GROUP BY syncer ORDER BY syncer");
    let values: Vec<Value> = known.iter().map(|s| Value::from(s.as_str())).collect();
    let rows = db
        .query_all_raw(statement(backend, &sql, values))
        .await
        .map_err(Error::db_while("looking for groups of unknown syncers"))?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "syncer")?,
                row.try_get::<i64>("", "n")?,
            ))
        })
        .collect()
}

/// One row of the attempt log.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRecord {
    /// The group.
    pub group_id: i64,
    /// Its syncer.
    pub syncer: String,
    /// The version pushed.
    pub version: i64,
    /// `create`, `update`, `delete` or `none`.
    pub operation: &'static str,
    /// `ok`, `skipped`, `waiting`, `retry`, `failed` or `dead`.
    pub outcome: &'static str,
    /// The remote's status code.
    pub status_code: Option<u16>,
    /// The error, for failures.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// The worker.
    pub worker: String,
    /// When it started.
    pub started_at: i64,
}

/// A row of the attempt log's document.
#[derive(serde::Serialize)]
struct AttemptRow<'a> {
    group_id: i64,
    syncer: &'a str,
    version: i64,
    operation: &'a str,
    outcome: &'a str,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
    worker: &'a str,
    started_at: i64,
}

impl DocumentRow for AttemptRow<'_> {
    fn positional(&self) -> impl serde::Serialize {
        (
            self.group_id,
            self.syncer,
            self.version,
            self.operation,
            self.outcome,
            self.status_code,
            &self.error,
            self.duration_ms,
            self.worker,
            self.started_at,
        )
    }
}

/// The rows of the attempt log's document, each with its size.
fn attempt_rows(attempts: &[AttemptRecord]) -> impl Iterator<Item = (AttemptRow<'_>, usize)> {
    attempts.iter().map(|a| {
        let error = a.error.as_deref().map(|e| truncate(e, 4000));
        let row_size =
            200 + a.syncer.len() + a.worker.len() + error.as_ref().map_or(0, String::len);
        let row = AttemptRow {
            group_id: a.group_id,
            syncer: &a.syncer,
            version: a.version,
            operation: a.operation,
            outcome: a.outcome,
            status_code: a.status_code,
            error,
            duration_ms: a.duration_ms,
            worker: &a.worker,
            started_at: a.started_at,
        };
        (row, row_size)
    })
}

/// The attempt log's insert, to be followed by `FROM` and a source of rows named `v`.
const ATTEMPTS_INSERT: &str = "INSERT INTO sync_attempts (group_id, syncer, version, operation, \
     outcome, status_code, error, duration_ms, worker, started_at) \
     SELECT v.group_id, v.syncer, v.version, v.operation, v.outcome, v.status_code, v.error, \
     v.duration_ms, v.worker, v.started_at";

/// The attempt log's document as rows, on PostgreSQL.
const PG_ATTEMPTS: &str = "json_to_recordset(CAST(? AS json)) AS v(group_id bigint, syncer text, \
     version bigint, operation text, outcome text, status_code integer, error text, \
     duration_ms bigint, worker text, started_at bigint)";

/// The completions' document as rows, on PostgreSQL.
const PG_COMPLETIONS: &str = "json_to_recordset(CAST(? AS json)) AS v(id bigint, version bigint, \
     kind text, remote_id text, numeric boolean, caught_up boolean, digest text, payload text, \
     owner text, created boolean, refs_set boolean, refs text)";

/// The completions' document as rows named `v`, on SQLite (rows in
/// [`CompletionRow::positional`]'s order), to precede the `UPDATE`; it binds the document, then
/// the lease owner of every row.
///
/// The fields are read out of the document once each, into a materialized table. Read in a
/// subquery in the `UPDATE`'s `FROM`, SQLite folded the subquery into the statement and read a
/// field out of the document again wherever `COMPLETION_SET` names it (`v.kind` six times): the
/// statement took 4.5 µs a group, against 3.0 µs with the fields read once and the row cut from
/// 13 fields to 7: the owner bound once, the state a completion closes with told by the kind
/// (in `COMPLETION_SET`), the kind and four flags in one number (SQLite 3.51, measured apart on
/// the framework's schema with 20,000 groups).
const SQLITE_COMPLETIONS: &str = "WITH d AS MATERIALIZED (SELECT value ->> 0 AS id, \
     value ->> 1 AS version, value ->> 2 AS flags, value ->> 3 AS remote_id, value ->> 4 AS digest, \
     value ->> 5 AS payload, value ->> 6 AS refs FROM jsonb_each(?)), \
     v AS (SELECT id, version, remote_id, digest, payload, refs, ? AS owner, \
     CASE flags & 3 WHEN 0 THEN 'pushed' WHEN 1 THEN 'skipped' ELSE 'deleted' END AS kind, \
     (flags >> 2) & 1 AS numeric, (flags >> 3) & 1 AS caught_up, (flags >> 4) & 1 AS created, \
     (flags >> 5) & 1 AS refs_set FROM d)";

/// The attempt log's document as rows, on SQLite (rows in [`AttemptRow::positional`]'s order).
const SQLITE_ATTEMPTS: &str = "(SELECT value ->> 0 AS group_id, value ->> 1 AS syncer, \
     value ->> 2 AS version, value ->> 3 AS operation, value ->> 4 AS outcome, \
     value ->> 5 AS status_code, value ->> 6 AS error, value ->> 7 AS duration_ms, \
     value ->> 8 AS worker, value ->> 9 AS started_at FROM jsonb_each(?)) AS v";

/// PostgreSQL: completes `done` (as [`complete_many`]) and appends `log` to the attempt log in
/// one statement, on its own: a statement commits or fails whole, so this is one round trip
/// where a transaction takes four (begin, completions, attempt log, commit). Returns the ids
/// whose lease was still held, or `None`, having written nothing, when the batch is too large
/// for one statement.
pub(crate) async fn complete_and_log(
    db: &sea_orm::DatabaseConnection,
    done: &[Completion<'_>],
    log: &[AttemptRecord],
    now: i64,
) -> Result<Option<std::collections::HashSet<i64>>> {
    let backend = db.get_database_backend();
    let (completions, completion_sizes): (Vec<CompletionRow<'_>>, Vec<usize>) =
        completion_rows(done).unzip();
    let (attempts, attempt_sizes): (Vec<AttemptRow<'_>>, Vec<usize>) = attempt_rows(log).unzip();
    let size: usize = completion_sizes.iter().chain(&attempt_sizes).sum();
    if backend != DbBackend::Postgres || size > PG_STATEMENT_BYTES {
        return Ok(None);
    }
    let encode =
        |what: &str, e: serde_json::Error| Error::permanent(format!("cannot encode {what}: {e}"));
    let completions =
        serde_json::to_string(&completions).map_err(|e| encode("the completions", e))?;
    let attempts = serde_json::to_string(&attempts).map_err(|e| encode("the attempt log", e))?;
    let sql = format!(
        "WITH done AS ({COMPLETION_SET} FROM {PG_COMPLETIONS} WHERE {COMPLETION_WHERE} \
         RETURNING sync_groups.id), \
         logged AS ({ATTEMPTS_INSERT} FROM {PG_ATTEMPTS}) \
         SELECT string_agg(CAST(id AS text), ',') AS ids FROM done"
    );
    let values: Vec<Value> = vec![now.into(), now.into(), completions.into(), attempts.into()];
    let row = db
        .query_one_raw(statement(backend, &sql, values))
        .await
        .map_err(Error::db_while("recording attempts"))?;
    let ids: Option<String> = match row {
        Some(row) => row.try_get("", "ids")?,
        None => None,
    };
    let mut held = std::collections::HashSet::new();
    for id in ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let id = id.parse::<i64>().map_err(|e| {
            Error::permanent(format!(
                "the database answered a group id `{id}` that is not a number: {e}"
            ))
        })?;
        held.insert(id);
    }
    Ok(Some(held))
}

/// Appends attempts to `sync_attempts`: on PostgreSQL and SQLite the rows travel as one JSON
/// document per statement (a statement prepared once per connection, whatever the number of
/// rows; on PostgreSQL each under [`PG_STATEMENT_BYTES`], as in `complete_many`), on MariaDB in one statement
/// per 100 rows.
pub(crate) async fn log_attempts<C: ConnectionTrait>(
    db: &C,
    attempts: &[AttemptRecord],
) -> Result<()> {
    let backend = db.get_database_backend();
    if backend != DbBackend::MySql {
        return log_attempts_as_json(db, attempts).await;
    }
    for chunk in attempts.chunks(100) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO sync_attempts (group_id, syncer, version, operation, outcome, status_code, \
             error, duration_ms, worker, started_at) VALUES {rows}"
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 10);
        for a in chunk {
            values.extend([
                a.group_id.into(),
                a.syncer.as_str().into(),
                a.version.into(),
                a.operation.into(),
                a.outcome.into(),
                a.status_code.map(i32::from).into(),
                a.error.as_deref().map(|e| truncate(e, 4000)).into(),
                a.duration_ms.into(),
                a.worker.as_str().into(),
                a.started_at.into(),
            ]);
        }
        db.execute_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while("writing the attempt log"))?;
    }
    Ok(())
}

async fn log_attempts_as_json<C: ConnectionTrait>(
    db: &C,
    attempts: &[AttemptRecord],
) -> Result<()> {
    let backend = db.get_database_backend();
    let rows = attempt_rows(attempts);
    let source = match backend {
        DbBackend::Postgres => PG_ATTEMPTS,
        _ => SQLITE_ATTEMPTS,
    };
    let sql = format!("{ATTEMPTS_INSERT} FROM {source}");
    for rows in json_chunks(backend, rows)
        .into_iter()
        .filter(|c| !c.is_empty())
    {
        let document = json_document(backend, &rows)
            .map_err(|e| Error::permanent(format!("cannot encode the attempt log: {e}")))?;
        db.execute_raw(statement(backend, &sql, vec![document.into()]))
            .await
            .map_err(Error::db_while("writing the attempt log"))?;
    }
    Ok(())
}

/// The most a statement carrying a JSON document of rows weighs on PostgreSQL: a bound on the
/// memory one statement takes on both sides, far above a batch of ordinary payloads. (sqlx 0.9.0
/// set no `TCP_NODELAY`, and a statement over 16 KB waited 40 ms for the server's delayed ACK;
/// 0.9.1, the version this crate requires, sets it.)
pub(crate) const PG_STATEMENT_BYTES: usize = 1 << 20;

/// `rows`, each with its estimated size in the JSON document, cut into the documents of one
/// statement each: under [`PG_STATEMENT_BYTES`] on PostgreSQL (a row larger than that goes
/// alone), one document elsewhere.
pub(crate) fn json_chunks<T>(
    backend: DbBackend,
    rows: impl IntoIterator<Item = (T, usize)>,
) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = vec![Vec::new()];
    let mut size = 0;
    for (row, row_size) in rows {
        if backend == DbBackend::Postgres
            && size + row_size > PG_STATEMENT_BYTES
            && chunks.last().is_some_and(|c| !c.is_empty())
        {
            chunks.push(Vec::new());
            size = 0;
        }
        size += row_size;
        chunks.last_mut().expect("one chunk").push(row);
    }
    chunks
}

/// A row of a JSON document of rows, which SQLite reads by position: `value ->> n` takes the
/// n-th element of an array row, where `json_extract(value, '$.name')` compares the name with
/// every key before it. PostgreSQL's `json_to_recordset` matches keys to columns and takes the
/// row as an object.
pub(crate) trait DocumentRow: serde::Serialize {
    /// The row's fields in the order of the SQLite statement's `value ->> n`.
    fn positional(&self) -> impl serde::Serialize;
}

/// `rows` as one JSON document for `backend`: an array of arrays on SQLite (see
/// [`DocumentRow`]), of objects elsewhere.
pub(crate) fn json_document<T: DocumentRow>(
    backend: DbBackend,
    rows: &[T],
) -> serde_json::Result<String> {
    struct Positional<'a, T>(&'a [T]);
    impl<T: DocumentRow> serde::Serialize for Positional<'_, T> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(DocumentRow::positional))
        }
    }
    if backend == DbBackend::Sqlite {
        serde_json::to_string(&Positional(rows))
    } else {
        serde_json::to_string(rows)
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
