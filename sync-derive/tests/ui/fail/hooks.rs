// The model's `ActiveModelBehavior` and the framework's hooks.
// (Cases share a file, each in a module of its own: one compilation checks them all.)

mod behavior_without_hooks_attribute {
    // A plain `impl ActiveModelBehavior`, as in every SeaORM entity, without `#[sync_core::hooks]`: saves would mark nothing dirty, so it must not compile.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name))]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod hooks_below_async_trait {
    // `#[sync_core::hooks]` under `#[async_trait]`: the hooks it sees are no longer `async fn`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name))]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[async_trait::async_trait]
        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {
            async fn before_save<C: ConnectionTrait>(self, _db: &C, _insert: bool) -> Result<Self, DbErr> {
                Ok(self)
            }
        }
    }
}

mod hooks_on_another_impl {
    // `#[sync_core::hooks]` on an impl other than `ActiveModelBehavior`.
    struct Thing;

    trait Behavior {}

    #[sync_core::hooks]
    impl Behavior for Thing {}

    #[sync_core::hooks]
    impl Thing {}
}

mod own_hooks_with_error {
    // With hooks of the application's own, a mistake in `#[sync(...)]` gives that one error, not a "`Model: Syncable` is not satisfied" error for each hook.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(nme))]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {
            async fn before_save<C: ConnectionTrait>(self, _db: &C, _insert: bool) -> Result<Self, DbErr> {
                Ok(self)
            }
        }
    }
}

fn main() {}
