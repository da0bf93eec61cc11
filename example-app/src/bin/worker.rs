//! The example app's worker binary: `DATABASE_URL`, `ERP_URL` and `CRM_URL` (and optionally
//! `ERP_TOKEN`, `CRM_TOKEN`) from the environment; `--help` lists the worker's settings.
//! Run `example-app migrate` first.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sync_worker::cli::main(|_settings| example_app::syncers::registry_from_env()).await
}
