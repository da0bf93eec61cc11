use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `customers`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "customers")]
#[sync(syncer = "erp.customer", watch(name, email), register_on_insert, soft_delete = deleted_at)]
#[sync(syncer = "crm.contact", watch(name, email, phone))]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The name.
    pub name: String,
    /// The email.
    pub email: String,
    /// The phone.
    pub phone: Option<String>,
    /// Not watched: changing it pushes nothing.
    pub notes: String,
    /// The deleted at.
    pub deleted_at: Option<i64>,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}
