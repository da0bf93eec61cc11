//! The worker end to end: a real HTTP remote on loopback, the built-in `HttpRemote`, the engine's
//! claim/push/record cycle, and the apalis runtime's shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder};
use sync_core::__worker;
use sync_core::entity::sync_attempt;
use sync_core::{Clock, RunOptions};
use sync_tests::models::{customer, line_item};
use sync_tests::stepping::harness;
use sync_tests::syncers::registry;
use sync_tests::{fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind};
use sync_worker::{Worker, WorkerSettings};

async fn rename(
    db: &sea_orm::DatabaseConnection,
    c: &customer::Model,
    name: &str,
) -> customer::Model {
    let mut am = c.clone().into_active_model();
    am.name = Set(name.into());
    am.update(db).await.unwrap()
}

#[tokio::test]
async fn a_new_root_is_created_and_its_remote_id_used_for_update_and_delete() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        h.remote.string_ids(true);
        let c = fixtures::customer(&h.t.db, "Ada").await;

        let pass = h.engine.run_once().await.unwrap();
        assert_eq!((pass.claimed, pass.pushed), (1, 1));
        let created = h.remote.requests_matching("POST", "/erp/customers");
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].body.as_ref().unwrap()["name"], "Ada");
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            g.remote_id.as_deref(),
            Some("r-1"),
            "the id the remote gave is stored"
        );
        assert_eq!(
            (g.state.as_str(), g.synced_version, g.version),
            ("synced", 1, 1)
        );
        assert!(g.last_digest.is_some());

        rename(&h.t.db, &c, "Ada Lovelace").await;
        h.engine.run_once().await.unwrap();
        let updates = h.remote.requests_matching("PUT", "/erp/customers/r-1");
        assert_eq!(updates.len(), 1, "the update goes to the stored id");
        assert_eq!(
            h.remote.record("erp/customers", "r-1").unwrap()["name"],
            "Ada Lovelace"
        );

        customer::Entity::delete_by_id(c.id)
            .exec(&h.t.db)
            .await
            .unwrap();
        sync_core::mark_deleted(&h.t.db, "erp.customer", c.id)
            .await
            .unwrap();
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.deleted, 1);
        assert_eq!(h.pushes("DELETE", "/erp/customers/r-1"), 1);
        assert!(h.remote.record("erp/customers", "r-1").is_none());
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.state.as_str(), g.remote_id.as_deref()),
            ("deleted", None)
        );
    })
    .await;
}

#[tokio::test]
async fn many_edits_between_passes_make_one_push() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let mut c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_once().await.unwrap();
        h.remote.clear_requests();
        for i in 0..25 {
            c = rename(&h.t.db, &c, &format!("Ada {i}")).await;
        }
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        let requests = h.remote.requests();
        assert_eq!(requests.len(), 1, "25 edits, one push: {requests:?}");
        assert_eq!(
            requests[0].body.as_ref().unwrap()["name"],
            "Ada 24",
            "the push carries the last value"
        );
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.version, g.synced_version, g.state.as_str()),
            (26, 26, "synced")
        );
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_payload_is_skipped_and_a_full_run_pushes_it_anyway() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_once().await.unwrap();
        h.remote.clear_requests();

        // A touch whose data the remote already holds.
        sync_core::touch(&h.t.db, "erp.customer", c.id)
            .await
            .unwrap();
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!((pass.claimed, pass.skipped, pass.pushed), (1, 1, 0));
        assert!(
            h.remote.requests().is_empty(),
            "nothing is sent for an equal digest"
        );
        let g = h.group("erp.customer", c.id).await;
        assert_eq!((g.state.as_str(), g.synced_version), ("synced", 2));

        sync_core::touch(&h.t.db, "erp.customer", c.id)
            .await
            .unwrap();
        let pass = h.engine.run(RunOptions::once().full()).await.unwrap();
        assert_eq!(pass.pushed, 1, "a full run ignores the digest");
        assert_eq!(h.pushes("PUT", "/erp/customers/"), 1);
    })
    .await;
}

#[tokio::test]
async fn bumping_the_payload_version_forces_a_resend() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.engine.run_once().await.unwrap();
        let before = h.group("erp.customer", c.id).await.last_digest;

        h.knobs.payload_version.store(2, Ordering::SeqCst);
        sync_core::touch(&h.t.db, "erp.customer", c.id)
            .await
            .unwrap();
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        let after = h.group("erp.customer", c.id).await.last_digest;
        assert_ne!(before, after);
        assert_eq!(
            h.remote.requests_matching("PUT", "/erp/customers/").len(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_touch_during_the_push_leaves_the_group_dirty_for_exactly_one_more_push() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        let mut hold = h.remote.hold(Some("/erp/customers"));

        // The push of version 1 is held by the remote…
        let engine = h.engine.clone();
        let pass = tokio::spawn(async move { engine.run_once().await });
        hold.arrived(1).await;
        // …while the application writes version 2.
        rename(&h.t.db, &c, "Ada v2").await;
        hold.release();
        let first = pass.await.unwrap().unwrap();
        assert_eq!(first.pushed, 1);

        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.synced_version, g.version, g.state.as_str()),
            (1, 2, "pending"),
            "completion records the claimed version, not the current one"
        );
        assert_eq!(h.remote.requests()[0].body.as_ref().unwrap()["name"], "Ada");

        let second = h.engine.run_once().await.unwrap();
        assert_eq!(second.pushed, 1);
        let requests = h.remote.requests();
        assert_eq!(requests.len(), 2, "exactly one more push");
        assert_eq!(requests[1].body.as_ref().unwrap()["name"], "Ada v2");
        assert_eq!(
            h.engine.run_once().await.unwrap().claimed,
            0,
            "then it is clean"
        );
    })
    .await;
}

#[tokio::test]
async fn a_permanent_error_fails_then_kills_the_group_while_others_keep_syncing() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.max_attempts = 3).await;
        let bad = fixtures::customer(&h.t.db, "Bad").await;
        h.remote.push_fault(
            Fault::new(FaultKind::Status(
                422,
                serde_json::json!({"error": "email rejected"}),
            ))
            .path_contains("/erp/customers")
            .body_contains("\"Bad\""),
        );
        let mut expected_others = 0;
        for expected in [("failed", 1), ("failed", 2), ("dead", 3)] {
            // Each round another customer is created; it syncs whatever the bad one does.
            let other = fixtures::customer(&h.t.db, &format!("Other {expected_others}")).await;
            expected_others += 1;
            let pass = h.engine.run_once().await.unwrap();
            assert_eq!((pass.claimed, pass.pushed), (2, 1));
            let g = h.group("erp.customer", bad.id).await;
            assert_eq!((g.state.as_str(), g.attempts), expected);
            let error = g.last_error.unwrap();
            assert!(
                error.contains("422") && error.contains("email rejected"),
                "{error}"
            );
            assert_eq!(
                h.group("erp.customer", other.id).await.state,
                "synced",
                "the others keep syncing"
            );

            // While the bad group waits out its backoff, new groups are not held up.
            let quick = fixtures::customer(&h.t.db, &format!("Quick {expected_others}")).await;
            let pass = h.engine.run_once().await.unwrap();
            assert_eq!(
                (pass.claimed, pass.pushed),
                (1, 1),
                "only the new group is due"
            );
            assert_eq!(h.group("erp.customer", quick.id).await.state, "synced");
            h.clock.advance(Duration::from_secs(120));
        }
        let bad_group = h.group("erp.customer", bad.id).await;
        let outcomes: Vec<String> = sync_attempt::Entity::find()
            .all(&h.t.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.group_id == bad_group.id)
            .map(|a| a.outcome)
            .collect();
        assert_eq!(outcomes, ["failed", "failed", "dead"]);
        assert_eq!(h.remote.records("erp/customers").len(), 6);

        // A dead group is never claimed again…
        h.clock.advance(Duration::from_secs(3600));
        assert_eq!(h.engine.run_once().await.unwrap().claimed, 0);
        // …until new data revives it.
        rename(&h.t.db, &bad, "Fixed").await;
        let g = h.group("erp.customer", bad.id).await;
        assert_eq!((g.state.as_str(), g.attempts), ("pending", 0));
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        assert_eq!(h.group("erp.customer", bad.id).await.state, "synced");
    })
    .await;
}

#[tokio::test]
async fn a_server_error_is_retried_with_growing_delays() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.max_attempts = 10).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.remote.push_fault(
            Fault::new(FaultKind::Status(503, serde_json::json!({"error": "down"}))).times(3),
        );
        let mut delays = Vec::new();
        for _ in 0..3 {
            let now = h.clock.now_ms();
            let pass = h.engine.run_once().await.unwrap();
            assert_eq!(pass.failed, 1);
            let g = h.group("erp.customer", c.id).await;
            assert_eq!(g.state, "failed");
            assert!(g.last_error.as_deref().unwrap().contains("503"));
            delays.push(g.next_attempt_at - now);
            // Not due before the delay is over…
            h.clock
                .advance(Duration::from_millis((g.next_attempt_at - now - 1) as u64));
            assert_eq!(h.engine.run_once().await.unwrap().claimed, 0);
            h.clock.advance(Duration::from_millis(1));
        }
        assert_eq!(delays, [1000, 2000, 4000]);
        // …and due after it: the fourth attempt succeeds.
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.state.as_str(), g.attempts, g.last_error),
            ("synced", 0, None)
        );
        assert_eq!(
            h.remote.requests_matching("POST", "/erp/customers").len(),
            4
        );
    })
    .await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        h.remote.push_fault(
            Fault::new(FaultKind::TooManyRequests {
                retry_after_secs: 30,
            })
            .times(1),
        );
        let now = h.clock.now_ms();
        h.engine.run_once().await.unwrap();
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(g.state, "failed");
        assert_eq!(
            g.next_attempt_at - now,
            30_000,
            "Retry-After beats the 1 s backoff"
        );
    })
    .await;
}

#[tokio::test]
async fn a_translation_waits_for_its_prerequisite_without_failing() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.max_deferrals = 2).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        let o = fixtures::order(&h.t.db, c.id, "A-1").await;
        fixtures::line_item(&h.t.db, o.id, "SKU").await;
        // One pass claims both; the customer's remote id is recorded only when the pass ends, so
        // the order cannot be translated in it.
        let first = h.engine.run_once().await.unwrap();
        assert_eq!((first.claimed, first.pushed, first.waiting), (2, 1, 1));
        let order_group = h.group("erp.sales_order", o.id).await;
        assert_eq!(
            (
                order_group.state.as_str(),
                order_group.attempts,
                order_group.deferrals
            ),
            ("pending", 0, 1),
            "waiting is not a failure"
        );
        let reason = order_group.last_error.unwrap();
        assert!(
            reason.contains("not ready")
                && reason.contains(&format!(
                    "`erp.customer` group `{}` has no remote id yet",
                    c.id
                )),
            "{reason}"
        );
        assert!(
            h.remote
                .requests_matching("POST", "/erp/sales_orders")
                .is_empty()
        );

        h.clock.advance(Duration::from_secs(2));
        let second = h.engine.run_once().await.unwrap();
        assert_eq!(second.pushed, 1);
        let orders = h.remote.requests_matching("POST", "/erp/sales_orders");
        assert_eq!(orders.len(), 1);
        let customer_id = h.group("erp.customer", c.id).await.remote_id().unwrap();
        // The ERP answered its id as a number: the order refers to it as a number.
        assert!(customer_id.is_number());
        assert_eq!(
            orders[0].body.as_ref().unwrap()["customer"],
            customer_id.to_json()
        );

        // A prerequisite that never comes: the wait is bounded and then a failure naming it.
        let lonely = fixtures::order(&h.t.db, 999, "ORPHAN").await;
        for _ in 0..3 {
            h.engine.run_once().await.unwrap();
            h.clock.advance(Duration::from_secs(2));
        }
        let g = h.group("erp.sales_order", lonely.id).await;
        assert_eq!((g.state.as_str(), g.attempts), ("failed", 1));
        let error = g.last_error.unwrap();
        assert!(
            error.contains("gave up waiting") && error.contains("`erp.customer` group `999`"),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_or_panicking_translation_fails_only_its_group() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let a = fixtures::customer(&h.t.db, "Ada").await;
        let b = fixtures::customer(&h.t.db, "Bob").await;
        let c = fixtures::customer(&h.t.db, "Cy").await;
        *h.knobs.sabotage.lock().unwrap() =
            Some(("erp.customer".into(), a.id.to_string(), "panic"));
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!((pass.failed, pass.pushed), (1, 2));
        let g = h.group("erp.customer", a.id).await;
        assert!(
            g.last_error
                .as_deref()
                .unwrap()
                .contains("panicked: translate exploded"),
            "{:?}",
            g.last_error
        );
        assert_eq!(h.group("erp.customer", b.id).await.state, "synced");
        assert_eq!(h.group("erp.customer", c.id).await.state, "synced");

        *h.knobs.sabotage.lock().unwrap() =
            Some(("erp.customer".into(), b.id.to_string(), "error"));
        rename(&h.t.db, &b, "Bob 2").await;
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.failed, 1);
        assert!(
            h.group("erp.customer", b.id)
                .await
                .last_error
                .unwrap()
                .contains("bad data")
        );
    })
    .await;
}

#[tokio::test]
async fn a_repeated_push_after_a_crash_carries_the_same_idempotency_key() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        // A worker claims and pushes, then dies before recording anything.
        let claimed = __worker::claim(&h.engine, 10).await.unwrap();
        let attempt = __worker::process(&h.engine, claimed[0].clone(), false).await;
        assert!(attempt.result.is_ok());
        drop(attempt);

        // Its lease expires; another worker takes the group over and pushes again.
        h.clock.advance(Duration::from_secs(31));
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        let creates = h.remote.requests_matching("POST", "/erp/customers");
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0].idempotency_key, creates[1].idempotency_key);
        assert!(creates[1].replayed, "the remote recognised the repeat");
        assert_eq!(
            h.remote.records("erp/customers").len(),
            1,
            "no duplicate record"
        );
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(g.remote_id.as_deref(), Some("1"));
    })
    .await;
}

#[tokio::test]
async fn a_dependent_change_re_pushes_its_root() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        let o = fixtures::order(&h.t.db, c.id, "A-1").await;
        let item = fixtures::line_item(&h.t.db, o.id, "SKU").await;
        h.engine.run_once().await.unwrap();
        h.clock.advance(Duration::from_secs(2));
        h.engine.run_once().await.unwrap();
        assert_eq!(h.remote.records("erp/sales_orders").len(), 1);
        h.remote.clear_requests();

        let mut am = item.into_active_model();
        am.quantity = Set(7);
        am.update(&h.t.db).await.unwrap();
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1);
        let puts = h.remote.requests_matching("PUT", "/erp/sales_orders/");
        assert_eq!(puts.len(), 1);
        assert_eq!(puts[0].body.as_ref().unwrap()["lines"][0]["qty"], 7);
        let _ = line_item::Entity::find().all(&h.t.db).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_the_push_in_flight_and_leaves_no_lease() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        for name in ["Ada", "Bob", "Cy"] {
            fixtures::customer(&h.t.db, name).await;
        }
        let mut settings = WorkerSettings::default();
        let mut config = h.engine.config().clone();
        config.concurrency = 1;
        settings.engine = config;
        settings.poll_interval = Duration::from_millis(50);
        let worker = Worker::new(
            h.t.db.clone(),
            registry(&h.remote.url(), &h.knobs),
            settings,
        )
        .unwrap();

        let mut hold = h.remote.hold(Some("/erp/customers"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run_until(async move {
            let _ = stop_rx.await;
        }));
        hold.arrived(1).await;
        // Shut down while the first push is in flight, then let the remote answer.
        stop_tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        hold.release();
        tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("shutdown completes")
            .unwrap()
            .unwrap();

        let groups = h.t.groups().await;
        let synced = groups.iter().filter(|g| g.state == "synced").count();
        assert_eq!(
            synced, 1,
            "the push in flight was finished and recorded: {groups:?}"
        );
        assert!(
            groups
                .iter()
                .all(|g| g.lease_owner.is_none() && g.lease_until.is_none()),
            "no lease left behind: {groups:?}"
        );
        assert_eq!(
            h.remote.requests().len(),
            1,
            "nothing new was started after the signal"
        );
    })
    .await;
}

/// A pass records its groups in as many statements as their size needs (several on PostgreSQL,
/// where each stays under 1 MiB: there 150 payloads of 8 KB): every group gets its own version, payload and remote id, with
/// pushes, skips and remote deletes mixed in one pass, and payloads that need escaping.
#[tokio::test]
async fn a_large_mixed_pass_records_each_group_its_own_result() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.batch_size = 200).await;
        // Names of 8 KB on PostgreSQL (the pass takes two statements there); MariaDB's column
        // holds 255 characters, and it records in statements of 100 rows whatever their size.
        let pad = if h.t.backend == sync_tests::Backend::Postgres {
            8_000
        } else {
            120
        };
        let name =
            move |i: usize, round: &str| format!("C{i:03} \"{round}\" \\ {}", "x".repeat(pad));
        let mut customers = Vec::new();
        for i in 0..150 {
            customers.push(fixtures::customer(&h.t.db, &name(i, "first")).await);
        }
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!((pass.claimed, pass.pushed), (150, 150));
        let created: Vec<_> = {
            let mut groups = Vec::new();
            for c in &customers {
                groups.push(h.group("erp.customer", c.id).await);
            }
            groups
        };
        for (c, g) in customers.iter().zip(&created) {
            assert_eq!((g.state.as_str(), g.synced_version), ("synced", 1));
            let payload: serde_json::Value =
                serde_json::from_str(g.last_payload.as_deref().unwrap()).unwrap();
            assert_eq!(payload["name"], c.name.as_str(), "group {}", g.id);
            assert!(g.remote_id.is_some());
        }

        // One pass: 60 renamed (pushed), 60 touched unchanged (skipped), 10 deleted, 20 untouched.
        for (i, c) in customers.iter().enumerate() {
            match i {
                0..60 => {
                    rename(&h.t.db, c, &name(i, "second")).await;
                }
                60..120 => {
                    sync_core::touch(&h.t.db, "erp.customer", c.id)
                        .await
                        .unwrap();
                }
                120..130 => {
                    c.clone().into_active_model().delete(&h.t.db).await.unwrap();
                }
                _ => {}
            }
        }
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(
            (pass.claimed, pass.pushed, pass.skipped, pass.deleted),
            (130, 60, 60, 10)
        );
        for (i, (c, before)) in customers.iter().zip(&created).enumerate() {
            let g = h.group("erp.customer", c.id).await;
            let payload = g
                .last_payload
                .as_deref()
                .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap());
            match i {
                0..60 => {
                    assert_eq!((g.state.as_str(), g.synced_version), ("synced", 2));
                    assert_eq!(payload.unwrap()["name"], name(i, "second").as_str());
                    assert_eq!(
                        g.remote_id, before.remote_id,
                        "an update keeps the remote id"
                    );
                    assert_ne!(g.last_digest, before.last_digest);
                }
                60..120 => {
                    assert_eq!((g.state.as_str(), g.synced_version), ("synced", 2));
                    assert_eq!(
                        (&g.last_payload, &g.last_digest, &g.remote_id),
                        (&before.last_payload, &before.last_digest, &before.remote_id),
                        "a skip changes nothing the remote holds"
                    );
                }
                120..130 => {
                    assert_eq!((g.state.as_str(), g.synced_version), ("deleted", 2));
                    assert_eq!((&g.remote_id, &g.last_payload), (&None, &None));
                }
                _ => assert_eq!(&g, before, "an unclaimed group is left alone"),
            }
            assert!(g.lease_owner.is_none() && g.lease_until.is_none());
        }
    })
    .await;
}

#[tokio::test]
async fn run_until_idle_pushes_again_a_group_touched_during_the_last_pass() {
    on_each_backend(|t| async move {
        let h = harness(t, |_| {}).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        let mut hold = h.remote.hold(Some("/erp/customers"));

        // The only group's push is held while the application writes version 2. The next
        // claim then finds nothing (the group is leased until its record), yet the run must
        // not stop before the group is recorded and, being dirty again, pushed once more.
        let engine = h.engine.clone();
        let run = tokio::spawn(async move { engine.run_until_idle(100).await });
        hold.arrived(1).await;
        rename(&h.t.db, &c, "Ada v2").await;
        hold.release();
        let report = run.await.unwrap().unwrap();

        assert_eq!((report.claimed, report.pushed), (2, 2));
        let requests = h.remote.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].body.as_ref().unwrap()["name"], "Ada");
        assert_eq!(requests[1].method, "PUT");
        assert_eq!(requests[1].body.as_ref().unwrap()["name"], "Ada v2");
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.state.as_str(), g.synced_version, g.version),
            ("synced", 2, 2)
        );
        let versions: Vec<i64> = sync_attempt::Entity::find()
            .order_by_asc(sync_attempt::Column::Id)
            .all(&h.t.db)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.version)
            .collect();
        assert_eq!(versions, vec![1, 2], "one attempt logged per push");
    })
    .await;
}

#[tokio::test]
async fn run_until_idle_records_every_pass_of_a_backlog_once() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.batch_size = 2).await;
        let mut customers = Vec::new();
        for i in 0..7 {
            customers.push(fixtures::customer(&h.t.db, &format!("C{i}")).await);
        }
        // A pass of 2 is recorded while the next pass of 2 pushes: four passes.
        let report = h.engine.run_until_idle(100).await.unwrap();
        assert_eq!(
            (report.claimed, report.pushed, report.lease_lost),
            (7, 7, 0)
        );
        assert_eq!(h.pushes("POST", "/erp/customers"), 7);
        for c in &customers {
            let g = h.group("erp.customer", c.id).await;
            assert_eq!((g.state.as_str(), g.synced_version), ("synced", 1));
            assert_eq!(g.lease_owner, None, "no lease left behind");
        }
        assert_eq!(
            sync_attempt::Entity::find()
                .all(&h.t.db)
                .await
                .unwrap()
                .len(),
            7
        );

        // `max_passes` bounds the claims: one pass of 2, recorded before the run returns.
        for c in &customers {
            rename(&h.t.db, c, &format!("{} v2", c.name)).await;
        }
        let report = h.engine.run_until_idle(1).await.unwrap();
        assert_eq!((report.claimed, report.pushed), (2, 2));
        let synced = {
            let mut n = 0;
            for c in &customers {
                let g = h.group("erp.customer", c.id).await;
                assert_eq!(g.lease_owner, None);
                n += usize::from(g.synced_version == 2);
            }
            n
        };
        assert_eq!(synced, 2);
    })
    .await;
}

#[tokio::test]
async fn an_operator_s_retry_during_a_failing_push_is_not_lost() {
    on_each_backend(|t| async move {
        let h = harness(t, |c| c.max_attempts = 2).await;
        let c = fixtures::customer(&h.t.db, "Ada").await;
        // The first push fails at once; the second hangs past the client's 2 s timeout.
        h.remote.push_fault(
            Fault::new(FaultKind::Status(503, serde_json::json!({"error": "busy"})))
                .path_contains("/erp/customers")
                .times(1),
        );
        h.engine.run_once().await.unwrap();
        let g = h.group("erp.customer", c.id).await;
        assert_eq!((g.state.as_str(), g.attempts), ("failed", 1));
        h.remote.push_fault(
            Fault::new(FaultKind::Hang(Duration::from_secs(5)))
                .path_contains("/erp/customers")
                .times(1),
        );
        h.clock.advance(Duration::from_secs(120));
        // The last allowed attempt is under way when an operator retries the group: without the
        // retry, its failure kills the group.
        let retry = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let g = h.group("erp.customer", c.id).await;
            assert!(g.lease_owner.is_some(), "the push is under way: {g:?}");
            let scope = sync_core::ops::RetryScope::Group(g.id);
            sync_core::ops::retry(&h.t.db, &scope, sync_core::now_ms())
                .await
                .unwrap()
        };
        let (pass, retried) = tokio::join!(h.engine.run_once(), retry);
        assert_eq!(retried, 1);
        assert_eq!(pass.unwrap().failed, 1);
        let g = h.group("erp.customer", c.id).await;
        assert_eq!(
            (g.state.as_str(), g.attempts),
            ("failed", 1),
            "the failure counts as the first after the retry, not the last allowed: {g:?}"
        );
        let pass = h.engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 1, "due at once, as the retry made it");
        assert_eq!(h.group("erp.customer", c.id).await.state, "synced");
    })
    .await;
}

/// SQLite's planner, without statistics and with the times bound as parameters, claimed
/// through `ix_sync_groups_due` and sorted what it read in a temporary B-tree. The claim reads
/// `ix_sync_groups_due_order` in claim order instead, with no sort, and still takes the oldest
/// due groups of its syncers first, skipping leased groups and other syncers'. Its limit is
/// written into the statement, which SQLite then compiles once per connection.
#[tokio::test]
async fn a_sqlite_claim_reads_the_due_groups_in_claim_order_without_sorting_the_backlog() {
    use sea_orm::{ConnectionTrait, Statement};
    let t = sync_tests::TestDb::new(sync_tests::Backend::Sqlite).await;
    let now = sync_core::now_ms();
    // 2,000 due groups, due in the reverse order of their ids; every tenth belongs to another
    // syncer, and the oldest due one is leased by another worker.
    let rows: Vec<String> = (1..=2000)
        .map(|i| {
            let syncer = if i % 10 == 0 { "crm.contact" } else { "erp.customer" };
            let due = now - 10_000 - (2000 - i) * 3;
            let lease = if i == 1 { now + 60_000 } else { 0 };
            format!("('{syncer}', '{i}', 1, 0, 'pending', false, 0, 0, {due}, {now}, {now}, {now}, NULLIF({lease}, 0))")
        })
        .collect();
    t.db.execute_unprepared(&format!(
        "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, root_deleted, \
         attempts, deferrals, next_attempt_at, touched_at, created_at, dirty_since, lease_until) \
         VALUES {}",
        rows.join(", ")
    ))
    .await
    .unwrap();
    let syncers = ["erp.customer".to_owned()];
    let request = __worker::ClaimRequest {
        owner: "w1",
        syncers: &syncers,
        limit: 5,
        now,
        lease_until: now + 60_000,
    };
    let (select, values) = __worker::due_select(sea_orm::DbBackend::Sqlite, &request, "id");
    // The limit is in the statement's text. Bound, SQLite would compile the statement again at
    // every claim: it reads a bound `LIMIT ?` while compiling, so each new binding expires the
    // compiled statement.
    assert!(select.ends_with("LIMIT 5"), "{select}");
    assert_eq!(
        values.len(),
        3,
        "the times and the syncer are bound: {values:?}"
    );
    let plan: Vec<String> =
        t.db.query_all_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {select}"),
            values,
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "detail").unwrap())
        .collect();
    assert!(
        plan.iter()
            .any(|step| step.contains("ix_sync_groups_due_order"))
            && !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "the claim walks the due groups in claim order: {plan:?}"
    );
    let claimed = __worker::claim_groups(&t.db, &request).await.unwrap();
    let mut keys: Vec<i64> = claimed
        .iter()
        .map(|g| g.root_key.as_str().parse().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [2, 3, 4, 5, 6],
        "the oldest due groups of its syncer, the leased one skipped"
    );
}
