//! The billing details of an order (at most one per order): part of the order's ERP sales order.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

/// Billing info.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "billing_infos")]
#[sync(
    syncer = "erp.sales_order",
    watch(company, vat_id, address),
    root = order_id
)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub order_id: i32,
    pub company: String,
    pub vat_id: String,
    pub address: String,
    /// For the accounts team: not synced.
    pub internal_note: String,
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
