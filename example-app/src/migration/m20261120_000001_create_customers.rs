//! `customers` and their `addresses`.

use sea_orm_migration::{prelude::*, schema::*};

pub(super) struct Migration;

impl MigrationName for Migration {
    // Written out rather than derived from the file name, so that renaming the file cannot make
    // the migration run twice.
    fn name(&self) -> &str {
        "m20261120_000001_create_customers"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(pk_auto(Customers::Id))
                    .col(string(Customers::Name))
                    .col(string(Customers::Email))
                    .col(string_null(Customers::Phone))
                    .col(string(Customers::InternalNote).default(""))
                    .col(timestamp_with_time_zone_null(Customers::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Addresses::Table)
                    .col(pk_auto(Addresses::Id))
                    .col(integer(Addresses::CustomerId))
                    .col(string(Addresses::Street))
                    .col(string(Addresses::City))
                    .col(string(Addresses::Label).default(""))
                    // No `ON DELETE CASCADE`: the database would delete the rows without running
                    // their hooks, and the remotes would never hear of it. The API deletes
                    // dependents through their `ActiveModel`s instead.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_addresses_customer")
                            .from(Addresses::Table, Addresses::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_addresses_customer_id")
                    .table(Addresses::Table)
                    .col(Addresses::CustomerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Addresses::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Customers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(super) enum Customers {
    Table,
    Id,
    Name,
    Email,
    Phone,
    InternalNote,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Addresses {
    Table,
    Id,
    CustomerId,
    Street,
    City,
    Label,
}
