//! The built-in HTTP remote against real HTTP servers on loopback: what it sends, and how it
//! classifies what it gets back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use sync_core::{CreateMode, Error, HttpRemote, UpdateMethod};

/// One answer the server gives, in order.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_string().into_bytes(),
        delay: Duration::ZERO,
    }
}

fn raw(status: u16, body: &[u8]) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_vec(),
        delay: Duration::ZERO,
    }
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Option<Value>,
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<Vec<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    /// A server on loopback answering `replies` in order. Returns its base URL.
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
}

async fn answer(State(script): State<Script>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let bytes = to_bytes(request.into_body(), 1 << 20).await.unwrap();
    script.seen.lock().unwrap().push(Seen {
        method,
        path,
        headers,
        body: serde_json::from_slice(&bytes).ok(),
    });
    let next = script.replies.lock().unwrap().remove(0);
    tokio::time::sleep(next.delay).await;
    let mut response = Response::builder().status(StatusCode::from_u16(next.status).unwrap());
    for (name, value) in next.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(next.body)).unwrap()
}

fn remote(url: &str) -> HttpRemote {
    HttpRemote::builder(url, "contacts")
        .bearer_token("s3cret")
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn create_sends_the_payload_and_reads_the_id() {
    let (script, url) = Script::start(vec![
        reply(201, json!({"id": 42, "name": "Ada"})),
        reply(201, json!({"data": {"uid": "c-7"}})),
    ])
    .await;
    let id = remote(&url)
        .create(&json!({"name": "Ada"}), "crm.contact:1", "1-1-abc")
        .await
        .unwrap();
    assert_eq!(id, "42", "a numeric id becomes its decimal text");
    let custom = HttpRemote::builder(&url, "contacts")
        .id_pointer("/data/uid")
        .build()
        .unwrap();
    assert_eq!(
        custom.create(&json!({}), "k", "key-2").await.unwrap(),
        "c-7"
    );

    let seen = script.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/api/contacts")
    );
    assert_eq!(seen[0].body, Some(json!({"name": "Ada"})));
    assert_eq!(seen[0].headers["idempotency-key"], "1-1-abc");
    assert_eq!(seen[0].headers["authorization"], "Bearer s3cret");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert!(
        seen[0].headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("sync-core/")
    );
    assert!(seen[1].headers.get("authorization").is_none());
}

#[tokio::test]
async fn update_and_delete_address_the_stored_id() {
    let (script, url) = Script::start(vec![
        reply(200, json!({})),
        reply(200, json!({})),
        raw(204, b""),
        reply(404, json!({"error": "gone"})),
        reply(404, json!({"error": "gone"})),
    ])
    .await;
    remote(&url)
        .update("42", &json!({"name": "Ada"}), "k1")
        .await
        .unwrap();
    let patching = HttpRemote::builder(&url, "contacts")
        .update_method(UpdateMethod::Patch)
        .build()
        .unwrap();
    patching
        .update("a b", &json!({"name": "Ada"}), "k2")
        .await
        .unwrap();
    remote(&url).delete("42", "k3").await.unwrap();
    remote(&url)
        .delete("43", "k4")
        .await
        .expect("a 404 on delete counts as done");
    let err = remote(&url)
        .update("44", &json!({}), "k5")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Permanent {
                status: Some(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("PUT /api/contacts/44 answered 404: the remote has no such record"),
        "{err}"
    );

    let seen: Vec<(String, String)> = script
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        [
            ("PUT".into(), "/api/contacts/42".into()),
            ("PATCH".into(), "/api/contacts/a%20b".into()),
            ("DELETE".into(), "/api/contacts/42".into()),
            ("DELETE".into(), "/api/contacts/43".into()),
            ("PUT".into(), "/api/contacts/44".into()),
        ]
    );
}

#[tokio::test]
async fn answers_are_classified() {
    let mut too_many = reply(429, json!({"error": "slow down"}));
    too_many.headers.push(("retry-after", "7".into()));
    let mut dated = reply(503, json!({}));
    dated.headers.push((
        "retry-after",
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120)),
    ));
    let (_, url) = Script::start(vec![
        reply(500, json!({"error": "boom"})),
        too_many,
        dated,
        reply(422, json!({"error": "email is invalid"})),
        reply(408, json!({})),
    ])
    .await;
    let r = remote(&url);
    let payload = json!({});

    let err = r.update("1", &payload, "k").await.unwrap_err();
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
    assert!(err.to_string().contains("boom"));

    let err = r.update("1", &payload, "k").await.unwrap_err();
    assert!(
        matches!(err, Error::Retryable { status: Some(429), retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{err:?}"
    );

    let err = r.update("1", &payload, "k").await.unwrap_err();
    let Error::Retryable {
        retry_after: Some(after),
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(
        after > Duration::from_secs(110) && after <= Duration::from_secs(120),
        "{after:?}"
    );

    let err = r.update("1", &payload, "k").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Permanent {
                status: Some(422),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"PUT /api/contacts/1 answered 422: {"error":"email is invalid"}"#
    );

    let err = r.update("1", &payload, "k").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Retryable {
                status: Some(408),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_create_answers_are_permanent_errors() {
    let (_, url) = Script::start(vec![
        reply(201, json!({"ok": true})),
        raw(201, b"{not json"),
        raw(201, &[0xff, 0xfe, 0x00]),
        raw(200, &vec![b'x'; 2048]),
    ])
    .await;
    let r = HttpRemote::builder(&url, "contacts")
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Permanent {
            status: Some(201),
            ..
        }
    ));
    assert!(
        err.to_string().contains("no id at `/id` (found nothing)"),
        "{err}"
    );
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("is not JSON"), "{err}");
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    let err = r.create(&json!({}), "k", "k").await.unwrap_err();
    assert!(err.to_string().contains("more than 1024 bytes"), "{err}");
}

#[tokio::test]
async fn transport_failures_are_retryable() {
    let mut slow = reply(200, json!({}));
    slow.delay = Duration::from_secs(5);
    let (_, url) = Script::start(vec![slow]).await;
    let started = std::time::Instant::now();
    let err = remote(&url).update("1", &json!({}), "k").await.unwrap_err();
    assert!(
        matches!(err, Error::Retryable { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A server that accepts and hangs up at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            drop(stream);
        }
    });
    let err = remote(&format!("http://{addr}"))
        .update("1", &json!({}), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Retryable { status: None, .. }),
        "{err:?}"
    );

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = remote(&format!("http://{closed}"))
        .update("1", &json!({}), "k")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn creates_can_upsert_by_external_key() {
    let (script, url) =
        Script::start(vec![reply(200, json!({"id": "remote-9"})), raw(201, b"")]).await;
    let r = HttpRemote::builder(&url, "contacts")
        .create_mode(CreateMode::PutByExternalKey)
        .build()
        .unwrap();
    assert_eq!(
        r.create(&json!({"a": 1}), "crm.contact:7", "k")
            .await
            .unwrap(),
        "remote-9"
    );
    assert_eq!(
        r.create(&json!({"a": 1}), "crm.contact:8", "k")
            .await
            .unwrap(),
        "crm.contact:8",
        "no body: the key is the id"
    );
    let seen = script.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("PUT", "/api/contacts/crm.contact:7")
    );
}

#[test]
fn from_env_names_the_missing_variable() {
    let err = HttpRemote::from_env("NO_SUCH_REMOTE_PREFIX", "contacts").unwrap_err();
    assert!(
        err.to_string()
            .contains("`NO_SUCH_REMOTE_PREFIX_URL` is not set"),
        "{err}"
    );
}
