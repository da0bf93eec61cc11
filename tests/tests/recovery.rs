//! Recovering from crashes and from what remotes do behind the framework's back: a create the
//! worker died before recording (against remotes that replay, refuse or ignore idempotency
//! keys), a refused create, a root deleted meanwhile, records the remote lost, and the JSON type
//! of remote ids in references and their following a customer created again.

use std::time::Duration;

use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::Set;
use sea_orm::IntoActiveModel;
use serde_json::json;
use sync_core::__worker;
use sync_core::ops::{self, ForgetScope};
use sync_core::{Clock, WhenMissing};
use sync_tests::models::customer;
use sync_tests::stepping::{Harness, harness};
use sync_tests::{fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, Idempotency};

async fn rename(h: &Harness, c: &customer::Model, name: &str) {
    let mut am = c.clone().into_active_model();
    am.name = Set(name.into());
    am.update(&h.t.db).await.unwrap();
}

/// A worker claims the customer's group and sends its create, which the remote accepts; then
/// the worker dies before recording the answer. Its lease runs out.
async fn create_then_crash(h: &Harness) {
    let claimed = __worker::claim_prepared(&h.engine, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let attempt =
        __worker::process_prepared(&h.engine, claimed.into_iter().next().unwrap(), false).await;
    assert!(attempt.result.is_ok(), "{:?}", attempt.result);
    drop(attempt);
    h.clock.advance(Duration::from_secs(31));
}

/// Crash after the remote created the record, then a change: the next worker repeats the very
/// same create (same key, same body), learns the record's id, then updates it.
async fn one_record_after_a_crash_and_a_change(mode: Idempotency) {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        h.remote.idempotency(mode);
        let c = fixtures::customer(&h.t.db, "Ada").await;
        create_then_crash(&h).await;
        rename(&h, &c, "Ada Lovelace").await;

        h.engine.run_until_idle(10).await.unwrap();

        let records = h.remote.records("erp/customers");
        assert_eq!(records.len(), 1, "one remote record: {records:?}");
        let creates = h.remote.requests_matching("POST", "/erp/customers");
        assert_eq!(creates.len(), 2, "the create was repeated once");
        assert_eq!(creates[0].idempotency_key, creates[1].idempotency_key);
        assert_eq!(creates[0].body, creates[1].body, "with the same body");
        assert!(
            creates[1].replayed,
            "and the remote answered the first result"
        );
        let updates = h.remote.requests_matching("PUT", "/erp/customers/");
        assert_eq!(updates.len(), 1, "then one update with the new data");
        assert_eq!(records.values().next().unwrap()["name"], "Ada Lovelace");
        let g = h.group("erp.customer", c.id).await;
        assert_eq!((g.state.as_str(), g.synced_version), ("synced", g.version));
        assert_eq!((g.create_key, g.create_payload), (None, None));
    })
    .await;
}

#[tokio::test]
async fn a_crash_between_the_remote_s_answer_and_the_record_leaves_one_record() {
    one_record_after_a_crash_and_a_change(Idempotency::Replay).await;
}

#[tokio::test]
async fn a_remote_refusing_a_reused_key_with_another_body_gets_the_same_body() {
    one_record_after_a_crash_and_a_change(Idempotency::Strict).await;
}

#[tokio::test]
async fn a_remote_ignoring_idempotency_keys_is_protected_by_a_lookup_field() {
    on_each_backend(|t| async move {
        // Without a lookup field, such a remote ends up with a second record: the risk the
        // lookup removes.
        let h = harness(t, |_| {}).await;
        h.remote.idempotency(Idempotency::Ignore);
        fixtures::customer(&h.t.db, "Ada").await;
        create_then_crash(&h).await;
        h.engine.run_until_idle(10).await.unwrap();
        assert_eq!(h.remote.records("erp/customers").len(), 2);
    })
    .await;
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        *h.knobs.lookup_field.lock().unwrap() = Some("external_key".into());
        let h = Harness {
            engine: sync_core::Engine::new(
                h.t.db.clone(),
                sync_tests::syncers::registry(&h.remote.url(), &h.knobs),
                h.engine.config().clone(),
            )
            .unwrap()
            .with_clock(h.clock.clone())
            .with_retry_policy(sync_tests::stepping::backoff()),
            ..h
        };
        h.remote.idempotency(Idempotency::Ignore);
        let c = fixtures::customer(&h.t.db, "Ada").await;
        create_then_crash(&h).await;
        rename(&h, &c, "Ada Lovelace").await;
        h.engine.run_until_idle(10).await.unwrap();

        let records = h.remote.records("erp/customers");
        assert_eq!(records.len(), 1, "{records:?}");
        let (id, record) = records.iter().next().unwrap();
        assert_eq!(record["external_key"], format!("erp.customer:{}", c.id));
        assert_eq!(record["name"], "Ada Lovelace");
        assert_eq!(h.pushes("POST", "/erp/customers"), 1, "no second create");
        assert_eq!(h.pushes("GET", "/erp/customers"), 1, "one lookup");
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(g.state, "synced");
        assert_eq!(g.remote_id.as_ref(), Some(id));
    })
    .await;
}

#[tokio::test]
async fn a_refused_create_is_forgotten_and_the_next_one_carries_the_new_data() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        h.remote.push_fault(
            Fault::new(FaultKind::Status(422, json!({"error": "name is invalid"})))
                .body_contains("\"Bad\""),
        );
        let c = fixtures::customer(&h.t.db, "Bad").await;
        h.engine.run_once().await.unwrap();
        let g = h.group("erp.customer", c.id).await;
        assert_eq!((g.state.as_str(), g.last_status), ("failed", Some(422)));
        assert_eq!(
            g.create_key, None,
            "nothing was created: the create is forgotten"
        );

        rename(&h, &c, "Good").await;
        h.clock.advance(Duration::from_secs(2));
        h.engine.run_until_idle(10).await.unwrap();
        let creates = h.remote.requests_matching("POST", "/erp/customers");
        assert_eq!(creates.len(), 2);
        assert_ne!(creates[0].idempotency_key, creates[1].idempotency_key);
        assert_eq!(creates[1].body.as_ref().unwrap()["name"], "Good");
        assert_eq!(h.remote.records("erp/customers").len(), 1);
        assert_eq!(h.group("erp.customer", c.id).await.state, "synced");
    })
    .await;
}

#[tokio::test]
async fn a_root_deleted_after_a_crashed_create_deletes_the_record_it_made() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        create_then_crash(&h).await;
        c.clone().into_active_model().delete(&h.t.db).await.unwrap();

        h.engine.run_until_idle(10).await.unwrap();
        assert!(h.remote.records("erp/customers").is_empty());
        assert_eq!(h.pushes("POST", "/erp/customers"), 2);
        assert_eq!(h.pushes("DELETE", "/erp/customers/"), 1);
        assert_eq!(h.group("erp.customer", c.id).await.state, "deleted");
        let plan = ops::plan(&h.t.db, h.engine.registry(), None, true, false, 100)
            .await
            .unwrap();
        assert!(
            plan.is_empty(),
            "a closed group has nothing to plan: {plan:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn references_carry_remote_ids_with_the_type_the_remote_gave_them() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        fixtures::order(&h.t.db, c.id, "A-1").await;
        h.engine.run_until_idle(10).await.unwrap();
        let customer_id = h.remote.records("erp/customers").values().next().unwrap()["id"].clone();
        assert!(customer_id.is_number());
        let order = h.remote.records("erp/sales_orders");
        assert_eq!(order.values().next().unwrap()["customer"], customer_id);

        // A remote with string ids gets strings.
        h.remote.string_ids(true);
        let bob = fixtures::customer(&h.t.db, "Bob").await;
        h.engine.run_until_idle(10).await.unwrap();
        fixtures::order(&h.t.db, bob.id, "B-1").await;
        h.engine.run_until_idle(10).await.unwrap();
        let bob_id = h.group("erp.customer", bob.id).await.remote_id().unwrap();
        assert!(!bob_id.is_number());
        let orders = h.remote.records("erp/sales_orders");
        assert!(
            orders
                .values()
                .any(|o| o["customer"] == json!(bob_id.as_str())),
            "{orders:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_record_the_remote_lost_is_created_again_when_the_syncer_says_so() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        *h.knobs.erp_customer_when_missing.lock().unwrap() = WhenMissing::Recreate;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        let old_id = h.group("erp.customer", c.id).await.remote_id.unwrap();
        assert!(h.remote.remove_record("erp/customers", &old_id));

        rename(&h, &c, "Ada Lovelace").await;
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.recreating, 1);
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.remote_id, g.state.as_str(), g.last_status),
            (None, "pending", Some(404))
        );

        h.engine.run_until_idle(10).await.unwrap();
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(g.state, "synced");
        let new_id = g.remote_id.unwrap();
        assert_ne!(new_id, old_id);
        assert_eq!(
            h.remote.record("erp/customers", &new_id).unwrap()["name"],
            "Ada Lovelace"
        );
        assert_eq!(h.remote.records("erp/customers").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_record_the_remote_lost_fails_visibly_until_an_operator_forgets_its_id() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.max_attempts = 2).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        let old_id = h.group("erp.customer", c.id).await.remote_id.unwrap();
        h.remote.remove_record("erp/customers", &old_id);
        rename(&h, &c, "Ada Lovelace").await;
        for _ in 0..2 {
            h.engine.run_once().await.unwrap();
            h.clock.advance(Duration::from_secs(5));
        }
        let g = h.group("erp.customer", c.id).await;
        assert_eq!((g.state.as_str(), g.last_status), ("dead", Some(404)));
        let error = g.last_error.unwrap();
        assert!(
            error.contains("404") && error.contains(&format!("forget --group {}", g.id)),
            "{error}"
        );

        // Nothing else matches; the lost one is forgotten and created again.
        assert_eq!(
            ops::forget(
                &h.t.db,
                &ForgetScope::Missing {
                    syncer: Some("crm.contact".into())
                },
                h.clock.now_ms()
            )
            .await
            .unwrap(),
            0
        );
        let forgotten = ops::forget(
            &h.t.db,
            &ForgetScope::Missing { syncer: None },
            h.clock.now_ms(),
        )
        .await
        .unwrap();
        assert_eq!(forgotten, 1);
        h.engine.run_until_idle(10).await.unwrap();
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(g.state, "synced");
        let records = h.remote.records("erp/customers");
        assert_eq!(records.len(), 1);
        assert_eq!(records.values().next().unwrap()["name"], "Ada Lovelace");
    })
    .await;
}

/// A sales order's payload carries its customer's ERP id (`remote_id_of`). A customer archived
/// and restored is created again on the ERP under a new id: the order is touched and pushed
/// again with it (reference tracking), and the ERP ends in step with the local data.
#[tokio::test]
async fn an_order_follows_its_customer_s_new_remote_id() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_until_idle(10).await.unwrap();
        fixtures::order(&h.t.db, c.id, "A-1").await;
        h.engine.run_until_idle(10).await.unwrap();
        for archived in [Some(5), None] {
            let mut am = <customer::Entity as sea_orm::EntityTrait>::find_by_id(c.id)
                .one(&h.t.db)
                .await
                .unwrap()
                .unwrap()
                .into_active_model();
            am.deleted_at = Set(archived);
            am.update(&h.t.db).await.unwrap();
            h.engine.run_until_idle(10).await.unwrap();
        }
        let problems = sync_tests::cluster::differences(
            &h.t.db,
            &sync_tests::syncers::registry(&h.remote.url(), &h.knobs),
            &h.remote,
        )
        .await;
        assert!(problems.is_empty(), "{problems:#?}");
    })
    .await;
}
