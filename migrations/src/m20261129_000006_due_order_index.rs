//! PostgreSQL and SQLite: a partial index of the due groups in claim order. The claim selects
//! `state IN ('pending', 'failed') … ORDER BY next_attempt_at, id LIMIT n`; on the
//! `(state, next_attempt_at)` index that is two ranges to merge, so the database read and sorted
//! every dirty group for each claim, a cost that grows with the backlog (BENCHMARKS.md,
//! `scan`). This index holds only the dirty groups, already in claim order: a claim reads the
//! first `n` entries whatever the backlog. MariaDB has no partial indexes and keeps the
//! `(state, next_attempt_at)` index alone.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261129_000006_due_order_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_sync_groups_due_order ON sync_groups \
                 (next_attempt_at, id) WHERE state IN ('pending', 'failed')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::MySql {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_sync_groups_due_order")
            .await?;
        Ok(())
    }
}
