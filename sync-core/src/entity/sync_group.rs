//! `sync_groups`: one row per (syncer, root key).

use sea_orm::entity::prelude::*;

use crate::GroupState;

/// A row of `sync_groups`. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_groups")]
pub struct Model {
    /// Surrogate key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The syncer's stable name, e.g. `crm.contact`.
    pub syncer: String,
    /// The root row's primary key, as text.
    pub root_key: String,
    /// +1 on every touch.
    pub version: i64,
    /// The `version` the remote is known to hold.
    pub synced_version: i64,
    /// See [`GroupState`]; use [`Model::state`] to parse it.
    pub state: String,
    /// The root row is gone (deleted or soft-deleted): the next push is a remote delete.
    pub root_deleted: bool,
    /// The remote's id for this entity, once created.
    pub remote_id: Option<String>,
    /// Digest of the last payload the remote accepted.
    pub last_digest: Option<String>,
    /// The last payload the remote accepted, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_payload: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: i32,
    /// "Not ready" answers since the last success.
    pub deferrals: i32,
    /// When the group is due.
    pub next_attempt_at: i64,
    /// The last error, for people.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// The worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease expires.
    pub lease_until: Option<i64>,
    /// Last touch.
    pub touched_at: i64,
    /// Last completion.
    pub synced_at: Option<i64>,
    /// Registration.
    pub created_at: i64,
    /// When the group last went from clean to dirty; `NULL` while clean.
    pub dirty_since: Option<i64>,
    /// The idempotency key of a create that may have reached the remote and whose answer was
    /// not recorded yet; a worker taking the group over repeats that create with this key.
    pub create_key: Option<String>,
    /// The exact body of that create, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub create_payload: Option<String>,
    /// The remote answered `remote_id` as a JSON number (else a string).
    pub remote_id_numeric: bool,
    /// The HTTP status of the last failed attempt, if the remote answered one.
    pub last_status: Option<i32>,
    /// The digest of the references (remote ids of other groups) the last recorded push
    /// carried, kept in `sync_references`; `None`: it carried none.
    pub references_digest: Option<String>,
    /// The group had a remote id other groups may carry, and has none now: when it gets its next
    /// one, the groups carrying another are touched.
    pub remote_id_forgotten: bool,
}

impl Model {
    /// The parsed [`GroupState`].
    pub fn state(&self) -> Result<GroupState, crate::UnknownState> {
        self.state.parse()
    }

    /// `version > synced_version`: the remote does not hold the latest data.
    pub fn is_dirty(&self) -> bool {
        self.version > self.synced_version
    }

    /// The remote's id with its JSON type, once created.
    pub fn remote_id(&self) -> Option<crate::RemoteId> {
        self.remote_id
            .clone()
            .map(|id| crate::RemoteId::from_stored(id, self.remote_id_numeric))
    }
}

/// No relations: groups point at roots by key text, not by foreign key.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
