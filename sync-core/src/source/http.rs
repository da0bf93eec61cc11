//! The built-in inbound feed: a plain REST list endpoint. See [`HttpFeed`].

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use url::Url;

use super::{FetchContext, InboundRecord, Page};
use crate::{Error, HttpRemote, RemoteId, Result};

/// How the list endpoint pages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pagination {
    /// Numbered pages: `?{page}=1&{limit}=200`, then 2, 3 … until a page holds fewer than
    /// `limit` records (json-server's `_page` and `_limit`).
    Pages {
        /// The page number's parameter, e.g. `_page` or `page`.
        page: String,
        /// The page size's parameter, e.g. `_limit` or `per_page`.
        limit: String,
        /// The page size asked for.
        size: u32,
        /// The first page's number (usually 1).
        first: u32,
    },
    /// A token: the answer holds the token of the next page at `next` (a JSON pointer; absent,
    /// `null` or empty when none follows), sent back as `?{param}=…`. The last token of a run is
    /// kept, so the next run asks for the changes after it: the usual "changes since a cursor"
    /// API. With `more` (a JSON pointer to a boolean), the answer says whether another page
    /// follows; without it, the feed asks until a page is empty.
    Token {
        /// The token's query parameter, e.g. `cursor` or `page_token`.
        param: String,
        /// Where the answer holds the next token, e.g. `/next_cursor`.
        next: String,
        /// Where the answer says whether more follow, e.g. `/has_more`.
        more: Option<String>,
    },
}

impl Pagination {
    /// Numbered pages with the given parameters, starting at 1.
    pub fn pages(page: impl Into<String>, limit: impl Into<String>, size: u32) -> Self {
        Pagination::Pages {
            page: page.into(),
            limit: limit.into(),
            size,
            first: 1,
        }
    }

    /// Tokens: the parameter to send one in, and where the answer holds the next one.
    pub fn token(param: impl Into<String>, next: impl Into<String>) -> Self {
        Pagination::Token {
            param: param.into(),
            next: next.into(),
            more: None,
        }
    }
}

/// How to ask for changes only (with [`Pagination::Pages`]; a token API carries this in its
/// token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Since {
    /// No change query: every run lists the whole collection (re-reads are skipped by digest).
    Nothing,
    /// `?{param}={t}`, records modified at or after `t`, where `t` is the latest modification
    /// time a completed run saw minus `overlap`: how late the remote may commit a record with an
    /// earlier time (remotes commit out of order). A record committed later than that after a
    /// newer one was listed is missed until a full run.
    ModifiedSince {
        /// The parameter, e.g. `updated_at_gte`.
        param: String,
        /// How far back each run looks again.
        overlap: Duration,
    },
}

/// A plain REST list endpoint as an inbound feed: `GET {base}/{collection}` with a change query
/// and pagination, the records read from the answer at JSON pointers. It sends its requests
/// through an [`HttpRemote`] (credential, timeouts, error classification and `Retry-After`
/// as for pushes).
///
/// ```
/// # fn demo() -> sync_core::Result<()> {
/// use std::time::Duration;
/// use sync_core::HttpRemote;
/// use sync_core::source::{HttpFeed, Pagination, Since};
///
/// // json-server: `GET /products?_page=1&_limit=200&_sort=updated_at&updated_at_gte=…`
/// let remote = HttpRemote::builder("http://127.0.0.1:3000", "products").build()?;
/// let feed = HttpFeed::builder(remote)
///     .pagination(Pagination::pages("_page", "_limit", 200))
///     .since(Since::ModifiedSince {
///         param: "updated_at_gte".into(),
///         overlap: Duration::from_secs(30),
///     })
///     .modified_pointer("/updated_at")
///     .query("_sort", "updated_at")
///     .build()?;
/// # Ok(()) }
/// ```
///
/// The cursor it stores is JSON: `{"since": <ms>, "page": n, "seen": <ms>}` in page mode (`since`
/// the start of the current listing, `seen` the latest modification time listed so far),
/// `{"token": "…"}` in token mode.
#[derive(Clone)]
pub struct HttpFeed {
    remote: HttpRemote,
    pagination: Pagination,
    since: Since,
    records: String,
    id: String,
    modified: Option<String>,
    deleted: Option<String>,
    query: Vec<(String, String)>,
}

impl fmt::Debug for HttpFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFeed")
            .field("remote", &self.remote)
            .field("pagination", &self.pagination)
            .field("since", &self.since)
            .field("records", &self.records)
            .field("id", &self.id)
            .field("modified", &self.modified)
            .field("deleted", &self.deleted)
            .finish_non_exhaustive()
    }
}

/// Settings of an [`HttpFeed`]; see [`HttpFeed::builder`].
#[derive(Debug, Clone)]
pub struct HttpFeedBuilder {
    feed: HttpFeed,
}

impl HttpFeed {
    /// A feed listing `remote`'s collection. Defaults: numbered pages `page` and `limit` of 100,
    /// no change query, the records being the answer itself (a JSON array) or, in an object,
    /// the array at `/data`, `/items` or `/results`; ids at `/id`; no modification time; no
    /// delete flag.
    pub fn builder(remote: HttpRemote) -> HttpFeedBuilder {
        HttpFeedBuilder {
            feed: HttpFeed {
                remote,
                pagination: Pagination::pages("page", "limit", 100),
                since: Since::Nothing,
                records: String::new(),
                id: "/id".into(),
                modified: None,
                deleted: None,
                query: Vec::new(),
            },
        }
    }
}

impl HttpFeedBuilder {
    /// How the endpoint pages.
    pub fn pagination(mut self, pagination: Pagination) -> Self {
        self.feed.pagination = pagination;
        self
    }

    /// How to ask for changes only.
    pub fn since(mut self, since: Since) -> Self {
        self.feed.since = since;
        self
    }

    /// Where the answer holds the array of records (a JSON pointer; `""`, the default, looks at
    /// the answer itself, then `/data`, `/items`, `/results`).
    pub fn records_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.feed.records = pointer.into();
        self
    }

    /// Where a record holds its id (default `/id`; a string or a number).
    pub fn id_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.feed.id = pointer.into();
        self
    }

    /// Where a record holds its modification time: an RFC 3339 string or milliseconds since
    /// the epoch. Needed by [`Since::ModifiedSince`].
    pub fn modified_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.feed.modified = Some(pointer.into());
        self
    }

    /// Where a record holds its delete flag (a boolean; a tombstone when `true`).
    pub fn deleted_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.feed.deleted = Some(pointer.into());
        self
    }

    /// A query parameter sent with every request, e.g. a sort order.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.feed.query.push((name.into(), value.into()));
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<HttpFeed> {
        let feed = self.feed;
        let mut pointers = vec![("id_pointer", Some(&feed.id))];
        pointers.push(("modified_pointer", feed.modified.as_ref()));
        pointers.push(("deleted_pointer", feed.deleted.as_ref()));
        if !feed.records.is_empty() {
            pointers.push(("records_pointer", Some(&feed.records)));
        }
        if let Pagination::Token { next, more, .. } = &feed.pagination {
            pointers.push(("the token's `next` pointer", Some(next)));
            pointers.push(("the token's `more` pointer", more.as_ref()));
        }
        for (what, pointer) in pointers {
            if let Some(pointer) = pointer
                && !pointer.starts_with('/')
            {
                return Err(Error::Config(format!(
                    "HttpFeed {what} `{pointer}` must be a JSON pointer starting with `/`, e.g. \
                     `/id` or `/data/items`"
                )));
            }
        }
        match (&feed.pagination, &feed.since) {
            (Pagination::Pages { size: 0, .. }, _) => {
                return Err(Error::Config(
                    "HttpFeed pagination asks for pages of 0 records".into(),
                ));
            }
            (Pagination::Token { .. }, Since::ModifiedSince { .. }) => {
                return Err(Error::Config(
                    "HttpFeed: a token API carries the position in its token; `Since::ModifiedSince` \
                     applies to numbered pages only"
                        .into(),
                ));
            }
            (_, Since::ModifiedSince { .. }) if feed.modified.is_none() => {
                return Err(Error::Config(
                    "HttpFeed: `Since::ModifiedSince` needs `modified_pointer` (where a record \
                     holds its modification time)"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(feed)
    }
}

impl HttpFeed {
    /// Fetches the page after `cursor`.
    pub async fn fetch(&self, cx: &FetchContext<'_>, cursor: Option<&Value>) -> Result<Page> {
        let mut url = self.remote.collection_url().clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &self.query {
                pairs.append_pair(name, value);
            }
        }
        match &self.pagination {
            Pagination::Pages {
                page,
                limit,
                size,
                first,
            } => {
                self.fetch_page(cx, cursor, url, (page, limit, *size, *first))
                    .await
            }
            Pagination::Token { param, next, more } => {
                if let Some(token) = cursor.and_then(|c| c.get("token")).and_then(Value::as_str) {
                    url.query_pairs_mut().append_pair(param, token);
                }
                let (answer, _) = self.remote.get_json(&url).await?;
                let records = self.records(&url, &answer)?;
                let next_token = match answer.pointer(next) {
                    Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                let more = match more {
                    Some(pointer) => answer
                        .pointer(pointer)
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    None => !records.is_empty(),
                } && next_token.is_some();
                Ok(Page {
                    records,
                    cursor: next_token.map(|t| json!({ "token": t })),
                    more,
                    state: None,
                })
            }
        }
    }

    async fn fetch_page(
        &self,
        cx: &FetchContext<'_>,
        cursor: Option<&Value>,
        mut url: Url,
        (page_param, limit_param, size, first): (&String, &String, u32, u32),
    ) -> Result<Page> {
        let _ = cx;
        let since = cursor.and_then(|c| c.get("since")).and_then(Value::as_i64);
        let seen = cursor.and_then(|c| c.get("seen")).and_then(Value::as_i64);
        let page = cursor
            .and_then(|c| c.get("page"))
            .and_then(Value::as_u64)
            .map_or(first, |p| p as u32);
        let mut format = cursor
            .and_then(|c| c.get("format"))
            .and_then(Value::as_str)
            .unwrap_or("rfc3339")
            .to_owned();
        {
            let mut pairs = url.query_pairs_mut();
            if let (Since::ModifiedSince { param, overlap }, Some(since)) = (&self.since, since) {
                let from = since - overlap.as_millis() as i64;
                let value = if format == "ms" {
                    from.to_string()
                } else {
                    DateTime::<Utc>::from_timestamp_millis(from)
                        .unwrap_or_default()
                        .to_rfc3339_opts(SecondsFormat::Millis, true)
                };
                pairs.append_pair(param, &value);
            }
            pairs.append_pair(page_param, &page.to_string());
            pairs.append_pair(limit_param, &size.to_string());
        }
        let (answer, _) = self.remote.get_json(&url).await?;
        let records = self.records(&url, &answer)?;
        let mut latest = seen;
        for record in &records {
            if let Some(at) = record.modified_at {
                latest =
                    Some(latest.map_or(at.timestamp_millis(), |l| l.max(at.timestamp_millis())));
            }
        }
        if let Some(pointer) = &self.modified
            && let Some(Value::Number(_)) = answer_first_modified(&records, pointer)
        {
            format = "ms".into();
        }
        let more = records.len() >= size as usize;
        let cursor = if more {
            json!({ "since": since, "seen": latest, "page": page + 1, "format": format })
        } else {
            // The listing is complete: the next run asks from the latest time it saw.
            json!({ "since": latest.or(since), "format": format })
        };
        Ok(Page {
            records,
            cursor: Some(cursor),
            more,
            state: None,
        })
    }

    /// The records of an answer.
    fn records(&self, url: &Url, answer: &Value) -> Result<Vec<InboundRecord>> {
        let fail = |what: String| Error::Permanent {
            message: format!("GET {} answered a listing but {what}", url.path()),
            status: None,
        };
        let list = if self.records.is_empty() {
            match answer {
                Value::Array(list) => Some(list),
                Value::Object(map) => ["data", "items", "results"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_array)),
                _ => None,
            }
        } else {
            answer.pointer(&self.records).and_then(Value::as_array)
        }
        .ok_or_else(|| {
            fail(format!(
                "it holds no array of records at `{}`; set `records_pointer`",
                if self.records.is_empty() {
                    "/ (or /data, /items, /results)"
                } else {
                    &self.records
                }
            ))
        })?;
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let id = item
                .pointer(&self.id)
                .and_then(RemoteId::from_json)
                .ok_or_else(|| {
                    fail(format!(
                        "record {i} has no string or number id at `{}` (set `id_pointer`): {:.200}",
                        self.id,
                        item.to_string()
                    ))
                })?;
            let modified_at = match &self.modified {
                None => None,
                Some(pointer) => match item.pointer(pointer) {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(parse_time(value).ok_or_else(|| {
                        fail(format!(
                            "record `{id}` has a modification time at `{pointer}` that is neither \
                             RFC 3339 nor milliseconds: {value}"
                        ))
                    })?),
                },
            };
            let deleted = self
                .deleted
                .as_ref()
                .and_then(|p| item.pointer(p))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.push(InboundRecord {
                remote_id: id,
                data: item.clone(),
                deleted,
                modified_at,
            });
        }
        Ok(out)
    }
}

fn answer_first_modified<'a>(records: &'a [InboundRecord], pointer: &str) -> Option<&'a Value> {
    records.iter().find_map(|r| r.data.pointer(pointer))
}

fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}
