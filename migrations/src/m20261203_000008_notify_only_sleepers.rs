//! `sync_sleepers`: the workers that found nothing to claim and sleep until notified, each with
//! an expiry (`until_ms`, milliseconds since the epoch, by the database's clock).
//!
//! On PostgreSQL the trigger on `sync_touches` now notifies only while a live row is here, and
//! the older trigger on `sync_groups` (migration 000003, which notified on every version change:
//! since the touch log, on every batch of touches a worker applied) is dropped.
//! PostgreSQL serialises the commits of transactions that sent a notification; notifying on
//! every touching transaction halved what concurrent application writers commit. Busy workers
//! need no notification (they claim again as soon as they finish), so only a sleeping worker's
//! mark makes the application's commits notify. The table exists on every backend, so that the
//! schema is the same everywhere; only PostgreSQL reads it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261203_000008_notify_only_sleepers"
    }
}

/// The trigger function of migration 000007: notify whenever a statement appended touches.
const NOTIFY_EVERY_TOUCH: &str = "CREATE OR REPLACE FUNCTION sync_touches_notify() RETURNS trigger AS $$ \
     BEGIN \
     IF EXISTS (SELECT 1 FROM appended) THEN \
     PERFORM pg_notify('sync_groups', current_schema()); \
     END IF; \
     RETURN NULL; \
     END $$ LANGUAGE plpgsql";

/// Migration 000003's trigger on `sync_groups`, restored by `down`.
const NOTIFY_ON_VERSION_FUNCTION: &str = "CREATE OR REPLACE FUNCTION sync_groups_notify() RETURNS trigger AS $$ \
     BEGIN PERFORM pg_notify('sync_groups', current_schema()); RETURN NULL; END \
     $$ LANGUAGE plpgsql";
const NOTIFY_ON_VERSION_TRIGGER: &str = "CREATE TRIGGER sync_groups_notify AFTER INSERT OR UPDATE OF version ON sync_groups \
     FOR EACH STATEMENT EXECUTE FUNCTION sync_groups_notify()";

/// Notify only while a worker sleeps.
const NOTIFY_SLEEPERS: &str = "CREATE OR REPLACE FUNCTION sync_touches_notify() RETURNS trigger AS $$ \
     BEGIN \
     IF EXISTS (SELECT 1 FROM sync_sleepers \
                WHERE until_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
        AND EXISTS (SELECT 1 FROM appended) THEN \
     PERFORM pg_notify('sync_groups', current_schema()); \
     END IF; \
     RETURN NULL; \
     END $$ LANGUAGE plpgsql";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSleepers::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncSleepers::Worker)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncSleepers::UntilMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared(NOTIFY_SLEEPERS).await?;
            db.execute_unprepared("DROP TRIGGER IF EXISTS sync_groups_notify ON sync_groups")
                .await?;
            db.execute_unprepared("DROP FUNCTION IF EXISTS sync_groups_notify()")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared(NOTIFY_EVERY_TOUCH).await?;
            db.execute_unprepared(NOTIFY_ON_VERSION_FUNCTION).await?;
            db.execute_unprepared(NOTIFY_ON_VERSION_TRIGGER).await?;
        }
        manager
            .drop_table(Table::drop().table(SyncSleepers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncSleepers {
    Table,
    Worker,
    UntilMs,
}
