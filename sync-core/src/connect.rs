//! Opening a connection pool fit for an application and a worker sharing one database.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::{Error, Result};

/// Connects to `url` with settings that let the application and a worker share the database.
///
/// On SQLite, SeaORM's pool defaults to one connection, on which an application and an
/// in-process worker deadlock; this opens `pool_size` connections in WAL mode with a busy timeout,
/// and creates the file if missing. On PostgreSQL and MySQL it sets the pool size and a connect
/// timeout. SQL statement logging is off (the worker logs what it does).
///
/// Fails with [`Error::Config`] when the URL names a database whose driver this build lacks
/// (see the crate's `sqlx-sqlite`, `sqlx-postgres` and `sqlx-mysql` features).
pub async fn connect(url: &str, pool_size: u32) -> Result<DatabaseConnection> {
    check_driver(url)?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool_size.max(1))
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    #[cfg(feature = "sqlx-sqlite")]
    if url.starts_with("sqlite:") {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
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

/// Fails when the URL's database has no driver in this build, naming the feature to enable.
fn check_driver(url: &str) -> Result<()> {
    let scheme = url.split(':').next().unwrap_or_default();
    let (enabled, feature) = match scheme {
        "sqlite" => (cfg!(feature = "sqlx-sqlite"), "sqlx-sqlite"),
        "postgres" | "postgresql" => (cfg!(feature = "sqlx-postgres"), "sqlx-postgres"),
        "mysql" | "mariadb" => (cfg!(feature = "sqlx-mysql"), "sqlx-mysql"),
        _ => return Ok(()),
    };
    if enabled {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the database at `{}` needs the `{feature}` feature, which this build lacks: enable it on \
         `sync-core` and `sync-worker` (e.g. `sync-worker = {{ version = \"0.1\", features = \
         [\"{feature}\"] }}`)",
        redact_url(url)
    )))
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

/// Whether the database aborted a statement or transaction in favour of a concurrent one: a
/// deadlock victim (PostgreSQL `40P01`, MySQL/MariaDB 1213), a serialization failure (`40001`),
/// a lock wait timeout (MySQL/MariaDB 1205, PostgreSQL `55P03`), or SQLite's busy and locked
/// answers. Repeating the whole transaction is the cure.
pub fn is_transient_conflict(error: &DbErr) -> bool {
    let (DbErr::Exec(runtime) | DbErr::Query(runtime) | DbErr::Conn(runtime)) = error else {
        return false;
    };
    sqlx_conflict(runtime)
}

#[cfg(not(any(
    feature = "sqlx-sqlite",
    feature = "sqlx-postgres",
    feature = "sqlx-mysql"
)))]
fn sqlx_conflict(_: &sea_orm::RuntimeErr) -> bool {
    false
}

#[cfg(any(
    feature = "sqlx-sqlite",
    feature = "sqlx-postgres",
    feature = "sqlx-mysql"
))]
fn sqlx_conflict(runtime: &sea_orm::RuntimeErr) -> bool {
    let sea_orm::RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = sqlx.as_ref() else {
        return false;
    };
    let code = db.code();
    matches!(
        code.as_deref(),
        Some("40P01" | "40001" | "55P03" | "5" | "6" | "517" | "261" | "262")
    ) || {
        let message = db.message().to_lowercase();
        message.contains("deadlock") || message.contains("lock wait timeout")
    }
}

/// Runs `work` in a write transaction ([`begin_write`]) and commits it; when the database aborts
/// it as a deadlock victim or for a serialization failure ([`is_transient_conflict`]), runs it
/// again from the start, up to `attempts` times in all, after a short random pause. Any other
/// error, or the last attempt's, is returned; nothing of a failed attempt is kept.
///
/// The framework adds no deadlock to an application's transactions (its hooks only append to
/// the touch log), but two of the application's own transactions can still deadlock when they
/// lock the same rows in different orders: this helper is for those.
///
/// ```no_run
/// # async fn demo(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
/// use sea_orm::ConnectionTrait;
/// sync_core::write_transaction(db, 3, |txn| {
///     Box::pin(async move {
///         txn.execute_unprepared("UPDATE accounts SET balance = balance - 1 WHERE id = 1").await?;
///         txn.execute_unprepared("UPDATE accounts SET balance = balance + 1 WHERE id = 2").await?;
///         Ok(())
///     })
/// })
/// .await
/// # }
/// ```
pub async fn write_transaction<T, F>(
    db: &DatabaseConnection,
    attempts: u32,
    work: F,
) -> std::result::Result<T, DbErr>
where
    F: for<'t> Fn(&'t DatabaseTransaction) -> crate::BoxFuture<'t, std::result::Result<T, DbErr>>,
{
    let attempts = attempts.max(1);
    let mut attempt = 1;
    loop {
        let txn = begin_write(db).await.map_err(DbErr::from)?;
        let result = match work(&txn).await {
            Ok(value) => txn.commit().await.map(|()| value),
            Err(error) => {
                let _ = txn.rollback().await;
                Err(error)
            }
        };
        match result {
            Err(error) if attempt < attempts && is_transient_conflict(&error) => {
                tracing::debug!(%error, attempt, "transaction aborted by a concurrent one; running it again");
                let pause = rand::random_range(5..=20_u64) << attempt.min(6);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
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
