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

fn main() {}
