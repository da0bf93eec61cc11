//! The command line of an application's worker binary: settings from flags and environment,
//! and the subcommands operators use.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sync_core::ops::{ForgetScope, RetryScope};
use sync_core::source::Sources;
use sync_core::{EngineConfig, Registry};

use crate::{Error, Worker, WorkerSettings, ops};

/// A sync worker.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Keeps remote systems in step with this application's data"
)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: Settings,
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings, from flags or the environment.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The application's database.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://app.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,
    /// This worker's name in leases and logs (default: host, pid and a random suffix).
    #[arg(long, env = "SYNC_WORKER_ID", global = true)]
    pub worker_id: Option<String>,
    /// Pushes in flight at once.
    #[arg(long, env = "SYNC_CONCURRENCY", global = true, default_value_t = 16)]
    pub concurrency: usize,
    /// Groups claimed at once.
    #[arg(long, env = "SYNC_BATCH_SIZE", global = true, default_value_t = 100)]
    pub batch_size: u32,
    /// Seconds a claim is held before another worker may take the group over.
    #[arg(long, env = "SYNC_LEASE_SECS", global = true, default_value_t = 60)]
    pub lease_secs: u64,
    /// Seconds one translate-and-push may take (longer pushes renew their lease).
    #[arg(
        long,
        env = "SYNC_PUSH_TIMEOUT_SECS",
        global = true,
        default_value_t = 30
    )]
    pub push_timeout_secs: u64,
    /// Failed attempts after which a group is dead.
    #[arg(long, env = "SYNC_MAX_ATTEMPTS", global = true, default_value_t = 8)]
    pub max_attempts: u32,
    /// Longest idle wait between looks at the queue, in milliseconds.
    #[arg(
        long,
        env = "SYNC_POLL_INTERVAL_MS",
        global = true,
        default_value_t = 1000
    )]
    pub poll_interval_ms: u64,
    /// Database connections.
    #[arg(long, env = "SYNC_POOL_SIZE", global = true, default_value_t = 10)]
    pub pool_size: u32,
    /// `run`: verify the groups against the remotes every this many seconds (unset: never on
    /// its own); drift is logged, counted in metrics and alerted once.
    #[arg(long, env = "SYNC_VERIFY_EVERY_SECS", global = true)]
    pub verify_every_secs: Option<u64>,
    /// With `--verify-every-secs`: verify one slice of this many per run, so that every group
    /// is read once per this many runs.
    #[arg(long, env = "SYNC_VERIFY_SLICES", global = true, default_value_t = 1)]
    pub verify_slices: u64,
    /// Serve Prometheus metrics on this address (e.g. `127.0.0.1:9100`).
    #[arg(long, env = "SYNC_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often to record a run per syncer and refresh the gauges, in milliseconds.
    #[arg(
        long,
        env = "SYNC_RUN_INTERVAL_MS",
        global = true,
        default_value_t = 10_000
    )]
    pub run_interval_ms: u64,
    /// POST a JSON alert here when a syncer starts failing and when it recovers.
    #[arg(
        long,
        env = "SYNC_ALERT_WEBHOOK",
        global = true,
        hide_env_values = true
    )]
    pub alert_webhook: Option<String>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Push dirty groups until SIGINT/SIGTERM (or, with `--once`, until nothing is due).
    Run {
        /// Stop when nothing is due instead of waiting for more.
        #[arg(long)]
        once: bool,
    },
    /// Per syncer: groups by state, oldest dirty age, last successful push, recent failures.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Failed and dead groups with their last error, attempts and next attempt.
    Failed {
        /// Only this syncer.
        #[arg(long)]
        syncer: Option<String>,
        /// At most this many groups.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make failed or dead groups due now: one group, one syncer's, or all dead ones. Exits
    /// non-zero when `--group` names no failed or dead group, or (with `--wait`) when groups are
    /// left failed or dead.
    Retry {
        /// The group's id (as `failed` shows it).
        #[arg(long, conflicts_with_all = ["syncer", "dead"])]
        group: Option<i64>,
        /// Every failed or dead group of this syncer.
        #[arg(long, conflicts_with = "dead")]
        syncer: Option<String>,
        /// Every dead group.
        #[arg(long)]
        dead: bool,
        /// Push them now and wait for the outcome.
        #[arg(long)]
        wait: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The remote lost records: forget their remote ids so that they are created again. One
    /// group, or every failed or dead group whose remote answered 404. Exits non-zero when
    /// `--group` names a group that cannot be forgotten, or (with `--wait`) when groups are left
    /// failed or dead.
    Forget {
        /// The group's id (as `failed` shows it).
        #[arg(long, conflicts_with_all = ["missing", "syncer"])]
        group: Option<i64>,
        /// Every failed or dead group whose last push the remote answered with 404.
        #[arg(long)]
        missing: bool,
        /// With `--missing`: only this syncer's groups.
        #[arg(long, requires = "missing")]
        syncer: Option<String>,
        /// Create them now and wait for the outcome.
        #[arg(long)]
        wait: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A full run: push every group of a syncer, ignoring digests, and wait until done. Exits
    /// non-zero when groups are left failed or dead.
    Resync {
        /// The syncer.
        syncer: String,
        /// Only mark the groups; let the running workers push them.
        #[arg(long)]
        no_wait: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Register every existing root of a syncer that has no group yet (the first full load), in
    /// batches; safe to stop and run again.
    Backfill {
        /// The syncer.
        syncer: String,
        /// Roots per batch.
        #[arg(long, default_value_t = 500)]
        batch: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The inbound sources: cursor, last run and its counts, lag, quarantined records. With
    /// `--run` or `--full`, asks the running workers for a run (Run now) or a full run of one
    /// source.
    Sources {
        /// Ask for a run of this source now.
        #[arg(long, conflicts_with_all = ["full", "quarantined"])]
        run: Option<String>,
        /// Ask for a full run of this source (from no cursor; deletes what vanished).
        #[arg(long, conflicts_with = "quarantined")]
        full: Option<String>,
        /// List the quarantined records, with payload and error.
        #[arg(long)]
        quarantined: bool,
        /// With `--quarantined`: only this source's.
        #[arg(long, requires = "quarantined")]
        source: Option<String>,
        /// With `--quarantined`: at most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A dry run of an inbound source: what its next run (or a full run) would create, update
    /// and delete locally, and which records would be quarantined, with the error. Nothing is
    /// written.
    PlanSource {
        /// The source.
        source: String,
        /// As a full run would (from no cursor; lists what vanished).
        #[arg(long)]
        full: bool,
        /// At most this many records.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// A dry run: what the next pass would create, update, delete or skip, and the payloads.
    Plan {
        /// Only this syncer.
        #[arg(long)]
        syncer: Option<String>,
        /// Every group, not only the dirty ones.
        #[arg(long)]
        all: bool,
        /// As a full run would (ignoring digests).
        #[arg(long)]
        full: bool,
        /// Print each payload.
        #[arg(long)]
        payloads: bool,
        /// At most this many groups.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Read what the remotes hold for the pushed groups and compare it with the current
    /// translations: in step, different (with the fields), missing (the remote lost it),
    /// unreadable; and, for the syncers whose remote can be listed, orphans (records the remote
    /// holds that no group points at; looked for only when whole syncers are verified, not with
    /// `--group` or `--limit`). Writes nothing unless asked to repair; exits non-zero when
    /// anything differs, is missing, is an orphan or could not be read. Each read (a record, a
    /// page of a listing) obeys the syncer's rate limits.
    Verify {
        /// Only this syncer.
        #[arg(long)]
        syncer: Option<String>,
        /// Only this group (no listing, no orphans).
        #[arg(long)]
        group: Option<i64>,
        /// At most this many groups, lowest ids first (no listing, no orphans).
        #[arg(long)]
        limit: Option<u64>,
        /// Read the groups only: list no remote collection, look for no orphans.
        #[arg(long)]
        groups_only: bool,
        /// Queue the repairs: differing records pushed again, missing ones created again (the
        /// running workers push them; run `verify` again afterwards). Orphans are left alone.
        #[arg(long)]
        repair: bool,
        /// With `--repair`: also delete the orphans on their remotes, now (under the syncers'
        /// rate limits), each deletion written to the attempt log.
        #[arg(long, requires = "repair")]
        delete_orphans: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

impl Settings {
    /// The worker settings these flags describe. Fails with a message naming the bad flag.
    pub fn worker_settings(&self) -> Result<WorkerSettings, Error> {
        let mut engine = EngineConfig::default();
        if let Some(id) = &self.worker_id {
            engine.worker_id = id.clone();
        }
        engine.concurrency = self.concurrency;
        engine.batch_size = self.batch_size;
        engine.lease = Duration::from_secs(self.lease_secs);
        engine.push_timeout = Duration::from_secs(self.push_timeout_secs);
        engine.max_attempts = self.max_attempts;
        engine.validate().map_err(|e| match e {
            sync_core::Error::Config(message) => Error::Config(format!("{message} (see --help)")),
            other => Error::Sync(other),
        })?;
        Ok(WorkerSettings {
            engine,
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            verify: self.verify_every_secs.map(|secs| {
                crate::VerifySchedule::every(Duration::from_secs(secs.max(1)))
                    .slices(self.verify_slices)
            }),
            ..WorkerSettings::default()
        })
    }
}

/// Parses the command line, builds the registry with `syncers` (only for the subcommands that
/// push or translate), and runs the subcommand. Errors are printed as one line on stderr; the
/// exit code is 2 for bad settings (and a database without the framework's tables), 1 for
/// anything else that was not done.
pub async fn main<F>(syncers: F) -> ExitCode
where
    F: FnOnce(&Settings) -> sync_core::Result<Registry>,
{
    main_with(syncers, |_| Ok(Sources::new())).await
}

/// [`main`] for a worker that also runs inbound sources, built with `sources` (only for `run`).
pub async fn main_with<F, G>(syncers: F, sources: G) -> ExitCode
where
    F: FnOnce(&Settings) -> sync_core::Result<Registry>,
    G: FnOnce(&Settings) -> sync_core::Result<Sources>,
{
    init_tracing();
    let cli = Cli::parse();
    match run_with(cli, syncers, sources).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            match error {
                Error::Config(_) | Error::Sync(sync_core::Error::Config(_)) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Runs a parsed command line.
pub async fn run<F>(cli: Cli, syncers: F) -> Result<(), Error>
where
    F: FnOnce(&Settings) -> sync_core::Result<Registry>,
{
    run_with(cli, syncers, |_| Ok(Sources::new())).await
}

/// Runs a parsed command line, with inbound sources.
pub async fn run_with<F, G>(cli: Cli, syncers: F, sources: G) -> Result<(), Error>
where
    F: FnOnce(&Settings) -> sync_core::Result<Registry>,
    G: FnOnce(&Settings) -> sync_core::Result<Sources>,
{
    let settings = cli.settings.worker_settings()?;
    let db = sync_core::connect(&cli.settings.database_url, cli.settings.pool_size).await?;
    sync_core::check_schema(&db).await?;
    let command = cli.command.clone().unwrap_or(Command::Run { once: false });
    // Commands that only read or mark groups need no remote: they do not build the registry
    // (whose syncers may need settings such as remote URLs).
    let registry = || -> Result<Registry, Error> {
        let registry = syncers(&cli.settings)?;
        for warning in registry.check_declared()? {
            tracing::warn!("{warning}");
        }
        Ok(registry)
    };
    match command {
        Command::Run { once } => {
            let sources = sources(&cli.settings)?;
            run_worker(&cli.settings, db, registry()?, sources, settings, once).await
        }
        Command::PlanSource {
            source,
            full,
            limit,
            json,
        } => {
            let sources = sources(&cli.settings)?;
            let Some(found) = sources.get(&source) else {
                return Err(Error::Config(format!(
                    "this worker has no source named `{source}`; it has: {}",
                    sources.names().join(", ")
                )));
            };
            ops::plan_source(&db, found.as_ref(), full, limit, json).await
        }
        Command::Sources {
            run,
            full,
            quarantined,
            source,
            limit,
            json,
        } => {
            if let Some(name) = run {
                sync_core::source::request_run(&db, &name).await?;
                println!("asked for a run of source `{name}`");
                return Ok(());
            }
            if let Some(name) = full {
                sync_core::source::request_full_run(&db, &name).await?;
                println!("asked for a full run of source `{name}`");
                return Ok(());
            }
            if quarantined {
                return ops::quarantined(&db, source.as_deref(), limit, json).await;
            }
            ops::sources(&db, json).await
        }
        Command::Status { json } => {
            // The registry, when it can be built, tells which syncers are one-time syncs.
            let create_only: Vec<String> = registry()
                .map(|r| {
                    r.names()
                        .into_iter()
                        .filter(|n| r.get(n).is_some_and(|s| s.create_only()))
                        .collect()
                })
                .unwrap_or_default();
            ops::status(&db, &[], &create_only, json).await
        }
        Command::Failed {
            syncer,
            limit,
            json,
        } => ops::failed(&db, syncer.as_deref(), limit, json).await,
        Command::Retry {
            group,
            syncer,
            dead,
            wait,
            json,
        } => {
            let scope = match (group, syncer, dead) {
                (Some(id), _, _) => RetryScope::Group(id),
                (None, Some(name), _) => RetryScope::Syncer(name),
                (None, None, true) => RetryScope::AllDead,
                (None, None, false) => {
                    return Err(Error::Config(
                        "say what to retry: --group ID, --syncer NAME or --dead".into(),
                    ));
                }
            };
            let wait = if wait {
                Some((registry()?, settings))
            } else {
                None
            };
            ops::retry(&db, scope, ops::Then { wait, json }).await
        }
        Command::Forget {
            group,
            missing,
            syncer,
            wait,
            json,
        } => {
            let scope = match (group, missing) {
                (Some(id), _) => ForgetScope::Group(id),
                (None, true) => ForgetScope::Missing { syncer },
                (None, false) => {
                    return Err(Error::Config(
                        "say what to forget: --group ID, or --missing for every group whose \
                         remote answered 404"
                            .into(),
                    ));
                }
            };
            let wait = if wait {
                Some((registry()?, settings))
            } else {
                None
            };
            ops::forget(&db, scope, ops::Then { wait, json }).await
        }
        Command::Resync {
            syncer,
            no_wait,
            json,
        } => ops::resync(&db, &registry()?, settings, &syncer, no_wait, json).await,
        Command::Backfill {
            syncer,
            batch,
            json,
        } => ops::backfill(&db, &registry()?, &syncer, batch, json).await,
        Command::Plan {
            syncer,
            all,
            full,
            payloads,
            limit,
            json,
        } => {
            let request = ops::PlanRequest {
                syncer,
                all,
                full,
                payloads,
                limit,
                json,
            };
            ops::plan(&db, &registry()?, request).await
        }
        Command::Verify {
            syncer,
            group,
            limit,
            groups_only,
            repair,
            delete_orphans,
            json,
        } => {
            let mut options = sync_core::verify::VerifyOptions::all();
            if let Some(syncer) = syncer {
                options = options.syncer(syncer);
            }
            if let Some(group) = group {
                options = options.group(group);
            }
            if let Some(limit) = limit {
                options = options.limit(limit);
            }
            if groups_only {
                options = options.groups_only();
            }
            let request = ops::VerifyRequest {
                options,
                repair,
                delete_orphans,
                json,
            };
            ops::verify(&db, registry()?, settings, &request).await
        }
    }
}

/// `run`: the worker, until a signal (or, with `once`, until nothing is due).
async fn run_worker(
    cli: &Settings,
    db: sea_orm::DatabaseConnection,
    registry: Registry,
    sources: Sources,
    mut settings: WorkerSettings,
    once: bool,
) -> Result<(), Error> {
    settings.report.run_interval = Duration::from_millis(cli.run_interval_ms.max(100));
    if let Some(url) = cli.alert_webhook.clone() {
        settings.report.alerts = settings.report.alerts.webhook(url);
    }
    if let Some(addr) = cli.metrics_listen {
        serve_metrics(addr)?;
    }
    let worker = Worker::new(db, registry, settings)?.with_sources(sources);
    if once {
        for report in worker.run_sources_once().await? {
            println!(
                "source {}: fetched {}, applied {}, skipped {}, quarantined {}, deleted {}",
                report.source,
                report.fetched,
                report.applied,
                report.skipped,
                report.quarantined,
                report.deleted
            );
        }
        let report = worker.run_until_idle(usize::MAX).await?;
        println!(
            "pushed {}, skipped {}, deleted {}, waiting {}, failed {}, dead {}, recreating {}",
            report.pushed,
            report.skipped,
            report.deleted,
            report.waiting,
            report.failed,
            report.dead,
            report.recreating
        );
        return Ok(());
    }
    worker.run().await
}

#[cfg(feature = "metrics")]
fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), Error> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Error::Config(format!("cannot serve metrics on {addr}: {e}")))?;
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}

#[cfg(not(feature = "metrics"))]
fn serve_metrics(addr: std::net::SocketAddr) -> Result<(), Error> {
    Err(Error::Config(format!(
        "cannot serve metrics on {addr}: this worker was built without the `metrics` feature of \
         sync-worker"
    )))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Does nothing if a subscriber is
/// already set.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal: a log written to a file carries no escape codes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
