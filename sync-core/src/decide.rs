//! What a failed attempt leads to: wait, retry later, give up, or create the record again. A
//! pure function of the error, the group and the settings, so that every rule is tested
//! without a database.

use std::time::Duration;

use crate::engine::Operation;
use crate::retry::RetryPolicy;
use crate::{ClaimedGroup, Disposition, EngineConfig, Error, WhenMissing};

/// The decision about one failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A prerequisite is missing: try again after `delay`, without counting a failure.
    Wait {
        deferrals: i32,
        delay: Duration,
        message: String,
    },
    /// Count a failure: try again after `delay`, or never (`dead`).
    Fail {
        attempts: i32,
        delay: Duration,
        dead: bool,
        message: String,
        status: Option<u16>,
        /// The remote refused a create outright: forget the pending create.
        forget_create: bool,
        /// The remote asked the whole syncer to slow down (429): pause it this long.
        pause: Option<Duration>,
    },
    /// The remote lost the record: forget its id and create it again (or never, `dead`).
    Recreate {
        attempts: i32,
        dead: bool,
        message: String,
    },
}

/// Decides what the failed attempt `operation` of `group`, which ended in `error`, leads to.
pub(crate) fn decide(
    error: &Error,
    operation: Operation,
    group: &ClaimedGroup,
    when_missing: WhenMissing,
    config: &EngineConfig,
    backoff: &dyn RetryPolicy,
) -> Decision {
    let mut message = error.to_string();
    let status = error.status();
    let attempts = group.attempts.saturating_add(1);
    let dead = attempts as u32 >= config.max_attempts;
    let (retry_after, pause) = match error.disposition() {
        Disposition::Wait => {
            let deferrals = group.deferrals.saturating_add(1);
            if deferrals as u32 <= config.max_deferrals {
                return Decision::Wait {
                    deferrals,
                    delay: config.not_ready_delay,
                    message,
                };
            }
            message = format!(
                "gave up waiting after {} tries: {message}",
                config.max_deferrals
            );
            (None, None)
        }
        Disposition::Retry { after } => {
            // The limit belongs to the remote account: the whole syncer slows down, in every
            // worker, not only this group.
            let pause = (status == Some(429)).then(|| after.unwrap_or(Duration::from_secs(1)));
            (after, pause)
        }
        Disposition::Fail => (None, None),
    };
    if operation == Operation::Update && status == Some(404) {
        match when_missing {
            WhenMissing::Recreate => {
                return Decision::Recreate {
                    attempts,
                    dead,
                    message: format!(
                        "{message}; the remote lost the record: its id is forgotten and the \
                         record created again"
                    ),
                };
            }
            _ => {
                message = format!(
                    "{message}; to create it again, forget its remote id (the worker's \
                     `forget --group {}` or the dashboard), or have the syncer's `when_missing` \
                     return `WhenMissing::Recreate`",
                    group.id
                );
            }
        }
    }
    let mut delay = backoff.delay(attempts as u32);
    if let Some(after) = retry_after {
        delay = delay.max(after);
    }
    // A definite refusal created nothing; anything else (no answer, 5xx, a conflict with a
    // request still running, a rate limit) may have, and the create must be repeated as is.
    let forget_create = operation == Operation::Create
        && status.is_some_and(|s| (400..500).contains(&s) && ![408, 409, 425, 429].contains(&s));
    Decision::Fail {
        attempts,
        delay,
        dead,
        message,
        status,
        forget_create,
        pause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RootKey;

    #[derive(Debug)]
    struct Doubling;

    impl RetryPolicy for Doubling {
        fn delay(&self, attempts: u32) -> Duration {
            Duration::from_secs(1 << (attempts - 1))
        }
    }

    fn group(attempts: i32, deferrals: i32) -> ClaimedGroup {
        ClaimedGroup {
            id: 7,
            syncer: "crm.contact".into(),
            root_key: RootKey::from(1),
            version: 3,
            remote_id: Some("r-1".into()),
            pending_create: None,
            last_digest: None,
            root_deleted: false,
            attempts,
            deferrals,
            lease_owner: "w".into(),
            references_digest: None,
            remote_id_forgotten: false,
        }
    }

    fn config() -> EngineConfig {
        EngineConfig {
            max_attempts: 3,
            max_deferrals: 2,
            not_ready_delay: Duration::from_millis(500),
            ..EngineConfig::default()
        }
    }

    fn status(code: u16) -> Error {
        Error::Permanent {
            message: format!("answered {code}"),
            status: Some(code),
        }
    }

    fn run(error: &Error, op: Operation, g: &ClaimedGroup, missing: WhenMissing) -> Decision {
        decide(error, op, g, missing, &config(), &Doubling)
    }

    #[test]
    fn failures_back_off_then_die() {
        let e = Error::retryable("timed out");
        let first = run(&e, Operation::Update, &group(0, 0), WhenMissing::Fail);
        assert!(
            matches!(first, Decision::Fail { attempts: 1, dead: false, delay, .. } if delay == Duration::from_secs(1))
        );
        let third = run(&e, Operation::Update, &group(2, 0), WhenMissing::Fail);
        assert!(matches!(
            third,
            Decision::Fail {
                attempts: 3,
                dead: true,
                ..
            }
        ));
    }

    #[test]
    fn retry_after_is_a_floor_and_429_pauses_the_syncer() {
        let e = Error::Retryable {
            message: "slow down".into(),
            status: Some(429),
            retry_after: Some(Duration::from_secs(30)),
        };
        let d = run(&e, Operation::Update, &group(0, 0), WhenMissing::Fail);
        assert!(matches!(d, Decision::Fail { delay, pause: Some(p), .. }
            if delay == Duration::from_secs(30) && p == Duration::from_secs(30)));
        let e = Error::Retryable {
            message: "busy".into(),
            status: Some(503),
            retry_after: None,
        };
        let d = run(&e, Operation::Update, &group(0, 0), WhenMissing::Fail);
        assert!(matches!(d, Decision::Fail { pause: None, .. }));
    }

    #[test]
    fn not_ready_waits_then_counts_as_a_failure() {
        let e = Error::not_ready("`erp.customer` group `1` has no remote id yet");
        let d = run(&e, Operation::None, &group(0, 1), WhenMissing::Fail);
        assert_eq!(
            d,
            Decision::Wait {
                deferrals: 2,
                delay: Duration::from_millis(500),
                message: e.to_string()
            }
        );
        let d = run(&e, Operation::None, &group(0, 2), WhenMissing::Fail);
        assert!(
            matches!(d, Decision::Fail { ref message, .. } if message.starts_with("gave up waiting after 2 tries"))
        );
    }

    #[test]
    fn a_404_to_an_update_follows_the_syncer_s_policy() {
        let lost = run(
            &status(404),
            Operation::Update,
            &group(0, 0),
            WhenMissing::Recreate,
        );
        assert!(matches!(
            lost,
            Decision::Recreate {
                attempts: 1,
                dead: false,
                ..
            }
        ));
        let fail = run(
            &status(404),
            Operation::Update,
            &group(0, 0),
            WhenMissing::Fail,
        );
        assert!(
            matches!(fail, Decision::Fail { ref message, status: Some(404), .. }
            if message.contains("forget --group 7"))
        );
        // Only updates: a 404 to a create is the remote refusing it.
        let create = run(
            &status(404),
            Operation::Create,
            &group(0, 0),
            WhenMissing::Recreate,
        );
        assert!(matches!(create, Decision::Fail { .. }));
    }

    #[test]
    fn only_a_definite_refusal_forgets_a_pending_create() {
        for (code, forget) in [
            (422, true),
            (400, true),
            (409, false),
            (429, false),
            (500, false),
            (408, false),
        ] {
            let e = if code >= 500 || code == 429 || code == 408 {
                Error::Retryable {
                    message: String::new(),
                    status: Some(code),
                    retry_after: None,
                }
            } else {
                status(code)
            };
            let d = run(&e, Operation::Create, &group(0, 0), WhenMissing::Fail);
            assert!(
                matches!(d, Decision::Fail { forget_create, .. } if forget_create == forget),
                "{code}: {d:?}"
            );
        }
        let d = run(
            &Error::retryable("connection reset"),
            Operation::Create,
            &group(0, 0),
            WhenMissing::Fail,
        );
        assert!(matches!(
            d,
            Decision::Fail {
                forget_create: false,
                ..
            }
        ));
        let d = run(
            &status(422),
            Operation::Update,
            &group(0, 0),
            WhenMissing::Fail,
        );
        assert!(matches!(
            d,
            Decision::Fail {
                forget_create: false,
                ..
            }
        ));
    }
}
