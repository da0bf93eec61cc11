//! A stepped worker for end-to-end tests: the test syncers pushing to a mock remote, an engine
//! on a manual clock (a minute ahead of the application's), and a backoff without jitter.

use std::sync::Arc;
use std::time::Duration;

use sync_core::retry::ExponentialBackoff;
use sync_core::{Engine, EngineConfig, ManualClock};
use sync_worker::testing::MockRemote;

use crate::TestDb;
use crate::syncers::{Knobs, registry};

/// The database, the remote, the syncers' knobs, the clock and the engine of one test.
#[derive(Debug)]
pub struct Harness {
    /// The database.
    pub t: TestDb,
    /// The remote the syncers push to.
    pub remote: MockRemote,
    /// What the test syncers do, turned by the test.
    pub knobs: Arc<Knobs>,
    /// The engine's clock, moved by the test.
    pub clock: ManualClock,
    /// The engine, stepped by the test.
    pub engine: Engine,
}

/// Retries after 1 s, 2 s, 4 s … (no jitter, so tests can assert the schedule).
pub fn backoff() -> ExponentialBackoff {
    ExponentialBackoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter: 0.0,
    }
}

/// A harness on `t`, with the engine's settings adjusted by `configure`.
pub async fn harness(t: TestDb, configure: impl FnOnce(&mut EngineConfig)) -> Harness {
    let remote = MockRemote::start().await;
    let knobs = Arc::new(Knobs::default());
    // The worker's clock runs a minute ahead of the application's, so that groups the test
    // touches (stamped with the system time) are due at once; the test then moves it by hand.
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(60));
    let mut config = EngineConfig::default();
    config.worker_id = "test-worker".into();
    config.lease = Duration::from_secs(30);
    config.push_timeout = Duration::from_secs(10);
    configure(&mut config);
    let engine = Engine::new(t.db.clone(), registry(&remote.url(), &knobs), config)
        .expect("a valid engine")
        .with_clock(clock.clone())
        .with_retry_policy(backoff());
    Harness {
        t,
        remote,
        knobs,
        clock,
        engine,
    }
}

impl Harness {
    /// The group (`syncer`, `key`), which must exist.
    pub async fn group(
        &self,
        syncer: &str,
        key: impl ToString,
    ) -> sync_core::entity::sync_group::Model {
        self.t.group(syncer, key).await.expect("the group exists")
    }

    /// How many requests with `method` went to paths starting with `path`.
    pub fn pushes(&self, method: &str, path: &str) -> usize {
        self.remote.requests_matching(method, path).len()
    }
}
