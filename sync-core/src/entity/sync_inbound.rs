//! `sync_inbound`: one row per (source, remote id) applied or quarantined.

use sea_orm::entity::prelude::*;

/// A row of `sync_inbound`. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_inbound")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The source's name.
    pub source: String,
    /// The remote's id of the record.
    pub remote_id: String,
    /// Digest of the version last applied, or of the version quarantined.
    pub digest: String,
    /// `applied` or `quarantined`.
    pub state: String,
    /// The version was a delete (a tombstone, or a record a full run found missing).
    pub deleted: bool,
    /// The remote's modification time of that version, when it has one.
    pub modified_at: Option<i64>,
    /// That version's data, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub payload: Option<String>,
    /// Why applying it failed (quarantined records).
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Failed applies of this version in a row.
    pub attempts: i32,
    /// When a quarantined record is applied again.
    pub next_retry_at: Option<i64>,
    /// The last full run that listed the record.
    pub seen_run: Option<i64>,
    /// Last change of this row.
    pub updated_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
