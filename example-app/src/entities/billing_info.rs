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
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The order it belongs to.
    #[sea_orm(unique)]
    pub order_id: i32,
    /// The company.
    pub company: String,
    /// The customer's VAT identification number.
    pub vat_id: String,
    /// The address.
    pub address: String,
    /// For the accounts team: not synced.
    pub internal_note: String,
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
