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

    // The derive already writes this impl; add `#[syncable(manual_hooks)]` to write your own.
    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
