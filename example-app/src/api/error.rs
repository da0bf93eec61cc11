//! The API's error answer and the extractors that turn bad requests into it.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A result whose error is an [`ApiError`] answer.
pub(super) type ApiResult<T> = Result<T, ApiError>;

/// An error answer: `{"error": "…"}` with a status saying whose fault it is.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 404: no such row (or route).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the request conflicts with existing data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 422: the request is well formed but a value is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A failure that is not the client's: logged, answered without details.
    fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        match (&error, error.sql_err()) {
            // The row was deleted by a concurrent request between this one's read and write.
            (DbErr::RecordNotUpdated | DbErr::RecordNotFound(_), _) => {
                ApiError::not_found("the row no longer exists (deleted by another request)")
            }
            (_, Some(SqlErr::UniqueConstraintViolation(_))) => {
                ApiError::conflict("a row with the same unique value already exists")
            }
            (_, Some(SqlErr::ForeignKeyConstraintViolation(_))) => ApiError::conflict(
                "the request conflicts with a concurrent change of related rows; try again",
            ),
            _ if is_lock_conflict(&error) => {
                ApiError::conflict("the request conflicted with a concurrent one; try again")
            }
            _ => ApiError::internal(&error),
        }
    }
}

/// A deadlock victim or a serialization failure: the database gave up this transaction in
/// favour of a concurrent one; repeating the request is safe.
fn is_lock_conflict(error: &DbErr) -> bool {
    sync_core::is_transient_conflict(error)
}

impl From<sync_core::Error> for ApiError {
    fn from(error: sync_core::Error) -> Self {
        ApiError::internal(&error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // 400 for broken JSON, 415 without `Content-Type: application/json`, 422 for JSON of the
        // wrong shape (a missing field, an unknown one, a string for a number…).
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

/// `axum::Json`, answering bad bodies with an [`ApiError`] instead of plain text.
#[derive(Debug)]
pub(super) struct Json<T>(pub(super) T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Json(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path`, answering bad ids with an [`ApiError`] instead of plain text.
#[derive(Debug)]
pub(super) struct Path<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_deleted_by_a_concurrent_request_is_a_404_not_a_500() {
        let gone = ApiError::from(DbErr::RecordNotUpdated).into_response();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let missing = ApiError::from(DbErr::RecordNotFound("customer 7".into())).into_response();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let other = ApiError::from(DbErr::Custom("disk full".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
