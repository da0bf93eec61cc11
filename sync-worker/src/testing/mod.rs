//! A test kit for an application's own tests: a database to run them on, the groups a write
//! dirtied, a mock REST remote that records what it received, and the worker to step in between.
//! Behind the `testing` feature (add it to the application's dev-dependencies).
//!
//! ```no_run
//! # async fn demo(syncers: sync_core::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! use sync_worker::testing::{self, MockRemote, TestDatabase};
//! use sync_worker::{Worker, WorkerSettings};
//!
//! let t = TestDatabase::sqlite().await?;
//! // your_migrator::Migrator::up(&t.db, None).await?;  (it includes the framework's tables)
//! let remote = MockRemote::start().await; // point your syncers' `HttpRemote`s at remote.url()
//!
//! // … a write through your models, e.g. renaming customer 7 …
//! assert!(testing::is_dirty(&t.db, "crm.contact", 7).await?);
//!
//! let worker = Worker::new(t.db.clone(), syncers, WorkerSettings::default())?;
//! worker.run_until_idle(10).await?;
//! assert_eq!(remote.calls(), ["PUT /crm/contacts/1"]);
//! # Ok(()) }
//! ```

mod database;
mod remote;

pub use database::{TestDatabase, groups, is_dirty, mark_all_synced};
pub use remote::{Fault, FaultKind, Hold, Idempotency, MockRemote, RecordedRequest};
