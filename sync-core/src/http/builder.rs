//! The settings of an [`HttpRemote`] and their checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use url::Url;

use super::{HttpRemote, Inner, Listing, Secret, shown_url};
use crate::{Error, Result};

/// The method updates use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpdateMethod {
    /// `PUT {collection}/{id}`: replace the resource.
    #[default]
    Put,
    /// `PATCH {collection}/{id}`: merge into it.
    Patch,
}

/// How creates are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreateMode {
    /// `POST {collection}`; the remote assigns the id and answers it.
    #[default]
    Post,
    /// `PUT {collection}/{external key}`, for remotes that upsert by an external key: a create
    /// repeated after a crash updates the record instead of duplicating it. The id is read from
    /// the answer at the id pointer; when the answer has none (an empty answer, no id at the
    /// pointer), the external key is the id.
    ///
    /// Updates and deletes then address `{collection}/{id}`: when the remote only addresses
    /// records by their external key, point the id pointer at a field that holds that key (or at
    /// one the answer never has).
    PutByExternalKey,
}

/// The credential a remote sends.
#[derive(Clone)]
enum Auth {
    /// `Authorization: Bearer {token}`.
    Bearer(Secret),
    /// `{name}: {value}`.
    Header { name: String, value: Secret },
}

/// Builds an [`HttpRemote`]; see [`HttpRemote::builder`]. Nothing is checked until
/// [`build`](HttpRemoteBuilder::build).
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct HttpRemoteBuilder {
    base_url: String,
    collection: String,
    id_pointer: String,
    auth: Option<Auth>,
    update_method: UpdateMethod,
    create_mode: CreateMode,
    lookup_field: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    idempotency_header: String,
    max_response_bytes: usize,
    client: Option<reqwest::Client>,
    bulk: Option<(String, usize)>,
    listing: Option<Listing>,
}

impl fmt::Debug for HttpRemoteBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = self.auth.as_ref().map(|auth| match auth {
            Auth::Bearer(_) => "authorization: Bearer ***".to_owned(),
            Auth::Header { name, .. } => format!("{name}: ***"),
        });
        let base_url = match Url::parse(&self.base_url) {
            Ok(url) => shown_url(&url),
            Err(_) => "(not a URL)".to_owned(),
        };
        f.debug_struct("HttpRemoteBuilder")
            .field("base_url", &base_url)
            .field("collection", &self.collection)
            .field("id_pointer", &self.id_pointer)
            .field("auth", &auth)
            .field("update_method", &self.update_method)
            .field("create_mode", &self.create_mode)
            .field("lookup_field", &self.lookup_field)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("idempotency_header", &self.idempotency_header)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("shared_client", &self.client.is_some())
            .field("bulk", &self.bulk)
            .field("listing", &self.listing)
            .finish()
    }
}

impl HttpRemoteBuilder {
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default limit of an answer's size: 1 MiB.
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
    /// The default name of the idempotency header.
    pub const DEFAULT_IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
    /// The default JSON pointer to the id in a create's answer.
    pub const DEFAULT_ID_POINTER: &str = "/id";

    pub(super) fn new(base_url: String, collection: String) -> Self {
        HttpRemoteBuilder {
            base_url,
            collection,
            id_pointer: Self::DEFAULT_ID_POINTER.into(),
            auth: None,
            update_method: UpdateMethod::default(),
            create_mode: CreateMode::default(),
            lookup_field: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            idempotency_header: Self::DEFAULT_IDEMPOTENCY_HEADER.into(),
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            client: None,
            bulk: None,
            listing: None,
        }
    }

    /// The collection can be listed, `GET {collection}` page by page, as `listing` says (see
    /// [`Listing`]): verification then also reports *orphans*, records the remote holds that
    /// no group points at ([`HttpRemote::list`], [`Syncer::list`](crate::Syncer::list)). Each
    /// page is one request, under the syncer's [`Limits`](crate::Limits): listing 10,000
    /// records 100 a page costs 100 requests.
    pub fn listing(mut self, listing: Listing) -> Self {
        self.listing = Some(listing);
        self
    }

    /// A bulk endpoint, `{collection}/{path}`, taking up to `max_items` creates and updates in
    /// one request (see [`HttpRemote::push_many`]); syncers using this remote then push in
    /// batches.
    pub fn bulk(mut self, path: impl Into<String>, max_items: usize) -> Self {
        self.bulk = Some((path.into(), max_items));
        self
    }

    /// Where the id is in a create's answer, as a JSON pointer (RFC 6901, default `/id`; e.g.
    /// `/data/uid`). The value there may be a string or a number.
    pub fn id_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.id_pointer = pointer.into();
        self
    }

    /// Sends `Authorization: Bearer {token}`. Replaces an earlier
    /// [`auth_header`](Self::auth_header).
    pub fn bearer_token(mut self, token: impl Into<Secret>) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    /// Sends the header `name: value` (e.g. `X-Api-Key`) as the credential. Replaces an earlier
    /// [`bearer_token`](Self::bearer_token).
    pub fn auth_header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.auth = Some(Auth::Header {
            name: name.into(),
            value: value.into(),
        });
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

    /// For remotes that can find records by a field but honour no `Idempotency-Key` (a plain
    /// REST server such as json-server): every create's payload (a JSON object) carries the
    /// group's external key (`syncer:root key`) in `field`, and a create repeated after a crash
    /// first asks `GET {collection}?{field}={external key}` and, when the remote has such a
    /// record, adopts it instead of creating a second one. The answer to that `GET` must be a
    /// JSON array of records (or an object with the array under `data`, `items` or
    /// `results`); the id is read from each at the id pointer.
    ///
    /// Only `POST` creates use it; a remote that upserts by external key is safe already (see
    /// [`CreateMode::PutByExternalKey`]).
    pub fn lookup_field(mut self, field: impl Into<String>) -> Self {
        self.lookup_field = Some(field.into());
        self
    }

    /// The limit for opening a connection (default 5 s). Ignored with a shared
    /// [`client`](Self::client), which has its own.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit for a whole request, from connecting to the answer's last byte (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The header carrying the idempotency key (default `Idempotency-Key`).
    pub fn idempotency_header(mut self, name: impl Into<String>) -> Self {
        self.idempotency_header = name.into();
        self
    }

    /// A create's answer longer than this is an error (default 1 MiB). Longer error answers
    /// are cut for their excerpt, longer answers to updates and deletes are not read. Answers
    /// are read piece by piece, never more than this.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Shares a client (and its connection pool) between remotes. The request timeout still
    /// applies; the connect timeout and the redirect policy are the client's own. The client
    /// this builder makes otherwise follows no redirects, so that a credential is never sent
    /// elsewhere: build yours with `reqwest::redirect::Policy::none()` too.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the settings and builds the remote. Every [`Error::Config`] it returns says what
    /// to fix.
    pub fn build(self) -> Result<HttpRemote> {
        let collection_url = collection_url(&self.base_url, &self.collection)?;
        check_pointer(&self.id_pointer)?;
        let idempotency_header = HeaderName::from_bytes(self.idempotency_header.as_bytes())
            .map_err(|_| {
                config(format!(
                    "the idempotency header name `{}` is not a valid header name; use letters, \
                     digits and `-`, e.g. `Idempotency-Key`",
                    self.idempotency_header
                ))
            })?;
        let (auth, credential) = match self.auth {
            None => (None, None),
            Some(auth) => {
                let (name, value, credential) = auth_header(auth)?;
                (Some((name, value)), Some(credential))
            }
        };
        if self.connect_timeout.is_zero() {
            return Err(config(
                "the connect timeout is zero; give a positive duration, e.g. 5 s".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(config(
                "the request timeout is zero; give a positive duration, e.g. 30 s".into(),
            ));
        }
        let lookup_field = match self.lookup_field {
            Some(field) if field.is_empty() || field.contains(['&', '=', '#', '?']) => {
                return Err(config(format!(
                    "the lookup field `{field}` is not a field name; give one such as `external_id`"
                )));
            }
            Some(_) if self.bulk.is_some() => {
                return Err(config(
                    "a lookup field does not apply to bulk pushes; configure one or the other"
                        .into(),
                ));
            }
            Some(_) if self.create_mode == CreateMode::PutByExternalKey => {
                return Err(config(
                    "a lookup field is for `POST` creates; with `CreateMode::PutByExternalKey` \
                     a repeated create is an update already"
                        .into(),
                ));
            }
            other => other,
        };
        let bulk = match self.bulk {
            None => None,
            Some((_, 0)) => {
                return Err(config(
                    "the bulk endpoint takes at most 0 items; give at least 1".into(),
                ));
            }
            Some((path, max)) => {
                if path.is_empty() || path.contains(['?', '#']) {
                    return Err(config(format!(
                        "the bulk path `{path}` is not a path below the collection, e.g. `bulk`"
                    )));
                }
                let mut url = collection_url.clone();
                url.path_segments_mut()
                    .map_err(|()| config("the remote URL cannot have a path".into()))?
                    .extend(path.split('/').filter(|s| !s.is_empty()));
                Some((url, max))
            }
        };
        if let Some(listing) = &self.listing {
            listing.check("the remote's listing:", &[])?;
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(HttpRemote {
            inner: Arc::new(Inner {
                client,
                collection_url,
                id_pointer: self.id_pointer,
                auth,
                credential,
                update_method: self.update_method,
                create_mode: self.create_mode,
                lookup_field,
                request_timeout: self.request_timeout,
                idempotency_header,
                max_response_bytes: self.max_response_bytes,
                bulk,
                listing: self.listing,
            }),
        })
    }
}

fn config(message: String) -> Error {
    Error::Config(message)
}

/// `{base_url}/{collection}`, checked.
fn collection_url(base_url: &str, collection: &str) -> Result<Url> {
    let mut url = Url::parse(base_url).map_err(|e| {
        // The URL may hold a credential (user info, a query); show it only when it cannot.
        let shown = if base_url.contains(['@', '?']) {
            "the remote URL".to_owned()
        } else {
            format!("the remote URL `{base_url}`")
        };
        config(format!(
            "{shown} is invalid ({e}); give an absolute URL, e.g. `https://crm.example.com/api`"
        ))
    })?;
    let shown = shown_url(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(format!(
            "the remote URL `{shown}` must start with http:// or https://"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config(format!(
            "the remote URL `{shown}` holds a credential; give it with `bearer_token` or \
             `auth_header` instead"
        )));
    }
    if url.fragment().is_some() {
        return Err(config(format!(
            "the remote URL `{shown}` has a fragment (`#...`), which is never sent; remove it"
        )));
    }
    let segments: Vec<&str> = collection.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Err(config(
            "the remote collection is empty; give the path of the resources below the base URL, \
             e.g. `contacts`"
                .into(),
        ));
    }
    if segments.iter().any(|s| matches!(*s, "." | "..")) {
        return Err(config(format!(
            "the remote collection `{collection}` contains `.` or `..`; give the path of the \
             resources below the base URL, e.g. `contacts`"
        )));
    }
    url.path_segments_mut()
        .map_err(|()| config(format!("the remote URL `{shown}` cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Checks an RFC 6901 JSON pointer.
fn check_pointer(pointer: &str) -> Result<()> {
    if !pointer.starts_with('/') {
        return Err(config(format!(
            "the id pointer `{pointer}` must be a JSON pointer starting with `/`, e.g. `/id` or \
             `/data/id`"
        )));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(config(format!(
                "the id pointer `{pointer}` has a `~` not followed by `0` or `1`; write `~0` for \
                 `~` and `~1` for `/` in a key"
            )));
        }
    }
    Ok(())
}

/// The header a credential travels in, marked sensitive, and the bare credential.
fn auth_header(auth: Auth) -> Result<(HeaderName, HeaderValue, Secret)> {
    let (name, text, credential, what) = match auth {
        Auth::Bearer(token) => (
            AUTHORIZATION,
            format!("Bearer {}", token.expose()),
            token,
            "the bearer token".to_owned(),
        ),
        Auth::Header { name, value } => {
            let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                config(format!(
                    "the auth header name `{name}` is not a valid header name; use letters, \
                     digits and `-`, e.g. `X-Api-Key`"
                ))
            })?;
            let what = format!("the value of the `{name}` header");
            (parsed, value.expose().to_owned(), value, what)
        }
    };
    if credential.expose().trim().is_empty() {
        return Err(config(format!("{what} is empty")));
    }
    // The message never shows the value.
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        config(format!(
            "{what} is not a valid header value: it may hold only visible ASCII characters and \
             spaces (no line breaks)"
        ))
    })?;
    value.set_sensitive(true);
    Ok((name, value, credential))
}
