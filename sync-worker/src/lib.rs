//! The sync worker: runs beside the web app, claims dirty sync groups, pushes them, records the
//! outcome. Built on apalis as its runtime (concurrency limit, timeouts, panic capture,
//! graceful shutdown); durability — leases, backoff, dead groups — lives in `sync_groups`.
//!
//! An application's worker binary:
//!
//! ```no_run
//! # struct MySyncer;
//! # #[sync_core::async_trait]
//! # impl sync_core::Syncer for MySyncer {
//! #     fn name(&self) -> &str { "crm.contact" }
//! #     async fn translate(&self, _: &sync_core::TranslateContext<'_>) -> sync_core::Result<Option<serde_json::Value>> { Ok(None) }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     sync_worker::cli::main(|_settings| {
//!         let mut syncers = sync_core::Registry::new();
//!         syncers.register(MySyncer)?;
//!         Ok(syncers)
//!     })
//!     .await
//! }
//! ```

mod activity;
mod backend;
pub mod cli;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
mod format;
#[cfg(feature = "sqlx-postgres")]
mod listener;
mod ops;
mod progress;
mod recorder;
mod sources;
#[cfg(feature = "testing")]
pub mod testing;
mod verifier;
mod worker;

#[doc(inline)]
pub use activity::{Alert, AlertSink, ReportSettings};
#[doc(inline)]
pub use backend::{BackendError, GroupBackend, PollSettings};
#[doc(inline)]
pub use error::{Error, Result};
#[doc(inline)]
pub use verifier::VerifySchedule;
#[doc(inline)]
pub use worker::{Worker, WorkerSettings, shutdown_signal};
