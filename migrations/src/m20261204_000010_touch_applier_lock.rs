//! `sync_touch_applier`: one row, which the worker applying the touch log holds (locked) while it
//! applies a batch, so that one worker at a time applies touches.
//!
//! Two workers applying at once each took the rows of the log the other had not locked, so a
//! later touch of a group could be applied before an earlier one: a customer archived and then
//! restored could end up marked deleted (and its remote record deleted) while the customer
//! exists. With one applier at a time, every group's marks are applied in the order they were
//! logged. The application's transactions never read or lock this table.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000010_touch_applier_lock"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncTouchApplier::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncTouchApplier::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SyncTouchApplier::Table)
                    .columns([SyncTouchApplier::Id])
                    .values_panic([1.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncTouchApplier::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncTouchApplier {
    Table,
    Id,
}
