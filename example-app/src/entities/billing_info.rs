use sea_orm::entity::prelude::*;
use serde::Serialize;
use sync_core::Syncable;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "billing_infos")]
#[sync(syncer = "erp.sales_order", watch(company, vat_id, address), root = order_id)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub order_id: i32,
    pub company: String,
    pub vat_id: String,
    pub address: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}
