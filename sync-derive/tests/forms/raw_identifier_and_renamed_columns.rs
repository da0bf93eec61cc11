//! Columns whose field is a raw identifier, whose database name is changed with
//! `column_name`, or whose `Column` variant is changed with `enum_name`.

mod customer {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "customers")]
    #[sync(syncer = "erp.customer", watch(r#type, email, kind_code), soft_delete = r#ref)]
    #[sync(syncer = "crm.contact", watch(type))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub r#type: String,
        #[sea_orm(column_name = "email_address")]
        pub email: String,
        #[sea_orm(enum_name = "Kind")]
        pub kind_code: String,
        pub r#ref: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn generates_its_memberships() {
    use sea_orm::IdenStatic;
    use sync_core::Syncable;

    let [erp, crm] = customer::Model::MEMBERSHIPS else {
        panic!("two memberships");
    };
    let watched: Vec<&str> = erp.watch().iter().map(IdenStatic::as_str).collect();
    // With `enum_name` and no `column_name`, SeaORM names the column after the variant.
    assert_eq!(watched, ["type", "email_address", "kind"]);
    assert!(matches!(erp.watch()[2], customer::Column::Kind));
    assert!(matches!(erp.soft_delete(), Some(customer::Column::Ref)));
    assert!(matches!(crm.watch(), [customer::Column::Type]));
}
