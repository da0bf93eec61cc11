//! `/customers`: create, read, update and archive customers.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};

use super::addresses::NewAddress;
use super::{ApiError, ApiResult, Json, Path, begin, present, required};
use crate::entities::{address, customer, order};

/// A customer as the API shows it: with its addresses.
#[derive(Debug, Serialize)]
pub(super) struct CustomerView {
    #[serde(flatten)]
    customer: customer::Model,
    addresses: Vec<address::Model>,
}

impl CustomerView {
    async fn load(db: &impl ConnectionTrait, customer: customer::Model) -> Result<Self, DbErr> {
        let addresses = customer
            .find_related(address::Entity)
            .order_by_asc(address::Column::Id)
            .all(db)
            .await?;
        Ok(CustomerView {
            customer,
            addresses,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCustomer {
    name: String,
    email: String,
    phone: Option<String>,
    #[serde(default)]
    internal_note: String,
    #[serde(default)]
    addresses: Vec<NewAddress>,
}

/// `POST /customers`, optionally with addresses.
pub(super) async fn create(
    State(db): State<DatabaseConnection>,
    Json(input): Json<NewCustomer>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    required("name", &input.name)?;
    valid_email(&input.email)?;
    let txn = begin(&db).await?;
    // Inserting registers the customer's `erp.customer` group (`register_on_insert`).
    let customer = customer::ActiveModel {
        name: Set(input.name),
        email: Set(input.email),
        phone: Set(input.phone),
        internal_note: Set(input.internal_note),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    // Whether a customer becomes a CRM contact is the service's decision, not the model's:
    // this app makes every customer one, explicitly.
    sync_core::sync_as(&txn, "crm.contact", &customer).await?;
    for address in input.addresses {
        address.insert(&txn, customer.id).await?;
    }
    let view = CustomerView::load(&txn, customer).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /customers/{id}`.
pub(super) async fn get(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<CustomerView>> {
    let customer = live(&db, id).await?;
    Ok(Json(CustomerView::load(&db, customer).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerChanges {
    name: Option<String>,
    email: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    phone: Option<Option<String>>,
    internal_note: Option<String>,
}

impl CustomerChanges {
    fn apply(self, customer: &mut customer::ActiveModel) -> ApiResult<()> {
        if let Some(name) = self.name {
            required("name", &name)?;
            customer.name = Set(name);
        }
        if let Some(email) = self.email {
            valid_email(&email)?;
            customer.email = Set(email);
        }
        if let Some(phone) = self.phone {
            customer.phone = Set(phone);
        }
        if let Some(note) = self.internal_note {
            customer.internal_note = Set(note);
        }
        Ok(())
    }
}

/// `PATCH /customers/{id}`: changes the fields given. Only real changes of watched columns mark
/// groups dirty: a value set to what it was, or `internal_note`, pushes nothing.
pub(super) async fn update(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(changes): Json<CustomerChanges>,
) -> ApiResult<Json<CustomerView>> {
    let txn = begin(&db).await?;
    let mut customer = live(&txn, id).await?.into_active_model();
    changes.apply(&mut customer)?;
    let customer = customer.update(&txn).await?;
    let view = CustomerView::load(&txn, customer).await?;
    txn.commit().await?;
    Ok(Json(view))
}

/// `DELETE /customers/{id}` archives the customer: `deleted_at` is the soft-delete column of both
/// of its groups, so the ERP and the CRM delete their copies. The row stays, hidden from the API.
/// A customer with orders cannot be archived: the ERP's sales orders refer to it.
pub(super) async fn archive(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = begin(&db).await?;
    let customer = live(&txn, id).await?;
    let orders = customer.find_related(order::Entity).count(&txn).await?;
    if orders > 0 {
        return Err(ApiError::conflict(format!(
            "customer {id} has {orders} order(s); delete them before archiving the customer"
        )));
    }
    let mut customer = customer.into_active_model();
    customer.deleted_at = Set(Some(Utc::now()));
    customer.update(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customer `id` unless it is archived, or `None`.
pub(super) async fn find_live(
    db: &impl ConnectionTrait,
    id: i32,
) -> Result<Option<customer::Model>, DbErr> {
    customer::Entity::find_by_id(id)
        .filter(customer::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// The customer `id` named in a path, or a 404.
pub(super) async fn live(db: &impl ConnectionTrait, id: i32) -> ApiResult<customer::Model> {
    find_live(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no customer {id}")))
}

/// The customer `id` named in a body's `customer_id`, or a 422.
pub(super) async fn referenced(db: &impl ConnectionTrait, id: i32) -> ApiResult<customer::Model> {
    find_live(db, id)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("`customer_id`: no customer {id}")))
}

fn valid_email(email: &str) -> ApiResult<()> {
    match email.split_once('@') {
        Some((user, domain)) if !user.trim().is_empty() && !domain.trim().is_empty() => Ok(()),
        _ => Err(ApiError::invalid(format!(
            "`email` must be an email address, not `{email}`"
        ))),
    }
}
