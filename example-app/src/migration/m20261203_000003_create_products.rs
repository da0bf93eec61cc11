//! `products`, pulled from the ERP.

use sea_orm_migration::{prelude::*, schema::*};

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000003_create_products"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(big_integer(Products::Id).primary_key())
                    .col(string(Products::Sku))
                    .col(string(Products::Name))
                    .col(big_integer(Products::PriceCents))
                    .col(integer(Products::Stock))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
    Sku,
    Name,
    PriceCents,
    Stock,
}
