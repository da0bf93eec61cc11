//! A mock REST remote on loopback.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

/// One request the mock remote received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `POST`, `PUT`, `PATCH`, `DELETE`, `GET`.
    pub method: String,
    /// The path, e.g. `/crm/contacts/3`.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// The status answered.
    pub status: u16,
    /// Whether the answer was replayed for a repeated idempotency key (nothing applied).
    pub replayed: bool,
    /// When the request arrived.
    pub started: Instant,
    /// When the answer was sent.
    pub finished: Instant,
}

/// What a [`Fault`] makes the remote answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FaultKind {
    /// This status, with this JSON body.
    Status(u16, Value),
    /// 429 with `Retry-After: seconds`.
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after_secs: u64,
    },
    /// 200/201 with a body that is not JSON.
    MalformedJson,
    /// A create answered 201 without an id.
    CreateWithoutId,
    /// Wait this long before answering normally (past the client's timeout, typically).
    Hang(Duration),
}

/// A scripted misbehaviour for matching requests.
#[derive(Debug, Clone)]
pub struct Fault {
    method: Option<String>,
    path_contains: Option<String>,
    body_contains: Option<String>,
    times: Option<usize>,
    kind: FaultKind,
}

impl Fault {
    /// Applies `kind` to every request (narrow it with the other methods).
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            method: None,
            path_contains: None,
            body_contains: None,
            times: None,
            kind,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_uppercase());
        self
    }

    /// Only requests whose path contains `part`.
    pub fn path_contains(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_owned());
        self
    }

    /// Only requests whose JSON body, as text, contains `part` (e.g. `"\"Ada\""`).
    pub fn body_contains(mut self, part: &str) -> Self {
        self.body_contains = Some(part.to_owned());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, body: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
            && self
                .body_contains
                .as_deref()
                .is_none_or(|b| body.contains(b))
            && self.times.is_none_or(|n| n > 0)
    }
}

/// Requests held until [`Hold::release`].
#[derive(Debug, Clone)]
pub struct Hold {
    arrived: watch::Receiver<usize>,
    release: Arc<Notify>,
    released: Arc<Mutex<bool>>,
}

impl Hold {
    /// Waits until `n` held requests have arrived.
    pub async fn arrived(&mut self, n: usize) {
        let _ = self.arrived.wait_for(|count| *count >= n).await;
    }

    /// Lets every held request (and later ones) through.
    pub fn release(&self) {
        *self.released.lock().expect("lock") = true;
        self.release.notify_waiters();
    }
}

struct HoldState {
    path_contains: Option<String>,
    arrived: watch::Sender<usize>,
    release: Arc<Notify>,
    released: Arc<Mutex<bool>>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    /// collection path → id → record.
    records: BTreeMap<String, BTreeMap<String, Value>>,
    next_id: u64,
    faults: VecDeque<Fault>,
    /// (key, method, path) → the first request's answer.
    idempotent: HashMap<(String, String, String), FirstAnswer>,
    hold: Option<HoldState>,
    /// Every write, in order: (sequence, collection, id), for the changes feed.
    changes: Vec<(u64, String, String)>,
    upsert_on_put: bool,
    string_ids: bool,
    idempotency: Idempotency,
}

impl Inner {
    fn log_change(&mut self, collection: &str, id: &str) {
        let seq = self.changes.last().map_or(1, |c| c.0 + 1);
        self.changes
            .push((seq, collection.to_owned(), id.to_owned()));
    }
}

/// How the mock remote treats the `Idempotency-Key` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Idempotency {
    /// A repeated key gets the first answer again, whatever the body (the default).
    #[default]
    Replay,
    /// A repeated key with the same body gets the first answer again; with a different body,
    /// 422 (as some payment APIs do).
    Strict,
    /// The header is ignored: every request is applied (a plain REST server).
    Ignore,
}

/// The status, answer and request body of the first request with an idempotency key.
type FirstAnswer = (u16, Value, Option<Value>);

/// A mock REST remote on `127.0.0.1`. Stops when dropped.
#[derive(Clone)]
pub struct MockRemote {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _server: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for MockRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockRemote")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Stops the server when the last handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl MockRemote {
    /// Starts a remote on a free loopback port.
    pub async fn start() -> MockRemote {
        Self::start_on("127.0.0.1:0")
            .await
            .expect("bind a loopback port")
    }

    /// Starts a remote on `addr`.
    pub async fn start_on(addr: &str) -> std::io::Result<MockRemote> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner {
            next_id: 1,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockRemote {
            addr,
            inner,
            _server: Arc::new(AbortOnDrop(server)),
        })
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `PUT` to an unknown id by creating it (remotes that upsert by external key),
    /// instead of 404.
    pub fn upsert_on_put(&self, on: bool) {
        self.lock().upsert_on_put = on;
    }

    /// Gives created records string ids (`"r-1"`) instead of numbers.
    pub fn string_ids(&self, on: bool) {
        self.lock().string_ids = on;
    }

    /// How repeated `Idempotency-Key`s are treated.
    pub fn idempotency(&self, mode: Idempotency) {
        self.lock().idempotency = mode;
    }

    /// Deletes a record behind the client's back, as an administrator of the remote might.
    /// Returns whether it existed.
    pub fn remove_record(&self, collection: &str, id: &str) -> bool {
        let mut state = self.lock();
        let collection = collection.trim_matches('/');
        let removed = state
            .records
            .get_mut(collection)
            .is_some_and(|records| records.remove(id).is_some());
        if removed {
            state.log_change(collection, id);
        }
        removed
    }

    /// Stores `record` under `id` as an edit made on the remote's side (by a person, another
    /// system): it is listed, and appears in the collection's changes feed.
    pub fn put_record(&self, collection: &str, id: &str, record: Value) {
        let mut state = self.lock();
        let collection = collection.trim_matches('/');
        state
            .records
            .entry(collection.to_owned())
            .or_default()
            .insert(id.to_owned(), record);
        state.log_change(collection, id);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Requests with `method` (or any, if empty) whose path starts with `path_prefix`.
    pub fn requests_matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                (method.is_empty() || r.method == method) && r.path.starts_with(path_prefix)
            })
            .collect()
    }

    /// Every request so far as `METHOD /path`, in arrival order: to assert that the remote
    /// received exactly these requests, e.g.
    /// `assert_eq!(remote.calls(), ["POST /crm/contacts", "PUT /crm/contacts/1"])`.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Forgets the recorded requests (not the records).
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The records of a collection (path without the leading `/`, e.g. `crm/contacts`), by id.
    pub fn records(&self, collection: &str) -> BTreeMap<String, Value> {
        self.lock()
            .records
            .get(collection.trim_matches('/'))
            .cloned()
            .unwrap_or_default()
    }

    /// One record.
    pub fn record(&self, collection: &str, id: &str) -> Option<Value> {
        self.records(collection).remove(id)
    }

    /// Adds a scripted fault; faults are tried in the order added.
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Removes every scripted fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Holds every request whose path contains `path_contains` (all, if `None`) until
    /// [`Hold::release`].
    pub fn hold(&self, path_contains: Option<&str>) -> Hold {
        let (arrived, receiver) = watch::channel(0);
        let release = Arc::new(Notify::new());
        let released = Arc::new(Mutex::new(false));
        self.lock().hold = Some(HoldState {
            path_contains: path_contains.map(str::to_owned),
            arrived,
            release: release.clone(),
            released: released.clone(),
        });
        Hold {
            arrived: receiver,
            release,
            released,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("mock remote state")
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    // A real remote finishes what it received even when the client goes away (a worker killed
    // mid-push): run the request in its own task so that a dropped connection does not cancel it.
    tokio::spawn(serve(inner, request))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn serve(inner: Arc<Mutex<Inner>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request.headers().clone();
    let bytes = to_bytes(request.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();

    if method == Method::GET && path == "/_mock/requests" {
        let requests = inner.lock().expect("lock").requests.clone();
        let list: Vec<Value> = requests
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "status": r.status, "idempotency_key": r.idempotency_key, "body": r.body, "replayed": r.replayed}))
            .collect();
        return axum::Json(list).into_response();
    }
    if method == Method::GET && path == "/_mock/records" {
        let records = inner.lock().expect("lock").records.clone();
        return axum::Json(records).into_response();
    }
    // Break the remote by hand: `POST /_mock/faults {"status": 422, "body_contains": "Ada"}`
    // answers matching requests with that status; `DELETE /_mock/faults` heals it.
    if path == "/_mock/faults" {
        let mut state = inner.lock().expect("lock");
        if method == Method::DELETE {
            state.faults.clear();
            return StatusCode::NO_CONTENT.into_response();
        }
        if method == Method::POST {
            let spec = body.clone().unwrap_or_default();
            let status = spec["status"].as_u64().unwrap_or(500) as u16;
            let mut fault = Fault::new(FaultKind::Status(
                status,
                json!({"error": spec["error"].as_str().unwrap_or("injected fault")}),
            ));
            if let Some(m) = spec["method"].as_str() {
                fault = fault.method(m);
            }
            if let Some(p) = spec["path_contains"].as_str() {
                fault = fault.path_contains(p);
            }
            if let Some(b) = spec["body_contains"].as_str() {
                fault = fault.body_contains(b);
            }
            if let Some(n) = spec["times"].as_u64() {
                fault = fault.times(n as usize);
            }
            state.faults.push_back(fault);
            return StatusCode::CREATED.into_response();
        }
    }

    // A held request waits here, outside the lock.
    let hold = {
        let state = inner.lock().expect("lock");
        state.hold.as_ref().and_then(|h| {
            let applies = h.path_contains.as_deref().is_none_or(|p| path.contains(p));
            let released = *h.released.lock().expect("lock");
            (applies && !released).then(|| {
                let notified = h.release.clone();
                h.arrived.send_modify(|n| *n += 1);
                notified
            })
        })
    };
    if let Some(release) = hold {
        let released = inner
            .lock()
            .expect("lock")
            .hold
            .as_ref()
            .map(|h| h.released.clone());
        loop {
            let wait = release.notified();
            if released.as_ref().is_none_or(|r| *r.lock().expect("lock")) {
                break;
            }
            wait.await;
        }
    }

    let fault = {
        let mut state = inner.lock().expect("lock");
        let method = method.as_str();
        let text = String::from_utf8_lossy(&bytes);
        // Faults match on the path with its query, so that one page of a listing can fail.
        let target = match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let found = state
            .faults
            .iter_mut()
            .find(|f| f.matches(method, &target, &text));
        found.map(|f| {
            if let Some(n) = &mut f.times {
                *n -= 1;
            }
            f.kind.clone()
        })
    };
    let idempotency_key = header(&headers, "idempotency-key");
    let (status, response) = match fault {
        Some(FaultKind::Hang(d)) => {
            tokio::time::sleep(d).await;
            apply(
                &inner,
                &method,
                &path,
                idempotency_key.as_deref(),
                body.clone(),
            )
        }
        Some(kind) => (fault_response(kind), false),
        None if method == Method::GET && path.ends_with("/_changes") => (
            changes(&inner, &path, query.as_deref().unwrap_or_default()),
            false,
        ),
        None if method == Method::GET && (query.is_some() || is_collection(&inner, &path)) => (
            search(&inner, &path, query.as_deref().unwrap_or_default()),
            false,
        ),
        None => apply(
            &inner,
            &method,
            &path,
            idempotency_key.as_deref(),
            body.clone(),
        ),
    };
    let (response, replayed) = (status, response);
    let status_code = response.status().as_u16();
    inner.lock().expect("lock").requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        idempotency_key,
        authorization: header(&headers, "authorization"),
        body,
        status: status_code,
        replayed,
        started,
        finished: Instant::now(),
    });
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn fault_response(kind: FaultKind) -> Response {
    match kind {
        FaultKind::Status(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response(),
        FaultKind::TooManyRequests { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_secs.to_string())],
            axum::Json(json!({"error": "slow down"})),
        )
            .into_response(),
        FaultKind::MalformedJson => (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            Body::from("{not json"),
        )
            .into_response(),
        FaultKind::CreateWithoutId => {
            (StatusCode::CREATED, axum::Json(json!({"ok": true}))).into_response()
        }
        FaultKind::Hang(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Whether `path` names a collection that holds records: `GET {collection}` without a query
/// lists it, as json-server does (a path that names no collection is read as
/// `{collection}/{id}`).
fn is_collection(inner: &Arc<Mutex<Inner>>, path: &str) -> bool {
    inner
        .lock()
        .expect("lock")
        .records
        .get(path.trim_matches('/'))
        .is_some_and(|records| !records.is_empty())
}

/// `GET {collection}?…` (without a query: every record) as json-server answers it: `field=value`
/// filters by equality, `field_gte=value` keeps records whose field is at least the value
/// (strings compared as text, numbers as numbers), `_sort=field` (`_order=desc`) sorts (by id otherwise, numerically when
/// ids are numbers), `_page` and `_limit` cut one page. The answer is a JSON array.
fn search(inner: &Arc<Mutex<Inner>>, path: &str, query: &str) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let state = inner.lock().expect("lock");
    let mut found: Vec<Value> = state
        .records
        .get(path.trim_matches('/'))
        .map(|records| {
            records
                .values()
                .filter(|r| {
                    params
                        .iter()
                        .filter(|(k, _)| !k.starts_with('_'))
                        .all(|(field, value)| {
                            if let Some(field) = field.strip_suffix("_gte") {
                                return match r.get(field) {
                                    Some(Value::String(s)) => s.as_str() >= value.as_str(),
                                    Some(Value::Number(n)) => value
                                        .parse::<f64>()
                                        .is_ok_and(|v| n.as_f64().is_some_and(|n| n >= v)),
                                    _ => false,
                                };
                            }
                            match r.get(field) {
                                Some(Value::String(s)) => s == value,
                                Some(other) => *other.to_string() == **value,
                                None => false,
                            }
                        })
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let id_order = |r: &Value| -> (f64, String) {
        match r.get("id") {
            Some(Value::Number(n)) => (n.as_f64().unwrap_or(0.0), String::new()),
            Some(Value::String(s)) => (s.parse().unwrap_or(f64::MAX), s.clone()),
            _ => (f64::MAX, String::new()),
        }
    };
    found.sort_by(|a, b| {
        id_order(a)
            .partial_cmp(&id_order(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if let Some(field) = get("_sort") {
        found.sort_by(|a, b| {
            let (x, y) = (a.get(&field), b.get(&field));
            match (x, y) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
                _ => x.map(Value::to_string).cmp(&y.map(Value::to_string)),
            }
        });
        if get("_order").as_deref() == Some("desc") {
            found.reverse();
        }
    }
    if let Some(limit) = get("_limit").and_then(|l| l.parse::<usize>().ok()) {
        let page = get("_page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        found = found
            .into_iter()
            .skip((page - 1) * limit)
            .take(limit)
            .collect();
    }
    axum::Json(Value::Array(found)).into_response()
}

/// `GET {collection}/_changes?cursor=N&limit=M`: a "changes since a cursor" API. The records
/// written after change `N` (each once, as it is now; `{"id", "deleted": true}` when it was
/// removed), in the order of their last change, at most `M` (default 100):
/// `{"data": [...], "next_cursor": "…", "has_more": bool}`.
fn changes(inner: &Arc<Mutex<Inner>>, path: &str, query: &str) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let after: u64 = get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = get("limit").and_then(|c| c.parse().ok()).unwrap_or(100);
    let collection = path
        .trim_matches('/')
        .trim_end_matches("/_changes")
        .to_owned();
    let state = inner.lock().expect("lock");
    let entries: Vec<&(u64, String, String)> = state
        .changes
        .iter()
        .filter(|(seq, c, _)| *seq > after && *c == collection)
        .collect();
    // Only an id's last change counts.
    let latest: Vec<&(u64, String, String)> = entries
        .iter()
        .enumerate()
        .filter(|(i, (_, _, id))| !entries[i + 1..].iter().any(|(_, _, later)| later == id))
        .map(|(_, e)| *e)
        .collect();
    let page: Vec<&(u64, String, String)> = latest.iter().take(limit).copied().collect();
    let records = state.records.get(&collection);
    let data: Vec<Value> = page
        .iter()
        .map(|(_, _, id)| {
            records
                .and_then(|r| r.get(id))
                .cloned()
                .unwrap_or_else(|| json!({"id": id, "deleted": true}))
        })
        .collect();
    let next = page.last().map_or(after, |(seq, _, _)| *seq);
    axum::Json(json!({
        "data": data,
        "next_cursor": next.to_string(),
        "has_more": latest.len() > page.len(),
    }))
    .into_response()
}

/// Applies a request to the stored records. Returns the answer and whether it was replayed.
fn apply(
    inner: &Arc<Mutex<Inner>>,
    method: &Method,
    path: &str,
    idempotency_key: Option<&str>,
    body: Option<Value>,
) -> (Response, bool) {
    let mut state = inner.lock().expect("lock");
    let mode = state.idempotency;
    let replay_key = idempotency_key
        .filter(|_| mode != Idempotency::Ignore)
        .map(|k| (k.to_owned(), method.to_string(), path.to_owned()));
    if let Some((status, first_body, first_request)) = replay_key
        .as_ref()
        .and_then(|k| state.idempotent.get(k))
        .cloned()
    {
        if mode == Idempotency::Strict && first_request != body {
            return (
                answer(
                    422,
                    json!({"error": "Keys for idempotent requests can only be used with the same parameters they were first used with"}),
                ),
                false,
            );
        }
        return (answer(status, first_body), true);
    }
    let request_body = body.clone();
    let trimmed = path.trim_matches('/');
    let (status, answer_body) = match *method {
        Method::POST => {
            let id = if state.string_ids {
                json!(format!("r-{}", state.next_id))
            } else {
                json!(state.next_id)
            };
            state.next_id += 1;
            let mut record = body.unwrap_or(json!({}));
            if let Value::Object(map) = &mut record {
                map.insert("id".into(), id.clone());
            }
            let key = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
            state
                .records
                .entry(trimmed.to_owned())
                .or_default()
                .insert(key.clone(), record.clone());
            state.log_change(trimmed, &key);
            (201, record)
        }
        Method::PUT | Method::PATCH | Method::DELETE | Method::GET => {
            let Some((collection, id)) = trimmed.rsplit_once('/') else {
                return (answer(404, json!({"error": "no such collection"})), false);
            };
            let upsert = state.upsert_on_put;
            let records = state.records.entry(collection.to_owned()).or_default();
            let exists = records.contains_key(id);
            match *method {
                Method::GET if exists => (200, records[id].clone()),
                Method::DELETE if exists => {
                    records.remove(id);
                    state.log_change(collection, id);
                    (204, Value::Null)
                }
                Method::PUT | Method::PATCH if exists || (upsert && *method == Method::PUT) => {
                    let mut record = body.unwrap_or(json!({}));
                    if let (true, Some(Value::Object(old)), Value::Object(new)) =
                        (*method == Method::PATCH, records.get(id).cloned(), &record)
                    {
                        let mut merged = old;
                        merged.extend(new.clone());
                        record = Value::Object(merged);
                    }
                    if let Value::Object(map) = &mut record {
                        map.insert("id".into(), json!(id));
                    }
                    records.insert(id.to_owned(), record.clone());
                    state.log_change(collection, id);
                    (if exists { 200 } else { 201 }, record)
                }
                _ => (
                    404,
                    json!({"error": format!("no record {id} in {collection}")}),
                ),
            }
        }
        _ => (405, json!({"error": "method not allowed"})),
    };
    if let Some(key) = replay_key {
        state
            .idempotent
            .insert(key, (status, answer_body.clone(), request_body));
    }
    (answer(status, answer_body), false)
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(body)).into_response()
    }
}
