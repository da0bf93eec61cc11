//! The [`Syncable`] trait that `#[derive(Syncable)]` implements, and its metadata.

use std::future::Future;
use std::pin::Pin;

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, ModelTrait, Value};

use crate::RootKey;

/// The columns type of a model's entity.
pub type ColumnOf<M> = <<M as ModelTrait>::Entity as EntityTrait>::Column;

/// A boxed, sendable future, as returned by [`Syncable::resolve_root`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A SeaORM model whose changes feed one or more sync groups.
///
/// Implemented by `#[derive(Syncable)]`; see the crate documentation for the attributes. The
/// metadata drives the hooks in [`crate::hooks`], [`crate::sync`] and the bulk helpers.
pub trait Syncable: ModelTrait + Sync + 'static {
    /// Every sync group this model belongs to, in declaration order.
    const MEMBERSHIPS: &'static [Membership<ColumnOf<Self>>];

    /// The root key of membership `index` when it is declared with `root_fn`: calls the user's
    /// function. Returns `Ok(None)` for other memberships.
    fn resolve_root<'a, C>(
        &'a self,
        index: usize,
        db: &'a C,
    ) -> BoxFuture<'a, Result<Option<RootKey>, DbErr>>
    where
        C: ConnectionTrait;
}

/// How a membership finds the root of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link<C: 'static> {
    /// This model is the root: the group's key is this row's primary key.
    Root,
    /// A dependent: the group's key is the value of this foreign-key column.
    Column(C),
    /// A dependent whose root is found by a user function (multi-hop chains). `via` lists the
    /// columns whose change can move the row to another root; empty means any column can.
    Function {
        /// Columns whose change can move the row to another root.
        via: &'static [C],
    },
}

/// One `#[sync(...)]` attribute: the model's part in one syncer's groups.
#[derive(Debug, Clone, Copy)]
pub struct Membership<C: 'static> {
    syncer: &'static str,
    watch: &'static [C],
    link: Link<C>,
    register_on_insert: bool,
    soft_delete: Option<C>,
}

impl<C: Copy + 'static> Membership<C> {
    /// Built by the derive, through `__private::membership`.
    pub(crate) const fn new(
        syncer: &'static str,
        watch: &'static [C],
        link: Link<C>,
        register_on_insert: bool,
        soft_delete: Option<C>,
    ) -> Self {
        Membership {
            syncer,
            watch,
            link,
            register_on_insert,
            soft_delete,
        }
    }

    /// The syncer's stable name, e.g. `crm.contact`.
    pub const fn syncer(&self) -> &'static str {
        self.syncer
    }

    /// The watched columns: a change to one of them touches the group.
    pub const fn watch(&self) -> &'static [C] {
        self.watch
    }

    /// How the root is found.
    pub const fn link(&self) -> Link<C> {
        self.link
    }

    /// Whether this model is the group's root.
    pub const fn is_root(&self) -> bool {
        matches!(self.link, Link::Root)
    }

    /// Whether inserting a root registers its group (otherwise [`crate::sync`] does).
    pub const fn register_on_insert(&self) -> bool {
        self.register_on_insert
    }

    /// The soft-delete column: setting it means "delete on the remote".
    pub const fn soft_delete(&self) -> Option<C> {
        self.soft_delete
    }
}

/// Whether a soft-delete column's value means "deleted": anything but `NULL` and `false`.
pub(crate) fn is_soft_deleted(value: &Value) -> bool {
    match value {
        Value::Bool(v) => v.unwrap_or(false),
        Value::TinyInt(v) => v.is_some_and(|v| v != 0),
        Value::SmallInt(v) => v.is_some_and(|v| v != 0),
        Value::Int(v) => v.is_some_and(|v| v != 0),
        Value::BigInt(v) => v.is_some_and(|v| v != 0),
        other => !is_null(other),
    }
}

/// `Value` has no `is_null` of its own across all its variants; SeaORM renders `NULL` for
/// `None` payloads, which `as_null()` produces.
fn is_null(value: &Value) -> bool {
    *value == value.as_null()
}
