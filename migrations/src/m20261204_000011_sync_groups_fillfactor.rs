//! On PostgreSQL, `sync_groups` pages are filled to 70 % on insert, so that the updates a group
//! goes through before it is recorded — its claim (the lease) and its create intent (key and
//! body) — find room on the row's own page and are heap-only (HOT) updates: they change no
//! indexed column, and with room on the page they write no entry in any of the table's four
//! indexes. On full pages every such update wrote a new entry in each index, and the claims
//! then walked past the stale ones.
//!
//! Pages written before this migration keep their fill until they are rewritten (`VACUUM FULL
//! sync_groups`, or as rows are deleted and inserted). Other backends have no such setting and
//! are left as they are.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000011_sync_groups_fillfactor"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sync_groups SET (fillfactor = 70)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sync_groups RESET (fillfactor)")
                .await?;
        }
        Ok(())
    }
}
