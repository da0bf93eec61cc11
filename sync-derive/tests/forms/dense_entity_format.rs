//! SeaORM 2.0's `#[sea_orm::model]` format: relation fields are not columns, and the derive
//! copied onto `ModelEx` writes nothing.

mod customer {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "customers")]
    #[sync(syncer = "crm.contact", watch(name))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        #[sea_orm(has_many)]
        pub orders: HasMany<super::order::Entity>,
    }

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

mod order {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "orders")]
    #[sync(syncer = "crm.contact", watch(total_cents), root = customer_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub customer_id: i32,
        pub total_cents: i64,
        #[sea_orm(belongs_to, from = "customer_id", to = "id")]
        pub customer: HasOne<super::customer::Entity>,
    }

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn generates_its_memberships() {
    use sync_core::Syncable;

    assert_eq!(customer::Model::MEMBERSHIPS.len(), 1);
    assert!(!order::Model::MEMBERSHIPS[0].is_root());
}
