//! `/orders/{id}/billing`: an order's billing info, at most one.

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, IntoActiveModel, ModelTrait};
use serde::Deserialize;

use super::{ApiError, ApiResult, Json, Path, begin, find, required};
use crate::entities::{billing_info, order};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BillingInput {
    company: String,
    vat_id: String,
    address: String,
    #[serde(default)]
    internal_note: String,
}

impl BillingInput {
    /// Creates or replaces the billing info of order `order_id`, which touches the order's
    /// group. Returns it and whether it was created.
    pub(super) async fn save(
        self,
        db: &impl ConnectionTrait,
        order_id: i32,
    ) -> ApiResult<(billing_info::Model, bool)> {
        required("company", &self.company)?;
        required("address", &self.address)?;
        let order = find::<order::Entity>(db, order_id, "order").await?;
        let existing = order.find_related(billing_info::Entity).one(db).await?;
        let created = existing.is_none();
        let mut billing = match existing {
            Some(row) => row.into_active_model(),
            None => billing_info::ActiveModel {
                order_id: Set(order_id),
                ..Default::default()
            },
        };
        billing.company = Set(self.company);
        billing.vat_id = Set(self.vat_id);
        billing.address = Set(self.address);
        billing.internal_note = Set(self.internal_note);
        let billing = if created {
            billing.insert(db).await?
        } else {
            billing.update(db).await?
        };
        Ok((billing, created))
    }
}

/// `GET /orders/{id}/billing`.
pub(super) async fn get(
    State(db): State<DatabaseConnection>,
    Path(order_id): Path<i32>,
) -> ApiResult<Json<billing_info::Model>> {
    let order = find::<order::Entity>(&db, order_id, "order").await?;
    let billing = order.find_related(billing_info::Entity).one(&db).await?;
    billing
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("order {order_id} has no billing info")))
}

/// `PUT /orders/{id}/billing`: creates (201) or replaces (200) it.
pub(super) async fn put(
    State(db): State<DatabaseConnection>,
    Path(order_id): Path<i32>,
    Json(input): Json<BillingInput>,
) -> ApiResult<(StatusCode, Json<billing_info::Model>)> {
    let txn = begin(&db).await?;
    let (billing, created) = input.save(&txn, order_id).await?;
    txn.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(billing)))
}
