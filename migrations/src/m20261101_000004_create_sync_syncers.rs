//! `sync_syncers`: one row per syncer, holding what all worker processes share about it: the
//! rate limit's token bucket, a pause (after a remote answered 429 with `Retry-After`), and its
//! health for alerts (healthy or failing, since when, the last clean run).

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261101_000004_create_sync_syncers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSyncers::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncSyncers::Syncer)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncSyncers::TokensMilli)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncSyncers::RefilledAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncSyncers::PausedUntil)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(SyncSyncers::PauseReason).text().null())
                    .col(
                        ColumnDef::new(SyncSyncers::Healthy)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(SyncSyncers::HealthChangedAt)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SyncSyncers::LastSuccessAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncSyncers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncSyncers {
    Table,
    Syncer,
    TokensMilli,
    RefilledAt,
    PausedUntil,
    PauseReason,
    Healthy,
    HealthChangedAt,
    LastSuccessAt,
}
