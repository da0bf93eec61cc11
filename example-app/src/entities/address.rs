//! A customer's address: part of both of its customer's remote entities.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

/// An address. Moving it to another customer (changing `customer_id`) re-pushes both customers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "addresses")]
#[sync(syncer = "erp.customer", watch(street, city), root = customer_id)]
// The CRM contact only lists cities: a new street changes nothing there.
#[sync(syncer = "crm.contact", watch(city), root = customer_id)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The customer it belongs to.
    pub customer_id: i32,
    /// The street.
    pub street: String,
    /// The city.
    pub city: String,
    /// "home", "work"…: for the app's own screens, not synced.
    pub label: String,
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
}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}
