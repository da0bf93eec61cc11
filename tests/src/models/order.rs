use sea_orm::entity::prelude::*;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "orders")]
#[sync(
    syncer = "erp.sales_order",
    watch(reference, status, customer_id),
    register_on_insert
)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub customer_id: i32,
    pub reference: String,
    pub status: String,
    /// Not watched.
    pub internal_note: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
