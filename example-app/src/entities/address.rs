use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "addresses")]
#[sync(syncer = "erp.customer", watch(street, city), root = customer_id)]
#[sync(syncer = "crm.contact", watch(city), root = customer_id)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    pub street: String,
    pub city: String,
    /// "home", "work"…: not synced.
    pub label: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::customer::Entity",
        from = "Column::CustomerId",
        to = "super::customer::Column::Id"
    )]
    Customer,
}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}
