//! `sync_runs`: one row per syncer per worker interval with activity.

use sea_orm::entity::prelude::*;

/// A row of `sync_runs`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The syncer.
    pub syncer: String,
    /// The worker that did the work.
    pub worker: String,
    /// Start of the interval (ms since the epoch).
    pub started_at: i64,
    /// End of the interval.
    pub finished_at: i64,
    /// Attempts made.
    pub attempted: i32,
    /// Created, updated or deleted on the remote.
    pub pushed: i32,
    /// Skipped by digest.
    pub skipped: i32,
    /// Failed (transiently or not).
    pub failed: i32,
    /// No failure in the interval.
    pub clean: bool,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
