//! Dependents whose root is found by a function: generic over the connection, named by a
//! plain or a qualified path, with or without `via(...)`, returning any key type.

mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub customer_id: i32,
        pub region: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod line_item {
    use sea_orm::entity::prelude::*;
    use sync_core::Syncable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Syncable)]
    #[sea_orm(table_name = "line_items")]
    #[sync(syncer = "erp.sales_order", watch(quantity), root = order_id)]
    #[sync(syncer = "crm.contact", watch(quantity, price_cents), root_fn = customer_of, via(order_id))]
    #[sync(syncer = "ops.region", watch(quantity), root_fn = lookup::region_of)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub order_id: i32,
        pub quantity: i32,
        pub price_cents: i64,
    }

    /// LineItem → Order → Customer.
    async fn customer_of<C: ConnectionTrait>(item: &Model, db: &C) -> Result<Option<i32>, DbErr> {
        let order = super::order::Entity::find_by_id(item.order_id)
            .one(db)
            .await?;
        Ok(order.map(|o| o.customer_id))
    }

    mod lookup {
        use sea_orm::entity::prelude::*;

        pub(super) async fn region_of<C>(
            item: &super::Model,
            db: &C,
        ) -> Result<Option<String>, DbErr>
        where
            C: ConnectionTrait,
        {
            let order = super::super::order::Entity::find_by_id(item.order_id)
                .one(db)
                .await?;
            Ok(order.map(|o| o.region))
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    #[sync_core::hooks]
    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn generates_its_memberships() {
    use sync_core::{Link, Syncable};

    let [by_column, by_fn, by_path] = line_item::Model::MEMBERSHIPS else {
        panic!("three memberships");
    };
    assert!(matches!(
        by_column.link(),
        Link::Column(line_item::Column::OrderId)
    ));
    assert!(matches!(
        by_fn.link(),
        Link::Function {
            via: [line_item::Column::OrderId]
        }
    ));
    assert!(matches!(by_path.link(), Link::Function { via: [] }));
}
