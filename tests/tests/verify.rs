//! Verification against what the remote really holds: a record changed and another deleted on
//! the remote behind the framework's back, one the remote cannot serve, and one never pushed.

use std::sync::Arc;

use serde_json::json;
use sync_core::verify::{Drift, FieldDiff, VerifyOptions};
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

#[tokio::test]
async fn verify_reports_each_kind_of_drift_and_writes_nothing() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let engine = Engine::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            EngineConfig::default(),
        )
        .unwrap();
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
        let engine = Engine::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            EngineConfig::default(),
        )
        .unwrap();
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
    })
    .await;
}
