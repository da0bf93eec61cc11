//! Addresses: `/customers/{id}/addresses` and `/addresses/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, IntoActiveModel, ModelTrait};
use serde::Deserialize;

use super::{ApiResult, Json, Path, begin, customers, find, required};
use crate::entities::address;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAddress {
    street: String,
    city: String,
    #[serde(default)]
    label: String,
}

impl NewAddress {
    /// Inserts the address for `customer_id`, which touches both of the customer's groups.
    pub(super) async fn insert(
        self,
        db: &impl ConnectionTrait,
        customer_id: i32,
    ) -> ApiResult<address::Model> {
        required("street", &self.street)?;
        required("city", &self.city)?;
        let address = address::ActiveModel {
            customer_id: Set(customer_id),
            street: Set(self.street),
            city: Set(self.city),
            label: Set(self.label),
            ..Default::default()
        };
        Ok(address.insert(db).await?)
    }
}

/// `POST /customers/{id}/addresses`.
pub(super) async fn create(
    State(db): State<DatabaseConnection>,
    Path(customer_id): Path<i32>,
    Json(input): Json<NewAddress>,
) -> ApiResult<(StatusCode, Json<address::Model>)> {
    let txn = begin(&db).await?;
    customers::live(&txn, customer_id).await?;
    let address = input.insert(&txn, customer_id).await?;
    txn.commit().await?;
    Ok((StatusCode::CREATED, Json(address)))
}

/// `GET /addresses/{id}`.
pub(super) async fn get(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<Json<address::Model>> {
    Ok(Json(find::<address::Entity>(&db, id, "address").await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddressChanges {
    street: Option<String>,
    city: Option<String>,
    label: Option<String>,
    /// Moves the address to another customer.
    customer_id: Option<i32>,
}

impl AddressChanges {
    async fn apply(
        self,
        db: &impl ConnectionTrait,
        address: &mut address::ActiveModel,
    ) -> ApiResult<()> {
        if let Some(street) = self.street {
            required("street", &street)?;
            address.street = Set(street);
        }
        if let Some(city) = self.city {
            required("city", &city)?;
            address.city = Set(city);
        }
        if let Some(label) = self.label {
            address.label = Set(label);
        }
        if let Some(customer_id) = self.customer_id {
            customers::referenced(db, customer_id).await?;
            address.customer_id = Set(customer_id);
        }
        Ok(())
    }
}

/// `PATCH /addresses/{id}`. Moving the address to another customer (`customer_id`) touches the
/// groups of both customers: each is pushed again.
pub(super) async fn update(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
    Json(changes): Json<AddressChanges>,
) -> ApiResult<Json<address::Model>> {
    let txn = begin(&db).await?;
    let mut address = find::<address::Entity>(&txn, id, "address")
        .await?
        .into_active_model();
    changes.apply(&txn, &mut address).await?;
    let address = address.update(&txn).await?;
    txn.commit().await?;
    Ok(Json(address))
}

/// `DELETE /addresses/{id}`: touches the customer's groups.
pub(super) async fn delete(
    State(db): State<DatabaseConnection>,
    Path(id): Path<i32>,
) -> ApiResult<StatusCode> {
    let txn = begin(&db).await?;
    let address = find::<address::Entity>(&txn, id, "address").await?;
    address.delete(&txn).await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
