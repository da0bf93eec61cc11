//! The error type of sync-worker.

/// What can go wrong running a worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From sync-core: database, configuration, syncers.
    #[error(transparent)]
    Sync(#[from] sync_core::Error),
    /// A setting is missing or invalid; the message says which and how to fix it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The runtime failed.
    #[error("worker runtime error: {0}")]
    Runtime(String),
    /// A command could not do all it was asked (groups left failed, a group not found); the
    /// message says what is left and how to look into it.
    #[error("{0}")]
    Incomplete(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
