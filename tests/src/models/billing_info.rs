use sea_orm::entity::prelude::*;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "billing_infos")]
#[sync(syncer = "erp.sales_order", watch(iban, address), root = order_id)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub order_id: i32,
    pub iban: String,
    pub address: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
