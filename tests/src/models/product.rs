use sea_orm::entity::prelude::*;
use sync_core::Syncable;

/// A row of `products`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
#[sea_orm(table_name = "products")]
#[sync(syncer = "shop.product", watch(name, price_cents), register_on_insert)]
#[syncable(manual_hooks)]
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

/// The application's own hooks, calling sync-core's from inside.
#[sync_core::async_trait]
impl ActiveModelBehavior for ActiveModel {
    async fn before_save<C: ConnectionTrait>(
        mut self,
        db: &C,
        insert: bool,
    ) -> Result<Self, DbErr> {
        let revision = match &self.revision {
            sea_orm::ActiveValue::Set(r) | sea_orm::ActiveValue::Unchanged(r) => *r,
            sea_orm::ActiveValue::NotSet => 0,
        };
        self.revision = sea_orm::ActiveValue::Set(if insert { 1 } else { revision + 1 });
        sync_core::hooks::before_save(self, db, insert).await
    }

    async fn after_save<C: ConnectionTrait>(
        model: Model,
        db: &C,
        insert: bool,
    ) -> Result<Model, DbErr> {
        sync_core::hooks::after_save(model, db, insert).await
    }

    async fn before_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
        sync_core::hooks::before_delete(self, db).await
    }

    async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
        sync_core::hooks::after_delete(self, db).await
    }
}
