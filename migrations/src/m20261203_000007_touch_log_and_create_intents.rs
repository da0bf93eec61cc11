//! `sync_touches`, the touch log: the application's hooks append one row per group a write
//! touches, in the application's transaction, and the worker applies the committed rows to
//! `sync_groups`. Appending takes no lock another transaction waits for, so the framework adds
//! no lock-order dependency (and no deadlock) between the application's transactions, or between
//! them and the workers.
//!
//! And on `sync_groups`:
//! - `create_key`, `create_payload`: a create that may have reached the remote and whose answer
//!   was not recorded yet (its idempotency key and exact body), so that a worker taking the group
//!   over after a crash repeats that very create;
//! - `remote_id_numeric`: the remote answered the id as a JSON number;
//! - `last_status`: the HTTP status of the last failed attempt (404: the remote lost the record).
//!
//! On PostgreSQL a trigger sends `NOTIFY sync_groups` when a statement appends touches, so idle
//! workers wake when the application commits.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261203_000007_touch_log_and_create_intents"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncTouches::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncTouches::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncTouches::Syncer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncTouches::RootKey)
                            .string_len(191)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncTouches::Mark).small_integer().not_null())
                    .col(ColumnDef::new(SyncTouches::At).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite adds one at a time.
        let columns = [
            ColumnDef::new(SyncGroups::CreateKey)
                .string_len(100)
                .null()
                .to_owned(),
            ColumnDef::new(SyncGroups::CreatePayload)
                .text()
                .null()
                .to_owned(),
            ColumnDef::new(SyncGroups::RemoteIdNumeric)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(SyncGroups::LastStatus)
                .integer()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncGroups::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared(
                "CREATE OR REPLACE FUNCTION sync_touches_notify() RETURNS trigger AS $$ \
                 BEGIN \
                 IF EXISTS (SELECT 1 FROM appended) THEN \
                 PERFORM pg_notify('sync_groups', current_schema()); \
                 END IF; \
                 RETURN NULL; \
                 END $$ LANGUAGE plpgsql",
            )
            .await?;
            db.execute_unprepared(
                "CREATE TRIGGER sync_touches_notify AFTER INSERT ON sync_touches \
                 REFERENCING NEW TABLE AS appended \
                 FOR EACH STATEMENT EXECUTE FUNCTION sync_touches_notify()",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let db = manager.get_connection();
            db.execute_unprepared("DROP TRIGGER IF EXISTS sync_touches_notify ON sync_touches")
                .await?;
            db.execute_unprepared("DROP FUNCTION IF EXISTS sync_touches_notify()")
                .await?;
        }
        for column in [
            SyncGroups::CreateKey,
            SyncGroups::CreatePayload,
            SyncGroups::RemoteIdNumeric,
            SyncGroups::LastStatus,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncGroups::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(SyncTouches::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncTouches {
    Table,
    Id,
    Syncer,
    RootKey,
    Mark,
    At,
}

#[derive(DeriveIden)]
enum SyncGroups {
    Table,
    CreateKey,
    CreatePayload,
    RemoteIdNumeric,
    LastStatus,
}
