//! The API, called in process with `oneshot`: its answers, and what each write does to the
//! `sync_groups` rows.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};
use sync_worker::testing::{self, TestDatabase};
use tower::ServiceExt;

use example_app::api::app;
use example_app::migration::Migrator;

/// A migrated database in a temporary SQLite file (the framework's test kit), and the app over
/// it.
struct TestApp {
    db: DatabaseConnection,
    _database: TestDatabase,
}

/// A group as the tests compare it: `(syncer, root key, version, state, root deleted)`.
type Group = (String, String, i64, String, bool);

impl TestApp {
    async fn new() -> Self {
        let database = TestDatabase::sqlite().await.unwrap();
        Migrator::up(&database.db, None).await.unwrap();
        TestApp {
            db: database.db.clone(),
            _database: database,
        }
    }

    /// Calls the app with a JSON body (none for `Value::Null`).
    async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::builder().method(method).uri(path);
        let request = if body.is_null() {
            request.body(Body::empty())
        } else {
            request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
        };
        self.send(request.unwrap()).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(self.db.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }

    /// Like `call`, asserting the status.
    async fn expect(&self, method: &str, path: &str, body: Value, status: StatusCode) -> Value {
        let (got, answer) = self.call(method, path, body).await;
        assert_eq!(got, status, "{method} {path} answered {answer}");
        answer
    }

    /// The groups as a worker sees them (the touches the app's writes logged applied).
    async fn groups(&self) -> Vec<Group> {
        testing::groups(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.syncer, g.root_key, g.version, g.state, g.root_deleted))
            .collect()
    }

    /// Pretends the worker pushed everything: every group clean.
    async fn mark_all_synced(&self) {
        testing::mark_all_synced(&self.db).await.unwrap();
    }

    async fn create_customer(&self, name: &str, city: &str) -> Value {
        self.expect(
            "POST",
            "/customers",
            json!({
                "name": name,
                "email": format!("{}@example.com", name.to_lowercase()),
                "addresses": [{ "street": "1 Main Street", "city": city }],
            }),
            StatusCode::CREATED,
        )
        .await
    }

    async fn create_order(&self, customer_id: i64, reference: &str) -> Value {
        self.expect(
            "POST",
            "/orders",
            json!({
                "customer_id": customer_id,
                "reference": reference,
                "line_items": [{ "sku": "TEA-01", "quantity": 2, "unit_price_cents": 450 }],
                "billing": { "company": "Stone Ltd", "vat_id": "GB1", "address": "London" },
            }),
            StatusCode::CREATED,
        )
        .await
    }
}

fn group(syncer: &str, key: &str, version: i64, state: &str) -> Group {
    (syncer.into(), key.into(), version, state.into(), false)
}

fn deleted(syncer: &str, key: &str, version: i64) -> Group {
    (syncer.into(), key.into(), version, "pending".into(), true)
}

#[tokio::test]
async fn creating_a_customer_registers_its_erp_and_crm_groups() {
    let t = TestApp::new().await;
    let ada = t.create_customer("Ada", "Paris").await;
    assert_eq!(ada["name"], "Ada");
    assert_eq!(ada["addresses"][0]["city"], "Paris");
    assert!(ada.get("deleted_at").is_none(), "{ada}");
    // Each group: registered (1), then touched by the address inserted with it (2).
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 2, "pending"),
            group("erp.customer", "1", 2, "pending"),
        ]
    );
    assert_eq!(
        t.expect("GET", "/customers/1", Value::Null, StatusCode::OK)
            .await,
        ada
    );
}

#[tokio::test]
async fn a_change_touches_only_the_groups_that_watch_it() {
    let t = TestApp::new().await;
    t.create_customer("Ada", "Paris").await;
    t.mark_all_synced().await;

    t.expect(
        "PATCH",
        "/customers/1",
        json!({ "email": "ada@lovelace.org" }),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 3, "pending"),
            group("erp.customer", "1", 3, "pending"),
        ],
        "both remotes show the email"
    );

    t.mark_all_synced().await;
    let answer = t
        .expect(
            "PATCH",
            "/customers/1",
            json!({ "phone": "555" }),
            StatusCode::OK,
        )
        .await;
    assert_eq!(answer["phone"], "555");
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 3, "synced"),
            group("erp.customer", "1", 4, "pending"),
        ],
        "only the ERP shows the phone"
    );

    t.mark_all_synced().await;
    let before = t.groups().await;
    t.expect(
        "PATCH",
        "/customers/1",
        json!({ "internal_note": "vip" }),
        StatusCode::OK,
    )
    .await;
    t.expect(
        "PATCH",
        "/customers/1",
        json!({ "email": "ada@lovelace.org" }),
        StatusCode::OK,
    )
    .await;
    t.expect(
        "PATCH",
        "/addresses/1",
        json!({ "label": "home" }),
        StatusCode::OK,
    )
    .await;
    t.expect("PATCH", "/customers/1", json!({}), StatusCode::OK)
        .await;
    assert_eq!(
        t.groups().await,
        before,
        "an unwatched column, a value set to what it was, or nothing: no group touched"
    );

    let answer = t
        .expect(
            "PATCH",
            "/customers/1",
            json!({ "phone": null }),
            StatusCode::OK,
        )
        .await;
    assert_eq!(answer["phone"], Value::Null, "`null` clears the phone");
}

#[tokio::test]
async fn addresses_touch_their_customers_and_a_move_touches_both() {
    let t = TestApp::new().await;
    t.create_customer("Ada", "Paris").await;
    t.create_customer("Bob", "London").await;
    t.mark_all_synced().await;

    let address = t
        .expect(
            "POST",
            "/customers/2/addresses",
            json!({ "street": "1 Canada Square", "city": "London", "label": "work" }),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(address["customer_id"], 2);
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 2, "synced"),
            group("crm.contact", "2", 3, "pending"),
            group("erp.customer", "1", 2, "synced"),
            group("erp.customer", "2", 3, "pending"),
        ]
    );

    t.mark_all_synced().await;
    t.expect(
        "PATCH",
        "/addresses/1",
        json!({ "customer_id": 2 }),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 3, "pending"),
            group("crm.contact", "2", 4, "pending"),
            group("erp.customer", "1", 3, "pending"),
            group("erp.customer", "2", 4, "pending"),
        ],
        "moving an address touches the customer it left and the one it joined"
    );
    let bob = t
        .expect("GET", "/customers/2", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(bob["addresses"].as_array().unwrap().len(), 3);

    t.mark_all_synced().await;
    t.expect(
        "DELETE",
        "/addresses/1",
        Value::Null,
        StatusCode::NO_CONTENT,
    )
    .await;
    t.expect("GET", "/addresses/1", Value::Null, StatusCode::NOT_FOUND)
        .await;
    assert_eq!(
        t.groups().await,
        [
            group("crm.contact", "1", 3, "synced"),
            group("crm.contact", "2", 5, "pending"),
            group("erp.customer", "1", 3, "synced"),
            group("erp.customer", "2", 5, "pending"),
        ]
    );
}

#[tokio::test]
async fn an_order_its_line_items_and_billing_feed_one_sales_order() {
    let t = TestApp::new().await;
    t.create_customer("Bob", "London").await;
    let order = t.create_order(1, "SO-1").await;
    assert_eq!(order["total_cents"], 900);
    assert_eq!(order["billing"]["company"], "Stone Ltd");
    let sales_order = |version| group("erp.sales_order", "1", version, "pending");
    // Registered on insert (1), touched by its line item (2) and its billing info (3).
    assert_eq!(t.groups().await[2], sales_order(3));

    let item = t
        .expect(
            "POST",
            "/orders/1/line_items",
            json!({ "sku": "CUP-02", "quantity": 1, "unit_price_cents": 1200 }),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(item["order_id"], 1);
    t.expect(
        "PATCH",
        "/line_items/1",
        json!({ "quantity": 3 }),
        StatusCode::OK,
    )
    .await;
    t.expect(
        "PATCH",
        "/line_items/1",
        json!({ "note": "fragile" }),
        StatusCode::OK,
    )
    .await;
    t.expect(
        "PUT",
        "/orders/1/billing",
        json!({ "company": "Stone & Co", "vat_id": "GB1", "address": "London" }),
        StatusCode::OK,
    )
    .await;
    t.expect(
        "PATCH",
        "/orders/1",
        json!({ "internal_note": "rush" }),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        t.groups().await[2],
        sales_order(6),
        "line item insert and update, billing update; not the unwatched notes"
    );
    let order = t
        .expect("GET", "/orders/1", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(order["total_cents"], 3 * 450 + 1200);
    assert_eq!(order["line_items"][0]["note"], "fragile");
    let billing = t
        .expect("GET", "/orders/1/billing", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(billing["company"], "Stone & Co");

    t.expect(
        "DELETE",
        "/line_items/2",
        Value::Null,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(t.groups().await[2], sales_order(7));
}

#[tokio::test]
async fn deleting_an_order_deletes_its_rows_and_marks_one_remote_delete() {
    let t = TestApp::new().await;
    t.create_customer("Bob", "London").await;
    t.create_order(1, "SO-1").await;
    t.mark_all_synced().await;

    t.expect("DELETE", "/orders/1", Value::Null, StatusCode::NO_CONTENT)
        .await;
    assert_eq!(
        t.groups().await[2],
        deleted("erp.sales_order", "1", 6),
        "its line item and billing info touched it, then the order marked it deleted"
    );
    for path in ["/orders/1", "/line_items/1", "/orders/1/billing"] {
        t.expect("GET", path, Value::Null, StatusCode::NOT_FOUND)
            .await;
    }
}

#[tokio::test]
async fn archiving_a_customer_deletes_it_from_both_remotes() {
    let t = TestApp::new().await;
    t.create_customer("Ada", "Paris").await;
    t.create_customer("Bob", "London").await;
    t.create_order(2, "SO-1").await;
    t.mark_all_synced().await;

    t.expect(
        "DELETE",
        "/customers/1",
        Value::Null,
        StatusCode::NO_CONTENT,
    )
    .await;
    let groups = t.groups().await;
    assert_eq!(groups[0], deleted("crm.contact", "1", 3));
    assert_eq!(groups[2], deleted("erp.customer", "1", 3));
    let answer = t
        .expect("GET", "/customers/1", Value::Null, StatusCode::NOT_FOUND)
        .await;
    assert_eq!(answer["error"], "no customer 1");
    let answer = t
        .expect(
            "POST",
            "/orders",
            json!({ "customer_id": 1, "reference": "SO-2" }),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(answer["error"], "`customer_id`: no customer 1");

    let answer = t
        .expect("DELETE", "/customers/2", Value::Null, StatusCode::CONFLICT)
        .await;
    assert_eq!(
        answer["error"],
        "customer 2 has 1 order(s); delete them before archiving the customer"
    );
}

#[tokio::test]
async fn bad_requests_get_a_json_error_naming_the_problem() {
    let t = TestApp::new().await;
    t.create_customer("Ada", "Paris").await;
    let cases = [
        (
            "GET",
            "/customers/42",
            Value::Null,
            StatusCode::NOT_FOUND,
            "no customer 42",
        ),
        (
            "PATCH",
            "/addresses/7",
            json!({ "city": "Rome" }),
            StatusCode::NOT_FOUND,
            "no address 7",
        ),
        (
            "GET",
            "/orders/1/billing",
            Value::Null,
            StatusCode::NOT_FOUND,
            "no order 1",
        ),
        (
            "GET",
            "/nowhere",
            Value::Null,
            StatusCode::NOT_FOUND,
            "no route for GET /nowhere",
        ),
        (
            "GET",
            "/customers/abc",
            Value::Null,
            StatusCode::BAD_REQUEST,
            "Cannot parse `abc`",
        ),
        (
            "POST",
            "/customers",
            json!({ "name": "", "email": "x@example.com" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`name` must not be empty",
        ),
        (
            "POST",
            "/customers",
            json!({ "name": "Bo", "email": "bo" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`email` must be an email address, not `bo`",
        ),
        (
            "POST",
            "/customers",
            json!({ "name": "Bo" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `email`",
        ),
        (
            "POST",
            "/customers",
            json!({ "name": "Bo", "email": "bo@x.org", "nmae": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `nmae`",
        ),
        (
            "PATCH",
            "/customers/1",
            json!({ "name": 7 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type: integer `7`, expected a string",
        ),
        (
            "PATCH",
            "/addresses/1",
            json!({ "customer_id": 42 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`customer_id`: no customer 42",
        ),
        (
            "POST",
            "/orders",
            json!({ "customer_id": 1, "reference": "SO-1", "status": "lost" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`status` must be one of open, confirmed, shipped, cancelled, not `lost`",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let answer = t.expect(method, path, body, status).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{method} {path}: `{error}` should contain `{message}`"
        );
    }

    let broken = Request::post("/customers")
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let (status, answer) = t.send(broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().unwrap().contains("EOF"),
        "{answer}"
    );

    let untyped = Request::post("/customers")
        .body(Body::from(
            json!({ "name": "Bo", "email": "bo@x.org" }).to_string(),
        ))
        .unwrap();
    let (status, answer) = t.send(untyped).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_rejected_write_rolls_back_with_its_sync_marks() {
    let t = TestApp::new().await;
    t.create_customer("Ada", "Paris").await;
    t.create_order(1, "SO-1").await;
    t.mark_all_synced().await;
    let before = t.groups().await;

    // The order and its first line are written before the second line is refused: the whole
    // transaction, sync marks included, rolls back.
    let answer = t
        .expect(
            "POST",
            "/orders",
            json!({
                "customer_id": 1,
                "reference": "SO-2",
                "line_items": [
                    { "sku": "TEA-01", "quantity": 1, "unit_price_cents": 450 },
                    { "sku": "CUP-02", "quantity": 0, "unit_price_cents": 1200 },
                ],
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(answer["error"], "`quantity` must be at least 1, not 0");
    assert_eq!(t.groups().await, before);
    t.expect("GET", "/orders/2", Value::Null, StatusCode::NOT_FOUND)
        .await;

    let answer = t
        .expect(
            "POST",
            "/orders",
            json!({ "customer_id": 1, "reference": "SO-1" }),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(
        answer["error"],
        "an order with reference `SO-1` already exists"
    );
    assert_eq!(t.groups().await, before);
}
