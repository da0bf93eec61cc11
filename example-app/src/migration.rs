//! The application's migrator: the framework's tables, then the application's own.

use sea_orm::{ConnectionTrait, Schema};
use sea_orm_migration::prelude::*;

use crate::entities::{address, billing_info, customer, line_item, order};

/// Runs the framework's migrations and the application's.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = sync_migrations::migrations();
        all.push(Box::new(CreateAppTables));
        all
    }
}

/// The example's tables, derived from its entities.
struct CreateAppTables;

impl MigrationName for CreateAppTables {
    fn name(&self) -> &str {
        "example_app::m20261120_000001_create_app_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAppTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let schema = Schema::new(manager.get_database_backend());
        let tables = [
            schema.create_table_from_entity(customer::Entity),
            schema.create_table_from_entity(address::Entity),
            schema.create_table_from_entity(order::Entity),
            schema.create_table_from_entity(line_item::Entity),
            schema.create_table_from_entity(billing_info::Entity),
        ];
        for mut table in tables {
            db.execute(table.if_not_exists()).await?;
        }
        Ok(())
    }
}
