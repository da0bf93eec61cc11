//! Idle workers, `sync_sleepers`: on PostgreSQL the application's commits notify the workers only
//! while one of them sleeps.
//!
//! PostgreSQL serialises the commits of transactions that sent a notification, so a `NOTIFY` on
//! every touching transaction halves what concurrent application writers can commit. The
//! trigger on `sync_touches` therefore notifies only when a live row is here: a worker that
//! found nothing to claim *arms* (writes its row, with an expiry), looks once more (a
//! transaction that read no row before the arm committed may have committed since), and sleeps
//! until a notification or its poll interval; a worker that finds work *disarms* (deletes its
//! row, in the background: the push does not wait for that commit). While workers are busy the application's commits send nothing; a worker that dies
//! asleep stops the notifications when its row expires.
//!
//! A transaction that appended its touch before the arm committed read no row and sends
//! nothing. Before its second look the worker therefore waits for the transactions that are
//! appending at that moment (those holding a lock on `sync_touches`) to end, up to
//! [`APPENDERS_WAIT`]: each has then either committed (the second look sees its touch) or
//! rolled back. What remains: a transaction that appended before the arm and stays open longer
//! than that; the worker finds it at its next poll (one poll interval at most). Other backends
//! have no trigger and do nothing here.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::store::statement;
use crate::{Error, Result};

/// Marks `worker` asleep until `ttl` from now (the database's clock): until then, every commit
/// that appends touches notifies. Returns the mark (its `until_ms`), which [`disarm_mark`]
/// deletes and nothing else: a mark written again while the worker still has one is always
/// greater than the one it replaces. Nothing on backends other than PostgreSQL.
pub(crate) async fn arm(db: &DatabaseConnection, worker: &str, ttl: Duration) -> Result<i64> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(0);
    }
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let row = db
        .query_one_raw(statement(
            DbBackend::Postgres,
            "INSERT INTO sync_sleepers (worker, until_ms) \
             VALUES (?, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + ?) \
             ON CONFLICT (worker) DO UPDATE \
             SET until_ms = GREATEST(EXCLUDED.until_ms, sync_sleepers.until_ms + 1) \
             RETURNING until_ms",
            vec![worker.into(), ttl_ms.into()],
        ))
        .await
        .map_err(Error::db_while("marking the worker asleep"))?;
    Ok(row
        .map(|row| row.try_get::<i64>("", "until_ms"))
        .transpose()?
        .unwrap_or(0))
}

/// Deletes `worker`'s mark `mark` if it is still there; a newer mark stays. Runs off the wake-up
/// path (a worker that woke pushes first), so it may run after the worker marked itself asleep
/// again.
pub(crate) async fn disarm_mark(db: &DatabaseConnection, worker: &str, mark: i64) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(statement(
        DbBackend::Postgres,
        "DELETE FROM sync_sleepers WHERE worker = ? AND until_ms = ?",
        vec![worker.into(), mark.into()],
    ))
    .await
    .map_err(Error::db_while("marking the worker awake"))?;
    Ok(())
}

/// How long a worker that has just marked itself asleep waits at most for the transactions
/// appending touches at that moment to end, before it looks once more.
pub(crate) const APPENDERS_WAIT: Duration = Duration::from_millis(250);

/// Waits, up to `bound`, until the transactions that hold a lock on `sync_touches` now (other
/// than this connection's) have ended. Reads `pg_locks`; nothing on other backends. The
/// application's transactions are not waited *on* by anything: this only watches them.
pub(crate) async fn await_appenders(db: &DatabaseConnection, bound: Duration) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    const HOLDERS: &str = "SELECT DISTINCT virtualtransaction AS v FROM pg_locks \
         WHERE locktype = 'relation' AND relation = to_regclass('sync_touches')::oid \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND pid <> pg_backend_pid()";
    let context = || Error::db_while("waiting for the transactions appending touches");
    let holders = |rows: Vec<sea_orm::QueryResult>| -> Result<Vec<String>> {
        rows.iter()
            .map(|row| row.try_get::<String>("", "v").map_err(Into::into))
            .collect()
    };
    let first = holders(
        db.query_all_raw(statement(DbBackend::Postgres, HOLDERS, vec![]))
            .await
            .map_err(context())?,
    )?;
    if first.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + bound;
    let list = vec!["?"; first.len()].join(", ");
    let still = format!("{HOLDERS} AND virtualtransaction IN ({list})");
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let left = db
            .query_all_raw(statement(
                DbBackend::Postgres,
                &still,
                first.iter().map(|v| v.as_str().into()).collect(),
            ))
            .await
            .map_err(context())?;
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
    }
}

/// Marks `worker` awake: its work no longer needs the application's commits to notify.
pub(crate) async fn disarm(db: &DatabaseConnection, worker: &str) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(statement(
        DbBackend::Postgres,
        "DELETE FROM sync_sleepers WHERE worker = ?",
        vec![worker.into()],
    ))
    .await
    .map_err(Error::db_while("marking the worker awake"))?;
    Ok(())
}

/// Wakes every worker now, for operator actions that make groups due (retry, run now, full run,
/// forget): workers in this process in memory, and on PostgreSQL those in other processes with a
/// notification (sent when `db`'s transaction commits). Operator actions are rare, so their
/// notification costs the application's writers nothing. A failed notification is logged; the
/// workers' polls find the groups anyway.
pub(crate) async fn wake_workers<C: ConnectionTrait>(db: &C) {
    crate::wake::notify();
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    if let Err(error) = db
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_notify('sync_groups', current_schema())",
        ))
        .await
    {
        tracing::debug!(%error, "could not notify the workers; they find the groups when they poll");
    }
}

/// Wakes the workers' source loops now, after a source was asked to run (Run now, a full run, a
/// webhook): those in this process in memory, and on PostgreSQL those in other processes with a
/// notification on the `sync_sources` channel. A failed notification is logged; the workers run
/// the source at their next look (one poll interval at most).
pub(crate) async fn wake_sources(db: &DatabaseConnection) {
    crate::wake::notify_sources();
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    if let Err(error) = db
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_notify('sync_sources', current_schema())",
        ))
        .await
    {
        tracing::debug!(%error, "could not notify the workers' sources; they run it at their next poll");
    }
}
