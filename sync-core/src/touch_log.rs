//! The touch log, `sync_touches`: how a write marks its groups dirty without taking a lock that
//! anyone else waits for.
//!
//! The hooks and the touch helpers *append* one row per group a write touches, through the
//! connection they were given, so the row commits or rolls back with the write. Appending to a
//! table with a growing key takes no lock another transaction waits for: two application
//! transactions touching the same group, or an application transaction and a worker recording
//! that group, never wait for each other because of the framework, so the framework adds no
//! lock-order dependency — and no deadlock — to the application.
//!
//! [`apply_touches`] moves committed rows into `sync_groups` (version +1 per touch, revivals,
//! remote deletes, registrations) and deletes them. The worker runs it before every claim;
//! the operator views run it before they read. A touch of a root found by a function names
//! the dependent it was found from: the applier runs the function again on the committed row
//! and touches the root found then too (`crate::refind`). Concurrent appliers take disjoint rows
//! (`FOR UPDATE SKIP LOCKED`) and lock the groups they change in id order.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, IsolationLevel, QueryResult, TransactionTrait,
    Value,
};

use crate::store::statement;
use crate::{Error, Result, RootKey, clock, wake};

/// What a write means for one group. The order is the order marks of one save are logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Mark {
    /// Watched data changed: +1 version if the group exists and is not closed.
    Touch,
    /// The root row is gone: +1 version and push a remote delete, if the group exists.
    Deleted,
    /// The root is back (soft delete cleared): +1 version and revive, if the group exists.
    Restored,
    /// Register (create the group if missing) and touch.
    Register,
}

impl Mark {
    /// The code stored in `sync_touches.mark`.
    pub(crate) const fn code(self) -> i16 {
        match self {
            Mark::Touch => 0,
            Mark::Deleted => 1,
            Mark::Restored => 2,
            Mark::Register => 3,
        }
    }

    fn from_code(code: i16) -> Option<Mark> {
        Some(match code {
            0 => Mark::Touch,
            1 => Mark::Deleted,
            2 => Mark::Restored,
            3 => Mark::Register,
            _ => return None,
        })
    }
}

/// Appends one touch per `(syncer, key, mark)`, in order, in one statement per 200. Returns the
/// number of rows appended.
pub(crate) async fn append<C: ConnectionTrait>(
    db: &C,
    touches: &[(&str, &RootKey, Mark)],
) -> Result<u64> {
    let touches: Vec<Logged<'_>> = touches
        .iter()
        .map(|(syncer, key, mark)| (*syncer, *key, *mark, None))
        .collect();
    append_logged(db, &touches).await
}

/// A dependent whose root a function (`root_fn`) found: its table and primary key, logged with
/// the touch, so that [`apply_touches`] runs the function again on the committed row.
pub(crate) type Dependent<'a> = (&'static str, &'a RootKey);

/// One touch to log: syncer, root key, mark, and the dependent to find the root again from.
pub(crate) type Logged<'a> = (&'a str, &'a RootKey, Mark, Option<Dependent<'a>>);

/// Appends the touches, in order, in one statement per 200: the statement names the dependent's
/// columns only when a touch of its chunk carries one. Returns the number of rows appended.
pub(crate) async fn append_logged<C: ConnectionTrait>(
    db: &C,
    touches: &[Logged<'_>],
) -> Result<u64> {
    if touches.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let now = clock::now_ms();
    let mut appended = 0;
    for chunk in touches.chunks(200) {
        let with_dependents = chunk.iter().any(|t| t.3.is_some());
        let (columns, row) = if with_dependents {
            (
                "syncer, root_key, mark, at, dependent, dependent_key",
                "(?, ?, ?, ?, ?, ?)",
            )
        } else {
            ("syncer, root_key, mark, at", "(?, ?, ?, ?)")
        };
        let rows = vec![row; chunk.len()].join(", ");
        let sql = format!("INSERT INTO sync_touches ({columns}) VALUES {rows}");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (syncer, key, mark, dependent) in chunk {
            values.extend([
                (*syncer).into(),
                key.as_str().into(),
                mark.code().into(),
                now.into(),
            ]);
            if with_dependents {
                values.push(dependent.map(|(table, _)| table.to_owned()).into());
                values.push(dependent.map(|(_, key)| key.as_str().to_owned()).into());
            }
        }
        appended += db
            .execute_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!(
                "logging touches of `{}` group `{}`",
                chunk[0].0, chunk[0].1
            )))?
            .rows_affected();
    }
    wake::notify();
    Ok(appended)
}

/// Whether the group (`syncer`, `key`) exists, or its registration is logged and not applied
/// yet. A plain read: it locks nothing.
pub(crate) async fn known<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    keys: &[RootKey],
) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let mut found = 0;
    for chunk in keys.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        // On PostgreSQL each key is looked up on its own in the unique index (see
        // `load_groups`); the touch log holds only what is not applied yet.
        let groups = if backend == DbBackend::Postgres {
            "SELECT g.root_key FROM json_array_elements_text(CAST(? AS json)) AS keys(key) \
             CROSS JOIN LATERAL (SELECT root_key FROM sync_groups WHERE syncer = ? \
             AND root_key = keys.key LIMIT 1) AS g"
                .to_owned()
        } else {
            format!("SELECT root_key FROM sync_groups WHERE syncer = ? AND root_key IN ({list})")
        };
        let sql = format!(
            "SELECT COUNT(DISTINCT k.root_key) AS n FROM ({groups} \
             UNION ALL SELECT root_key FROM sync_touches WHERE syncer = ? AND mark = {} \
             AND root_key IN ({list})) AS k",
            Mark::Register.code()
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2 + 2);
        if backend == DbBackend::Postgres {
            let list: Vec<&str> = chunk.iter().map(RootKey::as_str).collect();
            values.push(serde_json::to_string(&list).expect("strings encode").into());
            values.push(syncer.into());
        } else {
            values.push(syncer.into());
            values.extend(chunk.iter().map(|k| Value::from(k.as_str())));
        }
        values.push(syncer.into());
        values.extend(chunk.iter().map(|k| Value::from(k.as_str())));
        let row = db
            .query_one_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!("looking up `{syncer}` groups")))?;
        if let Some(row) = row {
            found += row.try_get::<i64>("", "n")? as u64;
        }
    }
    Ok(found)
}

/// A group's row as applying touches reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRow {
    /// `None` for a group this application creates.
    pub(crate) id: Option<i64>,
    pub(crate) version: i64,
    pub(crate) state: String,
    pub(crate) root_deleted: bool,
    pub(crate) attempts: i32,
    pub(crate) deferrals: i32,
    pub(crate) last_error: Option<String>,
    pub(crate) last_status: Option<i32>,
    pub(crate) next_attempt_at: i64,
    pub(crate) dirty_since: Option<i64>,
    pub(crate) touched_at: i64,
}

impl GroupRow {
    fn new_registered(at: i64) -> Self {
        GroupRow {
            id: None,
            version: 1,
            state: "pending".into(),
            root_deleted: false,
            attempts: 0,
            deferrals: 0,
            last_error: None,
            last_status: None,
            next_attempt_at: at,
            dirty_since: Some(at),
            touched_at: at,
        }
    }
}

/// The group after one more mark, logged at `at`. `None` stays `None` unless the mark
/// registers. This is the whole meaning of a touch:
///
/// - every mark bumps `version` and `touched_at`, except a touch or delete of a closed
///   (`deleted`) group, which stays closed and unchanged;
/// - a clean (`synced`) or `dead` group becomes `pending`, due at once, its attempts and error
///   reset (new data may fix a dead one); a restore or registration also reopens a closed one;
///   a `failed` group keeps its backoff schedule;
/// - a delete sets `root_deleted`, a restore or registration clears it.
pub(crate) fn apply_mark(row: Option<GroupRow>, mark: Mark, at: i64) -> Option<GroupRow> {
    let Some(mut row) = row else {
        return (mark == Mark::Register).then(|| GroupRow::new_registered(at));
    };
    let reopens = matches!(mark, Mark::Restored | Mark::Register);
    if row.state == "deleted" && !reopens {
        return Some(row);
    }
    let revived = match row.state.as_str() {
        "synced" | "dead" => true,
        "deleted" => reopens,
        _ => false,
    };
    let old_touched_at = row.touched_at;
    row.version += 1;
    row.touched_at = at;
    match mark {
        Mark::Touch => {}
        Mark::Deleted => row.root_deleted = true,
        Mark::Restored | Mark::Register => row.root_deleted = false,
    }
    if revived {
        row.attempts = 0;
        row.deferrals = 0;
        row.last_error = None;
        row.last_status = None;
        row.next_attempt_at = at;
        row.dirty_since = Some(at);
        row.state = "pending".into();
    } else {
        row.dirty_since = row.dirty_since.or(Some(old_touched_at));
    }
    Some(row)
}

/// Rows of the log applied per transaction.
const BATCH: usize = 1000;

/// Applies the committed touches in `sync_touches` to `sync_groups` and deletes them, in
/// transactions of up to 1,000 touches, until none are left (at most 50 transactions per call).
/// Returns the number of touches applied.
///
/// The worker calls this before every claim and the operator views before they read, so
/// applications rarely need it; a test that reads `sync_groups` right after a write does.
pub async fn apply_touches(db: &DatabaseConnection) -> Result<u64> {
    let mut applied = 0;
    for _ in 0..50 {
        let n = apply_batch_retrying(db).await?;
        applied += n as u64;
        if n < BATCH {
            break;
        }
    }
    Ok(applied)
}

/// Applies every touch committed before the call, like [`apply_touches`], and also waits (up
/// to 5 s) for those a worker is applying at that moment: [`apply_touches`] skips the touches
/// another connection holds, so a read right after it may miss what a worker has not
/// committed yet. For code that must see every write made so far in `sync_groups` (tests,
/// operator views); a worker calls [`apply_touches`], which never waits.
///
/// Fails when touches logged before the call are still held by another connection after 5 s.
pub async fn settle_touches(db: &DatabaseConnection) -> Result<()> {
    let backend = db.get_database_backend();
    let context = || Error::db_while("applying logged touches to sync_groups");
    let last = db
        .query_one_raw(statement(
            backend,
            "SELECT MAX(id) AS last FROM sync_touches",
            vec![],
        ))
        .await
        .map_err(context())?
        .map(|row| row.try_get::<Option<i64>>("", "last"))
        .transpose()?
        .flatten();
    let Some(last) = last else {
        return Ok(());
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        apply_touches(db).await?;
        let left = db
            .query_one_raw(statement(
                backend,
                "SELECT id FROM sync_touches WHERE id <= ? LIMIT 1",
                vec![last.into()],
            ))
            .await
            .map_err(context())?;
        if left.is_none() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::retryable(format!(
                "touches logged before this call (up to id {last}) are still being applied by \
                 another connection after 5 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn apply_batch_retrying(db: &DatabaseConnection) -> Result<usize> {
    let mut tries = 0;
    loop {
        match apply_batch(db).await {
            Ok(n) => return Ok(n),
            // Two appliers creating the same group, or a lock-order conflict with another
            // worker's statement: nothing was written; try again.
            Err(error) if tries < 4 => {
                tries += 1;
                tracing::debug!(%error, "applying touches failed; trying again");
                tokio::time::sleep(Duration::from_millis(10 << tries)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn apply_batch(db: &DatabaseConnection) -> Result<usize> {
    let backend = db.get_database_backend();
    let context = || Error::db_while("applying logged touches to sync_groups");
    // Cheap when there is nothing to do, which is most of the time a worker looks.
    let any = db
        .query_one_raw(statement(
            backend,
            "SELECT id FROM sync_touches LIMIT 1",
            vec![],
        ))
        .await
        .map_err(context())?;
    if any.is_none() {
        return Ok(0);
    }
    // Touches of roots found by a function: the roots their dependents have now, found before
    // the transaction, outside it (`refind`).
    let found_again = crate::refind::logged_dependents(db).await?;
    let txn = match backend {
        DbBackend::Sqlite => crate::begin_write(db).await?,
        // Read committed: no gap locks on MariaDB, so appends never wait for an applier.
        _ => db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(context())?,
    };
    // One applier at a time (SQLite: the write lock already ensures it), so that each group's
    // marks are applied in the order they were logged: two appliers each taking the rows the
    // other had not locked could apply a restore before the delete logged ahead of it. Another
    // worker applying now: leave the log to it.
    if backend != DbBackend::Sqlite && !hold_applier_lock(&txn).await? {
        txn.rollback().await.map_err(context())?;
        return Ok(0);
    }
    let lock = match backend {
        DbBackend::Sqlite => "",
        _ => " FOR UPDATE",
    };
    let rows = txn
        .query_all_raw(statement(
            backend,
            &format!(
                "SELECT id, syncer, root_key, mark, at, dependent FROM sync_touches ORDER BY id \
                 LIMIT {BATCH}{lock}"
            ),
            vec![],
        ))
        .await
        .map_err(context())?;
    if rows.is_empty() {
        txn.commit().await.map_err(context())?;
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    // (syncer, key) → marks in log order.
    let mut marks: BTreeMap<(String, String), Vec<(Mark, i64)>> = BTreeMap::new();
    for row in &rows {
        let id: i64 = row.try_get("", "id")?;
        let dependent: Option<String> = row.try_get("", "dependent")?;
        let again: &[RootKey] = match dependent {
            None => &[],
            Some(_) => match found_again.get(&id) {
                Some(roots) => roots,
                // Committed after the look for dependents: it, and the touches after it, are
                // left to the next batch, so that each group's marks stay in log order.
                None => break,
            },
        };
        ids.push(id);
        let code: i16 = row.try_get("", "mark")?;
        let Some(mark) = Mark::from_code(code) else {
            tracing::warn!(code, "ignoring a touch with an unknown mark");
            continue;
        };
        let syncer: String = row.try_get("", "syncer")?;
        let key: String = row.try_get("", "root_key")?;
        let at: i64 = row.try_get("", "at")?;
        // The root its dependent has in the committed data, when it is another one: touched too.
        for root in again.iter().filter(|r| r.as_str() != key) {
            marks
                .entry((syncer.clone(), root.as_str().to_owned()))
                .or_default()
                .push((Mark::Touch, at));
        }
        marks.entry((syncer, key)).or_default().push((mark, at));
    }
    let count = ids.len();
    if count == 0 {
        txn.commit().await.map_err(context())?;
        return Ok(0);
    }
    let keys: Vec<&(String, String)> = marks.keys().collect();
    let mut existing = load_groups(&txn, &keys).await?;
    let mut updates = Vec::new();
    let mut inserts = Vec::new();
    for (key, list) in &marks {
        let before = existing.remove(key);
        let mut row = before.clone();
        for (mark, at) in list {
            row = apply_mark(row, *mark, *at);
        }
        match (before, row) {
            (Some(before), Some(after)) if before != after => updates.push(after),
            (None, Some(after)) => inserts.push((key, after)),
            _ => {}
        }
    }
    write_updates(&txn, &mut updates).await?;
    write_inserts(&txn, &inserts).await?;
    for chunk in ids.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        txn.execute_raw(statement(
            backend,
            &format!("DELETE FROM sync_touches WHERE id IN ({list})"),
            chunk.iter().map(|id| Value::from(*id)).collect(),
        ))
        .await
        .map_err(context())?;
    }
    txn.commit().await.map_err(context())?;
    Ok(count)
}

/// Takes the applier's lock (the row of `sync_touch_applier`) in `txn`, unless another
/// transaction holds it: `false` then. Fails when the row is missing.
async fn hold_applier_lock<C: ConnectionTrait>(txn: &C) -> Result<bool> {
    let backend = txn.get_database_backend();
    let context = || Error::db_while("taking the touch applier's lock (`sync_touch_applier`)");
    let held = txn
        .query_one_raw(statement(
            backend,
            "SELECT id FROM sync_touch_applier FOR UPDATE SKIP LOCKED",
            vec![],
        ))
        .await
        .map_err(context())?;
    if held.is_some() {
        return Ok(true);
    }
    let exists = txn
        .query_one_raw(statement(
            backend,
            "SELECT id FROM sync_touch_applier",
            vec![],
        ))
        .await
        .map_err(context())?;
    if exists.is_none() {
        return Err(Error::Config(
            "`sync_touch_applier` has no row, so no worker can apply the touch log: insert \
             one (`INSERT INTO sync_touch_applier (id) VALUES (1)`), as migration \
             `sync_core::m20261204_000010_touch_applier_lock` does"
                .into(),
        ));
    }
    Ok(false)
}

const GROUP_COLUMNS: &str = "id, syncer, root_key, version, state, root_deleted, attempts, \
     deferrals, last_error, last_status, next_attempt_at, dirty_since, touched_at";

/// The groups of `keys` that exist, locked in id order.
async fn load_groups<C: ConnectionTrait>(
    db: &C,
    keys: &[&(String, String)],
) -> Result<BTreeMap<(String, String), GroupRow>> {
    let backend = db.get_database_backend();
    let lock = match backend {
        DbBackend::Sqlite => "",
        _ => " FOR UPDATE",
    };
    let mut found = BTreeMap::new();
    for chunk in keys.chunks(300) {
        let (sql, values) = if backend == DbBackend::Postgres {
            // Each key looked up on its own in the unique index (the `LIMIT 1` keeps the lateral
            // subquery from being flattened into a join), then the rows locked by primary key
            // in id order. The `OR` of pairs is planned, while the table has no statistics
            // (after a backfill, until it is analysed), as a scan of every group of the syncer
            // tested against every pair: seconds over a few hundred thousand groups.
            let pairs: Vec<[&str; 2]> = chunk
                .iter()
                .map(|(syncer, key)| [syncer.as_str(), key.as_str()])
                .collect();
            (
                format!(
                    "SELECT {GROUP_COLUMNS} FROM sync_groups WHERE id = ANY(ARRAY(\
                     SELECT g.id FROM json_array_elements(CAST(? AS json)) AS pairs(pair) \
                     CROSS JOIN LATERAL (SELECT id FROM sync_groups WHERE syncer = pairs.pair ->> 0 \
                     AND root_key = pairs.pair ->> 1 LIMIT 1) AS g)) ORDER BY id{lock}"
                ),
                vec![Value::from(
                    serde_json::to_string(&pairs).expect("strings encode"),
                )],
            )
        } else {
            let pairs = vec!["(syncer = ? AND root_key = ?)"; chunk.len()].join(" OR ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
            for (syncer, key) in chunk {
                values.push(syncer.as_str().into());
                values.push(key.as_str().into());
            }
            (
                format!("SELECT {GROUP_COLUMNS} FROM sync_groups WHERE {pairs} ORDER BY id{lock}"),
                values,
            )
        };
        let rows = db
            .query_all_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while("reading the groups of logged touches"))?;
        for row in rows {
            let (key, group) = read_group(&row)?;
            found.insert(key, group);
        }
    }
    Ok(found)
}

fn read_group(row: &QueryResult) -> Result<((String, String), GroupRow)> {
    Ok((
        (row.try_get("", "syncer")?, row.try_get("", "root_key")?),
        GroupRow {
            id: Some(row.try_get("", "id")?),
            version: row.try_get("", "version")?,
            state: row.try_get("", "state")?,
            root_deleted: row.try_get("", "root_deleted")?,
            attempts: row.try_get("", "attempts")?,
            deferrals: row.try_get("", "deferrals")?,
            last_error: row.try_get("", "last_error")?,
            last_status: row.try_get("", "last_status")?,
            next_attempt_at: row.try_get("", "next_attempt_at")?,
            dirty_since: row.try_get("", "dirty_since")?,
            touched_at: row.try_get("", "touched_at")?,
        },
    ))
}

/// Writes changed groups, in id order, 100 per statement.
async fn write_updates<C: ConnectionTrait>(db: &C, rows: &mut [GroupRow]) -> Result<()> {
    let backend = db.get_database_backend();
    rows.sort_by_key(|r| r.id);
    for chunk in rows.chunks(100) {
        let ids: Vec<i64> = chunk.iter().filter_map(|r| r.id).collect();
        let mut values: Vec<Value> = Vec::new();
        let mut sets = Vec::new();
        type Get = fn(&GroupRow) -> Value;
        let columns: [(&str, Get); 10] = [
            ("version", |r| r.version.into()),
            ("state", |r| r.state.as_str().into()),
            ("root_deleted", |r| r.root_deleted.into()),
            ("attempts", |r| r.attempts.into()),
            ("deferrals", |r| r.deferrals.into()),
            ("last_error", |r| r.last_error.clone().into()),
            ("last_status", |r| r.last_status.into()),
            ("next_attempt_at", |r| r.next_attempt_at.into()),
            ("dirty_since", |r| r.dirty_since.into()),
            ("touched_at", |r| r.touched_at.into()),
        ];
        for (column, get) in columns {
            let mut case = format!("{column} = CASE id");
            for row in chunk {
                case.push_str(" WHEN ? THEN ?");
                values.push(row.id.unwrap_or_default().into());
                values.push(get(row));
            }
            case.push_str(&format!(" ELSE {column} END"));
            sets.push(case);
        }
        let list = vec!["?"; ids.len()].join(", ");
        values.extend(ids.iter().map(|id| Value::from(*id)));
        let sql = format!(
            "UPDATE sync_groups SET {} WHERE id IN ({list})",
            sets.join(", ")
        );
        db.execute_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while("writing touched groups"))?;
    }
    Ok(())
}

/// Creates the groups registrations named, 100 per statement.
async fn write_inserts<C: ConnectionTrait>(
    db: &C,
    rows: &[(&(String, String), GroupRow)],
) -> Result<()> {
    let backend = db.get_database_backend();
    for chunk in rows.chunks(100) {
        let placeholders = vec!["(?, ?, ?, 0, ?, ?, 0, 0, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, \
             root_deleted, attempts, deferrals, next_attempt_at, touched_at, created_at, \
             dirty_since) VALUES {placeholders}"
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 9);
        for ((syncer, key), row) in chunk {
            values.extend([
                syncer.as_str().into(),
                key.as_str().into(),
                row.version.into(),
                row.state.as_str().into(),
                row.root_deleted.into(),
                row.next_attempt_at.into(),
                row.touched_at.into(),
                row.touched_at.into(),
                row.dirty_since.into(),
            ]);
        }
        db.execute_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while("registering groups"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str) -> GroupRow {
        GroupRow {
            id: Some(1),
            version: 3,
            state: state.into(),
            root_deleted: false,
            attempts: 2,
            deferrals: 1,
            last_error: Some("HTTP 422".into()),
            last_status: Some(422),
            next_attempt_at: 500,
            dirty_since: None,
            touched_at: 100,
        }
    }

    #[test]
    fn a_touch_makes_a_clean_group_pending_and_due() {
        let after = apply_mark(Some(row("synced")), Mark::Touch, 1000).unwrap();
        assert_eq!(
            (
                after.version,
                after.state.as_str(),
                after.next_attempt_at,
                after.dirty_since
            ),
            (4, "pending", 1000, Some(1000))
        );
        assert_eq!(
            (after.attempts, after.last_error, after.last_status),
            (0, None, None)
        );
    }

    #[test]
    fn a_failed_group_keeps_its_backoff_and_a_dead_one_is_revived() {
        let failed = apply_mark(Some(row("failed")), Mark::Touch, 1000).unwrap();
        assert_eq!(
            (
                failed.version,
                failed.state.as_str(),
                failed.attempts,
                failed.next_attempt_at
            ),
            (4, "failed", 2, 500)
        );
        assert_eq!(
            failed.dirty_since,
            Some(100),
            "dirty since the touch before"
        );
        let dead = apply_mark(Some(row("dead")), Mark::Touch, 1000).unwrap();
        assert_eq!((dead.state.as_str(), dead.attempts), ("pending", 0));
    }

    #[test]
    fn a_closed_group_ignores_touches_and_deletes_until_restored() {
        let closed = row("deleted");
        assert_eq!(
            apply_mark(Some(closed.clone()), Mark::Touch, 1000),
            Some(closed.clone())
        );
        assert_eq!(
            apply_mark(Some(closed.clone()), Mark::Deleted, 1000),
            Some(closed.clone())
        );
        let back = apply_mark(Some(closed), Mark::Restored, 1000).unwrap();
        assert_eq!(
            (back.version, back.state.as_str(), back.root_deleted),
            (4, "pending", false)
        );
    }

    #[test]
    fn only_a_registration_creates_a_group() {
        assert_eq!(apply_mark(None, Mark::Touch, 1), None);
        assert_eq!(apply_mark(None, Mark::Deleted, 1), None);
        assert_eq!(apply_mark(None, Mark::Restored, 1), None);
        let new = apply_mark(None, Mark::Register, 7).unwrap();
        assert_eq!(
            (new.id, new.version, new.state.as_str(), new.touched_at),
            (None, 1, "pending", 7)
        );
        // Touches logged after the registration in the same batch count.
        let touched = apply_mark(Some(new), Mark::Touch, 8).unwrap();
        assert_eq!(touched.version, 2);
    }

    #[test]
    fn a_delete_marks_the_root_gone() {
        let gone = apply_mark(Some(row("synced")), Mark::Deleted, 9).unwrap();
        assert!(gone.root_deleted);
        assert_eq!((gone.version, gone.state.as_str()), (4, "pending"));
    }

    #[test]
    fn mark_codes_round_trip() {
        for mark in [Mark::Touch, Mark::Deleted, Mark::Restored, Mark::Register] {
            assert_eq!(Mark::from_code(mark.code()), Some(mark));
        }
        assert_eq!(Mark::from_code(9), None);
    }
}
