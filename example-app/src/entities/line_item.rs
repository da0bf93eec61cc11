//! A line of an order: part of the order's ERP sales order.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

/// A line item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "line_items")]
#[sync(
    syncer = "erp.sales_order",
    watch(sku, quantity, unit_price_cents),
    root = order_id
)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The order it belongs to.
    pub order_id: i32,
    /// The stock-keeping unit of the article.
    pub sku: String,
    /// The quantity.
    pub quantity: i32,
    /// The price of one unit, in cents.
    pub unit_price_cents: i64,
    /// For the warehouse: not synced.
    pub note: String,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The order it belongs to.
    #[sea_orm(
        belongs_to = "super::order::Entity",
        from = "Column::OrderId",
        to = "super::order::Column::Id"
    )]
    Order,
}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}

impl Related<super::order::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}
