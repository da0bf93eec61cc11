//! `sync_touches.dependent`, `sync_touches.dependent_key`: for a touch made by a dependent whose
//! root is found by a function (`root_fn`), the dependent's table and primary key, so that the
//! worker applying the touch can run the function again against the committed data and touch
//! the root it finds then too (another transaction may have moved the row the function follows
//! between the write's read and its commit). `NULL` for every other touch.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000014_touch_dependents"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        let columns = [
            ColumnDef::new(SyncTouches::Dependent)
                .string_len(128)
                .null()
                .to_owned(),
            ColumnDef::new(SyncTouches::DependentKey)
                .string_len(191)
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncTouches::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [SyncTouches::Dependent, SyncTouches::DependentKey] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncTouches::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum SyncTouches {
    Table,
    Dependent,
    DependentKey,
}
