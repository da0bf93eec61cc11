//! `example-app`: the example's web app (`serve`), its story end to end (`demo`), and its
//! migrations (`migrate`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use sync_worker::dashboard::{Auth, Dashboard};
use sync_worker::testing::MockRemote;
use sync_worker::{Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

use example_app::{api, migration::Migrator, syncers};

/// The database `serve` and `migrate` use unless told otherwise; the worker binary's default too.
const DEFAULT_DATABASE_URL: &str = "sqlite://app.db?mode=rwc";

#[derive(Debug, Parser)]
#[command(version, about = "An example app kept in step with an ERP and a CRM")]
struct Cli {
    /// The database [default: `sqlite://app.db?mode=rwc`; for `demo`, a fresh temporary SQLite
    /// file]. PostgreSQL works too: `postgres://user:password@host/database`.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole story against mock remotes and check the result; exits non-zero if an
    /// expectation fails.
    Demo,
    /// Serve the JSON API, with a sync worker in the same process.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// The ERP's base URL [default: a mock ERP on loopback].
        #[arg(long)]
        erp_url: Option<String>,
        /// The CRM's base URL [default: a mock CRM on loopback].
        #[arg(long)]
        crm_url: Option<String>,
        /// Serve the API only, and leave syncing to worker processes (the `worker` binary).
        #[arg(long, conflicts_with_all = ["erp_url", "crm_url"])]
        no_worker: bool,
    },
    /// Create or update the tables: the framework's and the app's.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.command);
    let database_url = cli.database_url.as_deref();
    let result = match cli.command {
        Command::Demo => example_app::demo(database_url)
            .await
            .map(|report| report.passed()),
        Command::Serve {
            listen,
            erp_url,
            crm_url,
            no_worker,
        } => {
            let remotes = (!no_worker).then_some((erp_url, crm_url));
            serve(database_url, &listen, remotes).await.map(|()| true)
        }
        Command::Migrate => migrate(database_url).await.map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG`. By default the demo shows only errors, so that its
/// story reads cleanly, and the server shows what the worker does.
fn init_tracing(command: &Command) {
    let default = match command {
        Command::Demo => "error",
        Command::Serve { .. } => "info,sqlx=warn,sea_orm_migration=warn",
        Command::Migrate => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: a log written to a file carries no escape codes.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn connect(database_url: Option<&str>) -> anyhow::Result<(DatabaseConnection, String)> {
    let url = database_url.unwrap_or(DEFAULT_DATABASE_URL).to_owned();
    // The app and its in-process worker share the pool; SQLite needs several connections.
    let db = sync_core::connect(&url, 10).await?;
    Ok((db, url))
}

async fn migrate(database_url: Option<&str>) -> anyhow::Result<()> {
    let (db, url) = connect(database_url).await?;
    let pending = Migrator::get_pending_migrations(&db).await?.len();
    Migrator::up(&db, None)
        .await
        .context("running the migrations")?;
    println!(
        "{pending} migration(s) applied; {} is up to date",
        sync_core::redact_url(&url)
    );
    Ok(())
}

/// Serves the API until Ctrl-C. With `remotes`, a worker in this process pushes to them (mocks
/// for the ones not given); without, worker processes do.
async fn serve(
    database_url: Option<&str>,
    listen: &str,
    remotes: Option<(Option<String>, Option<String>)>,
) -> anyhow::Result<()> {
    let (db, url) = connect(database_url).await?;
    Migrator::up(&db, None)
        .await
        .context("running the migrations")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let app = format!("http://{}", listener.local_addr()?);
    println!("example-app on {app}");
    println!("  database  {}", sync_core::redact_url(&url));

    let stop_worker = CancellationToken::new();
    let mut mocks = Vec::new();
    let mut erp_for_hint = None;
    // The dashboard's Verify page needs the syncers: those of the worker in this process, or
    // those `ERP_URL` and `CRM_URL` describe, as for the worker binary.
    let verify_with;
    let worker = match remotes {
        None => {
            println!("  worker    none here: run the `worker` binary beside this server");
            verify_with = syncers::registry_from_env().ok();
            None
        }
        Some((erp_url, crm_url)) => {
            // Mock remotes stand in for the ones not given; they live as long as the server.
            let mut remote = async |name: &'static str, given: Option<String>| {
                let Some(url) = given else {
                    let mock = MockRemote::start().await;
                    let url = mock.url();
                    println!(
                        "  {name}       {url}   a mock: {url}/_mock/records shows its records"
                    );
                    mocks.push(mock);
                    return url;
                };
                println!("  {name}       {url}");
                url
            };
            let erp_url = remote("ERP", erp_url).await;
            let crm_url = remote("CRM", crm_url).await;
            let registry = syncers::registry(&erp_url, &crm_url)?;
            verify_with = Some(registry.clone());
            let sources = example_app::sources::sources(&erp_url, &crm_url)?;
            let worker =
                Worker::new(db.clone(), registry, WorkerSettings::default())?.with_sources(sources);
            println!("  worker    in this process, also pulling the ERP's products and CRM edits");
            erp_for_hint = Some(erp_url);
            Some(tokio::spawn(
                worker.run_until(stop_worker.clone().cancelled_owned()),
            ))
        }
    };
    println!();
    println!("Try:");
    println!(
        "  curl -s -X POST {app}/customers -H 'content-type: application/json' \\\n    \
         -d '{{\"name\": \"Ada Lovelace\", \"email\": \"ada@example.com\", \
         \"addresses\": [{{\"street\": \"12 Rue de Rivoli\", \"city\": \"Paris\"}}]}}'"
    );
    println!("  curl -s {app}/customers/1");
    let token =
        std::env::var("SYNC_DASHBOARD_TOKEN").unwrap_or_else(|_| format!("{:016x}", rand_token()));
    println!("Dashboard: {app}/sync (token: set SYNC_DASHBOARD_TOKEN; this run's is {token})");
    if let Some(erp) = erp_for_hint {
        println!("Inbound: publish a product in the ERP, then tell the app (its webhook):");
        println!(
            "  curl -s -X POST {erp}/products -H 'content-type: application/json' \\\n    \
             -d '{{\"sku\": \"TEA-01\", \"name\": \"Green tea\", \"price_cents\": 450, \
             \"stock\": 10, \"updated_at\": \"{}\"}}'",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        println!(
            "  curl -s -X POST {app}/sync/api/sources/erp.products/webhook -H 'authorization: Bearer {token}'"
        );
        println!("  curl -s {app}/sync/api/sources -H 'authorization: Bearer {token}'");
    }
    println!("Ctrl-C stops.");

    match &verify_with {
        Some(_) => println!("Verify: {app}/sync/verify compares the remotes with the local data"),
        None => println!(
            "Verify: not on this dashboard (set ERP_URL and CRM_URL to give it the syncers)"
        ),
    }
    let mut dashboard = Dashboard::new(db.clone(), "/sync", Auth::bearer(token));
    if let Some(registry) = verify_with {
        dashboard = dashboard.with_registry(registry);
    }
    axum::serve(listener, api::app(db).nest("/sync", dashboard.router()))
        .with_graceful_shutdown(sync_worker::shutdown_signal())
        .await?;
    stop_worker.cancel();
    if let Some(worker) = worker {
        worker.await?.context("stopping the worker")?;
    }
    Ok(())
}

/// A random token for the dashboard when none is configured.
fn rand_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
