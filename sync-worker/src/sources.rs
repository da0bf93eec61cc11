//! Running the inbound sources beside the outbound pipeline: each source on its own schedule
//! ([`Source::interval`](sync_core::source::Source::interval)), at once after Run now, a Full
//! run or a webhook ([`sync_core::source::request_run`], which wakes the workers of every
//! process on PostgreSQL, of this process elsewhere), one worker at a time (the source's
//! lease), the due sources of a worker side by side.

use std::time::Duration;

use sea_orm::DatabaseConnection;
use sync_core::source::{SourceReport, SourceRunOptions, Sources, is_due, run_source};

use crate::AlertSink;

/// Runs every due source once, all at once (each under its own lease, so a slow source does not
/// hold back the others). A source's failure is logged and returned in its place; the others
/// still run.
pub(crate) async fn run_due(
    db: &DatabaseConnection,
    sources: &Sources,
    owner: &str,
    alerts: &AlertSink,
) -> Vec<(String, sync_core::Result<SourceReport>)> {
    let runs = sources.iter().map(|source| async move {
        let name = source.name().to_owned();
        let started = sync_core::now_ms();
        let result = match is_due(db, &name, started).await {
            Ok(false) => return None,
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
        Some((name, result))
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Looks for due sources every `poll`, and at once when a source is asked to run (in this
/// process, or on PostgreSQL in any process: see `listener`), until aborted. A worker stopped mid-page loses nothing:
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
            // Registered before the run: a request made during it runs the source again at once.
            let asked = sync_core::wake::sources_notified_future();
            run_due(&db, &sources, &owner, &alerts).await;
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = asked => {}
            }
        }
    })
}
