//! Batch translation: a syncer implementing `translate_many` is asked once per claimed batch,
//! by the engine's passes and by the apalis worker runtime alike, and its groups are pushed
//! from those payloads; when the batch call fails, each group is translated on its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sync_core::__worker;
use sync_core::{
    ClaimedGroup, Engine, EngineConfig, HttpRemote, Registry, Result, Syncer, TranslateContext,
    async_trait,
};
use sync_tests::models::customer;
use sync_tests::{fixtures, on_each_backend};
use sync_worker::testing::MockRemote;
use sync_worker::{Worker, WorkerSettings};

#[derive(Debug, Default)]
struct Calls {
    /// Sizes of the batches `translate_many` was given.
    batches: Mutex<Vec<usize>>,
    /// Groups translated one by one.
    singles: AtomicUsize,
    /// Make `translate_many` fail as a whole (a panic).
    explode: AtomicBool,
    /// Make the next `translate_many` say so on `entered` and wait for `release`.
    hold: AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    /// Make the next `translate_many` take this long (ms).
    stall_ms: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Customers {
    remote: HttpRemote,
    calls: Arc<Calls>,
}

fn payload(c: &customer::Model) -> Value {
    json!({"name": c.name, "email": c.email})
}

#[async_trait]
impl Syncer for Customers {
    fn name(&self) -> &str {
        "erp.customer"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        self.calls.singles.fetch_add(1, Ordering::SeqCst);
        let c = customer::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?;
        Ok(c.as_ref().map(payload))
    }

    async fn translate_many(
        &self,
        db: &DatabaseConnection,
        groups: &[ClaimedGroup],
    ) -> Vec<Result<Option<Value>>> {
        self.calls.batches.lock().unwrap().push(groups.len());
        if self.calls.hold.swap(false, Ordering::SeqCst) {
            self.calls.entered.notify_one();
            self.calls.release.notified().await;
        }
        let stall = self.calls.stall_ms.swap(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(stall)).await;
        assert!(
            !self.calls.explode.load(Ordering::SeqCst),
            "translate_many exploded"
        );
        let ids: Vec<i32> = groups
            .iter()
            .filter_map(|g| g.root_key.parse().ok())
            .collect();
        let rows = customer::Entity::find()
            .filter(customer::Column::Id.is_in(ids))
            .all(db)
            .await
            .unwrap();
        groups
            .iter()
            .map(|g| {
                Ok(rows
                    .iter()
                    .find(|c| c.id.to_string() == g.root_key.as_str())
                    .map(payload))
            })
            .collect()
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

fn registry(remote: &MockRemote, calls: &Arc<Calls>) -> Registry {
    let mut registry = Registry::new();
    registry
        .register(Customers {
            remote: HttpRemote::builder(format!("{}/erp", remote.url()), "customers")
                .build()
                .unwrap(),
            calls: calls.clone(),
        })
        .unwrap()
        .roots::<customer::Entity>();
    registry
}

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.worker_id = "translate-many".into();
    config.concurrency = 8;
    config.batch_size = 50;
    config
}

/// `n` customers, each registered in `erp.customer` by its hook.
async fn customers(db: &DatabaseConnection, n: usize) -> Vec<customer::Model> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(fixtures::customer(db, &format!("Customer {i:03}")).await);
    }
    all
}

/// What the remote holds, by name: every customer arrived with its own data.
fn assert_all_pushed(remote: &MockRemote, customers: &[customer::Model]) {
    let records = remote.records("erp/customers");
    // The mock remote adds the id it gave each record.
    let mut held: Vec<Value> = records
        .into_values()
        .map(|mut v| {
            v.as_object_mut().map(|o| o.remove("id"));
            v
        })
        .collect();
    held.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_owned());
    let mut expected: Vec<Value> = customers.iter().map(payload).collect();
    expected.sort_by_key(|v| v["name"].as_str().unwrap_or_default().to_owned());
    assert_eq!(held, expected, "the remote holds each customer's own data");
}

#[tokio::test]
async fn engine_passes_translate_a_claim_in_one_call() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let customers = customers(&t.db, 120).await;
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap();
        let worker = Worker::from_engine(engine, WorkerSettings::default());
        let report = worker.run_until_idle(10).await.unwrap();
        assert_eq!(report.pushed, 120);

        assert_eq!(*calls.batches.lock().unwrap(), vec![50, 50, 20]);
        assert_eq!(calls.singles.load(Ordering::SeqCst), 0);
        assert_all_pushed(&remote, &customers);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runtime_translates_each_claim_in_one_call() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let customers = customers(&t.db, 120).await;
        let mut settings = WorkerSettings::default();
        settings.engine = config();
        settings.poll_interval = Duration::from_millis(50);
        let worker = Worker::new(t.db.clone(), registry(&remote, &calls), settings).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
        }));
        sync_tests::cluster::wait_until_synced(&t.db, Duration::from_secs(30)).await;
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();

        let batches = calls.batches.lock().unwrap().clone();
        assert_eq!(
            batches.iter().sum::<usize>(),
            120,
            "every group translated in a batch: {batches:?}"
        );
        // The runtime claims `batch_size` (50 here, more than twice the concurrency) at a time.
        assert!(
            batches.iter().all(|b| *b <= 50) && batches.iter().any(|b| *b > 1),
            "batches of up to one claim: {batches:?}"
        );
        assert_eq!(calls.singles.load(Ordering::SeqCst), 0);
        assert_all_pushed(&remote, &customers);
    })
    .await;
}

#[tokio::test]
async fn a_failed_batch_translation_falls_back_to_one_by_one() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        calls.explode.store(true, Ordering::SeqCst);
        let customers = customers(&t.db, 30).await;
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap();
        let report = engine.run_once().await.unwrap();
        assert_eq!(report.pushed, 30);
        assert_eq!(*calls.batches.lock().unwrap(), vec![30]);
        assert_eq!(calls.singles.load(Ordering::SeqCst), 30);
        assert_all_pushed(&remote, &customers);
    })
    .await;
}

#[tokio::test]
async fn a_prepared_group_that_waited_renews_its_lease_or_is_not_pushed() {
    use sea_orm::{ConnectionTrait, Statement};
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let ada = fixtures::customer(&t.db, "Ada").await;
        let bob = fixtures::customer(&t.db, "Bob").await;
        let mut config = config();
        config.lease = Duration::from_secs(1);
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config).unwrap();
        let mut prepared = __worker::claim_prepared(&engine, 10).await.unwrap();
        assert_eq!(prepared.len(), 2);
        prepared.sort_by_key(|p| p.group.id);
        let (for_bob, for_ada) = (prepared.pop().unwrap(), prepared.pop().unwrap());

        // Both wait longer than a third of the lease for a slot; meanwhile another worker takes
        // Bob's group over (as it may once the lease has run out).
        tokio::time::sleep(Duration::from_millis(600)).await;
        t.db.execute_raw(Statement::from_string(
            t.db.get_database_backend(),
            format!(
                "UPDATE sync_groups SET lease_owner = 'other' WHERE syncer = 'erp.customer' AND root_key = '{}'",
                bob.id
            ),
        ))
        .await
        .unwrap();

        let attempt = __worker::process_prepared(&engine, for_ada, false).await;
        assert!(attempt.result.is_ok(), "{:?}", attempt.result);
        let attempt = __worker::process_prepared(&engine, for_bob, false).await;
        let error = attempt.result.unwrap_err().to_string();
        assert!(error.contains("lost the lease"), "{error}");
        let requests = remote.requests_matching("POST", "/erp/customers");
        assert_eq!(requests.len(), 1, "only Ada was pushed");
        assert_eq!(requests[0].body.as_ref().unwrap()["name"], "Ada");
        let ada_group = t.group("erp.customer", ada.id).await.unwrap();
        assert!(
            ada_group.lease_until.unwrap() > sync_core::now_ms() + 500,
            "Ada's lease was renewed before her push"
        );
    })
    .await;
}

/// A batch of attempts recorded after another worker took one of its groups over: the others
/// are completed, the lost one is left as the other worker has it, and each attempt says which.
/// (The batch is first recorded counting the completed groups only; when the count falls short
/// it is recorded again, in a new transaction, learning which leases were held. On PostgreSQL
/// one statement records it and returns the held groups.)
#[tokio::test]
async fn a_batch_recorded_after_one_lease_was_taken_over_completes_only_the_others() {
    use sea_orm::{ConnectionTrait, Statement};
    use sync_core::entity::sync_attempt;
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let all = customers(&t.db, 3).await;
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap();
        let mut prepared = __worker::claim_prepared(&engine, 10).await.unwrap();
        assert_eq!(prepared.len(), 3);
        prepared.sort_by_key(|p| p.group.id);
        let lost = prepared[1].group.id;
        let mut attempts = Vec::new();
        for p in prepared {
            let attempt = __worker::process_prepared(&engine, p, false).await;
            assert!(attempt.result.is_ok(), "{:?}", attempt.result);
            attempts.push(attempt);
        }
        assert_eq!(remote.requests_matching("POST", "/erp/customers").len(), 3);

        // Between the pushes and their record, another worker takes the middle group over.
        t.db.execute_raw(Statement::from_string(
            t.db.get_database_backend(),
            format!("UPDATE sync_groups SET lease_owner = 'other' WHERE id = {lost}"),
        ))
        .await
        .unwrap();
        let recorded = __worker::record(&engine, &attempts).await.unwrap();
        let held: Vec<bool> = recorded.iter().map(|r| r.lease_held).collect();
        assert_eq!(held, vec![true, false, true]);

        for (customer, attempt) in all.iter().zip(&attempts) {
            let group = t.group("erp.customer", customer.id).await.unwrap();
            assert_eq!(group.id, attempt.group.id);
            if group.id == lost {
                assert_eq!(group.lease_owner.as_deref(), Some("other"));
                assert_eq!(group.synced_version, 0, "not completed: {group:?}");
                assert_eq!(group.remote_id, None, "{group:?}");
                assert_eq!(group.state, "pending");
            } else {
                assert_eq!(group.lease_owner, None, "{group:?}");
                assert_eq!(group.synced_version, group.version, "{group:?}");
                assert!(group.remote_id.is_some(), "{group:?}");
                assert_eq!(group.state, "synced");
            }
        }
        // Every attempt is in the log once, the lost one too (it did reach the remote).
        let logged = sync_attempt::Entity::find().all(&t.db).await.unwrap();
        let mut ids: Vec<i64> = logged.iter().map(|a| a.group_id).collect();
        ids.sort_unstable();
        let mut expected: Vec<i64> = attempts.iter().map(|a| a.group.id).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert!(logged.iter().all(|a| a.outcome == "ok"), "{logged:?}");
    })
    .await;
}

/// A batch larger than the usual claim: 300 groups are claimed with their creates recorded,
/// pushed, then recorded at once (each statement carrying the 300 rows as one document). Each
/// group is completed once, with the id the remote gave its own record, and the attempt log
/// holds the 300 attempts.
#[tokio::test]
async fn a_batch_of_300_groups_is_claimed_and_recorded_whole() {
    use sync_core::entity::{sync_attempt, sync_group};
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let all = customers(&t.db, 300).await;
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap();
        let prepared = __worker::claim_prepared(&engine, 300).await.unwrap();
        assert_eq!(prepared.len(), 300);
        let recorded_creates = sync_group::Entity::find()
            .filter(sync_group::Column::CreateKey.is_not_null())
            .filter(sync_group::Column::CreatePayload.is_not_null())
            .all(&t.db)
            .await
            .unwrap();
        assert_eq!(
            recorded_creates.len(),
            300,
            "every create recorded before sending"
        );

        let mut attempts = Vec::new();
        for p in prepared {
            let attempt = __worker::process_prepared(&engine, p, false).await;
            assert!(attempt.result.is_ok(), "{:?}", attempt.result);
            attempts.push(attempt);
        }
        let recorded = __worker::record(&engine, &attempts).await.unwrap();
        assert_eq!(recorded.len(), 300);
        assert!(recorded.iter().all(|r| r.lease_held));

        let groups = sync_group::Entity::find().all(&t.db).await.unwrap();
        assert_eq!(groups.len(), 300);
        for group in &groups {
            assert_eq!(group.state, "synced", "{group:?}");
            assert_eq!(group.synced_version, group.version, "{group:?}");
            assert_eq!(group.lease_owner, None, "{group:?}");
            assert_eq!(group.create_key, None, "{group:?}");
            let record = remote.record("erp/customers", group.remote_id.as_deref().unwrap());
            assert_eq!(
                record.as_ref().map(|r| r["name"].clone()),
                Some(json!(
                    all.iter()
                        .find(|c| c.id.to_string() == group.root_key)
                        .unwrap()
                        .name
                )),
                "the group's remote id names its own record: {group:?}"
            );
        }
        let logged = sync_attempt::Entity::find().all(&t.db).await.unwrap();
        assert_eq!(logged.len(), 300, "one attempt per group");
        let mut ids: Vec<i64> = logged.iter().map(|a| a.group_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 300);
        assert!(
            logged
                .iter()
                .all(|a| a.outcome == "ok" && a.worker == "translate-many"),
            "{logged:?}"
        );
        assert_eq!(
            remote.requests_matching("POST", "/erp/customers").len(),
            300
        );
        assert_all_pushed(&remote, &all);
    })
    .await;
}

/// One pass records every kind of completion at once: a create (the remote answers a numeric
/// id), an update, a group touched with nothing the remote sees changed (skipped), and a root
/// deleted (its remote record deleted). Each group ends as its kind says. (On SQLite the rows
/// carry their kind and flags packed in one number, and the statement reads each field once.)
#[tokio::test]
async fn a_pass_records_a_create_an_update_a_skip_and_a_delete_together() {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, ModelTrait, Set, Statement};
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let all = customers(&t.db, 3).await;
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap();
        assert_eq!(engine.run_once().await.unwrap().pushed, 3);
        let (renamed, unchanged, deleted) = (&all[0], &all[1], &all[2]);
        let deleted_remote_id = t
            .group("erp.customer", deleted.id)
            .await
            .unwrap()
            .remote_id
            .unwrap();
        let unchanged_before = t.group("erp.customer", unchanged.id).await.unwrap();

        let mut rename: customer::ActiveModel = renamed.clone().into();
        rename.name = Set("Renamed".into());
        rename.update(&t.db).await.unwrap();
        t.db.execute_raw(Statement::from_string(
            t.db.get_database_backend(),
            format!(
                "UPDATE sync_groups SET version = version + 1, state = 'pending' \
                 WHERE syncer = 'erp.customer' AND root_key = '{}'",
                unchanged.id
            ),
        ))
        .await
        .unwrap();
        deleted.clone().delete(&t.db).await.unwrap();
        let newcomer = fixtures::customer(&t.db, "Newcomer").await;
        sync_core::settle_touches(&t.db).await.unwrap();
        let requests_before = remote.requests().len();

        let pass = engine.run_once().await.unwrap();
        assert_eq!(
            (
                pass.claimed,
                pass.pushed,
                pass.skipped,
                pass.deleted,
                pass.failed
            ),
            (4, 2, 1, 1, 0),
            "{pass:?}"
        );
        assert_eq!(
            remote.requests().len() - requests_before,
            3,
            "a create, an update and a delete; nothing for the skip"
        );

        let group = t.group("erp.customer", renamed.id).await.unwrap();
        assert_eq!(group.state, "synced");
        assert_eq!(group.synced_version, group.version);
        assert!(group.last_payload.unwrap().contains("Renamed"));
        let record = remote
            .record("erp/customers", group.remote_id.as_deref().unwrap())
            .unwrap();
        assert_eq!(record["name"], "Renamed");

        let group = t.group("erp.customer", unchanged.id).await.unwrap();
        assert_eq!(group.state, "synced");
        assert_eq!(group.synced_version, unchanged_before.version + 1);
        assert_eq!(group.remote_id, unchanged_before.remote_id);
        assert_eq!(group.last_digest, unchanged_before.last_digest);

        let group = t.group("erp.customer", deleted.id).await.unwrap();
        assert_eq!(group.state, "deleted", "{group:?}");
        assert_eq!(group.remote_id, None, "{group:?}");
        assert_eq!(group.last_digest, None, "{group:?}");
        assert!(remote.record("erp/customers", &deleted_remote_id).is_none());

        let group = t.group("erp.customer", newcomer.id).await.unwrap();
        assert_eq!(group.state, "synced", "{group:?}");
        assert!(
            group.remote_id_numeric,
            "the remote answered a number: {group:?}"
        );
        assert_eq!(group.create_key, None, "{group:?}");
        let record = remote
            .record("erp/customers", group.remote_id.as_deref().unwrap())
            .unwrap();
        assert_eq!(record["name"], "Newcomer");
        for group in t.groups().await {
            assert_eq!(group.lease_owner, None, "{group:?}");
        }
    })
    .await;
}

/// While a claimed batch is being translated, another worker claiming gets the other due groups
/// and never waits for the first (on PostgreSQL the batch is locked, not yet leased, until its
/// creates are recorded); once the first claim returns, its groups are leased to it with their
/// creates recorded.
#[tokio::test]
async fn a_batch_being_translated_is_skipped_by_another_claim() {
    use sync_core::entity::sync_group;
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        customers(&t.db, 6).await;
        sync_core::settle_touches(&t.db).await.unwrap();
        let first =
            Arc::new(Engine::new(t.db.clone(), registry(&remote, &calls), config()).unwrap());
        let mut other_config = config();
        other_config.worker_id = "other".into();
        let other = Engine::new(t.db.clone(), registry(&remote, &calls), other_config).unwrap();

        calls.hold.store(true, Ordering::SeqCst);
        let claiming = tokio::spawn({
            let first = first.clone();
            async move { __worker::claim_prepared(&first, 3).await.unwrap() }
        });
        calls.entered.notified().await;
        let theirs = tokio::time::timeout(
            Duration::from_secs(10),
            __worker::claim_prepared(&other, 10),
        )
        .await
        .expect("the second claim does not wait for the batch being translated")
        .unwrap();
        calls.release.notify_one();
        let ours = claiming.await.unwrap();

        assert_eq!(ours.len(), 3);
        assert_eq!(theirs.len(), 3);
        let mut all: Vec<i64> = ours.iter().chain(&theirs).map(|p| p.group.id).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "no group claimed twice");
        for p in &ours {
            let group = sync_group::Entity::find_by_id(p.group.id)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(group.lease_owner.as_deref(), Some("translate-many"));
            assert!(group.lease_until.unwrap() > sync_core::now_ms());
            assert!(
                group.create_key.is_some() && group.create_payload.is_some(),
                "the create is recorded before the claim returns: {group:?}"
            );
        }
    })
    .await;
}

/// A batch translation that outlasts its bound does not keep the claim waiting (nor, on
/// PostgreSQL, its groups locked): the groups are claimed untranslated and translated one by one.
#[tokio::test]
async fn a_slow_batch_translation_falls_back_to_one_by_one() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        calls.stall_ms.store(3_000, Ordering::SeqCst);
        let customers = customers(&t.db, 5).await;
        let mut config = config();
        config.push_timeout = Duration::from_millis(300);
        let engine = Engine::new(t.db.clone(), registry(&remote, &calls), config).unwrap();
        let prepared = __worker::claim_prepared(&engine, 10).await.unwrap();
        assert_eq!(prepared.len(), 5);
        for p in prepared {
            let attempt = __worker::process_prepared(&engine, p, false).await;
            assert!(attempt.result.is_ok(), "{:?}", attempt.result);
            __worker::record(&engine, &[attempt]).await.unwrap();
        }
        assert_eq!(calls.singles.load(Ordering::SeqCst), 5);
        assert_all_pushed(&remote, &customers);
    })
    .await;
}

/// On PostgreSQL a claim holds its batch locked while it is translated only when the pool has
/// room for the translation's reads beside the claim's transaction. Over a pool of one
/// connection it leases first and translates after, so the batch is still translated in one
/// call (holding the only connection, the translation would wait out its time and the groups
/// be translated one by one).
#[tokio::test]
async fn a_claim_over_a_pool_of_one_connection_is_still_translated_in_one_call() {
    on_each_backend(|t| async move {
        if t.backend != sync_tests::Backend::Postgres {
            return;
        }
        let remote = MockRemote::start().await;
        let calls = Arc::new(Calls::default());
        let customers = customers(&t.db, 5).await;
        let db = sync_core::connect(&t.url, 1).await.unwrap();
        let mut config = config();
        config.push_timeout = Duration::from_millis(500);
        let engine = Engine::new(db, registry(&remote, &calls), config).unwrap();
        let report = engine.run_once().await.unwrap();
        assert_eq!(report.pushed, 5);
        assert_eq!(*calls.batches.lock().unwrap(), vec![5]);
        assert_eq!(calls.singles.load(Ordering::SeqCst), 0);
        assert_all_pushed(&remote, &customers);
    })
    .await;
}
