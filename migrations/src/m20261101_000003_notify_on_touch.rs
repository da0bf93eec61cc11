//! PostgreSQL only: a statement-level trigger that sends `NOTIFY sync_groups` when groups are
//! registered or touched. The notification is delivered when the touching transaction commits,
//! so idle workers wake exactly when there is committed work; several touches in one
//! transaction make one notification. The payload is the schema, so workers of other schemas in
//! the same database can ignore it. No-op on other backends (their workers poll).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261101_000003_notify_on_touch"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE OR REPLACE FUNCTION sync_groups_notify() RETURNS trigger AS $$ \
             BEGIN PERFORM pg_notify('sync_groups', current_schema()); RETURN NULL; END \
             $$ LANGUAGE plpgsql",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TRIGGER sync_groups_notify AFTER INSERT OR UPDATE OF version ON sync_groups \
             FOR EACH STATEMENT EXECUTE FUNCTION sync_groups_notify()",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP TRIGGER IF EXISTS sync_groups_notify ON sync_groups")
            .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS sync_groups_notify()")
            .await?;
        Ok(())
    }
}
