//! The built-in table sink: customers kept in step with a reporting table of a second database
//! (a database of its own on PostgreSQL and MariaDB, a second file on SQLite), through the
//! engine: upserts with mapped columns, batches, deletes and soft deletes, a create repeated
//! after a crash, rows changed or removed behind the framework's back, and bad data.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{ColumnDef, Expr, Table};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Statement,
};
use serde_json::{Value, json};
use sync_core::ops::{self, ForgetScope};
use sync_core::retry::ExponentialBackoff;
use sync_core::verify::{Drift, FieldDiff, VerifyOptions};
use sync_core::{
    __worker, BulkItem, Clock, Engine, EngineConfig, Error, ManualClock, Registry, RemoteId,
    Result, Syncer, TableSink, TranslateContext, WhenMissing, async_trait,
};
use sync_tests::models::{address, customer};
use sync_tests::{SecondDb, TestDb, fixtures, on_each_backend};

const TABLE: &str = "customer_report";

/// `erp.customer` as a row of `customer_report`. Names steer the payload: "Broken …" carries a
/// score that is no number, "Nameless …" no name; "V…" are VIPs.
#[derive(Debug)]
struct Report {
    sink: TableSink,
    when_missing: Mutex<WhenMissing>,
}

#[async_trait]
impl Syncer for Report {
    fn name(&self) -> &str {
        "erp.customer"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let id: i32 = cx.key()?;
        let Some(c) = customer::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(None);
        };
        if c.deleted_at.is_some() {
            return Ok(None);
        }
        let city = address::Entity::find()
            .filter(address::Column::CustomerId.eq(id))
            .order_by_asc(address::Column::Id)
            .one(cx.db())
            .await?
            .map(|a| a.city);
        let name = if c.name.starts_with("Nameless") {
            Value::Null
        } else {
            json!(c.name)
        };
        let score = if c.name.starts_with("Broken") {
            json!("n/a")
        } else {
            json!(f64::from(c.id) * 1.5)
        };
        Ok(Some(json!({
            "id": c.id,
            "name": name,
            "email": c.email,
            "phone": c.phone,
            "address": { "city": city },
            "score": score,
            "vip": c.name.starts_with('V'),
            "tags": ["customer", format!("group-{}", c.id % 3)],
            "signed_up": signed_up(c.id),
        })))
    }

    fn when_missing(&self) -> WhenMissing {
        *self.when_missing.lock().unwrap()
    }

    fn table(&self) -> Option<&TableSink> {
        Some(&self.sink)
    }
}

/// [`Report`], counting the rows of every batch it pushes.
#[derive(Debug)]
struct Counted {
    report: Arc<Report>,
    batches: Mutex<Vec<usize>>,
}

#[async_trait]
impl Syncer for Counted {
    fn name(&self) -> &str {
        self.report.name()
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        self.report.translate(cx).await
    }

    async fn push_many(&self, items: &[BulkItem]) -> Vec<Result<RemoteId>> {
        self.batches.lock().unwrap().push(items.len());
        self.report.push_many(items).await
    }

    fn table(&self) -> Option<&TableSink> {
        self.report.table()
    }
}

fn signed_up(id: i32) -> String {
    format!("2024-05-01T12:30:{:02}Z", id % 60)
}

/// The reporting table: a key, the mapped columns of every type, and `is_deleted`.
async fn create_table(second: &SecondDb) {
    let statement = Table::create()
        .table(TABLE)
        .col(
            ColumnDef::new("customer_id")
                .big_integer()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new("name").string().not_null())
        .col(ColumnDef::new("email").string().not_null())
        .col(ColumnDef::new("phone").string().null())
        .col(ColumnDef::new("city").string().null())
        .col(ColumnDef::new("score").double().null())
        .col(ColumnDef::new("vip").boolean().null())
        .col(ColumnDef::new("tags").json().null())
        .col(
            ColumnDef::new("signed_up")
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new("is_deleted")
                .boolean()
                .not_null()
                .default(false),
        )
        .to_owned();
    second
        .db
        .execute(&statement)
        .await
        .expect("create the reporting table");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletes {
    Delete,
    Soft,
}

fn sink(second: &SecondDb, deletes: Deletes) -> TableSink {
    let builder = TableSink::builder(second.db.clone(), TABLE)
        .key("customer_id")
        .column("customer_id", "/id")
        .columns(["name", "email", "phone"])
        .column("city", "/address/city")
        .columns(["score", "vip", "tags", "signed_up"])
        .batch_size(100);
    match deletes {
        Deletes::Delete => builder,
        Deletes::Soft => builder.soft_delete("is_deleted"),
    }
    .build()
    .expect("a valid sink")
}

/// An engine pushing with `report`, on a clock a minute ahead of the application's (the test
/// moves it), whose failed groups wait ten minutes.
fn engine(t: &TestDb, syncer: Arc<dyn Syncer>) -> (Engine, ManualClock) {
    let mut registry = Registry::new();
    registry.register_arc(syncer).unwrap();
    let mut config = EngineConfig::default();
    config.worker_id = "sinks".into();
    config.batch_size = 500;
    config.lease = Duration::from_secs(30);
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(60));
    let engine = Engine::new(t.db.clone(), registry, config)
        .unwrap()
        .with_clock(clock.clone())
        .with_retry_policy(ExponentialBackoff {
            base: Duration::from_secs(600),
            max: Duration::from_secs(600),
            jitter: 0.0,
        });
    (engine, clock)
}

fn report(sink: TableSink) -> Arc<Report> {
    Arc::new(Report {
        sink,
        when_missing: Mutex::new(WhenMissing::Fail),
    })
}

/// One row of the reporting table, read with plain SQL.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    name: String,
    email: String,
    phone: Option<String>,
    city: Option<String>,
    score: Option<f64>,
    vip: Option<bool>,
    tags: Option<Value>,
    /// `YYYY-MM-DD HH:MM:SS` in UTC.
    signed_up: Option<String>,
    is_deleted: bool,
}

async fn rows(second: &SecondDb) -> Vec<Row> {
    let text = match second.backend {
        sync_tests::Backend::MySql => "CHAR",
        _ => "TEXT",
    };
    let sql = format!(
        "SELECT customer_id, name, email, phone, city, score, vip, CAST(tags AS {text}) AS tags, \
         CAST(signed_up AS {text}) AS signed_up, is_deleted FROM {TABLE} ORDER BY customer_id"
    );
    let backend = second.db.get_database_backend();
    let found = second
        .db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .expect("read the reporting table");
    found
        .iter()
        .map(|r| Row {
            id: r.try_get("", "customer_id").unwrap(),
            name: r.try_get("", "name").unwrap(),
            email: r.try_get("", "email").unwrap(),
            phone: r.try_get("", "phone").unwrap(),
            city: r.try_get("", "city").unwrap(),
            score: r.try_get("", "score").unwrap(),
            vip: r.try_get("", "vip").unwrap(),
            tags: r
                .try_get::<Option<String>>("", "tags")
                .unwrap()
                .map(|t| serde_json::from_str(&t).expect("JSON")),
            signed_up: r
                .try_get::<Option<String>>("", "signed_up")
                .unwrap()
                .map(|t| t.replace('T', " ").chars().take(19).collect()),
            is_deleted: r.try_get("", "is_deleted").unwrap(),
        })
        .collect()
}

/// The row a customer's payload makes.
fn expected(c: &customer::Model, city: Option<&str>) -> Row {
    Row {
        id: i64::from(c.id),
        name: c.name.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        city: city.map(str::to_owned),
        score: Some(f64::from(c.id) * 1.5),
        vip: Some(c.name.starts_with('V')),
        tags: Some(json!(["customer", format!("group-{}", c.id % 3)])),
        signed_up: Some(signed_up(c.id).replace('T', " ").replace('Z', "")),
        is_deleted: false,
    }
}

/// Runs `sql` (with `?` placeholders) on the sink's database: a change behind the framework's
/// back.
async fn by_hand(second: &SecondDb, sql: &str, id: i32) {
    let backend = second.db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => sql.replace('?', "$1"),
        _ => sql.to_owned(),
    };
    let done = second
        .db
        .execute_raw(Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await
        .expect("a change by hand");
    assert_eq!(done.rows_affected(), 1);
}

async fn rename(
    db: &sea_orm::DatabaseConnection,
    c: &customer::Model,
    name: &str,
) -> customer::Model {
    let mut am = c.clone().into_active_model();
    am.name = Set(name.into());
    am.update(db).await.unwrap()
}

async fn archive(db: &sea_orm::DatabaseConnection, c: &customer::Model, archived: bool) {
    let mut am = c.clone().into_active_model();
    am.deleted_at = Set(archived.then_some(1_700_000_000_000));
    am.update(db).await.unwrap();
}

#[tokio::test]
async fn rows_land_with_their_mapped_columns_updates_upsert_and_deletes_remove_them() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Delete));
        let (engine, _clock) = engine(&t, report.clone());
        let ada = fixtures::customer(&t.db, "Ada").await;
        let home = fixtures::address(&t.db, ada.id, "London").await;
        let vera = fixtures::customer(&t.db, "Vera").await;

        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (2, 0), "{pass:?}");
        assert_eq!(
            rows(&second).await,
            vec![expected(&ada, Some("London")), expected(&vera, None)]
        );
        // The row's key is the group's remote id, a number as the key column is.
        let group = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(group.remote_id, Some(ada.id.to_string()));
        assert!(group.remote_id_numeric);

        // Updates upsert the same rows.
        let ada = rename(&t.db, &ada, "Ada Lovelace").await;
        let mut am = home.into_active_model();
        am.city = Set("Paris".into());
        am.update(&t.db).await.unwrap();
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!(pass.pushed, 1, "{pass:?}");
        assert_eq!(
            rows(&second).await,
            vec![expected(&ada, Some("Paris")), expected(&vera, None)]
        );

        // The root's deletion deletes the row and closes the group; deleting it again is no
        // error.
        archive(&t.db, &vera, true).await;
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!(pass.deleted, 1, "{pass:?}");
        assert_eq!(rows(&second).await, vec![expected(&ada, Some("Paris"))]);
        assert_eq!(
            t.group("erp.customer", vera.id).await.unwrap().state,
            "deleted"
        );
        report.sink.delete(&vera.id.to_string()).await.unwrap();

        second.remove().await;
    })
    .await;
}

#[tokio::test]
async fn soft_deletes_mark_the_row_and_a_restored_root_is_live_again() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Soft));
        let (engine, _clock) = engine(&t, report.clone());
        let ada = fixtures::customer(&t.db, "Ada").await;
        engine.run_until_idle(10).await.unwrap();
        let id = ada.id.to_string();
        assert!(report.sink.fetch(&id).await.unwrap().is_some());

        archive(&t.db, &ada, true).await;
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!(pass.deleted, 1, "{pass:?}");
        let kept = rows(&second).await;
        assert_eq!(
            kept,
            vec![Row {
                is_deleted: true,
                ..expected(&ada, None)
            }],
            "the row stays, marked deleted"
        );
        assert_eq!(
            report.sink.fetch(&id).await.unwrap(),
            None,
            "a soft-deleted row counts as missing"
        );
        report.sink.delete(&id).await.unwrap();

        // Restored (and renamed meanwhile): the upsert makes the row live again.
        let ada = rename(&t.db, &ada, "Ada Lovelace").await;
        archive(&t.db, &ada, false).await;
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!(pass.pushed, 1, "{pass:?}");
        assert_eq!(rows(&second).await, vec![expected(&ada, None)]);

        second.remove().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_groups_land_in_a_few_batched_statements() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = Arc::new(Counted {
            report: report(sink(&second, Deletes::Delete)),
            batches: Mutex::default(),
        });
        let (engine, _clock) = engine(&t, report.clone());
        let txn = sync_core::begin_write(&t.db).await.unwrap();
        for i in 0..500 {
            fixtures::customer(&txn, &format!("Customer {i}")).await;
        }
        txn.commit().await.unwrap();

        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (500, 0), "{pass:?}");
        let written = rows(&second).await;
        assert_eq!(written.len(), 500);
        let batches = std::mem::take(&mut *report.batches.lock().unwrap());
        assert_eq!(batches.iter().sum::<usize>(), 500, "{batches:?}");
        assert!(batches.iter().all(|n| *n <= 100), "{batches:?}");
        // One upsert statement per batch (100 rows of 9 columns bind far fewer parameters than
        // any backend's limit).
        assert!(
            batches.len() <= 25,
            "500 rows in few statements: {batches:?}"
        );

        // Every customer changes through a bulk write (with the touch helper it needs).
        let txn = sync_core::begin_write(&t.db).await.unwrap();
        customer::Entity::update_many()
            .col_expr(customer::Column::Email, Expr::value("all@example.com"))
            .exec(&txn)
            .await
            .unwrap();
        sync_core::touch_matching(&txn, customer::Entity::find())
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (500, 0), "{pass:?}");
        let written = rows(&second).await;
        assert_eq!(written.len(), 500, "updates create no rows");
        assert!(written.iter().all(|r| r.email == "all@example.com"));
        let batches = report.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 500, "{batches:?}");
        assert!(batches.len() <= 25, "{batches:?}");

        let verified = engine.verify(&VerifyOptions::all()).await.unwrap();
        assert_eq!(verified.count("in_step"), 500);

        second.remove().await;
    })
    .await;
}

#[tokio::test]
async fn a_create_repeated_after_a_crash_leaves_exactly_one_row() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Delete));
        let (engine, clock) = engine(&t, report.clone());
        let ada = fixtures::customer(&t.db, "Ada").await;

        // A worker claims the group and writes the row, then dies before recording anything.
        let claimed = __worker::claim(&engine, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let attempt = __worker::process(&engine, claimed[0].clone(), false).await;
        assert!(attempt.result.is_ok(), "{:?}", attempt.result);
        drop(attempt);
        assert_eq!(rows(&second).await.len(), 1);
        let group = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(group.remote_id, None, "nothing recorded");
        // A create recorded as pending, with an older body, as a worker sending it unrecorded
        // would have left it; then the data changes and the lease runs out.
        t.db.execute_raw(Statement::from_sql_and_values(
            t.db.get_database_backend(),
            match t.db.get_database_backend() {
                DbBackend::Postgres => {
                    "UPDATE sync_groups SET create_key = 'k-old', create_payload = $1 WHERE id = $2"
                }
                _ => "UPDATE sync_groups SET create_key = 'k-old', create_payload = ? WHERE id = ?",
            },
            [
                json!({"id": ada.id, "name": "Stale", "email": "stale@example.com"})
                    .to_string()
                    .into(),
                group.id.into(),
            ],
        ))
        .await
        .unwrap();
        let ada = rename(&t.db, &ada, "Ada Lovelace").await;
        clock.advance(Duration::from_secs(31));

        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (1, 0), "{pass:?}");
        assert_eq!(
            rows(&second).await,
            vec![expected(&ada, None)],
            "one row, with the current data"
        );
        let group = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(
            (group.state.as_str(), group.synced_version),
            ("synced", group.version)
        );
        assert_eq!(group.remote_id, Some(ada.id.to_string()));
        assert_eq!((group.create_key, group.create_payload), (None, None));

        second.remove().await;
    })
    .await;
}

#[tokio::test]
async fn verify_compares_rows_and_repair_puts_them_back() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Soft));
        let (engine, _clock) = engine(&t, report.clone());
        let mut customers = Vec::new();
        for name in ["In step", "Edited", "Deleted", "Marked deleted"] {
            customers.push(fixtures::customer(&t.db, name).await);
        }
        fixtures::address(&t.db, customers[0].id, "Lyon").await;
        engine.run_until_idle(10).await.unwrap();
        let clean = engine.verify(&VerifyOptions::all()).await.unwrap();
        assert_eq!(clean.count("in_step"), 4, "{clean:#?}");

        // Behind the framework's back: an edit, a delete, a soft delete.
        let edited = customers[1].id;
        by_hand(
            &second,
            &format!(
                "UPDATE {TABLE} SET name = 'Edited by hand', city = 'Nowhere' WHERE customer_id = ?"
            ),
            edited,
        )
        .await;
        by_hand(
            &second,
            &format!("DELETE FROM {TABLE} WHERE customer_id = ?"),
            customers[2].id,
        )
        .await;
        by_hand(
            &second,
            &format!("UPDATE {TABLE} SET is_deleted = TRUE WHERE customer_id = ?"),
            customers[3].id,
        )
        .await;
        let before = rows(&second).await;
        let groups_before = t.snapshot().await;

        let report = engine.verify(&VerifyOptions::all()).await.unwrap();
        let drift = |c: &customer::Model| {
            report
                .groups
                .iter()
                .find(|g| g.root_key == c.id.to_string())
                .map(|g| g.drift.clone())
                .unwrap()
        };
        assert_eq!(drift(&customers[0]), Drift::InStep);
        assert_eq!(
            drift(&customers[1]),
            Drift::Different {
                fields: vec![
                    FieldDiff {
                        path: "/address/city".into(),
                        local: Value::Null,
                        remote: Some(json!("Nowhere")),
                    },
                    FieldDiff {
                        path: "/name".into(),
                        local: json!("Edited"),
                        remote: Some(json!("Edited by hand")),
                    },
                ]
            }
        );
        assert_eq!(drift(&customers[2]), Drift::Missing);
        assert_eq!(drift(&customers[3]), Drift::Missing);
        assert_eq!(rows(&second).await, before, "verification writes nothing");
        assert_eq!(t.snapshot().await, groups_before);

        let repaired = ops::repair(&t.db, &report, sync_core::now_ms())
            .await
            .unwrap();
        assert_eq!((repaired.pushed_again, repaired.created_again), (1, 2));
        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (3, 0), "{pass:?}");
        let after = engine.verify(&VerifyOptions::all()).await.unwrap();
        assert_eq!(after.count("in_step"), 4, "{after:#?}");
        assert_eq!(
            rows(&second).await,
            vec![
                expected(&customers[0], Some("Lyon")),
                expected(&customers[1], None),
                expected(&customers[2], None),
                expected(&customers[3], None),
            ]
        );

        second.remove().await;
    })
    .await;
}

#[tokio::test]
async fn an_update_of_a_row_deleted_by_hand_fails_visibly_or_writes_it_back() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Delete));
        let (engine, clock) = engine(&t, report.clone());
        let ada = fixtures::customer(&t.db, "Ada").await;
        engine.run_until_idle(10).await.unwrap();

        // By default the group fails like an update answered 404, saying how to recreate it.
        by_hand(
            &second,
            &format!("DELETE FROM {TABLE} WHERE customer_id = ?"),
            ada.id,
        )
        .await;
        let ada = rename(&t.db, &ada, "Ada Lovelace").await;
        let pass = engine.run_once().await.unwrap();
        assert_eq!(pass.failed, 1, "{pass:?}");
        assert!(rows(&second).await.is_empty(), "not written back silently");
        let group = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(
            (group.state.as_str(), group.last_status),
            ("failed", Some(404))
        );
        let error = group.last_error.unwrap();
        assert!(
            error.contains(&format!("`{TABLE}` has no row with key `{}`", ada.id))
                && error.contains(&format!("forget --group {}", group.id)),
            "{error}"
        );
        let forgotten = ops::forget(
            &t.db,
            &ForgetScope::Missing { syncer: None },
            clock.now_ms(),
        )
        .await
        .unwrap();
        assert_eq!(forgotten, 1);
        engine.run_until_idle(10).await.unwrap();
        assert_eq!(rows(&second).await, vec![expected(&ada, None)]);

        // A syncer that says so has the row written back by itself.
        *report.when_missing.lock().unwrap() = WhenMissing::Recreate;
        by_hand(
            &second,
            &format!("DELETE FROM {TABLE} WHERE customer_id = ?"),
            ada.id,
        )
        .await;
        let ada = rename(&t.db, &ada, "Ada King").await;
        let pass = engine.run_once().await.unwrap();
        assert_eq!(pass.recreating, 1, "{pass:?}");
        clock.advance(Duration::from_secs(601));
        engine.run_until_idle(10).await.unwrap();
        assert_eq!(rows(&second).await, vec![expected(&ada, None)]);
        let group = t.group("erp.customer", ada.id).await.unwrap();
        assert_eq!(group.state, "synced");

        second.remove().await;
    })
    .await;
}

#[tokio::test]
async fn bad_data_fails_only_its_group_and_a_wrong_mapping_names_the_table_s_columns() {
    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        create_table(&second).await;
        let report = report(sink(&second, Deletes::Delete));
        let (engine, _clock) = engine(&t, report.clone());
        let good = fixtures::customer(&t.db, "Good").await;
        let broken = fixtures::customer(&t.db, "Broken Bob").await;
        let nameless = fixtures::customer(&t.db, "Nameless Nora").await;
        let also_good = fixtures::customer(&t.db, "Also good").await;

        let pass = engine.run_until_idle(10).await.unwrap();
        assert_eq!((pass.pushed, pass.failed), (2, 2), "{pass:?}");
        let ids: Vec<i64> = rows(&second).await.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![i64::from(good.id), i64::from(also_good.id)]);
        // A value that does not fit its column, named with the table, key and field.
        let error = t
            .group("erp.customer", broken.id)
            .await
            .unwrap()
            .last_error
            .unwrap();
        assert!(
            error.contains(&format!(
                "table sink `{TABLE}`, key `{}`: the payload's `/score` is `\"n/a\"` (a string), \
                 which does not fit float column `score`",
                broken.id
            )),
            "{error}"
        );
        // A value the database refuses (NULL in a NOT NULL column): only that row fails.
        let group = t.group("erp.customer", nameless.id).await.unwrap();
        assert_eq!(group.state, "failed");
        let error = group.last_error.unwrap();
        assert!(
            error.contains(&format!("upserting key `{}` failed", nameless.id))
                && error.to_lowercase().contains("name"),
            "{error}"
        );

        // A mapping naming a column the table lacks, or a table that does not exist, is a
        // configuration error saying what there is.
        let wrong = TableSink::builder(second.db.clone(), TABLE)
            .key("customer_id")
            .column("customer_id", "/id")
            .column("citi", "/address/city")
            .build()
            .unwrap();
        match wrong.check().await {
            Err(Error::Config(message)) => assert!(
                message.contains("has no column `citi` (mapped from `/address/city`)")
                    && message.contains("`city`"),
                "{message}"
            ),
            other => panic!("expected a configuration error, got {other:?}"),
        }
        // A worker with such a sink refuses to start, saying why.
        let mut registry = Registry::new();
        registry
            .register(Report {
                sink: wrong.clone(),
                when_missing: Mutex::new(WhenMissing::Fail),
            })
            .unwrap();
        let worker = sync_worker::Worker::new(
            t.db.clone(),
            registry,
            sync_worker::WorkerSettings::default(),
        )
        .unwrap();
        let refused = worker
            .run_until(std::future::pending())
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("has no column `citi`"), "{refused}");

        let absent = TableSink::builder(second.db.clone(), "no_such_table")
            .key("id")
            .column("id", "/id")
            .build()
            .unwrap();
        match absent
            .push_many(&[BulkItem {
                remote_id: None,
                idempotency_key: String::new(),
                payload: json!({"id": 1}),
            }])
            .await
            .as_slice()
        {
            [Err(Error::Config(message))] => {
                assert!(message.contains("does not exist"), "{message}");
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }

        second.remove().await;
    })
    .await;
}

/// The sink on its own: composite keys, a changed key moving its row, remote ids that are no
/// key, a table without a unique key, a PostgreSQL type the sink does not know, and a
/// database that is gone.
#[tokio::test]
async fn composite_keys_moved_keys_and_a_lost_database() {
    use sea_orm::sea_query::Index;

    on_each_backend(|t: TestDb| async move {
        let second = t.second_database().await;
        let table = |name: &str, keyed: bool| {
            let mut statement = Table::create();
            statement
                .table(name.to_owned())
                .col(ColumnDef::new("region").string_len(8).not_null())
                .col(ColumnDef::new("code").big_integer().not_null())
                .col(ColumnDef::new("label").string().null());
            if keyed {
                statement.primary_key(Index::create().col("region").col("code"));
            }
            statement.to_owned()
        };
        for statement in [table("regional", true), table("unkeyed", false)] {
            second.db.execute(&statement).await.unwrap();
        }
        let sink = |db: &sea_orm::DatabaseConnection, name: &str| {
            TableSink::builder(db.clone(), name)
                .key("region")
                .key("code")
                .columns(["region", "code", "label"])
                .build()
                .unwrap()
        };
        let item = |old: Option<&str>, region: &str, code: i64, label: &str| BulkItem {
            remote_id: old.map(RemoteId::string),
            idempotency_key: String::new(),
            payload: json!({"region": region, "code": code, "label": label}),
        };
        let regional = sink(&second.db, "regional");

        let ids: Vec<String> = regional
            .push_many(&[item(None, "eu", 1, "one"), item(None, "us", 1, "uno")])
            .await
            .into_iter()
            .map(|r| r.unwrap().as_str().to_owned())
            .collect();
        assert_eq!(ids, [r#"["eu",1]"#, r#"["us",1]"#]);
        assert_eq!(
            regional.fetch(r#"["eu",1]"#).await.unwrap(),
            Some(json!({"region": "eu", "code": 1, "label": "one"}))
        );

        // An update carrying another key moves the row.
        let moved = regional
            .push_many(&[item(Some(r#"["eu",1]"#), "eu", 2, "two")])
            .await;
        assert_eq!(moved[0].as_ref().unwrap().as_str(), r#"["eu",2]"#);
        assert_eq!(regional.fetch(r#"["eu",1]"#).await.unwrap(), None);
        assert_eq!(
            regional.fetch(r#"["eu",2]"#).await.unwrap(),
            Some(json!({"region": "eu", "code": 2, "label": "two"}))
        );
        regional.delete(r#"["eu",2]"#).await.unwrap();
        regional.delete(r#"["eu",2]"#).await.unwrap();
        assert_eq!(regional.fetch(r#"["eu",2]"#).await.unwrap(), None);
        match regional.fetch("7").await {
            Err(Error::Permanent { message, .. }) => {
                assert!(
                    message.contains("is not a JSON array of 2 key values"),
                    "{message}"
                );
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }

        // Without a unique key on the key columns an upsert could make duplicates: refused.
        match sink(&second.db, "unkeyed")
            .push_many(&[item(None, "eu", 1, "one")])
            .await
            .as_slice()
        {
            [Err(Error::Config(message))] => assert!(message.contains("unkeyed"), "{message}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }

        // On PostgreSQL a type the sink does not know (an enum) is written as text, cast by the
        // database; a value it refuses fails that item.
        if second.backend == sync_tests::Backend::Postgres {
            second
                .db
                .execute_unprepared(
                    "CREATE TYPE tier AS ENUM ('gold', 'silver'); \
                     CREATE TABLE tiers (id bigint PRIMARY KEY, tier tier NOT NULL)",
                )
                .await
                .unwrap();
            let tiers = TableSink::builder(second.db.clone(), "public.tiers")
                .key("id")
                .columns(["id", "tier"])
                .build()
                .unwrap();
            let id = tiers
                .create(&json!({"id": 1, "tier": "gold"}))
                .await
                .unwrap();
            assert_eq!(
                tiers.fetch(id.as_str()).await.unwrap(),
                Some(json!({"id": 1, "tier": "gold"}))
            );
            match tiers.create(&json!({"id": 2, "tier": "bronze"})).await {
                Err(Error::Permanent { message, .. }) => {
                    assert!(message.contains("upserting key `2`"), "{message}");
                }
                other => panic!("expected a permanent error, got {other:?}"),
            }
        }

        // A database that is gone is retried, not given up.
        let pool = sync_core::connect(&second.url, 1).await.unwrap();
        let lost = sink(&pool, "regional");
        lost.check().await.unwrap();
        pool.close().await.unwrap();
        match lost
            .push_many(&[item(None, "eu", 3, "three")])
            .await
            .as_slice()
        {
            [Err(Error::Retryable { message, .. })] => {
                assert!(message.contains("table sink `regional`"), "{message}");
            }
            other => panic!("expected a retryable error, got {other:?}"),
        }

        second.remove().await;
    })
    .await;
}
