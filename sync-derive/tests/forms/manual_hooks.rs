//! `#[syncable(manual_hooks)]`: the application writes `ActiveModelBehavior` and calls the
//! framework's four hook functions from it.

mod product {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "products")]
    #[sync(syncer = "shop.product", watch(name), register_on_insert)]
    #[syncable(manual_hooks)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C: ConnectionTrait>(
            self,
            db: &C,
            insert: bool,
        ) -> Result<Self, DbErr> {
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
}

#[test]
fn generates_its_memberships() {}
