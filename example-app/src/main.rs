//! `example-app demo | serve | migrate`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sea_orm_migration::MigratorTrait;
use sync_worker::testing::MockRemote;
use sync_worker::{Worker, WorkerSettings};

use example_app::{api, demo, migration::Migrator, syncers};

#[derive(Debug, Parser)]
#[command(about = "An example app kept in step with an ERP and a CRM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole story on a temporary SQLite database (or DATABASE_URL) and check the result.
    Demo {
        /// The database (default: a fresh temporary SQLite file).
        #[arg(long, env = "DEMO_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Serve the API with a worker in the same process.
    Serve {
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://example-app.db?mode=rwc",
            hide_env_values = true
        )]
        database_url: String,
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// The ERP's base URL (default: a mock ERP on loopback).
        #[arg(long, env = "ERP_URL")]
        erp_url: Option<String>,
        /// The CRM's base URL (default: a mock CRM on loopback).
        #[arg(long, env = "CRM_URL")]
        crm_url: Option<String>,
    },
    /// Apply the migrations (the framework's tables and the app's).
    Migrate {
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://example-app.db?mode=rwc",
            hide_env_values = true
        )]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Demo { .. });
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        if quiet {
            "error".into()
        } else {
            "info,sqlx=warn".into()
        }
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Demo { database_url } => Ok(demo::run(database_url).await?.passed()),
        Command::Migrate { database_url } => {
            let db = sync_core::connect(&database_url, 2).await?;
            Migrator::up(&db, None).await?;
            println!(
                "migrations applied to {}",
                sync_core::redact_url(&database_url)
            );
            Ok(true)
        }
        Command::Serve {
            database_url,
            listen,
            erp_url,
            crm_url,
        } => {
            let db = sync_core::connect(&database_url, 10).await?;
            Migrator::up(&db, None)
                .await
                .context("running the migrations")?;
            let mut mocks = Vec::new();
            let mut remote_url = |given: Option<String>, name: &str| -> anyhow::Result<_> {
                Ok(match given {
                    Some(url) => url,
                    None => {
                        let mock = futures_block(MockRemote::start());
                        let url = format!("{}/api", mock.url());
                        println!(
                            "mock {name} at {url} (GET {}/_mock/records shows what it holds)",
                            mock.url()
                        );
                        mocks.push(mock);
                        url
                    }
                })
            };
            let erp = remote_url(erp_url, "ERP")?;
            let crm = remote_url(crm_url, "CRM")?;
            let registry = syncers::registry(&erp, &crm)?;
            let mut settings = WorkerSettings::default();
            settings.poll_interval = Duration::from_millis(500);
            let worker = Worker::new(db.clone(), registry, settings)?;
            let worker = tokio::spawn(worker.run());
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            println!("API on http://{listen}; Ctrl-C stops");
            axum::serve(listener, api::app(db))
                .with_graceful_shutdown(sync_worker::shutdown_signal())
                .await?;
            worker.await??;
            drop(mocks);
            Ok(true)
        }
    }
}

/// Starts a mock remote from inside the runtime.
fn futures_block<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}
