use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `orders`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "orders")]
// The contact sums what its customer bought: an order that is added, removed or moved changes
// the contacts of its customers.
#[sync(syncer = "crm.contact", watch(customer_id), root = customer_id)]
#[sync(
    syncer = "erp.sales_order",
    watch(reference, status, customer_id),
    register_on_insert
)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The customer it belongs to.
    pub customer_id: i32,
    /// The reference.
    pub reference: String,
    /// The status.
    pub status: String,
    /// Not watched.
    pub internal_note: String,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}
