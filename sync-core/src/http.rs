//! The built-in HTTP remote: plain REST over reqwest.
//!
//! `POST {base}/{collection}` creates and answers the resource, whose id is read at a JSON
//! pointer (`/id` by default, a string or a number); `PUT` (or `PATCH`)
//! `{base}/{collection}/{id}` updates; `DELETE {base}/{collection}/{id}` deletes, and a 404 there
//! counts as done. Every request carries an idempotency key. Answers are classified into the
//! crate's [`Error`]: timeouts, connection errors, 408, 429 and 5xx are retryable (429 with its
//! `Retry-After`), other statuses are permanent.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::{Error, Result};

/// A credential. Its `Debug` and `Display` print `***`, so it never reaches logs or traces.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The credential itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The method updates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpdateMethod {
    /// `PUT`: replace the resource.
    #[default]
    Put,
    /// `PATCH`: merge into it.
    Patch,
}

/// How creates are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreateMode {
    /// `POST {collection}`; the remote assigns the id.
    #[default]
    Post,
    /// `PUT {collection}/{external key}`, for remotes that upsert by an external key: a create
    /// repeated after a crash updates the record instead of duplicating it. The id is read from
    /// the answer, or is the external key if the answer has none.
    PutByExternalKey,
}

/// Builds an [`HttpRemote`]; see [`HttpRemote::builder`].
#[derive(Debug, Clone)]
pub struct HttpRemoteBuilder {
    base_url: String,
    collection: String,
    id_pointer: String,
    auth: Option<(String, Secret)>,
    update_method: UpdateMethod,
    create_mode: CreateMode,
    connect_timeout: Duration,
    request_timeout: Duration,
    idempotency_header: String,
    max_response_bytes: usize,
    client: Option<reqwest::Client>,
}

impl HttpRemoteBuilder {
    /// Where the id is in a create's answer, as a JSON pointer (default `/id`).
    pub fn id_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.id_pointer = pointer.into();
        self
    }

    /// Sends `Authorization: Bearer {token}`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some((
            "authorization".into(),
            Secret::new(format!("Bearer {}", token.into())),
        ));
        self
    }

    /// Sends the header `name: value` (e.g. `X-Api-Key`) as the credential.
    pub fn auth_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.auth = Some((name.into(), Secret::new(value)));
        self
    }

    /// `PUT` (default) or `PATCH` for updates.
    pub fn update_method(mut self, method: UpdateMethod) -> Self {
        self.update_method = method;
        self
    }

    /// `POST` (default) or `PUT` by external key for creates.
    pub fn create_mode(mut self, mode: CreateMode) -> Self {
        self.create_mode = mode;
        self
    }

    /// The limit for opening a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit for a whole request, answer included (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The header carrying the idempotency key (default `Idempotency-Key`).
    pub fn idempotency_header(mut self, name: impl Into<String>) -> Self {
        self.idempotency_header = name.into();
        self
    }

    /// Answers longer than this are an error (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Shares a client (its connection pool) between remotes. The request timeout still
    /// applies; the connect timeout is the client's own.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the settings and builds the remote.
    pub fn build(self) -> Result<HttpRemote> {
        let config = |m: String| Error::Config(m);
        let mut url = Url::parse(&self.base_url).map_err(|e| {
            config(format!(
                "the remote URL `{}` is invalid: {e}",
                self.base_url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config(format!(
                "the remote URL `{}` must start with http:// or https://",
                self.base_url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config(
                "put credentials in `bearer_token` or `auth_header`, not in the remote URL".into(),
            ));
        }
        let segments: Vec<&str> = self
            .collection
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if segments.is_empty() {
            return Err(config(
                "the remote collection is empty; give the path of the resources, e.g. `contacts`"
                    .into(),
            ));
        }
        url.path_segments_mut()
            .map_err(|()| {
                config(format!(
                    "the remote URL `{}` cannot have a path",
                    self.base_url
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        if !self.id_pointer.starts_with('/') {
            return Err(config(format!(
                "the id pointer `{}` must be a JSON pointer starting with `/`, e.g. `/id`",
                self.id_pointer
            )));
        }
        let idempotency_header = HeaderName::from_bytes(self.idempotency_header.as_bytes())
            .map_err(|_| {
                config(format!(
                    "`{}` is not a valid header name",
                    self.idempotency_header
                ))
            })?;
        let auth = match self.auth {
            None => None,
            Some((name, secret)) => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| config(format!("`{name}` is not a valid header name")))?;
                let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                    config(format!(
                        "the value of the `{name}` header is not a valid header value"
                    ))
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .build()
                .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(HttpRemote {
            inner: Arc::new(Inner {
                client,
                collection_url: url,
                id_pointer: self.id_pointer,
                auth,
                update_method: self.update_method,
                create_mode: self.create_mode,
                request_timeout: self.request_timeout,
                idempotency_header,
                max_response_bytes: self.max_response_bytes,
            }),
        })
    }
}

/// A plain REST remote. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct HttpRemote {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    collection_url: Url,
    id_pointer: String,
    auth: Option<(HeaderName, HeaderValue)>,
    update_method: UpdateMethod,
    create_mode: CreateMode,
    request_timeout: Duration,
    idempotency_header: HeaderName,
    max_response_bytes: usize,
}

impl fmt::Debug for HttpRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("HttpRemote")
            .field("collection_url", &i.collection_url.as_str())
            .field("id_pointer", &i.id_pointer)
            .field(
                "auth",
                &i.auth.as_ref().map(|(name, _)| format!("{name}: ***")),
            )
            .field("update_method", &i.update_method)
            .field("create_mode", &i.create_mode)
            .field("request_timeout", &i.request_timeout)
            .finish()
    }
}

impl HttpRemote {
    /// A remote whose resources live at `{base_url}/{collection}`.
    ///
    /// ```
    /// # fn demo() -> sync_core::Result<()> {
    /// let crm = sync_core::HttpRemote::builder("https://crm.example.com/api/v2", "contacts")
    ///     .bearer_token("s3cret")
    ///     .request_timeout(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder(
        base_url: impl Into<String>,
        collection: impl Into<String>,
    ) -> HttpRemoteBuilder {
        HttpRemoteBuilder {
            base_url: base_url.into(),
            collection: collection.into(),
            id_pointer: "/id".into(),
            auth: None,
            update_method: UpdateMethod::Put,
            create_mode: CreateMode::Post,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idempotency_header: "Idempotency-Key".into(),
            max_response_bytes: 1 << 20,
            client: None,
        }
    }

    /// A remote configured from the environment: `{prefix}_URL` (required),
    /// `{prefix}_TOKEN` (a bearer token, optional) and `{prefix}_TIMEOUT_SECS` (optional).
    pub fn from_env(prefix: &str, collection: impl Into<String>) -> Result<HttpRemote> {
        let var = |suffix: &str| {
            std::env::var(format!("{prefix}_{suffix}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let url = var("URL").ok_or_else(|| {
            Error::Config(format!(
                "the environment variable `{prefix}_URL` is not set; it holds the remote's base URL, \
                 e.g. `https://crm.example.com/api`"
            ))
        })?;
        let mut builder = HttpRemote::builder(url, collection);
        if let Some(token) = var("TOKEN") {
            builder = builder.bearer_token(token);
        }
        if let Some(secs) = var("TIMEOUT_SECS") {
            let secs: u64 = secs.parse().map_err(|_| {
                Error::Config(format!(
                    "`{prefix}_TIMEOUT_SECS` must be a whole number of seconds, not `{secs}`"
                ))
            })?;
            builder = builder.request_timeout(Duration::from_secs(secs));
        }
        builder.build()
    }

    /// Creates the resource and returns its id. See [`CreateMode`].
    pub async fn create(
        &self,
        payload: &Value,
        external_key: &str,
        idempotency_key: &str,
    ) -> Result<String> {
        let (method, url) = match self.inner.create_mode {
            CreateMode::Post => (Method::POST, self.inner.collection_url.clone()),
            CreateMode::PutByExternalKey => (Method::PUT, self.item_url(external_key)),
        };
        let answer = self
            .send(method.clone(), url.clone(), Some(payload), idempotency_key)
            .await?;
        if !answer.status.is_success() {
            return Err(classify(&method, &url, &answer));
        }
        match self.read_id(&method, &url, &answer) {
            Ok(id) => Ok(id),
            Err(_)
                if self.inner.create_mode == CreateMode::PutByExternalKey
                    && answer.body.is_empty() =>
            {
                Ok(external_key.to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// Updates the resource `remote_id` with `payload`. A 404 is a permanent error: the remote
    /// lost the record.
    pub async fn update(
        &self,
        remote_id: &str,
        payload: &Value,
        idempotency_key: &str,
    ) -> Result<()> {
        let method = match self.inner.update_method {
            UpdateMethod::Put => Method::PUT,
            UpdateMethod::Patch => Method::PATCH,
        };
        let url = self.item_url(remote_id);
        let answer = self
            .send(method.clone(), url.clone(), Some(payload), idempotency_key)
            .await?;
        if answer.status.is_success() {
            return Ok(());
        }
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::Permanent {
                message: format!(
                    "{method} {} answered 404: the remote has no such record",
                    url.path()
                ),
                status: Some(404),
            });
        }
        Err(classify(&method, &url, &answer))
    }

    /// Deletes the resource `remote_id`. A 404 counts as done.
    pub async fn delete(&self, remote_id: &str, idempotency_key: &str) -> Result<()> {
        let url = self.item_url(remote_id);
        let answer = self
            .send(Method::DELETE, url.clone(), None, idempotency_key)
            .await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(classify(&Method::DELETE, &url, &answer))
    }

    fn item_url(&self, id: &str) -> Url {
        let mut url = self.inner.collection_url.clone();
        url.path_segments_mut().expect("checked in build").push(id);
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        idempotency_key: &str,
    ) -> Result<Answer> {
        let inner = &self.inner;
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sync-core/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(key) = HeaderValue::from_str(idempotency_key) {
            headers.insert(inner.idempotency_header.clone(), key);
        }
        if let Some((name, value)) = &inner.auth {
            headers.insert(name.clone(), value.clone());
        }
        let mut request = inner
            .client
            .request(method.clone(), url.clone())
            .headers(headers)
            .timeout(inner.request_timeout);
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| Error::permanent(format!("cannot serialize the payload: {e}")))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let transport = |e: reqwest::Error| transport_error(&method, &url, &e);
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(parse_retry_after);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > inner.max_response_bytes {
                return Err(Error::Permanent {
                    message: format!(
                        "{method} {} answered {status} with more than {} bytes; raise `max_response_bytes` if that is expected",
                        url.path(),
                        inner.max_response_bytes
                    ),
                    status: Some(status.as_u16()),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    fn read_id(&self, method: &Method, url: &Url, answer: &Answer) -> Result<String> {
        let status = answer.status.as_u16();
        let fail = |what: String| Error::Permanent {
            message: format!(
                "{method} {} answered {status} but {what}: {}",
                url.path(),
                excerpt(&answer.body)
            ),
            status: Some(status),
        };
        let text = std::str::from_utf8(&answer.body)
            .map_err(|_| fail("the answer is not UTF-8".into()))?;
        let json: Value = serde_json::from_str(text)
            .map_err(|e| fail(format!("the answer is not JSON ({e})")))?;
        match json.pointer(&self.inner.id_pointer) {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            Some(Value::Number(id)) => Ok(id.to_string()),
            other => Err(fail(format!(
                "the answer has no id at `{}` (found {})",
                self.inner.id_pointer,
                other.map_or("nothing".to_owned(), Value::to_string)
            ))),
        }
    }
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// Turns a non-success answer into an error.
fn classify(method: &Method, url: &Url, answer: &Answer) -> Error {
    let status = answer.status;
    let message = format!(
        "{method} {} answered {}: {}",
        url.path(),
        status.as_u16(),
        excerpt(&answer.body)
    );
    let code = Some(status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Error::Retryable {
            message,
            status: code,
            retry_after: answer.retry_after,
        }
    } else {
        Error::Permanent {
            message,
            status: code,
        }
    }
}

fn transport_error(method: &Method, url: &Url, error: &reqwest::Error) -> Error {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed in transit"
    };
    // reqwest's message can name the URL; the URL holds no credentials (refused in `build`).
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let cause = if cause.is_empty() {
        String::new()
    } else {
        format!(" ({cause})")
    };
    Error::retryable(format!("{method} {} {what}{cause}", url.path()))
}

/// `Retry-After` as seconds or an HTTP date, at most one hour.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let delay = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(text)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(delay.min(Duration::from_secs(3600)))
}

/// At most 200 characters of an answer, for messages.
fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty answer)".into();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("99999")),
            Some(Duration::from_secs(3600))
        );
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let parsed = parse_retry_after(&HeaderValue::from_str(&in_a_minute).unwrap()).unwrap();
        assert!(
            parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(60),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn debug_hides_credentials() {
        let remote = HttpRemote::builder("http://127.0.0.1:1/api", "contacts")
            .bearer_token("hunter2")
            .build()
            .unwrap();
        let shown = format!("{remote:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("authorization: ***"), "{shown}");
        assert_eq!(
            format!("{:?} {}", Secret::new("x"), Secret::new("x")),
            "*** ***"
        );
    }

    #[test]
    fn build_names_what_is_wrong() {
        let err = |b: HttpRemoteBuilder| b.build().unwrap_err().to_string();
        assert!(err(HttpRemote::builder("not a url", "c")).contains("`not a url` is invalid"));
        assert!(err(HttpRemote::builder("ftp://h", "c")).contains("must start with http"));
        assert!(err(HttpRemote::builder("http://u:p@h", "c")).contains("not in the remote URL"));
        assert!(err(HttpRemote::builder("http://h", "/")).contains("collection is empty"));
        assert!(
            err(HttpRemote::builder("http://h", "c").id_pointer("id")).contains("JSON pointer")
        );
        assert!(
            err(HttpRemote::builder("http://h", "c").auth_header("bad header", "v"))
                .contains("not a valid header name")
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
            remote.item_url("a b/c").as_str(),
            "http://h/api/v1/contacts/a%20b%2Fc"
        );
    }
}
