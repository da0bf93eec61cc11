//! `sync_attempts`: one row per push attempt.

use sea_orm::entity::prelude::*;

/// A row of `sync_attempts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_attempts")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The group pushed.
    pub group_id: i64,
    /// The group's syncer.
    pub syncer: String,
    /// The group version the attempt carried.
    pub version: i64,
    /// `create`, `update`, `delete` or `none` (skipped, or failed before pushing).
    pub operation: String,
    /// `ok`, `skipped`, `waiting`, `retry`, `failed` or `dead`.
    pub outcome: String,
    /// The remote's HTTP status, when there was an answer.
    pub status_code: Option<i32>,
    /// The error, for failures.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Wall time of the attempt.
    pub duration_ms: i64,
    /// The worker that made it.
    pub worker: String,
    /// When it started (ms since the Unix epoch).
    pub started_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
