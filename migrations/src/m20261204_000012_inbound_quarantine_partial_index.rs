//! On PostgreSQL and SQLite, the index that finds a source's quarantined records holds only
//! those (`WHERE state = 'quarantined'`): the rows of applied records, almost all of them, are
//! no longer written into it, so a page's bookkeeping writes one index entry fewer per record.
//! MariaDB has no partial indexes and keeps the full one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000012_inbound_quarantine_partial_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !partial(manager) {
            return Ok(());
        }
        // One call, so that both run on one connection.
        manager
            .get_connection()
            .execute_unprepared(
                "DROP INDEX IF EXISTS ix_sync_inbound_quarantine; \
                 CREATE INDEX ix_sync_inbound_quarantine ON sync_inbound (source, next_retry_at) \
                 WHERE state = 'quarantined'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !partial(manager) {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DROP INDEX IF EXISTS ix_sync_inbound_quarantine; \
                 CREATE INDEX ix_sync_inbound_quarantine ON sync_inbound (state, source, next_retry_at)",
            )
            .await?;
        Ok(())
    }
}

fn partial(manager: &SchemaManager) -> bool {
    matches!(
        manager.get_database_backend(),
        DbBackend::Postgres | DbBackend::Sqlite
    )
}
