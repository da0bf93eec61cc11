use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "customers")]
#[sync(syncer = "erp.customer", watch(name, email, phone), register_on_insert, soft_delete = deleted_at)]
#[sync(syncer = "crm.contact", watch(name, email))]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    /// For staff only: no remote sees it, so changing it pushes nothing.
    pub internal_note: String,
    /// Milliseconds since the epoch when the customer was archived.
    pub deleted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::address::Entity")]
    Address,
    #[sea_orm(has_many = "super::order::Entity")]
    Order,
}

impl Related<super::address::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Address.def()
    }
}

impl Related<super::order::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}
