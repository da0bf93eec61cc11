//! Running the inbound sources beside the outbound pipeline: each source on its own schedule
//! ([`Source::interval`](sync_core::source::Source::interval)), at once after Run now, a Full
//! run or a webhook ([`sync_core::source::request_run`]), one worker at a time (the source's
//! lease).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sync_core::source::{SourceReport, SourceRunOptions, Sources, run_source};

use crate::AlertSink;

/// Whether `source` is due: never run, its next run's time has come, or a full run was asked.
async fn due(db: &DatabaseConnection, source: &str, now: i64) -> sync_core::Result<bool> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT next_run_at, full_requested FROM sync_sources WHERE source = $1"
        }
        _ => "SELECT next_run_at, full_requested FROM sync_sources WHERE source = ?",
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [source.into()],
        ))
        .await
        .map_err(|source_error| sync_core::Error::DatabaseWhile {
            context: format!("reading when source `{source}` is due"),
            source: source_error,
        })?;
    Ok(match row {
        None => true,
        Some(row) => {
            let next: i64 = row.try_get("", "next_run_at")?;
            let full: bool = row.try_get("", "full_requested")?;
            full || next <= now
        }
    })
}

/// Runs every due source once, one after the other. A source's failure is logged and
/// returned in its place; the others still run.
pub(crate) async fn run_due(
    db: &DatabaseConnection,
    sources: &Sources,
    owner: &str,
    alerts: &AlertSink,
) -> Vec<(String, sync_core::Result<SourceReport>)> {
    let mut out = Vec::new();
    for source in sources.iter() {
        let name = source.name().to_owned();
        let started = sync_core::now_ms();
        let result = match due(db, &name, started).await {
            Ok(false) => continue,
            Ok(true) => run_source(db, source.as_ref(), &SourceRunOptions::new(owner)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            tracing::warn!(source = %name, %error, "source run failed");
        }
        if let Err(error) =
            crate::activity::record_source_run(db, owner, &name, started, &result, alerts).await
        {
            tracing::warn!(source = %name, %error, "could not record the source run");
        }
        out.push((name, result));
    }
    out
}

/// Looks for due sources every `poll` until aborted. A worker stopped mid-page loses nothing:
/// the page's transaction rolls back, and the next run (after the lease expires) repeats it.
pub(crate) fn spawn_loop(
    db: DatabaseConnection,
    sources: Sources,
    owner: String,
    poll: Duration,
    alerts: AlertSink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(sources = ?sources.names(), "inbound sources running");
        loop {
            run_due(&db, &sources, &owner, &alerts).await;
            tokio::time::sleep(poll).await;
        }
    })
}
