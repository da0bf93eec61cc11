//! `example-app demo`: the whole story on a fresh database, two mock remotes and a worker, all in
//! this process, driven through the app's HTTP API. Prints each step, what the remotes received
//! during it and whether the expectations held, then checks that the remotes hold exactly the
//! translation of the local data.

mod check;
mod drift;
mod harness;
mod inbound;
mod story;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use sea_orm_migration::MigratorTrait;
use sync_core::EngineConfig;
use sync_core::entity::{sync_attempt, sync_group};
use sync_worker::testing::MockRemote;
use sync_worker::{Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::entities::customer;
use crate::migration::Migrator;
use crate::{api, syncers};
use harness::Demo;

/// What the demo found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DemoReport {
    /// Each step with its expectations.
    pub steps: Vec<StepReport>,
    /// Where a remote differs from the translation of the local data (empty when they agree).
    pub mismatches: Vec<String>,
    /// What each remote received.
    pub pushes: Vec<Pushes>,
    /// Pushes the worker skipped because the remote already held the payload.
    pub skipped_by_digest: usize,
    /// Wall time, from start to summary.
    pub elapsed: Duration,
}

/// One step of the story.
#[derive(Debug)]
#[non_exhaustive]
pub struct StepReport {
    /// What the step does.
    pub title: String,
    /// What was expected, and whether it held.
    pub checks: Vec<(String, bool)>,
}

/// The requests one remote received.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Pushes {
    /// `ERP` or `CRM`.
    pub remote: &'static str,
    /// `POST`s.
    pub creates: usize,
    /// `PUT`s.
    pub updates: usize,
    /// `DELETE`s.
    pub deletes: usize,
}

impl Pushes {
    /// Every request.
    pub fn total(&self) -> usize {
        self.creates + self.updates + self.deletes
    }
}

impl StepReport {
    /// Every expectation of the step held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }
}

impl DemoReport {
    /// Every expectation held and the remotes agree with the local data.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.steps.iter().all(StepReport::passed)
    }
}

/// Runs the demo on `database_url`, or on a fresh temporary SQLite file when `None`, printing the
/// story to stdout. Fails if the demo could not run to the end (a request failed, the worker did
/// not catch up); a run whose expectations did not hold returns a report that has not
/// [`passed`](DemoReport::passed).
pub async fn demo(database_url: Option<&str>) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => sqlite_url(&temp.path().join("demo.db")),
    };
    let db = sync_core::connect(&url, 8).await?;
    Migrator::up(&db, None)
        .await
        .context("running the migrations")?;
    ensure_empty(&db, &url).await?;

    let erp = MockRemote::start().await;
    let crm = MockRemote::start().await;
    let (erp_url, crm_url) = (erp.url(), crm.url());
    let registry = syncers::registry(&erp_url, &crm_url)?;
    let settings = worker_settings();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    print_intro(database_url, &app_url, &erp, &crm, &settings);
    let mut demo = Demo::new(db.clone(), app_url, erp, crm, registry.clone())?;

    let stop = CancellationToken::new();
    let worker = Worker::new(db.clone(), registry, settings)?
        .with_sources(crate::sources::sources(&erp_url, &crm_url)?);
    let worker = tokio::spawn(worker.run_until(stop.clone().cancelled_owned()));
    let server = tokio::spawn(
        axum::serve(listener, api::app(db.clone()))
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    let outcome = match demo.story().await {
        Ok(()) => demo.check_remotes().await,
        Err(error) => Err(error),
    };
    stop.cancel();
    worker.await?.context("stopping the worker")?;
    server.await?.context("stopping the app")?;
    outcome?;

    let mut report = demo.into_report();
    let skipped = sync_attempt::Entity::find()
        .filter(sync_attempt::Column::Outcome.eq("skipped"))
        .count(&db)
        .await?;
    report.skipped_by_digest = usize::try_from(skipped)?;
    report.elapsed = started.elapsed();
    print_summary(&report);
    Ok(report)
}

/// The worker's settings: the defaults, with short delays so that the story runs quickly.
fn worker_settings() -> WorkerSettings {
    let mut engine = EngineConfig::default();
    engine.worker_id = "demo-worker".into();
    engine.not_ready_delay = Duration::from_millis(300);
    let mut settings = WorkerSettings::default();
    settings.engine = engine;
    settings.poll_interval = Duration::from_millis(100);
    settings.shutdown_timeout = Duration::from_secs(5);
    settings
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The demo checks every group and every remote record, so it needs a database of its own.
async fn ensure_empty(db: &DatabaseConnection, url: &str) -> anyhow::Result<()> {
    let customers = customer::Entity::find().count(db).await?;
    let groups = sync_group::Entity::find().count(db).await?;
    if customers > 0 || groups > 0 {
        bail!(
            "the demo needs an empty database, and {} already holds {customers} customer(s) and \
             {groups} sync group(s); point DATABASE_URL at a fresh database, or unset it to use a \
             temporary SQLite file",
            sync_core::redact_url(url)
        );
    }
    Ok(())
}

fn print_intro(
    database_url: Option<&str>,
    app_url: &str,
    erp: &MockRemote,
    crm: &MockRemote,
    settings: &WorkerSettings,
) {
    let database = match database_url {
        Some(url) => sync_core::redact_url(url),
        None => "a fresh SQLite file, deleted at the end".to_owned(),
    };
    println!("seaorm-sync demo: an app kept in step with an ERP and a CRM");
    println!();
    println!("  database  {database}");
    println!("  app       {app_url}   the example's JSON API, called below");
    println!(
        "  ERP       {}   a mock remote that stores what it receives",
        erp.url()
    );
    println!("  CRM       {}   another one", crm.url());
    println!(
        "  worker    in this process; polls every {} ms, retries a not-ready group after {} ms",
        settings.poll_interval.as_millis(),
        settings.engine.not_ready_delay.as_millis()
    );
    println!();
    println!("Each step calls the app, waits until the worker has caught up, shows what the");
    println!("remotes received (←) and checks what was expected (✓).");
}

fn print_summary(report: &DemoReport) {
    let steps = report.steps.len();
    let passed = report.steps.iter().filter(|s| s.passed()).count();
    let checks: usize = report.steps.iter().map(|s| s.checks.len()).sum();
    println!();
    println!("Summary");
    println!("  steps      {passed}/{steps} passed ({checks} expectations)");
    for pushes in &report.pushes {
        println!(
            "  {}        {}: {}, {}, {}",
            pushes.remote,
            plural(pushes.total(), "request", "requests"),
            plural(pushes.creates, "create", "creates"),
            plural(pushes.updates, "update", "updates"),
            plural(pushes.deletes, "delete", "deletes"),
        );
    }
    println!(
        "  skipped    {} by digest: the remote already held the payload",
        plural(report.skipped_by_digest, "push", "pushes")
    );
    if report.mismatches.is_empty() {
        println!("  remotes    equal to the translation of the local data");
    } else {
        println!(
            "  remotes    {} difference(s) from the local data",
            report.mismatches.len()
        );
    }
    println!("  time       {:.1} s", report.elapsed.as_secs_f64());
    println!();
    println!("{}", if report.passed() { "PASS" } else { "FAIL" });
}
