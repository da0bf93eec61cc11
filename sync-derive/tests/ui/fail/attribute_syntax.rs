// The `#[sync(...)]` attribute written wrong: each case a model of its own, one error each.
// (Cases share a file, each in a module of its own: one compilation checks them all.)

mod bare_sync {
    // `#[sync]` without options.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync]
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

mod empty_watch {
    // `watch()` with no column.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch())]
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

mod invalid_syncer_name {
    // A syncer name with a space.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm contact", watch(name))]
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

mod missing_syncer {
    // No `syncer = "..."`: the error covers the attribute, since nothing in it is wrong.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(watch(name))]
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

mod missing_watch {
    // No `watch(...)`: the error covers the attribute, since nothing in it is wrong.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact")]
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

mod misspelt_option {
    // A misspelt option: the error suggests the one meant.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), soft_deleted = deleted_at)]
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

mod no_sync_attribute {
    // The derive without any `#[sync(...)]`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
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

mod repeated_syncer {
    // `syncer` twice in one attribute.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", syncer = "erp.customer", watch(name))]
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

mod repeated_watch {
    // `watch` twice in one attribute.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), watch(email))]
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

mod same_syncer_twice {
    // Two `#[sync(...)]` for the same syncer.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name))]
        #[sync(syncer = "crm.contact", watch(email))]
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

mod syncer_not_a_string {
    // A syncer name written without quotes.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = crm.contact, watch(name))]
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

mod unknown_option {
    // An option `#[sync(...)]` does not have.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name), retry = 3)]
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

mod watch_not_a_list {
    // `watch` with a value instead of a list.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch = "name")]
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

mod watch_column_twice {
    // A column listed twice in `watch(...)`.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name, email, name))]
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

mod sync_on_field {
    // `#[sync(...)]` on a field instead of the struct.
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
            #[sync(syncer = "erp.customer", watch(email))]
            pub phone: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod syncable_attribute_removed {
    // `#[syncable(manual_hooks)]`, from when the derive wrote `ActiveModelBehavior`: the error says what replaced it.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(name))]
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

        #[sync_core::hooks]
        impl ActiveModelBehavior for ActiveModel {}
    }
}

mod several_errors_at_once {
    // Every mistake in an attribute is reported in one go, the unknown option included.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(watch(nme, id), retry = 3, root = customer_id, register_on_insert)]
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

mod errors_in_several_attributes {
    // Mistakes in different attributes are all reported too, each with its own attribute.
    mod entity {
        use sea_orm::entity::prelude::*;
        use sync_core::Syncable;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Syncable)]
        #[sea_orm(table_name = "things")]
        #[sync(syncer = "crm.contact", watch(emial), root = custmer_id)]
        #[sync(syncer = "erp customer", watch(id), root_fn = find_root)]
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
