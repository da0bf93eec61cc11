//! Touches made on behalf of the application: registering and touching groups.
//!
//! Every function takes the connection to write through. Pass the transaction that holds the
//! application's own write, so that the touch commits or rolls back with it. Touches are
//! appended to the touch log (`sync_touches`, see [`crate::touch_log`]); they reach
//! `sync_groups` when the worker applies them.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, Iterable, PrimaryKeyToColumn, QueryFilter,
    QuerySelect, QueryTrait, Select, Statement,
};

use crate::entity::sync_group::{Column as G, Entity as Groups};
use crate::syncable::{ColumnOf, Link, Syncable};
use crate::touch_log::{self, Mark};
use crate::{Error, Result, RootKey, clock, wake};

/// Appends `mark` for the group (`syncer`, `key`).
async fn log_one<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &RootKey,
    mark: Mark,
) -> Result<u64> {
    touch_log::append(db, &[(syncer, key, mark)]).await
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
    log_one(db, syncer, &key, Mark::Register).await
}

/// Marks the group (`syncer`, `key`) dirty, if it exists. For writes that run no hooks, such as
/// raw SQL. Returns whether the group exists (or its registration is pending).
pub async fn touch<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: impl Into<RootKey>,
) -> Result<bool> {
    let key = key.into();
    log_one(db, syncer, &key, Mark::Touch).await?;
    Ok(touch_log::known(db, syncer, std::slice::from_ref(&key)).await? > 0)
}

/// Marks every existing group of `syncer` with one of `keys` dirty. Returns how many were.
pub async fn touch_many<C, K, I>(db: &C, syncer: &str, keys: I) -> Result<u64>
where
    C: ConnectionTrait,
    K: Into<RootKey>,
    I: IntoIterator<Item = K>,
{
    let keys: BTreeSet<RootKey> = keys.into_iter().map(Into::into).collect();
    let keys: Vec<RootKey> = keys.into_iter().collect();
    let touches: Vec<(&str, &RootKey, Mark)> =
        keys.iter().map(|k| (syncer, k, Mark::Touch)).collect();
    touch_log::append(db, &touches).await?;
    touch_log::known(db, syncer, &keys).await
}

/// Marks the group (`syncer`, `key`) for a remote delete, as deleting its root would. For roots
/// deleted by raw SQL. Returns whether the group exists (or its registration is pending).
pub async fn mark_deleted<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: impl Into<RootKey>,
) -> Result<bool> {
    let key = key.into();
    log_one(db, syncer, &key, Mark::Deleted).await?;
    Ok(touch_log::known(db, syncer, std::slice::from_ref(&key)).await? > 0)
}

/// Touches every group that the rows matched by `select` belong to, in every syncer `E`'s model
/// is a member of, inside the caller's transaction. Use it around writes that run no hooks:
///
/// - `update_many`: call it with the same filter *after* the update (and also *before* it when
///   the update changes a dependent's foreign key, so the old roots are touched too);
/// - `insert_many` of dependents: call it with a filter matching the new rows.
///
/// For roots and dependents linked by a column this is one `INSERT INTO sync_touches … SELECT`
/// per membership; dependents linked by a function are loaded and resolved one by one.
/// Returns the number of touches logged: one per membership and distinct root the rows name.
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
/// transaction (after it, the rows cannot be found). Returns the number of touches logged, as
/// [`touch_matching`] does.
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
            let now = clock::now_ms();
            let rows = select
                .clone()
                .select_only()
                .expr(Expr::val(syncer))
                .expr(Expr::col(column).cast_as(text_type(backend)))
                .expr(Expr::val(mark.code()))
                .expr(Expr::val(now))
                .filter(Expr::col(column).is_not_null())
                .distinct()
                .into_query();
            let insert = Query::insert()
                .into_table(Alias::new("sync_touches"))
                .columns([
                    Alias::new("syncer"),
                    Alias::new("root_key"),
                    Alias::new("mark"),
                    Alias::new("at"),
                ])
                .select_from(rows)
                .map_err(|e| Error::permanent(format!("cannot build the touch statement: {e}")))?
                .to_owned();
            let done = db.execute(&insert).await.map_err(Error::db_while(format!(
                "logging touches of `{syncer}` groups"
            )))?;
            touched += done.rows_affected();
            wake::notify();
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
        let touches: Vec<(&str, &RootKey, Mark)> = keys.iter().map(|k| (syncer, k, mark)).collect();
        touched += touch_log::append(db, &touches).await?;
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

/// One membership's part of a conditional touch: `group_key` selects one row and one column,
/// `k`: the group's key, or NULL when the written row does not differ. It locks the row. Key
/// expressions cast with the placeholder type `__TEXT__`, replaced per backend.
pub(crate) struct ConditionalTouch {
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

/// Conditional touch SQL by shape and backend, rendered once: a save binds new values into SQL
/// that was rendered for the first save of its shape.
static TOUCH_SQL: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<TouchSqlKey, std::sync::Arc<str>>>,
> = std::sync::LazyLock::new(Default::default);

/// Logs, in one statement, a touch of each group whose row differs from the values being
/// written. Each membership's part locks the row, as the write that follows would, and judges
/// the change against the row as it is once locked.
///
/// `values` are, per membership, its syncer and the bound values of its `group_key` select in
/// SQL order; `build` gives the sea-query selects, rendered the first time a `shape` is seen on
/// a backend. The rendered values are compared with `values` then: only a shape whose values
/// line up is kept.
pub(crate) async fn touch_if_changed<C: ConnectionTrait>(
    db: &C,
    shape: TouchShape,
    values: Vec<(&'static str, Vec<sea_orm::Value>)>,
    build: impl FnOnce() -> Vec<ConditionalTouch>,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let now = clock::now_ms();
    let key = (shape, std::mem::discriminant(&backend));
    let cached = TOUCH_SQL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let sql: std::sync::Arc<str> = match cached {
        Some(sql) => sql,
        None => {
            let (sql, lined_up) = render_conditional_touch(backend, build(), &values);
            let sql: std::sync::Arc<str> = sql.into();
            if lined_up {
                TOUCH_SQL
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, sql.clone());
            } else {
                debug_assert!(false, "conditional touch values out of order: {sql}");
                tracing::debug!(%sql, "conditional touch not cached: values out of order");
            }
            sql
        }
    };
    let mut bound: Vec<sea_orm::Value> = Vec::new();
    for (syncer, inner) in values {
        bound.push(syncer.into());
        bound.push(now.into());
        bound.extend(inner);
    }
    let result = db
        .execute_raw(statement(backend, &sql, bound))
        .await
        .map_err(Error::db_while("logging touches of a changed row"))?;
    if result.rows_affected() > 0 {
        wake::notify();
    }
    Ok(result.rows_affected())
}

/// The conditional touch's SQL, with `?` placeholders: per membership
/// `SELECT ?, t.k, 0, ? FROM (<group_key>) AS t WHERE t.k IS NOT NULL`, joined by `UNION ALL`.
/// Also says whether each select's rendered values equal the ones `values` lists.
fn render_conditional_touch(
    backend: DbBackend,
    touches: Vec<ConditionalTouch>,
    values: &[(&'static str, Vec<sea_orm::Value>)],
) -> (String, bool) {
    let mut parts = Vec::with_capacity(touches.len());
    let mut lined_up = touches.len() == values.len();
    for (i, touch) in touches.into_iter().enumerate() {
        let rendered = backend.build(&*touch.group_key);
        let inner_values: &[sea_orm::Value] = rendered
            .values
            .as_ref()
            .map(|v| v.0.as_slice())
            .unwrap_or_default();
        lined_up &= values
            .get(i)
            .is_some_and(|(_, v)| v.as_slice() == inner_values);
        let mut inner = question_marks(&rendered.sql).replace("__TEXT__", text_type_name(backend));
        if backend == DbBackend::Postgres {
            // A LIMIT/OFFSET keeps PostgreSQL from moving the outer `k IS NOT NULL` below the
            // lock, where it would filter the row as the statement's snapshot saw it, without
            // waiting for a concurrent writer of the row.
            let lock = [" FOR NO KEY UPDATE", " FOR UPDATE"]
                .iter()
                .find_map(|clause| inner.rfind(clause));
            if let Some(at) = lock {
                inner.insert_str(at, " OFFSET 0");
            }
        }
        parts.push(format!(
            "SELECT ?, t.k, {}, ? FROM ({inner}) AS t WHERE t.k IS NOT NULL",
            Mark::Touch.code()
        ));
    }
    (
        format!(
            "INSERT INTO sync_touches (syncer, root_key, mark, at) {}",
            parts.join(" UNION ALL ")
        ),
        lined_up,
    )
}

/// PostgreSQL's numbered placeholders (`$1`) as `?`, so that statements can be joined and
/// numbered again by [`statement`].
fn question_marks(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(ch);
        }
    }
    out
}

fn text_type_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::MySql => "CHAR",
        _ => "TEXT",
    }
}

/// A statement in the backend's dialect from SQL written with `?` placeholders.
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

/// Records that the group (`syncer`, `key`) is the remote record `remote_id`, creating the group
/// if needed (as [`insert_if_missing`] does). A group that already has a remote id keeps it; a
/// group given one touches the groups whose pushes carried another remote id of it.
pub(crate) async fn link_group<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &RootKey,
    remote_id: &crate::RemoteId,
) -> Result<()> {
    insert_if_missing(db, syncer, key, clock::now_ms()).await?;
    let backend = db.get_database_backend();
    let linked = db
        .execute_raw(statement(
            backend,
            "UPDATE sync_groups SET remote_id = ?, remote_id_numeric = ?, remote_id_forgotten = ? \
             WHERE syncer = ? AND root_key = ? AND remote_id IS NULL",
            vec![
                remote_id.as_str().into(),
                remote_id.is_number().into(),
                false.into(),
                syncer.into(),
                key.as_str().into(),
            ],
        ))
        .await
        .map_err(Error::db_while(format!(
            "linking `{syncer}` group `{key}` to remote id `{remote_id}`"
        )))?
        .rows_affected();
    if linked > 0 {
        crate::references::touch_referrers(db, syncer, key, remote_id).await?;
    }
    Ok(())
}
