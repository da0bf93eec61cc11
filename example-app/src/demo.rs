//! `example-app demo`: the story of the README, driven through the app's HTTP API against two
//! mock remotes, with a worker running in the same process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};
use sync_core::entity::{sync_attempt, sync_group};
use sync_core::{ClaimedGroup, EngineConfig, Registry, TranslateContext};
use sync_worker::testing::{MockRemote, RecordedRequest};
use sync_worker::{Worker, WorkerSettings};

use crate::migration::Migrator;
use crate::{api, syncers};

/// What the demo found.
#[derive(Debug, Default)]
pub struct DemoReport {
    /// Each expectation and whether it held.
    pub checks: Vec<(String, bool)>,
    /// Differences between the remotes and the translation of the local data.
    pub mismatches: Vec<String>,
    /// Requests each remote received.
    pub requests: BTreeMap<&'static str, usize>,
    /// Attempts skipped because the remote already held the payload.
    pub skipped: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl DemoReport {
    /// Every expectation held and the remotes match the local data.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.checks.iter().all(|(_, ok)| *ok)
    }
}

struct Demo {
    http: reqwest::Client,
    app: String,
    db: DatabaseConnection,
    erp: MockRemote,
    crm: MockRemote,
    seen: (usize, usize),
    report: DemoReport,
}

/// Runs the story on `database_url` (a fresh temporary SQLite file when `None`) and prints it.
pub async fn run(database_url: Option<String>) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display()));
    let db = sync_core::connect(&url, 8).await?;
    Migrator::up(&db, None)
        .await
        .context("running the migrations")?;

    let erp = MockRemote::start().await;
    let crm = MockRemote::start().await;
    let registry = syncers::registry(&format!("{}/api", erp.url()), &format!("{}/api", crm.url()))?;
    let worker = start_worker(db.clone(), registry.clone())?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(axum::serve(listener, api::app(db.clone())).into_future());

    println!("seaorm-sync demo");
    println!("  app  {app}   (SQLite: {})", sync_core::redact_url(&url));
    println!(
        "  ERP  {}/api   CRM  {}/api   (mock remotes that store what they receive)",
        erp.url(),
        crm.url()
    );
    println!("  one worker in this process\n");

    let mut demo = Demo {
        http: reqwest::Client::new(),
        app,
        db: db.clone(),
        erp,
        crm,
        seen: (0, 0),
        report: DemoReport::default(),
    };
    let outcome = demo.story().await;
    let consistency = demo.check_consistency(&registry).await;
    worker.0.send(()).ok();
    let _ = worker.1.await;
    server.abort();
    outcome?;
    consistency?;

    let mut report = demo.report;
    report.requests.insert("ERP", demo.erp.requests().len());
    report.requests.insert("CRM", demo.crm.requests().len());
    report.skipped = sync_attempt::Entity::find()
        .filter(sync_attempt::Column::Outcome.eq("skipped"))
        .count(&db)
        .await?;
    report.elapsed = started.elapsed();
    print_summary(&report);
    Ok(report)
}

type RunningWorker = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<sync_worker::Result<()>>,
);

fn start_worker(db: DatabaseConnection, registry: Registry) -> anyhow::Result<RunningWorker> {
    let mut engine = EngineConfig::default();
    engine.worker_id = "demo-worker".into();
    engine.concurrency = 8;
    engine.lease = Duration::from_secs(30);
    engine.push_timeout = Duration::from_secs(10);
    engine.not_ready_delay = Duration::from_millis(300);
    let mut settings = WorkerSettings::default();
    settings.engine = engine;
    settings.poll_interval = Duration::from_millis(200);
    // Let bursts of edits settle a little before claiming: more coalescing, still quick.
    settings.wake_delay = Duration::from_millis(150);
    let worker = Worker::new(db, registry, settings)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    Ok((stop, handle))
}

impl Demo {
    async fn story(&mut self) -> anyhow::Result<()> {
        // a. A customer, with an address.
        self.step("Create customer Ada (with an address in Paris)");
        let ada = self
            .call("POST", "/customers", json!({"name": "Ada Lovelace", "email": "ada@example.com", "addresses": [{"street": "1 Rue de Rivoli", "city": "Paris"}]}))
            .await?;
        let ada_id = id(&ada)?;
        self.settle().await?;
        let (erp, crm) = self.since_last_step();
        self.expect(
            "one create in the ERP",
            count(&erp, "POST", "/api/customers") == 1 && erp.len() == 1,
        );
        self.expect(
            "one create in the CRM",
            count(&crm, "POST", "/api/contacts") == 1 && crm.len() == 1,
        );

        // b. An order for a customer the ERP does not know yet.
        self.step("Create customer Bob and, at once, an order for him");
        let mut hold = self.erp.hold(Some("/api/customers"));
        let bob = self.call("POST", "/customers", json!({"name": "Bob Stone", "email": "bob@example.com", "addresses": [{"street": "2 High St", "city": "London"}]})).await?;
        let bob_id = id(&bob)?;
        let order = self
            .call("POST", "/orders", json!({
                "customer_id": bob_id, "reference": "SO-1001",
                "lines": [{"sku": "TEA-01", "quantity": 2, "unit_price_cents": 450}, {"sku": "CUP-02", "quantity": 1, "unit_price_cents": 1200}],
                "billing": {"company": "Stone Ltd", "vat_id": "GB123", "address": "2 High St, London"},
            }))
            .await?;
        let order_id = id(&order)?;
        hold.arrived(1).await;
        let waiting = self.wait_for_deferral(order_id).await?;
        println!("    the ERP is still creating Bob; the order waits: {waiting}");
        hold.release();
        self.settle().await?;
        let (erp, _) = self.since_last_step();
        let orders: Vec<&RecordedRequest> = erp
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/api/sales_orders")
            .collect();
        let bob_erp_id = self.remote_id("erp.customer", bob_id).await?;
        self.expect(
            "the order was not pushed before its customer",
            erp.iter()
                .position(|r| r.path == "/api/customers")
                .unwrap_or(usize::MAX)
                < erp
                    .iter()
                    .position(|r| r.path == "/api/sales_orders")
                    .unwrap_or(0),
        );
        self.expect(
            "then exactly one create of the sales order",
            orders.len() == 1,
        );
        self.expect(
            &format!("carrying Bob's ERP id ({bob_erp_id})"),
            orders
                .first()
                .and_then(|r| r.body.as_ref())
                .map(|b| b["customer_id"].clone())
                == Some(json!(bob_erp_id)),
        );

        // c. A watched field.
        self.step("Change Ada's phone (watched by the ERP only)");
        self.call(
            "PATCH",
            &format!("/customers/{ada_id}"),
            json!({"phone": "+33 1 23 45 67 89"}),
        )
        .await?;
        self.settle().await?;
        let (erp, crm) = self.since_last_step();
        self.expect(
            "one update in the ERP",
            erp.len() == 1 && count(&erp, "PUT", "/api/customers/") == 1,
        );
        self.expect("nothing in the CRM", crm.is_empty());

        // d. An unwatched field.
        self.step("Change Ada's internal note (watched by nobody)");
        self.call(
            "PATCH",
            &format!("/customers/{ada_id}"),
            json!({"internal_note": "prefers email"}),
        )
        .await?;
        self.settle().await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (erp, crm) = self.since_last_step();
        self.expect("no push at all", erp.is_empty() && crm.is_empty());

        // e. A dependent of the sales order.
        self.step("Change a line item of SO-1001 (quantity 2 → 3)");
        let line_id = order["lines"][0]["id"]
            .as_i64()
            .context("the order's first line id")?;
        self.call(
            "PATCH",
            &format!("/line_items/{line_id}"),
            json!({"quantity": 3}),
        )
        .await?;
        self.settle().await?;
        let (erp, _) = self.since_last_step();
        let puts: Vec<&RecordedRequest> = erp
            .iter()
            .filter(|r| r.method == "PUT" && r.path.starts_with("/api/sales_orders/"))
            .collect();
        self.expect(
            "the sales order is re-pushed once",
            puts.len() == 1 && erp.len() == 1,
        );
        self.expect(
            "with the new total (3 × 4.50 + 12.00)",
            puts.first()
                .and_then(|r| r.body.as_ref())
                .map(|b| b["total_cents"].clone())
                == Some(json!(2550)),
        );

        // f. A burst of edits.
        self.step("Rename Ada 50 times, as fast as the API allows");
        for i in 1..=50 {
            self.call(
                "PATCH",
                &format!("/customers/{ada_id}"),
                json!({"name": format!("Ada Lovelace {i}")}),
            )
            .await?;
        }
        self.settle().await?;
        let (erp, crm) = self.since_last_step();
        println!(
            "    50 edits → {} push(es) to the ERP, {} to the CRM",
            erp.len(),
            crm.len()
        );
        self.expect(
            "coalesced into a few pushes per remote (≤ 5)",
            (1..=5).contains(&erp.len()) && (1..=5).contains(&crm.len()),
        );
        let erp_id = self.remote_id("erp.customer", ada_id).await?;
        let last = self
            .erp
            .record("api/customers", &erp_id)
            .map(|r| r["name"].clone());
        self.expect(
            "the ERP holds the last name",
            last == Some(json!("Ada Lovelace 50")),
        );

        // g. A move between roots.
        self.step("Move Ada's Paris address to Bob");
        let address_id = ada["addresses"][0]["id"]
            .as_i64()
            .context("Ada's address id")?;
        self.call(
            "PATCH",
            &format!("/addresses/{address_id}"),
            json!({"customer_id": bob_id}),
        )
        .await?;
        self.settle().await?;
        let (erp, crm) = self.since_last_step();
        let ada_erp = self.remote_id("erp.customer", ada_id).await?;
        let bob_crm = self.remote_id("crm.contact", bob_id).await?;
        let ada_crm = self.remote_id("crm.contact", ada_id).await?;
        self.expect(
            "both customers re-pushed to the ERP",
            erp.len() == 2
                && count(&erp, "PUT", &format!("/api/customers/{ada_erp}")) == 1
                && count(&erp, "PUT", &format!("/api/customers/{bob_erp_id}")) == 1,
        );
        self.expect(
            "both contacts re-pushed to the CRM",
            crm.len() == 2
                && count(&crm, "PUT", &format!("/api/contacts/{ada_crm}")) == 1
                && count(&crm, "PUT", &format!("/api/contacts/{bob_crm}")) == 1,
        );

        // h. A delete.
        self.step("Delete order SO-1001 (with its line items and billing info)");
        let order_erp_id = self.remote_id("erp.sales_order", order_id).await?;
        self.call("DELETE", &format!("/orders/{order_id}"), Value::Null)
            .await?;
        self.settle().await?;
        let (erp, crm) = self.since_last_step();
        self.expect(
            "exactly one remote delete",
            erp.len() == 1
                && count(&erp, "DELETE", &format!("/api/sales_orders/{order_erp_id}")) == 1
                && crm.is_empty(),
        );
        Ok(())
    }

    fn step(&mut self, title: &str) {
        self.seen = (self.erp.requests().len(), self.crm.requests().len());
        println!("▶ {title}");
    }

    fn expect(&mut self, what: &str, ok: bool) {
        println!("    {} {what}", if ok { "✓" } else { "✗" });
        self.report.checks.push((what.to_owned(), ok));
    }

    /// The requests each remote received since the step began, printed.
    fn since_last_step(&self) -> (Vec<RecordedRequest>, Vec<RecordedRequest>) {
        let erp: Vec<RecordedRequest> = self.erp.requests().into_iter().skip(self.seen.0).collect();
        let crm: Vec<RecordedRequest> = self.crm.requests().into_iter().skip(self.seen.1).collect();
        for (remote, requests) in [("ERP", &erp), ("CRM", &crm)] {
            for r in requests.iter() {
                let body = r.body.as_ref().map(short).unwrap_or_default();
                println!(
                    "    {remote} ← {} {} {body} → {}",
                    r.method, r.path, r.status
                );
            }
        }
        (erp, crm)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.app));
        if body != Value::Null {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Waits until no group is dirty, due or leased.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let busy = sync_group::Entity::find()
                .filter(
                    sync_group::Column::State
                        .is_in(["pending", "failed"])
                        .or(sync_group::Column::LeaseOwner.is_not_null()),
                )
                .count(&self.db)
                .await?;
            if busy == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the worker did not catch up within 20 s ({busy} group(s) still pending)");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_for_deferral(&self, order_id: i64) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let group = self.group("erp.sales_order", order_id).await?;
            if group.deferrals > 0 {
                return Ok(group.last_error.unwrap_or_default());
            }
            if Instant::now() > deadline {
                bail!("the order was never deferred");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn group(&self, syncer: &str, key: i64) -> anyhow::Result<sync_group::Model> {
        sync_group::Entity::find()
            .filter(sync_group::Column::Syncer.eq(syncer))
            .filter(sync_group::Column::RootKey.eq(key.to_string()))
            .one(&self.db)
            .await?
            .with_context(|| format!("no `{syncer}` group for {key}"))
    }

    async fn remote_id(&self, syncer: &str, key: i64) -> anyhow::Result<String> {
        self.group(syncer, key)
            .await?
            .remote_id
            .with_context(|| format!("`{syncer}` group {key} has no remote id"))
    }

    /// Compares every group's remote record with the translation of the local data.
    async fn check_consistency(&mut self, registry: &Registry) -> anyhow::Result<()> {
        println!("▶ Check: every remote record equals the translation of the local data");
        let groups = sync_group::Entity::find().all(&self.db).await?;
        for row in &groups {
            let syncer = registry
                .get(&row.syncer)
                .with_context(|| format!("no syncer `{}`", row.syncer))?;
            let (remote, collection) = match row.syncer.as_str() {
                "erp.customer" => (&self.erp, "api/customers"),
                "crm.contact" => (&self.crm, "api/contacts"),
                _ => (&self.erp, "api/sales_orders"),
            };
            let claimed = ClaimedGroup::unclaimed(row);
            let expected = syncer
                .translate(&TranslateContext::new(&self.db, &claimed))
                .await?;
            let actual = row
                .remote_id
                .as_deref()
                .and_then(|id| remote.record(collection, id))
                .map(|mut r| {
                    if let Value::Object(map) = &mut r {
                        map.remove("id");
                    }
                    r
                });
            let label = format!("{} {}", row.syncer, row.root_key);
            match (expected, actual) {
                (Some(e), Some(a)) if e == a => {}
                (None, None) => {}
                (e, a) => self.report.mismatches.push(format!(
                    "{label}: local {} / remote {}",
                    opt(e),
                    opt(a)
                )),
            }
            if row.version != row.synced_version {
                self.report.mismatches.push(format!(
                    "{label}: still dirty ({} > {})",
                    row.version, row.synced_version
                ));
            }
        }
        let ok = self.report.mismatches.is_empty();
        for m in &self.report.mismatches {
            println!("    ✗ {m}");
        }
        self.expect(
            &format!("{} groups checked, remotes equal local state", groups.len()),
            ok,
        );
        Ok(())
    }
}

fn id(value: &Value) -> anyhow::Result<i64> {
    value["id"]
        .as_i64()
        .with_context(|| format!("no id in {value}"))
}

fn count(requests: &[RecordedRequest], method: &str, path_prefix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(path_prefix))
        .count()
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(90) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

fn opt(value: Option<Value>) -> String {
    value.map_or("absent".into(), |v| short(&v))
}

fn print_summary(report: &DemoReport) {
    let passed = report.checks.iter().filter(|(_, ok)| *ok).count();
    println!();
    println!("Summary");
    println!("  expectations   {passed}/{} held", report.checks.len());
    for (remote, n) in &report.requests {
        println!("  {remote} received {n} request(s)");
    }
    println!("  skipped by digest  {}", report.skipped);
    println!("  time           {:.1} s", report.elapsed.as_secs_f64());
    println!(
        "  result         {}",
        if report.passed() { "PASS" } else { "FAIL" }
    );
}
