//! An order: the root of one ERP sales order, built from the order, its line items and its
//! billing info.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

/// An order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "orders")]
#[sync(
    syncer = "erp.sales_order",
    watch(customer_id, reference, status),
    register_on_insert
)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The customer it belongs to.
    pub customer_id: i32,
    /// The order's reference, unique.
    #[sea_orm(unique)]
    pub reference: String,
    /// `open`, `confirmed`, `shipped` or `cancelled`.
    pub status: String,
    /// For staff only: not synced.
    pub internal_note: String,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The customer it belongs to.
    #[sea_orm(
        belongs_to = "super::customer::Entity",
        from = "Column::CustomerId",
        to = "super::customer::Column::Id"
    )]
    Customer,
    /// Its line items.
    #[sea_orm(has_many = "super::line_item::Entity")]
    LineItem,
    /// Its billing info.
    #[sea_orm(has_one = "super::billing_info::Entity")]
    BillingInfo,
}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}

impl Related<super::line_item::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LineItem.def()
    }
}

impl Related<super::billing_info::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BillingInfo.def()
    }
}
