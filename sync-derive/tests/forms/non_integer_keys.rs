//! Roots keyed by a string or a UUID, and dependents pointing at them.

mod sku {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "skus")]
    #[sync(syncer = "shop.sku", watch(title), register_on_insert)]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub title: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

mod price {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "prices")]
    #[sync(syncer = "shop.sku", watch(cents), root = sku_code)]
    #[sync(syncer = "shop.catalog", watch(cents), root = catalog_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub sku_code: String,
        pub catalog_id: Option<Uuid>,
        pub cents: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

mod catalog {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "catalogs")]
    #[sync(syncer = "shop.catalog", watch(title))]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub title: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn generates_its_memberships() {
    use sync_core::Syncable;

    assert!(sku::Model::MEMBERSHIPS[0].is_root());
    assert_eq!(price::Model::MEMBERSHIPS.len(), 2);
    assert!(catalog::Model::MEMBERSHIPS[0].is_root());
}
