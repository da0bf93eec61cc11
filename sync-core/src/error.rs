//! The one error type of sync-core.

use std::time::Duration;

use sea_orm::DbErr;

/// Everything that can go wrong in sync-core, and what a [`Syncer`](crate::Syncer) returns to
/// tell the worker what to do next.
///
/// The worker reads [`Error::disposition`]: [`Retryable`](Error::Retryable) errors are retried with
/// backoff (or after the remote's `Retry-After`), [`NotReady`](Error::NotReady) waits for a
/// prerequisite without counting as a failure, and everything else fails the group permanently
/// (it is retried with backoff until `max_attempts`, then `dead`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or could not run a statement.
    #[error("database error: {0}")]
    Database(#[from] DbErr),

    /// The database refused a statement made for a named group or table.
    #[error("database error while {context}: {source}")]
    DatabaseWhile {
        /// What was being done, naming the syncer, table and key concerned.
        context: String,
        /// The database's error.
        source: DbErr,
    },

    /// A setting is missing or invalid. The message says which one and how to fix it.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A key could not be turned into the text stored in `sync_groups.root_key`.
    #[error("unsupported key for table `{table}`: {reason}")]
    Key {
        /// The table whose key it is.
        table: String,
        /// Why the key cannot be used.
        reason: String,
    },

    /// A transient failure: timeouts, connection errors, 5xx, 429. Retried with backoff.
    #[error("{message}")]
    Retryable {
        /// What happened, for people.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
        /// The earliest time to try again, when the remote said (`Retry-After`).
        retry_after: Option<Duration>,
    },

    /// A failure that repeating the same push will not fix: other 4xx, a translation error, a
    /// malformed answer. The group is retried with backoff (new data may fix it) until
    /// `max_attempts`, then `dead`.
    #[error("{message}")]
    Permanent {
        /// What happened, for people.
        message: String,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },

    /// The translation needs something that does not exist yet, typically another group's
    /// remote id. The group is retried shortly without counting as a failure.
    #[error("not ready: {prerequisite}")]
    NotReady {
        /// What is missing, e.g. "`erp.customer` group `42` has no remote id yet".
        prerequisite: String,
    },
}

/// What the worker does with a group whose push returned an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// Retry with backoff; not before the given delay when the remote asked for one.
    Retry {
        /// The remote's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// Try again shortly; this does not count as a failed attempt.
    Wait,
    /// The error will repeat with the same data: count it and back off, `dead` at the limit.
    Fail,
}

impl Error {
    /// A transient error (retried with backoff).
    pub fn retryable(message: impl Into<String>) -> Self {
        Error::Retryable {
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    /// A permanent error (the same data will fail again).
    pub fn permanent(message: impl Into<String>) -> Self {
        Error::Permanent {
            message: message.into(),
            status: None,
        }
    }

    /// A missing prerequisite (see [`Error::NotReady`]).
    pub fn not_ready(prerequisite: impl Into<String>) -> Self {
        Error::NotReady {
            prerequisite: prerequisite.into(),
        }
    }

    /// What the worker should do about this error.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Retryable { retry_after, .. } => Disposition::Retry {
                after: *retry_after,
            },
            // The database being unreachable is transient; the group is retried.
            Error::Database(_) | Error::DatabaseWhile { .. } => Disposition::Retry { after: None },
            Error::NotReady { .. } => Disposition::Wait,
            Error::Config(_) | Error::Key { .. } | Error::Permanent { .. } => Disposition::Fail,
        }
    }

    /// The HTTP status of the remote's answer, when the error came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Retryable { status, .. } | Error::Permanent { status, .. } => *status,
            _ => None,
        }
    }

    pub(crate) fn db_while(context: impl Into<String>) -> impl FnOnce(DbErr) -> Error {
        let context = context.into();
        move |source| Error::DatabaseWhile { context, source }
    }
}

impl Error {
    /// The same error again, for each item of a batch that it failed (`Error` is not `Clone`:
    /// a database error is copied as a retryable error with its text).
    pub(crate) fn copy_for_item(&self) -> Error {
        match self {
            Error::Retryable {
                message,
                status,
                retry_after,
            } => Error::Retryable {
                message: message.clone(),
                status: *status,
                retry_after: *retry_after,
            },
            Error::Permanent { message, status } => Error::Permanent {
                message: message.clone(),
                status: *status,
            },
            Error::Config(message) => Error::Config(message.clone()),
            Error::NotReady { prerequisite } => Error::not_ready(prerequisite.clone()),
            Error::Key { table, reason } => Error::Key {
                table: table.clone(),
                reason: reason.clone(),
            },
            other => Error::retryable(other.to_string()),
        }
    }
}

impl From<Error> for DbErr {
    /// Hooks must return [`DbErr`]; the message keeps the syncer, table and key.
    fn from(err: Error) -> Self {
        match err {
            Error::Database(e) => e,
            other => DbErr::Custom(format!("sync: {other}")),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
