//! The built-in HTTP remote against real HTTP servers on loopback: what it sends, and how it
//! classifies what it gets back.
#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};
use sync_core::{
    CreateMode, Error, HttpRemote, HttpRemoteBuilder, Listing, Pagination, Secret, UpdateMethod,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "s3cret-token";

/// The body of one scripted answer.
#[derive(Clone)]
enum ReplyBody {
    /// Sent at once, with a `Content-Length`.
    Full(Vec<u8>),
    /// Sent in pieces without a `Content-Length`, waiting `pause` before each but the first.
    Chunks {
        chunks: Vec<Vec<u8>>,
        pause: Duration,
    },
}

/// One answer the server gives, in order.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: ReplyBody,
    /// How long the server waits before answering at all.
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: ReplyBody::Full(body.to_string().into_bytes()),
        delay: Duration::ZERO,
    }
}

fn raw(status: u16, body: &[u8]) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: ReplyBody::Full(body.to_vec()),
        delay: Duration::ZERO,
    }
}

impl Reply {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn line(&self) -> (&str, &str) {
        (&self.method, &self.path)
    }
}

#[derive(Clone)]
struct Script {
    replies: Arc<Mutex<Vec<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    /// A server on loopback answering `replies` in order. Returns its base URL (`…/api`).
    async fn start(replies: Vec<Reply>) -> (Script, String) {
        let script = Script {
            replies: Arc::new(Mutex::new(replies)),
            seen: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (script, url)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn lines(&self) -> Vec<(String, String)> {
        self.seen()
            .into_iter()
            .map(|s| (s.method, s.path))
            .collect()
    }
}

async fn answer(State(script): State<Script>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request.headers().clone();
    let body = to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    script.seen.lock().unwrap().push(Seen {
        method,
        path,
        query,
        headers,
        body,
    });
    let next = {
        let mut replies = script.replies.lock().unwrap();
        assert!(!replies.is_empty(), "more requests than scripted answers");
        replies.remove(0)
    };
    tokio::time::sleep(next.delay).await;
    let mut response = Response::builder().status(StatusCode::from_u16(next.status).unwrap());
    for (name, value) in next.headers {
        response = response.header(name, value);
    }
    let body = match next.body {
        ReplyBody::Full(bytes) => Body::from(bytes),
        ReplyBody::Chunks { chunks, pause } => {
            Body::from_stream(futures::stream::iter(chunks.into_iter().enumerate()).then(
                move |(i, chunk)| async move {
                    if i > 0 {
                        tokio::time::sleep(pause).await;
                    }
                    Ok::<_, std::io::Error>(Bytes::from(chunk))
                },
            ))
        }
    };
    response.body(body).unwrap()
}

fn builder(url: &str) -> HttpRemoteBuilder {
    HttpRemote::builder(url, "contacts")
        .bearer_token(TOKEN)
        .request_timeout(Duration::from_millis(500))
}

fn remote(url: &str) -> HttpRemote {
    builder(url).build().unwrap()
}

#[track_caller]
fn assert_retryable(err: &Error, want_status: Option<u16>) {
    match err {
        Error::Retryable { status, .. } => assert_eq!(*status, want_status, "{err:?}"),
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

#[track_caller]
fn assert_permanent(err: &Error, want_status: Option<u16>) {
    match err {
        Error::Permanent { status, .. } => assert_eq!(*status, want_status, "{err:?}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

// --- create -------------------------------------------------------------------------------

#[tokio::test]
async fn create_posts_the_payload_with_its_headers_and_reads_a_numeric_id() {
    let (script, url) = Script::start(vec![reply(201, json!({"id": 42, "name": "Ada"}))]).await;
    let id = remote(&url)
        .create(
            &json!({"name": "Ada", "tags": [1, 2]}),
            "crm.contact:1",
            "1-1-abc",
        )
        .await
        .unwrap();
    assert_eq!(id, "42", "a numeric id becomes its decimal text");

    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.line(), ("POST", "/api/contacts"));
    assert_eq!(s.query, None);
    assert_eq!(s.json(), json!({"name": "Ada", "tags": [1, 2]}));
    assert_eq!(s.header("idempotency-key"), Some("1-1-abc"));
    assert_eq!(s.header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert_eq!(s.header("accept"), Some("application/json"));
    let agent = s.header("user-agent").unwrap();
    assert!(agent.starts_with("sync-core/"), "{agent}");
}

#[tokio::test]
async fn create_reads_a_string_id_at_a_custom_pointer() {
    let (script, url) = Script::start(vec![
        reply(201, json!({"data": {"uid": "c-7"}})),
        reply(201, json!({"id": "x", "data": {"uid": 12345678901234_u64}})),
        reply(200, json!({"a/b": {"~id": "escaped"}})),
    ])
    .await;
    let r = builder(&url).id_pointer("/data/uid").build().unwrap();
    assert_eq!(r.create(&json!({}), "k", "key-1").await.unwrap(), "c-7");
    assert_eq!(
        r.create(&json!({}), "k", "key-2").await.unwrap(),
        "12345678901234"
    );
    let escaped = builder(&url).id_pointer("/a~1b/~0id").build().unwrap();
    assert_eq!(
        escaped.create(&json!({}), "k", "key-3").await.unwrap(),
        "escaped"
    );
    let keys: Vec<_> = script
        .seen()
        .iter()
        .map(|s| s.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["key-1", "key-2", "key-3"]);
}

#[tokio::test]
async fn create_answering_without_an_id_is_permanent() {
    let (_, url) = Script::start(vec![
        reply(201, json!({"ok": true})),
        reply(201, json!({"id": null})),
        reply(201, json!({"id": ""})),
        reply(201, json!({"id": {"value": 1}})),
        raw(204, b""),
    ])
    .await;
    let r = remote(&url);
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(201));
    assert_eq!(
        err.to_string(),
        r#"POST /api/contacts answered 201 but the answer has no id at `/id` (found nothing); set `id_pointer` to where the id is: {"ok":true}"#
    );
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("(found null)"), "{err}");
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("(found the string ``)"), "{err}");
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("(found an object)"), "{err}");
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(204));
    assert!(err.to_string().contains("the answer is empty"), "{err}");
}

#[tokio::test]
async fn create_answering_malformed_json_is_permanent_with_an_excerpt() {
    let mut long = b"{not json ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    let (_, url) = Script::start(vec![raw(201, b"{not json"), raw(201, &long)]).await;
    let r = remote(&url);
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(201));
    let message = err.to_string();
    assert!(
        message.starts_with("POST /api/contacts answered 201 but the answer is not JSON ("),
        "{message}"
    );
    assert!(message.ends_with("): {not json"), "{message}");

    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    let message = err.to_string();
    let (_, excerpt) = message.rsplit_once("): ").unwrap();
    assert_eq!(excerpt.chars().count(), 201, "200 characters and `…`");
    assert!(excerpt.starts_with("{not json xxx") && excerpt.ends_with("x…"));
}

#[tokio::test]
async fn create_answering_non_utf8_is_permanent() {
    let (_, url) = Script::start(vec![raw(201, &[b'{', 0xff, 0xfe, b'}'])]).await;
    let err = remote(&url).create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(201));
    assert!(err.to_string().contains("the answer is not UTF-8"), "{err}");
}

#[tokio::test]
async fn oversized_answers_are_errors_and_never_read_whole() {
    let big = vec![b'x'; 4096];
    let chunked = Reply {
        body: ReplyBody::Chunks {
            chunks: vec![big.clone(); 1000],
            pause: Duration::ZERO,
        },
        ..raw(200, b"")
    };
    let (script, url) = Script::start(vec![
        raw(200, &big),
        chunked,
        raw(500, &big),
        raw(200, &big),
    ])
    .await;
    let r = builder(&url).max_response_bytes(1024).build().unwrap();

    // Announced by its Content-Length.
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(200));
    assert!(
        err.to_string()
            .contains("the answer is longer than 1024 bytes (`max_response_bytes`)"),
        "{err}"
    );
    // Streamed without a length (4 MB): reading stops at the limit.
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(200));
    assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");

    // A long error answer keeps its classification, with an excerpt.
    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert_retryable(&err, Some(500));
    assert!(err.to_string().ends_with("xxx…"), "{err}");

    // An update succeeded whatever its answer says.
    r.update("1", &json!({}), "k").await.unwrap();
    assert_eq!(script.seen().len(), 4);
}

#[tokio::test]
async fn creates_can_upsert_by_external_key() {
    let (script, url) = Script::start(vec![
        reply(200, json!({"id": "remote-9"})),
        raw(201, b""),
        reply(200, json!({"status": "ok"})),
        raw(200, b"OK"),
        reply(409, json!({"error": "locked"})),
    ])
    .await;
    let r = builder(&url)
        .create_mode(CreateMode::PutByExternalKey)
        .build()
        .unwrap();
    let payload = json!({"a": 1});
    assert_eq!(
        r.create(&payload, "crm.contact:7", "k1").await.unwrap(),
        "remote-9"
    );
    assert_eq!(
        r.create(&payload, "crm.contact:a b/c", "k2").await.unwrap(),
        "crm.contact:a b/c",
        "an empty answer: the key is the id"
    );
    assert_eq!(
        r.create(&payload, "crm.contact:9", "k3").await.unwrap(),
        "crm.contact:9",
        "no id at the pointer: the key is the id"
    );
    assert_eq!(
        r.create(&payload, "crm.contact:10", "k4").await.unwrap(),
        "crm.contact:10",
        "not JSON: the key is the id"
    );
    let err = r
        .create(&payload, "crm.contact:11", "k5")
        .await
        .unwrap_err();
    assert_permanent(&err, Some(409));
    assert!(
        err.to_string()
            .starts_with("PUT /api/contacts/crm.contact:11 answered 409"),
        "{err}"
    );

    let seen = script.seen();
    assert_eq!(seen[0].line(), ("PUT", "/api/contacts/crm.contact:7"));
    assert_eq!(
        seen[1].line(),
        ("PUT", "/api/contacts/crm.contact:a%20b%2Fc"),
        "the key is one percent-encoded path segment"
    );
    assert_eq!(seen[0].json(), payload);
    assert_eq!(seen[0].header("idempotency-key"), Some("k1"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
}

// --- update and delete --------------------------------------------------------------------

#[tokio::test]
async fn update_puts_or_patches_the_stored_id() {
    let (script, url) = Script::start(vec![reply(200, json!({"id": 42})), raw(204, b"")]).await;
    remote(&url)
        .update("42", &json!({"name": "Ada"}), "k1")
        .await
        .unwrap();
    builder(&url)
        .update_method(UpdateMethod::Patch)
        .build()
        .unwrap()
        .update("a b/ü", &json!({"name": "Lovelace"}), "k2")
        .await
        .unwrap();

    let seen = script.seen();
    assert_eq!(seen[0].line(), ("PUT", "/api/contacts/42"));
    assert_eq!(seen[0].json(), json!({"name": "Ada"}));
    assert_eq!(seen[0].header("idempotency-key"), Some("k1"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(seen[1].line(), ("PATCH", "/api/contacts/a%20b%2F%C3%BC"));
    assert_eq!(seen[1].json(), json!({"name": "Lovelace"}));
    assert_eq!(seen[1].header("idempotency-key"), Some("k2"));
}

#[tokio::test]
async fn update_of_a_missing_record_is_permanent() {
    let (_, url) = Script::start(vec![reply(404, json!({"error": "gone"}))]).await;
    let err = remote(&url)
        .update("44", &json!({}), "k")
        .await
        .unwrap_err();
    assert_permanent(&err, Some(404));
    assert_eq!(
        err.to_string(),
        r#"PUT /api/contacts/44 answered 404: the remote has no such record ({"error":"gone"})"#
    );
}

#[tokio::test]
async fn delete_deletes_and_a_404_counts_as_done() {
    let (script, url) = Script::start(vec![
        raw(204, b""),
        reply(404, json!({"error": "gone"})),
        reply(410, json!({"error": "gone for good"})),
    ])
    .await;
    let r = remote(&url);
    r.delete("42", "k1").await.unwrap();
    r.delete("43", "k2")
        .await
        .expect("a 404 on delete counts as done");
    let err = r.delete("44", "k3").await.unwrap_err();
    assert_permanent(&err, Some(410));

    let seen = script.seen();
    assert_eq!(
        script.lines(),
        [
            ("DELETE".into(), "/api/contacts/42".into()),
            ("DELETE".into(), "/api/contacts/43".into()),
            ("DELETE".into(), "/api/contacts/44".into()),
        ]
    );
    assert_eq!(seen[0].header("idempotency-key"), Some("k1"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(seen[0].header("content-type"), None, "a delete has no body");
    assert!(seen[0].body.is_empty());
}

#[tokio::test]
async fn ids_that_cannot_address_a_record_are_refused_before_sending() {
    let (script, url) = Script::start(vec![]).await;
    let r = remote(&url);
    for id in ["", ".", ".."] {
        let err = r.delete(id, "k").await.unwrap_err();
        assert_permanent(&err, None);
        assert!(
            err.to_string().contains("cannot address a resource"),
            "{err}"
        );
        let err = r.update(id, &json!({}), "k").await.unwrap_err();
        assert_permanent(&err, None);
    }
    let err = r.update("1", &json!({}), "line\nbreak").await.unwrap_err();
    assert_permanent(&err, None);
    assert!(
        err.to_string()
            .contains("is not a valid `idempotency-key` header value"),
        "{err}"
    );
    assert!(script.seen().is_empty());
}

// --- headers and credentials --------------------------------------------------------------

#[tokio::test]
async fn a_custom_auth_header_and_idempotency_header_are_sent() {
    let (script, url) = Script::start(vec![reply(201, json!({"id": 1})), raw(204, b"")]).await;
    let r = HttpRemote::builder(&url, "contacts")
        .auth_header("X-Api-Key", "key-123")
        .idempotency_header("X-Request-Id")
        .build()
        .unwrap();
    r.create(&json!({}), "k", "7-3-abc").await.unwrap();
    r.delete("1", "7-4-def").await.unwrap();
    for (s, key) in script.seen().iter().zip(["7-3-abc", "7-4-def"]) {
        assert_eq!(s.header("x-api-key"), Some("key-123"));
        assert_eq!(s.header("x-request-id"), Some(key));
        assert_eq!(s.header("authorization"), None);
        assert_eq!(s.header("idempotency-key"), None);
    }
}

#[tokio::test]
async fn debug_output_hides_the_credential() {
    let remote = remote("http://127.0.0.1:1/api?api_key=in-the-query");
    let shown = format!("{remote:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains("in-the-query"), "{shown}");
    assert!(shown.contains("authorization: ***"), "{shown}");

    let b = HttpRemote::builder("http://127.0.0.1:1/api", "contacts")
        .auth_header("X-Api-Key", "key-123");
    let shown = format!("{b:?}");
    assert!(!shown.contains("key-123"), "{shown}");
    assert!(shown.contains("X-Api-Key: ***"), "{shown}");
    let shown = format!("{:?}", b.build().unwrap());
    assert!(!shown.contains("key-123"), "{shown}");
    assert!(shown.contains("x-api-key: ***"), "{shown}");

    let b = HttpRemote::builder("http://user:pw-in-url@h/api", "contacts").bearer_token(TOKEN);
    let shown = format!("{b:?}");
    assert!(
        !shown.contains(TOKEN) && !shown.contains("pw-in-url"),
        "{shown}"
    );
    let err = b.build().unwrap_err().to_string();
    assert!(!err.contains("pw-in-url"), "{err}");

    let secret = Secret::new(TOKEN);
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
}

#[tokio::test]
async fn an_answer_echoing_the_credential_does_not_put_it_in_the_message() {
    let (_, url) = Script::start(vec![raw(
        401,
        format!("invalid token Bearer {TOKEN}").as_bytes(),
    )])
    .await;
    let err = remote(&url).update("1", &json!({}), "k").await.unwrap_err();
    assert_permanent(&err, Some(401));
    assert_eq!(
        err.to_string(),
        "PUT /api/contacts/1 answered 401: invalid token Bearer ***"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_so_credentials_stay_put() {
    let (elsewhere, elsewhere_url) = Script::start(vec![reply(201, json!({"id": 1}))]).await;
    let (script, url) = Script::start(vec![
        raw(307, b"").header("location", format!("{elsewhere_url}/contacts")),
    ])
    .await;
    let r = HttpRemote::builder(&url, "contacts")
        .auth_header("X-Api-Key", "key-123")
        .build()
        .unwrap();
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_permanent(&err, Some(307));
    assert!(
        err.to_string().contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(script.seen().len(), 1);
    assert!(elsewhere.seen().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn remotes_can_share_a_client_and_keep_their_base_query() {
    let (script, url) = Script::start(vec![raw(204, b""), raw(204, b"")]).await;
    let client = reqwest::Client::new();
    let contacts = HttpRemote::builder(format!("{url}?v=2"), "contacts")
        .client(client.clone())
        .build()
        .unwrap();
    let orders = HttpRemote::builder(&url, "v1/orders")
        .client(client)
        .build()
        .unwrap();
    contacts.delete("1", "k").await.unwrap();
    orders.delete("2", "k").await.unwrap();
    let seen = script.seen();
    assert_eq!(seen[0].line(), ("DELETE", "/api/contacts/1"));
    assert_eq!(seen[0].query.as_deref(), Some("v=2"));
    assert_eq!(seen[1].line(), ("DELETE", "/api/v1/orders/2"));
}

// --- classification -----------------------------------------------------------------------

#[tokio::test]
async fn server_errors_and_408_are_retryable_with_their_status() {
    let (_, url) = Script::start(vec![
        reply(500, json!({"error": "boom"})),
        raw(503, b"<html>down for maintenance</html>"),
        reply(408, json!({})),
    ])
    .await;
    let r = remote(&url);
    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Retryable {
                status: Some(500),
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"PUT /api/contacts/1 answered 500: {"error":"boom"}"#
    );
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_retryable(&err, Some(503));
    assert_eq!(
        err.to_string(),
        "POST /api/contacts answered 503: <html>down for maintenance</html>"
    );
    let err = r.delete("1", "k").await.unwrap_err();
    assert_retryable(&err, Some(408));
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let (_, url) = Script::start(vec![
        reply(429, json!({"error": "slow down"})).header("retry-after", "7"),
        reply(429, json!({})).header("retry-after", in_two_minutes),
        reply(429, json!({})),
        reply(429, json!({})).header("retry-after", "86400"),
        reply(503, json!({})).header("retry-after", "3"),
    ])
    .await;
    let r = remote(&url);
    let retry_after = |err: Error| match err {
        Error::Retryable {
            status: Some(code),
            retry_after,
            ..
        } => (code, retry_after),
        other => panic!("{other:?}"),
    };

    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert!(err.to_string().contains("slow down"), "{err}");
    assert_eq!(retry_after(err), (429, Some(Duration::from_secs(7))));

    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    let (code, after) = retry_after(err);
    assert_eq!(code, 429);
    let after = after.expect("an HTTP date is read");
    assert!(
        after > Duration::from_secs(110) && after <= Duration::from_secs(120),
        "{after:?}"
    );

    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert_eq!(retry_after(err), (429, None));

    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert_eq!(
        retry_after(err),
        (429, Some(Duration::from_secs(3600))),
        "bounded to an hour"
    );

    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert_eq!(retry_after(err), (503, Some(Duration::from_secs(3))));
}

#[tokio::test]
async fn other_client_errors_are_permanent_with_an_excerpt() {
    let long = format!("{{\"error\": \"{}\"}}", "e".repeat(10_000));
    let (_, url) = Script::start(vec![
        reply(422, json!({"error": "email is invalid"})),
        raw(400, long.as_bytes()),
        raw(403, &[0xff, b'n', b'o']),
    ])
    .await;
    let r = remote(&url);
    let err = r
        .create(&json!({"email": "x"}), "k", "k")
        .await
        .unwrap_err();
    assert_permanent(&err, Some(422));
    assert_eq!(
        err.to_string(),
        r#"POST /api/contacts answered 422: {"error":"email is invalid"}"#
    );
    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    assert_permanent(&err, Some(400));
    let message = err.to_string();
    let excerpt = message
        .strip_prefix("PUT /api/contacts/1 answered 400: ")
        .unwrap();
    assert_eq!(excerpt.chars().count(), 201, "{excerpt}");
    assert!(excerpt.ends_with("ee…"), "{excerpt}");
    let err = r.delete("1", "k").await.unwrap_err();
    assert_permanent(&err, Some(403));
    assert!(err.to_string().ends_with(": \u{fffd}no"), "{err}");
}

// --- transport failures -------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_hangs_past_the_request_timeout_is_retryable_quickly() {
    let mut slow = reply(200, json!({}));
    slow.delay = Duration::from_secs(10);
    let (script, url) = Script::start(vec![slow]).await;
    let r = builder(&url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = r.update("1", &json!({}), "k").await.unwrap_err();
    let took = started.elapsed();
    assert_retryable(&err, None);
    assert!(
        err.to_string().starts_with("PUT /api/contacts/1 timed out"),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(script.seen().len(), 1, "the request did arrive");
}

#[tokio::test]
async fn an_answer_that_stalls_midway_times_out() {
    let stalling = Reply {
        body: ReplyBody::Chunks {
            chunks: vec![b"{\"id\":".to_vec(), b" 1}".to_vec()],
            pause: Duration::from_secs(10),
        },
        ..raw(201, b"")
    };
    let (_, url) = Script::start(vec![stalling]).await;
    let r = builder(&url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert_retryable(&err, None);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A raw TCP server that reads each request's head and then does `act` with the connection.
async fn raw_server<F, Fut>(act: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            act(stream).await;
        }
    });
    format!("http://{addr}/api")
}

#[tokio::test]
async fn a_connection_closed_or_reset_is_retryable() {
    // Accepts and hangs up without answering.
    let url = raw_server(|stream| async move { drop(stream) }).await;
    let err = remote(&url).update("1", &json!({}), "k").await.unwrap_err();
    assert_retryable(&err, None);
    assert!(err.to_string().starts_with("PUT /api/contacts/1 "), "{err}");

    // Resets the connection (RST rather than FIN).
    let url = raw_server(|stream| async move {
        stream.set_zero_linger().unwrap();
        drop(stream);
    })
    .await;
    let err = remote(&url).create(&json!({}), "k", "k").await.unwrap_err();
    assert_retryable(&err, None);

    // Answers half a body, then hangs up.
    let url = raw_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\n{\"id\": ")
            .await;
        drop(stream);
    })
    .await;
    let err = remote(&url).create(&json!({}), "k", "k").await.unwrap_err();
    assert_retryable(&err, None);
    assert!(
        err.to_string()
            .starts_with("POST /api/contacts failed while reading the answer"),
        "{err}"
    );
}

#[tokio::test]
async fn nobody_listening_is_retryable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = remote(&format!("http://{closed}/api"))
        .delete("1", "k")
        .await
        .unwrap_err();
    assert_retryable(&err, None);
    assert!(
        err.to_string()
            .starts_with("DELETE /api/contacts/1 could not connect"),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));
}

// --- listing ------------------------------------------------------------------------------

/// The ids of a listed page.
fn ids(page: &sync_core::verify::RemotePage) -> Vec<String> {
    page.records
        .iter()
        .map(|(id, _)| id.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn list_reads_numbered_pages_at_pointers_and_leaves_tombstones_out() {
    let (script, url) = Script::start(vec![
        reply(200, json!({"data": [{"uid": "a"}, {"uid": 7}]})),
        reply(200, json!({"data": [{"uid": "c", "gone": true}]})),
    ])
    .await;
    let remote = builder(&url)
        .listing(
            Listing::new(Pagination::pages("page", "per_page", 2))
                .records_pointer("/data")
                .id_pointer("/uid")
                .deleted_pointer("/gone")
                .query("sort", "id"),
        )
        .build()
        .unwrap();
    let first = remote.list(None).await.unwrap();
    assert_eq!(ids(&first), ["a", "7"]);
    assert!(first.records[1].0.is_number(), "the id keeps its JSON type");
    assert_eq!(first.next, Some(json!({"page": 2})));
    let second = remote.list(first.next.as_ref()).await.unwrap();
    assert!(second.records.is_empty(), "a tombstone is no live record");
    assert_eq!(second.next, None, "a short page is the last");
    let seen = script.seen();
    let queries: Vec<&str> = seen.iter().map(|s| s.query.as_deref().unwrap()).collect();
    assert_eq!(
        queries,
        ["sort=id&page=1&per_page=2", "sort=id&page=2&per_page=2"]
    );
    assert!(seen.iter().all(|s| s.line() == ("GET", "/api/contacts")));
    assert!(
        seen.iter()
            .all(|s| s.header("authorization") == Some(&*format!("Bearer {TOKEN}")))
    );
    assert!(
        seen.iter().all(|s| s.header("idempotency-key").is_none()),
        "reads carry no key"
    );
}

#[tokio::test]
async fn list_follows_tokens_until_the_answer_says_no_more() {
    let (script, url) = Script::start(vec![
        reply(
            200,
            json!({"items": [{"id": 1}], "next": "t-2", "has_more": true}),
        ),
        reply(
            200,
            json!({"items": [{"id": 2}], "next": "t-3", "has_more": false}),
        ),
    ])
    .await;
    let remote = builder(&url)
        .listing(Listing::new(Pagination::Token {
            param: "cursor".into(),
            next: "/next".into(),
            more: Some("/has_more".into()),
        }))
        .build()
        .unwrap();
    let first = remote.list(None).await.unwrap();
    assert_eq!(ids(&first), ["1"]);
    let second = remote.list(first.next.as_ref()).await.unwrap();
    assert_eq!((ids(&second), second.next), (vec!["2".to_owned()], None));
    let queries: Vec<Option<String>> = script.seen().into_iter().map(|s| s.query).collect();
    assert_eq!(queries, [None, Some("cursor=t-2".to_owned())]);
}

#[tokio::test]
async fn list_follows_next_links_on_the_same_host_only() {
    let (script, url) = Script::start(vec![
        reply(
            200,
            json!({"records": [{"id": 1}], "links": {"next": "/api/contacts?after=1"}}),
        ),
        reply(
            200,
            json!({"records": [{"id": 2}], "links": {"next": null}}),
        ),
    ])
    .await;
    let in_body = builder(&url)
        .listing(Listing::new(Pagination::link("/links/next")).records_pointer("/records"))
        .build()
        .unwrap();
    let first = in_body.list(None).await.unwrap();
    let second = in_body.list(first.next.as_ref()).await.unwrap();
    assert_eq!(
        (ids(&first), ids(&second)),
        (vec!["1".to_owned()], vec!["2".to_owned()])
    );
    assert_eq!(second.next, None);
    assert_eq!(script.seen()[1].query.as_deref(), Some("after=1"));

    // In the `Link` header, as GitHub answers.
    let (script, url) = Script::start(vec![
        reply(200, json!([{"id": 1}])).header(
            "link",
            "</api/contacts?page=1>; rel=\"prev\", </api/contacts?page=3>; rel=\"next\"",
        ),
        reply(200, json!([{"id": 3}])),
    ])
    .await;
    let in_header = builder(&url)
        .listing(Listing::new(Pagination::link_header()))
        .build()
        .unwrap();
    let first = in_header.list(None).await.unwrap();
    let second = in_header.list(first.next.as_ref()).await.unwrap();
    assert_eq!((ids(&second), second.next), (vec!["3".to_owned()], None));
    assert_eq!(script.seen()[1].query.as_deref(), Some("page=3"));

    // A link elsewhere would take the credential along: refused, nothing sent there.
    let (_, url) = Script::start(vec![reply(
        200,
        json!({"records": [], "links": {"next": "http://127.0.0.2:1/steal"}}),
    )])
    .await;
    let elsewhere = builder(&url)
        .listing(Listing::new(Pagination::link("/links/next")).records_pointer("/records"))
        .build()
        .unwrap();
    let err = elsewhere.list(None).await.unwrap_err();
    assert_permanent(&err, None);
    assert!(err.to_string().contains("not followed"), "{err}");
    let err = elsewhere
        .list(Some(&json!({"link": "http://127.0.0.2:1/steal"})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not followed"), "{err}");
}

#[tokio::test]
async fn list_says_what_is_wrong_with_an_answer() {
    let (_, url) = Script::start(vec![
        reply(200, json!({"total": 3})),
        reply(200, json!([{"name": "no id"}])),
        reply(503, json!({"error": "busy"})),
    ])
    .await;
    let remote = builder(&url)
        .listing(Listing::new(Pagination::pages("page", "limit", 10)))
        .build()
        .unwrap();
    let err = remote.list(None).await.unwrap_err();
    assert!(
        err.to_string().contains("holds no array of records"),
        "{err}"
    );
    let err = remote.list(None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("record 0 has no string or number id at `/id`"),
        "{err}"
    );
    assert_retryable(&remote.list(None).await.unwrap_err(), Some(503));
    match self::remote(&url).list(None).await {
        Err(Error::Config(message)) => assert!(message.contains("has no listing"), "{message}"),
        other => panic!("{other:?}"),
    }
}

// --- configuration ------------------------------------------------------------------------

#[test]
fn build_says_what_is_wrong() {
    let err = |b: HttpRemoteBuilder| match b.build() {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    let at = |url: &str| HttpRemote::builder(url, "contacts");
    assert!(err(at("not a url")).contains("the remote URL `not a url` is invalid"));
    assert!(err(at("/api/contacts")).contains("give an absolute URL"));
    assert!(err(at("ftp://h/api")).contains("must start with http:// or https://"));
    assert!(err(at("http://u:p@h/api")).contains("holds a credential"));
    assert!(err(at("http://h/api#top")).contains("fragment"));
    assert!(err(HttpRemote::builder("http://h", "")).contains("the remote collection is empty"));
    assert!(err(HttpRemote::builder("http://h", "//")).contains("collection is empty"));
    assert!(err(HttpRemote::builder("http://h", "../admin")).contains("`.` or `..`"));
    assert!(
        err(at("http://h").id_pointer("id")).contains("must be a JSON pointer starting with `/`")
    );
    assert!(err(at("http://h").id_pointer("/a~2")).contains("`~0`"));
    assert!(
        err(at("http://h").auth_header("bad header", "v"))
            .contains("the auth header name `bad header` is not a valid header name")
    );
    let message = err(at("http://h").auth_header("X-Api-Key", "line\nbreak-secret"));
    assert!(message.contains("is not a valid header value"), "{message}");
    assert!(!message.contains("break-secret"), "{message}");
    assert!(err(at("http://h").bearer_token("")).contains("the bearer token is empty"));
    assert!(
        err(at("http://h").idempotency_header("Idem Key"))
            .contains("the idempotency header name `Idem Key` is not a valid header name")
    );
    assert!(
        err(at("http://h").request_timeout(Duration::ZERO)).contains("request timeout is zero")
    );
    assert!(
        err(at("http://h").connect_timeout(Duration::ZERO)).contains("connect timeout is zero")
    );
    assert!(
        err(at("http://h").listing(Listing::new(Pagination::pages("p", "l", 0))))
            .contains("the remote's listing: pagination asks for pages of 0 records")
    );
    assert!(
        err(at("http://h").listing(Listing::new(Pagination::link("next"))))
            .contains("the link's `next` pointer `next` must be a JSON pointer")
    );

    for ok in [
        "http://h",
        "https://h:8443/api/",
        "http://127.0.0.1:9/a/b?v=1",
    ] {
        at(ok).build().unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn from_env_names_the_missing_variable() {
    match HttpRemote::from_env("NO_SUCH_REMOTE_PREFIX", "contacts") {
        Err(Error::Config(message)) => {
            assert!(
                message.contains("`NO_SUCH_REMOTE_PREFIX_URL` is not set"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

// --- bulk ---------------------------------------------------------------------------------

fn bulk_items() -> Vec<sync_core::BulkItem> {
    vec![
        sync_core::BulkItem {
            remote_id: None,
            idempotency_key: "1-1-aaaa".into(),
            payload: json!({"name": "Ada"}),
        },
        sync_core::BulkItem {
            remote_id: Some("r-7".into()),
            idempotency_key: "2-3-bbbb".into(),
            payload: json!({"name": "Bob"}),
        },
    ]
}

#[tokio::test]
async fn push_many_posts_every_item_to_the_bulk_endpoint_and_reads_their_ids() {
    let (script, url) = Script::start(vec![reply(200, json!({"items": [{"id": 41}, {}]}))]).await;
    let remote = builder(&url).bulk("batch", 100).build().unwrap();
    assert_eq!(remote.bulk_limit(), Some(100));
    let results = remote.push_many(&bulk_items()).await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap(), "41");
    // An update answered without an id keeps the id it has.
    assert_eq!(results[1].as_ref().unwrap(), "r-7");
    let seen = script.seen();
    assert_eq!(seen.len(), 1, "one request for both items");
    assert_eq!(seen[0].line(), ("POST", "/api/contacts/batch"));
    assert_eq!(
        seen[0].json(),
        json!({"items": [
            {"id": null, "key": "1-1-aaaa", "data": {"name": "Ada"}},
            {"id": "r-7", "key": "2-3-bbbb", "data": {"name": "Bob"}},
        ]})
    );
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(
        seen[0].headers["idempotency-key"]
            .to_str()
            .unwrap()
            .starts_with("bulk-")
    );
}

#[tokio::test]
async fn push_many_reports_each_refused_item_on_its_own() {
    let (_script, url) = Script::start(vec![reply(
        200,
        json!({"items": [{"error": "email taken", "status": 422}, {"error": "busy", "status": 503}]}),
    )])
    .await;
    let remote = builder(&url).bulk("batch", 10).build().unwrap();
    let results = remote.push_many(&bulk_items()).await;
    let first = results[0].as_ref().unwrap_err();
    assert_permanent(first, Some(422));
    assert!(first.to_string().contains("email taken"), "{first}");
    assert_retryable(results[1].as_ref().unwrap_err(), Some(503));
}

#[tokio::test]
async fn push_many_with_a_malformed_answer_fails_every_item_naming_the_problem() {
    for (body, want) in [
        (json!({"items": [{"id": 1}]}), "1 items for 2 sent"),
        (json!({"data": []}), "no `items` list"),
        (
            json!({"items": [{}, {}]}),
            "item 0 (a create) has no id at `/id`",
        ),
    ] {
        let (_script, url) = Script::start(vec![reply(200, body)]).await;
        let remote = builder(&url).bulk("batch", 10).build().unwrap();
        let results = remote.push_many(&bulk_items()).await;
        for result in &results[..1] {
            let error = result.as_ref().unwrap_err();
            assert_permanent(error, Some(200));
            assert!(error.to_string().contains(want), "{error}");
        }
    }
    // A failure of the whole request is every item's failure.
    let (_script, url) = Script::start(vec![reply(502, json!({"error": "down"}))]).await;
    let remote = builder(&url).bulk("batch", 10).build().unwrap();
    for result in remote.push_many(&bulk_items()).await {
        assert_retryable(&result.unwrap_err(), Some(502));
    }
}

#[tokio::test]
async fn bulk_settings_are_checked() {
    let error = builder("http://127.0.0.1:1/api")
        .bulk("batch", 0)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("at least 1"), "{error}");
    let error = builder("http://127.0.0.1:1/api")
        .bulk("batch?x=1", 10)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("bulk path"), "{error}");
    let plain = builder("http://127.0.0.1:1/api").build().unwrap();
    assert_eq!(plain.bulk_limit(), None);
    let results = plain.push_many(&bulk_items()).await;
    assert!(matches!(results[0], Err(Error::Config(_))));
}
