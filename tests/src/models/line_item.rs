use sea_orm::entity::prelude::*;
use sync_core::Syncable;

use super::order;

/// A row of `line_items`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "line_items")]
#[sync(syncer = "erp.sales_order", watch(sku, quantity, price_cents), root = order_id)]
#[sync(syncer = "crm.contact", watch(quantity, price_cents), root_fn = customer_of, via(order_id))]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The order it belongs to.
    pub order_id: i32,
    /// The sku.
    pub sku: String,
    /// The quantity.
    pub quantity: i32,
    /// The price cents.
    pub price_cents: i64,
    /// Not watched.
    pub comment: String,
}

/// LineItem → Order → Customer: the contact shows what the customer bought.
pub async fn customer_of<C: ConnectionTrait>(item: &Model, db: &C) -> Result<Option<i32>, DbErr> {
    Ok(order::Entity::find_by_id(item.order_id)
        .one(db)
        .await?
        .map(|o| o.customer_id))
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {}
