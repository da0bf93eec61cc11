//! `sync_attempts`: one row per push attempt, for the operator views. Pruned by the worker;
//! failures are kept longer than successes.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261101_000002_create_sync_attempts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncAttempts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncAttempts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::GroupId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::Syncer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::Operation)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncAttempts::StatusCode).integer().null())
                    .col(ColumnDef::new(SyncAttempts::Error).text().null())
                    .col(
                        ColumnDef::new(SyncAttempts::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::Worker)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncAttempts::StartedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_attempts_group")
                    .table(SyncAttempts::Table)
                    .col(SyncAttempts::GroupId)
                    .col(SyncAttempts::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_attempts_started")
                    .table(SyncAttempts::Table)
                    .col(SyncAttempts::StartedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncAttempts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncAttempts {
    Table,
    Id,
    GroupId,
    Syncer,
    Version,
    Operation,
    Outcome,
    StatusCode,
    Error,
    DurationMs,
    Worker,
    StartedAt,
}
