//! Batch pushes: a syncer whose remote has a bulk endpoint sends the creates and updates of a
//! pass in few requests, and each group is recorded from its own item's answer.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use sync_core::{
    Engine, EngineConfig, HttpRemote, Limits, Registry, Result, Syncer, TranslateContext,
    async_trait,
};
use sync_tests::models::customer;
use sync_tests::{fixtures, on_each_backend};

/// A remote whose only endpoint is `POST /crm/customers/bulk`: it stores each item under its id
/// (new ids for creates), and refuses names starting with "Refused" with a 422.
#[derive(Clone, Default)]
struct BulkRemote {
    /// Each request's items.
    requests: Arc<Mutex<Vec<Vec<Value>>>>,
    /// Remote id → last data stored.
    store: Arc<Mutex<std::collections::BTreeMap<String, Value>>>,
}

async fn bulk(State(remote): State<BulkRemote>, Json(body): Json<Value>) -> Json<Value> {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    remote.requests.lock().unwrap().push(items.clone());
    let mut store = remote.store.lock().unwrap();
    let answers: Vec<Value> = items
        .iter()
        .map(|item| {
            if item["data"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Refused"))
            {
                return json!({"error": "name refused", "status": 422});
            }
            let id = item["id"]
                .as_str()
                .map_or_else(|| format!("c-{}", store.len() + 1), str::to_owned);
            store.insert(id.clone(), item["data"].clone());
            json!({"id": id})
        })
        .collect();
    Json(json!({"items": answers}))
}

impl BulkRemote {
    async fn start() -> (BulkRemote, String) {
        let remote = BulkRemote::default();
        let app = axum::Router::new()
            .route("/crm/customers/bulk", post(bulk))
            .with_state(remote.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (remote, url)
    }

    fn request_sizes(&self) -> Vec<usize> {
        self.requests.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[derive(Debug)]
struct BulkCustomers {
    remote: HttpRemote,
    limits: Option<Limits>,
}

#[async_trait]
impl Syncer for BulkCustomers {
    fn name(&self) -> &str {
        "erp.customer"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        Ok(customer::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?
            .map(|c| json!({"name": c.name, "email": c.email})))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }

    fn limits(&self) -> Option<Limits> {
        self.limits
    }
}

fn engine(db: &sea_orm::DatabaseConnection, url: &str, limit: usize) -> Engine {
    limited_engine(db, url, limit, None)
}

fn limited_engine(
    db: &sea_orm::DatabaseConnection,
    url: &str,
    limit: usize,
    limits: Option<Limits>,
) -> Engine {
    let mut registry = Registry::new();
    registry
        .register(BulkCustomers {
            remote: HttpRemote::builder(format!("{url}/crm"), "customers")
                .bulk("bulk", limit)
                .build()
                .unwrap(),
            limits,
        })
        .unwrap();
    let mut config = EngineConfig::default();
    config.worker_id = "batch".into();
    config.batch_size = 100;
    // A refused group is retried only after the test is over: each pass pushes exactly what the
    // test changed, however slowly the machine runs.
    Engine::new(db.clone(), registry, config)
        .unwrap()
        .with_retry_policy(sync_core::retry::ExponentialBackoff {
            base: std::time::Duration::from_secs(600),
            max: std::time::Duration::from_secs(600),
            jitter: 0.0,
        })
}

/// A pass announces its batched pushes: a batch waits for those not arrived yet, here spread
/// out by a rate limit of one push every 5 ms (with the 2 ms wait alone, each push would travel
/// by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_fills_its_batches_with_pushes_a_rate_limit_spreads_out() {
    on_each_backend(|t| async move {
        let (remote, url) = BulkRemote::start().await;
        for i in 0..40 {
            fixtures::customer(&t.db, &format!("Customer {i}")).await;
        }
        let engine = limited_engine(&t.db, &url, 100, Some(Limits::rate(200.0, 1)));

        let pass = engine.run_once().await.unwrap();
        assert_eq!((pass.claimed, pass.pushed), (40, 40), "{pass:?}");
        let sizes = remote.request_sizes();
        assert_eq!(sizes.iter().sum::<usize>(), 40, "{sizes:?}");
        assert!(
            sizes.len() <= 8,
            "40 pushes arriving over 200 ms travelled in few requests: {sizes:?}"
        );
        assert_eq!(remote.store.lock().unwrap().len(), 40);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_pushes_in_bulk_requests_and_records_each_group_from_its_item() {
    on_each_backend(|t| async move {
        let (remote, url) = BulkRemote::start().await;
        let mut ids = Vec::new();
        for i in 0..60 {
            ids.push(fixtures::customer(&t.db, &format!("Customer {i}")).await.id);
        }
        let refused = fixtures::customer(&t.db, "Refused Roberta").await;
        let engine = engine(&t.db, &url, 25);

        let pass = engine.run_once().await.unwrap();
        assert_eq!(pass.claimed, 61);
        assert_eq!(pass.pushed, 60);
        assert_eq!(pass.failed, 1);
        let sizes = remote.request_sizes();
        assert_eq!(
            sizes.iter().sum::<usize>(),
            61,
            "every group sent once: {sizes:?}"
        );
        assert!(
            sizes.iter().all(|n| *n <= 25),
            "no request over the limit: {sizes:?}"
        );
        assert!(
            sizes.len() <= 10,
            "61 pushes travelled in few requests: {sizes:?}"
        );

        // Each group holds the id its own item got, and the remote holds its data under it.
        let store = remote.store.lock().unwrap().clone();
        assert_eq!(store.len(), 60);
        for (i, id) in ids.iter().enumerate() {
            let group = t.group("erp.customer", id).await.unwrap();
            assert_eq!(group.state, "synced");
            let remote_id = group.remote_id.expect("a remote id");
            assert_eq!(store[&remote_id]["name"], format!("Customer {i}"));
        }
        let group = t.group("erp.customer", refused.id).await.unwrap();
        assert_eq!(group.state, "failed");
        assert_eq!(group.remote_id, None);
        assert!(
            group.last_error.unwrap().contains("name refused"),
            "the item's own error is recorded"
        );

        // Updates travel in bulk too, carrying the ids.
        for id in &ids[..3] {
            customer::ActiveModel {
                id: Unchanged(*id),
                name: Set(format!("Renamed {id}")),
                ..Default::default()
            }
            .update(&t.db)
            .await
            .unwrap();
        }
        let before = remote.requests.lock().unwrap().len();
        let pass = engine.run_once().await.unwrap();
        assert_eq!(pass.pushed, 3);
        // All three through the bulk endpoint (how many requests they share depends on the
        // batcher's 2 ms linger and the machine's load; the 61 creates above show the sharing).
        let sent: Vec<_> = remote.requests.lock().unwrap()[before..].to_vec();
        let items: Vec<_> = sent.iter().flatten().collect();
        assert_eq!(items.len(), 3, "each update sent once, in bulk: {sent:?}");
        assert!(items.iter().all(|item| item["id"].is_string()));
        let store = remote.store.lock().unwrap().clone();
        assert_eq!(store.len(), 60, "updates create nothing");
        for id in &ids[..3] {
            let remote_id = t
                .group("erp.customer", id)
                .await
                .unwrap()
                .remote_id
                .unwrap();
            assert_eq!(store[&remote_id]["name"], format!("Renamed {id}"));
        }
    })
    .await;
}
