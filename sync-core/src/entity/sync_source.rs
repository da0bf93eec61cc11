//! `sync_sources`: what all workers share about a source.

use sea_orm::entity::prelude::*;

/// A row of `sync_sources`. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_sources")]
pub struct Model {
    /// The source's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    /// Where the next fetch starts, as JSON (`NULL`: from the beginning).
    #[sea_orm(column_type = "Text", nullable)]
    pub next_cursor: Option<String>,
    /// The source's own state, as a JSON object.
    #[sea_orm(column_type = "Text", nullable)]
    pub state: Option<String>,
    /// The full run in progress (its start time, which marks the records it listed).
    pub full_run: Option<i64>,
    /// An operator asked for a full run.
    pub full_requested: bool,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease expires.
    pub lease_until: Option<i64>,
    /// When the next scheduled run is due.
    pub next_run_at: i64,
    /// When the last run ended.
    pub last_run_at: Option<i64>,
    /// When the last run without error ended.
    pub last_success_at: Option<i64>,
    /// The last run's error, for people; `NULL` after a clean run.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Records fetched by the last run.
    pub last_fetched: i64,
    /// Records applied by the last run.
    pub last_applied: i64,
    /// Records the last run skipped as unchanged.
    pub last_skipped: i64,
    /// Records the last run quarantined.
    pub last_quarantined: i64,
    /// Deletes the last run applied (tombstones and, after a full run, vanished records).
    pub last_deleted: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
