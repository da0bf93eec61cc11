//! The example app's sync worker, to run beside `example-app serve` (or several of them, on
//! PostgreSQL). It pushes to the ERP at `ERP_URL` and the CRM at `CRM_URL` (with `ERP_TOKEN`
//! and `CRM_TOKEN` as bearer tokens when set), and reads `DATABASE_URL` and its other settings
//! from flags or the environment: `worker --help` lists them.
//!
//! It also runs the inbound sources (`sources`): the ERP's products and the CRM's contact edits.
//!
//! It does not create tables: run `example-app migrate` (or `serve`) first.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    sync_worker::cli::main_with(
        |_settings| example_app::syncers::registry_from_env(),
        |_settings| example_app::sources::sources_from_env(),
    )
    .await
}
