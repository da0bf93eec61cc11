// Columns the attribute names that the model lacks or cannot use.
// (Cases share a file, each in a module of its own: one compilation checks them all.)

mod missing_table_name {
    // A `Model` without `#[sea_orm(table_name = "...")]`: one error.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sync(syncer = "crm.contact", watch(name))]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod root_column_not_a_key {
    // `root = ...` names a column whose type cannot hold a key (a trait error, shown at the column name).
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = score)]
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
    }
}

mod root_ignored_field {
    // A field that is not a column (`#[sea_orm(ignore)]`) cannot hold the root key.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = cache)]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
            #[sea_orm(ignore)]
            pub cache: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod root_not_a_column_name {
    // `root` takes a column name, not a string.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = "customer_id")]
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
    }
}

mod soft_delete_on_dependent {
    // `soft_delete` on a dependent.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = customer_id, soft_delete = deleted_at)]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
            pub deleted_at: Option<i64>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod soft_delete_primary_key {
    // `soft_delete` naming the primary key.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), soft_delete = id)]
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
    }
}

mod unknown_root_column {
    // A typo in `root = ...`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = custmer_id)]
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
    }
}

mod unknown_soft_delete_column {
    // A column that does not exist in `soft_delete = ...`, with nothing close: the error lists the columns.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), soft_delete = deleted)]
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
    }
}

mod unknown_via_column {
    // A typo in `via(...)`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root_fn = find_root, via(custmer_id))]
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

mod unknown_watch_column {
    // A typo in `watch(...)`: the error suggests the column meant.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name, emial))]
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
    }
}

mod via_without_root_fn {
    // `via(...)` without `root_fn`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = customer_id, via(customer_id))]
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
    }
}

mod watch_ignored_field {
    // A field that is not a column (`#[sea_orm(ignore)]`) cannot be watched.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name, cache))]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub customer_id: i32,
            pub name: String,
            pub email: String,
            #[sea_orm(ignore)]
            pub cache: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod watch_primary_key {
    // The primary key cannot be watched.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(id, name))]
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
    }
}

mod register_on_dependent {
    // `register_on_insert` on a dependent.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = customer_id, register_on_insert)]
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
    }
}

mod register_on_insert_with_value {
    // `register_on_insert` is a flag.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), register_on_insert = true)]
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
    }
}

mod root_and_root_fn {
    // `root` and `root_fn` together.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), root = customer_id, root_fn = find_root)]
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

fn main() {}
