//! The application's JSON API. Every write runs in a transaction through `ActiveModel`
//! insert/update/delete, so the `Syncable` hooks mark the right groups dirty in the same
//! transaction.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
    TryIntoModel,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::entities::{address, billing_info, customer, line_item, order};

/// The router, over `db`.
pub fn app(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/customers", post(create_customer))
        .route(
            "/customers/{id}",
            get(get_customer)
                .patch(update_customer)
                .delete(delete_customer),
        )
        .route("/customers/{id}/addresses", post(create_address))
        .route(
            "/addresses/{id}",
            patch(update_address).delete(delete_address),
        )
        .route("/orders", post(create_order))
        .route(
            "/orders/{id}",
            get(get_order).patch(update_order).delete(delete_order),
        )
        .route("/orders/{id}/line_items", post(create_line_item))
        .route("/orders/{id}/billing", put(put_billing))
        .route(
            "/line_items/{id}",
            patch(update_line_item).delete(delete_line_item),
        )
        .with_state(db)
}

/// An error answer: `{"error": "..."}` with a status that says whose fault it is.
#[derive(Debug)]
pub enum ApiError {
    /// 404.
    NotFound(String),
    /// 422.
    Invalid(String),
    /// 409.
    Conflict(String),
    /// 500.
    Internal(String),
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<sync_core::Error> for ApiError {
    fn from(e: sync_core::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn not_found(what: &str, id: i32) -> ApiError {
    ApiError::NotFound(format!("no {what} {id}"))
}

fn non_empty(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::Invalid(format!("`{field}` must not be empty")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Customers and addresses

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCustomer {
    name: String,
    email: String,
    phone: Option<String>,
    #[serde(default)]
    internal_note: String,
    #[serde(default)]
    addresses: Vec<NewAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAddress {
    street: String,
    city: String,
    #[serde(default)]
    label: String,
}

async fn create_customer(
    State(db): State<DatabaseConnection>,
    Json(input): Json<NewCustomer>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    non_empty("name", &input.name)?;
    non_empty("email", &input.email)?;
    let txn = db.begin().await?;
    // `erp.customer` registers itself on insert (`register_on_insert`)…
    let customer = customer::ActiveModel {
        name: Set(input.name),
        email: Set(input.email),
        phone: Set(input.phone),
        internal_note: Set(input.internal_note),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    // …while the CRM contact is registered explicitly, by the service code.
    sync_core::sync_as(&txn, "crm.contact", &customer).await?;
    for a in input.addresses {
        insert_address(&txn, customer.id, a).await?;
    }
    txn.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(customer_json(&db, customer).await?),
    ))
}

async fn insert_address(
    txn: &DatabaseTransaction,
    customer_id: i32,
    input: NewAddress,
) -> ApiResult<address::Model> {
    non_empty("city", &input.city)?;
    Ok(address::ActiveModel {
        customer_id: Set(customer_id),
        street: Set(input.street),
        city: Set(input.city),
        label: Set(input.label),
        ..Default::default()
    }
    .insert(txn)
    .await?)
}

async fn customer_json(db: &DatabaseConnection, customer: customer::Model) -> ApiResult<Value> {
    let addresses = customer
        .find_related(address::Entity)
        .order_by_asc(address::Column::Id)
        .all(db)
        .await?;
    let mut value = json!(customer);
    value["addresses"] = json!(addresses);
    Ok(value)
}

async fn get_customer(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<Value>> {
    let customer = customer::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or_else(|| not_found("customer", id))?;
    Ok(Json(customer_json(&db, customer).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerChanges {
    name: Option<String>,
    email: Option<String>,
    phone: Option<Option<String>>,
    internal_note: Option<String>,
    /// `true` archives the customer (soft delete: removed from the ERP), `false` restores it.
    archived: Option<bool>,
}

async fn update_customer(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(input): Json<CustomerChanges>,
) -> ApiResult<Json<Value>> {
    let txn = db.begin().await?;
    let current = customer::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("customer", id))?;
    let mut am = current.into_active_model();
    if let Some(name) = input.name {
        non_empty("name", &name)?;
        am.name = Set(name);
    }
    if let Some(email) = input.email {
        non_empty("email", &email)?;
        am.email = Set(email);
    }
    if let Some(phone) = input.phone {
        am.phone = Set(phone);
    }
    if let Some(note) = input.internal_note {
        am.internal_note = Set(note);
    }
    if let Some(archived) = input.archived {
        am.deleted_at = Set(archived.then(sync_core::now_ms));
    }
    let customer = am.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(customer_json(&db, customer).await?))
}

async fn delete_customer(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = db.begin().await?;
    let customer = customer::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("customer", id))?;
    let orders = customer.find_related(order::Entity).count(&txn).await?;
    if orders > 0 {
        return Err(ApiError::Conflict(format!(
            "customer {id} has {orders} order(s); delete them first"
        )));
    }
    for a in customer.find_related(address::Entity).all(&txn).await? {
        a.delete(&txn).await?;
    }
    customer.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_address(
    State(db): State<DatabaseConnection>,
    Path(customer_id): Path<i32>,
    Json(input): Json<NewAddress>,
) -> ApiResult<(StatusCode, Json<address::Model>)> {
    let txn = db.begin().await?;
    customer::Entity::find_by_id(customer_id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("customer", customer_id))?;
    let address = insert_address(&txn, customer_id, input).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(address)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressChanges {
    street: Option<String>,
    city: Option<String>,
    label: Option<String>,
    /// Moves the address to another customer.
    customer_id: Option<i32>,
}

async fn update_address(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(input): Json<AddressChanges>,
) -> ApiResult<Json<address::Model>> {
    let txn = db.begin().await?;
    let current = address::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("address", id))?;
    let mut am = current.into_active_model();
    if let Some(street) = input.street {
        am.street = Set(street);
    }
    if let Some(city) = input.city {
        non_empty("city", &city)?;
        am.city = Set(city);
    }
    if let Some(label) = input.label {
        am.label = Set(label);
    }
    if let Some(customer_id) = input.customer_id {
        customer::Entity::find_by_id(customer_id)
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ApiError::Invalid(format!("`customer_id`: no customer {customer_id}"))
            })?;
        am.customer_id = Set(customer_id);
    }
    let address = am.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(address))
}

async fn delete_address(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = db.begin().await?;
    let address = address::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("address", id))?;
    address.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Orders, line items, billing

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    customer_id: i32,
    reference: String,
    #[serde(default = "open")]
    status: String,
    #[serde(default)]
    internal_note: String,
    #[serde(default)]
    lines: Vec<NewLine>,
    billing: Option<Billing>,
}

fn open() -> String {
    "open".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLine {
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
    #[serde(default)]
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Billing {
    company: String,
    vat_id: String,
    address: String,
}

async fn create_order(
    State(db): State<DatabaseConnection>,
    Json(input): Json<NewOrder>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    non_empty("reference", &input.reference)?;
    let txn = db.begin().await?;
    customer::Entity::find_by_id(input.customer_id)
        .one(&txn)
        .await?
        .ok_or_else(|| {
            ApiError::Invalid(format!("`customer_id`: no customer {}", input.customer_id))
        })?;
    let order = order::ActiveModel {
        customer_id: Set(input.customer_id),
        reference: Set(input.reference),
        status: Set(input.status),
        internal_note: Set(input.internal_note),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    for line in input.lines {
        insert_line(&txn, order.id, line).await?;
    }
    if let Some(billing) = input.billing {
        upsert_billing(&txn, order.id, billing).await?;
    }
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(order_json(&db, order).await?)))
}

async fn insert_line(
    txn: &DatabaseTransaction,
    order_id: i32,
    line: NewLine,
) -> ApiResult<line_item::Model> {
    non_empty("sku", &line.sku)?;
    if line.quantity <= 0 {
        return Err(ApiError::Invalid("`quantity` must be positive".into()));
    }
    Ok(line_item::ActiveModel {
        order_id: Set(order_id),
        sku: Set(line.sku),
        quantity: Set(line.quantity),
        unit_price_cents: Set(line.unit_price_cents),
        note: Set(line.note),
        ..Default::default()
    }
    .insert(txn)
    .await?)
}

async fn upsert_billing(
    txn: &DatabaseTransaction,
    order_id: i32,
    billing: Billing,
) -> ApiResult<billing_info::Model> {
    let existing = billing_info::Entity::find()
        .filter(billing_info::Column::OrderId.eq(order_id))
        .one(txn)
        .await?;
    let mut am = match existing {
        Some(row) => row.into_active_model(),
        None => billing_info::ActiveModel {
            order_id: Set(order_id),
            ..Default::default()
        },
    };
    am.company = Set(billing.company);
    am.vat_id = Set(billing.vat_id);
    am.address = Set(billing.address);
    Ok(am.save(txn).await?.try_into_model()?)
}

async fn order_json(db: &DatabaseConnection, order: order::Model) -> ApiResult<Value> {
    let lines = order
        .find_related(line_item::Entity)
        .order_by_asc(line_item::Column::Id)
        .all(db)
        .await?;
    let billing = billing_info::Entity::find()
        .filter(billing_info::Column::OrderId.eq(order.id))
        .one(db)
        .await?;
    let mut value = json!(order);
    value["lines"] = json!(lines);
    value["billing"] = json!(billing);
    Ok(value)
}

async fn get_order(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<Value>> {
    let order = order::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or_else(|| not_found("order", id))?;
    Ok(Json(order_json(&db, order).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderChanges {
    reference: Option<String>,
    status: Option<String>,
    internal_note: Option<String>,
}

async fn update_order(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(input): Json<OrderChanges>,
) -> ApiResult<Json<Value>> {
    let txn = db.begin().await?;
    let current = order::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("order", id))?;
    let mut am = current.into_active_model();
    if let Some(reference) = input.reference {
        non_empty("reference", &reference)?;
        am.reference = Set(reference);
    }
    if let Some(status) = input.status {
        am.status = Set(status);
    }
    if let Some(note) = input.internal_note {
        am.internal_note = Set(note);
    }
    let order = am.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(order_json(&db, order).await?))
}

async fn delete_order(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = db.begin().await?;
    let order = order::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("order", id))?;
    for line in order.find_related(line_item::Entity).all(&txn).await? {
        line.delete(&txn).await?;
    }
    if let Some(billing) = billing_info::Entity::find()
        .filter(billing_info::Column::OrderId.eq(id))
        .one(&txn)
        .await?
    {
        billing.delete(&txn).await?;
    }
    order.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_line_item(
    State(db): State<DatabaseConnection>,
    Path(order_id): Path<i32>,
    Json(input): Json<NewLine>,
) -> ApiResult<(StatusCode, Json<line_item::Model>)> {
    let txn = db.begin().await?;
    order::Entity::find_by_id(order_id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("order", order_id))?;
    let line = insert_line(&txn, order_id, input).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(line)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineChanges {
    sku: Option<String>,
    quantity: Option<i32>,
    unit_price_cents: Option<i64>,
    note: Option<String>,
}

async fn update_line_item(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(input): Json<LineChanges>,
) -> ApiResult<Json<line_item::Model>> {
    let txn = db.begin().await?;
    let current = line_item::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("line item", id))?;
    let mut am = current.into_active_model();
    if let Some(sku) = input.sku {
        non_empty("sku", &sku)?;
        am.sku = Set(sku);
    }
    if let Some(quantity) = input.quantity {
        if quantity <= 0 {
            return Err(ApiError::Invalid("`quantity` must be positive".into()));
        }
        am.quantity = Set(quantity);
    }
    if let Some(price) = input.unit_price_cents {
        am.unit_price_cents = Set(price);
    }
    if let Some(note) = input.note {
        am.note = Set(note);
    }
    let line = am.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(line))
}

async fn delete_line_item(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = db.begin().await?;
    let line = line_item::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("line item", id))?;
    line.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_billing(
    State(db): State<DatabaseConnection>,
    Path(order_id): Path<i32>,
    Json(input): Json<Billing>,
) -> ApiResult<Json<billing_info::Model>> {
    let txn = db.begin().await?;
    order::Entity::find_by_id(order_id)
        .one(&txn)
        .await?
        .ok_or_else(|| not_found("order", order_id))?;
    let billing = upsert_billing(&txn, order_id, input).await?;
    txn.commit().await?;
    Ok(Json(billing))
}
