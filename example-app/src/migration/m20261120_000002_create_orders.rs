//! `orders`, their `line_items` and their `billing_infos`.

use sea_orm_migration::{prelude::*, schema::*};

use super::m20261120_000001_create_customers::Customers;

pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261120_000002_create_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(pk_auto(Orders::Id))
                    .col(integer(Orders::CustomerId))
                    .col(string_uniq(Orders::Reference))
                    .col(string(Orders::Status).default("open"))
                    .col(string(Orders::InternalNote).default(""))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_customer")
                            .from(Orders::Table, Orders::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LineItems::Table)
                    .col(pk_auto(LineItems::Id))
                    .col(integer(LineItems::OrderId))
                    .col(string(LineItems::Sku))
                    .col(integer(LineItems::Quantity))
                    .col(big_integer(LineItems::UnitPriceCents))
                    .col(string(LineItems::Note).default(""))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_line_items_order")
                            .from(LineItems::Table, LineItems::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BillingInfos::Table)
                    .col(pk_auto(BillingInfos::Id))
                    .col(integer_uniq(BillingInfos::OrderId))
                    .col(string(BillingInfos::Company))
                    .col(string(BillingInfos::VatId))
                    .col(string(BillingInfos::Address))
                    .col(string(BillingInfos::InternalNote).default(""))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_billing_infos_order")
                            .from(BillingInfos::Table, BillingInfos::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_orders_customer_id")
                    .table(Orders::Table)
                    .col(Orders::CustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_line_items_order_id")
                    .table(LineItems::Table)
                    .col(LineItems::OrderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BillingInfos::Table.into_iden(),
            LineItems::Table.into_iden(),
            Orders::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    CustomerId,
    Reference,
    Status,
    InternalNote,
}

#[derive(DeriveIden)]
enum LineItems {
    Table,
    Id,
    OrderId,
    Sku,
    Quantity,
    UnitPriceCents,
    Note,
}

#[derive(DeriveIden)]
enum BillingInfos {
    Table,
    Id,
    OrderId,
    Company,
    VatId,
    Address,
    InternalNote,
}
