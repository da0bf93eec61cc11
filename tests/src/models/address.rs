use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `addresses`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "addresses")]
#[sync(syncer = "erp.customer", watch(street, city), root = customer_id)]
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
    /// Not watched.
    pub label: String,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}
