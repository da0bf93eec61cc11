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

fn main() {}
