//! The built-in inbound feed: a plain REST list endpoint. See [`HttpFeed`].

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use url::Url;

use super::{FetchContext, InboundRecord, Page};
use crate::http::{At, Listing, Pagination};
use crate::{Error, HttpRemote, Result};

/// How to ask for changes only (with [`Pagination::Pages`]; a token API carries this in its
/// token, and a feed paging by links lists the whole collection every run).
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
/// `{"token": "…"}` in token mode, `{"link": "…"}` while paging by links (`{}` once the
/// listing ended: the next run starts at the first page).
///
/// The pagination, the record and id pointers, the delete flag and the query are a
/// [`Listing`], the same settings [`HttpRemoteBuilder::listing`](crate::HttpRemoteBuilder::listing)
/// takes; [`listing`](HttpFeedBuilder::listing) sets them at once.
#[derive(Clone)]
pub struct HttpFeed {
    remote: HttpRemote,
    listing: Listing,
    since: Since,
    modified: Option<String>,
}

impl fmt::Debug for HttpFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFeed")
            .field("remote", &self.remote)
            .field("listing", &self.listing)
            .field("since", &self.since)
            .field("modified", &self.modified)
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
                listing: Listing::new(Pagination::pages("page", "limit", 100)),
                since: Since::Nothing,
                modified: None,
            },
        }
    }
}

impl HttpFeedBuilder {
    /// The pagination, record and id pointers, delete flag and query at once (replacing what
    /// the other methods set).
    pub fn listing(mut self, listing: Listing) -> Self {
        self.feed.listing = listing;
        self
    }

    /// How the endpoint pages.
    pub fn pagination(mut self, pagination: Pagination) -> Self {
        self.feed.listing.pagination = pagination;
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
        self.feed.listing.records_pointer = pointer.into();
        self
    }

    /// Where a record holds its id (default `/id`; a string or a number).
    pub fn id_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.feed.listing.id_pointer = pointer.into();
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
        self.feed.listing.deleted_pointer = Some(pointer.into());
        self
    }

    /// A query parameter sent with every request (the first one only when paging by links),
    /// e.g. a sort order.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.feed.listing.query.push((name.into(), value.into()));
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<HttpFeed> {
        let feed = self.feed;
        feed.listing
            .check("HttpFeed", &[("modified_pointer", feed.modified.as_ref())])?;
        match (&feed.listing.pagination, &feed.since) {
            (Pagination::Token { .. }, Since::ModifiedSince { .. }) => {
                return Err(Error::Config(
                    "HttpFeed: a token API carries the position in its token; `Since::ModifiedSince` \
                     applies to numbered pages only"
                        .into(),
                ));
            }
            (Pagination::Link { .. }, Since::ModifiedSince { .. }) => {
                return Err(Error::Config(
                    "HttpFeed: a feed paging by links lists the whole collection every run; \
                     `Since::ModifiedSince` applies to numbered pages only"
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
        let collection = self.remote.collection_url();
        match &self.listing.pagination {
            Pagination::Pages { first, .. } => {
                self.fetch_page(cx, cursor, collection, *first).await
            }
            Pagination::Token { .. } => {
                let at = cursor
                    .and_then(|c| c.get("token"))
                    .and_then(Value::as_str)
                    .map_or(At::First, |t| At::Token(t.to_owned()));
                let (records, next) = self.list(collection, &at).await?;
                let token = match next.at {
                    Some(At::Token(t)) => Some(t),
                    _ => None,
                };
                Ok(Page {
                    records,
                    cursor: token.map(|t| json!({ "token": t })),
                    more: next.more,
                    state: None,
                })
            }
            // Links are positions within one listing: once it ended, the next run starts over.
            Pagination::Link { .. } => {
                let at = match cursor.filter(|c| c.get("link").is_some()) {
                    Some(cursor) => At::from_json(Some(cursor))?,
                    None => At::First,
                };
                let (records, next) = self.list(collection, &at).await?;
                let cursor = match next.at {
                    Some(at) if next.more => at.to_json(),
                    _ => json!({}),
                };
                Ok(Page {
                    records,
                    cursor: Some(cursor),
                    more: next.more,
                    state: None,
                })
            }
        }
    }

    /// Reads the page at `at` below `collection`: its records and what follows.
    async fn list(
        &self,
        collection: &Url,
        at: &At,
    ) -> Result<(Vec<InboundRecord>, crate::http::Next)> {
        let url = self.listing.page_url(collection, at)?;
        let (answer, headers) = self.remote.get_json(&url).await?;
        let records = self.records(&url, &answer)?;
        let next = self
            .listing
            .next(&url, at, &answer, &headers, records.len())?;
        Ok((records, next))
    }

    async fn fetch_page(
        &self,
        cx: &FetchContext<'_>,
        cursor: Option<&Value>,
        collection: &Url,
        first: u32,
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
        let mut base = collection.clone();
        if let (Since::ModifiedSince { param, overlap }, Some(since)) = (&self.since, since) {
            let from = since - overlap.as_millis() as i64;
            let value = if format == "ms" {
                from.to_string()
            } else {
                DateTime::<Utc>::from_timestamp_millis(from)
                    .unwrap_or_default()
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            };
            base.query_pairs_mut().append_pair(param, &value);
        }
        let (records, next) = self.list(&base, &At::Page(page)).await?;
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
        let more = next.more;
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
        let items = self.listing.items(url, answer)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let modified_at = match &self.modified {
                None => None,
                Some(pointer) => match item.data.pointer(pointer) {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(parse_time(value).ok_or_else(|| Error::Permanent {
                        message: format!(
                            "GET {} answered a listing but record `{}` has a modification time \
                             at `{pointer}` that is neither RFC 3339 nor milliseconds: {value}",
                            url.path(),
                            item.remote_id
                        ),
                        status: None,
                    })?),
                },
            };
            out.push(InboundRecord {
                remote_id: item.remote_id,
                data: item.data.clone(),
                deleted: item.deleted,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server answering `GET /api/items` (`?after=` absent or 1) by links.
    async fn server() -> String {
        use axum::extract::Query;
        let app = axum::Router::new().route(
            "/api/items",
            axum::routing::get(
                |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    axum::Json(match q.get("after").map(String::as_str) {
                        None => json!({"items": [{"id": 1}], "next": "/api/items?after=1"}),
                        _ => json!({"items": [{"id": 2, "deleted": true}], "next": null}),
                    })
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn a_feed_paging_by_links_lists_everything_every_run() {
        let remote = HttpRemote::builder(server().await, "items")
            .build()
            .unwrap();
        let feed = HttpFeed::builder(remote)
            .listing(Listing::new(Pagination::link("/next")).deleted_pointer("/deleted"))
            .build()
            .unwrap();
        let state = json!({});
        let cx = FetchContext {
            source: "items",
            state: &state,
            full: false,
        };
        let first = feed.fetch(&cx, None).await.unwrap();
        assert_eq!(first.records[0].remote_id, "1");
        assert!(first.more);
        let link = first.cursor.clone().unwrap();
        assert!(
            link["link"]
                .as_str()
                .unwrap()
                .ends_with("/api/items?after=1")
        );
        let last = feed.fetch(&cx, Some(&link)).await.unwrap();
        assert!(last.records[0].deleted, "the listing's delete flag");
        assert!(!last.more);
        assert_eq!(last.cursor, Some(json!({})), "the next run starts over");
        let again = feed.fetch(&cx, last.cursor.as_ref()).await.unwrap();
        assert_eq!(again.records[0].remote_id, "1");

        let refused = HttpFeed::builder(HttpRemote::builder("http://h", "items").build().unwrap())
            .pagination(Pagination::link_header())
            .since(Since::ModifiedSince {
                param: "since".into(),
                overlap: Duration::from_secs(1),
            })
            .modified_pointer("/at")
            .build()
            .unwrap_err();
        assert!(
            refused.to_string().contains("numbered pages only"),
            "{refused}"
        );
    }
}
