//! Faults around the worker: the database going away, a remote misbehaving, pushes outliving
//! their lease, and wake-ups from PostgreSQL's LISTEN/NOTIFY.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, EntityTrait};
use sync_core::retry::ExponentialBackoff;
use sync_core::{Engine, EngineConfig};
use sync_tests::cluster::{WorkerProcess, differences, wait_until_synced};
use sync_tests::proxy::Proxy;
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{Backend, TestDb, fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, MockRemote};

const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_ride_out_a_database_outage_without_spinning_or_losing_work() {
    on_each_backend(|t| async move {
        if t.backend == Backend::Sqlite {
            // An embedded database has no server to lose.
            return;
        }
        let remote = MockRemote::start().await;
        let proxy = Proxy::start(Proxy::target_of(&t.url)).await;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            fixtures::customer(&t.db, &format!("Before {i}")).await;
        }
        let worker = WorkerProcess::start(
            WORKER,
            &proxy.url_for(&t.url),
            &remote.url(),
            "outage",
            dir.path(),
            &[("SYNC_POLL_INTERVAL_MS", "100")],
        );
        wait_until_synced(&t.db, Duration::from_secs(30)).await;

        // The database goes away for four seconds; the application keeps writing (its own
        // connections do not go through the proxy).
        proxy.cut();
        let cpu_before = worker.cpu_time();
        for i in 0..10 {
            fixtures::customer(&t.db, &format!("During {i}")).await;
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        let cpu_during = worker.cpu_time() - cpu_before;
        assert!(
            cpu_during < Duration::from_millis(800),
            "the worker used {cpu_during:?} of CPU in 4 s of outage; its log ends:\n{}",
            tail(&worker.log(), 40)
        );
        proxy.restore();

        wait_until_synced(&t.db, Duration::from_secs(60)).await;
        let log = worker.log();
        assert!(log.contains("database"), "the outage was logged: {log}");
        worker.terminate(Duration::from_secs(15));
        let problems = differences(
            &t.db,
            &registry(&remote.url(), &Arc::new(Knobs::default())),
            &remote,
        )
        .await;
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(remote.records("erp/customers").len(), 20);
    })
    .await;
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn engine(t: &TestDb, remote: &MockRemote, id: &str, lease: Duration) -> Engine {
    let mut config = EngineConfig::default();
    config.worker_id = id.into();
    config.lease = lease;
    config.push_timeout = Duration::from_secs(20);
    Engine::new(
        t.db.clone(),
        registry(&remote.url(), &Arc::new(Knobs::default())),
        config,
    )
    .unwrap()
    .with_retry_policy(ExponentialBackoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(1),
        jitter: 0.0,
    })
}

#[tokio::test]
async fn a_push_longer_than_the_lease_keeps_it() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let mut hold = remote.hold(Some("/erp/customers"));
        fixtures::customer(&t.db, "Slow").await;
        let slow = engine(&t, &remote, "slow", Duration::from_secs(1)).await;
        let other = engine(&t, &remote, "other", Duration::from_secs(1)).await;
        let pass = tokio::spawn(async move { slow.run_once().await });
        hold.arrived(1).await;
        // The lease is 1 s; the push is held for 1.7 s (the HTTP timeout is 2 s). Another worker
        // keeps looking meanwhile.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1700) {
            assert_eq!(
                other.run_once().await.unwrap().claimed,
                0,
                "the group was taken over while its push ran"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        hold.release();
        let report = pass.await.unwrap().unwrap();
        assert_eq!((report.pushed, report.lease_lost), (1, 0));
        assert_eq!(remote.requests().len(), 1, "pushed once");
    })
    .await;
}

#[tokio::test]
async fn remote_faults_are_classified_and_recorded() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let e = engine(&t, &remote, "faults", Duration::from_secs(30)).await;
        // (name, fault, outcome in the attempt log, words of the recorded error)
        let cases: [(&str, FaultKind, &str, &str); 4] = [
            (
                "MalformedJson",
                FaultKind::MalformedJson,
                "failed",
                "is not JSON",
            ),
            (
                "NoId",
                FaultKind::CreateWithoutId,
                "failed",
                "no id at `/id`",
            ),
            (
                "Hang",
                FaultKind::Hang(Duration::from_secs(5)),
                "retry",
                "timed out",
            ),
            (
                "Boom",
                FaultKind::Status(502, serde_json::json!({"error": "bad gateway"})),
                "retry",
                "502",
            ),
        ];
        for (name, kind, _, _) in &cases {
            remote.push_fault(Fault::new(kind.clone()).body_contains(&format!("\"{name}\"")));
            fixtures::customer(&t.db, name).await;
        }
        let healthy = fixtures::customer(&t.db, "Healthy").await;
        let pass = e.run_once().await.unwrap();
        assert_eq!(
            (pass.failed, pass.pushed),
            (4, 1),
            "the faults fail their groups; the healthy one syncs in the same pass"
        );
        assert_eq!(
            t.group("erp.customer", healthy.id).await.unwrap().state,
            "synced"
        );
        let attempts = sync_core::entity::sync_attempt::Entity::find()
            .all(&t.db)
            .await
            .unwrap();
        for (i, (name, _, outcome, message)) in cases.iter().enumerate() {
            let g = t.group("erp.customer", i + 1).await.unwrap();
            assert_eq!((g.state.as_str(), g.attempts), ("failed", 1), "{name}");
            let error = g.last_error.unwrap_or_default();
            assert!(error.contains(message), "{name}: {error}");
            // Transient (timeout, 5xx) and permanent (bad answers) failures are told apart.
            let attempt = attempts.iter().find(|a| a.group_id == g.id).unwrap();
            assert_eq!(attempt.outcome, *outcome, "{name}");
        }
        assert_eq!(
            attempts
                .iter()
                .find(|a| a.outcome == "retry" && a.status_code == Some(502))
                .map(|a| a.operation.as_str()),
            Some("create")
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_worker_wakes_on_notify_and_falls_back_to_polling() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let remote = MockRemote::start().await;
        let dir = tempfile::tempdir().unwrap();
        // Polling once a minute: only a notification can wake this worker quickly.
        let worker = WorkerProcess::start(
            WORKER,
            &t.url,
            &remote.url(),
            "listener",
            dir.path(),
            &[("SYNC_POLL_INTERVAL_MS", "60000")],
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        fixtures::customer(&t.db, "Woken").await;
        wait_until_synced(&t.db, Duration::from_secs(10)).await;
        let latency = started.elapsed();
        assert!(latency < Duration::from_secs(3), "woken after {latency:?}");

        // The listening connection is killed: the worker reconnects (polling meanwhile). Only
        // this test's (its application name): other tests listen in parallel.
        let killed =
            t.db.query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() \
                 AND application_name = current_setting('application_name')",
            ))
            .await
            .unwrap();
        assert_eq!(killed.len(), 1, "the worker's listening connection");
        tokio::time::sleep(Duration::from_secs(1)).await;
        fixtures::customer(&t.db, "After").await;
        wait_until_synced(&t.db, Duration::from_secs(15)).await;
        worker.terminate(Duration::from_secs(10));
        assert_eq!(remote.records("erp/customers").len(), 2);
    })
    .await;
}

/// The notifications the application's commits send to this test's schema, seen through a
/// `LISTEN sync_groups` connection of the test's own (tests in other schemas notify on the same
/// channel, with their schema as the payload).
struct Notifications {
    listener: sea_orm::sqlx::postgres::PgListener,
    schema: String,
}

impl Notifications {
    async fn listen(t: &TestDb) -> Self {
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect(&t.url)
            .await
            .unwrap();
        listener.listen("sync_groups").await.unwrap();
        let schema =
            t.db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT current_schema()::text AS s",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "s")
            .unwrap();
        Notifications { listener, schema }
    }

    /// Whether a notification for this test's schema arrives within `within`.
    async fn arrives_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(received) = tokio::time::timeout_at(deadline, self.listener.recv()).await {
            if received.unwrap().payload() == self.schema {
                return true;
            }
        }
        false
    }

    /// Consumes the notifications already sent (a write made of several statements outside a
    /// transaction notifies once per statement).
    async fn drain(&mut self) {
        while tokio::time::timeout(Duration::from_millis(200), self.listener.recv())
            .await
            .is_ok()
        {}
    }
}

/// Waits (up to 5 s) until no worker is marked asleep: a worker that wakes deletes its mark in
/// the background.
async fn until_no_sleepers(t: &TestDb) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sleepers(&t.db).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the woken worker's mark is still there after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn sleepers(db: &sea_orm::DatabaseConnection) -> usize {
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT worker FROM sync_sleepers",
    ))
    .await
    .unwrap()
    .len()
}

/// PostgreSQL serialises the commits of transactions that sent a notification, so the
/// application's commits notify only while a worker is marked asleep: not when no worker runs,
/// not when the only mark has expired (a worker that died asleep), and not while the worker
/// finds work when it claims.
#[tokio::test]
async fn commits_notify_only_while_a_worker_sleeps() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let mut notifications = Notifications::listen(&t).await;
        let quiet = Duration::from_millis(500);

        // No worker: nothing is sent.
        fixtures::customer(&t.db, "Nobody listens").await;
        assert!(!notifications.arrives_within(quiet).await);

        // Nothing due: the worker marks itself asleep, and the next commit notifies.
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote, "sleeper", Duration::from_secs(30)).await;
        engine.run_until_idle(usize::MAX).await.unwrap();
        let ttl = Duration::from_secs(60);
        let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
            .await
            .unwrap();
        assert!(claimed.is_empty() && asleep);
        assert_eq!(sleepers(&t.db).await, 1);
        fixtures::customer(&t.db, "Wakes the worker").await;
        assert!(notifications.arrives_within(Duration::from_secs(5)).await);
        notifications.drain().await;

        // Work found: the worker is awake, and commits send nothing while it claims work.
        let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, true, ttl)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(!asleep);
        until_no_sleepers(&t).await;
        fixtures::customer(&t.db, "While busy").await;
        assert!(!notifications.arrives_within(quiet).await);
        let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "the busy worker's next claim finds it");
        assert!(!asleep);

        // A mark that expired (its worker died asleep) makes nothing notify.
        t.db.execute_unprepared(
            "INSERT INTO sync_sleepers (worker, until_ms) VALUES ('died', 1000)",
        )
        .await
        .unwrap();
        fixtures::customer(&t.db, "After a dead sleeper").await;
        assert!(!notifications.arrives_within(quiet).await);
    })
    .await;
}

/// A transaction that appended its touch before the worker's mark committed, and commits just
/// after it: it read no mark and notifies no one, so the worker, before its second look, waits
/// for the transactions appending at that moment to end, and that look finds the touch.
#[tokio::test]
async fn a_commit_racing_the_sleep_mark_is_found_before_the_worker_sleeps() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let mut notifications = Notifications::listen(&t).await;
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote, "racer", Duration::from_secs(30)).await;
        let ttl = Duration::from_secs(60);

        let txn = sync_core::begin_write(&t.db).await.unwrap();
        fixtures::customer(&txn, "In flight").await;
        // Commits as soon as the worker's mark is there, while the worker makes its second look.
        let watcher = t.db.clone();
        let committer = tokio::spawn(async move {
            while sleepers(&watcher).await == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sea_orm::TransactionSession::commit(txn).await.unwrap();
        });
        let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
            .await
            .unwrap();
        committer.await.unwrap();
        assert_eq!(
            claimed.len(),
            1,
            "the worker's second look waits for the appending transaction and finds its touch"
        );
        assert!(!asleep, "a worker that found work is not asleep");
        until_no_sleepers(&t).await;
        assert!(
            !notifications
                .arrives_within(Duration::from_millis(300))
                .await,
            "the transaction read no mark: it notified no one"
        );
    })
    .await;
}

/// A worker that wakes deletes its mark in the background, so the delete may land after the
/// worker marked itself asleep again: only the old mark goes, the new one stays, and the next
/// commit notifies.
#[tokio::test]
async fn a_late_wake_up_mark_does_not_remove_a_newer_sleep_mark() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let mut notifications = Notifications::listen(&t).await;
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote, "napper", Duration::from_secs(30)).await;
        let ttl = Duration::from_secs(60);
        for round in 0..20 {
            let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
                .await
                .unwrap();
            assert!(claimed.is_empty() && asleep, "round {round}: nothing due");
            fixtures::customer(&t.db, &format!("Wakes it {round}")).await;
            let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, true, ttl)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1, "round {round}: the new customer is due");
            assert!(!asleep);
            // Asleep again at once (the claimed group is leased), racing the wake-up's delete.
            let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
                .await
                .unwrap();
            assert!(claimed.is_empty() && asleep);
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(
                sleepers(&t.db).await,
                1,
                "round {round}: the newer mark stays"
            );
            notifications.drain().await;
            fixtures::customer(&t.db, &format!("Notifies {round}")).await;
            assert!(
                notifications.arrives_within(Duration::from_secs(5)).await,
                "round {round}: a commit while the worker sleeps notifies"
            );
            // Leave nothing due for the next round.
            let (claimed, _) = sync_core::__worker::claim_or_sleep(&engine, 10, true, ttl)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
            until_no_sleepers(&t).await;
        }
    })
    .await;
}

/// The window the sleeping protocol leaves, as documented: a transaction that appended its touch
/// before the worker's mark committed and stays open longer than the worker waits for it
/// (`APPENDERS_WAIT`, 250 ms) notifies no one; the worker's next poll finds it.
#[tokio::test]
async fn a_commit_racing_the_sleep_mark_is_found_by_the_next_poll() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        let mut notifications = Notifications::listen(&t).await;
        let remote = MockRemote::start().await;
        let engine = engine(&t, &remote, "racer", Duration::from_secs(30)).await;
        let ttl = Duration::from_secs(60);

        let txn = sync_core::begin_write(&t.db).await.unwrap();
        fixtures::customer(&txn, "In flight").await;
        let (claimed, asleep) = sync_core::__worker::claim_or_sleep(&engine, 10, false, ttl)
            .await
            .unwrap();
        assert!(
            claimed.is_empty() && asleep,
            "the uncommitted touch is not seen"
        );
        sea_orm::TransactionSession::commit(txn).await.unwrap();
        assert!(
            !notifications
                .arrives_within(Duration::from_millis(500))
                .await,
            "the touch was appended before the worker slept"
        );
        let (claimed, _) = sync_core::__worker::claim_or_sleep(&engine, 10, true, ttl)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "the next poll finds it");
    })
    .await;
}
