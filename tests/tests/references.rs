//! References between groups: a sales order carries its customer's ERP id
//! (`TranslateContext::remote_id_of`). When the customer gets another remote id, the order
//! follows; a push racing the customer's recreation does not leave the old id behind; and
//! groups that look up no remote id pay nothing for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter,
};
use serde_json::{Value, json};
use sync_core::entity::sync_group;
use sync_core::ops::{self, ForgetScope};
use sync_core::source::{
    ApplyContext, HttpFeed, InboundRecord, Pagination, Source, SourceRunOptions, run_source,
};
use sync_core::{
    Clock, Engine, EngineConfig, HttpRemote, PushContext, RemoteId, Syncer, TranslateContext,
    WhenMissing, async_trait,
};
use sync_tests::models::{customer, order};
use sync_tests::stepping::{Harness, backoff, harness};
use sync_tests::syncers::registry;
use sync_tests::{Backend, fixtures, on_each_backend};

async fn rename(h: &Harness, c: &customer::Model, name: &str) -> customer::Model {
    let mut am = c.clone().into_active_model();
    am.name = Set(name.into());
    am.update(&h.t.db).await.unwrap()
}

async fn set_status(h: &Harness, o: &order::Model, status: &str) -> order::Model {
    let mut am = o.clone().into_active_model();
    am.status = Set(status.into());
    am.update(&h.t.db).await.unwrap()
}

/// The ERP id of the customer (as the remote gave it, a JSON number).
async fn erp_id(h: &Harness, c: &customer::Model) -> Value {
    let id = h.group("erp.customer", c.id).await.remote_id().unwrap();
    serde_json::to_value(&id).unwrap()
}

/// The customer id the ERP's sales order of `o` carries.
async fn carried(h: &Harness, o: &order::Model) -> Value {
    let id = h
        .group("erp.sales_order", o.id)
        .await
        .remote_id
        .expect("the order was created");
    h.remote
        .record("erp/sales_orders", &id)
        .expect("the ERP has the order")["customer"]
        .clone()
}

/// The ERP loses the customer of group `lost`, and an operator forgets its id.
async fn lose_and_forget(h: &Harness, lost: &sync_core::entity::sync_group::Model) {
    assert!(
        h.remote
            .remove_record("erp/customers", lost.remote_id.as_ref().unwrap())
    );
    let forgotten = ops::forget(&h.t.db, &ForgetScope::Group(lost.id), h.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
}

async fn in_step(h: &Harness) {
    let problems =
        sync_tests::cluster::differences(&h.t.db, &registry(&h.remote.url(), &h.knobs), &h.remote)
            .await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn a_lost_customer_created_again_brings_its_orders_along() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        *h.knobs.erp_customer_when_missing.lock().unwrap() = WhenMissing::Recreate;
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        let bob = fixtures::customer(&h.t.db, "Bob").await;
        h.engine.run_until_idle(10).await.unwrap();
        let a1 = fixtures::order(&h.t.db, ada.id, "A-1").await;
        let a2 = fixtures::order(&h.t.db, ada.id, "A-2").await;
        let b1 = fixtures::order(&h.t.db, bob.id, "B-1").await;
        h.engine.run_until_idle(10).await.unwrap();
        let old = erp_id(&h, &ada).await;
        assert_eq!(carried(&h, &a1).await, old);
        h.remote.clear_requests();

        // The ERP loses Ada; her next update answers 404 and she is created again.
        let old_id = h.group("erp.customer", ada.id).await.remote_id.unwrap();
        assert!(h.remote.remove_record("erp/customers", &old_id));
        let ada = rename(&h, &ada, "Ada Lovelace").await;
        h.engine.run_until_idle(10).await.unwrap();
        let new = erp_id(&h, &ada).await;
        assert_ne!(new, old);
        assert_eq!(carried(&h, &a1).await, new);
        assert_eq!(carried(&h, &a2).await, new);
        assert_eq!(
            h.pushes("PUT", "/erp/sales_orders/"),
            2,
            "Ada's two orders are pushed once each, Bob's not at all"
        );
        assert_eq!(h.pushes("POST", "/erp/sales_orders"), 0);
        assert_eq!(carried(&h, &b1).await, erp_id(&h, &bob).await);
        in_step(&h).await;

        // Lost again, and this time an operator forgets the id: the same.
        h.remote.clear_requests();
        let lost = h.group("erp.customer", ada.id).await;
        lose_and_forget(&h, &lost).await;
        h.engine.run_until_idle(10).await.unwrap();
        let newer = erp_id(&h, &ada).await;
        assert_ne!(newer, new);
        assert_eq!(carried(&h, &a1).await, newer);
        assert_eq!(carried(&h, &a2).await, newer);
        assert_eq!(h.pushes("PUT", "/erp/sales_orders/"), 2);
        in_step(&h).await;
    })
    .await;
}

/// An order's first push goes out carrying Ada's ERP id; while the ERP holds it, Ada's record is
/// lost, forgotten and created again under a new id (by another pass, the order being leased).
/// Ada's completion finds no order carrying her old id: the order's references are not stored
/// yet. The order's record must then notice that the id it carried is no longer Ada's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_pushed_while_its_customer_is_created_again_follows_the_new_id() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        let old = erp_id(&h, &ada).await;
        let old_id = h.group("erp.customer", ada.id).await.remote_id.unwrap();

        let o = fixtures::order(&h.t.db, ada.id, "A-1").await;
        let mut hold = h.remote.hold(Some("/erp/sales_orders"));
        let engine = h.engine.clone();
        let first = tokio::spawn(async move { engine.run_once().await });
        hold.arrived(1).await;

        // Meanwhile Ada is lost, forgotten and created again.
        assert!(h.remote.remove_record("erp/customers", &old_id));
        let group = h.group("erp.customer", ada.id).await;
        ops::forget(&h.t.db, &ForgetScope::Group(group.id), h.clock.now_ms())
            .await
            .unwrap();
        let other = h.engine.run_once().await.unwrap();
        assert_eq!(
            (other.claimed, other.pushed),
            (1, 1),
            "only Ada: the order is leased"
        );
        let new = erp_id(&h, &ada).await;
        assert_ne!(new, old);

        hold.release();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.pushed, 1);
        assert_eq!(
            carried(&h, &o).await,
            old,
            "the order went out with the id it read"
        );
        let g = h.group("erp.sales_order", o.id).await;
        assert_eq!(
            (g.state.as_str(), g.synced_version, g.version),
            ("pending", 1, 2),
            "recorded as pushed, and dirty again: the id it carried is not Ada's any more"
        );

        h.engine.run_until_idle(10).await.unwrap();
        assert_eq!(carried(&h, &o).await, new);
        assert_eq!(h.pushes("POST", "/erp/sales_orders"), 1);
        assert_eq!(h.pushes("PUT", "/erp/sales_orders/"), 1, "one more push");
        in_step(&h).await;
    })
    .await;
}

/// The ERP's customers, linked to the local customer with the same email (as an application
/// adopting records made on the ERP would).
#[derive(Debug)]
struct ErpCustomers {
    feed: HttpFeed,
}

#[async_trait]
impl Source for ErpCustomers {
    fn name(&self) -> &str {
        "erp.customers"
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> sync_core::Result<()> {
        let Some(email) = record.data["email"].as_str() else {
            return Ok(());
        };
        if let Some(c) = customer::Entity::find()
            .filter(customer::Column::Email.eq(email))
            .one(cx.db())
            .await?
        {
            cx.link("erp.customer", c.id, &record.remote_id).await?;
        }
        Ok(())
    }
}

/// Runs [`ErpCustomers`] over the ERP's `collection`, linking the customers it lists.
async fn link_from(h: &Harness, collection: &str) {
    let http = HttpRemote::builder(format!("{}/erp", h.remote.url()), collection)
        .build()
        .unwrap();
    let source = ErpCustomers {
        feed: HttpFeed::builder(http)
            .pagination(Pagination::pages("_page", "_limit", 50))
            .build()
            .unwrap(),
    };
    run_source(&h.t.db, &source, &SourceRunOptions::new("worker-a"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_customer_linked_to_another_erp_record_brings_its_orders_along() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        let a1 = fixtures::order(&h.t.db, ada.id, "A-1").await;
        h.engine.run_until_idle(10).await.unwrap();

        // The ERP loses Ada and its staff make her again by hand, under id 77; her id is
        // forgotten here, and the ERP's customers, read back, link her to the new record.
        let group = h.group("erp.customer", ada.id).await;
        assert!(
            h.remote
                .remove_record("erp/customers", group.remote_id.as_ref().unwrap())
        );
        ops::forget(&h.t.db, &ForgetScope::Group(group.id), h.clock.now_ms())
            .await
            .unwrap();
        h.remote.put_record(
            "erp/customers",
            "77",
            json!({"id": 77, "name": "Ada", "email": "ada@example.com", "addresses": []}),
        );
        link_from(&h, "customers").await;
        assert_eq!(erp_id(&h, &ada).await, json!(77));
        h.remote.clear_requests();

        h.engine.run_until_idle(10).await.unwrap();
        assert_eq!(carried(&h, &a1).await, json!(77));
        assert_eq!(h.pushes("POST", "/erp/"), 0, "nothing created");
        assert_eq!(h.pushes("PUT", "/erp/sales_orders/"), 1);
        in_step(&h).await;
    })
    .await;
}

#[tokio::test]
async fn a_first_create_pushes_nothing_else() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        let a1 = fixtures::order(&h.t.db, ada.id, "A-1").await;
        h.engine.run_until_idle(10).await.unwrap();
        h.remote.clear_requests();

        // A new customer; then another with an order made before she exists on the ERP.
        fixtures::customer(&h.t.db, "Bob").await;
        h.engine.run_until_idle(10).await.unwrap();
        let cy = fixtures::customer(&h.t.db, "Cy").await;
        let c1 = fixtures::order(&h.t.db, cy.id, "C-1").await;
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.waiting, 1, "the order waits for Cy's id");
        h.clock.advance(Duration::from_secs(5));
        h.engine.run_until_idle(10).await.unwrap();

        assert_eq!(
            h.remote.calls(),
            [
                "POST /erp/customers",
                "POST /erp/customers",
                "POST /erp/sales_orders"
            ],
            "Bob's and Cy's creates and Cy's order's, nothing more"
        );
        assert_eq!(carried(&h, &c1).await, erp_id(&h, &cy).await);
        assert_eq!(carried(&h, &a1).await, erp_id(&h, &ada).await);
        assert_eq!(
            sync_core::ops::logged_touches(&h.t.db).await.unwrap(),
            0,
            "and no touch is left"
        );
        in_step(&h).await;
    })
    .await;
}

/// Statements that name `sync_references`, counted on the engine's connection: none for groups
/// that look up no remote id or the same ones as last time; for a batch of new references, one
/// statement on PostgreSQL, two (insert, then the guard) on SQLite and MariaDB.
#[tokio::test]
async fn only_new_references_cost_statements() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let statements = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut db = h.t.db.clone();
        let seen = statements.clone();
        db.set_metric_callback(move |info| {
            seen.lock().unwrap().push(info.statement.sql.clone());
        });
        let engine = Engine::new(
            db,
            registry(&h.remote.url(), &h.knobs),
            h.engine.config().clone(),
        )
        .unwrap()
        .with_clock(h.clock.clone())
        .with_retry_policy(backoff());
        let run = || async {
            statements.lock().unwrap().clear();
            engine.run_until_idle(10).await.unwrap();
            let all = statements.lock().unwrap();
            assert!(!all.is_empty(), "the callback sees the engine's statements");
            all.iter().filter(|s| s.contains("sync_references")).count()
        };

        // Customers: created, then updated.
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        let bob = fixtures::customer(&h.t.db, "Bob").await;
        assert_eq!(run().await, 0, "creates");
        rename(&h, &ada, "Ada Lovelace").await;
        rename(&h, &bob, "Bob Bright").await;
        assert_eq!(run().await, 0, "updates");

        // Orders: their first pushes store their references (one batch).
        let a1 = fixtures::order(&h.t.db, ada.id, "A-1").await;
        let b1 = fixtures::order(&h.t.db, bob.id, "B-1").await;
        let expected = if h.t.backend == Backend::Postgres {
            1
        } else {
            2
        };
        assert_eq!(run().await, expected, "new references");
        // Changed orders carrying the same ids write none.
        set_status(&h, &a1, "paid").await;
        set_status(&h, &b1, "paid").await;
        assert_eq!(run().await, 0, "the same references");
        in_step(&h).await;
    })
    .await;
}

/// PostgreSQL: recording references finds the rows it concerns through the indexes, among
/// 100,000 groups and references in tables not analysed yet (a new install, a backfill): the
/// referenced groups' remote ids, the referrers' old references and the referrers of a group
/// whose remote id changed, each looked up on its own.
#[tokio::test]
async fn recording_references_reads_only_the_rows_it_concerns() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let h = harness(t, |_| {}).await;
        h.t.db
            .execute_unprepared(
                "ALTER TABLE sync_groups SET (autovacuum_enabled = false); \
                 ALTER TABLE sync_references SET (autovacuum_enabled = false)",
            )
            .await
            .expect("no autovacuum");
        h.t.seed_synced_groups("seeded.thing", "", 100_000).await;
        h.t.db
            .execute_unprepared(
                "INSERT INTO sync_references (target_syncer, target_key, referrer_id, \
                 referrer_syncer, referrer_key, remote_id) \
                 SELECT 'seeded.thing', CAST(g AS text), 1000000 + g, 'seeded.thing', \
                 CAST(g AS text), CAST(g AS text) FROM generate_series(1, 100000) AS g",
            )
            .await
            .expect("seed");
        let mut customers = Vec::new();
        for i in 0..10 {
            customers.push(fixtures::customer(&h.t.db, &format!("C{i}")).await);
        }
        h.engine.run_until_idle(10).await.unwrap();
        let lost = h.group("erp.customer", customers[0].id).await;
        let mut orders = Vec::new();
        for (i, c) in customers.iter().enumerate() {
            for j in 0..10 {
                orders.push(fixtures::order(&h.t.db, c.id, &format!("O-{i}-{j}")).await);
            }
        }
        let engine_on = |db| {
            Engine::new(
                db,
                registry(&h.remote.url(), &h.knobs),
                h.engine.config().clone(),
            )
            .unwrap()
            .with_clock(h.clock.clone())
            .with_retry_policy(backoff())
        };
        // Both counts once every connection of `db` has closed (and reported its own).
        let read = |db| async {
            let references = h.t.rows_read("sync_references", db).await;
            let groups = h.t.rows_read("sync_groups", h.t.pool_apart(1).await).await;
            (groups, references)
        };
        let (groups_before, references_before) = read(h.t.pool_apart(1).await).await;

        // The orders' first pushes store their references; then each moves to the next
        // customer (its old reference replaced); then a customer lost by the ERP is created
        // again (its referrers carry an outdated id).
        let db = h.t.pool_apart(4).await;
        let engine = engine_on(db.clone());
        engine.run_until_idle(10).await.unwrap();
        for (i, o) in orders.iter().enumerate() {
            let mut am = o.clone().into_active_model();
            am.customer_id = Set(customers[(i / 10 + 1) % 10].id);
            am.update(&h.t.db).await.unwrap();
        }
        engine.run_until_idle(10).await.unwrap();
        lose_and_forget(&h, &lost).await;
        engine.run_until_idle(10).await.unwrap();
        drop(engine);
        assert_eq!(
            h.pushes("PUT", "/erp/sales_orders/"),
            110,
            "each order moved once, then the ten orders of the customer created again"
        );
        let (groups, references) = read(db).await;
        let (groups, references) = (groups - groups_before, references - references_before);
        assert!(
            groups < 20_000 && references < 20_000,
            "pushing 100 orders read {groups} rows of sync_groups and {references} of \
             sync_references, each among 100,000"
        );
        h.t.db
            .execute_unprepared(
                "DELETE FROM sync_groups WHERE syncer = 'seeded.thing'; \
                 DELETE FROM sync_references WHERE target_syncer = 'seeded.thing'",
            )
            .await
            .expect("remove the seeded rows");
        in_step(&h).await;
    })
    .await;
}

/// An inbound source links a customer to a record the ERP's staff made by hand while the
/// worker's create of that customer is at the ERP, its answer not back yet. The group keeps the
/// linked record (the one the inbound side follows), which then gets the customer's data, and
/// the record the create made is deleted: the ERP ends with one record for her. Without it the
/// create's answer replaced the linked id, and the ERP kept two records.
#[tokio::test]
async fn a_link_made_while_the_create_is_in_flight_keeps_the_linked_record_and_deletes_the_other() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        // Made by hand under id 77; the ERP's directory, which the source reads, lists it.
        h.remote.put_record(
            "erp/customers",
            "77",
            json!({"id": 77, "name": "Ada (by hand)", "email": "ada@example.com", "addresses": []}),
        );
        h.remote.put_record(
            "erp/directory",
            "77",
            json!({"id": 77, "email": "ada@example.com"}),
        );
        let mut hold = h.remote.hold(Some("/erp/customers"));
        let engine = h.engine.clone();
        let pass = tokio::spawn(async move { engine.run_once().await });
        hold.arrived(1).await;

        link_from(&h, "directory").await;
        hold.release();
        pass.await.unwrap().unwrap();
        assert_eq!(
            erp_id(&h, &ada).await,
            json!(77),
            "the linked record is kept"
        );
        let group = h.group("erp.customer", ada.id).await;
        assert_eq!(
            group.state, "pending",
            "due again, to update the linked record"
        );

        // The duplicate's delete is queued with the record, as a group of its own.
        let made = h.remote.records("erp/customers");
        let made: Vec<&String> = made.keys().filter(|id| *id != "77").collect();
        assert_eq!(made.len(), 1, "the create made a record");
        let duplicate = sync_group::Entity::find()
            .filter(sync_group::Column::RootKey.eq(format!("duplicate:{}:{}", group.id, made[0])))
            .one(&h.t.db)
            .await
            .unwrap()
            .expect("the duplicate's delete is queued");
        assert_eq!(
            (
                duplicate.state.as_str(),
                duplicate.root_deleted,
                duplicate.remote_id.as_deref()
            ),
            ("pending", true, Some(made[0].as_str()))
        );

        // The worker that pushed may be gone: another one does the rest.
        let other = Engine::new(
            h.t.db.clone(),
            registry(&h.remote.url(), &h.knobs),
            EngineConfig::default(),
        )
        .unwrap()
        .with_clock(h.clock.clone());
        other.run_until_idle(10).await.unwrap();
        let records = h.remote.records("erp/customers");
        assert_eq!(records.keys().collect::<Vec<_>>(), ["77"], "{records:#?}");
        assert_eq!(records["77"]["name"], json!("Ada"));
        assert_eq!(h.pushes("POST", "/erp/customers"), 1);
        assert_eq!(h.pushes("PUT", "/erp/customers/77"), 1);
        assert_eq!(
            h.pushes("DELETE", &format!("/erp/customers/{}", made[0])),
            1,
            "the duplicate"
        );
        let duplicate = sync_group::Entity::find_by_id(duplicate.id)
            .one(&h.t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(duplicate.state, "deleted", "closed");
        in_step(&h).await;
    })
    .await;
}

/// Creates that wait for the test, answering the record 77; every call noted.
#[derive(Default)]
struct Gate {
    entered: tokio::sync::Notify,
    go: tokio::sync::Notify,
    calls: Mutex<Vec<String>>,
}

struct Gated(Arc<Gate>);

#[async_trait]
impl Syncer for Gated {
    fn name(&self) -> &str {
        "erp.customer"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> sync_core::Result<Option<Value>> {
        Ok(Some(json!({ "customer": cx.key::<i32>()? })))
    }

    async fn create(&self, _cx: &PushContext<'_>, _payload: &Value) -> sync_core::Result<RemoteId> {
        self.0.calls.lock().unwrap().push("create".into());
        self.0.entered.notify_one();
        self.0.go.notified().await;
        Ok(RemoteId::number(77))
    }

    async fn update(
        &self,
        _cx: &PushContext<'_>,
        remote_id: &str,
        _payload: &Value,
    ) -> sync_core::Result<()> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("update {remote_id}"));
        Ok(())
    }

    async fn delete(&self, _cx: &PushContext<'_>, remote_id: &str) -> sync_core::Result<()> {
        self.0
            .calls
            .lock()
            .unwrap()
            .push(format!("delete {remote_id}"));
        Ok(())
    }
}

/// A create whose answer is the very record a source linked the group to meanwhile (a remote
/// that matched the record by a key of its own) made no duplicate: the group completes as
/// usual, and nothing is deleted or pushed again.
#[tokio::test]
async fn a_create_answering_the_record_linked_meanwhile_completes_as_usual() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let gate = Arc::new(Gate::default());
        let mut syncers = sync_core::Registry::new();
        syncers.register(Gated(gate.clone())).unwrap();
        let engine = Engine::new(h.t.db.clone(), syncers, EngineConfig::default()).unwrap();
        let ada = fixtures::customer(&h.t.db, "Ada").await;
        h.remote.put_record(
            "erp/directory",
            "77",
            json!({"id": 77, "email": "ada@example.com"}),
        );
        let pass = tokio::spawn({
            let engine = engine.clone();
            async move { engine.run_once().await }
        });
        gate.entered.notified().await;
        link_from(&h, "directory").await;
        gate.go.notify_one();
        assert_eq!(pass.await.unwrap().unwrap().pushed, 1);

        assert_eq!(erp_id(&h, &ada).await, json!(77));
        assert_eq!(h.group("erp.customer", ada.id).await.state, "synced");
        engine.run_until_idle(10).await.unwrap();
        assert_eq!(*gate.calls.lock().unwrap(), ["create"]);
        let queued = sync_group::Entity::find()
            .filter(sync_group::Column::RootKey.starts_with("duplicate:"))
            .count(&h.t.db)
            .await
            .unwrap();
        assert_eq!(queued, 0, "no delete queued");
    })
    .await;
}
