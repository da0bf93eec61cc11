//! Coalescing versus per-change jobs: see `run`.
//!
//! One workload — `--edits` edits (default 10,000) over `--groups` customers (default 1,000),
//! 80% of the edits on the hottest 20% of the customers — goes through three consumers, each
//! against its own loopback remote that counts requests and keeps the last name it received per
//! customer:
//!
//! - the framework: `customers` (a `#[derive(Syncable)]` model) and an in-process
//!   `sync_worker::Worker`;
//! - one job per change: each edit enqueues an apalis-postgres job in its own transaction (a
//!   transactional outbox), and an apalis worker pushes the row as it is when the job runs;
//! - cron: every 100 ms, push every row whose `updated_at` is newer than the last run.
//!
//! All three start from the same state (every customer on the remote, the initial creates not
//! counted), run the same edits from one writer at full speed while the consumer runs, and are
//! timed until the remote holds every customer's final name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{
    BackendExt, BoxDynError, Data, TaskBuilder, WorkerBuilder, WorkerBuilderExt,
};
use apalis_postgres::{Config, PostgresStorage};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::prelude::ChronoDateTimeUtc;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::sqlx::{self, AssertSqlSafe, PgPool};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use sync_tests::models::customer;
use sync_tests::{Backend, TestDb};

/// The workload's seed: every run, and every strategy within a run, edits in the same order.
const SEED: u64 = 0x00C0_A1E5;
/// Share of the edits that go to the hot customers, and share of customers that are hot.
const HOT_EDITS: f64 = 0.8;
const HOT_CUSTOMERS: usize = 5; // one in five
/// Pushes in flight at once, for every consumer (the framework's `engine_config` uses 32 too).
const IN_FLIGHT: usize = 32;
/// Connections of each consumer's pool (the worker binary's default `SYNC_POOL_SIZE`).
const CONSUMER_POOL: u32 = 16;
/// Connections of the writer's pool (as `TestDb`'s).
const WRITER_POOL: u32 = 5;
/// After the writer is done, how long the remote may take to hold every final name.
const TIMEOUT: Duration = Duration::from_secs(120);
/// After that, how long a consumer may take to finish what it still has in hand.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const CRON_PERIOD: Duration = Duration::from_millis(100);

/// `sync-bench coalescing`: 10,000 edits over 1,000 groups through the framework, one
/// apalis-postgres job per change, and the cron pattern.
pub(crate) async fn run(args: &[String]) {
    let number = |name: &str, default: usize| {
        super::flag(args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let edits = number("--edits", 10_000);
    let groups = number("--groups", 1_000).clamp(1, i32::MAX as usize);
    let workload = Workload::generate(edits, groups);

    println!(
        "coalescing on PostgreSQL: {edits} edits over {groups} customers, {:.0}% of them on the {} hot ones \
         ({} customers edited, the busiest {} times), seed {SEED:#x}",
        HOT_EDITS * 100.0,
        workload.hot,
        workload.edited(),
        workload.busiest(),
    );
    println!(
        "one writer at full speed, each edit its own committed transaction; {IN_FLIGHT} pushes in flight; \
         remote on loopback answering at once"
    );
    println!(
        "requests are counted from the first edit (the initial creates are not); wall time runs from the first \
         edit until the remote holds every final name"
    );

    for backlog in [false, true] {
        // A fresh schema for each mode.
        let t = super::fresh(Backend::Postgres).await;
        report(&t, &workload, backlog, edits, groups).await;
        t.cleanup_handle().run().await;
    }
}

/// Runs the three strategies, the consumers running during the edits (`live`) or started after
/// them (`backlog`: a worker that was down, behind, or deploying), and prints the table.
async fn report(t: &TestDb, workload: &Workload, backlog: bool, edits: usize, groups: usize) {
    let mode = if backlog {
        "backlog: the consumer starts after the last edit"
    } else {
        "live: the consumer runs during the edits"
    };
    println!("\n{mode}");
    let results = [
        framework(t, workload, backlog).await,
        per_change_jobs(t, workload, backlog).await,
        cron(t, workload, backlog).await,
    ];

    println!(
        "{:<28} {:>9} {:>10} {:>9} {:>9}  final state correct",
        "strategy", "requests", "writer ms", "wall ms", "req/edit"
    );
    for r in &results {
        let wall = r.wall.map_or_else(
            || format!("> {}", (r.writer + TIMEOUT).as_millis()),
            |w| w.as_millis().to_string(),
        );
        let state = match (r.wrong, r.wall) {
            (0, Some(_)) => "yes".to_owned(),
            (0, None) => "yes, but only after the timeout".to_owned(),
            (n, _) => format!("{n} of {groups} wrong"),
        };
        println!(
            "{:<28} {:>9} {:>10} {:>9} {:>9.3}  {state}",
            r.strategy,
            r.requests,
            r.writer.as_millis(),
            wall,
            r.requests as f64 / edits.max(1) as f64,
        );
    }
    let (framework, jobs) = (&results[0], &results[1]);
    let ratio = framework.requests as f64 / jobs.requests.max(1) as f64;
    let fewer = if framework.requests == 0 {
        String::new()
    } else {
        format!(" ({:.1}x fewer)", 1.0 / ratio)
    };
    println!("framework requests / per-change-job requests = {ratio:.4}{fewer}");
}

// ---------------------------------------------------------------------------------------------
// Workload

/// The edits, in order, and the name every customer ends with.
#[derive(Debug)]
struct Workload {
    /// Customers `1..=groups`.
    groups: usize,
    /// Customers `1..=hot` are hot.
    hot: usize,
    /// `(customer id, new name)`.
    edits: Vec<(i32, String)>,
    /// Edits per customer, index `id - 1`.
    counts: Vec<u32>,
}

impl Workload {
    fn generate(edits: usize, groups: usize) -> Workload {
        let mut rng = StdRng::seed_from_u64(SEED);
        let hot = (groups / HOT_CUSTOMERS).max(1);
        let mut counts = vec![0u32; groups];
        let mut list = Vec::with_capacity(edits);
        for _ in 0..edits {
            let index = if hot == groups || rng.random_bool(HOT_EDITS) {
                rng.random_range(0..hot)
            } else {
                rng.random_range(hot..groups)
            };
            counts[index] += 1;
            let id = customer_id(index);
            list.push((id, name(id, counts[index])));
        }
        Workload {
            groups,
            hot,
            edits: list,
            counts,
        }
    }

    fn ids(&self) -> impl Iterator<Item = i32> + use<> {
        (0..self.groups).map(customer_id)
    }

    /// Every customer's name before the first edit.
    fn initial_names(&self) -> Vec<String> {
        self.ids().map(|id| name(id, 0)).collect()
    }

    /// Every customer's name after the last edit.
    fn final_names(&self) -> Vec<String> {
        self.ids()
            .zip(&self.counts)
            .map(|(id, &n)| name(id, n))
            .collect()
    }

    fn edited(&self) -> usize {
        self.counts.iter().filter(|&&n| n > 0).count()
    }

    fn busiest(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(0)
    }
}

fn customer_id(index: usize) -> i32 {
    i32::try_from(index + 1).expect("customer ids fit in an i32")
}

/// `c{id} v{n}`: the remote keys what it receives by the `c{id}` prefix.
fn name(id: i32, n: u32) -> String {
    format!("c{id} v{n}")
}

fn email(id: i32) -> String {
    format!("c{id}@example.com")
}

/// What one strategy did.
#[derive(Debug)]
struct Outcome {
    strategy: &'static str,
    /// Remote requests from the first edit until the consumer had nothing left.
    requests: u64,
    /// How long the writer took for all the edits.
    writer: Duration,
    /// From the first edit until the remote held every final name; `None` after the timeout.
    wall: Option<Duration>,
    /// Customers whose name on the remote differs from the database's once the consumer is idle.
    wrong: usize,
}

// ---------------------------------------------------------------------------------------------
// Remote

/// What the remote saw. Written by its request handlers, read by the benchmark.
#[derive(Debug, Default)]
struct Received {
    requests: AtomicU64,
    next_id: AtomicU64,
    /// The last name received per customer id.
    names: Mutex<HashMap<i32, String>>,
}

impl Received {
    fn record(&self, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let Some(name) = body["name"].as_str() else {
            return;
        };
        let Some(id) = name
            .strip_prefix('c')
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(id, _)| id.parse().ok())
        else {
            return;
        };
        self.names.lock().unwrap().insert(id, name.to_owned());
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Customers (`expected[i]` is customer `i + 1`'s name) whose last received name differs.
    fn wrong(&self, expected: &[String]) -> usize {
        let names = self.names.lock().unwrap();
        expected
            .iter()
            .enumerate()
            .filter(|&(i, want)| names.get(&customer_id(i)) != Some(want))
            .count()
    }
}

/// A loopback remote shaped like the one `BenchSyncer` talks to: `POST /erp/customers` →
/// `{"id": n}`, `PUT /erp/customers/{id}` → 200. Every request is counted.
#[derive(Debug)]
struct Remote {
    url: String,
    received: Arc<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl Remote {
    async fn start() -> Remote {
        async fn create(State(r): State<Arc<Received>>, body: Bytes) -> axum::Json<Value> {
            r.record(&body);
            axum::Json(json!({"id": r.next_id.fetch_add(1, Ordering::Relaxed) + 1}))
        }
        async fn replace(State(r): State<Arc<Received>>, body: Bytes) -> &'static str {
            r.record(&body);
            "{}"
        }
        async fn other(State(r): State<Arc<Received>>) -> StatusCode {
            r.requests.fetch_add(1, Ordering::Relaxed);
            StatusCode::NOT_FOUND
        }
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/erp/customers", post(create))
            .route("/erp/customers/{id}", put(replace))
            .fallback(other)
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Remote {
            url,
            received,
            server,
        }
    }

    /// Waits until the remote holds `expected`, for at most `limit` after `start`; returns the
    /// time from `start`, or `None` on timeout.
    async fn converge(
        &self,
        expected: &[String],
        start: Instant,
        limit: Duration,
    ) -> Option<Duration> {
        loop {
            if self.received.wrong(expected) == 0 {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn http_client() -> reqwest::Client {
    // As `bench_registry` builds the framework's.
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// Polls `check` until it returns true, for at most `limit`.
async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A. The framework

async fn framework(t: &TestDb, w: &Workload, backlog: bool) -> Outcome {
    let remote = Remote::start().await;
    let count_dirty = || async {
        let row =
            t.db.query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM sync_groups \
                 WHERE syncer = 'erp.customer' AND state IN ('pending', 'failed')",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };

    // The customers, through the model so that the hooks register their `erp.customer` groups.
    let txn = sync_core::begin_write(&t.db).await.unwrap();
    for id in w.ids() {
        customer::ActiveModel {
            id: Set(id),
            name: Set(name(id, 0)),
            email: Set(email(id)),
            phone: Set(None),
            notes: Set(String::new()),
            deleted_at: Set(None),
        }
        .insert(&txn)
        .await
        .unwrap();
    }
    sea_orm::TransactionSession::commit(txn).await.unwrap();

    // The worker as `bench_worker` runs it, in process on its own pool; it creates every customer on the
    // remote before the edits start.
    let pool = sync_core::connect(&t.url, CONSUMER_POOL).await.unwrap();
    let start_worker = || {
        let mut settings = sync_worker::WorkerSettings::default();
        settings.engine = super::engine_config("coalesce");
        settings.poll_interval = Duration::from_millis(50);
        let worker =
            sync_worker::Worker::new(pool.clone(), super::bench_registry(&remote.url), settings)
                .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let consumer = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));
        (stop, consumer)
    };
    let mut running = Some(start_worker());
    remote
        .converge(&w.initial_names(), Instant::now(), TIMEOUT)
        .await
        .expect("the framework creates every customer on the remote");
    assert!(
        wait_for(DRAIN_TIMEOUT, || async { count_dirty().await == 0 }).await,
        "the framework's initial sync finishes"
    );

    if backlog && let Some((stop, consumer)) = running.take() {
        let _ = stop.send(());
        consumer.await.unwrap().unwrap();
    }
    let baseline = remote.received.requests();
    let start = Instant::now();
    for (id, new_name) in &w.edits {
        let txn = sync_core::begin_write(&t.db).await.unwrap();
        customer::ActiveModel {
            id: Unchanged(*id),
            name: Set(new_name.clone()),
            ..Default::default()
        }
        .update(&txn)
        .await
        .unwrap();
        sea_orm::TransactionSession::commit(txn).await.unwrap();
    }
    let writer = start.elapsed();
    if running.is_none() {
        running = Some(start_worker());
    }
    let (stop, consumer) = running.expect("a worker runs");
    let wall = remote
        .converge(&w.final_names(), start, writer + TIMEOUT)
        .await;

    // Let it finish what it claimed or still finds dirty, then stop it.
    wait_for(DRAIN_TIMEOUT, || async { count_dirty().await == 0 }).await;
    let _ = stop.send(());
    consumer.await.unwrap().unwrap();

    let rows =
        t.db.query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id, name FROM customers ORDER BY id",
        ))
        .await
        .unwrap();
    let stored = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    finish(
        "framework (sync-worker)",
        &remote,
        w,
        baseline,
        writer,
        wall,
        stored,
    )
}

/// Checks the database against the workload and the remote against the database.
fn finish(
    strategy: &'static str,
    remote: &Remote,
    w: &Workload,
    baseline: u64,
    writer: Duration,
    wall: Option<Duration>,
    stored: Vec<String>,
) -> Outcome {
    assert_eq!(
        stored,
        w.final_names(),
        "{strategy}: the database holds the workload's final names"
    );
    Outcome {
        strategy,
        requests: remote.received.requests() - baseline,
        writer,
        wall,
        wrong: remote.received.wrong(&stored),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by the two alternatives

/// A sqlx pool on the test schema, with `public` behind it (where apalis-postgres' `hstore` type
/// lives).
async fn sqlx_pool(t: &TestDb, size: u32) -> PgPool {
    assert!(
        t.url.contains("search_path%3D"),
        "TestDb sets the schema in the URL"
    );
    PgPoolOptions::new()
        .max_connections(size)
        .connect(&format!("{}%2Cpublic", t.url))
        .await
        .unwrap()
}

/// The test schema's name, unique per run.
fn schema(t: &TestDb) -> &str {
    t.url.rsplit("search_path%3D").next().unwrap()
}

/// A plain table `table (id, name, email[, extra])` holding the workload's customers.
async fn plain_table(pool: &PgPool, table: &str, extra: &str, w: &Workload) {
    // `table` and `extra` are literals of this file.
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL{extra})"
    )))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (id, name, email) \
         SELECT g, 'c' || g || ' v0', 'c' || g || '@example.com' FROM generate_series(1, $1) g"
    )))
    .bind(i32::try_from(w.groups).unwrap())
    .execute(pool)
    .await
    .unwrap();
}

async fn read_names(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT name FROM {table} ORDER BY id"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Pushes a customer's row to the remote, with the same payload as `BenchSyncer`.
#[derive(Debug)]
struct Pusher {
    client: reqwest::Client,
    url: String,
    /// The remote's id of customer `i + 1`.
    remote_ids: Vec<u64>,
}

impl Pusher {
    /// Creates every customer on the remote (not counted), as the framework's initial sync does.
    async fn create_all(remote: &Remote, w: &Workload) -> Pusher {
        let client = http_client();
        let url = format!("{}/erp/customers", remote.url);
        let mut remote_ids = futures::stream::iter(w.ids())
            .map(|id| {
                let (client, url) = (&client, &url);
                async move {
                    let answer: Value = client
                        .post(url)
                        .json(&json!({"name": name(id, 0), "email": email(id)}))
                        .send()
                        .await
                        .unwrap()
                        .error_for_status()
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    (id, answer["id"].as_u64().unwrap())
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        remote_ids.sort_unstable();
        Pusher {
            client,
            url,
            remote_ids: remote_ids.into_iter().map(|(_, remote)| remote).collect(),
        }
    }

    async fn put(&self, id: i32, name: &str, email: &str) -> Result<(), reqwest::Error> {
        let remote_id = self.remote_ids[usize::try_from(id - 1).unwrap()];
        self.client
            .put(format!("{}/{remote_id}", self.url))
            .json(&json!({"name": name, "email": email}))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// B. One apalis-postgres job per change

/// Creates the `apalis` schema if missing. apalis-postgres keeps its tables in the `apalis`
/// schema, shared by the whole database; its migrations `CREATE EXTENSION hstore` in the first
/// schema of the search path, so they run on the plain URL (`public`), never in the per-run
/// schema, which is dropped at the end.
async fn apalis_setup() {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&super::pg_url())
        .await
        .unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public")
        .execute(&admin)
        .await
        .unwrap();
    PostgresStorage::<()>::setup(&admin).await.unwrap();
    admin.close().await;
}

/// What the job handler needs.
#[derive(Debug)]
struct JobContext {
    pool: PgPool,
    pusher: Pusher,
}

/// The job: read the customer as it is now and push it. Reading at run time (rather than
/// carrying the new name in the job) is what makes the last job to run push the final state
/// however the jobs are ordered.
async fn push_customer(customer_id: i32, cx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let (name, email): (String, String) =
        sqlx::query_as("SELECT name, email FROM job_customers WHERE id = $1")
            .bind(customer_id)
            .fetch_one(&cx.pool)
            .await?;
    cx.pusher.put(customer_id, &name, &email).await?;
    Ok(())
}

async fn per_change_jobs(t: &TestDb, w: &Workload, backlog: bool) -> Outcome {
    apalis_setup().await;
    let remote = Remote::start().await;
    let writer_pool = sqlx_pool(t, WRITER_POOL).await;
    let consumer_pool = sqlx_pool(t, CONSUMER_POOL).await;
    plain_table(&writer_pool, "job_customers", "", w).await;
    // A queue and worker name of this run's own: the `apalis` schema is shared.
    let queue = format!("coalesce-{}", schema(t));
    let pusher = Pusher::create_all(&remote, w).await;

    let backend = PostgresStorage::<i32>::new(&consumer_pool)
        .with_config(Config::default().queue(&queue).batch_size(2 * IN_FLIGHT))
        // Woken by LISTEN/NOTIFY on insert, and polling every 50 ms besides, as the framework.
        .with_pubsub()
        .poll_with_interval(Duration::from_millis(50));
    let worker = WorkerBuilder::new(queue.as_str())
        .backend(backend)
        .data(Arc::new(JobContext {
            pool: consumer_pool.clone(),
            pusher,
        }))
        .concurrency(IN_FLIGHT)
        .build(push_customer);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut waiting = Some(worker.run_until(async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    }));
    let mut consumer = None;
    if !backlog {
        consumer = waiting.take().map(tokio::spawn);
    }
    let unfinished = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 \
             AND (status IN ('Pending', 'Queued', 'Running') OR (status = 'Failed' AND attempts < max_attempts))",
        )
        .bind(&queue)
        .fetch_one(&consumer_pool)
        .await
        .unwrap()
    };

    let baseline = remote.received.requests();
    let start = Instant::now();
    for (id, new_name) in &w.edits {
        // The change and its job commit together: no job without its change, no change lost.
        let mut tx = writer_pool.begin().await.unwrap();
        sqlx::query("UPDATE job_customers SET name = $1 WHERE id = $2")
            .bind(new_name)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        let job = TaskBuilder::new(serde_json::to_vec(id).unwrap()).build();
        apalis_postgres::queries::push_tasks(&mut *tx, &queue, vec![job])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let writer = start.elapsed();
    if let Some(worker) = waiting.take() {
        consumer = Some(tokio::spawn(worker));
    }
    let wall = remote
        .converge(&w.final_names(), start, writer + TIMEOUT)
        .await;

    wait_for(DRAIN_TIMEOUT, || async { unfinished().await == 0 }).await;
    let _ = stop.send(());
    consumer.expect("started").await.unwrap().unwrap();
    let stored = read_names(&writer_pool, "job_customers").await;

    for cleanup in [
        "DELETE FROM apalis.jobs WHERE job_type = $1",
        "DELETE FROM apalis.workers WHERE id = $1",
    ] {
        sqlx::query(cleanup)
            .bind(&queue)
            .execute(&writer_pool)
            .await
            .unwrap();
    }
    consumer_pool.close().await;
    writer_pool.close().await;
    finish(
        "one apalis job per change",
        &remote,
        w,
        baseline,
        writer,
        wall,
        stored,
    )
}

// ---------------------------------------------------------------------------------------------
// C. Cron

/// Every `CRON_PERIOD`, pushes the rows changed since the last run. Counts its completed runs.
async fn cron_loop(
    pool: PgPool,
    pusher: Pusher,
    mut watermark: ChronoDateTimeUtc,
    stop: Arc<AtomicBool>,
    runs: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(CRON_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        // The watermark is the newest `updated_at` already pushed, not the time of the last run.
        // The known hole: a transaction that took its `now()` before the newest row seen here
        // but commits after this SELECT is invisible now and below the watermark afterwards, so
        // it is never pushed. With concurrent writers that happens; with the one writer here a
        // transaction in flight always has a newer `now()` than every committed one. (Taking
        // this SELECT's start as the next watermark has the hole even with one writer.) Ties on
        // the microsecond would be skipped too.
        let rows: Vec<(i32, String, String, ChronoDateTimeUtc)> = sqlx::query_as(
            "SELECT id, name, email, updated_at FROM cron_customers WHERE updated_at > $1",
        )
        .bind(watermark)
        .fetch_all(&pool)
        .await
        .unwrap();
        let newest = rows.iter().map(|r| r.3).max();
        let pusher = &pusher;
        let failed = futures::stream::iter(rows)
            .map(|(id, name, email, _)| async move { pusher.put(id, &name, &email).await })
            .buffer_unordered(IN_FLIGHT)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        // After a failed push, send the whole window again on the next run.
        if failed == 0
            && let Some(newest) = newest
        {
            watermark = newest;
        }
        runs.fetch_add(1, Ordering::Relaxed);
    }
}

async fn cron(t: &TestDb, w: &Workload, backlog: bool) -> Outcome {
    let remote = Remote::start().await;
    let writer_pool = sqlx_pool(t, WRITER_POOL).await;
    let consumer_pool = sqlx_pool(t, CONSUMER_POOL).await;
    plain_table(
        &writer_pool,
        "cron_customers",
        ", updated_at TIMESTAMPTZ NOT NULL DEFAULT now()",
        w,
    )
    .await;
    sqlx::query("CREATE INDEX cron_customers_updated_at ON cron_customers (updated_at)")
        .execute(&writer_pool)
        .await
        .unwrap();
    let pusher = Pusher::create_all(&remote, w).await;
    // Everything up to now is on the remote.
    let watermark: ChronoDateTimeUtc =
        sqlx::query_scalar("SELECT MAX(updated_at) FROM cron_customers")
            .fetch_one(&writer_pool)
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let mut waiting = Some(cron_loop(
        consumer_pool.clone(),
        pusher,
        watermark,
        stop.clone(),
        runs.clone(),
    ));
    let mut consumer = None;
    if !backlog {
        consumer = waiting.take().map(tokio::spawn);
    }

    let baseline = remote.received.requests();
    let start = Instant::now();
    for (id, new_name) in &w.edits {
        sqlx::query("UPDATE cron_customers SET name = $1, updated_at = now() WHERE id = $2")
            .bind(new_name)
            .bind(id)
            .execute(&writer_pool)
            .await
            .unwrap();
    }
    let writer = start.elapsed();
    if let Some(cron) = waiting.take() {
        consumer = Some(tokio::spawn(cron));
    }
    let wall = remote
        .converge(&w.final_names(), start, writer + TIMEOUT)
        .await;

    // Two more complete runs: the first one may have started before the last commit.
    let seen = runs.load(Ordering::Relaxed);
    wait_for(DRAIN_TIMEOUT, || async {
        runs.load(Ordering::Relaxed) >= seen + 2
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    consumer.expect("started").await.unwrap();
    let stored = read_names(&writer_pool, "cron_customers").await;
    consumer_pool.close().await;
    writer_pool.close().await;
    finish(
        "cron every 100 ms",
        &remote,
        w,
        baseline,
        writer,
        wall,
        stored,
    )
}
