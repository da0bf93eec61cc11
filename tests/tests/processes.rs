//! Several real worker processes (the `sync-test-worker` binary) against one database and one
//! loopback remote: single flight, final consistency, crashes, and startup errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, ModelTrait, QueryFilter,
};
use sync_core::entity::sync_attempt;
use sync_tests::cluster::{WorkerProcess, differences, overlapping_pushes, wait_until_synced};
use sync_tests::models::{address, customer};
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{Backend, TestDb, fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, Idempotency, MockRemote};

const WORKER: &str = env!("CARGO_BIN_EXE_sync-test-worker");

/// Live customers, shared by the workload's tasks.
type Customers = Arc<Mutex<Vec<i32>>>;

/// One random committed change. Returns whether it committed (a change that lost a race, e.g.
/// to a concurrent delete or a lock timeout, rolls back and leaves no trace).
async fn random_change(
    db: &DatabaseConnection,
    customers: &Customers,
    rng: &mut StdRng,
    n: usize,
) -> bool {
    let pick = |rng: &mut StdRng| {
        let list = customers.lock().unwrap();
        (!list.is_empty()).then(|| list[rng.random_range(0..list.len())])
    };
    let Some(id) = pick(rng) else { return false };
    let roll = rng.random_range(0..100);
    let result: Result<(), sea_orm::DbErr> = async {
        let txn = sync_core::begin_write(db)
            .await
            .map_err(sea_orm::DbErr::from)?;
        let Some(c) = customer::Entity::find_by_id(id).one(&txn).await? else {
            return Ok(());
        };
        match roll {
            0..40 => {
                let mut am = c.into_active_model();
                am.name = Set(format!("Customer {id} v{n}"));
                am.update(&txn).await?;
            }
            40..50 => {
                let mut am = c.into_active_model();
                am.notes = Set(format!("note {n}"));
                am.update(&txn).await?;
            }
            50..65 => {
                address::ActiveModel {
                    customer_id: Set(id),
                    street: Set("1 Main St".into()),
                    city: Set(format!("City {n}")),
                    label: Set("home".into()),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
            }
            65..80 => {
                let to = pick(rng).unwrap_or(id);
                if let Some(a) = address::Entity::find()
                    .filter(address::Column::CustomerId.eq(id))
                    .one(&txn)
                    .await?
                {
                    let mut am = a.into_active_model();
                    am.customer_id = Set(to);
                    am.update(&txn).await?;
                }
            }
            80..87 => {
                if let Some(a) = address::Entity::find()
                    .filter(address::Column::CustomerId.eq(id))
                    .one(&txn)
                    .await?
                {
                    let mut am = a.into_active_model();
                    am.city = Set(format!("Town {n}"));
                    am.update(&txn).await?;
                }
            }
            87..92 => {
                if let Some(a) = address::Entity::find()
                    .filter(address::Column::CustomerId.eq(id))
                    .one(&txn)
                    .await?
                {
                    a.delete(&txn).await?;
                }
            }
            92..97 => {
                let new = customer::ActiveModel {
                    name: Set(format!("New {n}")),
                    email: Set(format!("new{n}@example.com")),
                    phone: Set(None),
                    notes: Set(String::new()),
                    deleted_at: Set(None),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                sync_core::sync_as(&txn, "crm.contact", &new)
                    .await
                    .map_err(sea_orm::DbErr::from)?;
                txn.commit().await?;
                customers.lock().unwrap().push(new.id);
                return Ok(());
            }
            _ => {
                for a in address::Entity::find()
                    .filter(address::Column::CustomerId.eq(id))
                    .all(&txn)
                    .await?
                {
                    a.delete(&txn).await?;
                }
                c.delete(&txn).await?;
                txn.commit().await?;
                customers.lock().unwrap().retain(|x| *x != id);
                return Ok(());
            }
        }
        txn.commit().await
    }
    .await;
    result.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_many_changes_one_push_at_a_time_and_nothing_lost() {
    on_each_backend(|t| async move {
        // Sizes: SQLite serialises writers, so it gets a smaller workload.
        let (initial, tasks, changes) = match t.backend {
            Backend::Sqlite => (60, 4, 150),
            _ => (150, 8, 300),
        };
        let remote = MockRemote::start().await;
        let dir = tempfile::tempdir().unwrap();
        let customers: Customers = Arc::default();
        for i in 0..initial {
            let c = fixtures::customer(&t.db, &format!("Customer {i}")).await;
            fixtures::address(&t.db, c.id, "Start").await;
            sync_core::sync_as(&t.db, "crm.contact", &c).await.unwrap();
            customers.lock().unwrap().push(c.id);
        }
        let workers: Vec<WorkerProcess> = (0..3)
            .map(|i| {
                WorkerProcess::start(
                    WORKER,
                    &t.url,
                    &remote.url(),
                    &format!("w{i}"),
                    dir.path(),
                    &[("SYNC_LEASE_SECS", "10")],
                )
            })
            .collect();

        // The workload runs while the workers push.
        let committed = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for task in 0..tasks {
            let (db, customers, committed) = (t.db.clone(), customers.clone(), committed.clone());
            handles.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(task as u64);
                for n in 0..changes {
                    if random_change(&db, &customers, &mut rng, task * 10_000 + n).await {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let committed = committed.load(Ordering::Relaxed);
        eprintln!("{committed} changes committed");
        assert!(
            committed > tasks * changes / 2,
            "most changes commit ({committed})"
        );

        wait_until_synced(&t.db, Duration::from_secs(120)).await;
        for w in workers {
            w.terminate(Duration::from_secs(15));
        }

        let requests = remote.requests();
        assert!(
            requests.iter().all(|r| r.status < 300),
            "every push accepted"
        );
        let overlaps = overlapping_pushes(&requests);
        assert!(
            overlaps.is_empty(),
            "two pushes of one group in flight at once: {overlaps:#?}"
        );
        let problems = differences(
            &t.db,
            &registry(&remote.url(), &Arc::new(Knobs::default())),
            &remote,
        )
        .await;
        assert!(
            problems.is_empty(),
            "remote differs from local: {problems:#?}"
        );

        let workers_seen: std::collections::BTreeSet<String> = sync_attempt::Entity::find()
            .all(&t.db)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.worker)
            .collect();
        assert!(
            workers_seen.len() >= 2,
            "the work was shared: {workers_seen:?}"
        );
        eprintln!(
            "{} requests from {} workers",
            requests.len(),
            workers_seen.len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_s_pushes_are_finished_by_another_without_duplicates() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(fixtures::customer(&t.db, &format!("Crash {i}")).await.id);
        }
        // The remote holds every create: the first worker has pushes in flight when it dies.
        let mut hold = remote.hold(Some("/erp/customers"));
        let lease = [("SYNC_LEASE_SECS", "2"), ("SYNC_PUSH_TIMEOUT_SECS", "30")];
        let doomed =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "doomed", dir.path(), &lease);
        hold.arrived(4).await;
        doomed.kill();
        // The remote now accepts what the dead worker sent: records exist whose ids the
        // database never learnt.
        hold.release();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let accepted_before = remote.records("erp/customers").len();
        assert!(
            accepted_before >= 4,
            "the remote accepted the dead worker's creates"
        );
        let first_keys: Vec<String> = remote
            .requests()
            .iter()
            .filter_map(|r| r.idempotency_key.clone())
            .collect();

        let rescuer =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "rescuer", dir.path(), &lease);
        wait_until_synced(&t.db, Duration::from_secs(30)).await;
        rescuer.terminate(Duration::from_secs(10));

        let creates = remote.requests_matching("POST", "/erp/customers");
        let repeats: Vec<_> = creates.iter().filter(|r| r.replayed).collect();
        assert!(
            repeats.len() >= 4,
            "the killed worker's creates were repeated: {}",
            repeats.len()
        );
        assert!(
            repeats
                .iter()
                .all(|r| first_keys.contains(r.idempotency_key.as_ref().unwrap())),
            "each repeat carries the idempotency key of the push it repeats"
        );
        assert_eq!(
            remote.records("erp/customers").len(),
            ids.len(),
            "one remote record per customer"
        );
        let problems = differences(
            &t.db,
            &registry(&remote.url(), &Arc::new(Knobs::default())),
            &remote,
        )
        .await;
        assert!(problems.is_empty(), "{problems:#?}");
    })
    .await;
}

#[tokio::test]
async fn startup_refuses_bad_configuration_with_a_clear_message() {
    let t = TestDb::new(Backend::Sqlite).await;
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = std::process::Command::new(WORKER);
        command
            .env("DATABASE_URL", &t.url)
            .env("TEST_REMOTE_URL", "http://127.0.0.1:9")
            .args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.args(["run", "--once"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[("TEST_REMOTE_URL", "not a url")], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("the remote URL `not a url/erp` is invalid"),
        "{stderr}"
    );

    let (code, stderr) = run(&[("TEST_REGISTER_TWICE", "1")], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("syncer `erp.customer` is registered twice"),
        "{stderr}"
    );

    let (code, stderr) = run(&[("TEST_RENAME_ERP_CUSTOMER", "erp.customers")], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "syncer `erp.customers` is registered, but the models declare `erp.customer`"
        ),
        "{stderr}"
    );

    let (code, stderr) = run(&[], &["--concurrency", "0"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("concurrency must be at least 1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("invalid configuration: invalid configuration"),
        "said once: {stderr}"
    );

    let (code, stderr) = run(
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("cannot connect to the database at `postgres://nobody@127.0.0.1:1/none`"),
        "{stderr}"
    );

    let mut command = std::process::Command::new(WORKER);
    let out = command
        .env_remove("TEST_REMOTE_URL")
        .env("DATABASE_URL", &t.url)
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`TEST_REMOTE_URL` is not set"));

    let (code, stdout_or_err) = run(&[], &[]);
    assert_eq!(code, Some(0), "{stdout_or_err}");
}

#[tokio::test]
async fn groups_of_unknown_syncers_are_reported_not_claimed() {
    on_each_backend(|t| async move {
        let c = fixtures::customer(&t.db, "Ada").await;
        sync_core::apply_touches(&t.db).await.unwrap();
        t.db.execute_unprepared("UPDATE sync_groups SET syncer = 'erp.renamed'")
            .await
            .unwrap();
        let remote = MockRemote::start().await;
        let worker = sync_worker::Worker::new(
            t.db.clone(),
            registry(&remote.url(), &Arc::new(Knobs::default())),
            Default::default(),
        )
        .unwrap();
        let pass = worker.run_once().await.unwrap();
        assert_eq!(pass.claimed, 0);
        assert_eq!(
            worker.engine().unknown_syncers().await.unwrap(),
            [("erp.renamed".to_owned(), 1)]
        );
        let g = t.group("erp.renamed", c.id).await.unwrap();
        assert_eq!(
            (g.state.as_str(), g.attempts, g.lease_owner),
            ("pending", 0, None)
        );
        let _ = customer::Entity::find()
            .filter(customer::Column::Id.eq(c.id))
            .all(&t.db)
            .await
            .unwrap();
    })
    .await;
}

/// Starts of requests to `erp/customers`, in seconds from the first.
fn create_starts(remote: &MockRemote) -> Vec<f64> {
    let requests = remote.requests_matching("", "/erp/customers");
    let Some(first) = requests.iter().map(|r| r.started).min() else {
        return Vec::new();
    };
    let mut starts: Vec<f64> = requests
        .iter()
        .map(|r| (r.started - first).as_secs_f64())
        .collect();
    starts.sort_by(f64::total_cmp);
    starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_across_worker_processes() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        let dir = tempfile::tempdir().unwrap();
        let customers = 100;
        for i in 0..customers {
            fixtures::customer(&t.db, &format!("Rated {i}")).await;
        }
        // 40 requests per second with bursts of 4, for three processes together.
        let limits = [("TEST_ERP_CUSTOMER_LIMITS", "40/4/0")];
        let workers: Vec<WorkerProcess> = (0..3)
            .map(|i| {
                WorkerProcess::start(
                    WORKER,
                    &t.url,
                    &remote.url(),
                    &format!("r{i}"),
                    dir.path(),
                    &limits,
                )
            })
            .collect();
        wait_until_synced(&t.db, Duration::from_secs(60)).await;
        for w in workers {
            w.terminate(Duration::from_secs(10));
        }
        let starts = create_starts(&remote);
        assert_eq!(starts.len(), customers);
        // Tokens are granted at most the rate plus the burst in any one-second window. Arrivals
        // are grants plus the time a request waited for a CPU after its grant (three workers, the
        // database and this test share the machine), so a window of arrivals may also hold the
        // grants of the 100 ms before it: the rate times 0.1 s of slack, 4 requests. Without the
        // shared limit the three processes send far more than 48 in a second.
        let busiest = starts
            .iter()
            .map(|s| starts.iter().filter(|o| **o >= *s && **o < s + 1.0).count())
            .max()
            .unwrap();
        assert!(busiest <= 48, "{busiest} requests in one second");
        let span = starts.last().unwrap();
        assert!(
            *span >= (customers as f64 - 4.0) / 40.0 * 0.9,
            "100 requests at 40/s took only {span:.2}s"
        );
        eprintln!("busiest second: {busiest} requests; all {customers} in {span:.2}s");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cap_on_pushes_in_flight_holds_across_worker_processes() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        // A slow remote, so that pushes overlap unless something stops them.
        remote.push_fault(
            Fault::new(FaultKind::Hang(Duration::from_millis(150))).path_contains("/erp/customers"),
        );
        let dir = tempfile::tempdir().unwrap();
        for i in 0..24 {
            fixtures::customer(&t.db, &format!("Capped {i}")).await;
        }
        let limits = [("TEST_ERP_CUSTOMER_LIMITS", "0/1/2")];
        let workers: Vec<WorkerProcess> = (0..3)
            .map(|i| {
                WorkerProcess::start(
                    WORKER,
                    &t.url,
                    &remote.url(),
                    &format!("c{i}"),
                    dir.path(),
                    &limits,
                )
            })
            .collect();
        wait_until_synced(&t.db, Duration::from_secs(60)).await;
        for w in workers {
            w.terminate(Duration::from_secs(10));
        }
        let requests = remote.requests_matching("POST", "/erp/customers");
        assert_eq!(requests.len(), 24);
        let most = requests
            .iter()
            .map(|r| {
                requests
                    .iter()
                    .filter(|o| o.started <= r.started && o.finished > r.started)
                    .count()
            })
            .max()
            .unwrap();
        assert!(most <= 2, "{most} pushes in flight at once, the cap is 2");
        assert_eq!(most, 2, "the cap is used");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_pauses_the_whole_syncer_in_every_process() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        remote.push_fault(
            Fault::new(FaultKind::TooManyRequests {
                retry_after_secs: 2,
            })
            .path_contains("/erp/customers")
            .times(1),
        );
        // Slow answers, so that without the pause pushes would go on during it.
        remote.push_fault(
            Fault::new(FaultKind::Hang(Duration::from_millis(100))).path_contains("/erp/customers"),
        );
        let dir = tempfile::tempdir().unwrap();
        for i in 0..60 {
            fixtures::customer(&t.db, &format!("Paused {i}")).await;
        }
        let workers: Vec<WorkerProcess> = (0..2)
            .map(|i| {
                WorkerProcess::start(
                    WORKER,
                    &t.url,
                    &remote.url(),
                    &format!("p{i}"),
                    dir.path(),
                    &[],
                )
            })
            .collect();
        wait_until_synced(&t.db, Duration::from_secs(60)).await;
        for w in workers {
            w.terminate(Duration::from_secs(10));
        }
        let requests = remote.requests_matching("", "/erp/customers");
        let refused = requests.iter().find(|r| r.status == 429).expect("one 429");
        // Requests already in flight when the 429 came may finish; none may start during the
        // pause (2 s from the answer).
        let during: Vec<_> = requests
            .iter()
            .filter(|r| {
                r.started > refused.finished + Duration::from_millis(350)
                    && r.started < refused.finished + Duration::from_millis(1900)
            })
            .collect();
        assert!(
            during.is_empty(),
            "{} request(s) started while the syncer was paused",
            during.len()
        );
        assert_eq!(requests.iter().filter(|r| r.status < 300).count(), 60);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_repeated_after_a_crash_and_a_change_is_the_same_create_then_an_update() {
    on_each_backend(|t| async move {
        let remote = MockRemote::start().await;
        // The remote refuses a reused key with a different body, as some payment APIs do.
        remote.idempotency(Idempotency::Strict);
        let dir = tempfile::tempdir().unwrap();
        let mut customers = Vec::new();
        for i in 0..4 {
            customers.push(fixtures::customer(&t.db, &format!("Crash {i}")).await);
        }
        // The worker dies after its creates reached the remote and before it learnt the ids.
        let mut hold = remote.hold(Some("/erp/customers"));
        let lease = [("SYNC_LEASE_SECS", "2"), ("SYNC_PUSH_TIMEOUT_SECS", "30")];
        let doomed =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "doomed", dir.path(), &lease);
        hold.arrived(4).await;
        doomed.kill();
        // Meanwhile the application changes every customer: the groups' versions move on.
        for c in &customers {
            let mut am = c.clone().into_active_model();
            am.name = Set(format!("{} renamed", c.name));
            am.update(&t.db).await.unwrap();
        }
        hold.release();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            remote.records("erp/customers").len(),
            4,
            "the remote created the dead worker's records"
        );
        let first_keys: Vec<String> = remote
            .requests_matching("POST", "/erp/customers")
            .iter()
            .filter_map(|r| r.idempotency_key.clone())
            .collect();

        let rescuer =
            WorkerProcess::start(WORKER, &t.url, &remote.url(), "rescuer", dir.path(), &lease);
        wait_until_synced(&t.db, Duration::from_secs(30)).await;
        rescuer.terminate(Duration::from_secs(10));

        assert_eq!(
            remote.records("erp/customers").len(),
            4,
            "one remote record per customer: the repeated creates carried the first keys"
        );
        let creates = remote.requests_matching("POST", "/erp/customers");
        for repeat in &creates[4..] {
            assert!(
                first_keys.contains(repeat.idempotency_key.as_ref().unwrap()),
                "a repeated create carries the key of the create it repeats: {:?}",
                repeat.idempotency_key
            );
        }
        let problems = differences(
            &t.db,
            &registry(&remote.url(), &Arc::new(Knobs::default())),
            &remote,
        )
        .await;
        assert!(
            problems.is_empty(),
            "the renames reached the remote: {problems:#?}"
        );
    })
    .await;
}
