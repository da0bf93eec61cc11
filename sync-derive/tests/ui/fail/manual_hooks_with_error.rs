// With `manual_hooks`, a mistake in `#[sync(...)]` gives that one error, not a "`Model: Syncable` is not satisfied" error for each call in the hand-written hooks.
mod entity {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "things")]
    #[sync(syncer = "crm.contact", watch(nme))]
    #[syncable(manual_hooks)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub customer_id: i32,
        pub name: String,
        pub email: String,
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

fn main() {}
