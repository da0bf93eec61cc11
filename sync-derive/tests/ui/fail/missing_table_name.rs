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

fn main() {}
