//! The persisted state of a sync group.

use std::fmt;
use std::str::FromStr;

/// Where a group stands. Stored as text in `sync_groups.state`.
///
/// A group is *dirty* when `version > synced_version`; the state says what the worker does about
/// it. Only `pending` and `failed` groups are claimed, and only once `next_attempt_at` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    /// Dirty and due. Entered by a touch, a registration, a revival, or a completion that found a
    /// newer version; left when a worker completes (→ `synced`) or fails (→ `failed`/`dead`).
    Pending,
    /// Clean: the remote holds the translation of `synced_version`. Entered on completion; left
    /// by a touch (→ `pending`).
    Synced,
    /// The last attempt failed; retried at `next_attempt_at`. Entered by a failed attempt; left by
    /// a successful one (→ `synced`/`pending`) or by reaching `max_attempts` (→ `dead`). A touch
    /// keeps the backoff schedule.
    Failed,
    /// Gave up after `max_attempts`; `last_error` says why. Never claimed. Left by a touch (new
    /// data may fix it) or an operator's retry (→ `pending`, attempts reset).
    Dead,
    /// The root was deleted and the remote delete is done (or was never needed). Closed: a touch
    /// does not reopen it; registering the root again does.
    Deleted,
}

impl GroupState {
    /// Every state, in display order.
    pub const ALL: [GroupState; 5] = [
        GroupState::Pending,
        GroupState::Synced,
        GroupState::Failed,
        GroupState::Dead,
        GroupState::Deleted,
    ];

    /// The text stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            GroupState::Pending => "pending",
            GroupState::Synced => "synced",
            GroupState::Failed => "failed",
            GroupState::Dead => "dead",
            GroupState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text in `sync_groups.state` is not one of the known states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sync group state `{0}` (expected pending, synced, failed, dead or deleted)")]
pub struct UnknownState(pub String);

impl FromStr for GroupState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for state in GroupState::ALL {
            assert_eq!(state.to_string().parse::<GroupState>(), Ok(state));
        }
        assert_eq!(
            "dirty".parse::<GroupState>(),
            Err(UnknownState("dirty".into()))
        );
    }
}
