//! Listing a collection page by page: where the records are in an answer, where each record's id
//! is, and how one page leads to the next. The inbound [`HttpFeed`](crate::source::HttpFeed) and
//! the orphan search of [`HttpRemote::list`](super::HttpRemote::list) share it.

use reqwest::header::{HeaderMap, LINK};
use serde_json::{Value, json};
use url::Url;

use crate::{Error, RemoteId, Result};

/// How a list endpoint pages.
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
    /// `null` or empty when none follows), sent back as `?{param}=…`. An inbound feed keeps
    /// the last token of a run, so the next run asks for the changes after it: the usual
    /// "changes since a cursor" API. With `more` (a JSON pointer to a boolean), the answer says
    /// whether another page follows; without it, pages are asked for until one is empty.
    Token {
        /// The token's query parameter, e.g. `cursor` or `page_token`.
        param: String,
        /// Where the answer holds the next token, e.g. `/next_cursor`.
        next: String,
        /// Where the answer says whether more follow, e.g. `/has_more`.
        more: Option<String>,
    },
    /// A link: the answer gives the URL of the next page, in its body at the JSON pointer `next`
    /// (e.g. `/links/next`) or, when `next` is `None`, in a `Link: <…>; rel="next"` header
    /// (RFC 8288, as GitHub answers). No link (absent, `null` or empty) ends the listing. A
    /// relative link is resolved against the page's URL; a link to another scheme, host or
    /// port is refused, so that the credential never travels elsewhere. The first page carries
    /// the listing's query; the others only what their link carries. An inbound feed paging by
    /// links lists the whole collection on every run (re-reads are skipped by digest).
    Link {
        /// Where the answer holds the next page's URL; `None`: the `Link` header.
        next: Option<String>,
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

    /// Links in the answer's body, at the JSON pointer `next` (e.g. `/links/next`).
    pub fn link(next: impl Into<String>) -> Self {
        Pagination::Link {
            next: Some(next.into()),
        }
    }

    /// Links in the answer's `Link: <…>; rel="next"` header.
    pub fn link_header() -> Self {
        Pagination::Link { next: None }
    }
}

/// How a collection is listed: the pagination, where an answer holds its array of records,
/// where each record holds its id, and query parameters sent with the first page. See
/// [`HttpRemoteBuilder::listing`](crate::HttpRemoteBuilder::listing) and
/// [`HttpFeedBuilder::listing`](crate::source::HttpFeedBuilder::listing).
///
/// ```
/// use sync_core::{Listing, Pagination};
///
/// // `GET /contacts?per_page=100&page=1` answering `{"data": [{"uid": "c-1", …}, …]}`.
/// let listing = Listing::new(Pagination::pages("page", "per_page", 100))
///     .records_pointer("/data")
///     .id_pointer("/uid");
/// # let _ = listing;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing {
    /// How the pages follow one another.
    pub pagination: Pagination,
    /// Where an answer holds its array of records (a JSON pointer); `""` looks at the answer
    /// itself, then at `/data`, `/items` and `/results`.
    pub records_pointer: String,
    /// Where a record holds its id (a JSON pointer to a string or a number; default `/id`).
    pub id_pointer: String,
    /// Where a record holds a delete flag (a boolean; `true`: a tombstone, not a live record).
    pub deleted_pointer: Option<String>,
    /// Query parameters sent with the first page (and every page unless it pages by links),
    /// e.g. a sort order.
    pub query: Vec<(String, String)>,
}

impl Listing {
    /// A listing paging by `pagination`, the records being the answer itself (a JSON array) or,
    /// in an object, the array at `/data`, `/items` or `/results`; ids at `/id`; no delete flag,
    /// no query.
    pub fn new(pagination: Pagination) -> Self {
        Listing {
            pagination,
            records_pointer: String::new(),
            id_pointer: "/id".into(),
            deleted_pointer: None,
            query: Vec::new(),
        }
    }

    /// Where an answer holds its array of records (a JSON pointer such as `/data/items`).
    pub fn records_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.records_pointer = pointer.into();
        self
    }

    /// Where a record holds its id (default `/id`; a string or a number).
    pub fn id_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.id_pointer = pointer.into();
        self
    }

    /// Where a record holds its delete flag: records with `true` there are tombstones.
    pub fn deleted_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.deleted_pointer = Some(pointer.into());
        self
    }

    /// A query parameter sent with the first page (e.g. a sort order).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Checks the pointers and the page size; `owner` names the setting in messages.
    pub(crate) fn check(&self, owner: &str, extra: &[(&str, Option<&String>)]) -> Result<()> {
        let mut pointers = vec![
            ("id_pointer", Some(&self.id_pointer)),
            ("deleted_pointer", self.deleted_pointer.as_ref()),
        ];
        if !self.records_pointer.is_empty() {
            pointers.push(("records_pointer", Some(&self.records_pointer)));
        }
        match &self.pagination {
            Pagination::Token { next, more, .. } => {
                pointers.push(("the token's `next` pointer", Some(next)));
                pointers.push(("the token's `more` pointer", more.as_ref()));
            }
            Pagination::Link { next } => {
                pointers.push(("the link's `next` pointer", next.as_ref()))
            }
            Pagination::Pages { size: 0, .. } => {
                return Err(Error::Config(format!(
                    "{owner} pagination asks for pages of 0 records"
                )));
            }
            Pagination::Pages { .. } => {}
        }
        pointers.extend_from_slice(extra);
        for (what, pointer) in pointers {
            if let Some(pointer) = pointer
                && !pointer.starts_with('/')
            {
                return Err(Error::Config(format!(
                    "{owner} {what} `{pointer}` must be a JSON pointer starting with `/`, e.g. \
                     `/id` or `/data/items`"
                )));
            }
        }
        Ok(())
    }

    /// The URL of the page at `at`: the collection with the listing's query and the
    /// pagination's parameters, or the link itself.
    pub(crate) fn page_url(&self, collection: &Url, at: &At) -> Result<Url> {
        if let At::Link(link) = at {
            same_origin(collection, link)?;
            return Ok(link.clone());
        }
        let mut url = collection.clone();
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &self.query {
            pairs.append_pair(name, value);
        }
        match (&self.pagination, at) {
            (
                Pagination::Pages {
                    page, limit, size, ..
                },
                At::Page(n),
            ) => {
                pairs.append_pair(page, &n.to_string());
                pairs.append_pair(limit, &size.to_string());
            }
            (
                Pagination::Pages {
                    page,
                    limit,
                    size,
                    first,
                },
                _,
            ) => {
                pairs.append_pair(page, &first.to_string());
                pairs.append_pair(limit, &size.to_string());
            }
            (Pagination::Token { param, .. }, At::Token(token)) => {
                pairs.append_pair(param, token);
            }
            _ => {}
        }
        drop(pairs);
        // No query at all: no dangling `?`.
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// The records of an answer to `url`, each with its id and whether it is a tombstone.
    pub(crate) fn items<'a>(&self, url: &Url, answer: &'a Value) -> Result<Vec<Item<'a>>> {
        let fail = |what: String| Error::Permanent {
            message: format!("GET {} answered a listing but {what}", url.path()),
            status: None,
        };
        let list = if self.records_pointer.is_empty() {
            match answer {
                Value::Array(list) => Some(list),
                Value::Object(map) => ["data", "items", "results"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_array)),
                _ => None,
            }
        } else {
            answer
                .pointer(&self.records_pointer)
                .and_then(Value::as_array)
        }
        .ok_or_else(|| {
            fail(format!(
                "it holds no array of records at `{}`; set `records_pointer`",
                if self.records_pointer.is_empty() {
                    "/ (or /data, /items, /results)"
                } else {
                    &self.records_pointer
                }
            ))
        })?;
        list.iter()
            .enumerate()
            .map(|(i, data)| {
                let remote_id = data
                    .pointer(&self.id_pointer)
                    .and_then(RemoteId::from_json)
                    .ok_or_else(|| {
                        fail(format!(
                            "record {i} has no string or number id at `{}` (set `id_pointer`): \
                             {:.200}",
                            self.id_pointer,
                            data.to_string()
                        ))
                    })?;
                let deleted = self
                    .deleted_pointer
                    .as_ref()
                    .and_then(|p| data.pointer(p))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                Ok(Item {
                    remote_id,
                    data,
                    deleted,
                })
            })
            .collect()
    }

    /// What follows the page at `at`, fetched from `url`, whose answer held `count` records.
    pub(crate) fn next(
        &self,
        url: &Url,
        at: &At,
        answer: &Value,
        headers: &HeaderMap,
        count: usize,
    ) -> Result<Next> {
        Ok(match &self.pagination {
            Pagination::Pages { size, first, .. } => {
                let this = match at {
                    At::Page(n) => *n,
                    _ => *first,
                };
                let more = count >= *size as usize;
                Next {
                    at: more.then_some(At::Page(this + 1)),
                    more,
                }
            }
            Pagination::Token { next, more, .. } => {
                let token = match answer.pointer(next) {
                    Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                let more = match more {
                    Some(pointer) => answer
                        .pointer(pointer)
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    None => count > 0,
                } && token.is_some();
                Next {
                    at: token.map(At::Token),
                    more,
                }
            }
            Pagination::Link { next } => {
                let link = match next {
                    Some(pointer) => answer
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned),
                    None => next_link_header(headers),
                };
                let at = match link {
                    None => None,
                    Some(link) => {
                        let resolved = url.join(link.trim()).map_err(|e| Error::Permanent {
                            message: format!(
                                "GET {} answered a next-page link that is not a URL ({e})",
                                url.path()
                            ),
                            status: None,
                        })?;
                        same_origin(url, &resolved)?;
                        Some(At::Link(resolved))
                    }
                };
                Next {
                    more: at.is_some(),
                    at,
                }
            }
        })
    }
}

/// One record of a listed page.
#[derive(Debug)]
pub(crate) struct Item<'a> {
    pub(crate) remote_id: RemoteId,
    pub(crate) data: &'a Value,
    pub(crate) deleted: bool,
}

/// Where a walk through a listing stands: which page to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    /// The first page.
    First,
    /// A numbered page.
    Page(u32),
    /// The page of a token.
    Token(String),
    /// The page a link leads to.
    Link(Url),
}

impl At {
    /// The position as JSON: `{"page": n}`, `{"token": "…"}`, `{"link": "…"}`, or `null`.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            At::First => Value::Null,
            At::Page(n) => json!({ "page": n }),
            At::Token(token) => json!({ "token": token }),
            At::Link(url) => json!({ "link": url.as_str() }),
        }
    }

    /// The position [`to_json`](Self::to_json) wrote (`None`, `null` or `{}`: the first page).
    pub(crate) fn from_json(value: Option<&Value>) -> Result<At> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(At::First);
        };
        if let Some(n) = value.get("page").and_then(Value::as_u64) {
            return Ok(At::Page(u32::try_from(n).unwrap_or(u32::MAX)));
        }
        if let Some(token) = value.get("token").and_then(Value::as_str) {
            return Ok(At::Token(token.to_owned()));
        }
        if let Some(link) = value.get("link").and_then(Value::as_str) {
            let url = Url::parse(link).map_err(|e| {
                Error::permanent(format!("the listing position's link is not a URL ({e})"))
            })?;
            return Ok(At::Link(url));
        }
        if value.as_object().is_some_and(serde_json::Map::is_empty) {
            return Ok(At::First);
        }
        Err(Error::permanent(format!(
            "`{value:.100}` is not a listing position (`{{\"page\": n}}`, `{{\"token\": …}}` or \
             `{{\"link\": …}}`)"
        )))
    }
}

/// What follows a page.
#[derive(Debug)]
pub(crate) struct Next {
    /// The next page's position: for tokens, the last token even when no page follows (an
    /// inbound feed starts its next run there).
    pub(crate) at: Option<At>,
    /// Whether another page follows in this listing.
    pub(crate) more: bool,
}

/// Refuses a link that leaves the collection's scheme, host and port.
fn same_origin(base: &Url, link: &Url) -> Result<()> {
    if base.scheme() == link.scheme()
        && base.host_str() == link.host_str()
        && base.port_or_known_default() == link.port_or_known_default()
    {
        return Ok(());
    }
    Err(Error::Permanent {
        message: format!(
            "the next-page link leads to {}://{}, not to the remote's own {}://{}; it is not \
             followed, so that the credential stays with the remote",
            link.scheme(),
            link.host_str().unwrap_or(""),
            base.scheme(),
            base.host_str().unwrap_or("")
        ),
        status: None,
    })
}

/// The `rel="next"` target of the `Link` headers, if any.
fn next_link_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_links)
        .find_map(|(target, params)| {
            params
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .any(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("rel")
                        && value
                            .trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|rel| rel.eq_ignore_ascii_case("next"))
                })
                .then(|| target.to_owned())
        })
}

/// The `<target>; params` entries of one `Link` header value.
fn split_links(value: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        let after = &rest[open + close + 1..];
        // The parameters run to the next entry, which starts with `,` then `<`.
        let end = after
            .char_indices()
            .find(|&(i, c)| c == ',' && after[i + 1..].trim_start().starts_with('<'))
            .map_or(after.len(), |(i, _)| i);
        out.push((target, &after[..end]));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_next_link_is_read_from_the_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                "<https://h/api/c?page=1>; rel=\"prev\", <https://h/api/c?page=3>; rel=\"next\", \
                 <https://h/api/c?page=9>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link_header(&headers).as_deref(),
            Some("https://h/api/c?page=3")
        );
        let mut none = HeaderMap::new();
        none.insert(
            LINK,
            HeaderValue::from_static("<https://h/x>; rel=\"prev\""),
        );
        assert_eq!(next_link_header(&none), None);
        assert_eq!(next_link_header(&HeaderMap::new()), None);
    }

    #[test]
    fn positions_round_trip_through_json() {
        for at in [
            At::First,
            At::Page(3),
            At::Token("t-1".into()),
            At::Link(Url::parse("http://h/c?after=5").unwrap()),
        ] {
            assert_eq!(At::from_json(Some(&at.to_json())).unwrap(), at);
        }
        assert_eq!(At::from_json(Some(&json!({}))).unwrap(), At::First);
        assert!(At::from_json(Some(&json!({"what": 1}))).is_err());
    }

    #[test]
    fn links_to_another_origin_are_refused() {
        let listing = Listing::new(Pagination::link("/next"));
        let url = Url::parse("http://h:8080/api/c").unwrap();
        let next = |link: &str| {
            listing.next(
                &url,
                &At::First,
                &json!({ "next": link }),
                &HeaderMap::new(),
                1,
            )
        };
        assert_eq!(
            next("/api/c?after=2").unwrap().at,
            Some(At::Link(Url::parse("http://h:8080/api/c?after=2").unwrap()))
        );
        let error = next("http://elsewhere:8080/api/c?after=2").unwrap_err();
        assert!(error.to_string().contains("not followed"), "{error}");
        assert!(next("https://h:8080/api/c").is_err());
        assert!(!next("").unwrap().more);
    }

    #[test]
    fn pages_end_at_a_short_page() {
        let listing = Listing::new(Pagination::pages("_page", "_limit", 2));
        let url = Url::parse("http://h/c").unwrap();
        let first = listing
            .page_url(&url, &At::First)
            .expect("a URL")
            .to_string();
        assert_eq!(first, "http://h/c?_page=1&_limit=2");
        let next = listing
            .next(&url, &At::First, &json!([]), &HeaderMap::new(), 2)
            .unwrap();
        assert_eq!((next.at, next.more), (Some(At::Page(2)), true));
        let last = listing
            .next(&url, &At::Page(2), &json!([]), &HeaderMap::new(), 1)
            .unwrap();
        assert!(!last.more);
    }
}
