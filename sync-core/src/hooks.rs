//! The framework's hooks, which `#[sync_core::hooks]` installs in a model's
//! `impl ActiveModelBehavior` (what each write does is tabled in `DERIVE.md`).
//!
//! Updates are handled in `before_save`, because `update_without_returning` runs no
//! `after_save`. So the touch is written just before the row; inside a transaction both commit
//! together. Outside one, they are two statements: write inside a transaction.
//!
//! Where a hook compares with the stored row or reads its foreign key (updates, deletes of
//! dependents), it locks the row first as the write itself would (`FOR UPDATE`, on PostgreSQL
//! `FOR NO KEY UPDATE` for an update; SQLite serialises writers anyway). A transaction writing a row another one has written but not committed
//! waits, then judges its change against the row as the other left it: the touch follows the
//! last committed state, whatever the active model was loaded from.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, ModelTrait, PrimaryKeyToColumn, QueryFilter, QuerySelect,
    TryIntoModel, Value,
};

use crate::store;
use crate::syncable::{Link, Syncable, is_soft_deleted};
use crate::touch_log::{self, Logged, Mark};
use crate::{Error, RootKey};

type ModelOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Model;

/// Marks to log for one save or delete, deduplicated, in a stable order; a mark of a root found
/// by a function carries the dependent (table, primary key) it was found from.
#[derive(Default)]
struct Marks(BTreeMap<(&'static str, RootKey, Mark), Option<FoundFrom>>);

/// A dependent's table and primary key.
type FoundFrom = (&'static str, RootKey);

impl Marks {
    fn add(&mut self, syncer: &'static str, key: Option<RootKey>, mark: Mark) {
        if let Some(key) = key {
            self.0.entry((syncer, key, mark)).or_default();
        }
    }

    /// A mark of a root a function found from `dependent` (its table and primary key): the
    /// worker applying it runs the function again on the committed row and also touches the
    /// root it finds then, when it differs.
    fn add_found(
        &mut self,
        syncer: &'static str,
        key: Option<RootKey>,
        mark: Mark,
        dependent: Option<FoundFrom>,
    ) {
        if let Some(key) = key {
            let logged = self.0.entry((syncer, key, mark)).or_default();
            if dependent.is_some() {
                *logged = dependent;
            }
        }
    }

    async fn write<C: ConnectionTrait>(self, db: &C) -> Result<(), DbErr> {
        let marks: Vec<Logged<'_>> = self
            .0
            .iter()
            .map(|((syncer, key, mark), dependent)| {
                (
                    *syncer,
                    key,
                    *mark,
                    dependent.as_ref().map(|(t, k)| (*t, k)),
                )
            })
            .collect();
        touch_log::append_logged(db, &marks).await?;
        Ok(())
    }
}

/// Hook for `ActiveModelBehavior::before_save`: on update, touches the groups whose watched
/// columns really changed, and both roots of a moved dependent.
pub async fn before_save<A, C>(am: A, db: &C, insert: bool) -> Result<A, DbErr>
where
    A: ActiveModelTrait + Send,
    ModelOf<A>: Syncable + IntoActiveModel<A>,
    C: ConnectionTrait,
{
    if insert || !update_may_matter::<A>(&am) {
        return Ok(am);
    }
    // The common case — watched columns of roots, or of dependents whose foreign key is not
    // changing — is one statement that touches each group only if the row really differs.
    if let Some(plan) = conditional_touch_plan::<A>(&am) {
        if !plan.touches.is_empty() {
            let lock = update_lock(db.get_database_backend());
            store::touch_if_changed(db, plan.shape(), plan.values(), || plan.statements(lock))
                .await?;
        }
        return Ok(am);
    }
    // Otherwise (moves, soft deletes, roots found by a function, JSON columns): `Set(same value)`
    // is indistinguishable from a change, so read the row once to compare.
    let Some(old) = find_row::<A, C>(&am, db, update_lock(db.get_database_backend())).await? else {
        // The update will fail with `RecordNotUpdated`; nothing to touch.
        return Ok(am);
    };
    let mut new = old.clone();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        if let sea_orm::ActiveValue::Set(value) = am.get(column) {
            new.try_set(column, value)?;
        }
    }
    let changed = |column| old.get(column) != new.get(column);

    let mut marks = Marks::default();
    for (index, membership) in ModelOf::<A>::MEMBERSHIPS.iter().enumerate() {
        let syncer = membership.syncer();
        let watched_changed = membership.watch().iter().any(|c| changed(*c));
        match membership.link() {
            Link::Root => {
                let key = Some(store::primary_key(&new)?);
                let was_deleted = membership
                    .soft_delete()
                    .is_some_and(|c| is_soft_deleted(&old.get(c)));
                let is_deleted = membership
                    .soft_delete()
                    .is_some_and(|c| is_soft_deleted(&new.get(c)));
                match (was_deleted, is_deleted) {
                    (false, true) => marks.add(syncer, key, Mark::Deleted),
                    (true, false) if membership.register_on_insert() => {
                        marks.add(syncer, key, Mark::Register);
                    }
                    (true, false) => marks.add(syncer, key, Mark::Restored),
                    (false, false) if watched_changed => marks.add(syncer, key, Mark::Touch),
                    _ => {}
                }
            }
            Link::Column(column) => {
                let old_root = RootKey::from_value(&old.get(column));
                let new_root = RootKey::from_value(&new.get(column));
                if old_root != new_root {
                    marks.add(syncer, old_root, Mark::Touch);
                    marks.add(syncer, new_root, Mark::Touch);
                } else if watched_changed {
                    marks.add(syncer, new_root, Mark::Touch);
                }
            }
            Link::Function { via } => {
                let may_move = if via.is_empty() {
                    <A::Entity as EntityTrait>::Column::iter().any(|c| {
                        changed(c) && !membership.watch().iter().any(|w| w.as_str() == c.as_str())
                    })
                } else {
                    via.iter().any(|c| changed(*c))
                };
                // A key that cannot be written as text (none of the key types) is not logged:
                // the root found now is touched, as for any write.
                let dependent = || {
                    let key = store::primary_key(&new).ok()?;
                    Some((store::table_name::<ModelOf<A>>(), key))
                };
                if may_move {
                    let old_root = old.resolve_root(index, db).await?;
                    let new_root = new.resolve_root(index, db).await?;
                    if old_root != new_root {
                        marks.add(syncer, old_root, Mark::Touch);
                        marks.add_found(syncer, new_root, Mark::Touch, dependent());
                    } else if watched_changed {
                        marks.add_found(syncer, new_root, Mark::Touch, dependent());
                    }
                } else if watched_changed {
                    let root = new.resolve_root(index, db).await?;
                    marks.add_found(syncer, root, Mark::Touch, dependent());
                }
            }
        }
    }
    marks.write(db).await?;
    Ok(am)
}

/// Hook for `ActiveModelBehavior::after_save`: on insert, registers roots declared
/// `register_on_insert` and touches the roots of inserted dependents.
pub async fn after_save<M, C>(model: M, db: &C, insert: bool) -> Result<M, DbErr>
where
    M: Syncable,
    C: ConnectionTrait,
{
    if !insert {
        return Ok(model);
    }
    let mut marks = Marks::default();
    for (index, membership) in M::MEMBERSHIPS.iter().enumerate() {
        let syncer = membership.syncer();
        match membership.link() {
            Link::Root => {
                let deleted = membership
                    .soft_delete()
                    .is_some_and(|c| is_soft_deleted(&model.get(c)));
                if membership.register_on_insert() && !deleted {
                    marks.add(syncer, Some(store::primary_key(&model)?), Mark::Register);
                }
            }
            Link::Column(column) => {
                marks.add(syncer, RootKey::from_value(&model.get(column)), Mark::Touch);
            }
            Link::Function { .. } => {
                let root = model.resolve_root(index, db).await?;
                let dependent = store::primary_key(&model)
                    .ok()
                    .map(|key| (store::table_name::<M>(), key));
                marks.add_found(syncer, root, Mark::Touch, dependent);
            }
        }
    }
    marks.write(db).await?;
    Ok(model)
}

/// Hook for `ActiveModelBehavior::before_delete`: for a dependent, reads and locks the row, so
/// that [`after_delete`] touches the root the row belongs to when it is deleted — not the one
/// an active model loaded earlier says (another transaction may have moved the row since).
pub async fn before_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + Send,
    ModelOf<A>: Syncable + IntoActiveModel<A>,
    C: ConnectionTrait,
{
    let has_dependents = ModelOf::<A>::MEMBERSHIPS.iter().any(|m| !m.is_root());
    if !has_dependents {
        return Ok(am);
    }
    Ok(
        match find_row::<A, C>(&am, db, sea_orm::sea_query::LockType::Update).await? {
            Some(row) => row.into_active_model(),
            None => am,
        },
    )
}

/// Hook for `ActiveModelBehavior::after_delete`: marks roots' groups for a remote delete and
/// touches dependents' roots.
pub async fn after_delete<A, C>(am: A, db: &C) -> Result<A, DbErr>
where
    A: ActiveModelTrait + Send + TryIntoModel<ModelOf<A>>,
    ModelOf<A>: Syncable + IntoActiveModel<A>,
    C: ConnectionTrait,
{
    let full = am.clone().try_into_model().ok();
    let mut marks = Marks::default();
    for (index, membership) in ModelOf::<A>::MEMBERSHIPS.iter().enumerate() {
        let syncer = membership.syncer();
        let key = match membership.link() {
            Link::Root => am
                .get_primary_key_value()
                .and_then(|pk| RootKey::from_tuple(&pk)),
            Link::Column(column) => am
                .get(column)
                .into_value()
                .and_then(|v| RootKey::from_value(&v)),
            Link::Function { .. } => match &full {
                Some(model) => model.resolve_root(index, db).await?,
                None => None,
            },
        };
        let mark = if membership.is_root() {
            Mark::Deleted
        } else {
            Mark::Touch
        };
        marks.add(syncer, key, mark);
    }
    marks.write(db).await?;
    Ok(am)
}

/// The touches of an update as "touch group G if the row differs from the new values in a watched
/// column", when that can be said in SQL without reading the row first: every membership the
/// update matters to is a root (its soft-delete column not set) or a dependent linked by a column
/// that is not set, and the watched columns set are of types SQL compares for equality.
///
/// Each touch names its group by a subquery that locks the row as the update will
/// ([`update_lock`]): a concurrent writer
/// of the row is waited for, and the comparison and the foreign key are those of the row as it
/// left it, the row this update will write over (without the lock, a change back to the value the
/// row had before an uncommitted write, or an edit of a dependent being moved, would touch
/// nothing or the wrong root).
///
/// The statement's SQL depends only on the model, the columns set (and which of them are set to
/// NULL) and the backend, so [`store::touch_if_changed`] renders it once per such shape and binds
/// the values the plan lists on every save.
fn conditional_touch_plan<A>(am: &A) -> Option<TouchPlan<A>>
where
    A: ActiveModelTrait,
    ModelOf<A>: Syncable,
{
    let pk: Vec<(ColumnOf<A>, Value)> = <A::Entity as EntityTrait>::PrimaryKey::iter()
        .map(|k| {
            let c = k.into_column();
            am.get(c).into_value().map(|v| (c, v))
        })
        .collect::<Option<_>>()?;
    let mut touches = Vec::new();
    for (index, membership) in ModelOf::<A>::MEMBERSHIPS.iter().enumerate() {
        let set_watched: Vec<(ColumnOf<A>, Value)> = membership
            .watch()
            .iter()
            .filter_map(|c| match am.get(*c) {
                sea_orm::ActiveValue::Set(v) => Some((*c, v)),
                _ => None,
            })
            .collect();
        if membership.soft_delete().is_some_and(|c| am.get(c).is_set()) {
            return None;
        }
        let key = match membership.link() {
            Link::Root if set_watched.is_empty() => continue,
            Link::Root => TouchKey::Root(
                RootKey::from_tuple(&am.get_primary_key_value()?)?
                    .as_str()
                    .to_owned(),
            ),
            Link::Column(fk) if am.get(fk).is_set() => return None,
            Link::Column(_) if set_watched.is_empty() => continue,
            Link::Column(fk) => TouchKey::Column(fk),
            Link::Function { .. } => return None,
        };
        // Comparing JSON or binary values in SQL is not portable: read the row instead.
        let comparable = set_watched.iter().all(|(c, _)| {
            !matches!(
                c.def().get_column_type(),
                sea_orm::ColumnType::Json
                    | sea_orm::ColumnType::JsonBinary
                    | sea_orm::ColumnType::Blob
                    | sea_orm::ColumnType::Binary(_)
                    | sea_orm::ColumnType::VarBinary(_)
            )
        });
        if !comparable {
            return None;
        }
        // A soft-deleted root is gone from the remote: its watched changes touch nothing.
        let alive_unless = match (membership.link(), membership.soft_delete()) {
            (Link::Root, Some(column)) => Some(column),
            _ => None,
        };
        touches.push(PlannedTouch {
            index,
            syncer: membership.syncer(),
            set_watched,
            key,
            alive_unless,
        });
    }
    Some(TouchPlan { pk, touches })
}

/// What [`conditional_touch_plan`] found: the row's primary key and, per membership to touch,
/// the watched columns set with their new values and how the group's key is found.
struct TouchPlan<A: ActiveModelTrait> {
    pk: Vec<(ColumnOf<A>, Value)>,
    touches: Vec<PlannedTouch<A>>,
}

struct PlannedTouch<A: ActiveModelTrait> {
    /// The membership's position in `Syncable::MEMBERSHIPS`.
    index: usize,
    syncer: &'static str,
    set_watched: Vec<(ColumnOf<A>, Value)>,
    key: TouchKey<ColumnOf<A>>,
    /// A root's soft-delete column: while it is set, watched changes touch nothing.
    alive_unless: Option<ColumnOf<A>>,
}

enum TouchKey<C> {
    /// The group of the row itself: its key is known.
    Root(String),
    /// The group of the root this dependent's foreign key names, as the locked row holds it.
    Column(C),
}

impl<A> TouchPlan<A>
where
    A: ActiveModelTrait,
    ModelOf<A>: Syncable,
{
    /// What the statement's SQL depends on besides the backend: the model, and per touched
    /// membership which watched columns are set, and which of those to NULL.
    fn shape(&self) -> store::TouchShape {
        let mut parts = Vec::new();
        for touch in &self.touches {
            parts.push(touch.index as u32);
            let watch = ModelOf::<A>::MEMBERSHIPS[touch.index].watch();
            for column in watch {
                let set = touch
                    .set_watched
                    .iter()
                    .find(|(c, _)| c.as_str() == column.as_str());
                parts.push(match set {
                    None => 0,
                    Some((_, v)) if is_null_value(v) => 1,
                    Some(_) => 2,
                });
            }
        }
        store::TouchShape {
            entity: std::any::TypeId::of::<A::Entity>(),
            parts,
        }
    }

    /// Per touch, its syncer and the values its select binds, in the order its SQL places them
    /// (checked against sea-query's rendering whenever a shape is first rendered).
    fn values(&self) -> Vec<(&'static str, Vec<Value>)> {
        let mut out = Vec::with_capacity(self.touches.len());
        for touch in &self.touches {
            let mut values = Vec::new();
            for (_, v) in &touch.set_watched {
                if !is_null_value(v) {
                    values.push(v.clone());
                }
            }
            if let Some(column) = touch.alive_unless {
                values.extend(not_deleted_literal(column));
            }
            if let TouchKey::Root(key) = &touch.key {
                values.push(key.as_str().into());
            }
            values.extend(self.pk.iter().map(|(_, v)| v.clone()));
            out.push((touch.syncer, values));
        }
        out
    }

    /// The touches as sea-query statements, for rendering a shape the first time; each locks
    /// the row with `lock` ([`update_lock`]).
    fn statements(&self, lock: sea_orm::sea_query::LockType) -> Vec<store::ConditionalTouch> {
        use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
        let entity = <A::Entity as Default>::default();
        let table = Alias::new(sea_orm::EntityName::table_name(&entity));
        let mut out = Vec::new();
        for touch in &self.touches {
            let mut differs = sea_orm::Condition::any();
            for (c, v) in &touch.set_watched {
                differs = differs.add(if is_null_value(v) {
                    Expr::col(*c).is_not_null()
                } else {
                    Expr::col(*c).ne(v.clone()).or(Expr::col(*c).is_null())
                });
            }
            let mut touch_if = sea_orm::Condition::all().add(differs);
            if let Some(column) = touch.alive_unless {
                touch_if = touch_if.add(match not_deleted_literal(column) {
                    Some(literal) => Expr::col(column)
                        .is_null()
                        .or(Expr::col(column).eq(literal)),
                    None => Expr::col(column).is_null(),
                });
            }
            let key: Expr = match &touch.key {
                TouchKey::Root(key) => Expr::val(key.clone()),
                TouchKey::Column(fk) => Expr::col(*fk).cast_as(Alias::new("__TEXT__")),
            };
            // The comparison sits in the select list, computed from the row the lock returns: in
            // the WHERE clause it would filter the row as of the statement's snapshot, before the
            // lock (a row an uncommitted write is changing would not be waited for).
            let mut group_key = Query::select();
            group_key
                .expr_as(
                    Expr::case(touch_if, key).finally(Expr::null()),
                    Alias::new("k"),
                )
                .from(table.clone())
                .lock(lock);
            for (c, v) in &self.pk {
                group_key.and_where(Expr::col(*c).eq(v.clone()));
            }
            out.push(store::ConditionalTouch {
                group_key: Box::new(group_key),
            });
        }
        out
    }
}

/// The value a soft-delete column of a live row may hold besides NULL (`false`, `0`), if its
/// type has one.
fn not_deleted_literal<C: ColumnTrait>(column: C) -> Option<Value> {
    match column.def().get_column_type() {
        sea_orm::ColumnType::Boolean => Some(false.into()),
        sea_orm::ColumnType::Integer
        | sea_orm::ColumnType::BigInteger
        | sea_orm::ColumnType::SmallInteger
        | sea_orm::ColumnType::TinyInteger => Some(0.into()),
        _ => None,
    }
}

type ColumnOf<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Column;

fn is_null_value(value: &Value) -> bool {
    *value == value.as_null()
}

/// Whether an update sets any column that can matter to a group: watched columns, foreign keys
/// to roots, soft-delete columns, and (for roots found by a function) the columns that can move
/// the row.
fn update_may_matter<A>(am: &A) -> bool
where
    A: ActiveModelTrait,
    ModelOf<A>: Syncable,
{
    let set = |c| am.get(c).is_set();
    ModelOf::<A>::MEMBERSHIPS.iter().any(|m| {
        m.watch().iter().any(|c| set(*c))
            || m.soft_delete().is_some_and(set)
            || match m.link() {
                Link::Root => false,
                Link::Column(c) => set(c),
                Link::Function { via: [] } => <A::Entity as EntityTrait>::Column::iter().any(set),
                Link::Function { via } => via.iter().any(|c| set(*c)),
            }
    })
}

/// The row lock an update's hook takes: the one the `UPDATE` itself will take. On PostgreSQL an
/// update that changes no key column locks the row `FOR NO KEY UPDATE`, which does not conflict
/// with the `FOR KEY SHARE` lock a foreign-key check takes on the row it references; a hook
/// locking `FOR UPDATE` would make the update wait for every open transaction that inserted a
/// row referencing this one, and could deadlock with it. (An update of a key column upgrades the
/// lock, as it would without the hook.) Elsewhere: `FOR UPDATE` (SQLite takes no row locks).
fn update_lock(backend: sea_orm::DbBackend) -> sea_orm::sea_query::LockType {
    match backend {
        sea_orm::DbBackend::Postgres => sea_orm::sea_query::LockType::NoKeyUpdate,
        _ => sea_orm::sea_query::LockType::Update,
    }
}

/// Reads and locks the row an active model's primary key names, through the hook's connection,
/// with `lock`: [`update_lock`] for an update, `FOR UPDATE` for a delete (as the `DELETE` does).
async fn find_row<A, C>(
    am: &A,
    db: &C,
    lock: sea_orm::sea_query::LockType,
) -> Result<Option<ModelOf<A>>, DbErr>
where
    A: ActiveModelTrait,
    ModelOf<A>: Syncable,
    C: ConnectionTrait,
{
    let mut select = <A::Entity as EntityTrait>::find();
    for key in <A::Entity as EntityTrait>::PrimaryKey::iter() {
        let column = key.into_column();
        let value: Option<Value> = am.get(column).into_value();
        let Some(value) = value else {
            return Ok(None);
        };
        select = select.filter(column.eq(value));
    }
    // Locked, as the write that follows will: a concurrent writer is waited for, and the hook
    // compares with (and finds the old root in) the row this write replaces.
    select.lock(lock).one(db).await.map_err(|e| {
        DbErr::from(Error::DatabaseWhile {
            context: format!(
                "reading the old `{}` row",
                store::table_name::<ModelOf<A>>()
            ),
            source: e,
        })
    })
}
