//! The built-in HTTP remote: plain REST over reqwest.

use serde_json::Value;

use crate::{Error, Result};

/// A plain REST remote. (Implementation in progress.)
#[derive(Debug, Clone)]
pub struct HttpRemote {
    _private: (),
}

impl HttpRemote {
    /// `POST {base}/{collection}`; returns the id read from the answer.
    pub async fn create(&self, _payload: &Value, _external_key: &str, _idempotency_key: &str) -> Result<String> {
        Err(Error::Config("not implemented".into()))
    }

    /// `PUT` (or `PATCH`) `{base}/{collection}/{id}`.
    pub async fn update(&self, _remote_id: &str, _payload: &Value, _idempotency_key: &str) -> Result<()> {
        Err(Error::Config("not implemented".into()))
    }

    /// `DELETE {base}/{collection}/{id}`; 404 counts as done.
    pub async fn delete(&self, _remote_id: &str, _idempotency_key: &str) -> Result<()> {
        Err(Error::Config("not implemented".into()))
    }
}
