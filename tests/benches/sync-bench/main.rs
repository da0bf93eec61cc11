//! Benchmarks: `cargo bench -p sync-tests --bench sync-bench -- <scenario> [--db sqlite|postgres]`
//! (BENCHMARKS.md has every scenario, its options and the latest results).
//!
//! - `write-path`: a save of a `Syncable` model against the same model without the derive, each
//!   save its own committed transaction, (a) only an unwatched column changed, (b) a watched one.
//! - `concurrent-writers`: the application's saves from 1, 4, 16 and 64 connections at once
//!   (`--clients 1,4,16,64`), plain against watched, and on PostgreSQL watched while a worker
//!   sleeps (every commit notifies).
//! - `throughput`: groups synced per second against a loopback remote that answers at once: the
//!   framework's engine passes, the apalis worker runtime, and a minimal hand-written loop (the
//!   floor), side by side on one database, interleaved over `--rounds` rounds (5 by default);
//!   `--only engine|run-once|batch|worker|floor|floor-processes` runs one of them alone (to
//!   profile it); `--updates` makes every push an update of a record the remote holds (the
//!   default: every push a create).
//! - `scan`: claim latency with 10k, 100k and 1M clean groups and 100 dirty ones (PostgreSQL),
//!   custom and generic plans, with the query plan.
//! - `latency`: commit of a watched change to the remote receiving the push, idle worker process
//!   woken by LISTEN/NOTIFY (PostgreSQL).
//! - `memory`: a worker process's resident memory while it pushes `--groups` groups (1M by
//!   default), sampled from `/proc`, and its peak.
//! - `inbound`: records applied per second by a source against a bare fetch-upsert-cursor loop;
//!   `--memory`: resident memory while a source applies 1M records.
//! - `coalescing`: the same edit workload through the framework, one apalis-postgres job per
//!   change, and the cron pattern; remote requests, wall time, final remote state (PostgreSQL).
//!
//! PostgreSQL comes from `SYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each run uses a fresh schema.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{post, put};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement,
};
use serde_json::{Value, json};
use sync_core::{
    Engine, EngineConfig, HttpRemote, Registry, Result as SyncResult, Syncer, TranslateContext,
    async_trait,
};
use sync_tests::models::{customer, plain_customer};
use sync_tests::{Backend, TestDb};

mod coalesce;
mod inbound;
mod remote;
mod writers;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("help");
    let db = match flag(&args, "--db") {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let number = |name: &str, default: usize| {
        flag(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match scenario {
        "write-path" => write_path(db, number("--saves", 2000)).await,
        "throughput" => {
            throughput(
                db,
                number("--groups", 20_000),
                number("--processes", 1),
                number("--rounds", 5),
                flag(&args, "--only"),
                args.iter().any(|a| a == "--updates"),
            )
            .await
        }
        "scan" => scan(&args).await,
        "latency" => latency(number("--samples", 200)).await,
        "coalescing" => coalesce::run(&args).await,
        "concurrent-writers" => writers::run(db, &args).await,
        "inbound" => inbound::run(db, &args).await,
        "memory" => memory(db, number("--groups", 1_000_000)).await,
        "verify" => verify_rate(db, number("--groups", 20_000), number("--rounds", 3)).await,
        "worker" => bench_worker(&args).await,
        "remote" => remote::serve().await,
        "floor-worker" => floor_worker(&args).await,
        _ => {
            eprintln!(
                "usage: sync-bench write-path|concurrent-writers|throughput|coalescing|scan|latency|memory|inbound|verify [--db sqlite|postgres]"
            )
        }
    }
}

/// `verify`: groups verified per second against a loopback remote holding their records (the
/// mock remote, in this process), and the requests it took per group. `groups` creates are
/// pushed first; each round then verifies all of them.
async fn verify_rate(backend: Backend, groups: usize, rounds: usize) {
    let t = fresh(backend).await;
    let remote = sync_worker::testing::MockRemote::start().await;
    let pool = sync_core::connect(&t.url, 16).await.unwrap();
    let engine = Engine::new(pool, bench_registry(&remote.url()), engine_config("verify")).unwrap();
    seed(&t.db, groups).await;
    engine.run_until_idle(usize::MAX).await.unwrap();
    println!(
        "verify on {backend:?}: {groups} pushed groups, a loopback remote holding each record, \
         {} reads at a time, {rounds} rounds",
        engine.config().concurrency
    );
    let mut rates = Vec::new();
    for round in 0..rounds.max(1) {
        remote.clear_requests();
        let start = Instant::now();
        let report = engine
            .verify(&sync_core::verify::VerifyOptions::all())
            .await
            .unwrap();
        let elapsed = start.elapsed().as_secs_f64();
        let requests = remote.requests().len();
        assert_eq!(report.count("in_step"), groups, "every record in step");
        let rate = groups as f64 / elapsed;
        println!(
            "  round {}: {rate:>9.0} groups/s, {:.2} requests per group",
            round + 1,
            requests as f64 / groups as f64
        );
        rates.push(rate);
    }
    println!("  median {:.0} groups/s", median(&rates));
}

/// The value after `name` on the command line.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// A comma-separated list of numbers after `name`, or `default`.
fn number_list(args: &[String], name: &str, default: &[usize]) -> Vec<usize> {
    flag(args, name)
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// The value after `name`, which a child process is always given.
fn required(args: &[String], name: &str) -> String {
    flag(args, name)
        .unwrap_or_else(|| panic!("{name} is required"))
        .to_owned()
}

fn pg_url() -> String {
    std::env::var("SYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn fresh(backend: Backend) -> TestDb {
    if backend == Backend::Postgres && std::env::var("SYNC_TEST_POSTGRES_URL").is_err() {
        panic!(
            "set SYNC_TEST_POSTGRES_URL (e.g. {}) to benchmark PostgreSQL",
            pg_url()
        );
    }
    let t = TestDb::new(backend).await;
    if backend == Backend::Postgres
        && let Ok(ff) = std::env::var("SYNC_BENCH_FILLFACTOR")
    {
        t.db.execute_unprepared(&format!("ALTER TABLE sync_groups SET (fillfactor = {ff})"))
            .await
            .unwrap();
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Write path

async fn write_path(backend: Backend, saves: usize) {
    let t = fresh(backend).await;
    let mut db = t.db.clone();
    let statements = Arc::new(AtomicU64::new(0));
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let plain = plain_customer::ActiveModel {
        name: Set("Plain".into()),
        email: Set("p@example.com".into()),
        phone: Set(None),
        notes: Set(String::new()),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let synced = sync_tests::fixtures::customer(&db, "Synced").await;
    sync_core::sync_as(&db, "crm.contact", &synced)
        .await
        .unwrap();

    println!(
        "write path on {backend:?}: {saves} saves per case, each its own committed transaction"
    );
    println!(
        "{:<28} {:>12} {:>12} {:>7} {:>14}",
        "case", "plain µs", "syncable µs", "ratio", "stmts/save"
    );
    for (case, watched) in [
        ("(a) unwatched column", false),
        ("(b) watched column", true),
    ] {
        let (mut plain_time, mut sync_time) = (Duration::ZERO, Duration::ZERO);
        let (mut plain_stmts, mut sync_stmts) = (0, 0);
        // Interleaved rounds so that noise hits both sides alike.
        let rounds = 10;
        for round in 0..rounds {
            let n = saves / rounds;
            let before = statements.load(Ordering::Relaxed);
            let start = Instant::now();
            for i in 0..n {
                let value = format!("v{round}-{i}");
                let txn = sync_core::begin_write(&db).await.unwrap();
                let mut am = plain_customer::ActiveModel {
                    id: Unchanged(plain.id),
                    ..Default::default()
                };
                if watched {
                    am.name = Set(value)
                } else {
                    am.notes = Set(value)
                }
                am.update(&txn).await.unwrap();
                sea_orm::TransactionSession::commit(txn).await.unwrap();
            }
            plain_time += start.elapsed();
            plain_stmts += statements.load(Ordering::Relaxed) - before;

            let before = statements.load(Ordering::Relaxed);
            let start = Instant::now();
            for i in 0..n {
                let value = format!("v{round}-{i}");
                let txn = sync_core::begin_write(&db).await.unwrap();
                let mut am = customer::ActiveModel {
                    id: Unchanged(synced.id),
                    ..Default::default()
                };
                if watched {
                    am.name = Set(value)
                } else {
                    am.notes = Set(value)
                }
                am.update(&txn).await.unwrap();
                sea_orm::TransactionSession::commit(txn).await.unwrap();
            }
            sync_time += start.elapsed();
            sync_stmts += statements.load(Ordering::Relaxed) - before;
        }
        let n = (saves / rounds * rounds) as f64;
        let (p, s) = (
            plain_time.as_secs_f64() * 1e6 / n,
            sync_time.as_secs_f64() * 1e6 / n,
        );
        println!(
            "{case:<28} {p:>12.1} {s:>12.1} {:>6.2}x {:>6.1} vs {:.1}",
            s / p,
            sync_stmts as f64 / n,
            plain_stmts as f64 / n
        );
    }
    println!("(statements counted by SeaORM's metric callback: BEGIN/COMMIT not included)");
    raw_reference(&db, synced.id, saves).await;
}

/// The same watched change in raw SQL, no ORM: the one-row update transaction, with the group
/// bump added, and with a re-read of the row plus the bump: what (b) costs at the least.
async fn raw_reference(db: &DatabaseConnection, id: i32, saves: usize) {
    let backend = db.get_database_backend();
    let sql = |s: &str| match backend {
        // `?` placeholders, numbered for PostgreSQL.
        DbBackend::Postgres => {
            let mut n = 0;
            s.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        _ => s.to_string(),
    };
    let update = sql("UPDATE customers SET name = ? WHERE id = ?");
    let bump = sql(
        "UPDATE sync_groups SET version = version + 1, touched_at = ? \
         WHERE (syncer = 'erp.customer' OR syncer = 'crm.contact') AND root_key = ?",
    );
    let reread = sql("SELECT * FROM customers WHERE id = ?");
    let variants = ["update", "update + bump", "re-read + bump + update"];
    let mut times = [Duration::ZERO; 3];
    let rounds = 10;
    for round in 0..rounds {
        for (v, time) in times.iter_mut().enumerate() {
            let start = Instant::now();
            for i in 0..saves / rounds {
                let txn = sea_orm::TransactionTrait::begin(db).await.unwrap();
                if v == 2 {
                    txn.query_one_raw(Statement::from_sql_and_values(
                        backend,
                        &reread,
                        [id.into()],
                    ))
                    .await
                    .unwrap();
                }
                if v >= 1 {
                    txn.execute_raw(Statement::from_sql_and_values(
                        backend,
                        &bump,
                        [sync_core::now_ms().into(), id.to_string().into()],
                    ))
                    .await
                    .unwrap();
                }
                txn.execute_raw(Statement::from_sql_and_values(
                    backend,
                    &update,
                    [format!("raw{round}-{v}-{i}").into(), id.into()],
                ))
                .await
                .unwrap();
                sea_orm::TransactionSession::commit(txn).await.unwrap();
            }
            *time += start.elapsed();
        }
    }
    let n = (saves / rounds * rounds) as f64;
    let base = times[0].as_secs_f64() * 1e6 / n;
    println!("raw SQL, same run, for scale (one-row update transaction = 1.00x):");
    for (name, time) in variants.iter().zip(times) {
        let us = time.as_secs_f64() * 1e6 / n;
        println!("  {name:<26} {us:>12.1} {:>6.2}x", us / base);
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

#[derive(Debug)]
struct BenchSyncer {
    remote: HttpRemote,
}

#[async_trait]
impl Syncer for BenchSyncer {
    fn name(&self) -> &str {
        "erp.customer"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> SyncResult<Option<Value>> {
        let Some(c) = customer::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(json!({"name": c.name, "email": c.email})))
    }

    /// The roots of a whole batch in one query.
    async fn translate_many(
        &self,
        db: &DatabaseConnection,
        groups: &[sync_core::ClaimedGroup],
    ) -> Vec<SyncResult<Option<Value>>> {
        use sea_orm::{ColumnTrait, QueryFilter};
        let ids: Vec<i32> = groups
            .iter()
            .filter_map(|g| g.root_key.parse().ok())
            .collect();
        let rows = match customer::Entity::find()
            .filter(customer::Column::Id.is_in(ids))
            .all(db)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                return groups
                    .iter()
                    .map(|_| Err(sync_core::Error::retryable(e.to_string())))
                    .collect();
            }
        };
        let by_id: std::collections::HashMap<String, customer::Model> =
            rows.into_iter().map(|c| (c.id.to_string(), c)).collect();
        groups
            .iter()
            .map(|g| {
                Ok(by_id
                    .get(g.root_key.as_str())
                    .map(|c| json!({"name": c.name, "email": c.email})))
            })
            .collect()
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

fn bench_registry(remote: &str) -> Registry {
    registry_with(remote, None)
}

/// The bench syncer, pushing in batches of `bulk` through the bulk endpoint when given.
fn registry_with(remote: &str, bulk: Option<usize>) -> Registry {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut registry = Registry::new();
    registry
        .register(BenchSyncer {
            remote: match bulk {
                Some(limit) => HttpRemote::builder(format!("{remote}/erp"), "customers")
                    .client(client)
                    .bulk("bulk", limit),
                None => HttpRemote::builder(format!("{remote}/erp"), "customers").client(client),
            }
            .build()
            .unwrap(),
        })
        .unwrap();
    registry
}

/// `groups` customers, each with a dirty `erp.customer` group (inserted in bulk, no hooks).
/// `groups` dirty groups of fresh customers: never pushed (creates), or with `updates`, each
/// already holding a remote record (updates).
async fn seed(db: &DatabaseConnection, groups: usize) {
    seed_as(db, groups, false).await;
}

/// The floor's own table, shaped as the independent floor's (the columns a bare loop keeps, the
/// unique key, one partial index serving its claim), filled with the groups due now: the floor
/// loop claims and marks these, not the framework's wider `sync_groups`.
async fn fill_floor_table(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let id = match backend {
        DbBackend::Postgres => "id bigint PRIMARY KEY",
        _ => "id INTEGER PRIMARY KEY",
    };
    db.execute_unprepared(&format!(
        "CREATE TABLE IF NOT EXISTS floor_groups ({id}, syncer text NOT NULL, \
         root_key text NOT NULL, version bigint NOT NULL, synced_version bigint NOT NULL, \
         state text NOT NULL, attempts integer NOT NULL DEFAULT 0, next_attempt_at bigint NOT NULL, \
         lease_owner text, lease_until bigint, remote_id text, last_digest text, \
         touched_at bigint, synced_at bigint, UNIQUE (syncer, root_key))"
    ))
    .await
    .unwrap();
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS floor_groups_due ON floor_groups (next_attempt_at) \
         WHERE state IN ('pending', 'failed')",
    )
    .await
    .unwrap();
    db.execute_unprepared("DELETE FROM floor_groups")
        .await
        .unwrap();
    db.execute_unprepared(
        "INSERT INTO floor_groups (id, syncer, root_key, version, synced_version, state, \
         next_attempt_at, touched_at) SELECT id, syncer, root_key, version, synced_version, \
         state, next_attempt_at, touched_at FROM sync_groups WHERE state IN ('pending', 'failed')",
    )
    .await
    .unwrap();
    if backend == DbBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE floor_groups")
            .await
            .unwrap();
    }
}

async fn seed_as(db: &DatabaseConnection, groups: usize, updates: bool) {
    let backend = db.get_database_backend();
    db.execute_unprepared("DELETE FROM sync_groups")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM customers")
        .await
        .unwrap();
    if backend == DbBackend::Postgres {
        // The rows just deleted, and the versions the last variant left, are reclaimed: each
        // variant starts on tables and indexes without dead entries, as the independent floor
        // does on its fresh tables.
        db.execute_unprepared("VACUUM sync_groups, customers")
            .await
            .unwrap();
    }
    for chunk in (0..groups).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| format!("('Customer {i}', 'c{i}@example.com', '')"))
            .collect();
        db.execute_unprepared(&format!(
            "INSERT INTO customers (name, email, notes) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    }
    let text = if backend == DbBackend::MySql {
        "CHAR"
    } else {
        "TEXT"
    };
    let now = sync_core::now_ms();
    db.execute_unprepared(&format!(
        "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, root_deleted, attempts, deferrals, \
         next_attempt_at, touched_at, created_at, dirty_since) \
         SELECT 'erp.customer', CAST(id AS {text}), 1, 0, 'pending', false, 0, 0, {now}, {now}, {now}, {now} FROM customers"
    ))
    .await
    .unwrap();
    if updates {
        db.execute_unprepared("UPDATE sync_groups SET remote_id = root_key")
            .await
            .unwrap();
    }
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE sync_groups").await.unwrap();
    }
}

fn engine_config(id: &str) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.worker_id = id.into();
    config.batch_size = 200;
    config.concurrency = 32;
    // The claim batch, for experiments (BENCHMARKS.md §2).
    if let Some(n) = std::env::var("SYNC_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.batch_size = n;
    }
    config
}

/// What `throughput` measures side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `Engine::run_until_idle`: passes one after the other until nothing is due.
    Engine,
    /// `Engine::run_once` passes one after the other.
    RunOnce,
    /// `run_until_idle` with the bulk endpoint, 100 groups per request.
    Batch,
    /// The apalis runtime (`Worker::run`) in worker processes.
    Worker,
    /// The hand-written floor loop.
    Floor,
    /// The floor loop in as many processes of its own as the worker variant, measured as the
    /// worker is: what the worker processes are compared with.
    FloorProcesses,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Engine,
        Variant::RunOnce,
        Variant::Batch,
        Variant::Worker,
        Variant::Floor,
        Variant::FloorProcesses,
    ];

    /// The name `--only` takes.
    fn key(self) -> &'static str {
        match self {
            Variant::Engine => "engine",
            Variant::RunOnce => "run-once",
            Variant::Batch => "batch",
            Variant::Worker => "worker",
            Variant::Floor => "floor",
            Variant::FloorProcesses => "floor-processes",
        }
    }

    fn label(self, processes: usize) -> String {
        match self {
            Variant::Engine => "framework engine (run_until_idle)".into(),
            Variant::RunOnce => "framework engine (run_once passes)".into(),
            Variant::Batch => "framework engine, batch push of 100".into(),
            Variant::Worker => format!("framework apalis worker ×{processes}"),
            Variant::Floor => "hand-written floor loop".into(),
            Variant::FloorProcesses => format!("floor loop in processes ×{processes}"),
        }
    }
}

/// One variant's run: groups per second and where the time went.
struct Measured {
    rate: f64,
    profile: String,
}

/// The median of `values` (the lower middle one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

/// Every variant `rounds` times, interleaved: each round runs each variant once on `groups`
/// freshly dirtied groups, the order rotated from one round to the next, so that a drift in the
/// machine's speed (these machines are shared) falls on every variant alike. Ratios to the floor
/// are taken within a round, then their median is reported.
///
/// `only` (a [`Variant::key`]) runs that variant alone, after the warm-up: a run to profile
/// (`perf record`) one variant at a time.
async fn throughput(
    backend: Backend,
    groups: usize,
    processes: usize,
    rounds: usize,
    only: Option<&str>,
    updates: bool,
) {
    let t = fresh(backend).await;
    // The remote in a process of its own, which also times the process variants.
    let remote_process = remote::RemoteProcess::start();
    let remote = remote_process.url.clone();
    let rounds = rounds.max(1);
    let pushes = if updates {
        "updates of records the remote holds"
    } else {
        "creates"
    };
    println!(
        "throughput on {backend:?}: {groups} dirty groups ({pushes}), remote on loopback \
         answering at once, {rounds} rounds"
    );
    // The worker's own pool, as the worker binary opens it (`SYNC_POOL_SIZE`). Passes of 200
    // claimed, 32 in flight.
    let pool = sync_core::connect(&t.url, 16).await.unwrap();
    let engine = Engine::new(
        pool.clone(),
        bench_registry(&remote),
        engine_config("bench"),
    )
    .unwrap();
    let batched = Engine::new(
        pool.clone(),
        registry_with(&remote, Some(100)),
        engine_config("bench-batch"),
    )
    .unwrap();
    // Warm-up, not measured: the pool's connections, the statement caches, the page cache and
    // the allocator, so that the first variant measured does not pay for them.
    seed(&t.db, 2_000).await;
    engine.run_until_idle(usize::MAX).await.unwrap();
    seed(&t.db, 2_000).await;
    fill_floor_table(&t.db).await;
    floor(&pool, &remote).await;

    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| only.is_none_or(|o| o == v.key()))
        .collect();
    assert!(
        !variants.is_empty(),
        "--only takes engine, run-once, batch, worker, floor or floor-processes"
    );
    let mut measured: Vec<Vec<Measured>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        println!("  round {}:", round + 1);
        for k in 0..variants.len() {
            let index = (k + round) % variants.len();
            let variant = variants[index];
            seed_as(&t.db, groups, updates).await;
            let (rate, profile) = match variant {
                Variant::Engine => engine_rate(&engine, false).await,
                Variant::RunOnce => engine_rate(&engine, true).await,
                Variant::Batch => engine_rate(&batched, false).await,
                Variant::Worker => {
                    runtime_rate(&t, &remote_process, "worker", processes, groups).await
                }
                Variant::Floor => {
                    fill_floor_table(&t.db).await;
                    floor(&pool, &remote).await
                }
                Variant::FloorProcesses => {
                    fill_floor_table(&t.db).await;
                    runtime_rate(&t, &remote_process, "floor-worker", processes, groups).await
                }
            };
            println!("    {:<38} {rate:>9.0} groups/s", variant.label(processes));
            measured[index].push(Measured { rate, profile });
        }
    }

    println!("  median of {rounds} rounds (the run shown below each is the median one):");
    let index = |variant: Variant| variants.iter().position(|v| *v == variant);
    let engine_index = index(Variant::Engine);
    for (variant, runs) in variants.iter().zip(&measured) {
        let rates: Vec<f64> = runs.iter().map(|m| m.rate).collect();
        let mid = median(&rates);
        let (low, high) = rates
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        let versus = match (variant, engine_index) {
            (Variant::Batch, Some(e)) => {
                let gains: Vec<f64> = runs
                    .iter()
                    .zip(&measured[e])
                    .map(|(b, single)| b.rate / single.rate)
                    .collect();
                format!("  ({:.2}× single pushes)", median(&gains))
            }
            _ => String::new(),
        };
        println!(
            "  {:<38} {mid:>9.0} groups/s  (rounds {low:.0}–{high:.0}){versus}",
            variant.label(processes)
        );
        let shown = runs
            .iter()
            .find(|m| m.rate == mid)
            .expect("the median is one of the runs");
        println!("    {}", shown.profile);
    }
    // The in-process variants against the in-process floor; the worker processes against the
    // floor in as many processes.
    let pairs = [
        (Variant::Engine, Variant::Floor),
        (Variant::RunOnce, Variant::Floor),
        (Variant::Worker, Variant::FloorProcesses),
    ];
    let ratios: Vec<String> = pairs
        .iter()
        .filter_map(|(framework, floor)| {
            Some((*framework, *floor, index(*framework)?, index(*floor)?))
        })
        .map(|(framework, floor, i, f)| {
            let per_round: Vec<f64> = measured[i]
                .iter()
                .zip(&measured[f])
                .map(|(m, floor)| m.rate / floor.rate)
                .collect();
            let shown: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            format!(
                "  {} / {} = {:.2} (rounds: {})",
                framework.key(),
                floor.key(),
                median(&per_round),
                shown.join(", ")
            )
        })
        .collect();
    if !ratios.is_empty() {
        println!("  ratios to the floor, median of the rounds:");
        println!("{}", ratios.join("\n"));
    }
}

/// Passes until nothing is due — one `run_once` after the other (`sequential`), or one
/// `run_until_idle` — groups pushed per second, and where a pass's time went.
async fn engine_rate(engine: &Engine, sequential: bool) -> (f64, String) {
    let cpu = cpu_time(std::process::id());
    let start = Instant::now();
    let mut pushed = 0;
    let mut passes = 0u32;
    let mut phases = sync_core::__worker::PassPhases::default();
    if sequential {
        loop {
            let pass = engine.run_once().await.unwrap();
            pushed += pass.pushed;
            if pass.claimed == 0 {
                break;
            }
            passes += 1;
            phases.claim += pass.phases.claim;
            phases.push += pass.phases.push;
            phases.record += pass.phases.record;
        }
    } else {
        let report = engine.run_until_idle(usize::MAX).await.unwrap();
        pushed = report.pushed;
        passes = report
            .claimed
            .div_ceil(engine.config().batch_size as usize)
            .try_into()
            .unwrap();
        phases = report.phases;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(passes.max(1));
    let profile = format!(
        "per pass: claim and translate {:.1} ms, push {:.1} ms, record {:.1} ms",
        ms(phases.claim),
        ms(phases.push),
        ms(phases.record),
    );
    let rate = pushed as f64 / start.elapsed().as_secs_f64();
    let profile = format!(
        "{profile}\n    {}",
        cpu_per_1000(cpu, Duration::ZERO, pushed)
    );
    (rate, profile)
}

/// `processes` child processes running `command` (`worker`: the apalis runtime; `floor-worker`:
/// the floor loop), timed by the remote: groups per second from the first push it received to
/// the last. Meanwhile this process only looks, every 100 ms, whether anything is left.
async fn runtime_rate(
    t: &TestDb,
    remote: &remote::RemoteProcess,
    command: &str,
    processes: usize,
    groups: usize,
) -> (f64, String) {
    let exe = std::env::current_exe().unwrap();
    let cpu = cpu_time(std::process::id());
    let remote_cpu = cpu_time(remote.pid());
    remote.take_stats().await;
    let start = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    command,
                    "--url",
                    &t.url,
                    "--remote",
                    &remote.url,
                    "--id",
                    &format!("bench-{i}"),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    let backend = t.db.get_database_backend();
    let query = async |sql: &str| {
        t.db.query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
    };
    // The floor loop works on its own table (`fill_floor_table`).
    let table = match command {
        "floor-worker" => "floor_groups",
        _ => "sync_groups",
    };
    while !query(&format!(
        "SELECT 1 AS n FROM {table} WHERE state IN ('pending', 'failed') LIMIT 1"
    ))
    .await
    .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = Instant::now();
    let stats = remote.take_stats().await;
    let synced = query(&format!("SELECT id FROM {table} WHERE state = 'synced'")).await;
    assert_eq!(synced.len(), groups, "every group synced");
    assert!(stats.records >= groups as u64, "every group pushed");
    let rate = stats.records as f64 / stats.span_s;
    let workers_cpu: Duration = children.iter().map(|c| cpu_time(c.id())).sum();
    let remote_cpu = cpu_time(remote.pid()).saturating_sub(remote_cpu);
    let profile = format!(
        "{:.0} groups/s counted from the spawn to the end of the bench's 100 ms polling\n    \
         CPU per 1,000 groups: {:.0} ms in the workers, {:.0} ms in the remote, {:.0} ms in the bench",
        groups as f64 / (end - start).as_secs_f64(),
        workers_cpu.as_secs_f64() * 1e6 / groups as f64,
        remote_cpu.as_secs_f64() * 1e6 / groups as f64,
        cpu_time(std::process::id())
            .saturating_sub(cpu)
            .as_secs_f64()
            * 1e6
            / groups as f64,
    );
    for mut child in children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    (rate, profile)
}

/// `sync-bench worker --url … --remote … --id …`: an apalis worker process for `throughput`.
async fn bench_worker(args: &[String]) {
    let get = |name: &str| required(args, name);
    let db = sync_core::connect(&get("--url"), 16).await.unwrap();
    let mut settings = sync_worker::WorkerSettings::default();
    settings.engine = engine_config(&get("--id"));
    settings.poll_interval = Duration::from_millis(
        std::env::var("SYNC_BENCH_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
    );
    let worker = sync_worker::Worker::new(db, bench_registry(&get("--remote")), settings).unwrap();
    worker.run().await.unwrap();
}

/// `sync-bench floor-worker --url … --remote … --id …`: the floor loop in a process of its own,
/// for `throughput`; once nothing is left it waits to be stopped, as a worker does.
async fn floor_worker(args: &[String]) {
    let get = |name: &str| required(args, name);
    let db = sync_core::connect(&get("--url"), 16).await.unwrap();
    floor(&db, &get("--remote")).await;
    std::future::pending::<()>().await;
}

/// The floor loop; groups per second, and where a pass's time went, as `engine_rate` reports it.
///
/// Only what a sync strictly needs, each step one prepared statement: claim 200 due groups with a
/// lease, read their roots, push them 32 at a time, and record the batch (synced version, digest
/// and remote id; a group whose version moved meanwhile stays pending).
async fn floor(db: &DatabaseConnection, remote: &str) -> (f64, String) {
    let backend = db.get_database_backend();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let owner = format!("floor-{}", std::process::id());
    let url = format!("{remote}/erp/customers");
    let cpu = cpu_time(std::process::id());
    let start = Instant::now();
    let mut total = 0;
    let mut passes = 0u32;
    // claim, read roots, push, mark done
    let mut phases = [Duration::ZERO; 4];
    loop {
        let mut phase = Instant::now();
        let now = sync_core::now_ms();
        // (group id, customer id, version)
        let claimed: Vec<(i64, i32, i64)> = if backend == DbBackend::Postgres {
            use sea_orm::sqlx::Row;
            sea_orm::sqlx::query(
                "UPDATE floor_groups SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id = ANY(ARRAY(\
                 SELECT id FROM floor_groups WHERE state IN ('pending','failed') AND next_attempt_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at LIMIT 200 \
                 FOR UPDATE SKIP LOCKED)) RETURNING id, root_key, version",
            )
            .bind(&owner)
            .bind(now + 60_000)
            .bind(now)
            .fetch_all(db.get_postgres_connection_pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let key: String = r.get(1);
                (r.get(0), key.parse().unwrap(), r.get(2))
            })
            .collect()
        } else {
            db.query_all_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE floor_groups SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id IN (\
                 SELECT id FROM floor_groups WHERE state IN ('pending','failed') AND next_attempt_at <= ? \
                 AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at LIMIT 200) \
                 RETURNING id, root_key, version",
                vec![
                    owner.clone().into(),
                    (now + 60_000).into(),
                    now.into(),
                    now.into(),
                ],
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let key: String = r.try_get("", "root_key").unwrap();
                (
                    r.try_get("", "id").unwrap(),
                    key.parse().unwrap(),
                    r.try_get("", "version").unwrap(),
                )
            })
            .collect()
        };
        if claimed.is_empty() {
            break;
        }
        phases[0] += phase.elapsed();
        phase = Instant::now();
        let ids: Vec<i32> = claimed.iter().map(|c| c.1).collect();
        let roots: std::collections::HashMap<i32, (String, String)> =
            if backend == DbBackend::Postgres {
                use sea_orm::sqlx::Row;
                sea_orm::sqlx::query("SELECT id, name, email FROM customers WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(db.get_postgres_connection_pool())
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), (r.get(1), r.get(2))))
                    .collect()
            } else {
                db.query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "SELECT id, name, email FROM customers WHERE id IN ({})",
                        vec!["?"; ids.len()].join(",")
                    ),
                    ids.iter()
                        .map(|&id| id.into())
                        .collect::<Vec<sea_orm::Value>>(),
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r.try_get("", "id").unwrap(),
                        (
                            r.try_get("", "name").unwrap(),
                            r.try_get("", "email").unwrap(),
                        ),
                    )
                })
                .collect()
            };
        phases[1] += phase.elapsed();
        phase = Instant::now();
        use futures::StreamExt;
        // (group id, version, digest, remote id)
        let done: Vec<(i64, i64, String, String)> = futures::stream::iter(&claimed)
            .map(|&(group, customer, version)| {
                let (name, email) = &roots[&customer];
                let payload = json!({"name": name, "email": email});
                // 16 hex digits, as short as a digest can usefully be: what a bare loop would keep.
                let mut digest = sync_core::__worker::digest("erp.customer", 1, &payload);
                digest.truncate(16);
                let body = serde_json::to_vec(&payload).unwrap();
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                async move {
                    let answer = request.send().await.unwrap().bytes().await.unwrap();
                    let answer: Value = serde_json::from_slice(&answer).unwrap();
                    (group, version, digest, answer["id"].to_string())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        phases[2] += phase.elapsed();
        phase = Instant::now();
        let marked = if backend == DbBackend::Postgres {
            let column = |f: fn(&(i64, i64, String, String)) -> i64| -> Vec<i64> {
                done.iter().map(f).collect()
            };
            let text = |f: fn(&(i64, i64, String, String)) -> &String| -> Vec<String> {
                done.iter().map(|d| f(d).clone()).collect()
            };
            sea_orm::sqlx::query(
                "UPDATE floor_groups g SET synced_version = v.version, last_digest = v.digest, \
                 remote_id = v.remote_id, state = CASE WHEN g.version = v.version THEN 'synced' ELSE 'pending' END, \
                 lease_owner = NULL, lease_until = NULL, attempts = 0, synced_at = $6 \
                 FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS v(id, version, digest, remote_id) \
                 WHERE g.id = v.id AND g.lease_owner = $5",
            )
            .bind(column(|d| d.0))
            .bind(column(|d| d.1))
            .bind(text(|d| &d.2))
            .bind(text(|d| &d.3))
            .bind(&owner)
            .bind(sync_core::now_ms())
            .execute(db.get_postgres_connection_pool())
            .await
            .unwrap()
            .rows_affected()
        } else {
            let rows = vec!["(?, ?, ?, ?)"; done.len()].join(", ");
            let mut binds: Vec<sea_orm::Value> = Vec::with_capacity(done.len() * 4 + 1);
            for (group, version, digest, remote_id) in &done {
                binds.extend([
                    (*group).into(),
                    (*version).into(),
                    digest.clone().into(),
                    remote_id.clone().into(),
                ]);
            }
            binds.insert(0, sync_core::now_ms().into());
            binds.push(owner.clone().into());
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE floor_groups SET synced_version = v.column2, last_digest = v.column3, \
                     remote_id = v.column4, state = CASE WHEN floor_groups.version = v.column2 \
                     THEN 'synced' ELSE 'pending' END, lease_owner = NULL, lease_until = NULL, attempts = 0, synced_at = ? \
                     FROM (VALUES {rows}) AS v WHERE floor_groups.id = v.column1 AND floor_groups.lease_owner = ?"
                ),
                binds,
            ))
            .await
            .unwrap()
            .rows_affected()
        };
        assert_eq!(marked, done.len() as u64, "the floor recorded its batch");
        phases[3] += phase.elapsed();
        passes += 1;
        total += done.len();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(passes.max(1));
    let profile = format!(
        "per pass: claim {:.1} ms, read roots {:.1} ms, push {:.1} ms, mark done {:.1} ms",
        ms(phases[0]),
        ms(phases[1]),
        ms(phases[2]),
        ms(phases[3])
    );
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let profile = format!(
        "{profile}\n    {}",
        cpu_per_1000(cpu, Duration::ZERO, total)
    );
    (rate, profile)
}

// ---------------------------------------------------------------------------------------------
// Dirty scan

async fn scan(args: &[String]) {
    let t = fresh(Backend::Postgres).await;
    let sizes: Vec<usize> = flag(args, "--sizes")
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    println!(
        "claim latency on PostgreSQL: N clean groups + 100 dirty, claim 100 (the worker's statement)"
    );
    println!(
        "{:>10} {:>14} {:>14}",
        "clean", "custom plan", "generic plan"
    );
    let mut loaded = 0;
    for size in sizes {
        let now = sync_core::now_ms();
        t.db.execute_unprepared(&format!(
            "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, root_deleted, attempts, deferrals, \
             next_attempt_at, touched_at, created_at) \
             SELECT 'erp.customer', 'k' || g, 1, 1, 'synced', false, 0, 0, {now}, {now}, {now} FROM generate_series({}, {}) g",
            loaded + 1,
            size
        ))
        .await
        .unwrap();
        loaded = size;
        t.db.execute_unprepared("ANALYZE sync_groups")
            .await
            .unwrap();
        let mut results = Vec::new();
        for mode in ["auto", "force_generic_plan"] {
            t.db.execute_unprepared(&format!("SET plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let mut times = Vec::new();
            for round in 0..20 {
                // 100 dirty groups, claimed and then released, through the engine's own claim.
                t.db.execute_unprepared(
                    "UPDATE sync_groups SET state = 'pending', version = version + 1, lease_owner = NULL, lease_until = NULL \
                     WHERE id IN (SELECT id FROM sync_groups ORDER BY id DESC LIMIT 100)"
                )
                .await
                .unwrap();
                let start = Instant::now();
                let claimed = sync_core::__worker::claim_groups(
                    &t.db,
                    &sync_core::__worker::ClaimRequest {
                        owner: "scan",
                        syncers: &["erp.customer".to_owned()],
                        limit: 100,
                        now: sync_core::now_ms(),
                        lease_until: sync_core::now_ms() + 60_000,
                    },
                )
                .await
                .unwrap();
                if round >= 5 {
                    times.push(start.elapsed());
                }
                assert_eq!(claimed.len(), 100);
                t.db.execute_unprepared("UPDATE sync_groups SET state = 'synced', synced_version = version, lease_owner = NULL WHERE state = 'pending'").await.unwrap();
            }
            times.sort();
            results.push(times[times.len() / 2]);
        }
        println!(
            "{size:>10} {:>11.2} ms {:>11.2} ms",
            results[0].as_secs_f64() * 1e3,
            results[1].as_secs_f64() * 1e3
        );
    }
    let plan = t
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "EXPLAIN SELECT id FROM sync_groups WHERE state IN ('pending', 'failed') AND next_attempt_at <= {} \
                 AND (lease_until IS NULL OR lease_until < {}) AND syncer IN ('erp.customer') ORDER BY next_attempt_at, id LIMIT 100 FOR UPDATE SKIP LOCKED",
                sync_core::now_ms(),
                sync_core::now_ms()
            ),
        ))
        .await
        .unwrap();
    println!("plan of the claim's inner select:");
    for row in plan {
        println!("  {}", row.try_get::<String>("", "QUERY PLAN").unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Latency

async fn latency(samples: usize) {
    let t = fresh(Backend::Postgres).await;
    let received = Arc::new(tokio::sync::Mutex::new(std::collections::HashMap::<
        String,
        Instant,
    >::new()));
    let seen = received.clone();
    let app = Router::new()
        .route(
            "/erp/customers",
            post(|| async { axum::Json(json!({"id": 1})) }),
        )
        .route(
            "/erp/customers/{id}",
            put(move |axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().await.insert(
                        body["name"].as_str().unwrap_or_default().to_owned(),
                        Instant::now(),
                    );
                    "{}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = sync_tests::fixtures::customer(&t.db, "Latency").await;
    let exe = std::env::current_exe().unwrap();
    let mut worker = std::process::Command::new(exe)
        .args([
            "worker", "--url", &t.url, "--remote", &remote, "--id", "latency",
        ])
        .env("SYNC_BENCH_POLL_MS", "60000")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latencies = Vec::new();
    for i in 0..samples {
        let name = format!("Latency {i}");
        let txn = sync_core::begin_write(&t.db).await.unwrap();
        customer::ActiveModel {
            id: Unchanged(c.id),
            name: Set(name.clone()),
            ..Default::default()
        }
        .update(&txn)
        .await
        .unwrap();
        sea_orm::TransactionSession::commit(txn).await.unwrap();
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(10);
        loop {
            if let Some(at) = received.lock().await.get(&name) {
                latencies.push(*at - committed);
                break;
            }
            if Instant::now() >= deadline {
                let _ = worker.kill();
                let _ = worker.wait();
                panic!("sample {i}: no push within 10 s of the commit");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    println!("commit → remote, idle worker process woken by LISTEN/NOTIFY, {samples} samples:");
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Resident and peak resident memory of process `pid`, in MiB (Linux `/proc`).
/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// CPU time used per 1,000 groups since `before` by this process (which also runs the remote)
/// and `children`, as a column of the throughput table.
fn cpu_per_1000(before: Duration, children: Duration, groups: usize) -> String {
    let used = cpu_time(std::process::id()).saturating_sub(before) + children;
    format!(
        "CPU {:.0} ms per 1,000 groups (bench process with the remote, and workers)",
        used.as_secs_f64() * 1e6 / groups as f64
    )
}

fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

async fn memory(backend: Backend, groups: usize) {
    let t = fresh(backend).await;
    let remote_process = remote::RemoteProcess::start();
    let remote = remote_process.url.clone();
    seed(&t.db, groups).await;
    println!("worker process memory on {backend:?}: {groups} dirty groups");
    println!("{:>10} {:>12} {:>12}", "synced", "RSS MiB", "peak MiB");
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(&exe)
        .args([
            "worker", "--url", &t.url, "--remote", &remote, "--id", "memory",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut next_report = 0;
    loop {
        let row =
            t.db.query_one_raw(Statement::from_string(
                t.db.get_database_backend(),
                // The dirty ones (a short range of the due index), not the synced ones (a scan
                // growing to a million entries, every half second, beside the worker).
                "SELECT COUNT(*) AS n FROM sync_groups WHERE state IN ('pending', 'failed')",
            ))
            .await
            .unwrap()
            .unwrap();
        let dirty = row.try_get::<i64>("", "n").unwrap() as usize;
        let done = groups.saturating_sub(dirty);
        if done >= next_report {
            if let Some((rss, peak)) = rss_mib(pid) {
                println!("{done:>10} {rss:>12.1} {peak:>12.1}");
            }
            next_report = done + groups / 10;
        }
        if done >= groups {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (rss, peak) = rss_mib(pid).unwrap_or_default();
    println!(
        "all {groups} synced in {:.0} s; RSS at the end {rss:.1} MiB, peak {peak:.1} MiB",
        start.elapsed().as_secs_f64()
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
