//! The application's JSON API.
//!
//! Every write runs in a transaction and goes through `ActiveModel` `insert`, `update` and
//! `delete`, so the hooks that `#[sync_core::hooks]` installs mark the right sync groups dirty
//! in the same transaction: when the write rolls back, so does the mark. (`insert_many`,
//! `update_many`, `delete_many` and raw SQL run no hooks; see `sync_core::touch_matching`.)
//!
//! Errors are JSON, `{"error": "…"}`: 400 for a body or path that cannot be read, 404 for an
//! unknown id, 409 for a conflict with existing data, 422 for values that are not acceptable.

mod addresses;
mod billing;
mod customers;
mod error;
mod line_items;
mod orders;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, PrimaryKeyTrait,
};

pub use error::ApiError;
use error::{ApiResult, Json, Path};

/// The API's router, over the application's database.
pub fn app(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/customers", post(customers::create))
        .route(
            "/customers/{id}",
            get(customers::get)
                .patch(customers::update)
                .delete(customers::archive),
        )
        .route("/customers/{id}/addresses", post(addresses::create))
        .route(
            "/addresses/{id}",
            get(addresses::get)
                .patch(addresses::update)
                .delete(addresses::delete),
        )
        .route("/orders", post(orders::create))
        .route(
            "/orders/{id}",
            get(orders::get)
                .patch(orders::update)
                .delete(orders::delete),
        )
        .route("/orders/{id}/line_items", post(line_items::create))
        .route(
            "/line_items/{id}",
            get(line_items::get)
                .patch(line_items::update)
                .delete(line_items::delete),
        )
        .route("/orders/{id}/billing", get(billing::get).put(billing::put))
        .fallback(no_route)
        .with_state(db)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (see [`sync_core::begin_write`]).
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    sync_core::begin_write(db).await.map_err(DbErr::from)
}

/// The row of `E` whose primary key is `id`, or a 404 calling it `what`.
async fn find<E>(db: &impl ConnectionTrait, id: i32, what: &str) -> ApiResult<E::Model>
where
    E: EntityTrait,
    i32: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
{
    E::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {what} {id}")))
}

/// Fails with 422 naming `field` when `value` is blank.
fn required(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(format!("`{field}` must not be empty")));
    }
    Ok(())
}

/// For `PATCH` bodies: tells a field set to `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
