//! The operators' surface: the CLI subcommands of a worker binary, sync runs and health alerts,
//! pruning, metrics, and the dashboard's JSON API and pages.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel};
use serde_json::Value;
use sync_core::entity::{sync_attempt, sync_run};
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{Backend, TestDb, fixtures, on_each_backend};
use sync_worker::dashboard::{Auth, Dashboard};
use sync_worker::testing::{Fault, FaultKind, MockRemote};
use sync_worker::{AlertSink, Worker, WorkerSettings};
use tower::ServiceExt;

const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");

/// Runs the worker binary's subcommand; returns (exit code, stdout, stderr).
fn cli(t: &TestDb, remote: &MockRemote, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(WORKER)
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
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_what_is_stuck_and_steers_it() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let good = fixtures::customer(&t.db, "Good").await;
        let bad = fixtures::customer(&t.db, "Bad").await;
        remote.push_fault(
            Fault::new(FaultKind::Status(
                422,
                serde_json::json!({"error": "email is invalid"}),
            ))
            .body_contains("\"Bad\""),
        );

        // `plan`: a dry run, nothing pushed.
        let (code, out, _) = cli(&t, &remote, &["plan", "--json"]);
        assert_eq!(code, 0);
        let plan = json(&out);
        assert_eq!(plan.as_array().unwrap().len(), 2);
        assert!(
            plan.as_array()
                .unwrap()
                .iter()
                .all(|p| p["action"] == "create" && p["payload"]["name"].is_string())
        );
        assert!(remote.requests().is_empty(), "plan pushes nothing");
        let (_, human, _) = cli(&t, &remote, &["plan", "--payloads"]);
        assert!(
            human.contains("create")
                && human.contains("\"name\":\"Good\"")
                && human.contains("2 create"),
            "{human}"
        );

        // A pass: one synced, one failed; with max attempts 1 it is dead at once.
        let (code, _, err) = cli(&t, &remote, &["--max-attempts", "1", "run", "--once"]);
        assert_eq!(code, 0, "{err}");

        // `status`
        let (_, out, _) = cli(&t, &remote, &["status", "--json"]);
        let status = json(&out);
        let erp = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["syncer"] == "erp.customer")
            .unwrap()
            .clone();
        assert_eq!(
            (
                erp["groups"]["synced"].as_i64(),
                erp["groups"]["dead"].as_i64()
            ),
            (Some(1), Some(1))
        );
        // Dirty means work the workers will do: a dead group is counted as dead, not dirty.
        assert_eq!(erp["dirty"], 0);
        assert_eq!(erp["failures_last_hour"], 1);
        assert!(erp["last_success_at"].is_i64());
        assert!(erp["oldest_dirty_ms"].is_null());
        assert_eq!(erp["healthy"], false, "the run had a failure");
        let (_, human, _) = cli(&t, &remote, &["status"]);
        assert!(
            human.contains("erp.customer") && human.contains("FAILING"),
            "{human}"
        );

        // `failed`: the dead group, its error, its attempts.
        let (_, out, _) = cli(&t, &remote, &["failed", "--json"]);
        let failed = json(&out);
        assert_eq!(failed.as_array().unwrap().len(), 1);
        assert_eq!(failed[0]["root_key"], bad.id.to_string());
        assert_eq!(failed[0]["state"], "dead");
        assert!(
            failed[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("email is invalid")
        );
        let (_, human, _) = cli(&t, &remote, &["failed"]);
        assert!(human.contains("dead") && human.contains("422"), "{human}");

        // Fix the remote, `retry` the dead ones, run: recovered.
        remote.clear_faults();
        let (_, out, _) = cli(&t, &remote, &["retry", "--dead", "--json"]);
        assert_eq!(json(&out)["retried"], 1);
        let (code, _, _) = cli(&t, &remote, &["run", "--once"]);
        assert_eq!(code, 0);
        assert_eq!(
            t.group("erp.customer", bad.id).await.unwrap().state,
            "synced"
        );
        let (_, out, _) = cli(&t, &remote, &["retry"]);
        assert!(out.is_empty());
        let (code, _, err) = cli(&t, &remote, &["retry"]);
        assert_eq!(code, 2);
        assert!(err.contains("--group ID, --syncer NAME or --dead"), "{err}");

        // `resync`: a full run pushes everything again although nothing changed.
        remote.clear_requests();
        let (code, out, err) = cli(&t, &remote, &["resync", "erp.customer", "--json"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["groups"], 2);
        assert_eq!(
            remote.requests_matching("PUT", "/erp/customers/").len(),
            2,
            "pushed ignoring digests"
        );
        let (code, _, err) = cli(&t, &remote, &["resync", "erp.nothing"]);
        assert_eq!(code, 2);
        assert!(err.contains("no syncer `erp.nothing`"), "{err}");

        // `backfill`: customers without a `crm.contact` group get one, in batches; rerunning adds none.
        for i in 0..5 {
            fixtures::customer(&t.db, &format!("Old {i}")).await;
        }
        let (code, out, err) = cli(
            &t,
            &remote,
            &["backfill", "crm.contact", "--batch", "2", "--json"],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(json(&out)["registered"], 7);
        let (_, out, _) = cli(&t, &remote, &["backfill", "crm.contact", "--json"]);
        assert_eq!(json(&out)["registered"], 0, "resumable: nothing twice");
        assert!(t.group("crm.contact", good.id).await.is_some());
        let (code, _, err) = cli(&t, &remote, &["backfill", "erp.nope"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("no root entity is declared for syncer `erp.nope`"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn runs_are_recorded_and_health_changes_alert_once() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let alerts: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let seen = alerts.clone();
        let mut settings = WorkerSettings::default();
        let hook = MockRemote::start().await;
        settings.report.alerts = AlertSink::default()
            .webhook(format!("{}/alerts", hook.url()))
            .callback(move |a| {
                seen.lock()
                    .unwrap()
                    .push((a.syncer.clone(), a.state.to_owned()));
            });
        settings.engine.max_attempts = 100;
        settings.engine.worker_id = "runs".into();
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            settings,
        )
        .unwrap();

        fixtures::customer(&t.db, "Ada").await;
        worker.run_once().await.unwrap();
        assert!(
            alerts.lock().unwrap().is_empty(),
            "healthy to begin with: no alert"
        );

        // Three failing passes: one alert.
        remote.push_fault(Fault::new(FaultKind::Status(500, serde_json::json!({}))));
        for i in 0..3 {
            fixtures::customer(&t.db, &format!("Failing {i}")).await;
            worker.run_once().await.unwrap();
        }
        assert_eq!(
            *alerts.lock().unwrap(),
            [("erp.customer".to_owned(), "failing".to_owned())]
        );

        // Recovery: one more alert.
        remote.clear_faults();
        t.db.execute_unprepared("UPDATE sync_groups SET next_attempt_at = 0")
            .await
            .unwrap();
        worker.run_once().await.unwrap();
        worker.run_once().await.unwrap();
        assert_eq!(
            *alerts.lock().unwrap(),
            [
                ("erp.customer".to_owned(), "failing".to_owned()),
                ("erp.customer".to_owned(), "recovered".to_owned())
            ]
        );

        let delivered: Vec<String> = hook
            .requests_matching("POST", "/alerts")
            .iter()
            .map(|r| {
                r.body.as_ref().unwrap()["state"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            delivered,
            ["failing", "recovered"],
            "the webhook got one POST per change"
        );

        let runs = sync_run::Entity::find().all(&t.db).await.unwrap();
        let erp: Vec<_> = runs.iter().filter(|r| r.syncer == "erp.customer").collect();
        assert!(erp.len() >= 5, "{runs:?}");
        assert!(erp[0].clean && erp[0].pushed == 1);
        assert!(erp.iter().any(|r| !r.clean && r.failed >= 1));
        let syncer = sync_core::entity::sync_syncer::Entity::find_by_id("erp.customer")
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert!(syncer.healthy && syncer.last_success_at.is_some());

        // Pruning: successes go first, failures are kept longer.
        let now = sync_core::now_ms();
        let before = sync_attempt::Entity::find().all(&t.db).await.unwrap();
        let (pruned, _) =
            sync_core::ops::prune(&t.db, now + 2 * 3_600_000, 3_600_000, 30 * 86_400_000)
                .await
                .unwrap();
        let after = sync_attempt::Entity::find().all(&t.db).await.unwrap();
        assert_eq!(
            pruned as usize,
            before
                .iter()
                .filter(|a| a.outcome == "ok" || a.outcome == "skipped")
                .count()
        );
        assert!(
            after.iter().all(|a| a.outcome == "retry"),
            "failures are kept: {after:?}"
        );
    })
    .await;
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
) -> (StatusCode, String, header::HeaderMap) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = auth {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

#[tokio::test]
async fn the_dashboard_api_is_guarded_and_steers_groups() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        remote.push_fault(Fault::new(FaultKind::Status(
            422,
            serde_json::json!({"error": "no"}),
        )));
        let mut settings = WorkerSettings::default();
        settings.engine.max_attempts = 1;
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            settings,
        )
        .unwrap();
        let c = fixtures::customer(&t.db, "Ada").await;
        worker.run_once().await.unwrap();
        let app = axum::Router::new().nest(
            "/sync",
            Dashboard::new(t.db.clone(), "/sync", Auth::bearer("s3cret")).router(),
        );

        let (status, body, _) = call(&app, "GET", "/sync/api/status", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _, _) = call(&app, "GET", "/sync/api/status", Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, headers) = call(&app, "GET", "/sync", None).await;
        assert!(status.is_redirection());
        assert_eq!(headers[header::LOCATION], "/sync/login");

        let (status, body, _) = call(&app, "GET", "/sync/api/groups", Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK);
        let groups = json(&body);
        assert_eq!(groups[0]["state"], "dead");
        let id = groups[0]["id"].as_i64().unwrap();
        let (_, body, _) = call(
            &app,
            "GET",
            &format!("/sync/api/groups/{id}"),
            Some("s3cret"),
        )
        .await;
        let group = json(&body);
        assert_eq!(group["attempts"][0]["outcome"], "dead");
        assert_eq!(group["root_key"], c.id.to_string());

        let (_, page, _) = call(&app, "GET", "/sync", Some("s3cret")).await;
        assert!(
            page.contains("erp.customer")
                && page.contains("Retry")
                && page.contains("Full run")
                && page.contains("Run now")
        );
        assert!(!page.contains("s3cret"), "no secret on any page");

        let (_, body, _) = call(
            &app,
            "POST",
            &format!("/sync/api/groups/{id}/retry"),
            Some("s3cret"),
        )
        .await;
        assert_eq!(json(&body)["retried"], 1);
        assert_eq!(
            t.group("erp.customer", c.id).await.unwrap().state,
            "pending"
        );
        let (_, body, _) = call(
            &app,
            "POST",
            "/sync/api/syncers/erp.customer/resync",
            Some("s3cret"),
        )
        .await;
        assert_eq!(json(&body)["marked"], 1);
        // The remote lost the record: forget its id so that the next push creates it again.
        t.db.execute_unprepared(&format!(
            "UPDATE sync_groups SET remote_id = '77', last_digest = 'x' WHERE id = {id}"
        ))
        .await
        .unwrap();
        let (_, body, _) = call(
            &app,
            "POST",
            &format!("/sync/api/groups/{id}/forget"),
            Some("s3cret"),
        )
        .await;
        assert_eq!(json(&body)["forgotten"], 1);
        let g = t.group("erp.customer", c.id).await.unwrap();
        assert_eq!(
            (g.remote_id, g.last_digest, g.state.as_str()),
            (None, None, "pending")
        );
        let (status, _, _) =
            call(&app, "POST", &format!("/sync/api/groups/{id}/forget"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guarded like the others");
        let (_, body, _) = call(&app, "GET", "/sync/api/runs", Some("s3cret")).await;
        assert_eq!(json(&body)[0]["failed"], 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_serves_prometheus_metrics() {
    let t = TestDb::new(sync_tests::Backend::Sqlite).await;
    let remote = MockRemote::start().await;
    fixtures::customer(&t.db, "Ada").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let worker = sync_tests::cluster::WorkerProcess::start(
        WORKER,
        &t.url,
        &remote.url(),
        "metrics",
        dir.path(),
        &[
            ("SYNC_METRICS_LISTEN", &format!("127.0.0.1:{port}")),
            ("SYNC_RUN_INTERVAL_MS", "300"),
        ],
    );
    sync_tests::cluster::wait_until_synced(&t.db, std::time::Duration::from_secs(20)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .map(|r| r.text());
        if let Ok(body) = body {
            let body = body.await.unwrap_or_default();
            // The gauges are refreshed every run interval (300 ms here).
            if body.contains(r#"sync_dirty_groups{syncer="erp.customer"} 0"#) {
                break body;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no metrics served");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    worker.terminate(std::time::Duration::from_secs(10));
    assert!(
        body.contains(r#"sync_pushes_total{syncer="erp.customer",outcome="pushed"} 1"#),
        "{body}"
    );
    assert!(body.contains("sync_push_duration_seconds"), "{body}");
    assert!(
        body.contains(r#"sync_dirty_groups{syncer="erp.customer"} 0"#),
        "{body}"
    );
    assert!(
        body.contains("sync_oldest_dirty_seconds") && body.contains("sync_dead_groups"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_recreates_lost_records_and_exits_non_zero_when_work_is_left() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let ada = fixtures::customer(&t.db, "Ada").await;
        let bob = fixtures::customer(&t.db, "Bob").await;
        let (code, _, err) = cli(&t, &remote, &["run", "--once"]);
        assert_eq!(code, 0, "{err}");
        // The remote loses Ada's record; an edit then answers 404 until she is dead.
        let lost = t.group("erp.customer", ada.id).await.unwrap();
        assert!(remote.remove_record("erp/customers", lost.remote_id.as_deref().unwrap()));
        let mut am = ada.clone().into_active_model();
        am.name = sea_orm::ActiveValue::Set("Ada Lovelace".into());
        sea_orm::ActiveModelTrait::update(am, &t.db).await.unwrap();
        let (code, _, _) = cli(&t, &remote, &["run", "--once", "--max-attempts", "1"]);
        assert_eq!(code, 0);
        let (_, human, _) = cli(&t, &remote, &["failed"]);
        assert!(human.contains("the remote lost its record"), "{human}");

        // `retry --wait` pushes to the missing id again: not done, so not 0.
        let (code, out, err) = cli(
            &t,
            &remote,
            &[
                "retry",
                "--syncer",
                "erp.customer",
                "--wait",
                "--max-attempts",
                "1",
            ],
        );
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("1 group(s) of `erp.customer` are failed or dead"),
            "{err}"
        );

        // Nothing to forget for a group that does not exist, or one that did not lose anything.
        let (code, _, err) = cli(&t, &remote, &["forget", "--group", "999999"]);
        assert_eq!(code, 1);
        assert!(err.contains("there is no group 999999"), "{err}");
        let (code, _, err) = cli(&t, &remote, &["retry", "--group", "999999"]);
        assert_eq!(code, 1);
        assert!(err.contains("there is no group 999999"), "{err}");

        // `forget --missing --wait`: created again, and done.
        let (code, out, err) = cli(&t, &remote, &["forget", "--missing", "--wait", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(json(&out)["forgotten"], 1);
        assert_eq!(json(&out)["failed_or_dead"], 0);
        let g = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(g.state, "synced");
        assert_ne!(g.remote_id, lost.remote_id);
        assert_eq!(
            remote
                .record("erp/customers", g.remote_id.as_deref().unwrap())
                .unwrap()["name"],
            "Ada Lovelace"
        );

        // `resync` of a syncer whose remote refuses one record: it ends, shows its progress
        // (stderr is not a terminal here) and says the run is not done.
        remote.push_fault(
            Fault::new(FaultKind::Status(422, serde_json::json!({"error": "no"})))
                .body_contains("\"Bob\""),
        );
        let (code, out, err) = cli(&t, &remote, &["resync", "erp.customer"]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("full run of `erp.customer`: 2/2"), "{err}");
        assert!(
            err.contains("1 group(s) of `erp.customer` are failed or dead"),
            "{err}"
        );
        assert_eq!(
            t.group("erp.customer", bob.id).await.unwrap().state,
            "failed"
        );
    })
    .await;
}

#[tokio::test]
async fn the_cli_needs_no_remote_to_read_and_names_missing_migrations() {
    let t = TestDb::new(Backend::Sqlite).await;
    fixtures::customer(&t.db, "Ada").await;
    // The test worker's syncers need `TEST_REMOTE_URL`; reading the status does not.
    let out = Command::new(WORKER)
        .env("DATABASE_URL", &t.url)
        .env_remove("TEST_REMOTE_URL")
        .env("RUST_LOG", "info")
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(status[0]["syncer"], "erp.customer");
    assert_eq!(status[0]["dirty"], 1);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\u{1b}'),
        "no colour escapes in a log that is not a terminal"
    );

    // A database without the framework's tables.
    let dir = tempfile::tempdir().unwrap();
    let empty = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    );
    let out = Command::new(WORKER)
        .env("DATABASE_URL", &empty)
        .args(["status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "these migrations have not run: sync_core::m20261101_000001_create_sync_groups"
        ) && err.contains("sync_migrations::migrations()")
            && err.contains("the worker does not run migrations"),
        "{err}"
    );
}

/// The worker's gauges read the backlog (`ops::backlog`): the same counts as the status for
/// what they show, read from the groups that are not synced only. On PostgreSQL, among 100,000
/// synced groups, it reads a handful of rows where the status reads them all.
#[tokio::test]
async fn the_backlog_counts_as_the_status_without_reading_the_synced_groups() {
    on_each_backend(|t: TestDb| async move {
        let now = sync_core::now_ms();
        // (syncer, key, state, dirty_since, touched_at)
        let rows = [
            ("erp.customer", "1", "synced", "NULL", 10),
            ("erp.customer", "2", "pending", "1000", 900),
            ("erp.customer", "3", "pending", "NULL", 500),
            ("erp.customer", "4", "failed", "2000", 2000),
            ("erp.customer", "5", "dead", "100", 100),
            ("erp.customer", "6", "deleted", "NULL", 10),
            ("crm.contact", "1", "synced", "NULL", 10),
            ("crm.contact", "2", "dead", "50", 50),
        ];
        let values: Vec<String> = rows
            .iter()
            .map(|(syncer, key, state, since, touched)| {
                format!(
                    "('{syncer}', '{key}', 1, 1, '{state}', false, 0, 0, 0, {touched}, 0, {since})"
                )
            })
            .collect();
        t.db.execute_unprepared(&format!(
            "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, \
             root_deleted, attempts, deferrals, next_attempt_at, touched_at, created_at, \
             dirty_since) VALUES {}",
            values.join(", ")
        ))
        .await
        .expect("seed");
        let known = ["idle.syncer".to_owned()];
        let backlog = sync_core::ops::backlog(&t.db, &known, now).await.unwrap();
        let seen: Vec<(String, i64, Option<i64>, i64, i64)> = backlog
            .iter()
            .map(|b| {
                (
                    b.syncer.clone(),
                    b.dirty,
                    b.oldest_dirty_ms,
                    b.failed,
                    b.dead,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("crm.contact".to_owned(), 0, None, 0, 1),
                ("erp.customer".to_owned(), 3, Some(now - 500), 1, 1),
                ("idle.syncer".to_owned(), 0, None, 0, 0),
            ]
        );
        let status = sync_core::ops::status(&t.db, &known, now).await.unwrap();
        for b in &backlog {
            let s = status
                .iter()
                .find(|s| s.syncer == b.syncer)
                .expect("in the status");
            let state = |name: &str| *s.groups.get(name).unwrap_or(&0);
            assert_eq!(
                (s.dirty, s.oldest_dirty_ms, state("failed"), state("dead")),
                (b.dirty, b.oldest_dirty_ms, b.failed, b.dead),
                "{}",
                b.syncer
            );
        }

        if t.backend != Backend::Postgres {
            return;
        }
        t.seed_synced_groups("erp.customer", "bulk-", 100_000).await;
        t.db.execute_unprepared("ANALYZE sync_groups")
            .await
            .expect("analyse");
        let before = t.rows_read("sync_groups", t.pool_apart(1).await).await;
        let db = t.pool_apart(1).await;
        let again = sync_core::ops::backlog(&db, &known, now).await.unwrap();
        assert_eq!(again, backlog);
        let read = t.rows_read("sync_groups", db).await - before;
        assert!(read < 1_000, "the backlog read {read} rows of sync_groups");
        let db = t.pool_apart(1).await;
        sync_core::ops::status(&db, &known, now).await.unwrap();
        let by_status = t.rows_read("sync_groups", db).await - before - read;
        assert!(by_status > 100_000, "the status read {by_status} rows");
    })
    .await;
}
