//! A worker binary for the multi-process tests: the test syncers, pushing to
//! `TEST_REMOTE_URL`. Settings come from the usual flags and environment (`--help`).
//! `TEST_REGISTER_TWICE=1` registers a syncer twice, to test that startup refuses it.

use std::process::ExitCode;
use std::sync::Arc;

use sync_core::Error;
use sync_tests::syncers::{Knobs, try_registry};

#[tokio::main]
async fn main() -> ExitCode {
    sync_worker::cli::main(|_settings| {
        let url = std::env::var("TEST_REMOTE_URL").map_err(|_| {
            Error::Config(
                "`TEST_REMOTE_URL` is not set; it holds the base URL of the test remote".into(),
            )
        })?;
        let mut registry = try_registry(&url, &Arc::new(Knobs::default()))?;
        if std::env::var_os("TEST_REGISTER_TWICE").is_some() {
            let again = registry.get("erp.customer").expect("registered").clone();
            registry.register_arc(again)?;
        }
        Ok(registry)
    })
    .await
}
