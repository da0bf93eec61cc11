//! Every form of the derive compiles: roots, foreign-key and function dependents, several
//! memberships, soft delete, raw identifiers, renamed columns and string keys.

mod customer {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "customers")]
    #[sync(syncer = "erp.customer", watch(name, r#type, email), register_on_insert, soft_delete = deleted_at)]
    #[sync(syncer = "crm.contact", watch(email))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub r#type: String,
        #[sea_orm(column_name = "email_address")]
        pub email: String,
        pub deleted_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

mod order {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "orders")]
    #[sync(syncer = "erp.sales_order", watch(status), register_on_insert)]
    #[sync(syncer = "crm.contact", watch(status), root = customer_id)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub customer_id: Option<i32>,
        pub status: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

mod line_item {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "line_items")]
    #[sync(syncer = "erp.sales_order", watch(quantity), root = order_id)]
    #[sync(syncer = "crm.contact", watch(quantity), root_fn = customer_of, via(order_id))]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub order_id: i64,
        pub quantity: i32,
    }

    async fn customer_of<C: ConnectionTrait>(item: &Model, db: &C) -> Result<Option<i32>, DbErr> {
        Ok(super::order::Entity::find_by_id(item.order_id).one(db).await?.and_then(|o| o.customer_id))
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

mod sku {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "skus")]
    #[sync(syncer = "shop.sku", watch(title))]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub title: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

fn main() {
    use sync_core::Syncable;
    assert_eq!(customer::Model::MEMBERSHIPS.len(), 2);
    assert!(line_item::Model::MEMBERSHIPS[1].is_root() == false);
    assert_eq!(sku::Model::MEMBERSHIPS[0].syncer(), "shop.sku");
}
