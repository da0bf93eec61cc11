//! The same columns as `customer`, without `#[derive(Syncable)]`: the baseline of the
//! write-path benchmark.

use sea_orm::entity::prelude::*;

/// A row of `plain_customers`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plain_customers")]
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
    /// The notes.
    pub notes: String,
    /// The deleted at.
    pub deleted_at: Option<i64>,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
