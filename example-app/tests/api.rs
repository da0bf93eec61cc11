//! The API, called in process with `oneshot`, asserting the answers and the `sync_groups` rows.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};
use sync_core::entity::sync_group;
use tower::ServiceExt;

use example_app::{api::app, migration::Migrator};

async fn database() -> (DatabaseConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("api.db").display());
    let db = sync_core::connect(&url, 4).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    (db, dir)
}

async fn call(
    db: &DatabaseConnection,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .unwrap();
    let response = app(db.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

/// `(syncer, root_key, version, state, root_deleted)` of every group.
async fn groups(db: &DatabaseConnection) -> Vec<(String, String, i64, String, bool)> {
    sync_group::Entity::find()
        .order_by_asc(sync_group::Column::Syncer)
        .order_by_asc(sync_group::Column::RootKey)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.syncer, g.root_key, g.version, g.state, g.root_deleted))
        .collect()
}

fn group(
    syncer: &str,
    key: &str,
    version: i64,
    deleted: bool,
) -> (String, String, i64, String, bool) {
    (
        syncer.into(),
        key.into(),
        version,
        "pending".into(),
        deleted,
    )
}

#[tokio::test]
async fn creating_a_customer_registers_both_of_its_groups() {
    let (db, _dir) = database().await;
    let (status, body) = call(
        &db,
        "POST",
        "/customers",
        json!({"name": "Ada", "email": "ada@example.com", "addresses": [{"street": "1 Main St", "city": "Paris"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["addresses"][0]["city"], "Paris");
    // ERP: registered on insert (1), touched by the address (2). CRM: registered by the
    // service code (1), touched by the address (2).
    assert_eq!(
        groups(&db).await,
        [
            group("crm.contact", "1", 2, false),
            group("erp.customer", "1", 2, false)
        ]
    );
}

#[tokio::test]
async fn unwatched_changes_write_no_group() {
    let (db, _dir) = database().await;
    call(
        &db,
        "POST",
        "/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let before = groups(&db).await;
    let (status, body) = call(
        &db,
        "PATCH",
        "/customers/1",
        json!({"internal_note": "vip"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["internal_note"], "vip");
    assert_eq!(groups(&db).await, before);
    call(&db, "PATCH", "/customers/1", json!({"phone": "555"})).await;
    assert_eq!(
        groups(&db).await,
        [
            group("crm.contact", "1", 1, false),
            group("erp.customer", "1", 2, false)
        ]
    );
}

#[tokio::test]
async fn orders_lines_and_billing_feed_one_sales_order() {
    let (db, _dir) = database().await;
    call(
        &db,
        "POST",
        "/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let (status, order) = call(
        &db,
        "POST",
        "/orders",
        json!({"customer_id": 1, "reference": "SO-1", "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 100}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let line = order["lines"][0]["id"].as_i64().unwrap();
    call(
        &db,
        "PATCH",
        &format!("/line_items/{line}"),
        json!({"quantity": 4}),
    )
    .await;
    call(
        &db,
        "PUT",
        "/orders/1/billing",
        json!({"company": "Ada Ltd", "vat_id": "X1", "address": "Paris"}),
    )
    .await;
    let sales_order = groups(&db)
        .await
        .into_iter()
        .find(|g| g.0 == "erp.sales_order")
        .unwrap();
    assert_eq!(
        sales_order,
        group("erp.sales_order", "1", 4, false),
        "insert, line insert, line update, billing"
    );

    let (status, _) = call(&db, "DELETE", "/orders/1", Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let sales_order = groups(&db)
        .await
        .into_iter()
        .find(|g| g.0 == "erp.sales_order")
        .unwrap();
    assert!(
        sales_order.4,
        "deleting the order marks its group for a remote delete"
    );
}

#[tokio::test]
async fn archiving_a_customer_deletes_it_from_the_erp_only() {
    let (db, _dir) = database().await;
    call(
        &db,
        "POST",
        "/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let (status, body) = call(&db, "PATCH", "/customers/1", json!({"archived": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["deleted_at"].is_i64());
    assert_eq!(
        groups(&db).await,
        [
            group("crm.contact", "1", 1, false),
            group("erp.customer", "1", 2, true)
        ]
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_writes_nothing() {
    let (db, _dir) = database().await;
    let (status, body) = call(
        &db,
        "POST",
        "/customers",
        json!({"name": "", "email": "x@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "`name` must not be empty");
    let (status, body) = call(
        &db,
        "POST",
        "/orders",
        json!({"customer_id": 42, "reference": "SO-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "`customer_id`: no customer 42");
    let (status, body) = call(&db, "PATCH", "/addresses/7", json!({"city": "Rome"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no address 7");
    // A failing line inside an order rolls the whole order back, groups included.
    call(
        &db,
        "POST",
        "/customers",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let before = groups(&db).await;
    let (status, _) = call(
        &db,
        "POST",
        "/orders",
        json!({"customer_id": 1, "reference": "SO-2", "lines": [{"sku": "A", "quantity": 0, "unit_price_cents": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(groups(&db).await, before);
    let (status, _) = call(&db, "GET", "/orders/1", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_demo_story_passes() {
    let report = example_app::demo::run(None).await.unwrap();
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.checks.len(), 16);
}
