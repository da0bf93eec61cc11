// `root_fn`: a function that finds a dependent's root, with the wrong shape.
// (Cases share a file, each in a module of its own: one compilation checks them all.)

mod root_fn_concrete_connection {
    // A `root_fn` taking a concrete connection type: it must be generic over `ConnectionTrait`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root)]
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
        impl ActiveModelBehavior for ActiveModel {}

        async fn find_root(model: &Model, _db: &DatabaseConnection) -> Result<Option<i32>, DbErr> {
            Ok(Some(model.customer_id))
        }
    }
}

mod root_fn_key_type {
    // A `root_fn` whose key type cannot be a root key.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root)]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
            pub score: f64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}

        async fn find_root<C: ConnectionTrait>(model: &Model, _db: &C) -> Result<Option<f64>, DbErr> {
            Ok(Some(model.score))
        }
    }
}

mod root_fn_not_async {
    // A `root_fn` with the right arguments that is not async.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root)]
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
        impl ActiveModelBehavior for ActiveModel {}

        fn find_root<C: ConnectionTrait>(model: &Model, _db: &C) -> Result<Option<i32>, DbErr> {
            Ok(Some(model.customer_id))
        }
    }
}

mod root_fn_unknown {
    // A typo in the `root_fn` path.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_rot)]
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
        impl ActiveModelBehavior for ActiveModel {}

        async fn find_root<C: ConnectionTrait>(model: &Model, _db: &C) -> Result<Option<i32>, DbErr> {
            Ok(Some(model.customer_id))
        }
    }
}

mod root_fn_wrong_output {
    // A `root_fn` that returns `Option<K>` instead of `Result<Option<K>, DbErr>`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root)]
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
        impl ActiveModelBehavior for ActiveModel {}

        async fn find_root<C: ConnectionTrait>(model: &Model, _db: &C) -> Option<i32> {
            Some(model.customer_id)
        }
    }
}

mod root_fn_wrong_signature {
    // A `root_fn` that is not async and takes no connection.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root)]
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
        impl ActiveModelBehavior for ActiveModel {}

        fn find_root(model: &Model) -> Option<i32> {
            Some(model.customer_id)
        }
    }
}

fn main() {}
