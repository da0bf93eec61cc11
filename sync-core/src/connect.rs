//! Opening a connection pool fit for an application and a worker sharing one database.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::{Error, Result};

/// Connects to `url` with settings that let the application and a worker share the database.
///
/// On SQLite, SeaORM's pool defaults to one connection, on which an application and an
/// in-process worker deadlock; this opens `pool_size` connections in WAL mode with a busy timeout,
/// and creates the file if missing. On PostgreSQL and MySQL it sets the pool size and a connect
/// timeout. SQL statement logging is off (the worker logs what it does).
pub async fn connect(url: &str, pool_size: u32) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool_size.max(1))
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
        });
    }
    Database::connect(options).await.map_err(|e| {
        Error::Config(format!(
            "cannot connect to the database at `{}`: {e}",
            redact_url(url)
        ))
    })
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Starts a transaction for a write, the way a write that runs the hooks needs on SQLite.
///
/// The hooks read a row before they write its group, and SQLite fails a plain (deferred)
/// transaction at its first write, without waiting, if another connection — the worker —
/// committed after the transaction's first read ("database is locked"). On SQLite this starts
/// `BEGIN IMMEDIATE`, which takes the write lock at once and waits for it up to the busy timeout.
/// On PostgreSQL and MySQL it is a plain `BEGIN`.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
    .map_err(Error::db_while("starting a write transaction"))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
