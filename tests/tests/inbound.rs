//! The inbound side: a source pulls the remote's changes into the application's tables through
//! its models, with a cursor that never skips or repeats work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::json;
use sync_core::entity::{sync_inbound, sync_source};
use sync_core::source::{
    ApplyContext, FetchContext, HttpFeed, InboundRecord, Page, Pagination, Source, SourceReport,
    SourceRunOptions, request_full_run, run_source,
};
use sync_core::{HttpRemote, apply_touches};
use sync_tests::models::{product, stock_item};
use sync_tests::sources::{ApplyKnobs, ErpProducts, ErpStock, erp_product};
use sync_tests::{TestDb, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, MockRemote};

/// A json-server style feed of `/products`: pages of `size`, changes since `updated_at` minus
/// a 30 s overlap, sorted by `updated_at`.
fn json_server_feed(remote: &MockRemote, size: u32) -> HttpFeed {
    sync_tests::sources::json_server_feed_at(&remote.url(), size)
}

/// A "changes since a cursor" feed of `/products/_changes`, with tombstones.
fn changes_feed(remote: &MockRemote, size: u32) -> HttpFeed {
    let http = HttpRemote::builder(remote.url(), "products/_changes")
        .build()
        .expect("remote");
    HttpFeed::builder(http)
        .pagination(Pagination::Token {
            param: "cursor".into(),
            next: "/next_cursor".into(),
            more: Some("/has_more".into()),
        })
        .query("limit", size.to_string())
        .records_pointer("/data")
        .deleted_pointer("/deleted")
        .build()
        .expect("feed")
}

/// Status and body of a dashboard request (mounted at `/sync`, bearer token).
async fn dashboard(db: &DatabaseConnection, method: &str, uri: &str) -> (u16, String) {
    use axum::body::Body;
    use axum::http::{Request, header};
    use sync_worker::dashboard::{Auth, Dashboard};
    use tower::ServiceExt;

    let app = axum::Router::new().nest(
        "/sync",
        Dashboard::new(db.clone(), "/sync", Auth::bearer("s3cret")).router(),
    );
    let response = app
        .oneshot(
            Request::builder()
                .method(method)
                .uri(uri)
                .header(header::AUTHORIZATION, "Bearer s3cret")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn run(db: &DatabaseConnection, source: &ErpProducts) -> SourceReport {
    run_source(db, source, &SourceRunOptions::new("worker-a"))
        .await
        .expect("source run")
}

async fn products(db: &DatabaseConnection) -> Vec<(i32, String, i64, i32)> {
    product::Entity::find()
        .order_by_asc(product::Column::Id)
        .all(db)
        .await
        .expect("products")
        .into_iter()
        .map(|p| (p.id, p.name, p.price_cents, p.revision))
        .collect()
}

/// The rows of `sync_inbound`, of every source.
async fn inbound_count(db: &DatabaseConnection) -> u64 {
    use sea_orm::PaginatorTrait;
    sync_inbound::Entity::find()
        .count(db)
        .await
        .expect("count sync_inbound")
}

async fn inbound_row(db: &DatabaseConnection, remote_id: &str) -> sync_inbound::Model {
    use sea_orm::{ColumnTrait, QueryFilter};
    sync_inbound::Entity::find()
        .filter(sync_inbound::Column::RemoteId.eq(remote_id))
        .one(db)
        .await
        .expect("read sync_inbound")
        .unwrap_or_else(|| panic!("no sync_inbound row for {remote_id}"))
}

/// Products 1 to `n` on the remote: `P{id}` at `id * 100` cents, modified at second `id`.
fn put_products(remote: &MockRemote, n: i64) {
    for id in 1..=n {
        remote.put_record(
            "products",
            &id.to_string(),
            erp_product(id, &format!("P{id}"), id * 100, &at(id as u32)),
        );
    }
}

fn at(second: u32) -> String {
    format!("2026-12-01T10:00:{second:02}.000Z")
}

fn at_minute(minute: u32) -> String {
    format!("2026-12-01T10:{minute:02}:00.000Z")
}

#[tokio::test]
async fn changed_records_land_through_the_models_and_re_reads_are_skipped() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 5);
        let knobs = Arc::new(ApplyKnobs::default());
        let source = ErpProducts::new(json_server_feed(&remote, 2), &knobs);

        let first = run(&t.db, &source).await;
        assert_eq!(
            (first.pages, first.fetched, first.applied, first.skipped),
            (3, 5, 5, 0),
            "{first:?}"
        );
        // The report says where the pages' time went.
        let times = first.times;
        for (phase, took) in [
            ("fetching", times.fetching),
            ("reading", times.reading),
            ("applying", times.applying),
            ("recording", times.recording),
            ("committing", times.committing),
        ] {
            assert!(took > Duration::ZERO, "no time {phase}: {times:?}");
        }
        assert_eq!(
            products(&t.db).await,
            (1..=5)
                .map(|id| (id, format!("P{id}"), i64::from(id) * 100, 1))
                .collect::<Vec<_>>()
        );
        // Fan-out: the writes went through the models, so the outbound groups are dirty.
        apply_touches(&t.db).await.expect("apply touches");
        assert_eq!(t.group("shop.product", 3).await.expect("group").version, 1);

        // The next run asks from the latest time seen minus the overlap: it re-reads what it
        // has and writes nothing.
        remote.clear_requests();
        let again = run(&t.db, &source).await;
        assert_eq!(
            (again.fetched, again.applied, again.skipped),
            (5, 0, 5),
            "{again:?}"
        );
        let asked = remote.requests_matching("GET", "/products");
        assert_eq!(asked.len(), 3, "{asked:?}");

        // A change on the remote lands, once.
        remote.put_record(
            "products",
            "2",
            erp_product(2, "P2 renamed", 250, &at_minute(5)),
        );
        let changed = run(&t.db, &source).await;
        assert_eq!(
            (changed.applied, changed.quarantined),
            (1, 0),
            "{changed:?}"
        );
        assert_eq!(products(&t.db).await[1], (2, "P2 renamed".into(), 250, 2));
        let row = sync_source::Entity::find_by_id("erp.products")
            .one(&t.db)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (row.last_fetched, row.last_applied),
            (changed.fetched as i64, 1)
        );
        assert!(
            row.last_success_at.is_some() && row.last_error.is_none(),
            "{row:?}"
        );
        assert!(row.lease_owner.is_none(), "the lease is released: {row:?}");
    })
    .await;
}

#[tokio::test]
async fn a_record_committed_late_with_an_earlier_time_is_not_skipped() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record(
            "products",
            "1",
            erp_product(1, "early", 100, &at_minute(10)),
        );
        remote.put_record(
            "products",
            "2",
            erp_product(2, "latest", 200, &at_minute(20)),
        );
        let knobs = Arc::new(ApplyKnobs::default());
        let source = ErpProducts::new(json_server_feed(&remote, 50), &knobs);
        assert_eq!(run(&t.db, &source).await.applied, 2);

        // The remote commits a record stamped 10 s before the latest one the run saw (a
        // transaction that started earlier and committed later), and another stamped 5
        // minutes before it, later than any remote should.
        remote.put_record(
            "products",
            "3",
            erp_product(3, "late", 300, "2026-12-01T10:19:50.000Z"),
        );
        remote.put_record(
            "products",
            "4",
            erp_product(4, "very late", 400, "2026-12-01T10:15:00.000Z"),
        );
        let next = run(&t.db, &source).await;
        assert_eq!(
            (next.applied, next.skipped),
            (1, 1),
            "the late one lands; {next:?}"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(
            ids,
            [1, 2, 3],
            "beyond the overlap window only a full run finds it"
        );

        request_full_run(&t.db, "erp.products")
            .await
            .expect("request");
        let full = run(&t.db, &source).await;
        assert!(full.full, "{full:?}");
        assert_eq!(
            (full.applied, full.skipped, full.deleted),
            (1, 3, 0),
            "{full:?}"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    })
    .await;
}

#[tokio::test]
async fn a_bad_record_is_quarantined_while_the_others_flow_and_revives() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        // The application's own `before_save` refuses a blank name.
        remote.put_record("products", "2", erp_product(2, "  ", 200, &at(2)));
        remote.put_record(
            "products",
            "3",
            erp_product(3, "needs a category", 300, &at(3)),
        );
        remote.put_record("products", "4", erp_product(4, "four", 400, &at(4)));
        let knobs = Arc::new(ApplyKnobs::default());
        *knobs.refuse_name.lock().unwrap() = Some("needs a category".into());
        let source = ErpProducts::new(json_server_feed(&remote, 2), &knobs);

        let first = run(&t.db, &source).await;
        assert_eq!((first.applied, first.quarantined), (2, 2), "{first:?}");
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 4], "the records after a bad one are applied");
        let blank = inbound_row(&t.db, "2").await;
        assert_eq!(blank.state, "quarantined");
        assert!(
            blank
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("a product needs a name"),
            "{blank:?}"
        );
        assert_eq!(blank.attempts, 1);
        assert!(
            blank
                .payload
                .as_deref()
                .unwrap_or_default()
                .contains("\"price_cents\":200"),
            "{blank:?}"
        );
        let cursor = sync_source::Entity::find_by_id("erp.products")
            .one(&t.db)
            .await
            .unwrap()
            .unwrap()
            .next_cursor
            .expect("cursor");
        assert!(
            cursor.contains("\"since\""),
            "the cursor moved past the bad record: {cursor}"
        );
        // Operators see the source's last run and both quarantined records, with their errors
        // and payloads, on the dashboard, and can ask for a run there.
        let overview = dashboard(&t.db, "GET", "/sync").await;
        assert_eq!(overview.0, 200);
        let html = overview.1;
        let source_row = html
            .split("<tr id=\"source-erp.products\">")
            .nth(1)
            .and_then(|row| row.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for the source: {html}"));
        assert!(
            source_row.contains("<td>4</td><td>2</td><td>0</td><td>2</td><td>0</td>"),
            "fetched, applied, unchanged, quarantined, deleted: {source_row}"
        );
        let quarantined = html
            .split("<table id=\"quarantined\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no quarantined records: {html}"));
        assert!(
            quarantined.contains("a product needs a name"),
            "{quarantined}"
        );
        assert!(
            quarantined.contains("&quot;price_cents&quot;:200"),
            "{quarantined}"
        );
        assert!(quarantined.contains("needs a category"), "{quarantined}");
        let asked = dashboard(&t.db, "POST", "/sync/sources/erp.products/run").await;
        assert_eq!(asked.0, 303, "redirected back");
        let row = sync_source::Entity::find_by_id("erp.products")
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.next_run_at, 0, "due now: {row:?}");
        let unknown = dashboard(&t.db, "POST", "/sync/sources/erp.prodcts/full").await;
        assert_eq!(unknown.0, 404);
        assert!(unknown.1.contains("erp.prodcts"), "{}", unknown.1);

        // The prerequisite appears; the retry after the backoff applies the stored payload,
        // without the remote sending the record again.
        *knobs.refuse_name.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_millis(120)).await;
        let retried = run(&t.db, &source).await;
        assert_eq!((retried.revived, retried.applied), (1, 1), "{retried:?}");
        assert_eq!(inbound_row(&t.db, "3").await.state, "applied");
        // The blank name fails again and backs off further.
        let blank = inbound_row(&t.db, "2").await;
        assert_eq!(
            (blank.state.as_str(), blank.attempts),
            ("quarantined", 2),
            "{blank:?}"
        );

        // Someone fixes it on the remote: the new version revives it at once.
        remote.put_record("products", "2", erp_product(2, "two", 200, &at(30)));
        let fixed = run(&t.db, &source).await;
        assert_eq!((fixed.revived, fixed.quarantined), (1, 0), "{fixed:?}");
        assert_eq!(
            products(&t.db).await,
            vec![
                (1, "one".into(), 100, 1),
                (2, "two".into(), 200, 1),
                (3, "needs a category".into(), 300, 1),
                (4, "four".into(), 400, 1)
            ]
        );
        let row = inbound_row(&t.db, "2").await;
        assert_eq!(
            (row.state.as_str(), row.error, row.attempts),
            ("applied", None, 0)
        );
    })
    .await;
}

#[tokio::test]
async fn tombstones_delete_and_a_complete_full_run_deletes_what_vanished() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        for id in 1..=4_i64 {
            remote.put_record(
                "products",
                &id.to_string(),
                erp_product(id, &format!("P{id}"), 100, &at(id as u32)),
            );
        }
        let knobs = Arc::new(ApplyKnobs::default());
        // A changes API: deletes come as tombstones.
        let changes = ErpProducts::new(changes_feed(&remote, 3), &knobs);
        let first = run(&t.db, &changes).await;
        assert_eq!((first.pages, first.applied), (2, 4), "{first:?}");
        assert!(remote.remove_record("products", "2"));
        remote.clear_requests();
        let deleted = run(&t.db, &changes).await;
        assert_eq!((deleted.fetched, deleted.deleted), (1, 1), "{deleted:?}");
        let asked = remote.requests_matching("GET", "/products/_changes");
        assert!(
            asked.len() == 1,
            "the run asked only for the changes after the stored token: {asked:?}"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 3, 4]);

        // A listing without tombstones: record 3 vanishes silently. A normal run cannot
        // know; a full run that fails half-way must not act on it; a complete one deletes it.
        let listing = ErpProducts::new(json_server_feed(&remote, 1), &knobs);
        assert!(remote.remove_record("products", "3"));
        let normal = run(&t.db, &listing).await;
        assert_eq!(normal.deleted, 0, "{normal:?}");
        // The full run's second page fails.
        remote.push_fault(
            Fault::new(FaultKind::Status(503, json!({"error": "down"})))
                .method("GET")
                .path_contains("_page=2")
                .times(1),
        );
        let interrupted =
            run_source(&t.db, &listing, &SourceRunOptions::new("worker-a").full()).await;
        assert!(interrupted.is_err(), "{interrupted:?}");
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 3, 4], "an incomplete full run deletes nothing");
        let row = sync_source::Entity::find_by_id("erp.products")
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert!(
            row.full_run.is_some() && row.last_error.is_some(),
            "{row:?}"
        );

        // The next run resumes the full run and completes it.
        let resumed = run(&t.db, &listing).await;
        assert!(resumed.full, "{resumed:?}");
        assert_eq!((resumed.vanished, resumed.deleted), (1, 1), "{resumed:?}");
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 4]);
        let row = sync_source::Entity::find_by_id("erp.products")
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert!(row.full_run.is_none(), "{row:?}");
    })
    .await;
}

#[tokio::test]
async fn two_workers_never_run_one_source_at_once() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        let knobs = Arc::new(ApplyKnobs::default());
        let source = Arc::new(ErpProducts::new(json_server_feed(&remote, 10), &knobs));
        let mut hold = remote.hold(Some("/products"));
        let db = t.db.clone();
        let first = {
            let source = source.clone();
            tokio::spawn(async move {
                run_source(&db, &*source, &SourceRunOptions::new("worker-a")).await
            })
        };
        hold.arrived(1).await;
        let second = run_source(&t.db, &*source, &SourceRunOptions::new("worker-b"))
            .await
            .expect("second worker");
        assert!(second.busy && second.fetched == 0, "{second:?}");
        hold.release();
        let first = first.await.expect("join").expect("first worker");
        assert_eq!(first.applied, 1);
        assert_eq!(remote.requests_matching("GET", "/products").len(), 1);
        // Once the first is done, the second may run.
        let later = run_source(&t.db, &*source, &SourceRunOptions::new("worker-b"))
            .await
            .expect("second worker, later");
        assert!(!later.busy, "{later:?}");
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_page_loses_and_duplicates_nothing() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        for id in 1..=7_i64 {
            remote.put_record(
                "products",
                &id.to_string(),
                erp_product(id, &format!("P{id}"), id, &at(id as u32)),
            );
        }
        let knobs = Arc::new(ApplyKnobs::default());
        // Pages of 3: the worker dies inside the second page, after applying one of its records.
        *knobs.stall_after.lock().unwrap() = Some(4);
        let source = Arc::new(ErpProducts::new(json_server_feed(&remote, 3), &knobs));
        let db = t.db.clone();
        // Each page commits by itself (pages committed together: the test after the next).
        knobs.pages_per_commit.store(1, Ordering::SeqCst);
        let mut options = SourceRunOptions::new("worker-a");
        options.lease = Duration::from_millis(300);
        let doomed = {
            let source = source.clone();
            let options = options.clone();
            tokio::spawn(async move { run_source(&db, &*source, &options).await })
        };
        knobs.stalled.notified().await;
        doomed.abort();
        let _ = doomed.await;
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(
            ids,
            [1, 2, 3],
            "the first page committed with its cursor, the second not at all"
        );

        // Another worker takes over once the lease has expired.
        *knobs.stall_after.lock().unwrap() = None;
        let mut takeover = SourceRunOptions::new("worker-b");
        takeover.lease = Duration::from_millis(300);
        let busy = run_source(&t.db, &*source, &takeover).await.expect("run");
        assert!(busy.busy, "the dead worker's lease holds until it expires");
        tokio::time::sleep(Duration::from_millis(350)).await;
        let report = run_source(&t.db, &*source, &takeover).await.expect("run");
        assert_eq!((report.applied, report.skipped), (4, 0), "{report:?}");
        // Every remote record equals its local row, each written once (revision 1).
        assert_eq!(
            products(&t.db).await,
            (1..=7)
                .map(|id| (id, format!("P{id}"), i64::from(id), 1))
                .collect::<Vec<_>>()
        );
        assert_eq!(inbound_count(&t.db).await, 7);
        assert_eq!(knobs.applies.load(Ordering::SeqCst), 5 + 4);
    })
    .await;
}

#[tokio::test]
async fn a_running_worker_runs_its_sources_and_a_webhook_makes_it_fetch_at_once() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use sync_core::source::Sources;
    use sync_tests::syncers::{Knobs, registry};
    use sync_worker::dashboard::{Auth, Dashboard};
    use sync_worker::{Worker, WorkerSettings};
    use tower::ServiceExt;

    async fn has_product(db: &DatabaseConnection, id: i32) -> bool {
        product::Entity::find_by_id(id)
            .one(db)
            .await
            .expect("read")
            .is_some()
    }
    async fn eventually(db: &DatabaseConnection, id: i32) {
        for _ in 0..200 {
            if has_product(db, id).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("product {id} did not arrive within 10 s");
    }

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        let knobs = Arc::new(ApplyKnobs::default());
        let mut sources = Sources::new();
        sources
            .register(ErpProducts::new(json_server_feed(&remote, 10), &knobs))
            .expect("register");
        // Polling every 30 s: only the webhook's wake-up can make the source run at once.
        let mut settings = WorkerSettings::default();
        settings.poll_interval = Duration::from_secs(30);
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            settings,
        )
        .expect("worker")
        .with_sources(sources);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run_until(async move {
            let _ = stop_rx.await;
        }));
        // A source that never ran is due at once.
        eventually(&t.db, 1).await;

        // The next scheduled run is a minute away: a change waits for it…
        remote.put_record("products", "2", erp_product(2, "two", 200, &at(2)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!has_product(&t.db, 2).await, "not before its schedule");
        // …unless the remote calls the webhook.
        let app = axum::Router::new().nest(
            "/sync",
            Dashboard::new(t.db.clone(), "/sync", Auth::bearer("s3cret")).router(),
        );
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                app.oneshot(
                    Request::builder()
                        .method("POST")
                        .uri(uri)
                        .header(header::AUTHORIZATION, "Bearer s3cret")
                        .body(Body::from(r#"{"changed": [2]}"#))
                        .unwrap(),
                )
                .await
                .unwrap()
                .status()
            }
        };
        assert_eq!(
            call("/sync/api/sources/erp.products/webhook").await,
            StatusCode::ACCEPTED
        );
        eventually(&t.db, 2).await;
        assert_eq!(
            call("/sync/api/sources/erp.prodcts/webhook").await,
            StatusCode::NOT_FOUND
        );

        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .expect("shutdown")
            .unwrap()
            .unwrap();
    })
    .await;
}

/// A webhook taken by the web application's process makes the source run at once in a worker
/// process of its own (PostgreSQL: a notification on `sync_sources`; other backends have no
/// cross-process wake-up and run it at the worker's next poll).
#[tokio::test]
async fn a_run_requested_in_another_process_runs_the_source_at_once() {
    use sync_tests::cluster::WorkerProcess;
    const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");

    async fn products(db: &DatabaseConnection) -> usize {
        product::Entity::find().all(db).await.expect("read").len()
    }

    on_each_backend(|t: TestDb| async move {
        if t.backend != sync_tests::Backend::Postgres {
            return;
        }
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        let dir = tempfile::tempdir().unwrap();
        // Polling once a minute: only a notification can make it run the source again soon.
        let worker = WorkerProcess::start(
            WORKER,
            &t.url,
            &remote.url(),
            "sources",
            dir.path(),
            &[("SYNC_POLL_INTERVAL_MS", "60000"), ("TEST_SOURCES", "1")],
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while products(&t.db).await < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the first run did not land"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Past the first run's end (its lease released, its schedule a minute away).
        tokio::time::sleep(Duration::from_millis(500)).await;

        remote.put_record("products", "2", erp_product(2, "two", 200, &at(2)));
        let asked = std::time::Instant::now();
        sync_core::source::request_run(&t.db, "erp.products")
            .await
            .expect("request a run");
        while products(&t.db).await < 2 {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "the requested run did not land within 10 s (the worker polls once a minute)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.terminate(Duration::from_secs(10));
    })
    .await;
}

#[tokio::test]
async fn a_crm_edit_reaches_the_erp_through_the_app_and_is_not_echoed_back() {
    use sync_tests::fixtures;
    use sync_tests::sources::CrmContacts;
    use sync_tests::syncers::{Knobs, registry};
    use sync_worker::{Worker, WorkerSettings};

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        let knobs = Arc::new(Knobs::default());
        *knobs.contact_mirrored_by.lock().unwrap() = Some("crm.contacts".into());
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &knobs),
            WorkerSettings::default(),
        )
        .expect("worker");
        let ada = fixtures::customer(&t.db, "Ada").await;
        sync_core::sync(&t.db, &ada)
            .await
            .expect("sync the contact too");
        worker.run_until_idle(10).await.expect("outbound");
        let contact_id = t
            .group("crm.contact", ada.id)
            .await
            .expect("group")
            .remote_id
            .expect("created in the CRM");
        let http = HttpRemote::builder(format!("{}/crm", remote.url()), "contacts/_changes")
            .build()
            .unwrap();
        let source = CrmContacts {
            feed: HttpFeed::builder(http)
                .pagination(Pagination::Token {
                    param: "cursor".into(),
                    next: "/next_cursor".into(),
                    more: Some("/has_more".into()),
                })
                .records_pointer("/data")
                .deleted_pointer("/deleted")
                .build()
                .unwrap(),
        };
        let first = run_source(&t.db, &source, &SourceRunOptions::new("w"))
            .await
            .unwrap();
        assert_eq!((first.applied, first.quarantined), (1, 0), "{first:?}");

        // A sales person renames the contact in the CRM.
        let mut edited = remote.record("crm/contacts", &contact_id).expect("contact");
        edited["full_name"] = json!("Ada Lovelace");
        remote.put_record("crm/contacts", &contact_id, edited);
        let pulled = run_source(&t.db, &source, &SourceRunOptions::new("w"))
            .await
            .unwrap();
        assert_eq!(pulled.applied, 1, "{pulled:?}");
        let local = sync_tests::models::customer::Entity::find_by_id(ada.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(local.name, "Ada Lovelace");

        remote.clear_requests();
        let pass = worker.run_until_idle(10).await.expect("outbound");
        assert_eq!(
            remote.requests_matching("PUT", "/erp/customers").len(),
            1,
            "the CRM's edit reaches the ERP: {:?}",
            remote.calls()
        );
        assert_eq!(
            remote.requests_matching("PUT", "/crm/contacts").len(),
            0,
            "and is not pushed back to the CRM: {:?}",
            remote.calls()
        );
        assert!(pass.skipped >= 1, "{pass:?}");
        let group = t.group("crm.contact", ada.id).await.unwrap();
        assert_eq!(group.state, "synced");
        assert!(
            group
                .last_payload
                .as_deref()
                .unwrap_or_default()
                .contains("Ada Lovelace"),
            "the group knows the remote holds the new name: {group:?}"
        );

        // A later change made in the application goes to the CRM as usual.
        let mut row: sync_tests::models::customer::ActiveModel = local.into();
        row.email = sea_orm::ActiveValue::Set("ada@lovelace.example".into());
        sea_orm::ActiveModelTrait::update(row, &t.db).await.unwrap();
        remote.clear_requests();
        worker.run_until_idle(10).await.expect("outbound");
        assert_eq!(
            remote.requests_matching("PUT", "/crm/contacts").len(),
            1,
            "{:?}",
            remote.calls()
        );
    })
    .await;
}

#[tokio::test]
async fn source_runs_are_recorded_and_alert_once_per_change_of_health() {
    use std::sync::Mutex;
    use sync_core::entity::sync_run;
    use sync_core::source::Sources;
    use sync_tests::syncers::{Knobs, registry};
    use sync_worker::{AlertSink, Worker, WorkerSettings};

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        let knobs = Arc::new(ApplyKnobs::default());
        let mut sources = Sources::new();
        sources
            .register(ErpProducts::new(json_server_feed(&remote, 10), &knobs))
            .unwrap();
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let mut settings = WorkerSettings::default();
        let seen = alerts.clone();
        settings.report.alerts = AlertSink::default().callback(move |a| {
            seen.lock().unwrap().push((a.syncer.clone(), a.state));
        });
        let worker = Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            settings,
        )
        .unwrap()
        .with_sources(sources);

        assert_eq!(worker.run_sources_once().await.unwrap()[0].applied, 1);
        assert!(
            worker.run_sources_once().await.unwrap().is_empty(),
            "not due again before its interval"
        );
        // The remote fails twice: one alert.
        for _ in 0..2 {
            remote.push_fault(
                Fault::new(FaultKind::Status(500, json!({"error": "boom"})))
                    .method("GET")
                    .times(1),
            );
            sync_core::source::request_run(&t.db, "erp.products")
                .await
                .unwrap();
            let failed = worker.run_sources_once().await;
            assert!(failed.is_err(), "{failed:?}");
        }
        sync_core::source::request_run(&t.db, "erp.products")
            .await
            .unwrap();
        worker.run_sources_once().await.unwrap();
        assert_eq!(
            *alerts.lock().unwrap(),
            vec![
                ("source:erp.products".to_owned(), "failing"),
                ("source:erp.products".to_owned(), "recovered")
            ]
        );
        let runs = sync_run::Entity::find()
            .order_by_asc(sync_run::Column::Id)
            .all(&t.db)
            .await
            .unwrap();
        let clean: Vec<(String, bool, i32)> = runs
            .iter()
            .map(|r| (r.syncer.clone(), r.clean, r.pushed))
            .collect();
        assert_eq!(
            clean,
            vec![
                ("source:erp.products".to_owned(), true, 1),
                ("source:erp.products".to_owned(), false, 0),
                ("source:erp.products".to_owned(), false, 0),
                ("source:erp.products".to_owned(), true, 0),
            ]
        );
        let status = sync_core::source::source_status(&t.db).await.unwrap();
        assert_eq!(status.len(), 1);
        assert!(
            status[0].last_error.is_none() && status[0].last_success_at.is_some(),
            "{status:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_plan_shows_what_a_run_would_do_and_writes_nothing() {
    use sync_core::source::plan_source;

    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        remote.put_record("products", "2", erp_product(2, " ", 200, &at(2)));
        remote.put_record("products", "3", erp_product(3, "three", 300, &at(3)));
        let knobs = Arc::new(ApplyKnobs::default());
        let source = ErpProducts::new(json_server_feed(&remote, 2), &knobs);

        let plan = plan_source(&t.db, &source, false, 100).await.unwrap();
        let actions: Vec<(&str, &str, bool)> = plan
            .records
            .iter()
            .map(|r| (r.remote_id.as_str(), r.action, r.error.is_some()))
            .collect();
        assert_eq!(
            actions,
            [
                ("1", "create", false),
                ("2", "create", true),
                ("3", "create", false)
            ]
        );
        assert!(
            plan.records[1]
                .error
                .as_deref()
                .unwrap()
                .contains("a product needs a name")
        );
        assert!(products(&t.db).await.is_empty(), "the plan wrote nothing");
        assert!(
            sync_inbound::Entity::find()
                .all(&t.db)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            sync_source::Entity::find()
                .all(&t.db)
                .await
                .unwrap()
                .is_empty()
        );

        run(&t.db, &source).await;
        remote.put_record("products", "3", erp_product(3, "three!", 300, &at(40)));
        assert!(remote.remove_record("products", "1"));
        let full = plan_source(&t.db, &source, true, 100).await.unwrap();
        let actions: Vec<(&str, &str)> = full
            .records
            .iter()
            .map(|r| (r.remote_id.as_str(), r.action))
            .collect();
        assert_eq!(actions, [("2", "unchanged"), ("3", "update")]);
        assert_eq!(full.vanished, ["1"]);
        assert_eq!(products(&t.db).await[1].1, "three", "still nothing written");
    })
    .await;
}

#[tokio::test]
async fn a_page_applied_at_once_falls_back_to_one_by_one_when_a_record_fails() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        remote.put_record("products", "1", erp_product(1, "one", 100, &at(1)));
        remote.put_record("products", "2", erp_product(2, "", 200, &at(2)));
        remote.put_record("products", "3", erp_product(3, "three", 300, &at(3)));
        let knobs = Arc::new(ApplyKnobs::default());
        knobs.batch.store(true, Ordering::SeqCst);
        let source = ErpProducts::new(json_server_feed(&remote, 10), &knobs);

        let first = run(&t.db, &source).await;
        assert_eq!((first.applied, first.quarantined), (2, 1), "{first:?}");
        assert_eq!(
            knobs.batches.load(Ordering::SeqCst),
            0,
            "the page with a bad record was not written at once"
        );
        assert_eq!(
            knobs.applies.load(Ordering::SeqCst),
            3,
            "it was applied record by record"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(inbound_row(&t.db, "2").await.state, "quarantined");

        remote.put_record("products", "4", erp_product(4, "four", 400, &at(40)));
        remote.put_record("products", "5", erp_product(5, "five", 500, &at(41)));
        let second = run(&t.db, &source).await;
        assert_eq!((second.applied, second.skipped), (2, 3), "{second:?}");
        assert_eq!(
            knobs.batches.load(Ordering::SeqCst),
            1,
            "a clean page is one `apply_many`"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 3, 4, 5]);
    })
    .await;
}

/// Whether `count` reaches `at_least` within 10 s (looking every 2 ms).
async fn reaches(count: &AtomicUsize, at_least: usize) -> bool {
    let reached = async {
        while count.load(Ordering::SeqCst) < at_least {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .is_ok()
}

/// `erp.products`, whose apply of a page waits (up to 10 s) until the next page has been asked
/// for, and fails if it was not.
struct WaitsForTheNextFetch {
    inner: ErpProducts,
    fetches: AtomicUsize,
}

#[sync_core::async_trait]
impl Source for WaitsForTheNextFetch {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn fetch(
        &self,
        cx: &FetchContext<'_>,
        cursor: Option<&serde_json::Value>,
    ) -> sync_core::Result<Page> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.feed.fetch(cx, cursor).await
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> sync_core::Result<()> {
        let page = record.data["id"].as_i64().unwrap_or_default() as usize;
        // Records 1 and 2 are page 1, 3 and 4 page 2, 5 page 3 (the last).
        let next_asked = 1 + page.div_ceil(2);
        if !reaches(&self.fetches, next_asked.min(3)).await {
            return Err(sync_core::Error::permanent(format!(
                "page {next_asked} was not asked for while record {page} was applied"
            )));
        }
        self.inner.apply(cx, record).await
    }
}

#[tokio::test]
async fn the_next_page_is_fetched_while_a_page_is_applied() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 5);
        let knobs = Arc::new(ApplyKnobs::default());
        let source = WaitsForTheNextFetch {
            inner: ErpProducts::new(json_server_feed(&remote, 2), &knobs),
            fetches: AtomicUsize::new(0),
        };
        let report = run_source(&t.db, &source, &SourceRunOptions::new("worker-a"))
            .await
            .expect("source run");
        assert_eq!(
            (report.pages, report.applied, report.quarantined),
            (3, 5, 0),
            "{report:?}"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3, "one fetch a page");
        assert_eq!(products(&t.db).await.len(), 5);
    })
    .await;
}

#[tokio::test]
async fn a_failed_fetch_of_the_next_page_keeps_the_page_applied_meanwhile() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 4);
        let knobs = Arc::new(ApplyKnobs::default());
        let source = ErpProducts::new(json_server_feed(&remote, 2), &knobs);
        // The first page answers; the second (asked for while the first is applied) fails.
        remote.push_fault(
            Fault::new(FaultKind::Status(503, json!({"error": "down"})))
                .method("GET")
                .path_contains("_page=2")
                .times(1),
        );
        let failed = run_source(&t.db, &source, &SourceRunOptions::new("worker-a")).await;
        assert!(failed.is_err(), "the failed fetch ends the run: {failed:?}");
        assert_eq!(
            products(&t.db)
                .await
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            vec![1, 2],
            "the first page committed"
        );
        // The next run starts after the first page: it asks for it again only within the
        // overlap window, and applies the rest.
        let next = run(&t.db, &source).await;
        assert_eq!(next.quarantined, 0, "{next:?}");
        assert_eq!(products(&t.db).await.len(), 4);
    })
    .await;
}

/// `erp.products` applying pages at once, slower than the remote: the apply of page `k` waits
/// (up to 10 s) until page `k + 1` has arrived, so that it is always there when page `k` is
/// done. Every page with records has one after it: the listing's size is a multiple of `size`.
struct SlowerThanTheRemote {
    inner: ErpProducts,
    size: usize,
    /// Pages that arrived.
    arrived: AtomicUsize,
    /// The apply of this page stalls forever (a worker stuck, then killed).
    stall_on: std::sync::Mutex<Option<usize>>,
    /// The pages given to `apply_many`, in order.
    applied: std::sync::Mutex<Vec<usize>>,
    /// Its `pages_per_commit`, however long they take (`commit_within` is a minute).
    pages_per_commit: AtomicUsize,
}

impl SlowerThanTheRemote {
    fn new(remote: &MockRemote, size: usize, knobs: &Arc<ApplyKnobs>) -> Self {
        knobs.batch.store(true, Ordering::SeqCst);
        SlowerThanTheRemote {
            inner: ErpProducts::new(json_server_feed(remote, size as u32), knobs),
            size,
            arrived: AtomicUsize::new(0),
            stall_on: std::sync::Mutex::new(None),
            applied: std::sync::Mutex::new(Vec::new()),
            pages_per_commit: AtomicUsize::new(1),
        }
    }

    fn applied(&self) -> Vec<usize> {
        self.applied.lock().unwrap().clone()
    }

    /// Commits up to `pages` pages together from now on.
    fn committing(&self, pages: usize) -> &Self {
        self.pages_per_commit.store(pages, Ordering::SeqCst);
        self
    }
}

#[sync_core::async_trait]
impl Source for SlowerThanTheRemote {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn pages_per_commit(&self) -> usize {
        self.pages_per_commit.load(Ordering::SeqCst)
    }

    fn commit_within(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn fetch(
        &self,
        cx: &FetchContext<'_>,
        cursor: Option<&serde_json::Value>,
    ) -> sync_core::Result<Page> {
        let page = self.inner.feed.fetch(cx, cursor).await;
        self.arrived.fetch_add(1, Ordering::SeqCst);
        page
    }

    async fn apply_many(
        &self,
        cx: &ApplyContext<'_>,
        records: &[&InboundRecord],
    ) -> Option<sync_core::Result<()>> {
        let first = records.first()?.data["id"].as_i64().unwrap_or_default() as usize;
        let page = (first - 1) / self.size + 1;
        self.applied.lock().unwrap().push(page);
        if *self.stall_on.lock().unwrap() == Some(page) {
            self.inner.knobs.stalled.notify_one();
            std::future::pending::<()>().await;
        }
        if !reaches(&self.arrived, page + 1).await {
            return Some(Err(sync_core::Error::permanent(format!(
                "page {} did not arrive while page {page} was applied",
                page + 1
            ))));
        }
        self.inner.apply_many(cx, records).await
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> sync_core::Result<()> {
        self.inner.apply(cx, record).await
    }
}

#[tokio::test]
async fn pages_that_arrive_while_one_is_applied_commit_together() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 12);
        let knobs = Arc::new(ApplyKnobs::default());
        let source = SlowerThanTheRemote::new(&remote, 2, &knobs);
        let options = SourceRunOptions::new("worker-a");
        let report = run_source(&t.db, source.committing(3), &options)
            .await
            .expect("source run");
        // Six pages of two and an empty seventh: pages 1-3, 4-6, then 7 by itself.
        assert_eq!(
            (report.pages, report.commits, report.applied, report.skipped),
            (7, 3, 12, 0),
            "{report:?}"
        );
        assert_eq!(source.applied(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            products(&t.db).await,
            (1..=12)
                .map(|id| (id, format!("P{id}"), i64::from(id) * 100, 1))
                .collect::<Vec<_>>()
        );
        // What they applied was recorded with them: a full run committing each page by itself
        // applies nothing again.
        let full = run_source(&t.db, source.committing(1), &options.full())
            .await
            .expect("full run");
        assert_eq!(
            (full.pages, full.commits, full.applied, full.skipped),
            (7, 7, 0, 12),
            "{full:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_worker_killed_inside_pages_committed_together_loses_and_duplicates_nothing() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 8);
        let knobs = Arc::new(ApplyKnobs::default());
        let source = Arc::new(SlowerThanTheRemote::new(&remote, 2, &knobs));
        // Two pages a commit: pages 1 and 2 commit together; the worker dies applying page 4,
        // with page 3 applied in the same open transaction.
        *source.stall_on.lock().unwrap() = Some(4);
        source.committing(2);
        let mut options = SourceRunOptions::new("worker-a");
        options.lease = Duration::from_millis(300);
        let doomed = {
            let (db, source, options) = (t.db.clone(), source.clone(), options.clone());
            tokio::spawn(async move { run_source(&db, &*source, &options).await })
        };
        knobs.stalled.notified().await;
        doomed.abort();
        let _ = doomed.await;
        assert_eq!(source.applied(), [1, 2, 3, 4]);
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(
            ids,
            [1, 2, 3, 4],
            "pages 1 and 2 committed with their cursor, page 3 not at all"
        );

        *source.stall_on.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_millis(350)).await;
        let mut takeover = SourceRunOptions::new("worker-b");
        takeover.lease = Duration::from_millis(300);
        let report = run_source(&t.db, &*source, &takeover).await.expect("run");
        assert_eq!((report.applied, report.quarantined), (4, 0), "{report:?}");
        assert_eq!(
            products(&t.db).await,
            (1..=8)
                .map(|id| (id, format!("P{id}"), i64::from(id) * 100, 1))
                .collect::<Vec<_>>()
        );
        assert_eq!(inbound_count(&t.db).await, 8, "one row a record");
    })
    .await;
}

#[tokio::test]
async fn a_record_failing_in_a_later_page_of_a_transaction_is_quarantined_alone() {
    on_each_backend(|t: TestDb| async move {
        let remote = MockRemote::start().await;
        put_products(&remote, 6);
        remote.put_record("products", "4", erp_product(4, "", 400, &at(4)));
        let knobs = Arc::new(ApplyKnobs::default());
        *knobs.refuse_name.lock().unwrap() = Some(String::new());
        let source = SlowerThanTheRemote::new(&remote, 2, &knobs);
        let options = SourceRunOptions::new("worker-a");
        let report = run_source(&t.db, source.committing(3), &options)
            .await
            .expect("source run");
        // Page 2 fails at once inside page 1's transaction: that transaction is rolled back,
        // page 1 applied again and committed by itself, page 2 applied record by record, and
        // page 3 (and the empty page 4) join page 2's transaction.
        assert_eq!(source.applied(), [1, 2, 1, 3]);
        assert_eq!(knobs.applies.load(Ordering::SeqCst), 2, "records 3 and 4");
        assert_eq!(
            (
                report.pages,
                report.commits,
                report.applied,
                report.quarantined
            ),
            (4, 2, 5, 1),
            "counted once each: {report:?}"
        );
        let ids: Vec<i32> = products(&t.db).await.iter().map(|p| p.0).collect();
        assert_eq!(ids, [1, 2, 3, 5, 6]);
        let row = inbound_row(&t.db, "4").await;
        assert_eq!(row.state, "quarantined");
        assert!(
            row.error
                .as_deref()
                .is_some_and(|e| e.contains("not known yet")),
            "{row:?}"
        );
    })
    .await;
}

/// A page's look-ups in `sync_inbound` (what was applied before, and in a full run the marks
/// of what it listed) find each remote id in the unique index: they do not read every record
/// of the source, which made each page slower as the source grew (PostgreSQL planned them as
/// a scan of the source's records).
#[tokio::test]
async fn a_pages_lookups_read_only_its_own_records_however_large_the_source() {
    on_each_backend(|t: TestDb| async move {
        if t.backend != sync_tests::Backend::Postgres {
            return;
        }
        // 20,000 records applied (then deleted) long ago: a full run does not act on them.
        t.db.execute_unprepared(
            "INSERT INTO sync_inbound (source, remote_id, digest, state, deleted, updated_at) \
             SELECT 'erp.products', 'old-' || g, 'x', 'applied', true, 0 \
             FROM generate_series(1, 20000) AS g",
        )
        .await
        .expect("seed");
        let remote = MockRemote::start().await;
        for id in 1..=600 {
            let modified = format!("2026-12-01T10:{:02}:{:02}.000Z", id / 60, id % 60);
            remote.put_record(
                "products",
                &id.to_string(),
                erp_product(id, &format!("P{id}"), id * 100, &modified),
            );
        }
        let knobs = Arc::new(ApplyKnobs::default());
        let source = ErpProducts::new(json_server_feed(&remote, 200), &knobs);
        let before = t.rows_read("sync_inbound", t.pool_apart(2).await).await;
        let db = t.pool_apart(2).await;
        let report = run_source(&db, &source, &SourceRunOptions::new("worker-a").full())
            .await
            .expect("source run");
        assert!(report.full, "{report:?}");
        assert_eq!(
            (report.pages, report.applied, report.deleted),
            (4, 600, 0),
            "{report:?}"
        );
        let read = t.rows_read("sync_inbound", db).await - before;
        // The full run's search for vanished records reads the source's records once; three
        // pages of 200 reading them all (for the digests, or to mark what the run listed) read
        // three times as many more.
        assert!(
            read < 40_000,
            "the run read {read} rows of sync_inbound for 600 records"
        );
    })
    .await;
}

/// `stock_items` as `(erp_id, name, price_cents, digest)`, by ERP id.
async fn stock(db: &DatabaseConnection) -> Vec<(i64, String, i64, Option<String>)> {
    stock_item::Entity::find()
        .order_by_asc(stock_item::Column::ErpId)
        .all(db)
        .await
        .expect("stock items")
        .into_iter()
        .map(|s| (s.erp_id, s.name, s.price_cents, s.erp_digest))
        .collect()
}

/// The `sync_inbound` rows of a source, as `(remote_id, state)`.
async fn inbound_rows(db: &DatabaseConnection, source: &str) -> Vec<(String, String)> {
    use sea_orm::{ColumnTrait, QueryFilter};
    sync_inbound::Entity::find()
        .filter(sync_inbound::Column::Source.eq(source))
        .order_by_asc(sync_inbound::Column::RemoteId)
        .all(db)
        .await
        .expect("sync_inbound")
        .into_iter()
        .map(|r| (r.remote_id, r.state))
        .collect()
}

#[tokio::test]
async fn digests_kept_in_the_applications_table_skip_unchanged_records_without_a_row_each() {
    on_each_backend(|t: TestDb| async move {
        // Keyed by an integer column, then (over the same table, emptied) by a text one.
        digests_in_the_table(&t, false).await;
        stock_item::Entity::delete_many()
            .exec(&t.db)
            .await
            .expect("empty stock_items");
        digests_in_the_table(&t, true).await;
    })
    .await;
}

async fn digests_in_the_table(t: &TestDb, by_sku: bool) {
    {
        let remote = MockRemote::start().await;
        put_products(&remote, 5);
        let knobs = Arc::new(ApplyKnobs::default());
        *knobs.refuse_name.lock().unwrap() = Some("P3".into());
        let source = ErpStock {
            feed: json_server_feed(&remote, 2),
            knobs: knobs.clone(),
            by_sku,
        };
        let name = source.name().to_owned();
        let options = SourceRunOptions::new("worker-a");
        // Rows of records applied before the source kept its digests in the table (and one
        // of another source): the source's go, the other stays.
        let other = format!("{name}.other");
        for (source, remote_id) in [(name.as_str(), "1"), (other.as_str(), "1")] {
            use sea_orm::{ActiveModelTrait, ActiveValue::Set};
            sync_inbound::ActiveModel {
                source: Set(source.to_owned()),
                remote_id: Set(remote_id.to_owned()),
                digest: Set("0".repeat(64)),
                state: Set("applied".into()),
                deleted: Set(false),
                attempts: Set(0),
                updated_at: Set(0),
                ..Default::default()
            }
            .insert(&t.db)
            .await
            .expect("an earlier row");
        }

        // The first run applies four records and quarantines the third: the rows carry the
        // digests, and the only row of the framework's is the quarantined record's.
        let first = run_source(&t.db, &source, &options).await.expect("run");
        assert_eq!(
            (first.fetched, first.applied, first.quarantined),
            (5, 4, 1),
            "{first:?}"
        );
        let rows = stock(&t.db).await;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(ids, [1, 2, 4, 5]);
        assert!(
            rows.iter()
                .all(|r| r.3.as_ref().is_some_and(|d| d.len() == 64)),
            "{rows:?}"
        );
        assert_eq!(
            inbound_rows(&t.db, &name).await,
            [("3".to_owned(), "quarantined".to_owned())]
        );
        assert_eq!(
            inbound_rows(&t.db, &other).await,
            [("1".to_owned(), "applied".to_owned())]
        );

        // A full run lists everything again: nothing unchanged is applied again (the
        // quarantined version neither), nothing vanished, and its marks are gone after it.
        let applies = knobs.applies.load(Ordering::SeqCst);
        let full = run_source(&t.db, &source, &SourceRunOptions::new("worker-a").full())
            .await
            .expect("full run");
        assert_eq!(
            (full.fetched, full.skipped, full.applied, full.vanished),
            (5, 5, 0, 0),
            "{full:?}"
        );
        // The quarantined record's retry (a 50 ms backoff) may have fallen due meanwhile: it
        // is applied once more, fails and is counted as quarantined again.
        assert!(full.quarantined <= 1, "{full:?}");
        assert_eq!(
            knobs.applies.load(Ordering::SeqCst),
            applies + full.quarantined as usize
        );
        assert_eq!(stock(&t.db).await, rows);
        assert_eq!(
            inbound_rows(&t.db, &name).await,
            [("3".to_owned(), "quarantined".to_owned())]
        );

        // The ERP changes record 2 and loses record 5; the category of P3 appears. The
        // quarantined record is revived from its payload (its row goes), the changed one
        // applied, the lost one deleted by the complete full run.
        *knobs.refuse_name.lock().unwrap() = None;
        remote.put_record("products", "2", erp_product(2, "P2 new", 250, &at(40)));
        assert!(remote.remove_record("products", "5"));
        // A plan of a full run says so, from the table's digests, and writes nothing.
        let plan = sync_core::source::plan_source(&t.db, &source, true, 100)
            .await
            .expect("plan");
        let actions: Vec<(&str, &str)> = plan
            .records
            .iter()
            .map(|r| (r.remote_id.as_str(), r.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("1", "unchanged"),
                ("3", "unchanged"),
                ("4", "unchanged"),
                ("2", "update")
            ],
            "{plan:?}"
        );
        assert_eq!(plan.vanished, ["5"], "{plan:?}");
        assert_eq!(stock(&t.db).await, rows);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let full = run_source(&t.db, &source, &SourceRunOptions::new("worker-a").full())
            .await
            .expect("full run");
        assert_eq!(
            (full.applied, full.skipped, full.revived, full.vanished),
            (2, 3, 1, 1),
            "{full:?}"
        );
        let rows = stock(&t.db).await;
        let now: Vec<(i64, &str, i64)> = rows.iter().map(|r| (r.0, r.1.as_str(), r.2)).collect();
        assert_eq!(
            now,
            [
                (1, "P1", 100),
                (2, "P2 new", 250),
                (3, "P3", 300),
                (4, "P4", 400)
            ]
        );
        assert!(rows.iter().all(|r| r.3.is_some()), "{rows:?}");
        assert_eq!(inbound_rows(&t.db, &name).await, []);

        // Pages applied at once write the digests too: a change is applied, the rest skipped.
        knobs.batch.store(true, Ordering::SeqCst);
        remote.put_record("products", "1", erp_product(1, "P1 new", 150, &at(50)));
        let again = run_source(&t.db, &source, &options).await.expect("run");
        assert_eq!(again.applied, 1, "{again:?}");
        assert_eq!(knobs.batches.load(Ordering::SeqCst), 1);
        let full = run_source(&t.db, &source, &SourceRunOptions::new("worker-a").full())
            .await
            .expect("full run");
        assert_eq!((full.applied, full.skipped), (0, 4), "{full:?}");
        assert_eq!(stock(&t.db).await[0].1, "P1 new");
    }
}

#[tokio::test]
async fn a_worker_refuses_a_mirrored_source_that_keeps_its_digests_in_the_table() {
    use sync_core::source::Sources;
    use sync_tests::syncers::{Knobs, registry};
    use sync_worker::{Worker, WorkerSettings};

    let t = TestDb::new(sync_tests::Backend::Sqlite).await;
    let remote = MockRemote::start().await;
    let knobs = Arc::new(Knobs::default());
    *knobs.contact_mirrored_by.lock().unwrap() = Some("erp.stock".into());
    let mut sources = Sources::new();
    sources
        .register(ErpStock {
            feed: json_server_feed(&remote, 2),
            knobs: Arc::new(ApplyKnobs::default()),
            by_sku: false,
        })
        .expect("register");
    let worker = Worker::new(
        t.db.clone(),
        registry(&remote.url(), &knobs),
        WorkerSettings::default(),
    )
    .expect("worker")
    .with_sources(sources);
    let error = worker
        .run_sources_once()
        .await
        .expect_err("a mirrored source without copies of what it applied");
    let message = error.to_string();
    assert!(
        message.contains("crm.contact")
            && message.contains("erp.stock")
            && message.contains("stock_items"),
        "{message}"
    );
    assert!(
        remote.requests().is_empty(),
        "nothing was fetched: {:?}",
        remote.requests()
    );
}

#[tokio::test]
async fn a_digest_column_missing_from_the_database_fails_the_run_naming_it() {
    let t = TestDb::new(sync_tests::Backend::Sqlite).await;
    t.db.execute_unprepared("ALTER TABLE stock_items DROP COLUMN erp_digest")
        .await
        .expect("drop the column");
    let remote = MockRemote::start().await;
    put_products(&remote, 3);
    let knobs = Arc::new(ApplyKnobs::default());
    let source = ErpStock {
        feed: json_server_feed(&remote, 2),
        knobs: knobs.clone(),
        by_sku: false,
    };
    let error = run_source(&t.db, &source, &SourceRunOptions::new("worker-a"))
        .await
        .expect_err("no digest column");
    let message = error.to_string();
    assert!(
        message.contains("erp.stock")
            && message.contains("`stock_items`.`erp_digest`")
            && message.contains("digest_column"),
        "{message}"
    );
    // Nothing was applied and the cursor did not move; the failure is on record.
    assert_eq!(knobs.applies.load(Ordering::SeqCst), 0);
    let rows =
        t.db.query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT erp_id FROM stock_items",
        ))
        .await
        .expect("rows");
    assert!(rows.is_empty(), "{} rows written", rows.len());
    let row = sync_source::Entity::find_by_id("erp.stock")
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    assert!(row.next_cursor.is_none(), "{row:?}");
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("erp_digest")),
        "{row:?}"
    );
}
