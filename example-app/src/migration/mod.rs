//! The application's migrator: the framework's tables (`sync_groups`, `sync_touches`,
//! `sync_attempts`, `sync_syncers`, `sync_runs`), then the application's own.
//!
//! Run it with `example-app migrate` (`serve` and `demo` run it themselves).

use sea_orm_migration::prelude::*;

mod m20261120_000001_create_customers;
mod m20261120_000002_create_orders;
mod m20261203_000003_create_products;

/// Every migration of the application, the framework's first.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = sync_migrations::migrations();
        migrations.push(Box::new(m20261120_000001_create_customers::Migration));
        migrations.push(Box::new(m20261120_000002_create_orders::Migration));
        migrations.push(Box::new(m20261203_000003_create_products::Migration));
        migrations
    }
}
