//! A database for tests, and what writes did to its groups.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use sync_core::entity::sync_group;
use sync_core::{RootKey, settle_touches};

/// A fresh SQLite database in a temporary directory, deleted when this is dropped. It has no
/// tables: run the application's migrator on [`db`](Self::db) (it includes the framework's
/// migrations, `sync_migrations::migrations()`).
#[derive(Debug)]
pub struct TestDatabase {
    /// A pool of 5 connections, as [`sync_core::connect`] opens it (WAL, a busy timeout).
    pub db: DatabaseConnection,
    url: String,
    _dir: tempfile::TempDir,
}

impl TestDatabase {
    /// A fresh SQLite database (needs the `sqlx-sqlite` feature).
    pub async fn sqlite() -> sync_core::Result<TestDatabase> {
        let dir = tempfile::tempdir().map_err(|e| {
            sync_core::Error::Config(format!("cannot create a temporary directory: {e}"))
        })?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let db = sync_core::connect(&url, 5).await?;
        Ok(TestDatabase { db, url, _dir: dir })
    }

    /// The database's URL, for a worker process started by the test.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Every group, as a worker would see it: the touches writes logged are applied first (also
/// those a running worker is applying at that moment).
/// Ordered by syncer and root key.
pub async fn groups(db: &DatabaseConnection) -> sync_core::Result<Vec<sync_group::Model>> {
    settle_touches(db).await?;
    sync_group::Entity::find()
        .order_by_asc(sync_group::Column::Syncer)
        .order_by_asc(sync_group::Column::RootKey)
        .all(db)
        .await
        .map_err(sync_core::Error::from)
}

/// Whether the group (`syncer`, `key`) has work for a worker (it is `pending` or `failed`): to
/// assert that a write dirtied it. Touches are applied first.
pub async fn is_dirty(
    db: &DatabaseConnection,
    syncer: &str,
    key: impl Into<RootKey>,
) -> sync_core::Result<bool> {
    settle_touches(db).await?;
    let key = key.into();
    let group = sync_group::Entity::find()
        .filter(sync_group::Column::Syncer.eq(syncer))
        .filter(sync_group::Column::RootKey.eq(key.as_str()))
        .one(db)
        .await?;
    Ok(group.is_some_and(|g| matches!(g.state.as_str(), "pending" | "failed")))
}

/// Marks every group clean, as if a worker had pushed everything: to test what a later write
/// dirties. Touches are applied first.
pub async fn mark_all_synced(db: &DatabaseConnection) -> sync_core::Result<()> {
    settle_touches(db).await?;
    db.execute_unprepared(
        "UPDATE sync_groups SET synced_version = version, synced_at = touched_at, \
         dirty_since = NULL, state = CASE WHEN state = 'deleted' THEN 'deleted' ELSE 'synced' END",
    )
    .await?;
    Ok(())
}
