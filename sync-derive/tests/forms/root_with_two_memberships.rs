//! A root of two syncers: one registered on insert with a soft-delete column, one registered
//! explicitly.

mod customer {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "customers")]
    #[sync(syncer = "erp.customer", watch(name, email), register_on_insert, soft_delete = deleted_at)]
    #[sync(syncer = "crm.contact", watch(name, email, phone))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
        pub phone: Option<String>,
        pub notes: String,
        pub deleted_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

fn names(columns: &[customer::Column]) -> Vec<&'static str> {
    columns.iter().map(sea_orm::IdenStatic::as_str).collect()
}

#[test]
fn generates_its_memberships() {
    use sync_core::Syncable;

    let [erp, crm] = customer::Model::MEMBERSHIPS else {
        panic!("two memberships");
    };
    assert_eq!(erp.syncer(), "erp.customer");
    assert!(erp.is_root());
    assert!(erp.register_on_insert());
    assert_eq!(names(erp.watch()), ["name", "email"]);
    assert!(matches!(
        erp.soft_delete(),
        Some(customer::Column::DeletedAt)
    ));

    assert_eq!(crm.syncer(), "crm.contact");
    assert!(crm.is_root());
    assert!(!crm.register_on_insert());
    assert_eq!(names(crm.watch()), ["name", "email", "phone"]);
    assert!(crm.soft_delete().is_none());
}
