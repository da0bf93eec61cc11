//! What the engine hands around and reports: prepared groups, attempts, outcomes, pass reports,
//! and the options of a run.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::queue::Synced;
use crate::references::Reference;
use crate::{ClaimedGroup, Error, Result};

/// How [`Engine::run`](crate::Engine::run) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunOptions {
    /// At most this many passes that found work (claims that came back empty end the run).
    pub max_passes: usize,
    /// Push every claimed group, even when the remote already holds its payload (a full run).
    pub full: bool,
}

impl RunOptions {
    /// One pass.
    pub fn once() -> Self {
        RunOptions {
            max_passes: 1,
            full: false,
        }
    }

    /// Passes until nothing is due.
    pub fn until_idle() -> Self {
        RunOptions {
            max_passes: usize::MAX,
            full: false,
        }
    }

    /// At most `passes` passes.
    pub fn max_passes(mut self, passes: usize) -> Self {
        self.max_passes = passes;
        self
    }

    /// Ignoring digests: every claimed group is pushed.
    pub fn full(mut self) -> Self {
        self.full = true;
        self
    }
}

/// A claimed group with its translation, made with the rest of its claim's batch, and the
/// create recorded for it before it is sent. The worker runtime hands these out one by one.
#[derive(Debug)]
pub struct PreparedGroup {
    /// The group, as claimed.
    pub group: ClaimedGroup,
    /// `None` where the batch left it to be translated on its own (a deleted root, or a
    /// `translate_many` that failed as a whole).
    pub(crate) translated: Option<Result<Option<Value>>>,
    /// The create this attempt recorded before sending it.
    pub(crate) create: Option<RecordedCreate>,
    /// The remote ids of other groups the batch's translation read.
    pub(crate) references: Vec<Reference>,
    /// When it was claimed: a group that waited long for a free slot renews its lease first.
    pub(crate) claimed_at: Instant,
}

/// A create recorded on its group before it is sent (see [`crate::PendingCreate`]).
#[derive(Debug, Clone)]
pub(crate) struct RecordedCreate {
    pub(crate) key: String,
    pub(crate) payload: String,
    pub(crate) digest: String,
}

/// What an attempt sent to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Nothing was sent (a digest skip, a translation error, a group closed without a push).
    None,
    /// A create (also a create repeated after a crash).
    Create,
    /// An update of the remote record.
    Update,
    /// A delete of the remote record.
    Delete,
}

impl Operation {
    /// The name in the attempt log: `none`, `create`, `update`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::None => "none",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// What one group's attempt came to, before it is recorded.
#[derive(Debug)]
pub struct Attempt {
    /// The group, as claimed.
    pub group: ClaimedGroup,
    /// What was sent.
    pub operation: Operation,
    /// Success, or the error.
    pub result: std::result::Result<Synced, Error>,
    /// When it started (ms since the epoch).
    pub started_at: i64,
    /// How long it took.
    pub duration: Duration,
    /// The remote ids of other groups the remote's record now carries, when known (the
    /// remote holds this attempt's translation); `None` leaves the stored ones.
    pub(crate) references: Option<Vec<Reference>>,
}

/// How an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Created or updated on the remote.
    Pushed,
    /// The digest matched: nothing sent.
    Skipped,
    /// Deleted on the remote, or closed without a push.
    Deleted,
    /// Not ready; retried shortly without counting a failure.
    Waiting,
    /// A transient failure (timeout, connection, 408, 429, 5xx); retried later.
    Retry,
    /// A permanent failure (other 4xx, a bad answer, a translation error); retried later in
    /// case new data fixes it.
    Failed,
    /// Failed for the last time.
    Dead,
    /// The remote lost the record (an update answered 404) and the syncer's policy is
    /// [`WhenMissing::Recreate`](crate::WhenMissing): its id is forgotten and the record is
    /// created again at the next attempt.
    Recreating,
}

impl Outcome {
    /// The name in the attempt log.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pushed | Outcome::Deleted => "ok",
            Outcome::Skipped => "skipped",
            Outcome::Waiting => "waiting",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
            Outcome::Recreating => "recreate",
        }
    }
}

/// How one attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// What the attempt came to.
    pub outcome: Outcome,
    /// Whether this worker still held the group's lease. When it did not, another worker had
    /// taken the group over and nothing was written to the group.
    pub lease_held: bool,
}

/// Counts of one or more passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Groups claimed.
    pub claimed: usize,
    /// Created or updated on the remote.
    pub pushed: usize,
    /// Skipped by digest.
    pub skipped: usize,
    /// Deleted on the remote or closed.
    pub deleted: usize,
    /// Not ready, waiting.
    pub waiting: usize,
    /// Failed (transiently or not), to be retried.
    pub failed: usize,
    /// Failed for the last time.
    pub dead: usize,
    /// Lost by the remote, to be created again.
    pub recreating: usize,
    /// Completions that found the lease taken over (nothing written).
    pub lease_lost: usize,
    /// Where the passes' time went, for profiling.
    #[doc(hidden)]
    pub phases: PassPhases,
}

impl PassReport {
    pub(crate) fn add(&mut self, recorded: Recorded) {
        if !recorded.lease_held {
            self.lease_lost += 1;
        }
        *match recorded.outcome {
            Outcome::Pushed => &mut self.pushed,
            Outcome::Skipped => &mut self.skipped,
            Outcome::Deleted => &mut self.deleted,
            Outcome::Waiting => &mut self.waiting,
            Outcome::Retry | Outcome::Failed => &mut self.failed,
            Outcome::Dead => &mut self.dead,
            Outcome::Recreating => &mut self.recreating,
        } += 1;
    }
}

/// Wall time of each phase of a pass.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassPhases {
    /// Claiming the groups, translating them in batches and recording their creates.
    pub claim: Duration,
    /// Pushing them (and translating those not translated in batch).
    pub push: Duration,
    /// Recording the attempts.
    pub record: Duration,
}
