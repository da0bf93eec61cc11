//! `/orders`: create, read, update and delete orders, with their line items and billing info.

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};

use super::billing::BillingInput;
use super::line_items::NewLineItem;
use super::{ApiError, ApiResult, Json, Path, begin, customers, find, required};
use crate::entities::{billing_info, line_item, order};

/// The statuses an order can have.
const STATUSES: [&str; 4] = ["open", "confirmed", "shipped", "cancelled"];

/// An order as the API shows it: with its line items, billing info and total.
#[derive(Debug, Serialize)]
pub(super) struct OrderView {
    #[serde(flatten)]
    order: order::Model,
    line_items: Vec<line_item::Model>,
    billing: Option<billing_info::Model>,
    total_cents: i64,
}

impl OrderView {
    async fn load(db: &impl ConnectionTrait, order: order::Model) -> Result<Self, DbErr> {
        let line_items = order
            .find_related(line_item::Entity)
            .order_by_asc(line_item::Column::Id)
            .all(db)
            .await?;
        let billing = order.find_related(billing_info::Entity).one(db).await?;
        let total_cents = line_items
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        Ok(OrderView {
            order,
            line_items,
            billing,
            total_cents,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrder {
    customer_id: i32,
    reference: String,
    #[serde(default = "open")]
    status: String,
    #[serde(default)]
    internal_note: String,
    #[serde(default)]
    line_items: Vec<NewLineItem>,
    billing: Option<BillingInput>,
}

fn open() -> String {
    "open".into()
}

/// `POST /orders`, optionally with line items and billing info.
pub(super) async fn create(
    State(db): State<DatabaseConnection>,
    Json(input): Json<NewOrder>,
) -> ApiResult<(StatusCode, Json<OrderView>)> {
    required("reference", &input.reference)?;
    valid_status(&input.status)?;
    let txn = begin(&db).await?;
    customers::referenced(&txn, input.customer_id).await?;
    reference_is_free(&txn, &input.reference).await?;
    // Inserting registers the order's `erp.sales_order` group (`register_on_insert`); its line
    // items and billing info, inserted in the same transaction, touch that group.
    let order = order::ActiveModel {
        customer_id: Set(input.customer_id),
        reference: Set(input.reference),
        status: Set(input.status),
        internal_note: Set(input.internal_note),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    for item in input.line_items {
        item.insert(&txn, order.id).await?;
    }
    if let Some(billing) = input.billing {
        billing.save(&txn, order.id).await?;
    }
    let view = OrderView::load(&txn, order).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /orders/{id}`.
pub(super) async fn get(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<OrderView>> {
    let order = find::<order::Entity>(&db, id, "order").await?;
    Ok(Json(OrderView::load(&db, order).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderChanges {
    /// Moves the order to another customer.
    customer_id: Option<i32>,
    reference: Option<String>,
    status: Option<String>,
    internal_note: Option<String>,
}

impl OrderChanges {
    async fn apply(
        self,
        db: &impl ConnectionTrait,
        order: &mut order::ActiveModel,
    ) -> ApiResult<()> {
        if let Some(customer_id) = self.customer_id {
            customers::referenced(db, customer_id).await?;
            order.customer_id = Set(customer_id);
        }
        if let Some(reference) = self.reference {
            required("reference", &reference)?;
            if order.reference.as_ref() != &reference {
                reference_is_free(db, &reference).await?;
            }
            order.reference = Set(reference);
        }
        if let Some(status) = self.status {
            valid_status(&status)?;
            order.status = Set(status);
        }
        if let Some(note) = self.internal_note {
            order.internal_note = Set(note);
        }
        Ok(())
    }
}

/// `PATCH /orders/{id}`.
pub(super) async fn update(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(changes): Json<OrderChanges>,
) -> ApiResult<Json<OrderView>> {
    let txn = begin(&db).await?;
    let mut order = find::<order::Entity>(&txn, id, "order")
        .await?
        .into_active_model();
    changes.apply(&txn, &mut order).await?;
    let order = order.update(&txn).await?;
    let view = OrderView::load(&txn, order).await?;
    txn.commit().await?;
    Ok(Json(view))
}

/// `DELETE /orders/{id}`, with its line items and billing info. Each row is deleted through its
/// `ActiveModel` so that its hooks run; the ERP gets one delete of the sales order.
pub(super) async fn delete(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = begin(&db).await?;
    let order = find::<order::Entity>(&txn, id, "order").await?;
    for item in order.find_related(line_item::Entity).all(&txn).await? {
        item.delete(&txn).await?;
    }
    if let Some(billing) = order.find_related(billing_info::Entity).one(&txn).await? {
        billing.delete(&txn).await?;
    }
    order.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn valid_status(status: &str) -> ApiResult<()> {
    if STATUSES.contains(&status) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "`status` must be one of {}, not `{status}`",
        STATUSES.join(", ")
    )))
}

async fn reference_is_free(db: &impl ConnectionTrait, reference: &str) -> ApiResult<()> {
    let taken = order::Entity::find()
        .filter(order::Column::Reference.eq(reference))
        .count(db)
        .await?;
    if taken > 0 {
        return Err(ApiError::conflict(format!(
            "an order with reference `{reference}` already exists"
        )));
    }
    Ok(())
}
