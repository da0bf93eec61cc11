//! The worker: an apalis worker fed by [`GroupBackend`], or stepped with [`Worker::run_once`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use sea_orm::DatabaseConnection;
use sync_core::__worker::{self, PreparedGroup};
use sync_core::source::{SourceReport, Sources};
use sync_core::{Engine, EngineConfig, PassReport, Registry};

use crate::activity::{Activity, ReportSettings};
use crate::backend::{GroupBackend, PollSettings};
use crate::recorder::Recorder;
use crate::{Error, Result};

/// How a worker runs, beyond the [`EngineConfig`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSettings {
    /// The engine's settings (worker id, concurrency, lease, timeouts, attempts).
    pub engine: EngineConfig,
    /// The longest idle wait between two looks at the queue when no wake-up comes.
    pub poll_interval: Duration,
    /// How long shutdown waits for in-flight pushes before giving up on them.
    pub shutdown_timeout: Duration,
    /// After a wake-up, how long to let a burst of writes settle before claiming (zero by
    /// default: an idle worker claims at once). Coalescing does not need it: a group being
    /// pushed collects the writes that arrive meanwhile into its next push; a delay only
    /// merges the first writes of a burst into the first push, at the cost of latency.
    pub wake_delay: Duration,
    /// Runs, alerts, pruning.
    pub report: ReportSettings,
    /// Verify the groups against the remotes on a schedule (`None`, the default: only when an
    /// operator runs `verify`).
    pub verify: Option<crate::VerifySchedule>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            engine: EngineConfig::default(),
            poll_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(60),
            wake_delay: Duration::ZERO,
            report: ReportSettings::default(),
            verify: None,
        }
    }
}

/// A sync worker. Build it once per process; run it with [`run`](Worker::run) beside the web
/// app, or step it with [`run_once`](Worker::run_once) in tests.
#[derive(Debug, Clone)]
pub struct Worker {
    engine: Engine,
    settings: WorkerSettings,
    activity: Arc<Activity>,
    sources: Sources,
}

impl Worker {
    /// A worker over `db` pushing with the syncers in `registry`. Fails on invalid settings.
    pub fn new(
        db: DatabaseConnection,
        registry: Registry,
        settings: WorkerSettings,
    ) -> Result<Self> {
        if settings.poll_interval.is_zero() {
            return Err(Error::Config(
                "the poll interval must be longer than zero".into(),
            ));
        }
        // A syncer no model declares (a misspelt name) can never have a group: refuse it.
        registry.check_declared()?;
        let engine = Engine::new(db, registry, settings.engine.clone())?;
        Ok(Self::from_engine(engine, settings))
    }

    /// A worker around an engine built elsewhere (e.g. with a test clock).
    pub fn from_engine(engine: Engine, settings: WorkerSettings) -> Self {
        let activity = Arc::<Activity>::default();
        let counts = activity.clone();
        // Every attempt the engine records is counted for runs, alerts and metrics.
        let engine = __worker::observed(engine, move |syncer, outcome, duration| {
            counts.record(syncer, outcome, duration);
        });
        Worker {
            engine,
            settings,
            activity,
            sources: Sources::new(),
        }
    }

    /// The same worker, also running the inbound `sources`: each on its schedule, at once when
    /// a run is requested, one worker process at a time.
    pub fn with_sources(mut self, sources: Sources) -> Self {
        self.sources = sources;
        self
    }

    /// The inbound sources it runs.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Runs every inbound source that is due once (see
    /// [`sync_core::source::run_source`]). For one-shot runs and tests; [`run`](Worker::run)
    /// runs them on their schedules. The first failure is returned after every due source ran.
    pub async fn run_sources_once(&self) -> Result<Vec<SourceReport>> {
        self.sources.check_mirrors(self.engine.registry())?;
        let results = crate::sources::run_due(
            self.engine.db(),
            &self.sources,
            &self.engine.config().worker_id,
            &self.settings.report.alerts,
        )
        .await;
        let mut reports = Vec::new();
        let mut first_error = None;
        for (_, result) in results {
            match result {
                Ok(report) => reports.push(report),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(reports),
        }
    }

    /// The engine it runs.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// One claim-push-record pass over at most `batch_size` due groups. Returns what happened;
    /// `claimed == 0` means nothing was due.
    pub async fn run_once(&self) -> Result<PassReport> {
        let started = sync_core::now_ms();
        let report = self.engine.run_once().await;
        self.flushed(started, report).await
    }

    /// Passes until nothing is due (at most `max_passes`), summed ([`Engine::run`]); then
    /// writes the run and health rows once. For one-shot runs (`run --once`), operator commands
    /// and tests; a deployed worker runs [`run`](Worker::run).
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<PassReport> {
        let started = sync_core::now_ms();
        let report = self.engine.run_until_idle(max_passes).await;
        self.flushed(started, report).await
    }

    /// Writes the run and health rows of what was recorded since `started` (also when the run
    /// then failed: what was recorded before the error counts), then returns `report`.
    async fn flushed(
        &self,
        started: i64,
        report: sync_core::Result<PassReport>,
    ) -> Result<PassReport> {
        crate::activity::flush(
            &self.engine,
            &self.activity,
            started,
            &self.settings.report.alerts,
        )
        .await?;
        Ok(report?)
    }

    /// Runs until SIGINT or SIGTERM, then finishes the pushes in flight, releases the groups
    /// claimed but not started, and returns.
    pub async fn run(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `stop` completes, then shuts down as [`run`](Worker::run) does.
    ///
    /// Fails at once, naming the missing migrations, when the database lacks the framework's
    /// tables ([`sync_core::check_schema`]), and naming the table or column, when a syncer's
    /// [`TableSink`](sync_core::TableSink) cannot write its table
    /// ([`TableSink::check`](sync_core::TableSink::check)).
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        sync_core::check_schema(self.engine.db()).await?;
        for warning in self.engine.registry().check_declared()? {
            tracing::warn!("{warning}");
        }
        check_table_sinks(self.engine.registry()).await?;
        self.sources.check_mirrors(self.engine.registry())?;
        let config = self.engine.config().clone();
        // The apalis timeout is a backstop around translate, push and record; the engine
        // already bounds the push itself (and keeps its lease alive meanwhile).
        let backstop = config.push_timeout + Duration::from_secs(10);
        let poll = PollSettings {
            poll_interval: self.settings.poll_interval,
            // A claim of `batch_size` (at least twice the concurrency, so that every slot stays
            // busy between claims) spreads the claim's commit over many pushes; what is claimed
            // but not started when the worker stops is released.
            claim_batch: u32::try_from(config.concurrency.saturating_mul(2))
                .unwrap_or(u32::MAX)
                .max(config.batch_size),
            error_backoff: Duration::from_millis(200),
            wake_delay: self.settings.wake_delay,
        };
        let engine = self.engine.clone();
        let activity = self.activity.clone();
        let reporter = tokio::spawn(crate::activity::report_loop(
            engine.clone(),
            activity.clone(),
            self.settings.report.clone(),
        ));
        tracing::info!(worker = %config.worker_id, syncers = ?engine.registry().names(), concurrency = config.concurrency, "sync worker starting");
        report_unknown_syncers(&engine).await;
        #[cfg(feature = "sqlx-postgres")]
        let listener = crate::listener::spawn(self.engine.db());
        let inbound = (!self.sources.is_empty()).then(|| {
            crate::sources::spawn_loop(
                engine.db().clone(),
                self.sources.clone(),
                config.worker_id.clone(),
                self.settings.poll_interval,
                self.settings.report.alerts.clone(),
            )
        });
        let verifier = self.settings.verify.clone().map(|schedule| {
            crate::verifier::spawn_loop(
                engine.clone(),
                schedule,
                self.settings.report.alerts.clone(),
            )
        });
        let (recorder, recording) = Recorder::spawn(engine.clone(), 500);
        let result = Monitor::new()
            .register(move |_restart| {
                WorkerBuilder::new(config.worker_id.clone())
                    .backend(GroupBackend::new(engine.clone(), poll.clone()))
                    .data(engine.clone())
                    .data(recorder.clone())
                    .catch_panic()
                    .concurrency(config.concurrency)
                    .timeout(backstop)
                    .build(handle)
            })
            .shutdown_timeout(self.settings.shutdown_timeout)
            .run_with_signal(async move {
                stop.await;
                tracing::info!("shutting down: finishing pushes in flight");
                Ok(())
            })
            .await
            .map_err(|e| Error::Runtime(e.to_string()));
        // The monitor is gone, and with it every task's recorder handle: record what is queued.
        recording.finish(self.settings.shutdown_timeout).await;
        #[cfg(feature = "sqlx-postgres")]
        if let Some(listener) = listener {
            listener.abort();
        }
        reporter.abort();
        if let Some(inbound) = inbound {
            inbound.abort();
        }
        if let Some(verifier) = verifier {
            verifier.abort();
        }
        let _ = crate::activity::flush(
            &self.engine,
            &self.activity,
            sync_core::now_ms(),
            &self.settings.report.alerts,
        )
        .await;
        result?;
        tracing::info!("sync worker stopped");
        Ok(())
    }
}

/// Warns about dirty groups whose syncer this worker does not know: they are left alone, not
/// claimed and retried forever.
async fn report_unknown_syncers(engine: &Engine) {
    match engine.unknown_syncers().await {
        Ok(unknown) => {
            for (syncer, groups) in unknown {
                tracing::warn!(%syncer, groups, "dirty groups of a syncer this worker does not know; they are not claimed (is a syncer missing from the registry, or was one renamed?)");
            }
        }
        Err(error) => tracing::warn!(%error, "could not check for groups of unknown syncers"),
    }
}

/// The apalis task handler: process one claimed group and hand the attempt to the recorder,
/// which commits it with the other attempts waiting at that moment and counts it.
async fn handle(
    prepared: PreparedGroup,
    engine: Data<Engine>,
    recorder: Data<Recorder>,
) -> std::result::Result<(), BoxDynError> {
    let attempt = __worker::process_prepared(&engine, prepared, false).await;
    recorder.submit(attempt).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Reads the catalog of every syncer's table sink, so that a missing table or column (or a
/// MySQL table without a unique key) stops the worker at startup with a message naming it. A
/// sink database that cannot be reached now is only logged: the pushes retry.
async fn check_table_sinks(registry: &Registry) -> Result<()> {
    for name in registry.names() {
        let Some(sink) = registry.get(&name).and_then(|s| s.table()) else {
            continue;
        };
        match sink.check().await {
            Ok(()) => {}
            Err(error @ sync_core::Error::Config(_)) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(syncer = %name, %error, "could not check the table sink at startup; its pushes will retry");
            }
        }
    }
    Ok(())
}
