//! The engine's settings.

use std::time::Duration;

use crate::{Error, Result};

/// Settings of a worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// This worker's name in `lease_owner` and the attempt log (unique per process).
    pub worker_id: String,
    /// Groups claimed at once: per pass, and per claim of the worker runtime (which claims
    /// twice `concurrency` if that is more).
    pub batch_size: u32,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// How long a claim is held before another worker may take the group over.
    pub lease: Duration,
    /// The limit for one group's translate and push. A push longer than the lease renews it
    /// every third of the lease, and is abandoned if the lease cannot be renewed.
    pub push_timeout: Duration,
    /// Failed attempts after which a group is `dead`.
    pub max_attempts: u32,
    /// The wait after a "not ready" answer.
    pub not_ready_delay: Duration,
    /// "Not ready" answers after which waiting counts as a failure naming the prerequisite.
    pub max_deferrals: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: default_worker_id(),
            batch_size: 100,
            concurrency: 16,
            lease: Duration::from_secs(60),
            push_timeout: Duration::from_secs(30),
            max_attempts: 8,
            not_ready_delay: Duration::from_secs(1),
            max_deferrals: 60,
        }
    }
}

impl EngineConfig {
    /// Checks the settings, naming the one to fix.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Config(m));
        if self.worker_id.is_empty() || self.worker_id.len() > 64 {
            return fail(format!(
                "worker id `{}` must be 1 to 64 characters",
                self.worker_id
            ));
        }
        if self.batch_size == 0 {
            return fail("batch size must be at least 1".into());
        }
        if self.concurrency == 0 {
            return fail("concurrency must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return fail("max attempts must be at least 1".into());
        }
        if self.lease < Duration::from_secs(1) {
            return fail(format!(
                "the lease ({:?}) must be at least one second",
                self.lease
            ));
        }
        if self.push_timeout.is_zero() {
            return fail("the push timeout must be longer than zero".into());
        }
        Ok(())
    }
}

/// A name unique to this process: host, pid and a random suffix.
pub(super) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let host: String = host.chars().take(40).collect();
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
