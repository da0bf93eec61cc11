//! Shared helpers for the end-to-end tests: a fresh database per test on every configured
//! backend, and models covering every form of `#[derive(Syncable)]`.
//!
//! SQLite always runs. PostgreSQL and MariaDB/MySQL run when `SYNC_TEST_POSTGRES_URL` and
//! `SYNC_TEST_MYSQL_URL` are set; then an unreachable server fails the test, it is not skipped.

pub mod cluster;
pub mod fixtures;
pub mod models;
pub mod proxy;
pub mod sources;
pub mod stepping;
pub mod syncers;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, Schema, Statement,
};
use sea_orm_migration::MigratorTrait;
use sync_core::entity::sync_group;

/// A database backend the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary file, WAL mode.
    Sqlite,
    /// A schema of its own in `SYNC_TEST_POSTGRES_URL`'s database.
    Postgres,
    /// A database of its own on `SYNC_TEST_MYSQL_URL`'s server.
    MySql,
}

/// The backends to run on: SQLite, plus those whose URL variable is set.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite];
    if std::env::var("SYNC_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        all.push(Backend::Postgres);
    }
    if std::env::var("SYNC_TEST_MYSQL_URL").is_ok_and(|u| !u.is_empty()) {
        all.push(Backend::MySql);
    }
    all
}

/// Runs `test` once on a fresh database of every configured backend.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("--- on {backend:?}");
        let db = TestDb::new(backend).await;
        let cleanup = db.cleanup_handle();
        test(db).await;
        cleanup.run().await;
    }
}

/// A fresh database with the framework's migrations and the test models' tables.
#[derive(Debug)]
pub struct TestDb {
    /// The connection pool (5 connections).
    pub db: DatabaseConnection,
    /// Which backend.
    pub backend: Backend,
    /// The URL this database can be reached at (for worker processes).
    pub url: String,
    /// The test's unique name: its PostgreSQL schema, its MariaDB database.
    name: String,
    cleanup: Cleanup,
    // Shared with the cleanup handle: a test that uses only some fields of its `TestDb` moves
    // just those into its future, and the directory must outlive the test all the same.
    dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

#[derive(Debug, Clone)]
enum Cleanup {
    None,
    DropSchema { admin_url: String, schema: String },
    DropDatabase { admin_url: String, database: String },
    DropPgDatabase { admin_url: String, database: String },
}

/// A second database beside a test's own (see [`TestDb::second_database`]).
#[derive(Debug)]
pub struct SecondDb {
    /// The connection pool (5 connections).
    pub db: DatabaseConnection,
    /// Which backend.
    pub backend: Backend,
    /// The URL it can be reached at.
    pub url: String,
    cleanup: CleanupHandle,
}

impl SecondDb {
    /// Closes the pool and drops the database (failures are ignored).
    pub async fn remove(self) {
        let _ = self.db.close().await;
        self.cleanup.run().await;
    }
}

/// `url` with its path naming `database` instead (the query kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// Drops the test's schema or database once the test passed.
#[derive(Debug)]
pub struct CleanupHandle {
    cleanup: Cleanup,
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl CleanupHandle {
    /// Drops it. Failures are ignored: a leftover schema harms nothing.
    pub async fn run(self) {
        let (admin_url, sql) = match self.cleanup {
            Cleanup::None => return,
            Cleanup::DropSchema { admin_url, schema } => (
                admin_url,
                format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
            ),
            Cleanup::DropDatabase {
                admin_url,
                database,
            } => (admin_url, format!("DROP DATABASE IF EXISTS `{database}`")),
            Cleanup::DropPgDatabase {
                admin_url,
                database,
            } => (
                admin_url,
                format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
            ),
        };
        if let Ok(admin) = Database::connect(admin_url).await {
            let _ = admin.execute_unprepared(&sql).await;
            let _ = admin.close().await;
        }
    }
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("sync_t{}_{n}_{nanos}", std::process::id())
}

impl TestDb {
    /// A fresh, migrated database on `backend`. Panics (fails the test) when the server is
    /// unreachable.
    pub async fn new(backend: Backend) -> TestDb {
        let name = unique_name();
        let (url, cleanup, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                (url, Cleanup::None, Some(dir))
            }
            Backend::Postgres => {
                let admin_url =
                    std::env::var("SYNC_TEST_POSTGRES_URL").expect("checked by backends()");
                let admin = connect_admin(&admin_url, "SYNC_TEST_POSTGRES_URL").await;
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA \"{name}\""))
                    .await
                    .expect("create a test schema");
                let _ = admin.close().await;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                // sqlx passes `options` to the server: every pooled connection gets the schema.
                // The application name tells this test's connections apart from other tests'
                // in `pg_stat_activity` (a test that kills a connection kills only its own).
                let url = format!(
                    "{admin_url}{sep}options=-csearch_path%3D{name}&application_name={name}"
                );
                (
                    url,
                    Cleanup::DropSchema {
                        admin_url,
                        schema: name.clone(),
                    },
                    None,
                )
            }
            Backend::MySql => {
                let admin_url =
                    std::env::var("SYNC_TEST_MYSQL_URL").expect("checked by backends()");
                let admin = connect_admin(&admin_url, "SYNC_TEST_MYSQL_URL").await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
                    .await
                    .expect("create a test database");
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                (
                    url,
                    Cleanup::DropDatabase {
                        admin_url,
                        database: name.clone(),
                    },
                    None,
                )
            }
        };
        let db = sync_core::connect(&url, 5)
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        sync_migrations::SyncMigrator::up(&db, None)
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: migrations failed: {e}"));
        create_model_tables(&db).await;
        TestDb {
            db,
            backend,
            url,
            name,
            cleanup,
            dir: dir.map(std::sync::Arc::new),
        }
    }

    /// A second, empty database on the same server (no migrations, no tables), for remotes that
    /// are databases: on PostgreSQL and MariaDB a database of its own named after this test,
    /// on SQLite a second file. [`SecondDb::remove`] drops it.
    pub async fn second_database(&self) -> SecondDb {
        let name = format!("{}_second", self.name);
        let (url, cleanup, dir) = match self.backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("second.db").display()
                );
                (url, Cleanup::None, Some(dir))
            }
            server => {
                let (var, quoted) = match server {
                    Backend::Postgres => ("SYNC_TEST_POSTGRES_URL", format!("\"{name}\"")),
                    _ => ("SYNC_TEST_MYSQL_URL", format!("`{name}`")),
                };
                let admin_url = std::env::var(var).expect("checked by backends()");
                let admin = connect_admin(&admin_url, var).await;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {quoted}"))
                    .await
                    .expect("create a second database");
                let _ = admin.close().await;
                let url = with_database(&admin_url, &name);
                let cleanup = match server {
                    Backend::Postgres => Cleanup::DropPgDatabase {
                        admin_url,
                        database: name,
                    },
                    _ => Cleanup::DropDatabase {
                        admin_url,
                        database: name,
                    },
                };
                (url, cleanup, None)
            }
        };
        let db = sync_core::connect(&url, 5)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.backend));
        SecondDb {
            db,
            backend: self.backend,
            url,
            cleanup: CleanupHandle {
                cleanup,
                _dir: dir.map(std::sync::Arc::new),
            },
        }
    }

    /// A handle that drops this database's schema later.
    pub fn cleanup_handle(&self) -> CleanupHandle {
        CleanupHandle {
            cleanup: self.cleanup.clone(),
            _dir: self.dir.clone(),
        }
    }

    /// Every row of `sync_groups`, ordered by syncer and root key, after applying the logged
    /// touches.
    pub async fn groups(&self) -> Vec<sync_group::Model> {
        apply_all_touches(&self.db).await;
        sync_group::Entity::find()
            .order_by_asc(sync_group::Column::Syncer)
            .order_by_asc(sync_group::Column::RootKey)
            .all(&self.db)
            .await
            .expect("read sync_groups")
    }

    /// The group (`syncer`, `key`), if it exists.
    pub async fn group(&self, syncer: &str, key: impl ToString) -> Option<sync_group::Model> {
        apply_all_touches(&self.db).await;
        sync_group::Entity::find()
            .filter(sync_group::Column::Syncer.eq(syncer))
            .filter(sync_group::Column::RootKey.eq(key.to_string()))
            .one(&self.db)
            .await
            .expect("read sync_groups")
    }

    /// PostgreSQL: `n` more groups of `syncer`, synced, with root keys `{prefix}1` to
    /// `{prefix}n`, in one statement: the bulk that tests counting rows read seed beside their
    /// own groups. No statistics are gathered (`ANALYZE` if the test needs them).
    pub async fn seed_synced_groups(&self, syncer: &str, prefix: &str, n: u32) {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO sync_groups (syncer, root_key, version, synced_version, state, \
                 root_deleted, attempts, deferrals, next_attempt_at, touched_at, created_at) \
                 SELECT $1, $2 || g, 1, 1, 'synced', false, 0, 0, 0, 0, 0 \
                 FROM generate_series(1, $3) AS g",
                [syncer.into(), prefix.into(), i64::from(n).into()],
            ))
            .await
            .expect("seed synced groups");
    }

    /// PostgreSQL: a pool of `size` connections to this database, named apart from the
    /// test's own (for [`TestDb::rows_read`]).
    pub async fn pool_apart(&self, size: u32) -> DatabaseConnection {
        let url = self
            .url
            .replace("application_name=", "application_name=apart-");
        sync_core::connect(&url, size).await.expect("connect")
    }

    /// PostgreSQL: the rows of `table` read so far (sequential scans and index fetches) in this
    /// test's schema, once every connection of `pool` (from [`TestDb::pool_apart`]) has closed
    /// and reported its counts.
    pub async fn rows_read(&self, table: &str, pool: DatabaseConnection) -> i64 {
        pool.close().await.expect("close the pool");
        let count = |sql: String| async move {
            self.db
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect("read the statistics")
                .expect("a row")
                .try_get::<i64>("", "n")
                .expect("n")
        };
        // A backend reports its counts when it exits: wait for the closed ones to be gone.
        let name = format!("apart-{}", self.name);
        for _ in 0..100 {
            let open = count(format!(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = '{name}'"
            ))
            .await;
            if open == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        count(format!(
            "SELECT COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) AS n \
             FROM pg_stat_user_tables WHERE relname = '{table}' AND schemaname = current_schema()"
        ))
        .await
    }

    /// `(syncer, root_key, version, state)` of every group: a compact snapshot to compare.
    pub async fn snapshot(&self) -> Vec<(String, String, i64, String)> {
        self.groups()
            .await
            .into_iter()
            .map(|g| (g.syncer, g.root_key, g.version, g.state))
            .collect()
    }
}

/// Applies the logged touches until none is left: when a worker is applying some at the same
/// moment (they are locked, and skipped, until it commits), waits for it.
pub async fn apply_all_touches(db: &DatabaseConnection) {
    for _ in 0..500 {
        sync_core::apply_touches(db)
            .await
            .expect("apply logged touches");
        if sync_core::ops::logged_touches(db)
            .await
            .expect("count logged touches")
            == 0
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("logged touches were not applied within 5 s");
}

/// The version the group (`syncer`, `key`) has as `db` sees it, counting the touches logged and
/// not applied yet (each adds one to a group that is not closed). Inside a transaction this
/// includes the transaction's own touches.
pub async fn version_seen_by<C: ConnectionTrait>(db: &C, syncer: &str, key: impl ToString) -> i64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    let key = key.to_string();
    let Some(group) = sync_group::Entity::find()
        .filter(sync_group::Column::Syncer.eq(syncer))
        .filter(sync_group::Column::RootKey.eq(key.as_str()))
        .one(db)
        .await
        .expect("read sync_groups")
    else {
        return 0;
    };
    let pending = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                DbBackend::Postgres => {
                    "SELECT COUNT(*) AS n FROM sync_touches WHERE syncer = $1 AND root_key = $2"
                }
                _ => "SELECT COUNT(*) AS n FROM sync_touches WHERE syncer = ? AND root_key = ?",
            },
            [syncer.into(), key.into()],
        ))
        .await
        .expect("read sync_touches")
        .map_or(0, |row| row.try_get::<i64>("", "n").expect("a count"));
    if group.state == "deleted" {
        group.version
    } else {
        group.version + pending
    }
}

async fn connect_admin(url: &str, var: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("{var} is set but the server cannot be reached: {e}"))
}

async fn create_model_tables(db: &DatabaseConnection) {
    use models::*;
    let backend: DbBackend = db.get_database_backend();
    let schema = Schema::new(backend);
    let statements = [
        schema.create_table_from_entity(customer::Entity),
        schema.create_table_from_entity(address::Entity),
        schema.create_table_from_entity(order::Entity),
        schema.create_table_from_entity(line_item::Entity),
        schema.create_table_from_entity(billing_info::Entity),
        schema.create_table_from_entity(product::Entity),
        schema.create_table_from_entity(plain_customer::Entity),
        schema.create_table_from_entity(stock_item::Entity),
    ];
    for statement in statements {
        db.execute(&statement).await.expect("create a test table");
    }
}
