//! Running the inbound sources beside the outbound pipeline: each source on its own schedule
//! ([`Source::interval`](sync_core::source::Source::interval)), at once after Run now, a Full
//! run or a webhook ([`sync_core::source::request_run`]), one worker at a time (the source's
//! lease).

use std::time::Duration;

use sea_orm::DatabaseConnection;
use sync_core::source::{SourceReport, SourceRunOptions, Sources, is_due, run_source};

use crate::AlertSink;

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
        let result = match is_due(db, &name, started).await {
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
