use sea_orm::entity::prelude::*;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "customers")]
#[sync(syncer = "erp.customer", watch(name, email), register_on_insert, soft_delete = deleted_at)]
#[sync(syncer = "crm.contact", watch(name, email, phone))]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    /// Not watched: changing it pushes nothing.
    pub notes: String,
    pub deleted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
