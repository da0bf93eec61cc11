//! The benchmarks' remote: a loopback HTTP server in a process of its own (`sync-bench remote`),
//! answering at once, and the measuring point of the process variants: it counts the pushes it
//! receives and when the first and the last arrived, so that nothing polls the database while a
//! variant runs.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

/// What the remote counts.
#[derive(Default)]
struct Counters {
    next_id: AtomicU64,
    requests: AtomicU64,
    /// Microseconds since the epoch of the first and the last push since the last reset.
    first_us: AtomicU64,
    last_us: AtomicU64,
}

impl Counters {
    fn push(&self, records: u64) {
        let now = now_us();
        self.requests.fetch_add(records, Ordering::Relaxed);
        let _ = self
            .first_us
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_us.fetch_max(now, Ordering::Relaxed);
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `sync-bench remote`: serves until killed; prints its base URL on the first line of stdout.
pub(crate) async fn serve() {
    async fn create(State(c): State<Arc<Counters>>) -> axum::Json<Value> {
        c.push(1);
        axum::Json(json!({"id": c.next_id.fetch_add(1, Ordering::Relaxed) + 1}))
    }
    async fn update(State(c): State<Arc<Counters>>) -> &'static str {
        c.push(1);
        "{}"
    }
    async fn bulk(
        State(c): State<Arc<Counters>>,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let items = body["items"].as_array().map_or(0, Vec::len) as u64;
        c.push(items);
        let first = c.next_id.fetch_add(items, Ordering::Relaxed) + 1;
        axum::Json(
            json!({"items": (first..first + items).map(|id| json!({"id": id})).collect::<Vec<_>>()}),
        )
    }
    async fn stats(State(c): State<Arc<Counters>>) -> axum::Json<Value> {
        axum::Json(json!({
            "records": c.requests.swap(0, Ordering::Relaxed),
            "first_us": c.first_us.swap(0, Ordering::Relaxed),
            "last_us": c.last_us.swap(0, Ordering::Relaxed),
        }))
    }
    let app = Router::new()
        .route("/erp/customers", post(create))
        .route("/erp/customers/bulk", post(bulk))
        .route("/erp/customers/{id}", put(update))
        .route("/stats", get(stats))
        .with_state(Arc::new(Counters::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("http://{}", listener.local_addr().unwrap());
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.unwrap();
}

/// A running remote process; killed when dropped.
pub(crate) struct RemoteProcess {
    pub(crate) url: String,
    child: std::process::Child,
    client: reqwest::Client,
}

/// Pushes the remote received since the last [`RemoteProcess::take_stats`].
pub(crate) struct Stats {
    pub(crate) records: u64,
    /// Seconds from the first push to the last.
    pub(crate) span_s: f64,
}

impl RemoteProcess {
    pub(crate) fn start() -> RemoteProcess {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("remote")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        RemoteProcess {
            url: line.trim().to_owned(),
            child,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What was received since the last call, and resets the counters.
    pub(crate) async fn take_stats(&self) -> Stats {
        let v: Value = self
            .client
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (first, last) = (
            v["first_us"].as_u64().unwrap_or(0),
            v["last_us"].as_u64().unwrap_or(0),
        );
        Stats {
            records: v["records"].as_u64().unwrap_or(0),
            span_s: last.saturating_sub(first) as f64 / 1e6,
        }
    }
}

impl Drop for RemoteProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
