use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `products`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "products")]
#[sync(syncer = "shop.product", watch(name, price_cents), register_on_insert)]
pub struct Model {
    /// The primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// The name.
    pub name: String,
    /// The price cents.
    pub price_cents: i64,
    /// Kept by the hand-written `before_save`, not watched.
    pub revision: i32,
}

/// How rows of this table relate to other tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

/// The application's own hook refuses a blank name and keeps a revision counter;
/// `#[sync_core::hooks]` runs the framework's hooks after it.
#[sync_core::hooks]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C: ConnectionTrait>(
        mut self,
        _db: &C,
        insert: bool,
    ) -> Result<Self, DbErr> {
        let revision = match &self.revision {
            sea_orm::ActiveValue::Set(r) | sea_orm::ActiveValue::Unchanged(r) => *r,
            sea_orm::ActiveValue::NotSet => 0,
        };
        if let sea_orm::ActiveValue::Set(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(DbErr::Custom("a product needs a name".into()));
        }
        self.revision = sea_orm::ActiveValue::Set(if insert { 1 } else { revision + 1 });
        Ok(self)
    }
}
