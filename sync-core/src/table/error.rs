//! The sink database's errors, classified like the rest of the framework's.

use sea_orm::DbErr;

use super::TableSink;
use crate::Error;

/// What a database error means for the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The database is down, unreachable or busy: try again.
    Retry,
    /// The table or a column is not what the mapping says.
    Config,
    /// This data: the same push fails again.
    Permanent,
}

/// The error for `error`, met while `doing` (e.g. "upserting key `7`"), naming the table.
/// A configuration error also forgets the catalog read, so that a fixed table is read again.
pub(super) fn classify(sink: &TableSink, error: &DbErr, doing: &str) -> Error {
    let message = format!("table sink `{}`: {doing} failed: {error}", sink.inner.shown);
    match class_of(error) {
        Class::Retry => Error::retryable(message),
        Class::Config => {
            sink.forget_catalog();
            Error::Config(message)
        }
        Class::Permanent => Error::permanent(message),
    }
}

fn class_of(error: &DbErr) -> Class {
    if crate::is_transient_conflict(error) {
        return Class::Retry;
    }
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Class::Retry,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime_class(runtime),
        _ => Class::Permanent,
    }
}

#[cfg(not(any(
    feature = "sqlx-sqlite",
    feature = "sqlx-postgres",
    feature = "sqlx-mysql"
)))]
fn runtime_class(_: &sea_orm::RuntimeErr) -> Class {
    Class::Permanent
}

#[cfg(any(
    feature = "sqlx-sqlite",
    feature = "sqlx-postgres",
    feature = "sqlx-mysql"
))]
fn runtime_class(runtime: &sea_orm::RuntimeErr) -> Class {
    use sea_orm::sqlx::Error as Sqlx;
    let sea_orm::RuntimeErr::SqlxError(sqlx) = runtime else {
        return Class::Permanent;
    };
    match sqlx.as_ref() {
        Sqlx::Database(db) => {
            database_class(db.code().as_deref(), &db.message().to_ascii_lowercase())
        }
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => Class::Retry,
        Sqlx::Configuration(_) => Class::Config,
        _ => Class::Permanent,
    }
}

/// By SQLSTATE (PostgreSQL, MySQL/MariaDB) or, for SQLite, by message.
#[cfg_attr(
    not(any(
        feature = "sqlx-sqlite",
        feature = "sqlx-postgres",
        feature = "sqlx-mysql"
    )),
    allow(dead_code)
)]
fn database_class(code: Option<&str>, message: &str) -> Class {
    const SQLITE_CONFIG: [&str; 4] = [
        "no such table",
        "no such column",
        "has no column named",
        "does not match any primary key or unique constraint",
    ];
    if SQLITE_CONFIG.iter().any(|m| message.contains(m)) {
        return Class::Config;
    }
    match code {
        // Connection exceptions, insufficient resources, operator intervention (a shutdown).
        Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Class::Retry
        }
        // Undefined tables and columns, missing privileges, types that do not match the
        // column's, no unique index for `ON CONFLICT`; an unknown schema or database.
        Some(c) if c.starts_with("42") || c == "3F000" || c == "3D000" => Class::Config,
        _ => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_classified() {
        let class = |code: &str, message: &str| database_class(Some(code), message);
        // PostgreSQL
        assert_eq!(
            class("42P01", "relation \"x\" does not exist"),
            Class::Config
        );
        assert_eq!(class("42703", "column \"y\" does not exist"), Class::Config);
        assert_eq!(class("42P10", "no unique constraint"), Class::Config);
        assert_eq!(class("23502", "null value in column"), Class::Permanent);
        assert_eq!(class("22003", "integer out of range"), Class::Permanent);
        assert_eq!(class("57P01", "terminating connection"), Class::Retry);
        assert_eq!(class("08006", "connection failure"), Class::Retry);
        // MySQL/MariaDB
        assert_eq!(class("42S02", "table doesn't exist"), Class::Config);
        assert_eq!(class("42S22", "unknown column"), Class::Config);
        assert_eq!(class("22001", "data too long"), Class::Permanent);
        assert_eq!(class("23000", "cannot be null"), Class::Permanent);
        // SQLite
        assert_eq!(class("1", "no such table: report"), Class::Config);
        assert_eq!(
            class("1", "table report has no column named x"),
            Class::Config
        );
        assert_eq!(
            class("1299", "not null constraint failed"),
            Class::Permanent
        );
        assert_eq!(database_class(None, "something else"), Class::Permanent);
    }
}
