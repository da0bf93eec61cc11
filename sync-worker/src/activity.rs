//! What a running worker reports: a run summary per syncer per interval, health alerts (one
//! notification per change between healthy and failing), pruning of old attempts and runs, and
//! Prometheus metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use sync_core::{Engine, Outcome, now_ms};

use crate::Result;

/// A change of a syncer's health.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alert {
    /// The syncer.
    pub syncer: String,
    /// `failing` or `recovered` (the syncer's health), `drift` or `in_step` (scheduled
    /// verification, see [`VerifySchedule`](crate::VerifySchedule)).
    pub state: &'static str,
    /// When (ms since the epoch).
    pub at: i64,
    /// Failures in the run that triggered it (verification: the groups drifting).
    pub failed: u32,
    /// Attempts in that run (verification: the groups read).
    pub attempted: u32,
}

/// A function called with each alert.
type AlertCallback = Arc<dyn Fn(&Alert) + Send + Sync>;

/// Where alerts go: a callback, a webhook URL, or both.
#[derive(Clone, Default)]
pub struct AlertSink {
    callback: Option<AlertCallback>,
    webhook: Option<String>,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink")
            .field("callback", &self.callback.is_some())
            .field("webhook", &self.webhook.as_ref().map(|_| "***"))
            .finish()
    }
}

impl AlertSink {
    /// Calls `callback` for every alert.
    pub fn callback(mut self, callback: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        self.callback = Some(Arc::new(callback));
        self
    }

    /// POSTs every alert as JSON to `url`.
    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook = Some(url.into());
        self
    }

    pub(crate) async fn send(&self, alert: &Alert) {
        tracing::warn!(syncer = %alert.syncer, state = alert.state, failed = alert.failed, "syncer alert");
        if let Some(callback) = &self.callback {
            callback(alert);
        }
        if let Some(url) = &self.webhook {
            let result = reqwest::Client::new()
                .post(url)
                .timeout(Duration::from_secs(10))
                .json(alert)
                .send()
                .await;
            if let Err(error) = result.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(%error, "could not deliver an alert to the webhook");
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    attempted: u32,
    pushed: u32,
    skipped: u32,
    failed: u32,
}

/// Counts outcomes per syncer between two flushes. Written by the task handlers, read by the
/// flush task.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    counters: Mutex<HashMap<String, Counters>>,
}

impl Activity {
    pub(crate) fn record(&self, syncer: &str, outcome: Outcome, duration: Duration) {
        let label = match outcome {
            Outcome::Pushed | Outcome::Deleted => "pushed",
            Outcome::Skipped => "skipped",
            Outcome::Waiting => "waiting",
            Outcome::Retry => "retry",
            Outcome::Dead => "dead",
            Outcome::Recreating => "recreate",
            _ => "failed",
        };
        metrics::counter!("sync_pushes_total", "syncer" => syncer.to_owned(), "outcome" => label)
            .increment(1);
        metrics::histogram!("sync_push_duration_seconds", "syncer" => syncer.to_owned())
            .record(duration.as_secs_f64());
        let mut all = self.counters.lock().expect("activity counters");
        let c = all.entry(syncer.to_owned()).or_default();
        c.attempted += 1;
        match label {
            "pushed" => c.pushed += 1,
            "skipped" => c.skipped += 1,
            "waiting" => {}
            _ => c.failed += 1,
        }
    }

    fn take(&self) -> HashMap<String, Counters> {
        std::mem::take(&mut *self.counters.lock().expect("activity counters"))
    }
}

/// How often the worker writes runs, refreshes gauges and prunes.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// One run row per syncer per interval with activity.
    pub run_interval: Duration,
    /// Attempts and clean runs older than this are deleted.
    pub keep_successes: Duration,
    /// Failed attempts and runs older than this are deleted.
    pub keep_failures: Duration,
    /// Where health alerts go.
    pub alerts: AlertSink,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            run_interval: Duration::from_secs(10),
            keep_successes: Duration::from_secs(7 * 24 * 3600),
            keep_failures: Duration::from_secs(30 * 24 * 3600),
            alerts: AlertSink::default(),
        }
    }
}

/// Writes the runs of one interval and updates each syncer's health, alerting on changes.
pub(crate) async fn flush(
    engine: &Engine,
    activity: &Activity,
    started_at: i64,
    alerts: &AlertSink,
) -> Result<()> {
    let now = now_ms();
    for (syncer, c) in activity.take() {
        let clean = c.failed == 0;
        tracing::info!(
            %syncer,
            attempted = c.attempted,
            pushed = c.pushed,
            skipped = c.skipped,
            failed = c.failed,
            seconds = (now - started_at) / 1000,
            "synced"
        );
        let db = engine.db();
        write_run(
            db,
            &syncer,
            &engine.config().worker_id,
            started_at,
            now,
            c,
            clean,
        )
        .await?;
        let changed =
            sync_core::__worker::record_health(db, &syncer, clean, c.pushed + c.skipped > 0, now)
                .await?;
        if changed {
            let alert = Alert {
                syncer: syncer.clone(),
                state: if clean { "recovered" } else { "failing" },
                at: now,
                failed: c.failed,
                attempted: c.attempted,
            };
            alerts.send(&alert).await;
        }
    }
    Ok(())
}

async fn write_run(
    db: &DatabaseConnection,
    syncer: &str,
    worker: &str,
    started: i64,
    finished: i64,
    c: Counters,
    clean: bool,
) -> Result<()> {
    use sea_orm::ActiveModelTrait;
    use sea_orm::ActiveValue::Set;
    use sync_core::entity::sync_run;
    sync_run::ActiveModel {
        syncer: Set(syncer.to_owned()),
        worker: Set(worker.to_owned()),
        started_at: Set(started),
        finished_at: Set(finished),
        attempted: Set(c.attempted as i32),
        pushed: Set(c.pushed as i32),
        skipped: Set(c.skipped as i32),
        failed: Set(c.failed as i32),
        clean: Set(clean),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(sync_core::Error::from)?;
    Ok(())
}

/// Records one run of an inbound source as outbound runs are recorded: a row of `sync_runs`
/// under `source:{name}` (attempted = fetched, pushed = applied and deleted, skipped,
/// failed = quarantined, clean = no error and nothing quarantined), its health with an alert
/// when it changes, and the records counted by outcome in the metrics.
pub(crate) async fn record_source_run(
    db: &DatabaseConnection,
    worker: &str,
    source: &str,
    started: i64,
    result: &sync_core::Result<sync_core::source::SourceReport>,
    alerts: &AlertSink,
) -> Result<()> {
    let now = now_ms();
    let name = format!("source:{source}");
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let (c, clean) = match result {
        Ok(r) if r.busy => return Ok(()),
        Ok(r) => {
            for (outcome, n) in [
                ("applied", r.applied),
                ("skipped", r.skipped),
                ("quarantined", r.quarantined),
                ("deleted", r.deleted),
            ] {
                metrics::counter!("sync_source_records_total", "source" => source.to_owned(), "outcome" => outcome)
                    .increment(n);
            }
            (
                Counters {
                    attempted: count(r.fetched),
                    pushed: count(r.applied + r.deleted),
                    skipped: count(r.skipped),
                    failed: count(r.quarantined),
                },
                r.quarantined == 0,
            )
        }
        Err(_) => (
            Counters {
                failed: 1,
                ..Counters::default()
            },
            false,
        ),
    };
    write_run(db, &name, worker, started, now, c, clean).await?;
    let changed = sync_core::__worker::record_health(db, &name, clean, true, now).await?;
    if changed {
        alerts
            .send(&Alert {
                syncer: name,
                state: if clean { "recovered" } else { "failing" },
                at: now,
                failed: c.failed,
                attempted: c.attempted,
            })
            .await;
    }
    Ok(())
}

/// Refreshes the gauges from the database.
pub(crate) async fn refresh_gauges(engine: &Engine) -> Result<()> {
    // The backlog, not the whole status: it reads only the groups that are not synced.
    let backlog =
        sync_core::ops::backlog(engine.db(), &engine.registry().names(), now_ms()).await?;
    for s in backlog {
        let name = s.syncer.clone();
        metrics::gauge!("sync_dirty_groups", "syncer" => name.clone()).set(s.dirty as f64);
        metrics::gauge!("sync_oldest_dirty_seconds", "syncer" => name.clone())
            .set(s.oldest_dirty_ms.unwrap_or(0) as f64 / 1000.0);
        metrics::gauge!("sync_dead_groups", "syncer" => name.clone()).set(s.dead as f64);
        metrics::gauge!("sync_failed_groups", "syncer" => name).set(s.failed as f64);
    }
    let now = now_ms();
    for s in sync_core::source::source_status(engine.db()).await? {
        if let Some(at) = s.last_success_at {
            metrics::gauge!("sync_source_lag_seconds", "source" => s.source.clone())
                .set((now - at) as f64 / 1000.0);
        }
        metrics::gauge!("sync_source_quarantined", "source" => s.source).set(s.quarantined as f64);
    }
    Ok(())
}

/// The background loop of a running worker: flush runs, refresh gauges, prune now and then.
pub(crate) async fn report_loop(engine: Engine, activity: Arc<Activity>, settings: ReportSettings) {
    let mut started = now_ms();
    let mut last_prune = 0_i64;
    if let Err(error) = refresh_gauges(&engine).await {
        tracing::debug!(%error, "could not refresh the metrics");
    }
    loop {
        tokio::time::sleep(settings.run_interval).await;
        if let Err(error) = flush(&engine, &activity, started, &settings.alerts).await {
            tracing::warn!(%error, "could not record the sync run");
        }
        started = now_ms();
        if let Err(error) = refresh_gauges(&engine).await {
            tracing::debug!(%error, "could not refresh the metrics");
        }
        if started - last_prune > 3_600_000 {
            last_prune = started;
            let keep_ok = settings.keep_successes.as_millis() as i64;
            let keep_failed = settings.keep_failures.as_millis() as i64;
            match sync_core::ops::prune(engine.db(), started, keep_ok, keep_failed).await {
                Ok((attempts, runs)) if attempts + runs > 0 => {
                    tracing::info!(attempts, runs, "pruned old attempts and runs");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not prune old attempts"),
            }
        }
    }
}
