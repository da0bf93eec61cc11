//! `inbound`: records applied per second by a source (`run_source`), its records applied with
//! a SeaORM `ActiveModel` save each (`apply`) or a page in one upsert (`apply_many`), the latter
//! also with the digests kept in the application's table (`digest_column`), against a
//! bare loop written by hand (fetch a page of
//! 200, upsert it in one statement, store the cursor, one transaction per page), side by side on
//! one database, alternating over `--rounds` rounds. Both read the same loopback listing
//! (json-server style, `?_page=&_limit=200`, served by this process) into a table of their own.
//!
//! `--records N` (20,000 by default); `--memory` instead applies `--records` (1,000,000 by
//! default there) with the source alone and prints this process's resident memory every tenth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use serde_json::{Value, json};
use sync_core::source::{
    ApplyContext, DigestColumn, HttpFeed, InboundRecord, Pagination, Source, SourceReport,
    SourceRunOptions, run_source,
};
use sync_core::{HttpRemote, async_trait};
use sync_tests::Backend;

use super::{flag, fresh, median, rss_mib};

#[allow(unreachable_pub)]
mod bench_product {
    use sea_orm::entity::prelude::*;

    /// A row of `bench_products`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_products")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub price_cents: i64,
        pub digest: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const PAGE: usize = 200;

/// The listing: `records` products, ids 1…, pages of `_limit` by `_page`.
async fn serve_listing(records: usize) -> String {
    async fn list(
        State(total): State<usize>,
        Query(q): Query<Vec<(String, String)>>,
    ) -> axum::Json<Value> {
        let get = |name: &str| {
            q.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let limit = get("_limit").unwrap_or(PAGE);
        let page = get("_page").unwrap_or(1).max(1);
        let first = (page - 1) * limit + 1;
        let last = (first + limit - 1).min(total);
        let items: Vec<Value> = (first..=last)
            .map(|id| json!({"id": id, "name": format!("product {id}"), "price_cents": id * 10}))
            .collect();
        axum::Json(Value::Array(items))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/products", get(list))
        .with_state(records);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// How the bench's source applies its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apply {
    /// A save per record (`apply`).
    Saves,
    /// A page in one upsert (`apply_many`).
    Pages,
    /// A page in one upsert, the digests kept in the table (`digest_column`).
    Table,
}

struct BenchSource {
    feed: HttpFeed,
    applied: Arc<AtomicU64>,
    apply: Apply,
    pages_per_commit: usize,
}

#[async_trait]
impl Source for BenchSource {
    fn name(&self) -> &str {
        "bench.products"
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    fn pages_per_commit(&self) -> usize {
        self.pages_per_commit
    }

    fn digest_column(&self) -> Option<DigestColumn> {
        (self.apply == Apply::Table).then(|| {
            DigestColumn::new(
                bench_product::Entity,
                bench_product::Column::Id,
                bench_product::Column::Digest,
            )
        })
    }

    async fn apply_many(
        &self,
        cx: &ApplyContext<'_>,
        records: &[&InboundRecord],
    ) -> Option<sync_core::Result<()>> {
        if self.apply == Apply::Saves {
            return None;
        }
        let table = self.apply == Apply::Table;
        let rows = records.iter().map(|r| bench_product::ActiveModel {
            id: Set(r.remote_id.as_str().parse().unwrap_or_default()),
            name: Set(r.data["name"].as_str().unwrap_or_default().to_owned()),
            price_cents: Set(r.data["price_cents"].as_i64().unwrap_or_default()),
            digest: Set(table.then(|| cx.digest(r))),
        });
        let mut update = vec![
            bench_product::Column::Name,
            bench_product::Column::PriceCents,
        ];
        if table {
            update.push(bench_product::Column::Digest);
        }
        let done = bench_product::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(bench_product::Column::Id)
                    .update_columns(update)
                    .to_owned(),
            )
            .exec_without_returning(cx.db())
            .await;
        self.applied
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Some(done.map(drop).map_err(Into::into))
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> sync_core::Result<()> {
        let id: i64 = record.remote_id.as_str().parse().unwrap_or_default();
        let row = bench_product::ActiveModel {
            id: Set(id),
            name: Set(record.data["name"].as_str().unwrap_or_default().to_owned()),
            price_cents: Set(record.data["price_cents"].as_i64().unwrap_or_default()),
            digest: Set(None),
        };
        if cx.previous().is_some() {
            row.update(cx.db()).await?;
        } else {
            row.insert(cx.db()).await?;
        }
        self.applied.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn create_tables(db: &DatabaseConnection) {
    for sql in [
        "CREATE TABLE bench_products (id BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL, price_cents BIGINT NOT NULL, digest VARCHAR(64))",
        "CREATE TABLE bench_cursor (name VARCHAR(50) PRIMARY KEY, page BIGINT NOT NULL)",
        "INSERT INTO bench_cursor (name, page) VALUES ('bare', 0)",
    ] {
        db.execute_unprepared(sql).await.unwrap();
    }
}

fn source(
    url: &str,
    applied: &Arc<AtomicU64>,
    apply: Apply,
    pages_per_commit: usize,
) -> BenchSource {
    let remote = HttpRemote::builder(url, "products").build().unwrap();
    BenchSource {
        feed: HttpFeed::builder(remote)
            .pagination(Pagination::pages("_page", "_limit", PAGE as u32))
            .build()
            .unwrap(),
        applied: applied.clone(),
        apply,
        pages_per_commit,
    }
}

/// The framework: one `run_source` from no cursor to the end of the listing; records per
/// second, and the run's report.
async fn framework(
    db: &DatabaseConnection,
    url: &str,
    records: usize,
    apply: Apply,
    pages_per_commit: usize,
) -> (f64, SourceReport) {
    let applied = Arc::new(AtomicU64::new(0));
    let source = source(url, &applied, apply, pages_per_commit);
    let started = Instant::now();
    let report = run_source(db, &source, &SourceRunOptions::new("bench"))
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.applied as usize, records, "{report:?}");
    (records as f64 / secs, report)
}

/// Where a run's pages took their time, per page.
fn per_page(report: &SourceReport) -> String {
    let t = &report.times;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / report.pages.max(1) as f64;
    format!(
        "reading {:.2}, applying {:.2}, recording {:.2}, committing {:.2} ms (fetching {:.2} ms beside them); {} pages in {} commits",
        ms(t.reading),
        ms(t.applying),
        ms(t.recording),
        ms(t.committing),
        ms(t.fetching),
        report.pages,
        report.commits
    )
}

/// The bare loop: per page, fetch, upsert the page in one statement and store the cursor, in one
/// transaction.
async fn bare(db: &DatabaseConnection, url: &str, records: usize) -> f64 {
    let client = reqwest::Client::new();
    let backend = db.get_database_backend();
    let started = Instant::now();
    let mut page = 1;
    let mut applied = 0;
    loop {
        let items: Vec<Value> = client
            .get(format!("{url}/products?_page={page}&_limit={PAGE}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !items.is_empty() {
            let mut values = Vec::with_capacity(items.len() * 3);
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let n = i * 3;
                rows.push(match backend {
                    sea_orm::DbBackend::Postgres => format!("(${}, ${}, ${})", n + 1, n + 2, n + 3),
                    _ => "(?, ?, ?)".to_owned(),
                });
                values.push(sea_orm::Value::from(item["id"].as_i64().unwrap()));
                values.push(sea_orm::Value::from(
                    item["name"].as_str().unwrap().to_owned(),
                ));
                values.push(sea_orm::Value::from(item["price_cents"].as_i64().unwrap()));
            }
            let sql = format!(
                "INSERT INTO bench_products (id, name, price_cents) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents",
                rows.join(", ")
            );
            let txn = sea_orm::TransactionTrait::begin(db).await.unwrap();
            txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .unwrap();
            let cursor = match backend {
                sea_orm::DbBackend::Postgres => {
                    "UPDATE bench_cursor SET page = $1 WHERE name = 'bare'"
                }
                _ => "UPDATE bench_cursor SET page = ? WHERE name = 'bare'",
            };
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                cursor,
                [page.into()],
            ))
            .await
            .unwrap();
            txn.commit().await.unwrap();
            applied += items.len();
        }
        if items.len() < PAGE {
            break;
        }
        page += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(applied, records);
    records as f64 / secs
}

pub(crate) async fn run(backend: Backend, args: &[String]) {
    let number = |name: &str, default: usize| {
        flag(args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    if args.iter().any(|a| a == "--memory") {
        return memory(backend, number("--records", 1_000_000)).await;
    }
    let records = number("--records", 20_000);
    let rounds = number("--rounds", 3);
    // `--pages-per-commit N`: the sources' `Source::pages_per_commit` (8 by default, 1 commits
    // each page by itself).
    let pages_per_commit = number("--pages-per-commit", 8);
    // `--only saves,pages,table,bare`: the variants to run (all by default).
    let only = flag(args, "--only");
    let runs_variant = |name: &str| only.is_none_or(|o| o.split(',').any(|v| v == name));
    let url = serve_listing(records).await;
    println!(
        "inbound on {backend:?}: {records} records, pages of {PAGE}, {rounds} rounds, up to {pages_per_commit} pages a commit"
    );
    println!(
        "{:>6} {:>11} {:>11} {:>11} {:>11} {:>7} {:>7} {:>7}",
        "round", "saves/s", "pages/s", "table/s", "bare rec/s", "saves", "pages", "table"
    );
    const VARIANTS: [Apply; 3] = [Apply::Saves, Apply::Pages, Apply::Table];
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut reports = Vec::new();
    for round in 0..rounds {
        let mut dbs = Vec::new();
        for _ in 0..4 {
            let t = fresh(backend).await;
            create_tables(&t.db).await;
            dbs.push(t);
        }
        // Rotate the order from one round to the next.
        let mut results = [0.0; 4];
        let mut runs: [Option<SourceReport>; 3] = Default::default();
        for k in 0..4 {
            let which = (k + round) % 4;
            if !runs_variant(["saves", "pages", "table", "bare"][which]) {
                results[which] = f64::NAN;
                continue;
            }
            results[which] = match VARIANTS.get(which) {
                Some(&apply) => {
                    let (rate, report) =
                        framework(&dbs[which].db, &url, records, apply, pages_per_commit).await;
                    runs[which] = Some(report);
                    rate
                }
                None => bare(&dbs[which].db, &url, records).await,
            };
        }
        let bare_rate = results[3];
        print!("{round:>6}");
        for rate in results {
            print!(" {rate:>11.0}");
        }
        for (i, rate) in results[..3].iter().enumerate() {
            print!(" {:>7.2}", rate / bare_rate);
            ratios[i].push(rate / bare_rate);
        }
        println!();
        for (i, rate) in results.iter().enumerate() {
            rates[i].push(*rate);
        }
        reports.push((results[2], runs));
    }
    print!("median");
    for r in &rates {
        print!(" {:>11.0}", median(r));
    }
    for r in &ratios {
        print!(" {:>7.2}", median(r));
    }
    println!();
    // The round whose table rate is the median one.
    reports.sort_by(|x, y| x.0.total_cmp(&y.0));
    if let Some((_, runs)) = reports.get(reports.len() / 2) {
        println!("per page, median round:");
        for (apply, run) in VARIANTS.iter().zip(runs) {
            if let Some(report) = run {
                println!("  {apply:?}: {}", per_page(report));
            }
        }
    }
}

/// Resident memory of this process while the source applies `records` records.
async fn memory(backend: Backend, records: usize) {
    let url = serve_listing(records).await;
    let t = fresh(backend).await;
    create_tables(&t.db).await;
    let applied = Arc::new(AtomicU64::new(0));
    let source = source(&url, &applied, Apply::Saves, 8);
    println!("source memory on {backend:?}: {records} records");
    println!("{:>10} {:>12} {:>12}", "applied", "RSS MiB", "peak MiB");
    let pid = std::process::id();
    let watch = {
        let applied = applied.clone();
        tokio::spawn(async move {
            let mut next = 0;
            loop {
                let done = applied.load(Ordering::Relaxed) as usize;
                if done >= next {
                    if let Some((rss, peak)) = rss_mib(pid) {
                        println!("{done:>10} {rss:>12.1} {peak:>12.1}");
                    }
                    next = done + records / 10;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let started = Instant::now();
    let report = run_source(&t.db, &source, &SourceRunOptions::new("bench"))
        .await
        .unwrap();
    watch.abort();
    let (rss, peak) = rss_mib(pid).unwrap_or_default();
    println!(
        "applied {} in {:.0} s; RSS at the end {rss:.1} MiB, peak {peak:.1} MiB",
        report.applied,
        started.elapsed().as_secs_f64()
    );
}
