//! On PostgreSQL, `ix_sync_groups_due` (`state, next_attempt_at`) holds only the groups that are
//! not `synced`. Its readers — MariaDB's claims (MariaDB keeps the full index) and the operator
//! views (`pending`, `failed`, `dead`, `deleted` groups, by state and due time) — never look for
//! synced groups through it, and the planner proves their `state IN (…)` conditions imply the
//! index's. Every push records its group as `synced`, an update that moves the row: with the full
//! index each completion wrote an entry there that no query reads; now it writes none, one
//! index entry less per pushed group.
//!
//! SQLite keeps the full index: its planner uses a partial index only for queries that repeat
//! the index's condition word for word. MariaDB has no partial indexes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000015_due_index_without_synced"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP INDEX IF EXISTS ix_sync_groups_due; \
                     CREATE INDEX ix_sync_groups_due ON sync_groups (state, next_attempt_at) \
                     WHERE state <> 'synced'",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP INDEX IF EXISTS ix_sync_groups_due; \
                     CREATE INDEX ix_sync_groups_due ON sync_groups (state, next_attempt_at)",
                )
                .await?;
        }
        Ok(())
    }
}
