//! `concurrent-writers`: the application's saves from many connections at once, each its own
//! committed transaction through SeaORM, on random rows of a 5,000-row table:
//!
//! - `plain`: a model without the derive;
//! - `watched`: the `Syncable` model, a watched column changed (the hooks append two touches);
//! - `watched, worker asleep`: the same while a worker is marked asleep, so that every commit
//!   notifies (PostgreSQL only: what every watched save cost before notifications were limited to
//!   sleeping workers).
//!
//! Modes alternate within each round, `--rounds` rounds of `--seconds` each per mode and client
//! count; commits per second are the median of the rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend};
use sync_tests::Backend;
use sync_tests::models::{customer, plain_customer};

use super::{fresh, number_list};

const ROWS: i32 = 5_000;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Watched,
    WatchedNotifying,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Watched => "watched",
            Mode::WatchedNotifying => "watched, worker asleep",
        }
    }
}

pub(crate) async fn run(backend: Backend, args: &[String]) {
    let clients = number_list(args, "--clients", &[1, 4, 16, 64]);
    let seconds = super::flag(args, "--seconds")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(3.0);
    let rounds = super::flag(args, "--rounds")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(3);
    let t = fresh(backend).await;
    seed(&t.db).await;
    let max = clients.iter().copied().max().unwrap_or(1);
    let pool = sync_core::connect(&t.url, max as u32).await.unwrap();
    let mut modes = vec![Mode::Plain, Mode::Watched];
    if backend == Backend::Postgres {
        modes.push(Mode::WatchedNotifying);
    }
    println!(
        "concurrent writers on {backend:?}: one-row update transactions through SeaORM on {ROWS} \
         rows, {rounds} rounds of {seconds} s per case, commits/s (median of rounds)"
    );
    let mut header = format!("{:>8}", "clients");
    for mode in &modes {
        header.push_str(&format!(" {:>24}", mode.label()));
    }
    header.push_str(&format!(" {:>16}", "watched / plain"));
    if modes.contains(&Mode::WatchedNotifying) {
        header.push_str(&format!(" {:>18}", "notifying / plain"));
    }
    println!("{header}");
    for &c in &clients {
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        for _ in 0..rounds {
            for (m, &mode) in modes.iter().enumerate() {
                set_asleep(&t.db, mode == Mode::WatchedNotifying).await;
                results[m].push(measure(&pool, mode, c, seconds).await);
            }
        }
        set_asleep(&t.db, false).await;
        // The touches of this client count, applied between rows so that the log does not grow
        // from one row of the table to the next.
        sync_tests::apply_all_touches(&t.db).await;
        let medians: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
        let mut line = format!("{c:>8}");
        for v in &medians {
            line.push_str(&format!(" {v:>24.0}"));
        }
        line.push_str(&format!(" {:>15.2}x", medians[1] / medians[0]));
        if modes.len() > 2 {
            line.push_str(&format!(" {:>17.2}x", medians[2] / medians[0]));
        }
        println!("{line}");
    }
    pool.close().await.ok();
}

/// 5,000 rows in each table; the `Syncable` rows registered (their groups exist).
async fn seed(db: &DatabaseConnection) {
    let txn = sync_core::begin_write(db).await.unwrap();
    for i in 0..ROWS {
        plain_customer::ActiveModel {
            name: Set(format!("Plain {i}")),
            email: Set(format!("p{i}@example.com")),
            phone: Set(None),
            notes: Set(String::new()),
            deleted_at: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .unwrap();
        sync_tests::fixtures::customer(&txn, &format!("Customer {i}")).await;
    }
    sea_orm::TransactionSession::commit(txn).await.unwrap();
    sync_tests::apply_all_touches(db).await;
}

/// Marks a worker asleep for the next minutes (every commit that appends touches then
/// notifies), or clears the mark.
async fn set_asleep(db: &DatabaseConnection, asleep: bool) {
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let sql = if asleep {
        "INSERT INTO sync_sleepers (worker, until_ms) VALUES ('bench', \
         (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 600000) \
         ON CONFLICT (worker) DO UPDATE SET until_ms = EXCLUDED.until_ms"
    } else {
        "DELETE FROM sync_sleepers"
    };
    db.execute_unprepared(sql).await.unwrap();
}

/// Commits per second of `clients` writers saving in `mode` for `seconds`.
async fn measure(pool: &DatabaseConnection, mode: Mode, clients: usize, seconds: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::with_capacity(clients);
    for w in 0..clients {
        let (pool, stop, commits) = (pool.clone(), stop.clone(), commits.clone());
        writers.push(tokio::spawn(async move {
            // A cheap per-writer sequence over the rows (no shared RNG state).
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = (x % ROWS as u64) as i32 + 1;
                i += 1;
                let value = format!("w{w}-{i}");
                let Ok(txn) = sync_core::begin_write(&pool).await else {
                    continue;
                };
                let saved = match mode {
                    Mode::Plain => plain_customer::ActiveModel {
                        id: Unchanged(id),
                        name: Set(value),
                        ..Default::default()
                    }
                    .update(&txn)
                    .await
                    .map(drop),
                    Mode::Watched | Mode::WatchedNotifying => customer::ActiveModel {
                        id: Unchanged(id),
                        name: Set(value),
                        ..Default::default()
                    }
                    .update(&txn)
                    .await
                    .map(drop),
                };
                // A conflict (SQLite busy, a PostgreSQL deadlock on two rows) is the
                // application's to retry: it is not counted.
                if saved.is_ok() && sea_orm::TransactionSession::commit(txn).await.is_ok() {
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let every writer get its connection before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = commits.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let counted = commits.load(Ordering::Relaxed) - before;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    counted as f64 / elapsed
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
