//! Bulk pushes: many creates and updates in one request, for remotes with a bulk endpoint.
//!
//! The request is `POST {collection}/{bulk path}` with
//! `{"items": [{"id": <remote id or null>, "key": <idempotency key>, "data": <payload>}, …]}`;
//! the answer must be `{"items": [...]}` with one entry per item, in order: an object with the
//! id at the id pointer (required for creates; an update may answer `{}`), or with `"error"`
//! (a message) and optionally `"status"` for an item the remote refused.

use reqwest::Method;
use serde_json::{Value, json};

use super::{HttpRemote, answer};
use crate::{BulkItem, Error, RemoteId, Result};

impl HttpRemote {
    /// The most items one bulk request carries, when a bulk endpoint is configured
    /// ([`HttpRemoteBuilder::bulk`](super::HttpRemoteBuilder::bulk)).
    pub fn bulk_limit(&self) -> Option<usize> {
        self.inner.bulk.as_ref().map(|(_, max)| *max)
    }

    /// Creates or updates `items` in one request to the bulk endpoint. One result per item, in
    /// order: the remote id. A failure of the whole request (no answer, an error status, an
    /// answer that is not the expected list) is every item's error.
    pub async fn push_many(&self, items: &[BulkItem]) -> Vec<Result<RemoteId>> {
        let all = |error: Error| items.iter().map(|_| Err(error.copy_for_item())).collect();
        let Some((url, max)) = self.inner.bulk.as_ref() else {
            return all(Error::Config(
                "this HttpRemote has no bulk endpoint; configure one with `bulk(path, max_items)`"
                    .into(),
            ));
        };
        if items.len() > *max {
            return all(Error::Config(format!(
                "{} items for a bulk endpoint that takes at most {max}",
                items.len()
            )));
        }
        let body = json!({
            "items": items.iter().map(|item| json!({
                "id": item.remote_id, "key": item.idempotency_key, "data": item.payload,
            })).collect::<Vec<_>>()
        });
        // The request's own key names its items' keys, so a retried batch carries the same one.
        let keys: Vec<&str> = items.iter().map(|i| i.idempotency_key.as_str()).collect();
        let key = format!(
            "bulk-{}",
            &blake3::hash(keys.join("\n").as_bytes()).to_hex()[..32]
        );
        let method = Method::POST;
        let mut response = match self.send(&method, url, Some(&body), &key).await {
            Ok(response) => response,
            Err(error) => return all(error),
        };
        let status = response.status();
        if !status.is_success() {
            return all(self.failure(response).await.into_error(&method, url));
        }
        let inner = &*self.inner;
        let read = match answer::read_body(&mut response, inner.max_response_bytes).await {
            Ok(body) => body,
            Err(e) => {
                return all(answer::transport_error(
                    &method,
                    url,
                    inner.request_timeout,
                    &e,
                ));
            }
        };
        let fail = |what: String| Error::Permanent {
            message: format!(
                "POST {} answered {} but {what}: {}",
                url.path(),
                status.as_u16(),
                answer::excerpt(&read, inner.credential.as_ref())
            ),
            status: Some(status.as_u16()),
        };
        if read.truncated {
            return all(fail(format!(
                "the answer is longer than {} bytes (`max_response_bytes`)",
                inner.max_response_bytes
            )));
        }
        let answers = match serde_json::from_slice::<Value>(&read.bytes) {
            Ok(Value::Object(mut object)) => match object.remove("items") {
                Some(Value::Array(answers)) => answers,
                _ => return all(fail("the answer has no `items` list".into())),
            },
            Ok(_) => return all(fail("the answer is not a JSON object".into())),
            Err(e) => return all(fail(format!("the answer is not JSON ({e})"))),
        };
        if answers.len() != items.len() {
            return all(fail(format!(
                "the answer has {} items for {} sent",
                answers.len(),
                items.len()
            )));
        }
        items
            .iter()
            .zip(answers)
            .enumerate()
            .map(|(n, (item, answer))| {
                if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
                    let code = answer
                        .get("status")
                        .and_then(Value::as_u64)
                        .and_then(|s| u16::try_from(s).ok());
                    let message = format!(
                        "POST {} refused item {n}: {}",
                        url.path(),
                        error
                            .as_str()
                            .map_or_else(|| error.to_string(), str::to_owned)
                    );
                    return Err(match code {
                        Some(s) if s == 429 || s >= 500 => Error::Retryable {
                            message,
                            status: Some(s),
                            retry_after: None,
                        },
                        status => Error::Permanent { message, status },
                    });
                }
                match answer.pointer(&inner.id_pointer) {
                    Some(Value::String(id)) if !matches!(id.as_str(), "" | "." | "..") => {
                        Ok(RemoteId::string(id.clone()))
                    }
                    Some(Value::Number(id)) => Ok(RemoteId::number(id.clone())),
                    _ => item.remote_id.clone().ok_or_else(|| {
                        fail(format!(
                            "item {n} (a create) has no id at `{}`",
                            inner.id_pointer
                        ))
                    }),
                }
            })
            .collect()
    }
}
