//! The built-in HTTP remote: plain REST over reqwest. See [`HttpRemote`].

mod answer;
mod builder;
mod bulk;
mod listing;
mod secret;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use url::Url;

pub use builder::{CreateMode, HttpRemoteBuilder, UpdateMethod};
pub(crate) use listing::{At, Next};
pub use listing::{Listing, Pagination};
pub use secret::Secret;

use crate::{Error, RemoteId, Result};

const JSON: &str = "application/json";

/// A plain REST remote that [`Syncer`](crate::Syncer)s push to without writing HTTP code.
/// Cheap to clone; clones share the connection pool.
///
/// - [`create`](Self::create): `POST {base}/{collection}` with the payload; the answer holds the
///   new resource, whose id is read at a JSON pointer (`/id` by default, a string or a number).
///   With [`CreateMode::PutByExternalKey`], `PUT {base}/{collection}/{external key}` instead.
/// - [`update`](Self::update): `PUT` (or `PATCH`, see [`UpdateMethod`])
///   `{base}/{collection}/{id}` with the payload.
/// - [`delete`](Self::delete): `DELETE {base}/{collection}/{id}`.
/// - [`fetch`](Self::fetch): `GET {base}/{collection}/{id}`, and, with a
///   [`listing`](HttpRemoteBuilder::listing), [`list`](Self::list): `GET {base}/{collection}`
///   page by page; both for verification.
///
/// Ids and keys are percent-encoded as one path segment. Every request carries the idempotency
/// key (header `Idempotency-Key` by default), `Accept: application/json`, a `User-Agent` naming
/// this crate, the credential if one is set, and `Content-Type: application/json` with a body.
/// Redirects are not followed. Answers become the crate's [`Error`]:
///
/// | What happened                                                | Result                       |
/// |--------------------------------------------------------------|------------------------------|
/// | 2xx                                                          | success                      |
/// | cannot connect, timeout, connection closed or reset          | `Retryable`, no status       |
/// | 408, 5xx                                                     | `Retryable` with the status (and `Retry-After`) |
/// | 429                                                          | `Retryable` with the status and `Retry-After` (at most 1 h) |
/// | 404 to a delete                                              | success: already gone        |
/// | 404 to an update                                             | `Permanent`: the remote has no such record |
/// | 3xx, other 4xx                                               | `Permanent` with the status  |
/// | a create answered without an id, not JSON, not UTF-8, longer than `max_response_bytes` | `Permanent` with the status |
///
/// Messages name the method and the URL's path (e.g. `POST /api/contacts answered 422: …`) and
/// show at most 200 characters of the answer; they never show the credential.
///
/// ```
/// # fn demo() -> sync_core::Result<()> {
/// use std::time::Duration;
/// use sync_core::{HttpRemote, UpdateMethod};
///
/// let crm = HttpRemote::builder("https://crm.example.com/api/v2", "contacts")
///     .bearer_token("s3cret")
///     .update_method(UpdateMethod::Patch)
///     .request_timeout(Duration::from_secs(10))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpRemote {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    collection_url: Url,
    id_pointer: String,
    /// The credential's header, its value marked sensitive.
    auth: Option<(HeaderName, HeaderValue)>,
    /// The bare credential, kept to blank it out of answers echoing it.
    credential: Option<Secret>,
    update_method: UpdateMethod,
    create_mode: CreateMode,
    /// Where creates carry the external key, and repeated creates look it up.
    lookup_field: Option<String>,
    request_timeout: Duration,
    idempotency_header: HeaderName,
    max_response_bytes: usize,
    /// The bulk endpoint and the most items a request to it carries.
    bulk: Option<(Url, usize)>,
    /// How the collection is listed, if it can be.
    listing: Option<Listing>,
}

impl fmt::Debug for HttpRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("HttpRemote")
            .field("collection_url", &shown_url(&i.collection_url))
            .field("id_pointer", &i.id_pointer)
            .field(
                "auth",
                &i.auth.as_ref().map(|(name, _)| format!("{name}: ***")),
            )
            .field("update_method", &i.update_method)
            .field("create_mode", &i.create_mode)
            .field("lookup_field", &i.lookup_field)
            .field("request_timeout", &i.request_timeout)
            .field("idempotency_header", &i.idempotency_header)
            .field("max_response_bytes", &i.max_response_bytes)
            .field("bulk_limit", &self.bulk_limit())
            .field("listing", &i.listing)
            .finish_non_exhaustive()
    }
}

/// A URL for messages and `Debug`: no user info, and the query (which may hold an API key)
/// blanked out.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let query = shown.query().is_some();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let mut shown = String::from(shown);
    if query {
        shown.push_str("?***");
    }
    shown
}

impl HttpRemote {
    /// A remote whose resources live at `{base_url}/{collection}` (`collection` may have several
    /// segments, e.g. `v2/contacts`). See [`HttpRemoteBuilder`] for the settings and their
    /// defaults; [`build`](HttpRemoteBuilder::build) checks them.
    pub fn builder(
        base_url: impl Into<String>,
        collection: impl Into<String>,
    ) -> HttpRemoteBuilder {
        HttpRemoteBuilder::new(base_url.into(), collection.into())
    }

    /// A remote configured from the environment, with the defaults of [`HttpRemoteBuilder`]
    /// otherwise:
    ///
    /// - `{prefix}_URL` (required): the base URL, e.g. `https://crm.example.com/api`;
    /// - `{prefix}_TOKEN` (optional): a bearer token;
    /// - `{prefix}_AUTH_HEADER` (optional): a header name, e.g. `X-Api-Key`, to send
    ///   `{prefix}_TOKEN` in instead of `Authorization: Bearer`;
    /// - `{prefix}_TIMEOUT_SECS` (optional): the request timeout in whole seconds.
    ///
    /// Empty variables count as unset.
    pub fn from_env(prefix: &str, collection: impl Into<String>) -> Result<HttpRemote> {
        Self::from_lookup(prefix, collection.into(), |name| {
            match std::env::var(name) {
                Ok(value) => Ok(Some(value)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config(format!(
                    "the environment variable `{name}` is not valid UTF-8"
                ))),
            }
        })
    }

    fn from_lookup(
        prefix: &str,
        collection: String,
        lookup: impl Fn(&str) -> Result<Option<String>>,
    ) -> Result<HttpRemote> {
        let var = |suffix: &str| -> Result<(String, Option<String>)> {
            let name = format!("{prefix}_{suffix}");
            let value = lookup(&name)?.filter(|v| !v.trim().is_empty());
            Ok((name, value))
        };
        let (url_var, url) = var("URL")?;
        let url = url.ok_or_else(|| {
            Error::Config(format!(
                "the environment variable `{url_var}` is not set; it holds the remote's base \
                 URL, e.g. `https://crm.example.com/api`"
            ))
        })?;
        let mut builder = HttpRemote::builder(url.trim(), collection);
        let (token_var, token) = var("TOKEN")?;
        match (var("AUTH_HEADER")?, token) {
            ((_, None), Some(token)) => builder = builder.bearer_token(token),
            ((_, Some(header)), Some(token)) => builder = builder.auth_header(header.trim(), token),
            ((header_var, Some(_)), None) => {
                return Err(Error::Config(format!(
                    "`{header_var}` is set but `{token_var}` is not; set `{token_var}` to the \
                     value of that header"
                )));
            }
            ((_, None), None) => {}
        }
        let (timeout_var, timeout) = var("TIMEOUT_SECS")?;
        if let Some(secs) = timeout {
            let secs = secs
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "`{timeout_var}` must be a positive whole number of seconds, not `{secs}`"
                    ))
                })?;
            builder = builder.request_timeout(Duration::from_secs(secs));
        }
        builder.build()
    }

    /// How this remote sends creates.
    pub fn create_mode(&self) -> CreateMode {
        self.inner.create_mode
    }

    /// Creates the resource and returns the id the remote gave it, as a JSON string or number;
    /// see [`CreateMode`].
    ///
    /// With [`CreateMode::Post`] the answer must hold the id at the id pointer: an answer
    /// without one, or one that is not JSON, is a [`Error::Permanent`] naming the pointer and
    /// showing the start of the answer. With a
    /// [`lookup_field`](HttpRemoteBuilder::lookup_field), the payload carries the external key
    /// there.
    pub async fn create(
        &self,
        payload: &Value,
        external_key: &str,
        idempotency_key: &str,
    ) -> Result<RemoteId> {
        let inner = &*self.inner;
        let with_key;
        let payload = match self.with_lookup_key(payload, Some(external_key)) {
            Some(keyed) => {
                with_key = keyed;
                &with_key
            }
            None => payload,
        };
        let (method, url) = match inner.create_mode {
            CreateMode::Post => (Method::POST, inner.collection_url.clone()),
            CreateMode::PutByExternalKey => {
                (Method::PUT, self.item_url(external_key, "external key")?)
            }
        };
        let mut response = self
            .send(&method, &url, Some(payload), idempotency_key)
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.failure(response).await.into_error(&method, &url));
        }
        let read = answer::read_body(&mut response, inner.max_response_bytes).await;
        let id = match read {
            Ok(body) => self.read_id(&method, &url, status, &body),
            Err(e) => Err(answer::transport_error(
                &method,
                &url,
                inner.request_timeout,
                &e,
            )),
        };
        match (id, inner.create_mode) {
            (Ok(id), _) => Ok(id),
            // The remote accepted the record under the external key, which addresses it.
            (Err(error), CreateMode::PutByExternalKey) => {
                tracing::debug!(path = url.path(), %error, "no id in the answer; the external key is the id");
                Ok(RemoteId::string(external_key))
            }
            (Err(error), _) => Err(error),
        }
    }

    /// Repeats a create that an earlier attempt sent (same payload, same idempotency key) and
    /// may have delivered. With a [`lookup_field`](HttpRemoteBuilder::lookup_field), first
    /// looks the record up by its external key and returns its id if the remote has it;
    /// otherwise (or without one) sends the create again, for the remote to recognise by its
    /// idempotency key.
    pub async fn create_again(
        &self,
        payload: &Value,
        external_key: &str,
        idempotency_key: &str,
    ) -> Result<RemoteId> {
        if let Some(field) = &self.inner.lookup_field
            && let Some(id) = self
                .find(field, external_key, idempotency_key)
                .await
                .map_err(lookup_failed)?
        {
            tracing::info!(%id, external_key, "a create repeated after a crash found its record: no second create");
            return Ok(id);
        }
        self.create(payload, external_key, idempotency_key).await
    }

    /// `payload` with `external_key` in the lookup field, when one is set and the payload is
    /// an object.
    fn with_lookup_key(&self, payload: &Value, external_key: Option<&str>) -> Option<Value> {
        let (Some(field), Some(key), Value::Object(map)) =
            (&self.inner.lookup_field, external_key, payload)
        else {
            return None;
        };
        let mut map = map.clone();
        map.insert(field.clone(), Value::String(key.to_owned()));
        Some(Value::Object(map))
    }

    /// `GET {collection}?{field}={value}`: the id of the record found, if any.
    async fn find(
        &self,
        field: &str,
        value: &str,
        idempotency_key: &str,
    ) -> Result<Option<RemoteId>> {
        let inner = &*self.inner;
        let mut url = inner.collection_url.clone();
        url.query_pairs_mut().append_pair(field, value);
        let method = Method::GET;
        let mut response = self.send(&method, &url, None, idempotency_key).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.failure(response).await.into_error(&method, &url));
        }
        let body = answer::read_body(&mut response, inner.max_response_bytes)
            .await
            .map_err(|e| answer::transport_error(&method, &url, inner.request_timeout, &e))?;
        let fail = |what: &str| Error::Permanent {
            message: format!(
                "GET {}?{field}=… answered {} but {what}: {}",
                url.path(),
                status.as_u16(),
                answer::excerpt(&body, inner.credential.as_ref())
            ),
            status: Some(status.as_u16()),
        };
        let json: Value =
            serde_json::from_slice(&body.bytes).map_err(|_| fail("the answer is not JSON"))?;
        let list = match &json {
            Value::Array(list) => list,
            Value::Object(map) => ["data", "items", "results"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_array))
                .ok_or_else(|| fail("the answer holds no list of records"))?,
            _ => return Err(fail("the answer holds no list of records")),
        };
        // Only a record that really carries the key counts: a remote that ignores the filter
        // answers every record.
        let found: Vec<RemoteId> = list
            .iter()
            .filter(|r| r.get(field).and_then(Value::as_str) == Some(value))
            .filter_map(|r| r.pointer(&inner.id_pointer).and_then(RemoteId::from_json))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => {
                tracing::warn!(
                    external_key = value,
                    records = many.len(),
                    "several remote records carry one external key; adopting the first"
                );
                Ok(Some(many[0].clone()))
            }
        }
    }

    /// Replaces (`PUT`) or patches (`PATCH`, see [`UpdateMethod`]) the resource `remote_id`
    /// with `payload`. A 404 is a [`Error::Permanent`]: the remote has no such record.
    pub async fn update(
        &self,
        remote_id: &str,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<()> {
        self.update_keyed(remote_id, None, payload, idempotency_key)
            .await
    }

    /// [`update`](Self::update), the payload carrying `external_key` in the
    /// [`lookup_field`](HttpRemoteBuilder::lookup_field) when one is set (so that a record
    /// replaced by `PUT` can still be found by it).
    pub async fn update_keyed(
        &self,
        remote_id: &str,
        external_key: Option<&str>,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<()> {
        let with_key;
        let payload = match (external_key, self.with_lookup_key(payload, external_key)) {
            (Some(_), Some(keyed)) => {
                with_key = keyed;
                &with_key
            }
            _ => payload,
        };
        let method = match self.inner.update_method {
            UpdateMethod::Put => Method::PUT,
            UpdateMethod::Patch => Method::PATCH,
        };
        let url = self.item_url(remote_id, "remote id")?;
        let response = self
            .send(&method, &url, Some(payload), idempotency_key)
            .await?;
        let status = response.status();
        if status.is_success() {
            self.drain(response).await;
            return Ok(());
        }
        let failure = self.failure(response).await;
        if failure.status == StatusCode::NOT_FOUND {
            return Err(Error::Permanent {
                message: format!(
                    "{method} {} answered 404: the remote has no such record ({})",
                    url.path(),
                    failure.excerpt
                ),
                status: Some(404),
            });
        }
        Err(failure.into_error(&method, &url))
    }

    /// Deletes the resource `remote_id`. A 404 counts as done: it is already gone.
    pub async fn delete(&self, remote_id: &str, idempotency_key: &str) -> Result<()> {
        let url = self.item_url(remote_id, "remote id")?;
        let response = self
            .send(&Method::DELETE, &url, None, idempotency_key)
            .await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            self.drain(response).await;
            return Ok(());
        }
        Err(self
            .failure(response)
            .await
            .into_error(&Method::DELETE, &url))
    }

    /// Reads the resource `remote_id` (`GET {collection}/{id}`), for verification. `Ok(None)`
    /// when the remote answers 404; other failures are classified as for pushes.
    pub async fn fetch(&self, remote_id: &str) -> Result<Option<Value>> {
        let url = self.item_url(remote_id, "remote id")?;
        match self.get_json(&url).await {
            Ok((json, _)) => Ok(Some(json)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// How the collection is listed ([`HttpRemoteBuilder::listing`]), if it can be.
    pub fn listing(&self) -> Option<&Listing> {
        self.inner.listing.as_ref()
    }

    /// Reads one page of the collection (`GET {collection}` with the listing's query and
    /// pagination), for finding orphans: records the remote holds that no group points at.
    /// `page` is `None` for the first page, then the [`next`](crate::verify::RemotePage::next)
    /// of the page before. Tombstones (see [`Listing::deleted_pointer`]) are left out. One
    /// request per page; failures are classified as for pushes, and an answer without an array
    /// of records, or a record without an id, is [`Error::Permanent`]. Without a listing this
    /// is an [`Error::Config`].
    pub async fn list(&self, page: Option<&Value>) -> Result<crate::verify::RemotePage> {
        let inner = &*self.inner;
        let listing = inner.listing.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "the remote {} has no listing; configure one with `HttpRemoteBuilder::listing`",
                shown_url(&inner.collection_url)
            ))
        })?;
        let at = At::from_json(page)?;
        let url = listing.page_url(&inner.collection_url, &at)?;
        let (answer, headers) = self.get_json(&url).await?;
        let items = listing.items(&url, &answer)?;
        let next = listing.next(&url, &at, &answer, &headers, items.len())?;
        let records = items
            .into_iter()
            .filter(|item| !item.deleted)
            .map(|item| (item.remote_id, item.data.clone()))
            .collect();
        Ok(crate::verify::RemotePage::new(
            records,
            next.at.filter(|_| next.more).map(|at| at.to_json()),
        ))
    }

    /// The collection's URL, `{base}/{collection}`.
    pub(crate) fn collection_url(&self) -> &Url {
        &self.inner.collection_url
    }

    /// `GET url` (a listing): the answer as JSON, with its headers. Failures are classified as
    /// for pushes; an answer that is not JSON, or longer than `max_response_bytes`, is
    /// [`Error::Permanent`].
    pub(crate) async fn get_json(&self, url: &Url) -> Result<(Value, HeaderMap)> {
        let inner = &*self.inner;
        let method = Method::GET;
        let mut response = self.send(&method, url, None, "").await?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.failure(response).await.into_error(&method, url));
        }
        let headers = response.headers().clone();
        let body = answer::read_body(&mut response, inner.max_response_bytes)
            .await
            .map_err(|e| answer::transport_error(&method, url, inner.request_timeout, &e))?;
        let fail = |what: String| Error::Permanent {
            message: format!(
                "GET {} answered {} but {what}: {}",
                url.path(),
                status.as_u16(),
                answer::excerpt(&body, inner.credential.as_ref())
            ),
            status: Some(status.as_u16()),
        };
        if body.truncated {
            return Err(fail(format!(
                "the answer is longer than {} bytes (`max_response_bytes`); ask for smaller pages \
                 or raise the limit",
                inner.max_response_bytes
            )));
        }
        let json = serde_json::from_slice(&body.bytes)
            .map_err(|e| fail(format!("the answer is not JSON ({e})")))?;
        Ok((json, headers))
    }

    /// `{collection}/{id}`, the id percent-encoded as one path segment.
    fn item_url(&self, id: &str, what: &str) -> Result<Url> {
        // `.` and `..` would address the collection or its parent; an empty id the collection.
        if matches!(id, "" | "." | "..") {
            return Err(Error::permanent(format!(
                "the {what} `{id}` cannot address a resource below {}",
                self.inner.collection_url.path()
            )));
        }
        let mut url = self.inner.collection_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("the remote URL cannot have a path".into()))?
            .push(id);
        Ok(url)
    }

    /// Sends one request; fails only when no answer arrived.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        idempotency_key: &str,
    ) -> Result<Response> {
        let inner = &*self.inner;
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        headers.insert(ACCEPT, HeaderValue::from_static(JSON));
        // Reads (an inbound feed's listing) carry no key: they change nothing.
        if !idempotency_key.is_empty() {
            let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
                Error::permanent(format!(
                    "the idempotency key `{}` is not a valid `{}` header value; use visible ASCII",
                    idempotency_key.escape_debug(),
                    inner.idempotency_header
                ))
            })?;
            headers.insert(inner.idempotency_header.clone(), key);
        }
        if let Some((name, value)) = &inner.auth {
            headers.insert(name.clone(), value.clone());
        }
        let mut request = inner
            .client
            .request(method.clone(), url.clone())
            .timeout(inner.request_timeout);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| Error::permanent(format!("cannot serialize the payload: {e}")))?;
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            request = request.body(bytes);
        }
        let started = Instant::now();
        let response = request.headers(headers).send().await;
        let elapsed_ms = started.elapsed().as_millis();
        match response {
            Ok(response) => {
                tracing::debug!(%method, path = url.path(), status = response.status().as_u16(), elapsed_ms, "remote answered");
                Ok(response)
            }
            Err(e) => {
                let error = answer::transport_error(method, url, inner.request_timeout, &e);
                tracing::debug!(%method, path = url.path(), elapsed_ms, %error, "remote did not answer");
                Err(error)
            }
        }
    }

    /// Reads an answer that is not a success.
    async fn failure(&self, response: Response) -> answer::Failure {
        let inner = &*self.inner;
        answer::Failure::read(
            response,
            inner.max_response_bytes,
            inner.credential.as_ref(),
        )
        .await
    }

    /// Reads (at most the limit of) a successful answer whose content does not matter, so that
    /// the connection can serve the next request.
    async fn drain(&self, mut response: Response) {
        let _ = answer::read_body(&mut response, self.inner.max_response_bytes).await;
    }

    /// The id in a create's answer.
    fn read_id(
        &self,
        method: &Method,
        url: &Url,
        status: StatusCode,
        body: &answer::Body,
    ) -> Result<RemoteId> {
        let inner = &*self.inner;
        let code = status.as_u16();
        let fail = |what: String| Error::Permanent {
            message: format!(
                "{method} {} answered {code} but {what}: {}",
                url.path(),
                answer::excerpt(body, inner.credential.as_ref())
            ),
            status: Some(code),
        };
        if body.truncated {
            return Err(fail(format!(
                "the answer is longer than {} bytes (`max_response_bytes`); raise the limit if \
                 that is expected",
                inner.max_response_bytes
            )));
        }
        let text =
            std::str::from_utf8(&body.bytes).map_err(|_| fail("the answer is not UTF-8".into()))?;
        if text.trim().is_empty() {
            return Err(fail(format!(
                "the answer is empty; the id is expected at `{}`",
                inner.id_pointer
            )));
        }
        let json: Value = serde_json::from_str(text)
            .map_err(|e| fail(format!("the answer is not JSON ({e})")))?;
        let found = match json.pointer(&inner.id_pointer) {
            Some(Value::String(id)) if !matches!(id.as_str(), "" | "." | "..") => {
                return Ok(RemoteId::string(id.clone()));
            }
            Some(Value::Number(id)) => return Ok(RemoteId::number(id.clone())),
            None => "nothing".to_owned(),
            Some(Value::Null) => "null".to_owned(),
            Some(Value::String(id)) => format!("the string `{id}`"),
            Some(Value::Bool(b)) => format!("`{b}`"),
            Some(Value::Array(_)) => "an array".to_owned(),
            Some(Value::Object(_)) => "an object".to_owned(),
        };
        Err(fail(format!(
            "the answer has no id at `{}` (found {found}); set `id_pointer` to where the id is",
            inner.id_pointer
        )))
    }
}

/// A failed lookup says so, and carries no status: the pending create is kept and repeated
/// (a status would tell the worker the remote refused the create itself).
fn lookup_failed(error: Error) -> Error {
    let message = format!("looking up a record before repeating its create failed: {error}");
    match error {
        Error::Retryable { retry_after, .. } => Error::Retryable {
            message,
            status: None,
            retry_after,
        },
        _ => Error::Permanent {
            message,
            status: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| Ok(vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn debug_hides_credentials() {
        let remote = HttpRemote::builder("http://127.0.0.1:1/api?key=querysecret", "contacts")
            .bearer_token("hunter2")
            .build()
            .unwrap();
        let shown = format!("{remote:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("querysecret"), "{shown}");
        assert!(shown.contains("authorization: ***"), "{shown}");
        assert!(
            shown.contains("http://127.0.0.1:1/api/contacts?***"),
            "{shown}"
        );
    }

    #[test]
    fn urls_join_and_escape() {
        let remote = HttpRemote::builder("http://h/api/", "v1/contacts")
            .build()
            .unwrap();
        assert_eq!(
            remote.inner.collection_url.as_str(),
            "http://h/api/v1/contacts"
        );
        assert_eq!(
            remote.item_url("a b/c?d#e%f", "id").unwrap().as_str(),
            "http://h/api/v1/contacts/a%20b%2Fc%3Fd%23e%25f"
        );
        assert_eq!(
            remote.item_url("crm.contact:7", "id").unwrap().as_str(),
            "http://h/api/v1/contacts/crm.contact:7"
        );
        for bad in ["", ".", ".."] {
            let err = remote.item_url(bad, "remote id").unwrap_err();
            assert!(
                err.to_string().contains("cannot address a resource"),
                "{err}"
            );
        }
        let with_query = HttpRemote::builder("http://h/api?v=2", "contacts")
            .build()
            .unwrap();
        assert_eq!(
            with_query.item_url("7", "id").unwrap().as_str(),
            "http://h/api/contacts/7?v=2"
        );
    }

    #[test]
    fn from_env_reads_the_variables() {
        let remote = HttpRemote::from_lookup(
            "CRM",
            "contacts".into(),
            env(&[
                ("CRM_URL", "http://h/api"),
                ("CRM_TOKEN", "tok"),
                ("CRM_TIMEOUT_SECS", "12"),
            ]),
        )
        .unwrap();
        assert_eq!(
            remote.inner.collection_url.as_str(),
            "http://h/api/contacts"
        );
        assert_eq!(remote.inner.request_timeout, Duration::from_secs(12));
        let (name, value) = remote.inner.auth.as_ref().unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("authorization", "Bearer tok")
        );
        assert!(value.is_sensitive());

        let remote = HttpRemote::from_lookup(
            "CRM",
            "contacts".into(),
            env(&[
                ("CRM_URL", "http://h/api"),
                ("CRM_TOKEN", "key"),
                ("CRM_AUTH_HEADER", "X-Api-Key"),
            ]),
        )
        .unwrap();
        let (name, value) = remote.inner.auth.as_ref().unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("x-api-key", "key")
        );
        assert_eq!(remote.inner.request_timeout, Duration::from_secs(30));

        let err = |vars: &[(&str, &str)]| {
            HttpRemote::from_lookup("CRM", "contacts".into(), env(vars))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[]).contains("`CRM_URL` is not set"));
        assert!(err(&[("CRM_URL", " ")]).contains("`CRM_URL` is not set"));
        assert!(
            err(&[("CRM_URL", "http://h"), ("CRM_TIMEOUT_SECS", "soon")]).contains(
                "`CRM_TIMEOUT_SECS` must be a positive whole number of seconds, not `soon`"
            )
        );
        assert!(err(&[("CRM_URL", "http://h"), ("CRM_TIMEOUT_SECS", "0")]).contains("positive"));
        assert!(
            err(&[("CRM_URL", "http://h"), ("CRM_AUTH_HEADER", "X-Api-Key")])
                .contains("`CRM_AUTH_HEADER` is set but `CRM_TOKEN` is not")
        );
        assert!(err(&[("CRM_URL", "ftp://h")]).contains("must start with http"));
    }
}
