use sea_orm::entity::prelude::*;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "addresses")]
#[sync(syncer = "erp.customer", watch(street, city), root = customer_id)]
#[sync(syncer = "crm.contact", watch(city), root = customer_id)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    pub street: String,
    pub city: String,
    /// Not watched.
    pub label: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
