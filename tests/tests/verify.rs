//! Verification against what the remote really holds: a record changed and another deleted on
//! the remote behind the framework's back, one the remote cannot serve, and one never pushed.

use std::sync::Arc;

use sea_orm::ConnectionTrait;
use serde_json::json;
use sync_core::verify::{Drift, FieldDiff, GroupDrift, VerifyOptions};
use sync_core::{Engine, EngineConfig};
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{TestDb, fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, MockRemote};

const CUSTOMERS: &str = "erp/customers";

async fn remote_id(t: &TestDb, customer: i32) -> String {
    t.group("erp.customer", customer)
        .await
        .and_then(|g| g.remote_id)
        .expect("pushed")
}

/// An engine with the test syncers, pushing to `remote`.
fn engine(t: &TestDb, remote: &MockRemote) -> Engine {
    Engine::new(
        t.db.clone(),
        registry(&remote.url(), &Arc::new(Knobs::default())),
        EngineConfig::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn verify_reports_each_kind_of_drift_and_writes_nothing() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote);
        let mut ids = Vec::new();
        for name in ["In step", "Changed", "Lost", "Unreadable"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        let only_customers = VerifyOptions::all().syncer("erp.customer");
        let clean = engine.verify(&only_customers).await.unwrap();
        assert_eq!(clean.count("in_step"), 4, "{clean:#?}");
        assert!(clean.is_clean());

        // Behind the framework's back: an edit, a delete, and a record the remote cannot serve.
        let changed = remote_id(&t, ids[1]).await;
        let mut record = remote.record(CUSTOMERS, &changed).unwrap();
        record["name"] = json!("Edited by hand");
        record["notes"] = json!("a field only the remote has");
        remote.put_record(CUSTOMERS, &changed, record);
        let lost = remote_id(&t, ids[2]).await;
        assert!(remote.remove_record(CUSTOMERS, &lost));
        let unreadable = remote_id(&t, ids[3]).await;
        remote.push_fault(
            Fault::new(FaultKind::Status(500, json!({"error": "disk on fire"})))
                .method("GET")
                .path_contains(&format!("/{CUSTOMERS}/{unreadable}")),
        );
        let fresh = fixtures::customer(&t.db, "Not pushed yet").await;
        let groups_before = t.snapshot().await;
        remote.clear_requests();

        let report = engine.verify(&only_customers).await.unwrap();
        let drift = |customer: i32| {
            report
                .groups
                .iter()
                .find(|g| g.root_key == customer.to_string())
                .map(|g| g.drift.clone())
                .unwrap_or_else(|| panic!("customer {customer} not in {report:#?}"))
        };
        assert_eq!(drift(ids[0]), Drift::InStep);
        assert_eq!(
            drift(ids[1]),
            Drift::Different {
                fields: vec![FieldDiff {
                    path: "/name".into(),
                    local: json!("Changed"),
                    remote: Some(json!("Edited by hand")),
                }]
            }
        );
        assert_eq!(drift(ids[2]), Drift::Missing);
        match drift(ids[3]) {
            Drift::Unreadable { error } => assert!(error.contains("500"), "{error}"),
            other => panic!("expected unreadable, got {other:?}"),
        }
        assert_eq!(drift(fresh.id), Drift::NotPushed);
        assert!(!report.is_clean());
        assert_eq!(report.groups.len(), 5);

        // Reads only: one GET per pushed group, nothing written on either side.
        let requests = remote.requests();
        assert_eq!(requests.len(), 4, "{requests:?}");
        assert!(requests.iter().all(|r| r.method == "GET"), "{requests:?}");
        assert_eq!(t.snapshot().await, groups_before);

        // One group; an unknown syncer is refused by name.
        let group = t.group("erp.customer", ids[1]).await.unwrap().id;
        let one = engine
            .verify(&VerifyOptions::all().group(group))
            .await
            .unwrap();
        assert_eq!(one.groups.len(), 1);
        assert_eq!(one.count("different"), 1);
        let error = engine
            .verify(&VerifyOptions::all().syncer("erp.custmer"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("`erp.custmer`"), "{error}");
    })
    .await;
}

/// `verify` in a worker binary: the text report names what drifted, `--json` is the report,
/// and the exit code says whether anything drifted.
// Multi-threaded: the binary runs while this thread waits for it, and the remote must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verify_reports_drift_and_exits_non_zero() {
    const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");
    let cli = |t: &TestDb, remote: &MockRemote, args: &[&str]| {
        let out = std::process::Command::new(WORKER)
            .env("DATABASE_URL", &t.url)
            .env("TEST_REMOTE_URL", remote.url())
            .env("RUST_LOG", "error")
            .args(args)
            .output()
            .expect("run the worker binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote);
        let kept = fixtures::customer(&t.db, "Kept").await.id;
        let lost = fixtures::customer(&t.db, "Lost").await.id;
        engine.run_until_idle(usize::MAX).await.unwrap();

        let (code, out, err) = cli(&t, &remote, &["verify", "--syncer", "erp.customer"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("2 in step"), "{out}");

        let lost_id = remote_id(&t, lost).await;
        assert!(remote.remove_record(CUSTOMERS, &lost_id));
        let (code, out, err) = cli(&t, &remote, &["verify", "--syncer", "erp.customer"]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains(&format!("remote id {lost_id}")), "{out}");
        assert!(out.contains("1 in step, 0 different, 1 missing"), "{out}");
        assert!(err.contains("forget --group"), "{err}");

        let (code, out, _) = cli(
            &t,
            &remote,
            &["verify", "--syncer", "erp.customer", "--json"],
        );
        assert_eq!(code, 1);
        let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let kinds: Vec<(String, String)> = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["root_key"].as_str().unwrap().to_owned(),
                    g["drift"]["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (kept.to_string(), "in_step".to_owned()),
                (lost.to_string(), "missing".to_owned())
            ]
        );

        // `--repair` queues the fix and succeeds; once a worker pushed it, all is in step.
        let (code, out, err) = cli(
            &t,
            &remote,
            &["verify", "--syncer", "erp.customer", "--repair"],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("0 to push again, 1 to create again"), "{out}");
        engine.run_until_idle(usize::MAX).await.unwrap();
        let (code, out, err) = cli(&t, &remote, &["verify", "--syncer", "erp.customer"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("2 in step"), "{out}");
    })
    .await;
}

/// `repair` goes through the queue: the worker pushes the differing record again and creates the
/// lost one again (a new remote id, the old one kept in the attempt log); verification is then
/// clean, and the record in step was not pushed.
#[tokio::test]
async fn repair_puts_the_remote_back_in_step_through_the_queue() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use sync_core::entity::sync_attempt;

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote);
        let mut ids = Vec::new();
        for name in ["Untouched", "Edited", "Lost"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        let edited = remote_id(&t, ids[1]).await;
        let mut record = remote.record(CUSTOMERS, &edited).unwrap();
        record["email"] = json!("someone@else.example");
        remote.put_record(CUSTOMERS, &edited, record);
        let lost = remote_id(&t, ids[2]).await;
        assert!(remote.remove_record(CUSTOMERS, &lost));

        let only_customers = VerifyOptions::all().syncer("erp.customer");
        let report = engine.verify(&only_customers).await.unwrap();
        let repaired = sync_core::ops::repair(&t.db, &report, sync_core::now_ms())
            .await
            .unwrap();
        assert_eq!((repaired.pushed_again, repaired.created_again), (1, 1));
        remote.clear_requests();
        engine.run_until_idle(usize::MAX).await.unwrap();

        let pushes: Vec<(String, String)> = remote
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&format!("/{CUSTOMERS}")))
            .map(|r| (r.method, r.path))
            .collect();
        assert_eq!(pushes.len(), 2, "one update and one create: {pushes:?}");
        assert!(
            pushes
                .iter()
                .any(|(m, p)| m != "POST" && p.ends_with(&format!("/{edited}")))
        );
        assert!(pushes.iter().any(|(m, _)| m == "POST"));
        assert_eq!(
            remote.record(CUSTOMERS, &edited).unwrap()["email"],
            json!("edited@example.com")
        );
        let recreated = remote_id(&t, ids[2]).await;
        assert_ne!(recreated, lost, "created again under a new id");
        assert!(remote.record(CUSTOMERS, &recreated).is_some());
        let group = t.group("erp.customer", ids[2]).await.unwrap().id;
        let history = sync_attempt::Entity::find()
            .filter(sync_attempt::Column::GroupId.eq(group))
            .filter(sync_attempt::Column::Outcome.eq("repair"))
            .all(&t.db)
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
        let note = history[0].error.clone().unwrap_or_default();
        assert!(note.contains(&format!("`{lost}`")), "{note}");

        let after = engine.verify(&only_customers).await.unwrap();
        assert_eq!(after.count("in_step"), 3, "{after:#?}");
    })
    .await;
}

/// A one-time sync: created once; later edits push nothing (recorded as skipped, shown by
/// `plan` and `status`); the root's deletion still deletes, as the syncer's `delete` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_only_syncer_creates_once_and_never_updates() {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let knobs = Arc::new(Knobs::default());
        knobs
            .erp_customer_create_only
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let registry = registry(&remote.url(), &knobs);
        let engine = Engine::new(t.db.clone(), registry.clone(), EngineConfig::default()).unwrap();
        let c = fixtures::customer(&t.db, "Invoice").await;
        engine.run_until_idle(usize::MAX).await.unwrap();
        let customers = |method: &str| {
            remote
                .requests()
                .into_iter()
                .filter(|r| r.method == method && r.path.starts_with(&format!("/{CUSTOMERS}")))
                .count()
        };
        assert_eq!(customers("POST"), 1);
        let id = remote_id(&t, c.id).await;

        let mut am = c.clone().into_active_model();
        am.name = Set("Invoice, edited".into());
        let c = am.update(&t.db).await.unwrap();
        let plan = sync_core::ops::plan(&t.db, &registry, Some("erp.customer"), false, false, 10)
            .await
            .unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].action, "skip");
        assert!(
            plan[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("create-only")
        );
        engine.run_until_idle(usize::MAX).await.unwrap();
        assert_eq!(customers("PUT") + customers("PATCH"), 0, "never updated");
        assert_eq!(
            remote.record(CUSTOMERS, &id).unwrap()["name"],
            json!("Invoice")
        );
        let group = t.group("erp.customer", c.id).await.unwrap();
        assert_eq!(
            (group.state.as_str(), group.synced_version),
            ("synced", group.version)
        );

        // `status` names it a one-time sync.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sync-test-worker"))
            .env("DATABASE_URL", &t.url)
            .env("TEST_REMOTE_URL", remote.url())
            .env("TEST_ERP_CUSTOMER_CREATE_ONLY", "1")
            .env("RUST_LOG", "error")
            .arg("status")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("erp.customer"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.ends_with("create-only"), "{text}");

        // Archiving the root deletes the remote record, as `delete` does by default.
        let mut am = c.into_active_model();
        am.deleted_at = Set(Some(1));
        am.update(&t.db).await.unwrap();
        engine.run_until_idle(usize::MAX).await.unwrap();
        assert_eq!(customers("DELETE"), 1);
        assert!(remote.record(CUSTOMERS, &id).is_none());
    })
    .await;
}

/// A worker verifying on a schedule (in slices) reports drift once when it appears and once when
/// it is gone, and repairs nothing by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_verifying_on_a_schedule_alerts_once_per_change_of_drift() {
    use std::sync::Mutex;
    use std::time::Duration;
    use sync_worker::{Alert, AlertSink, VerifySchedule, Worker, WorkerSettings};

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
        let sink = alerts.clone();
        let mut settings = WorkerSettings::default();
        settings.poll_interval = Duration::from_millis(50);
        settings.verify = Some(VerifySchedule::every(Duration::from_millis(100)).slices(2));
        settings.report.alerts = AlertSink::default().callback(move |a| {
            if matches!(a.state, "drift" | "in_step") {
                sink.lock().unwrap().push(a.clone());
            }
        });
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            settings,
        )
        .unwrap();
        let mut ids = Vec::new();
        for name in ["One", "Two", "Three"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));
        let until = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(std::time::Instant::now() < deadline, "{what} within 10 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let r = remote.clone();
        until(
            "three records pushed",
            Box::new(move || r.records(CUSTOMERS).len() == 3),
        )
        .await;
        // A few runs, both slices: all in step, nothing to say.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            alerts.lock().unwrap().is_empty(),
            "{:?}",
            alerts.lock().unwrap()
        );

        let lost = remote_id(&t, ids[1]).await;
        let record = remote.record(CUSTOMERS, &lost).unwrap();
        assert!(remote.remove_record(CUSTOMERS, &lost));
        let a = alerts.clone();
        until(
            "a drift alert",
            Box::new(move || !a.lock().unwrap().is_empty()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            remote.record(CUSTOMERS, &lost).is_none(),
            "nothing repaired by itself"
        );
        remote.put_record(CUSTOMERS, &lost, record);
        let a = alerts.clone();
        until(
            "an in-step alert",
            Box::new(move || a.lock().unwrap().len() >= 2),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;

        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
        let seen: Vec<(String, &str, u32)> = alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.syncer.clone(), a.state, a.failed))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("erp.customer".to_owned(), "drift", 1),
                ("erp.customer".to_owned(), "in_step", 0)
            ]
        );
    })
    .await;
}

/// An engine whose remotes list their collections json-server style, `page` records a page.
fn listing_engine(t: &TestDb, remote: &MockRemote, page: u32) -> Engine {
    Engine::new(
        t.db.clone(),
        listing_registry(remote, page),
        EngineConfig::default(),
    )
    .unwrap()
}

fn listing_registry(remote: &MockRemote, page: u32) -> sync_core::Registry {
    let knobs = Knobs::default();
    *knobs.list_page_size.lock().unwrap() = Some(page);
    registry(&remote.url(), &Arc::new(knobs))
}

/// A customer made on the remote by hand, which no group points at.
fn hand_made(remote: &MockRemote, id: u64, name: &str) {
    remote.put_record(
        CUSTOMERS,
        &id.to_string(),
        json!({"id": id, "name": name, "email": "hand@example.com", "addresses": []}),
    );
}

/// The orphans of a report: (remote id, the record's name).
fn orphans_of(report: &sync_core::verify::VerifyReport) -> Vec<(String, serde_json::Value)> {
    report
        .orphans()
        .map(|g| match &g.drift {
            Drift::Orphan { record } => (g.remote_id.clone().unwrap(), record["name"].clone()),
            other => panic!("not an orphan: {other:?}"),
        })
        .collect()
}

/// Listing GETs (`GET /erp/customers?…`): the recorded path has no query.
fn listing_requests(remote: &MockRemote) -> usize {
    remote
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/{CUSTOMERS}"))
        .count()
}

/// Orphans are the records a paged listing holds that no group points at. They are looked for
/// only when whole syncers are verified, and reported only when the listing reached its end: a
/// listing that fails part way is one unreadable entry, and no orphan is reported.
#[tokio::test]
async fn orphans_are_found_from_a_paged_listing_only_when_it_completes() {
    use std::sync::Mutex;
    use sync_core::verify::VerifyProgress;

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = listing_engine(&t, &remote, 2);
        let mut ids = Vec::new();
        for name in ["One", "Two", "Three"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        hand_made(&remote, 901, "Made by hand");
        hand_made(&remote, 902, "Also by hand");
        remote.clear_requests();

        let only_customers = VerifyOptions::all().syncer("erp.customer");
        let seen: Mutex<Vec<VerifyProgress>> = Mutex::default();
        let report = engine
            .verify_with_progress(&only_customers, |p| seen.lock().unwrap().push(p))
            .await
            .unwrap();
        assert_eq!(report.count("in_step"), 3, "{report:#?}");
        assert_eq!(
            orphans_of(&report),
            vec![
                ("901".to_owned(), json!("Made by hand")),
                ("902".to_owned(), json!("Also by hand"))
            ]
        );
        assert!(
            report
                .orphans()
                .all(|g| !g.has_group() && g.syncer == "erp.customer")
        );
        assert!(!report.is_clean(), "an orphan is drift");
        let listing = &report.listings[0];
        assert_eq!(
            report.listings.len(),
            1,
            "only the syncer verified is listed"
        );
        assert_eq!(
            (listing.pages, listing.records, listing.complete),
            (3, 5, true),
            "five records, two a page"
        );
        // One GET per pushed group and one per page, nothing else.
        assert_eq!(listing_requests(&remote), 3);
        assert_eq!(remote.requests().len(), 3 + 3);
        assert!(remote.requests().iter().all(|r| r.method == "GET"));
        let last = *seen.lock().unwrap().last().unwrap();
        assert_eq!((last.checked, last.total, last.listed), (3, 3, 5));

        // A verification of part of the groups lists nothing.
        let group = t.group("erp.customer", ids[0]).await.unwrap().id;
        for part in [
            VerifyOptions::all().group(group),
            VerifyOptions::all().syncer("erp.customer").limit(2),
            VerifyOptions::all().syncer("erp.customer").slice(2, 0),
            VerifyOptions::all().syncer("erp.customer").groups_only(),
        ] {
            remote.clear_requests();
            let partial = engine.verify(&part).await.unwrap();
            assert_eq!(partial.count("orphan"), 0, "{part:?}");
            assert!(partial.listings.is_empty(), "{part:?}");
            assert_eq!(listing_requests(&remote), 0, "{part:?}");
        }

        // The second page fails: the groups are verified, the orphans are not reported.
        remote.push_fault(
            Fault::new(FaultKind::Status(
                500,
                json!({"error": "page two is on fire"}),
            ))
            .method("GET")
            .path_contains("_page=2")
            .times(1),
        );
        let report = engine.verify(&only_customers).await.unwrap();
        assert_eq!(report.count("in_step"), 3);
        assert_eq!(report.count("orphan"), 0, "{report:#?}");
        let failed: Vec<&GroupDrift> = report.groups.iter().filter(|g| !g.has_group()).collect();
        assert_eq!(failed.len(), 1, "{report:#?}");
        match &failed[0].drift {
            Drift::Unreadable { error } => {
                assert!(error.contains("page 2") && error.contains("500"), "{error}");
            }
            other => panic!("expected the listing unreadable, got {other:?}"),
        }
        assert_eq!(
            (report.listings[0].pages, report.listings[0].complete),
            (1, false)
        );
        assert!(!report.is_clean());

        // Once the remote serves every page again, they are back.
        let report = engine.verify(&only_customers).await.unwrap();
        assert_eq!(report.count("orphan"), 2);
    })
    .await;
}

/// `ops::repair` (plain `--repair`) never deletes an orphan, not even through the queue;
/// `Engine::delete_orphans` deletes exactly the orphans, keeps them all while a create of the
/// syncer is in flight, and logs each deletion with the record it held.
#[tokio::test]
async fn delete_orphans_deletes_only_the_orphans_and_plain_repair_deletes_none() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = listing_engine(&t, &remote, 2);
        let mut ids = Vec::new();
        for name in ["Kept", "Edited", "Lost"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        let edited = remote_id(&t, ids[1]).await;
        let mut record = remote.record(CUSTOMERS, &edited).unwrap();
        record["email"] = json!("someone@else.example");
        remote.put_record(CUSTOMERS, &edited, record);
        assert!(remote.remove_record(CUSTOMERS, &remote_id(&t, ids[2]).await));
        hand_made(&remote, 901, "Made by hand");
        hand_made(&remote, 902, "Also by hand");

        let only_customers = VerifyOptions::all().syncer("erp.customer");
        let report = engine.verify(&only_customers).await.unwrap();
        assert_eq!(
            (
                report.count("different"),
                report.count("missing"),
                report.count("orphan")
            ),
            (1, 1, 2)
        );
        remote.clear_requests();
        let repaired = sync_core::ops::repair(&t.db, &report, sync_core::now_ms())
            .await
            .unwrap();
        assert_eq!((repaired.pushed_again, repaired.created_again), (1, 1));
        engine.run_until_idle(usize::MAX).await.unwrap();
        assert!(remote.requests_matching("DELETE", "").is_empty());
        assert!(remote.record(CUSTOMERS, "901").is_some());
        assert!(remote.record(CUSTOMERS, "902").is_some());

        // A create in flight (recorded, its answer not yet): a listed record may be it.
        let fresh = fixtures::customer(&t.db, "In flight").await;
        let fresh_group = t.group("erp.customer", fresh.id).await.unwrap().id;
        let set_create_key = |key: &str| {
            format!(
                "UPDATE sync_groups SET create_key = {key}, create_payload = {key} WHERE id = {fresh_group}"
            )
        };
        t.db.execute_unprepared(&set_create_key("'{}'"))
            .await
            .unwrap();
        let held_back = engine.delete_orphans(&report).await.unwrap();
        assert_eq!((held_back.deleted, held_back.kept), (0, 2));
        assert!(remote.requests_matching("DELETE", "").is_empty());
        t.db.execute_unprepared(&set_create_key("NULL"))
            .await
            .unwrap();

        let deleted = engine.delete_orphans(&report).await.unwrap();
        assert_eq!(
            (deleted.deleted, deleted.kept, deleted.failed.len()),
            (2, 0, 0),
            "{deleted:?}"
        );
        let deletes: Vec<String> = remote
            .requests_matching("DELETE", "")
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            deletes,
            [
                format!("/{CUSTOMERS}/901"),
                format!("/{CUSTOMERS}/902")
            ]
        );
        assert!(remote.record(CUSTOMERS, "901").is_none());
        let log = sync_core::ops::attempts(&t.db, 0, 10).await.unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log.iter().all(|a| a.operation == "delete"
            && a.outcome == "repair"
            && a.syncer == "erp.customer"));
        assert!(
            log.iter()
                .any(|a| a.error.as_deref().unwrap_or("").contains("Made by hand")),
            "the log keeps what was deleted: {log:?}"
        );

        engine.run_until_idle(usize::MAX).await.unwrap();
        let after = engine.verify(&only_customers).await.unwrap();
        assert!(after.is_clean(), "{after:#?}");
        assert_eq!(after.count("in_step"), 4);
        assert_eq!(remote.records(CUSTOMERS).len(), 4);
    })
    .await;
}

/// The CLI: `verify` reports orphans and exits 1; `--repair` alone leaves them (and still exits
/// 1, naming `--delete-orphans`); `--repair --delete-orphans` deletes them; `--delete-orphans`
/// without `--repair` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deletes_orphans_only_when_asked() {
    const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");
    let cli = |t: &TestDb, remote: &MockRemote, args: &[&str]| {
        let out = std::process::Command::new(WORKER)
            .env("DATABASE_URL", &t.url)
            .env("TEST_REMOTE_URL", remote.url())
            .env("TEST_LIST_PAGE_SIZE", "2")
            .env("RUST_LOG", "error")
            .args(["verify", "--syncer", "erp.customer"])
            .args(args)
            .output()
            .expect("run the worker binary");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = listing_engine(&t, &remote, 2);
        for name in ["Ada", "Grace", "Edsger"] {
            fixtures::customer(&t.db, name).await;
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        hand_made(&remote, 901, "Made by hand");

        let (code, out, err) = cli(&t, &remote, &[]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains("orphan") && out.contains("remote id 901"),
            "{out}"
        );
        assert!(
            out.contains("3 in step") && out.contains("1 orphan(s)"),
            "{out}"
        );
        assert!(
            out.contains("listed erp.customer: 4 record(s) in 3 page(s)"),
            "{out}"
        );

        let (code, out, _) = cli(&t, &remote, &["--json"]);
        assert_eq!(code, 1);
        let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(report["listings"][0]["complete"], json!(true));
        let orphan = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["drift"]["kind"] == "orphan")
            .expect("an orphan");
        assert_eq!(
            (orphan["remote_id"].clone(), orphan["group_id"].clone()),
            (json!("901"), json!(0))
        );
        assert_eq!(orphan["drift"]["record"]["name"], json!("Made by hand"));

        let (code, out, err) = cli(&t, &remote, &["--repair"]);
        assert_eq!(code, 1, "orphans are left: {out}{err}");
        assert!(err.contains("--delete-orphans"), "{err}");
        assert!(remote.record(CUSTOMERS, "901").is_some());
        assert!(remote.requests_matching("DELETE", "").is_empty());

        let (code, out, err) = cli(&t, &remote, &["--delete-orphans"]);
        assert_eq!(code, 2, "needs --repair: {out}{err}");
        assert!(remote.record(CUSTOMERS, "901").is_some());

        let (code, out, err) = cli(&t, &remote, &["--repair", "--delete-orphans"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("orphans: 1 deleted, 0 kept, 0 failed"),
            "{out}"
        );
        assert!(remote.record(CUSTOMERS, "901").is_none());
        assert_eq!(
            remote
                .requests_matching("DELETE", "")
                .into_iter()
                .map(|r| r.path)
                .collect::<Vec<_>>(),
            [format!("/{CUSTOMERS}/901")]
        );
        let (code, out, err) = cli(&t, &remote, &[]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("0 orphan(s)"), "{out}");
    })
    .await;
}

/// Calls the dashboard as a signed-in operator; a `form` body is sent as a form.
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    form: Option<&str>,
) -> (axum::http::StatusCode, String) {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, "Bearer s3cret");
    let request = match form {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned())),
        None => request.body(Body::empty()),
    };
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The dashboard's Verify page: without the syncers it says verification is not configured;
/// with them it runs a verification, shows the report (counts, the differing fields, the
/// missing record, the orphan), repairs through the API (differing and missing, no delete),
/// deletes the orphan only when confirmed, and a second verification is clean.
#[tokio::test]
async fn the_dashboard_verify_page_shows_the_report_and_repairs_through_the_api() {
    use axum::http::StatusCode;
    use sync_worker::dashboard::{Auth, Dashboard};

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let plain = axum::Router::new().nest(
            "/sync",
            Dashboard::new(t.db.clone(), "/sync", Auth::bearer("s3cret")).router(),
        );
        let (status, page) = call(&plain, "GET", "/sync/verify", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("verify-not-configured") && page.contains("with_registry"),
            "{page}"
        );
        let (status, body) = call(&plain, "POST", "/sync/api/verify", None).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");

        let engine = listing_engine(&t, &remote, 2);
        let mut ids = Vec::new();
        for name in ["Kept", "Edited", "Lost"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        let edited = remote_id(&t, ids[1]).await;
        let mut record = remote.record(CUSTOMERS, &edited).unwrap();
        record["name"] = json!("Edited by hand");
        remote.put_record(CUSTOMERS, &edited, record);
        let lost = remote_id(&t, ids[2]).await;
        let lost_group = t.group("erp.customer", ids[2]).await.unwrap().id;
        assert!(remote.remove_record(CUSTOMERS, &lost));
        hand_made(&remote, 901, "Made by hand");

        let app = axum::Router::new().nest(
            "/sync",
            Dashboard::new(t.db.clone(), "/sync", Auth::bearer("s3cret"))
                .with_registry(listing_registry(&remote, 2))
                .router(),
        );
        let (_, page) = call(&app, "GET", "/sync/verify", None).await;
        assert!(page.contains("Nothing verified yet") && page.contains("run-verify"));
        let (status, body) = call(&app, "POST", "/sync/api/verify/repair", None).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "nothing to repair yet: {body}"
        );

        // The form runs it and comes back to the page.
        let (status, _) = call(
            &app,
            "POST",
            "/sync/verify/run",
            Some("syncer=erp.customer"),
        )
        .await;
        assert!(status.is_redirection(), "{status}");
        let (_, page) = call(&app, "GET", "/sync/verify", None).await;
        for expected in [
            "id=\"verify-counts\"",
            "data-kind=\"different\">1<",
            "data-kind=\"missing\">1<",
            "data-kind=\"orphan\">1<",
            "data-kind=\"in_step\">1<",
            "id=\"different\"",
            "<code>/name</code>",
            "Edited by hand",
            "id=\"missing\"",
            &format!("/sync/groups/{lost_group}"),
            "data-remote-id=\"901\"",
            "Made by hand",
            "id=\"repair\"",
            "id=\"delete-orphans\"",
        ] {
            assert!(page.contains(expected), "`{expected}` in {page}");
        }
        assert!(!page.contains("s3cret"), "no secret on the page");

        // The same through the API.
        let (status, body) = call(&app, "POST", "/sync/api/verify?syncer=erp.customer", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            report["counts"],
            json!({"in_step": 1, "different": 1, "missing": 1, "orphan": 1, "unreadable": 0,
                   "not_pushed": 0})
        );
        assert_eq!(report["clean"], json!(false));
        remote.clear_requests();
        let (status, body) = call(&app, "POST", "/sync/api/verify/repair", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let repaired: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            repaired["repaired"],
            json!({"pushed_again": 1, "created_again": 1})
        );
        let (_, page) = call(&app, "GET", "/sync/verify", None).await;
        assert!(page.contains("id=\"repaired\"") && !page.contains("id=\"repair\""));
        engine.run_until_idle(usize::MAX).await.unwrap();
        assert!(
            remote.requests_matching("DELETE", "").is_empty(),
            "repair deletes nothing"
        );
        assert!(remote.record(CUSTOMERS, "901").is_some());

        let (status, _) = call(&app, "POST", "/sync/api/verify/delete-orphans", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "must be confirmed");
        assert!(remote.record(CUSTOMERS, "901").is_some());
        let (status, body) = call(
            &app,
            "POST",
            "/sync/api/verify/delete-orphans?confirm=yes",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let deleted: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(deleted["orphans_deleted"]["deleted"], json!(1));
        assert!(remote.record(CUSTOMERS, "901").is_none());

        let (_, body) = call(&app, "POST", "/sync/api/verify?syncer=erp.customer", None).await;
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["clean"], json!(true), "{body}");
        assert_eq!(report["counts"]["in_step"], json!(3));
        let (status, body) = call(&app, "GET", "/sync/api/verify", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["clean"],
            json!(true)
        );
        let (status, _) = call(&app, "POST", "/sync/api/verify?syncer=erp.custmer", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "an unknown syncer");
    })
    .await;
}

/// A repair goes through the queue, so it survives a worker killed while it pushes it: the
/// next worker finishes the job without a duplicate. The killed worker's update and create had
/// reached the remote; the create is repeated with its idempotency key (the remote answers the
/// first record again), the update is sent again; the remote ends with exactly one record per
/// customer, the lost one recreated once under the new id its group now holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_repair_leaves_the_next_to_finish_it_without_duplicates() {
    use std::time::Duration;
    use sync_tests::cluster::{WorkerProcess, differences, wait_until_synced};

    const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote);
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for name in ["Untouched", "Edited", "Lost"] {
            ids.push(fixtures::customer(&t.db, name).await.id);
        }
        engine.run_until_idle(usize::MAX).await.unwrap();
        let (untouched, edited, lost) = (
            remote_id(&t, ids[0]).await,
            remote_id(&t, ids[1]).await,
            remote_id(&t, ids[2]).await,
        );
        let mut record = remote.record(CUSTOMERS, &edited).unwrap();
        record["email"] = json!("someone@else.example");
        remote.put_record(CUSTOMERS, &edited, record);
        assert!(remote.remove_record(CUSTOMERS, &lost));
        let report = engine
            .verify(&VerifyOptions::all().syncer("erp.customer"))
            .await
            .unwrap();
        let repaired = sync_core::ops::repair(&t.db, &report, sync_core::now_ms())
            .await
            .unwrap();
        assert_eq!((repaired.pushed_again, repaired.created_again), (1, 1));
        remote.clear_requests();

        // The worker's update and create reach the remote, which holds them until it is dead.
        let mut hold = remote.hold(Some(&format!("/{CUSTOMERS}")));
        let lease = [("SYNC_LEASE_SECS", "2"), ("SYNC_PUSH_TIMEOUT_SECS", "30")];
        let doomed =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "doomed", dir.path(), &lease);
        hold.arrived(2).await;
        doomed.kill();
        hold.release();
        // The remote finishes what it received: the dead worker's create made a record whose id
        // the database never learnt.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while remote.records(CUSTOMERS).len() < 3 || remote.requests().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "the held pushes land");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first: Vec<_> = remote.requests_matching("", &format!("/{CUSTOMERS}"));
        assert_eq!(first.len(), 2, "an update and a create: {first:?}");
        let first_create = first
            .iter()
            .find(|r| r.method == "POST")
            .expect("the dead worker's create")
            .clone();
        assert!(
            t.group("erp.customer", ids[2])
                .await
                .unwrap()
                .remote_id
                .is_none()
        );

        let rescuer =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "rescuer", dir.path(), &lease);
        wait_until_synced(&t.db, Duration::from_secs(30)).await;
        rescuer.terminate(Duration::from_secs(10));

        // Exactly the right records: no duplicate, the lost one once, under the id its group holds.
        let records = remote.records(CUSTOMERS);
        assert_eq!(records.len(), 3, "one record per customer: {records:?}");
        let recreated = remote_id(&t, ids[2]).await;
        assert_ne!(recreated, lost, "created again under a new id");
        let mut expected = vec![untouched.clone(), edited.clone(), recreated.clone()];
        expected.sort();
        let mut held: Vec<String> = records.keys().cloned().collect();
        held.sort();
        assert_eq!(held, expected);
        assert_eq!(records[&edited]["email"], json!("edited@example.com"));
        assert_eq!(records[&recreated]["name"], json!("Lost"));
        let creates = remote.requests_matching("POST", &format!("/{CUSTOMERS}"));
        assert_eq!(creates.len(), 2, "the create, then its repeat: {creates:?}");
        assert!(
            creates[1..]
                .iter()
                .all(|r| r.replayed && r.idempotency_key == first_create.idempotency_key),
            "the create was repeated with its key and answered from the first: {creates:?}"
        );
        assert!(
            remote
                .requests()
                .iter()
                .all(|r| !r.path.ends_with(&format!("/{untouched}")) || r.method == "GET"),
            "the record in step was not pushed"
        );
        for id in &ids {
            let g = t.group("erp.customer", *id).await.unwrap();
            assert_eq!(
                (g.state.as_str(), g.synced_version),
                ("synced", g.version),
                "{g:?}"
            );
        }
        let problems = differences(
            &t.db,
            &registry(&remote.url(), &Arc::new(Knobs::default())),
            &remote,
        )
        .await;
        assert!(problems.is_empty(), "{problems:#?}");
        let after = engine
            .verify(&VerifyOptions::all().syncer("erp.customer"))
            .await
            .unwrap();
        assert_eq!(after.count("in_step"), 3, "{after:#?}");
    })
    .await;
}

/// The mock remote answers `GET {collection}` without a query with every record of the
/// collection, as json-server does (a listing whose first page carries no parameter, such as
/// one paged by `Link` headers, starts there), and `GET {collection}/{id}` with the record.
#[tokio::test]
async fn the_mock_lists_a_collection_asked_for_without_a_query() {
    let remote = MockRemote::start().await;
    hand_made(&remote, 901, "Made by hand");
    hand_made(&remote, 902, "Also by hand");
    let url = remote.url();
    let get = |path: String| {
        let url = url.clone();
        async move {
            let answer = reqwest::get(format!("{url}/{path}")).await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, listed) = get(CUSTOMERS.to_owned()).await;
    assert_eq!(status, 200);
    let names: Vec<&serde_json::Value> = listed
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| &r["name"])
        .collect();
    assert_eq!(names, [&json!("Made by hand"), &json!("Also by hand")]);
    let (status, record) = get(format!("{CUSTOMERS}/902")).await;
    assert_eq!((status, &record["name"]), (200, &json!("Also by hand")));
    let (status, _) = get(format!("{CUSTOMERS}/903")).await;
    assert_eq!(status, 404);
}
