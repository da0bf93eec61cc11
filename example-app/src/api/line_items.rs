//! Line items: `/orders/{id}/line_items` and `/line_items/{id}`. Every change re-pushes the
//! order's sales order.

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, IntoActiveModel, ModelTrait};
use serde::Deserialize;

use super::{ApiError, ApiResult, Json, Path, begin, find, required};
use crate::entities::{line_item, order};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewLineItem {
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
    #[serde(default)]
    note: String,
}

impl NewLineItem {
    /// Inserts the line into order `order_id`, which touches the order's group.
    pub(super) async fn insert(
        self,
        db: &impl ConnectionTrait,
        order_id: i32,
    ) -> ApiResult<line_item::Model> {
        required("sku", &self.sku)?;
        valid_quantity(self.quantity)?;
        valid_price(self.unit_price_cents)?;
        let item = line_item::ActiveModel {
            order_id: Set(order_id),
            sku: Set(self.sku),
            quantity: Set(self.quantity),
            unit_price_cents: Set(self.unit_price_cents),
            note: Set(self.note),
            ..Default::default()
        };
        Ok(item.insert(db).await?)
    }
}

/// `POST /orders/{id}/line_items`.
pub(super) async fn create(
    State(db): State<DatabaseConnection>,
    Path(order_id): Path<i32>,
    Json(input): Json<NewLineItem>,
) -> ApiResult<(StatusCode, Json<line_item::Model>)> {
    let txn = begin(&db).await?;
    find::<order::Entity>(&txn, order_id, "order").await?;
    let item = input.insert(&txn, order_id).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(item)))
}

/// `GET /line_items/{id}`.
pub(super) async fn get(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<line_item::Model>> {
    Ok(Json(find::<line_item::Entity>(&db, id, "line item").await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LineItemChanges {
    sku: Option<String>,
    quantity: Option<i32>,
    unit_price_cents: Option<i64>,
    note: Option<String>,
}

impl LineItemChanges {
    fn apply(self, item: &mut line_item::ActiveModel) -> ApiResult<()> {
        if let Some(sku) = self.sku {
            required("sku", &sku)?;
            item.sku = Set(sku);
        }
        if let Some(quantity) = self.quantity {
            valid_quantity(quantity)?;
            item.quantity = Set(quantity);
        }
        if let Some(price) = self.unit_price_cents {
            valid_price(price)?;
            item.unit_price_cents = Set(price);
        }
        if let Some(note) = self.note {
            item.note = Set(note);
        }
        Ok(())
    }
}

/// `PATCH /line_items/{id}`.
pub(super) async fn update(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(changes): Json<LineItemChanges>,
) -> ApiResult<Json<line_item::Model>> {
    let txn = begin(&db).await?;
    let mut item = find::<line_item::Entity>(&txn, id, "line item")
        .await?
        .into_active_model();
    changes.apply(&mut item)?;
    let item = item.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(item))
}

/// `DELETE /line_items/{id}`.
pub(super) async fn delete(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = begin(&db).await?;
    let item = find::<line_item::Entity>(&txn, id, "line item").await?;
    item.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn valid_quantity(quantity: i32) -> ApiResult<()> {
    if quantity < 1 {
        return Err(ApiError::invalid(format!(
            "`quantity` must be at least 1, not {quantity}"
        )));
    }
    Ok(())
}

fn valid_price(cents: i64) -> ApiResult<()> {
    if cents < 0 {
        return Err(ApiError::invalid(format!(
            "`unit_price_cents` must not be negative, not {cents}"
        )));
    }
    Ok(())
}
