use sea_orm::entity::prelude::*;

/// A row of `stock_items`: the ERP's products as a second source keeps them, each row holding
/// the digest of the record it was applied from (`Source::digest_column`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_items")]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The ERP's id of the product.
    #[sea_orm(unique)]
    pub erp_id: i64,
    /// The ERP's id as text, for a source keyed by a text column.
    #[sea_orm(unique)]
    pub sku: Option<String>,
    /// The name.
    pub name: String,
    /// The price cents.
    pub price_cents: i64,
    /// The digest of the ERP record the row was applied from.
    pub erp_digest: Option<String>,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
