//! A customer: the root of two remote entities, an ERP customer and a CRM contact.

use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

/// A customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "customers")]
// The ERP customer is registered as soon as a customer is inserted.
#[sync(
    syncer = "erp.customer",
    watch(name, email, phone),
    register_on_insert,
    soft_delete = deleted_at
)]
// The CRM contact is registered explicitly by the service code, with `sync_core::sync_as`
// (see `api::customers::create`). The CRM does not show phone numbers, so it does not watch them.
#[sync(syncer = "crm.contact", watch(name, email), soft_delete = deleted_at)]
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
    /// For staff only: no remote sees it, so changing it pushes nothing.
    pub internal_note: String,
    /// Set when the customer is archived (`DELETE /customers/{id}`): both remotes delete their
    /// copy, while the row stays for the orders that refer to it.
    #[serde(skip)]
    pub deleted_at: Option<DateTimeUtc>,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Its addresses.
    #[sea_orm(has_many = "super::address::Entity")]
    Address,
    /// Its orders.
    #[sea_orm(has_many = "super::order::Entity")]
    Order,
}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}

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
