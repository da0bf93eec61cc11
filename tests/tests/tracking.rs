//! Dirty tracking: what each kind of write does to `sync_groups`, on every configured backend.

use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    TransactionTrait,
};
use sync_tests::models::{address, billing_info, customer, line_item, order, product};
use sync_tests::{TestDb, fixtures, on_each_backend};

async fn new_customer(t: &TestDb, name: &str) -> customer::Model {
    fixtures::customer(&t.db, name).await
}

async fn new_address(t: &TestDb, customer_id: i32, city: &str) -> address::Model {
    fixtures::address(&t.db, customer_id, city).await
}

async fn new_order(t: &TestDb, customer_id: i32, reference: &str) -> order::Model {
    fixtures::order(&t.db, customer_id, reference).await
}

async fn new_item(t: &TestDb, order_id: i32, sku: &str) -> line_item::Model {
    fixtures::line_item(&t.db, order_id, sku).await
}

async fn version(t: &TestDb, syncer: &str, key: impl ToString) -> i64 {
    t.group(syncer, key).await.map_or(0, |g| g.version)
}

/// Two customers, each registered in `erp.customer` (by its hook) and in `crm.contact`.
async fn ada_and_bob_in_both_syncers(t: &TestDb) -> (customer::Model, customer::Model) {
    let ada = new_customer(t, "Ada").await;
    let bob = new_customer(t, "Bob").await;
    for c in [&ada, &bob] {
        sync_core::sync_as(&t.db, "crm.contact", c).await.unwrap();
    }
    (ada, bob)
}

async fn mark_all_synced(t: &TestDb) {
    fixtures::mark_all_synced(&t.db).await;
}

#[tokio::test]
async fn inserting_a_root_registers_only_opted_in_syncers() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        let groups = t.groups().await;
        assert_eq!(
            groups.len(),
            1,
            "only erp.customer registers on insert: {groups:?}"
        );
        let g = &groups[0];
        assert_eq!(
            (g.syncer.as_str(), g.root_key.as_str()),
            ("erp.customer", c.id.to_string().as_str())
        );
        assert_eq!(
            (g.version, g.synced_version, g.state.as_str()),
            (1, 0, "pending")
        );
        assert!(!g.root_deleted);
    })
    .await;
}

#[tokio::test]
async fn unregistered_root_is_ignored_until_sync_registers_it() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        // crm.contact is explicit: a watched change of an unregistered root writes nothing.
        let mut am = c.clone().into_active_model();
        am.phone = Set(Some("555".into()));
        am.update(&t.db).await.unwrap();
        assert!(t.group("crm.contact", c.id).await.is_none());

        assert_eq!(
            sync_core::sync_as(&t.db, "crm.contact", &c).await.unwrap(),
            1
        );
        let g = t.group("crm.contact", c.id).await.expect("registered");
        assert_eq!((g.version, g.state.as_str()), (1, "pending"));

        // From now on the hooks touch it.
        let mut am = c.clone().into_active_model();
        am.phone = Set(Some("556".into()));
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", c.id).await, 2);

        // `sync` registers every root membership; registering again is a touch.
        assert_eq!(sync_core::sync(&t.db, &c).await.unwrap(), 2);
        assert_eq!(version(&t, "crm.contact", c.id).await, 3);
        assert_eq!(version(&t, "erp.customer", c.id).await, 2);

        // Registering as a syncer the model is not a root of is a clear error.
        let err = sync_core::sync_as(&t.db, "erp.sales_order", &c)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`customers` is not a root of syncer `erp.sales_order`"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn watched_change_bumps_version_once() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;
        let mut am = c.clone().into_active_model();
        am.email = Set("ada@lovelace.org".into());
        am.update(&t.db).await.unwrap();
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert_eq!(
            (g.version, g.synced_version, g.state.as_str()),
            (2, 1, "pending")
        );
    })
    .await;
}

#[tokio::test]
async fn unwatched_change_and_same_value_write_nothing() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;
        let before = t.groups().await;

        // Only an unwatched column.
        let mut am = c.clone().into_active_model();
        am.notes = Set("likes tea".into());
        am.update(&t.db).await.unwrap();
        assert_eq!(
            t.groups().await,
            before,
            "an unwatched change must not write sync_groups"
        );

        // A watched column set to the value it already has.
        let mut am = c.clone().into_active_model();
        am.name = Set(c.name.clone());
        am.email = Set(c.email.clone());
        am.update(&t.db).await.unwrap();
        assert_eq!(
            t.groups().await,
            before,
            "`Set(same value)` must not write sync_groups"
        );

        // `reset_all` sets every column; still nothing really changed.
        c.clone()
            .into_active_model()
            .reset_all()
            .update(&t.db)
            .await
            .unwrap();
        assert_eq!(t.groups().await, before);
    })
    .await;
}

#[tokio::test]
async fn each_membership_watches_its_own_columns() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        sync_core::sync_as(&t.db, "crm.contact", &c).await.unwrap();
        mark_all_synced(&t).await;

        // `phone` is watched by crm.contact only.
        let mut am = c.clone().into_active_model();
        am.phone = Set(Some("555".into()));
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", c.id).await, 2);
        assert_eq!(version(&t, "erp.customer", c.id).await, 1);

        // `name` is watched by both.
        let mut am = c.clone().into_active_model();
        am.name = Set("Ada L.".into());
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", c.id).await, 3);
        assert_eq!(version(&t, "erp.customer", c.id).await, 2);
    })
    .await;
}

#[tokio::test]
async fn update_without_returning_touches_too() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        let am = customer::ActiveModel {
            id: Unchanged(c.id),
            name: Set("Ada B.".into()),
            ..Default::default()
        };
        am.update_without_returning(&t.db).await.unwrap();
        assert_eq!(version(&t, "erp.customer", c.id).await, 2);
    })
    .await;
}

#[tokio::test]
async fn dependent_insert_update_and_delete_touch_the_root() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;

        let a = new_address(&t, c.id, "Paris").await;
        assert_eq!(
            version(&t, "erp.customer", c.id).await,
            2,
            "insert touches the root"
        );

        let mut am = a.clone().into_active_model();
        am.street = Set("2 Rue de Rivoli".into());
        am.update(&t.db).await.unwrap();
        assert_eq!(
            version(&t, "erp.customer", c.id).await,
            3,
            "a watched update touches the root"
        );

        let mut am = a.clone().into_active_model();
        am.label = Set("work".into());
        am.update(&t.db).await.unwrap();
        assert_eq!(
            version(&t, "erp.customer", c.id).await,
            3,
            "an unwatched update does not"
        );

        // Delete through an active model holding only the key: the hook reads the row first.
        address::ActiveModel {
            id: Set(a.id),
            ..Default::default()
        }
        .delete(&t.db)
        .await
        .unwrap();
        assert_eq!(
            version(&t, "erp.customer", c.id).await,
            4,
            "delete touches the root"
        );
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert_eq!(g.state, "pending");
        assert!(
            !g.root_deleted,
            "deleting a dependent does not delete the root"
        );
    })
    .await;
}

#[tokio::test]
async fn moving_a_dependent_touches_both_roots() {
    on_each_backend(|t| async move {
        let ada = new_customer(&t, "Ada").await;
        let bob = new_customer(&t, "Bob").await;
        let a = new_address(&t, ada.id, "Paris").await;
        mark_all_synced(&t).await;

        // Only the foreign key changes: both roots are touched, once each.
        let mut am = a.clone().into_active_model();
        am.customer_id = Set(bob.id);
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "erp.customer", ada.id).await, 3);
        assert_eq!(version(&t, "erp.customer", bob.id).await, 2);
        let moved = address::Entity::find_by_id(a.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.customer_id, bob.id);
    })
    .await;
}

#[tokio::test]
async fn a_function_finds_the_root_two_hops_away() {
    on_each_backend(|t| async move {
        let (ada, bob) = ada_and_bob_in_both_syncers(&t).await;
        let ada_order = new_order(&t, ada.id, "A-1").await;
        let bob_order = new_order(&t, bob.id, "B-1").await;
        mark_all_synced(&t).await;

        // LineItem → Order → Customer.
        let item = new_item(&t, ada_order.id, "SKU-1").await;
        assert_eq!(version(&t, "crm.contact", ada.id).await, 3);
        assert_eq!(version(&t, "erp.sales_order", ada_order.id).await, 2);

        let mut am = item.clone().into_active_model();
        am.quantity = Set(3);
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", ada.id).await, 4);
        assert_eq!(version(&t, "crm.contact", bob.id).await, 2);

        // `sku` is watched by the sales order only.
        let mut am = item.clone().into_active_model();
        am.sku = Set("SKU-2".into());
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", ada.id).await, 4);
        assert_eq!(version(&t, "erp.sales_order", ada_order.id).await, 4);

        // Moving the item to Bob's order moves it between customers two hops up.
        let mut am = item.clone().into_active_model();
        am.order_id = Set(bob_order.id);
        am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "crm.contact", ada.id).await, 5);
        assert_eq!(version(&t, "crm.contact", bob.id).await, 3);
        assert_eq!(version(&t, "erp.sales_order", ada_order.id).await, 5);
        assert_eq!(version(&t, "erp.sales_order", bob_order.id).await, 2);

        // Deleting it touches what it belonged to last.
        line_item::ActiveModel {
            id: Set(item.id),
            ..Default::default()
        }
        .delete(&t.db)
        .await
        .unwrap();
        assert_eq!(version(&t, "crm.contact", bob.id).await, 4);
        assert_eq!(version(&t, "erp.sales_order", bob_order.id).await, 3);
    })
    .await;
}

#[tokio::test]
async fn several_dependents_feed_one_group() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        let o = new_order(&t, c.id, "A-1").await;
        mark_all_synced(&t).await;
        new_item(&t, o.id, "SKU-1").await;
        let b = billing_info::ActiveModel {
            order_id: Set(o.id),
            iban: Set("FR76".into()),
            address: Set("1 Main St".into()),
            ..Default::default()
        }
        .insert(&t.db)
        .await
        .unwrap();
        let mut am = b.into_active_model();
        am.iban = Set("FR77".into());
        am.update(&t.db).await.unwrap();
        let g = t.group("erp.sales_order", o.id).await.unwrap();
        assert_eq!(
            (g.version, g.synced_version, g.state.as_str()),
            (4, 1, "pending")
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_root_marks_its_group_for_a_remote_delete() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;
        customer::ActiveModel {
            id: Set(c.id),
            ..Default::default()
        }
        .delete(&t.db)
        .await
        .unwrap();
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert!(g.root_deleted);
        assert_eq!((g.version, g.state.as_str()), (2, "pending"));
    })
    .await;
}

#[tokio::test]
async fn soft_delete_marks_for_delete_and_clearing_it_restores() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;

        let mut am = c.clone().into_active_model();
        am.deleted_at = Set(Some(1_700_000_000_000));
        let c = am.update(&t.db).await.unwrap();
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert!(
            g.root_deleted,
            "setting the soft-delete column means delete on the remote"
        );
        assert_eq!((g.version, g.state.as_str()), (2, "pending"));

        // While deleted, watched changes do not touch.
        let mut am = c.clone().into_active_model();
        am.name = Set("Ghost".into());
        let c = am.update(&t.db).await.unwrap();
        assert_eq!(version(&t, "erp.customer", c.id).await, 2);

        // The worker closed the group after the remote delete; clearing the column reopens it.
        t.db.execute_unprepared(
            "UPDATE sync_groups SET state = 'deleted', synced_version = version",
        )
        .await
        .unwrap();
        let mut am = c.clone().into_active_model();
        am.deleted_at = Set(None);
        am.update(&t.db).await.unwrap();
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert!(!g.root_deleted);
        assert_eq!((g.version, g.state.as_str()), (3, "pending"));
    })
    .await;
}

#[tokio::test]
async fn a_rolled_back_write_leaves_no_trace() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        let o = new_order(&t, c.id, "A-1").await;
        mark_all_synced(&t).await;
        let before = t.groups().await;

        let txn = t.db.begin().await.unwrap();
        let mut am = c.clone().into_active_model();
        am.name = Set("Rolled Back".into());
        am.update(&txn).await.unwrap();
        new_item_in(&txn, o.id).await;
        new_customer_in(&txn).await;
        order::ActiveModel {
            id: Set(o.id),
            ..Default::default()
        }
        .delete(&txn)
        .await
        .unwrap();
        // Inside the transaction the touches are logged…
        const LOGGED: &str = "SELECT COUNT(*) AS n FROM sync_touches";
        assert!(db_count(&txn, LOGGED).await > 0);
        txn.rollback().await.unwrap();

        // …and after the rollback nothing of them is left.
        assert_eq!(db_count(&t.db, LOGGED).await, 0);
        assert_eq!(t.groups().await, before);
    })
    .await;
}

async fn db_count<C: ConnectionTrait>(db: &C, sql: &str) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap()
    .map_or(0, |row| row.try_get::<i64>("", "n").unwrap())
}

async fn new_item_in<C: ConnectionTrait>(db: &C, order_id: i32) {
    line_item::ActiveModel {
        order_id: Set(order_id),
        sku: Set("X".into()),
        quantity: Set(1),
        price_cents: Set(1),
        comment: Set(String::new()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
}

async fn new_customer_in<C: ConnectionTrait>(db: &C) {
    customer::ActiveModel {
        name: Set("Tmp".into()),
        email: Set("tmp@example.com".into()),
        phone: Set(None),
        notes: Set(String::new()),
        deleted_at: Set(None),
        id: NotSet,
    }
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_committed_transaction_keeps_its_touches() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;
        let txn = t.db.begin().await.unwrap();
        let mut am = c.clone().into_active_model();
        am.email = Set("new@example.com".into());
        am.update(&txn).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(version(&t, "erp.customer", c.id).await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_hundred_updates_coalesce_into_one_dirty_group() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        mark_all_synced(&t).await;
        for i in 0..100 {
            let am = customer::ActiveModel {
                id: Unchanged(c.id),
                name: Set(format!("Ada {i}")),
                ..Default::default()
            };
            am.update(&t.db).await.unwrap();
        }
        let groups = t.groups().await;
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(
            (g.version, g.synced_version, g.state.as_str()),
            (101, 1, "pending")
        );
        assert!(g.is_dirty());
    })
    .await;
}

#[tokio::test]
async fn bulk_helpers_touch_exactly_the_matching_groups() {
    on_each_backend(|t| async move {
        let mut customers = Vec::new();
        for name in ["Ada", "Bob", "Cy", "Di"] {
            customers.push(new_customer(&t, name).await);
        }
        let mut orders = Vec::new();
        for c in &customers {
            sync_core::sync_as(&t.db, "crm.contact", c).await.unwrap();
            orders.push(new_order(&t, c.id, &format!("O-{}", c.name)).await);
        }
        for o in &orders {
            new_item(&t, o.id, "SKU").await;
        }
        mark_all_synced(&t).await;
        let before = t.groups().await;

        // `update_many` runs no hooks: touch the roots it matched.
        let filter = customer::Column::Name.is_in(["Ada", "Cy"]);
        customer::Entity::update_many()
            .col_expr(
                customer::Column::Email,
                sea_orm::sea_query::Expr::value("bulk@example.com"),
            )
            .filter(filter.clone())
            .exec(&t.db)
            .await
            .unwrap();
        let touched = sync_core::touch_matching(&t.db, customer::Entity::find().filter(filter))
            .await
            .unwrap();
        assert_eq!(touched, 4, "two customers in two syncers");
        let changed: Vec<(String, String)> = t
            .groups()
            .await
            .into_iter()
            .zip(&before)
            .filter(|(after, before)| after.version != before.version)
            .map(|(g, _)| (g.syncer, g.root_key))
            .collect();
        let (ada, cy) = (customers[0].id.to_string(), customers[2].id.to_string());
        let mut expected = vec![
            ("crm.contact".to_owned(), ada.clone()),
            ("crm.contact".to_owned(), cy.clone()),
            ("erp.customer".to_owned(), ada.clone()),
            ("erp.customer".to_owned(), cy.clone()),
        ];
        expected.sort();
        assert_eq!(changed, expected);

        // Dependents: through the foreign key (sales order) and the function (contact).
        mark_all_synced(&t).await;
        let before = t.groups().await;
        let item_filter = line_item::Column::OrderId.eq(orders[1].id);
        let touched =
            sync_core::touch_matching(&t.db, line_item::Entity::find().filter(item_filter))
                .await
                .unwrap();
        assert_eq!(touched, 2);
        let changed: Vec<(String, String)> = t
            .groups()
            .await
            .into_iter()
            .zip(&before)
            .filter(|(after, before)| after.version != before.version)
            .map(|(g, _)| (g.syncer, g.root_key))
            .collect();
        assert_eq!(
            changed,
            vec![
                ("crm.contact".to_owned(), customers[1].id.to_string()),
                ("erp.sales_order".to_owned(), orders[1].id.to_string()),
            ]
        );

        // `delete_many` of roots: mark first, in the same transaction. An order is the root of
        // its sales order and a dependent of its customer's contact: one delete, one touch.
        let txn = t.db.begin().await.unwrap();
        let gone = order::Entity::find().filter(order::Column::Reference.eq("O-Di"));
        assert_eq!(
            sync_core::mark_deleted_matching(&txn, gone.clone())
                .await
                .unwrap(),
            2
        );
        order::Entity::delete_many()
            .filter(order::Column::Reference.eq("O-Di"))
            .exec(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let g = t.group("erp.sales_order", orders[3].id).await.unwrap();
        assert!(g.root_deleted);
        let others_deleted = t
            .groups()
            .await
            .into_iter()
            .filter(|g| g.root_deleted)
            .count();
        assert_eq!(others_deleted, 1);

        // Raw SQL: touch by key.
        assert!(
            sync_core::touch(&t.db, "erp.customer", customers[3].id)
                .await
                .unwrap()
        );
        assert!(
            !sync_core::touch(&t.db, "erp.customer", 999_999)
                .await
                .unwrap(),
            "no such group"
        );
        assert_eq!(
            sync_core::touch_many(&t.db, "crm.contact", customers.iter().map(|c| c.id))
                .await
                .unwrap(),
            4
        );
    })
    .await;
}

#[tokio::test]
async fn touch_revives_dead_groups_but_not_closed_ones() {
    on_each_backend(|t| async move {
        let ada = new_customer(&t, "Ada").await;
        let bob = new_customer(&t, "Bob").await;
        let cy = new_customer(&t, "Cy").await;
        sync_core::apply_touches(&t.db).await.unwrap();
        t.db.execute_unprepared(&format!(
            "UPDATE sync_groups SET state = 'dead', attempts = 5, last_error = 'HTTP 422', synced_version = 0 WHERE root_key = '{}'",
            ada.id
        ))
        .await
        .unwrap();
        t.db.execute_unprepared(&format!(
            "UPDATE sync_groups SET state = 'deleted', synced_version = version WHERE root_key = '{}'",
            bob.id
        ))
        .await
        .unwrap();
        t.db.execute_unprepared(&format!(
            "UPDATE sync_groups SET state = 'failed', attempts = 2, next_attempt_at = 9999999999999 WHERE root_key = '{}'",
            cy.id
        ))
        .await
        .unwrap();
        for key in [ada.id, bob.id, cy.id] {
            sync_core::touch(&t.db, "erp.customer", key).await.unwrap();
        }
        let ada = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!((ada.state.as_str(), ada.attempts, ada.last_error.as_deref()), ("pending", 0, None));
        let bob = t.group("erp.customer", bob.id).await.unwrap();
        assert_eq!(bob.state, "deleted", "a closed group stays closed");
        let cy = t.group("erp.customer", cy.id).await.unwrap();
        assert_eq!((cy.state.as_str(), cy.attempts, cy.next_attempt_at), ("failed", 2, 9_999_999_999_999), "a failed group keeps its backoff");
    })
    .await;
}

#[tokio::test]
async fn the_applications_own_hooks_run_before_the_frameworks() {
    on_each_backend(|t| async move {
        let p = product::ActiveModel {
            name: Set("Tea".into()),
            price_cents: Set(300),
            ..Default::default()
        }
        .insert(&t.db)
        .await
        .unwrap();
        assert_eq!(p.revision, 1, "the application's own hook ran");
        assert_eq!(
            version(&t, "shop.product", p.id).await,
            1,
            "registered on insert"
        );
        let mut am = p.clone().into_active_model();
        am.price_cents = Set(350);
        let p = am.update(&t.db).await.unwrap();
        assert_eq!(p.revision, 2);
        assert_eq!(version(&t, "shop.product", p.id).await, 2);
        // The application's hook refuses the save: the framework's does not run, nothing is
        // marked.
        let mut am = p.clone().into_active_model();
        am.name = Set(" ".into());
        let refused = am.update(&t.db).await.unwrap_err();
        assert!(
            refused.to_string().contains("a product needs a name"),
            "{refused}"
        );
        assert_eq!(version(&t, "shop.product", p.id).await, 2);
        product::ActiveModel {
            id: Set(p.id),
            ..Default::default()
        }
        .delete(&t.db)
        .await
        .unwrap();
        assert!(t.group("shop.product", p.id).await.unwrap().root_deleted);
    })
    .await;
}

/// The touch statement is rendered once per model, set of columns and backend; each save binds
/// its own row, values and NULLs. Saves of one shape on different rows, back and forth between
/// values, must each touch exactly the group their own row says.
#[tokio::test]
async fn saves_of_one_shape_each_bind_their_own_row_and_values() {
    on_each_backend(|t| async move {
        let (ada, bob) = ada_and_bob_in_both_syncers(&t).await;
        let a = new_address(&t, ada.id, "Paris").await;
        let b = new_address(&t, bob.id, "Rome").await;
        mark_all_synced(&t).await;
        let versions = || async {
            (
                version(&t, "erp.customer", ada.id).await,
                version(&t, "erp.customer", bob.id).await,
                version(&t, "crm.contact", ada.id).await,
                version(&t, "crm.contact", bob.id).await,
            )
        };
        let set_phone = |id: i32, phone: Option<&str>| {
            let db = t.db.clone();
            let phone = phone.map(str::to_owned);
            async move {
                customer::ActiveModel {
                    id: Unchanged(id),
                    phone: Set(phone),
                    ..Default::default()
                }
                .update(&db)
                .await
                .unwrap();
            }
        };
        let set_city = |id: i32, city: &str| {
            let db = t.db.clone();
            let city = city.to_owned();
            async move {
                address::ActiveModel {
                    id: Unchanged(id),
                    city: Set(city),
                    ..Default::default()
                }
                .update(&db)
                .await
                .unwrap();
            }
        };
        let start = versions().await;
        let (e_ada, e_bob, c_ada, c_bob) = start;

        // One shape (phone set, not NULL), on two rows and two values.
        set_phone(ada.id, Some("111")).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob));
        set_phone(bob.id, Some("111")).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob + 1));
        // The same value again on Ada: no change, no touch.
        set_phone(ada.id, Some("111")).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob + 1));
        // Another shape (phone set to NULL), then back to the first one.
        set_phone(bob.id, None).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob + 2));
        set_phone(bob.id, None).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob + 2));
        set_phone(bob.id, Some("111")).await;
        assert_eq!(versions().await, (e_ada, e_bob, c_ada + 1, c_bob + 3));

        // A dependent's shape: the root comes from each locked row's own foreign key.
        set_city(b.id, "Milan").await;
        assert_eq!(versions().await, (e_ada, e_bob + 1, c_ada + 1, c_bob + 4));
        set_city(a.id, "Lyon").await;
        assert_eq!(
            versions().await,
            (e_ada + 1, e_bob + 1, c_ada + 2, c_bob + 4)
        );
        set_city(a.id, "Lyon").await;
        assert_eq!(
            versions().await,
            (e_ada + 1, e_bob + 1, c_ada + 2, c_bob + 4)
        );
    })
    .await;
}

#[tokio::test]
async fn a_closed_group_stays_clean_when_dependents_of_its_archived_root_change() {
    on_each_backend(|t| async move {
        let c = new_customer(&t, "Ada").await;
        let a = new_address(&t, c.id, "Paris").await;
        let mut am = c.clone().into_active_model();
        am.deleted_at = Set(Some(1));
        am.update(&t.db).await.unwrap();
        // The worker deleted the remote copy and closed the group.
        t.groups().await;
        t.db.execute_unprepared(
            "UPDATE sync_groups SET state = 'deleted', synced_version = version WHERE syncer = 'erp.customer'",
        )
        .await
        .unwrap();
        let closed = t.group("erp.customer", c.id).await.unwrap();

        let mut am = a.into_active_model();
        am.city = Set("Lyon".into());
        am.update(&t.db).await.unwrap();
        new_address(&t, c.id, "Nice").await;

        let after = t.group("erp.customer", c.id).await.unwrap();
        assert_eq!(after, closed, "a closed group is not touched");
        let status = sync_core::ops::status(&t.db, &[], sync_core::now_ms()).await.unwrap();
        let erp = status.iter().find(|s| s.syncer == "erp.customer").unwrap();
        assert_eq!((erp.dirty, erp.oldest_dirty_ms), (0, None), "nothing for a worker to do");
    })
    .await;
}

/// Applying touches finds each touched group in the unique index, and so does `touch_many`'s
/// count of the groups that exist: neither reads every group of the syncer, which PostgreSQL
/// did while `sync_groups` had no statistics (after a backfill, until it is analysed): over
/// 400,000 groups the look-up of a batch of 300 touches took more than a second.
#[tokio::test]
async fn touches_find_their_groups_without_reading_every_group_of_the_syncer() {
    on_each_backend(|t: TestDb| async move {
        if t.backend != sync_tests::Backend::Postgres {
            return;
        }
        // 100,000 synced groups, in a table not analysed yet (fewer, and PostgreSQL rightly
        // scans the small table even for updates by primary key).
        t.db.execute_unprepared("ALTER TABLE sync_groups SET (autovacuum_enabled = false)")
            .await
            .expect("no autovacuum");
        t.seed_synced_groups("erp.customer", "", 100_000).await;
        let before = t.rows_read("sync_groups", t.pool_apart(2).await).await;
        let db = t.pool_apart(2).await;
        let existing = sync_core::touch_many(&db, "erp.customer", (1..=300).map(|k| k * 7))
            .await
            .expect("touch");
        assert_eq!(existing, 300, "every touched key has a group");
        let applied = sync_core::apply_touches(&db).await.expect("apply");
        assert_eq!(applied, 300);
        let read = t.rows_read("sync_groups", db).await - before;
        let pending: i64 =
            t.db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM sync_groups WHERE state = 'pending' \
                 AND CAST(root_key AS integer) % 7 = 0 AND CAST(root_key AS integer) <= 2100",
            ))
            .await
            .expect("count")
            .expect("a row")
            .try_get("", "n")
            .expect("n");
        assert_eq!(pending, 300, "every touched group is pending");
        assert!(
            read < 20_000,
            "touching 300 of 100,000 groups read {read} rows of sync_groups"
        );
    })
    .await;
}
