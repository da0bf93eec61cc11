//! Worker processes and whole-system checks for the multi-process tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::Value;
use sync_core::entity::sync_group;
use sync_core::{ClaimedGroup, Registry, TranslateContext};
use sync_worker::testing::{MockRemote, RecordedRequest};

/// A worker process running `sync-test-worker`.
#[derive(Debug)]
pub struct WorkerProcess {
    /// The child process.
    pub child: Child,
    /// Its worker id.
    pub id: String,
    log: std::path::PathBuf,
}

impl WorkerProcess {
    /// Starts the worker binary `program` (integration tests pass
    /// `env!("CARGO_BIN_EXE_sync-test-worker")`) on `database_url`, pushing to `remote_url`, with
    /// `settings` as extra environment (e.g. `SYNC_LEASE_SECS`). Its log goes to `{dir}/{id}.log`.
    pub fn start(
        program: &str,
        database_url: &str,
        remote_url: &str,
        id: &str,
        dir: &Path,
        settings: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{id}.log"));
        let file = std::fs::File::create(&log).expect("create a log file");
        let mut command = Command::new(program);
        command
            .env("DATABASE_URL", database_url)
            .env("TEST_REMOTE_URL", remote_url)
            .env("SYNC_WORKER_ID", id)
            .env("SYNC_CONCURRENCY", "4")
            .env("SYNC_POLL_INTERVAL_MS", "50")
            .env("SYNC_POOL_SIZE", "4")
            .env("RUST_LOG", "warn,sync_worker=info")
            .stdout(Stdio::null())
            .stderr(file);
        for (name, value) in settings {
            command.env(name, value);
        }
        let child = command.spawn().expect("start the worker binary");
        WorkerProcess {
            child,
            id: id.to_owned(),
            log,
        }
    }

    /// Sends SIGTERM and waits (at most `within`) for a clean exit. Panics, showing the log,
    /// if the worker does not stop or fails.
    pub fn terminate(mut self, within: Duration) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the worker") {
                assert!(
                    status.success(),
                    "worker {} exited with {status}: {}",
                    self.id,
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "worker {} did not stop within {within:?}: {}",
                    self.id,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().expect("kill the worker");
        let _ = self.child.wait();
    }

    /// The worker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time (user + system) the process used so far, from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 10)
    }
}

/// Waits until no touch is logged and no group is dirty, due or leased. Panics after `within`.
/// Touches are applied here too, as far as no worker is applying them; while workers push a
/// backlog they may log new ones (references to update) for longer than
/// [`crate::apply_all_touches`] waits, so they count as work left, not as a failure.
pub async fn wait_until_synced(db: &DatabaseConnection, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        sync_core::apply_touches(db)
            .await
            .expect("apply logged touches");
        let logged = sync_core::ops::logged_touches(db)
            .await
            .expect("count logged touches");
        let groups = sync_group::Entity::find()
            .all(db)
            .await
            .expect("read sync_groups");
        let busy: Vec<&sync_group::Model> = groups
            .iter()
            .filter(|g| {
                g.version != g.synced_version
                    || g.lease_owner.is_some()
                    || !["synced", "deleted"].contains(&g.state.as_str())
            })
            .collect();
        if busy.is_empty() && logged == 0 {
            return;
        }
        if Instant::now() >= deadline {
            let listed: Vec<String> = busy
                .iter()
                .take(10)
                .map(|g| {
                    format!(
                        "{} `{}` ({}): {} v{}/{} attempts {} deferrals {} lease {:?} error {:?}",
                        g.syncer,
                        g.root_key,
                        g.id,
                        g.state,
                        g.version,
                        g.synced_version,
                        g.attempts,
                        g.deferrals,
                        g.lease_owner,
                        g.last_error
                    )
                })
                .collect();
            panic!(
                "{} group(s) not synced and {logged} touch(es) not applied within {within:?}:\n{}",
                busy.len(),
                listed.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares every group's record on `remote` with the translation of the local data. Returns
/// the differences (empty when all agree). The remote's collections are `erp/customers`,
/// `crm/contacts` and `erp/sales_orders`.
pub async fn differences(
    db: &DatabaseConnection,
    registry: &Registry,
    remote: &MockRemote,
) -> Vec<String> {
    let mut problems = Vec::new();
    let collections: BTreeMap<&str, &str> = [
        ("erp.customer", "erp/customers"),
        ("crm.contact", "crm/contacts"),
        ("erp.sales_order", "erp/sales_orders"),
    ]
    .into();
    for row in sync_group::Entity::find()
        .all(db)
        .await
        .expect("read sync_groups")
    {
        // A closed group whose root is gone (a deleted root, or a duplicate record deleted)
        // holds no remote id: nothing to compare.
        if row.root_deleted && row.state == "deleted" {
            assert_eq!(row.remote_id, None, "a closed group holds no remote id");
            continue;
        }
        let syncer = registry.get(&row.syncer).expect("a known syncer");
        let group = ClaimedGroup::unclaimed(&row);
        let expected = syncer
            .translate(&TranslateContext::new(db, &group))
            .await
            .expect("translate");
        let actual = row
            .remote_id
            .as_deref()
            .and_then(|id| remote.record(collections[row.syncer.as_str()], id))
            .map(|mut r| {
                if let Value::Object(map) = &mut r {
                    map.remove("id");
                }
                r
            });
        if expected != actual {
            problems.push(format!(
                "{} {}: local {expected:?}, remote {actual:?}",
                row.syncer, row.root_key
            ));
        }
        if row.version != row.synced_version {
            problems.push(format!(
                "{} {}: version {} but synced {}",
                row.syncer, row.root_key, row.version, row.synced_version
            ));
        }
    }
    // Remote records no group points at (duplicates from repeated creates).
    let known: std::collections::HashSet<(String, String)> = sync_group::Entity::find()
        .all(db)
        .await
        .expect("read sync_groups")
        .into_iter()
        .filter_map(|g| Some((collections[g.syncer.as_str()].to_owned(), g.remote_id?)))
        .collect();
    for collection in collections.values() {
        for id in remote.records(collection).keys() {
            if !known.contains(&((*collection).to_owned(), id.clone())) {
                problems.push(format!(
                    "{collection}/{id} exists remotely but no group points at it"
                ));
            }
        }
    }
    problems
}

/// Pairs of requests for the same group whose times overlap at the remote. Requests name their
/// group in the idempotency key (`{group}-{version}-{digest}`).
pub fn overlapping_pushes(requests: &[RecordedRequest]) -> Vec<String> {
    let mut by_group: BTreeMap<String, Vec<&RecordedRequest>> = BTreeMap::new();
    for r in requests {
        if let Some(key) = &r.idempotency_key {
            let group = key.split('-').next().unwrap_or_default().to_owned();
            by_group.entry(group).or_default().push(r);
        }
    }
    let mut overlaps = Vec::new();
    for (group, mut list) in by_group {
        list.sort_by_key(|r| r.started);
        for pair in list.windows(2) {
            if pair[1].started < pair[0].finished {
                overlaps.push(format!(
                    "group {group}: {} {} overlaps {} {}",
                    pair[0].method, pair[0].path, pair[1].method, pair[1].path
                ));
            }
        }
    }
    overlaps
}
