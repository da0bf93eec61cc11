//! `#[sync_core::hooks]` on impls with hooks of the application's own: every hook written,
//! arguments bound by any pattern, `?` and early `return` in the bodies, `async_trait` written
//! by the application as well, and an impl with only `new`.

mod product {
    use sea_orm::ActiveValue::Set;
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "products")]
    #[sync(syncer = "shop.product", watch(name), register_on_insert)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub revision: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    fn check(name: &str) -> Result<(), DbErr> {
        if name.is_empty() {
            return Err(DbErr::Custom("a product needs a name".into()));
        }
        Ok(())
    }

    #[sync_core::hooks]
    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, DbErr>
        where
            C: ConnectionTrait,
        {
            if let Set(name) = &self.name {
                check(name)?;
            }
            if insert {
                self.revision = Set(1);
                return Ok(self);
            }
            Ok(self)
        }

        async fn after_save<C: ConnectionTrait>(
            model: Model,
            _: &C,
            _insert: bool,
        ) -> Result<Model, DbErr> {
            check(&model.name)?;
            Ok(model)
        }

        async fn before_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            let _ = db.get_database_backend();
            Ok(self)
        }

        async fn after_delete<C: ConnectionTrait>(self, _db: &C) -> Result<Self, DbErr> {
            Ok(self)
        }
    }
}

mod tag {
    use sea_orm::ActiveValue::Set;
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "tags")]
    #[sync(syncer = "shop.tag", watch(label))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub label: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {
        fn new() -> Self {
            Self {
                label: Set("untitled".to_owned()),
                ..ActiveModelTrait::default()
            }
        }
    }
}

#[test]
fn keeps_the_applications_own_items() {
    use sea_orm::ActiveModelBehavior;
    use sync_core::Syncable;

    assert!(product::Model::MEMBERSHIPS[0].register_on_insert());
    let fresh = tag::ActiveModel::new();
    assert_eq!(
        fresh.label,
        sea_orm::ActiveValue::Set("untitled".to_owned())
    );
}
