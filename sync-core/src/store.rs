//! Writes to `sync_groups` made on behalf of the application: registering and touching groups.
//!
//! Every function takes the connection to write through. Pass the transaction that holds the
//! application's own write, so that the touch commits or rolls back with it.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, Iterable, PrimaryKeyToColumn, QuerySelect, QueryTrait,
    Select, Statement,
};

use crate::entity::sync_group::{Column as G, Entity as Groups};
use crate::syncable::{ColumnOf, Link, Syncable};
use crate::{Error, Result, RootKey, clock, wake};

/// What a write means for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mark {
    /// Watched data changed: +1 version if the group exists.
    Touch,
    /// The root row is gone: +1 version and push a remote delete, if the group exists.
    Deleted,
    /// The root is back (soft delete cleared): +1 version and revive, if the group exists.
    Restored,
    /// Register (create the group if missing) and touch.
    Register,
}

/// Assignments shared by every kind of touch. The order matters on MySQL, which evaluates `SET`
/// assignments left to right with later ones seeing earlier results: `state` must come last
/// because the others read the old state.
fn assignments(mark: Mark, now: i64) -> Vec<(G, Expr)> {
    // Which states a touch moves back to `pending`: a clean group becomes dirty, a dead one is
    // revived (new data may fix it), and a registration or restore reopens a closed one. A
    // `failed` group keeps its backoff schedule.
    let revived = match mark {
        Mark::Touch | Mark::Deleted => "('synced', 'dead')",
        Mark::Restored | Mark::Register => "('synced', 'dead', 'deleted')",
    };
    let mut sets = vec![
        (G::Version, Expr::cust("sync_groups.version + 1")),
        (G::TouchedAt, Expr::val(now)),
    ];
    match mark {
        Mark::Touch => {}
        Mark::Deleted => sets.push((G::RootDeleted, Expr::val(true))),
        Mark::Restored | Mark::Register => sets.push((G::RootDeleted, Expr::val(false))),
    }
    sets.extend([
        (
            G::Attempts,
            Expr::cust(format!(
                "CASE WHEN sync_groups.state IN {revived} THEN 0 ELSE sync_groups.attempts END"
            )),
        ),
        (
            G::Deferrals,
            Expr::cust(format!(
                "CASE WHEN sync_groups.state IN {revived} THEN 0 ELSE sync_groups.deferrals END"
            )),
        ),
        (
            G::LastError,
            Expr::cust(format!(
                "CASE WHEN sync_groups.state IN {revived} THEN NULL ELSE sync_groups.last_error END"
            )),
        ),
        (
            G::NextAttemptAt,
            // A bound value inside `Expr::cust` would need the backend's placeholder syntax.
            Expr::case(Expr::cust(format!("sync_groups.state IN {revived}")), now)
                .finally(Expr::cust("sync_groups.next_attempt_at"))
                .into(),
        ),
        (
            G::DirtySince,
            Expr::case(Expr::cust(format!("sync_groups.state IN {revived}")), now)
                .finally(Expr::cust(
                    "COALESCE(sync_groups.dirty_since, sync_groups.touched_at)",
                ))
                .into(),
        ),
        (
            G::State,
            Expr::cust(format!(
                "CASE WHEN sync_groups.state IN {revived} THEN 'pending' ELSE sync_groups.state END"
            )),
        ),
    ]);
    sets
}

/// Applies `mark` to the groups of `syncer` whose key is `key`, or (for bulk helpers) whose key
/// is produced by `keys_from`. Returns the number of groups written.
async fn apply<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    mark: Mark,
    keys: Keys<'_>,
) -> Result<u64> {
    let now = clock::now_ms();
    if mark == Mark::Register {
        let Keys::One(key) = keys else {
            unreachable!("registration is always for one key")
        };
        return register(db, syncer, key, now).await;
    }
    let mut update = Query::update();
    update
        .table(Groups)
        .values(assignments(mark, now))
        .and_where(Expr::col((Groups, G::Syncer)).eq(syncer));
    match keys {
        Keys::One(key) => update.and_where(Expr::col((Groups, G::RootKey)).eq(key.as_str())),
        Keys::Many(keys) => update.and_where(
            Expr::col((Groups, G::RootKey)).is_in(keys.iter().map(|k| k.as_str().to_owned())),
        ),
        Keys::Subquery(select) => {
            update.and_where(Expr::col((Groups, G::RootKey)).in_subquery(*select))
        }
    };
    if mark == Mark::Deleted {
        update.and_where(Expr::col((Groups, G::State)).ne("deleted"));
    }
    let result = db
        .execute(&update)
        .await
        .map_err(Error::db_while(format!("touching `{syncer}` groups")))?;
    if result.rows_affected() > 0 {
        wake::notify();
    }
    Ok(result.rows_affected())
}

enum Keys<'a> {
    One(&'a RootKey),
    Many(&'a [RootKey]),
    Subquery(Box<SelectStatement>),
}

/// `INSERT` of the group (`syncer`, `key`) as new and dirty, at version 1.
fn new_group(syncer: &str, key: &RootKey, now: i64) -> sea_orm::sea_query::InsertStatement {
    Query::insert()
        .into_table(Groups)
        .columns([
            G::Syncer,
            G::RootKey,
            G::Version,
            G::SyncedVersion,
            G::State,
            G::RootDeleted,
            G::Attempts,
            G::Deferrals,
            G::NextAttemptAt,
            G::TouchedAt,
            G::CreatedAt,
            G::DirtySince,
        ])
        .values_panic([
            syncer.into(),
            key.as_str().into(),
            1_i64.into(),
            0_i64.into(),
            "pending".into(),
            false.into(),
            0_i32.into(),
            0_i32.into(),
            now.into(),
            now.into(),
            now.into(),
            now.into(),
        ])
        .to_owned()
}

async fn register<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &RootKey,
    now: i64,
) -> Result<u64> {
    let mut insert = new_group(syncer, key, now);
    insert.on_conflict(
        OnConflict::columns([G::Syncer, G::RootKey])
            .values(assignments(Mark::Register, now))
            .to_owned(),
    );
    db.execute(&insert).await.map_err(Error::db_while(format!(
        "registering `{syncer}` group `{key}`"
    )))?;
    wake::notify();
    Ok(1)
}

/// Registers `model` as the root of a group of every syncer it is a root for (creating the group
/// if needed) and marks those groups dirty. This is "from now on, sync this as an X on the
/// remote", for roots whose membership is not `register_on_insert`.
///
/// Returns the number of groups registered. Does nothing for memberships where `model` is a
/// dependent.
///
/// ```no_run
/// # async fn demo<M: sync_core::Syncable>(db: &sea_orm::DatabaseConnection, customer: M) -> sync_core::Result<()> {
/// sync_core::sync(db, &customer).await?;
/// # Ok(()) }
/// ```
pub async fn sync<M, C>(db: &C, model: &M) -> Result<u64>
where
    M: Syncable,
    C: ConnectionTrait,
{
    let mut registered = 0;
    for membership in M::MEMBERSHIPS.iter().filter(|m| m.is_root()) {
        registered += sync_as(db, membership.syncer(), model).await?;
    }
    Ok(registered)
}

/// Like [`sync`], for one syncer only. Fails with [`Error::Config`] if `model` is not a root of
/// `syncer`.
pub async fn sync_as<M, C>(db: &C, syncer: &str, model: &M) -> Result<u64>
where
    M: Syncable,
    C: ConnectionTrait,
{
    let table = table_name::<M>();
    let is_root_of = M::MEMBERSHIPS
        .iter()
        .any(|m| m.is_root() && m.syncer() == syncer);
    if !is_root_of {
        return Err(Error::Config(format!(
            "table `{table}` is not a root of syncer `{syncer}`; its `#[sync(...)]` attributes name {}",
            M::MEMBERSHIPS
                .iter()
                .map(|m| format!("`{}`", m.syncer()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let key = primary_key(model)?;
    apply(db, syncer, Mark::Register, Keys::One(&key)).await
}

/// Marks the group (`syncer`, `key`) dirty, if it exists. For writes that run no hooks, such as
/// raw SQL. Returns whether a group was touched.
pub async fn touch<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: impl Into<RootKey>,
) -> Result<bool> {
    let key = key.into();
    Ok(apply(db, syncer, Mark::Touch, Keys::One(&key)).await? > 0)
}

/// Marks every existing group of `syncer` with one of `keys` dirty. Returns how many were.
pub async fn touch_many<C, K, I>(db: &C, syncer: &str, keys: I) -> Result<u64>
where
    C: ConnectionTrait,
    K: Into<RootKey>,
    I: IntoIterator<Item = K>,
{
    let keys: Vec<RootKey> = keys.into_iter().map(Into::into).collect();
    let mut touched = 0;
    // Bounded IN lists: backends cap the number of bound parameters per statement.
    for chunk in keys.chunks(500) {
        touched += apply(db, syncer, Mark::Touch, Keys::Many(chunk)).await?;
    }
    Ok(touched)
}

/// Marks the group (`syncer`, `key`) for a remote delete, as deleting its root would. For roots
/// deleted by raw SQL. Returns whether a group was marked.
pub async fn mark_deleted<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: impl Into<RootKey>,
) -> Result<bool> {
    let key = key.into();
    Ok(apply(db, syncer, Mark::Deleted, Keys::One(&key)).await? > 0)
}

/// Touches every group that the rows matched by `select` belong to, in every syncer `E`'s model
/// is a member of, inside the caller's transaction. Use it around writes that run no hooks:
///
/// - `update_many`: call it with the same filter *after* the update (and also *before* it when
///   the update changes a dependent's foreign key, so the old roots are touched too);
/// - `insert_many` of dependents: call it with a filter matching the new rows.
///
/// For roots and dependents linked by a column this is one `UPDATE … WHERE root_key IN (SELECT …)`
/// per membership; dependents linked by a function are loaded and resolved one by one.
/// Returns the number of groups touched.
pub async fn touch_matching<E, C>(db: &C, select: Select<E>) -> Result<u64>
where
    E: EntityTrait,
    E::Model: Syncable,
    C: ConnectionTrait,
{
    bulk(db, select, BulkKind::Touch).await
}

/// Prepares a `delete_many` of the rows matched by `select`: roots' groups are marked for a
/// remote delete and dependents' roots are touched. Call it *before* the delete, in the same
/// transaction (after it, the rows cannot be found). Returns the number of groups written.
pub async fn mark_deleted_matching<E, C>(db: &C, select: Select<E>) -> Result<u64>
where
    E: EntityTrait,
    E::Model: Syncable,
    C: ConnectionTrait,
{
    bulk(db, select, BulkKind::Delete).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BulkKind {
    Touch,
    Delete,
}

async fn bulk<E, C>(db: &C, select: Select<E>, kind: BulkKind) -> Result<u64>
where
    E: EntityTrait,
    E::Model: Syncable,
    C: ConnectionTrait,
{
    let backend = db.get_database_backend();
    let mut touched = 0;
    for (index, membership) in <E::Model as Syncable>::MEMBERSHIPS.iter().enumerate() {
        let syncer = membership.syncer();
        let mark = match (kind, membership.link()) {
            (BulkKind::Delete, Link::Root) => Mark::Deleted,
            _ => Mark::Touch,
        };
        let key_column: Option<ColumnOf<E::Model>> = match membership.link() {
            Link::Root => {
                let mut keys = E::PrimaryKey::iter();
                match (keys.next(), keys.next()) {
                    (Some(pk), None) => Some(pk.into_column()),
                    // Composite keys are joined in Rust; load the rows instead.
                    _ => None,
                }
            }
            Link::Column(column) => Some(column),
            Link::Function { .. } => None,
        };
        if let Some(column) = key_column {
            let subquery = select
                .clone()
                .select_only()
                .expr(Expr::col(column).cast_as(text_type(backend)))
                .into_query();
            touched += apply(db, syncer, mark, Keys::Subquery(Box::new(subquery))).await?;
            continue;
        }
        let models = select
            .clone()
            .all(db)
            .await
            .map_err(Error::db_while(format!(
                "loading `{}` rows to touch",
                table_name::<E::Model>()
            )))?;
        let mut keys = BTreeSet::new();
        for model in &models {
            let key = match membership.link() {
                Link::Root => Some(primary_key(model)?),
                Link::Column(column) => {
                    RootKey::from_value(&sea_orm::ModelTrait::get(model, column))
                }
                Link::Function { .. } => model.resolve_root(index, db).await?,
            };
            keys.extend(key);
        }
        let keys: Vec<RootKey> = keys.into_iter().collect();
        for chunk in keys.chunks(500) {
            touched += apply(db, syncer, mark, Keys::Many(chunk)).await?;
        }
    }
    Ok(touched)
}

fn text_type(backend: DbBackend) -> Alias {
    match backend {
        DbBackend::MySql => Alias::new("CHAR"),
        _ => Alias::new("TEXT"),
    }
}

/// The group key of a root model.
pub(crate) fn primary_key<M: Syncable>(model: &M) -> Result<RootKey> {
    let mut parts = Vec::new();
    for key in <M::Entity as EntityTrait>::PrimaryKey::iter() {
        parts.push(sea_orm::ModelTrait::get(model, key.into_column()));
    }
    let tuple = match parts.len() {
        1 => sea_orm::sea_query::ValueTuple::One(parts.remove(0)),
        _ => sea_orm::sea_query::ValueTuple::Many(parts),
    };
    RootKey::from_tuple(&tuple).ok_or_else(|| Error::Key {
        table: table_name::<M>().to_owned(),
        reason: "primary key values must be integers, strings or UUIDs and not NULL".into(),
    })
}

pub(crate) fn table_name<M: Syncable>() -> &'static str {
    use sea_orm::EntityName;
    <M::Entity as Default>::default().table_name()
}

/// Creates the group (`syncer`, `key`) as dirty if it does not exist; leaves an existing one
/// alone. For backfills. Returns 1 if created.
pub(crate) async fn insert_if_missing<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &RootKey,
    now: i64,
) -> Result<u64> {
    let mut insert = new_group(syncer, key, now);
    if db.get_database_backend() == DbBackend::MySql {
        // MySQL has no "on conflict do nothing": `INSERT IGNORE` skips the duplicate and reports
        // 0 rows.
        let built = db.get_database_backend().build(&insert);
        let sql = built.sql.replacen("INSERT INTO", "INSERT IGNORE INTO", 1);
        let done = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::MySql,
                sql,
                built.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await
            .map_err(Error::db_while(format!(
                "registering `{syncer}` group `{key}`"
            )))?;
        return Ok(done.rows_affected());
    }
    insert.on_conflict(
        OnConflict::columns([G::Syncer, G::RootKey])
            .do_nothing()
            .to_owned(),
    );
    let done = db.execute(&insert).await.map_err(Error::db_while(format!(
        "registering `{syncer}` group `{key}`"
    )))?;
    Ok(done.rows_affected())
}

/// "Touch group (`syncer`, the key `group_key` selects)": `group_key` selects one row, the key,
/// or NULL when the written row does not differ. Key expressions cast with the placeholder type
/// `__TEXT__`, replaced per backend.
pub(crate) struct ConditionalTouch {
    pub(crate) syncer: &'static str,
    pub(crate) group_key: Box<SelectStatement>,
}

/// What the SQL of a conditional touch depends on, besides the backend: the model (its entity
/// type) and the plan's shape (see `hooks::TouchPlan::shape`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TouchShape {
    pub(crate) entity: std::any::TypeId,
    pub(crate) parts: Vec<u32>,
}

type TouchSqlKey = (TouchShape, std::mem::Discriminant<DbBackend>);

/// Conditional touch SQL by shape and backend, rendered once: building the statement with
/// sea-query costs more than the database spends on running it.
static TOUCH_SQL: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<TouchSqlKey, std::sync::Arc<str>>>,
> = std::sync::LazyLock::new(Default::default);

/// Touches, in one statement, each group whose row differs from the values being written.
/// Its subqueries lock the row, as the write that follows would.
///
/// `values` are the statement's bound values after its assignments, in SQL order; `build` gives
/// the sea-query form, rendered the first time a `shape` is seen on a backend. The rendered
/// values are compared with `[now; 3] + values` then: only a shape whose values line up is kept.
pub(crate) async fn touch_if_changed<C: ConnectionTrait>(
    db: &C,
    shape: TouchShape,
    values: Vec<sea_orm::Value>,
    build: impl FnOnce() -> Vec<ConditionalTouch>,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let now = clock::now_ms();
    let mut bound: Vec<sea_orm::Value> = Vec::with_capacity(values.len() + 3);
    // The assignments bind `now` three times: `touched_at`, `next_attempt_at`, `dirty_since`.
    bound.extend([now.into(), now.into(), now.into()]);
    bound.extend(values);
    let key = (shape, std::mem::discriminant(&backend));
    let cached = TOUCH_SQL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let statement = match cached {
        Some(sql) => Statement::from_sql_and_values(backend, sql.as_ref(), bound),
        None => {
            let statement = render_conditional_touch(backend, now, build());
            let rendered: &[sea_orm::Value] = statement
                .values
                .as_ref()
                .map(|v| v.0.as_slice())
                .unwrap_or_default();
            if rendered == bound.as_slice() {
                TOUCH_SQL
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, statement.sql.as_str().into());
            } else {
                debug_assert!(
                    false,
                    "conditional touch values out of order: {statement:?}"
                );
                tracing::debug!(sql = %statement.sql, "conditional touch not cached: values out of order");
            }
            statement
        }
    };
    let result = db
        .execute_raw(statement)
        .await
        .map_err(Error::db_while("touching groups of a changed row"))?;
    if result.rows_affected() > 0 {
        wake::notify();
    }
    Ok(result.rows_affected())
}

fn render_conditional_touch(
    backend: DbBackend,
    now: i64,
    touches: Vec<ConditionalTouch>,
) -> Statement {
    let mut any = sea_orm::Condition::any();
    for t in touches {
        let key = Expr::col((Groups, G::RootKey))
            .eq(Expr::SubQuery(None, Box::new((*t.group_key).into())));
        any = any.add(
            sea_orm::Condition::all()
                .add(Expr::col((Groups, G::Syncer)).eq(t.syncer))
                .add(key),
        );
    }
    let mut update = Query::update();
    update
        .table(Groups)
        .values(assignments(Mark::Touch, now))
        .cond_where(any);
    let mut statement = backend.build(&update);
    statement.sql = statement.sql.replace("__TEXT__", text_type_name(backend));
    statement
}

fn text_type_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::MySql => "CHAR",
        _ => "TEXT",
    }
}

/// Applies one mark, for the hooks.
pub(crate) async fn mark<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &RootKey,
    mark: Mark,
) -> Result<u64> {
    apply(db, syncer, mark, Keys::One(key)).await
}

/// A statement in the backend's dialect from SQL written with `?` placeholders.
#[allow(dead_code)]
pub(crate) fn statement(backend: DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    if backend != DbBackend::Postgres {
        return Statement::from_sql_and_values(backend, sql, values);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    Statement::from_sql_and_values(backend, out, values)
}
