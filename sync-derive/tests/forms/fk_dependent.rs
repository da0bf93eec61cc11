//! Dependents whose root is found through a foreign-key column, nullable or not, of any
//! integer width.

mod address {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "addresses")]
    #[sync(syncer = "erp.customer", watch(street, city), root = customer_id)]
    #[sync(syncer = "crm.contact", watch(city), root = contact_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub customer_id: i64,
        pub contact_id: Option<i32>,
        pub street: String,
        pub city: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn generates_its_memberships() {
    use sync_core::{Link, Syncable};

    let [erp, crm] = address::Model::MEMBERSHIPS else {
        panic!("two memberships");
    };
    assert!(!erp.is_root());
    assert!(matches!(
        erp.link(),
        Link::Column(address::Column::CustomerId)
    ));
    assert!(matches!(
        crm.link(),
        Link::Column(address::Column::ContactId)
    ));
    assert_eq!(crm.watch().len(), 1);
}
