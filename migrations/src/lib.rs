//! Migrations for the tables sync-core keeps in the application's own database.
//!
//! An application adds them to its own migrator, beside its own migrations:
//!
//! ```
//! use sea_orm_migration::prelude::*;
//!
//! pub struct Migrator;
//!
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut migrations = sync_migrations::migrations();
//!         // migrations.push(Box::new(m20250101_000001_create_customers::Migration));
//!         migrations
//!     }
//! }
//! ```
//!
//! The names are namespaced (`sync_core::…`) and never change, so they do not collide with the
//! application's own migrations in `seaql_migrations`. SeaORM applies pending migrations in the
//! order the vector gives, so the framework's tables may come before or after the application's.
//!
//! [`SyncMigrator`] is a ready-made migrator holding only these migrations, for applications that
//! keep the framework's tables apart or for tests.

use sea_orm_migration::prelude::*;

mod m20261101_000001_create_sync_groups;
mod m20261101_000002_create_sync_attempts;
mod m20261101_000003_notify_on_touch;
mod m20261101_000004_create_sync_syncers;
mod m20261101_000005_sync_runs_and_dirty_since;
mod m20261129_000006_due_order_index;
mod m20261203_000007_touch_log_and_create_intents;
mod m20261203_000008_notify_only_sleepers;
mod m20261203_000009_inbound_sources;
mod m20261204_000010_touch_applier_lock;
mod m20261204_000011_sync_groups_fillfactor;
mod m20261204_000012_inbound_quarantine_partial_index;
mod m20261204_000013_sync_references;
mod m20261204_000014_touch_dependents;
mod m20261204_000015_due_index_without_synced;

/// Every migration of the framework, in the order they must run.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261101_000001_create_sync_groups::Migration),
        Box::new(m20261101_000002_create_sync_attempts::Migration),
        Box::new(m20261101_000003_notify_on_touch::Migration),
        Box::new(m20261101_000004_create_sync_syncers::Migration),
        Box::new(m20261101_000005_sync_runs_and_dirty_since::Migration),
        Box::new(m20261129_000006_due_order_index::Migration),
        Box::new(m20261203_000007_touch_log_and_create_intents::Migration),
        Box::new(m20261203_000008_notify_only_sleepers::Migration),
        Box::new(m20261203_000009_inbound_sources::Migration),
        Box::new(m20261204_000010_touch_applier_lock::Migration),
        Box::new(m20261204_000011_sync_groups_fillfactor::Migration),
        Box::new(m20261204_000012_inbound_quarantine_partial_index::Migration),
        Box::new(m20261204_000013_sync_references::Migration),
        Box::new(m20261204_000014_touch_dependents::Migration),
        Box::new(m20261204_000015_due_index_without_synced::Migration),
    ]
}

/// A migrator with only the framework's migrations.
#[derive(Debug)]
pub struct SyncMigrator;

impl MigratorTrait for SyncMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}
