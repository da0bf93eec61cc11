//! A product: owned by the ERP (prices, stock) and pulled into the app by the `erp.products`
//! source. The app reads it; it syncs it nowhere.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// A product, keyed by the ERP's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    /// The ERP's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    /// The stock-keeping unit, as line items name it.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The price, in cents.
    pub price_cents: i64,
    /// Units in stock.
    pub stock: i32,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

/// The app's own validation runs on every write, also on those made by the source.
#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C>(self, _db: &C, _insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        if let sea_orm::ActiveValue::Set(price) = &self.price_cents
            && *price < 0
        {
            return Err(DbErr::Custom(format!(
                "a price cannot be negative ({price})"
            )));
        }
        Ok(self)
    }
}
