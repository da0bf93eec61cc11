//! `sync_syncers`: what all workers share about a syncer.

use sea_orm::entity::prelude::*;

/// A row of `sync_syncers`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_syncers")]
pub struct Model {
    /// The syncer's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub syncer: String,
    /// The rate limit's tokens, in thousandths.
    pub tokens_milli: i64,
    /// When the tokens were last counted.
    pub refilled_at: i64,
    /// No request before this time (a 429 paused the syncer).
    pub paused_until: i64,
    /// Why it was paused.
    #[sea_orm(column_type = "Text", nullable)]
    pub pause_reason: Option<String>,
    /// Whether the last run with activity was clean.
    pub healthy: bool,
    /// When `healthy` last changed.
    pub health_changed_at: Option<i64>,
    /// End of the last clean run with pushes or skips.
    pub last_success_at: Option<i64>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
