//! Checks that the framework's tables are there, with the columns this version needs, so that a
//! forgotten migration is reported as such and not as "no such table" at the first statement.

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::store::statement;
use crate::{Error, Result};

/// What each framework migration adds that this version reads, by migration name.
const NEEDED: &[(&str, &str, &str)] = &[
    (
        "sync_core::m20261101_000001_create_sync_groups",
        "sync_groups",
        "id, syncer, root_key, version, synced_version, state, remote_id, last_digest, lease_owner",
    ),
    (
        "sync_core::m20261101_000002_create_sync_attempts",
        "sync_attempts",
        "id, group_id, outcome",
    ),
    (
        "sync_core::m20261101_000004_create_sync_syncers",
        "sync_syncers",
        "syncer, paused_until, healthy",
    ),
    (
        "sync_core::m20261101_000005_sync_runs_and_dirty_since",
        "sync_runs",
        "id, syncer",
    ),
    (
        "sync_core::m20261101_000005_sync_runs_and_dirty_since",
        "sync_groups",
        "dirty_since",
    ),
    (
        "sync_core::m20261203_000007_touch_log_and_create_intents",
        "sync_touches",
        "id, syncer, root_key, mark, at",
    ),
    (
        "sync_core::m20261203_000007_touch_log_and_create_intents",
        "sync_groups",
        "create_key, create_payload, remote_id_numeric, last_status",
    ),
    (
        "sync_core::m20261203_000008_notify_only_sleepers",
        "sync_sleepers",
        "worker, until_ms",
    ),
    (
        "sync_core::m20261203_000009_inbound_sources",
        "sync_sources",
        "source, next_cursor, state, full_run, lease_owner, last_deleted",
    ),
    (
        "sync_core::m20261203_000009_inbound_sources",
        "sync_inbound",
        "source, remote_id, digest, state, payload, seen_run",
    ),
    (
        "sync_core::m20261204_000010_touch_applier_lock",
        "sync_touch_applier",
        "id",
    ),
    (
        "sync_core::m20261204_000013_sync_references",
        "sync_references",
        "target_syncer, target_key, referrer_id, referrer_syncer, referrer_key, remote_id",
    ),
    (
        "sync_core::m20261204_000013_sync_references",
        "sync_groups",
        "references_digest, remote_id_forgotten",
    ),
    (
        "sync_core::m20261204_000014_touch_dependents",
        "sync_touches",
        "dependent, dependent_key",
    ),
];

/// Checks that the database has the framework's tables and columns. Fails with
/// [`Error::Config`] naming the migrations that were not run (and how to run them), or with
/// the database's error when the database cannot be read at all.
pub async fn check_schema(db: &DatabaseConnection) -> Result<()> {
    let backend = db.get_database_backend();
    // The connection works? Otherwise every probe fails, and that is not a missing migration.
    db.query_one_raw(statement(backend, "SELECT 1 AS one", vec![]))
        .await
        .map_err(Error::db_while("checking the framework's tables"))?;
    let mut missing: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for (migration, table, columns) in NEEDED {
        let probe = format!("SELECT {columns} FROM {table} WHERE 1 = 0");
        if let Err(error) = db.query_all_raw(statement(backend, &probe, vec![])).await
            && !missing.contains(migration)
        {
            missing.push(migration);
            found.push(format!("`{table}` ({columns}): {error}"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the database lacks the framework's tables or columns; these migrations have not run: {}. \
         Add `sync_migrations::migrations()` to your application's migrator and run it (the \
         worker does not run migrations). First failure: {}",
        missing.join(", "),
        found[0]
    )))
}
