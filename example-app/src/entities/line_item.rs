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
    #[sea_orm(primary_key)]
    pub id: i32,
    pub order_id: i32,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    /// For the warehouse: not synced.
    pub note: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::order::Entity",
        from = "Column::OrderId",
        to = "super::order::Column::Id"
    )]
    Order,
}

impl Related<super::order::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}
