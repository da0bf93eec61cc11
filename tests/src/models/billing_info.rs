use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `billing_infos`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "billing_infos")]
#[sync(syncer = "erp.sales_order", watch(iban, address), root = order_id)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The order it belongs to.
    pub order_id: i32,
    /// The iban.
    pub iban: String,
    /// The address.
    pub address: String,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}
