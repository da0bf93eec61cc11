//! `sync_runs`: a summary of each syncer's work per interval of a worker (attempted, pushed,
//! skipped, failed, clean or not), for the operator views; and `sync_groups.dirty_since`, when the
//! group last went from clean to dirty, for "oldest dirty age".

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261101_000005_sync_runs_and_dirty_since"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncRuns::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncRuns::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SyncRuns::Syncer).string_len(100).not_null())
                    .col(ColumnDef::new(SyncRuns::Worker).string_len(64).not_null())
                    .col(ColumnDef::new(SyncRuns::StartedAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(SyncRuns::FinishedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncRuns::Attempted).integer().not_null())
                    .col(ColumnDef::new(SyncRuns::Pushed).integer().not_null())
                    .col(ColumnDef::new(SyncRuns::Skipped).integer().not_null())
                    .col(ColumnDef::new(SyncRuns::Failed).integer().not_null())
                    .col(ColumnDef::new(SyncRuns::Clean).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_runs_syncer_finished")
                    .table(SyncRuns::Table)
                    .col(SyncRuns::Syncer)
                    .col(SyncRuns::FinishedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SyncGroups::Table)
                    .add_column(ColumnDef::new(SyncGroups::DirtySince).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SyncGroups::Table)
                    .drop_column(SyncGroups::DirtySince)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SyncRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
    Syncer,
    Worker,
    StartedAt,
    FinishedAt,
    Attempted,
    Pushed,
    Skipped,
    Failed,
    Clean,
}

#[derive(DeriveIden)]
enum SyncGroups {
    Table,
    DirtySince,
}
