//! Finding the roots of dependents whose root a function (`root_fn`) finds again, when their
//! touches are applied.
//!
//! A hook runs the function through the writing transaction. When another transaction moves
//! the row the function follows (an order to another customer) and commits before the write
//! does, the function read the row as it was before the move and found the old root; the new
//! root's push, made when the move committed, misses the write. So the hook logs, with the
//! touch, the dependent's table and primary key (`sync_touches.dependent`, `dependent_key`: in
//! the same row, no extra statement), and [`crate::apply_touches`] — which runs after the write
//! committed, and so after any move committed before it — reads the dependent again and runs
//! the function on it, outside any transaction, and touches the root it finds then too, when
//! it differs. A dependent gone by then needs nothing more: its delete touched its root.
//!
//! `#[derive(Syncable)]` registers one [`DependentRoots`] per membership declared with
//! `root_fn`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use sea_orm::{
    ColumnTrait, ColumnType, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    Iterable, PrimaryKeyToColumn, QueryFilter, Value,
};

use crate::store;
use crate::{BoxFuture, ColumnOf, Error, Result, RootKey, Syncable};

/// The roots found again for a batch of dependents: `(dependent's key, root key)`.
pub type FoundRoots = Vec<(RootKey, RootKey)>;

/// How to find the roots of a model's dependents again, for one syncer: written by
/// `#[derive(Syncable)]` for each `#[sync(..., root_fn = ...)]`.
#[derive(Debug)]
pub struct DependentRoots {
    /// The syncer of the membership.
    pub syncer: &'static str,
    /// The model's table, as logged in `sync_touches.dependent`.
    pub table: fn() -> &'static str,
    /// Reads the rows with these primary keys (as logged) through the connection, outside any
    /// transaction, and runs the root function on each. Rows gone, and rows whose function
    /// finds no root, are left out.
    pub find: FindRoots,
}

/// What [`DependentRoots::find`] is.
pub type FindRoots = for<'a> fn(
    &'a DatabaseConnection,
    &'a [RootKey],
) -> BoxFuture<'a, std::result::Result<FoundRoots, DbErr>>;

inventory::collect!(DependentRoots);

/// The table of a model, for [`DependentRoots::table`].
pub fn table_of<M: Syncable>() -> &'static str {
    store::table_name::<M>()
}

/// [`DependentRoots::find`] for membership `index` of `M`: one `SELECT` per 200 keys, then the
/// root function once per row found.
pub fn find_roots<'a, M>(
    index: usize,
    db: &'a DatabaseConnection,
    keys: &'a [RootKey],
) -> BoxFuture<'a, std::result::Result<FoundRoots, DbErr>>
where
    M: Syncable + Send + sea_orm::FromQueryResult,
    M::Entity: EntityTrait<Model = M>,
{
    Box::pin(async move {
        let columns: Vec<ColumnOf<M>> = <M::Entity as EntityTrait>::PrimaryKey::iter()
            .map(|k| k.into_column())
            .collect();
        let mut found = Vec::new();
        for chunk in keys.chunks(200) {
            let mut any = Condition::any();
            let mut listed = 0;
            for key in chunk {
                let Some(values) = key_values(&columns, key) else {
                    continue;
                };
                let mut all = Condition::all();
                for (column, value) in columns.iter().zip(values) {
                    all = all.add(column.eq(value));
                }
                any = any.add(all);
                listed += 1;
            }
            if listed == 0 {
                continue;
            }
            let rows = <M::Entity as EntityTrait>::find()
                .filter(any)
                .all(db)
                .await?;
            for row in rows {
                let Ok(key) = store::primary_key(&row) else {
                    continue;
                };
                if let Some(root) = row.resolve_root(index, db).await? {
                    found.push((key, root));
                }
            }
        }
        Ok(found)
    })
}

/// The primary key's values from its logged text, typed as its columns are: `None` when the
/// text does not fit them.
fn key_values<C: ColumnTrait>(columns: &[C], key: &RootKey) -> Option<Vec<Value>> {
    let parts: Vec<&str> = if columns.len() == 1 {
        vec![key.as_str()]
    } else {
        key.as_str().split(',').collect()
    };
    if parts.len() != columns.len() {
        return None;
    }
    columns
        .iter()
        .zip(parts)
        .map(|(column, text)| typed_value(column.def().get_column_type(), text))
        .collect()
}

fn typed_value(column_type: &ColumnType, text: &str) -> Option<Value> {
    Some(match column_type {
        ColumnType::TinyInteger => text.parse::<i8>().ok()?.into(),
        ColumnType::SmallInteger => text.parse::<i16>().ok()?.into(),
        ColumnType::Integer => text.parse::<i32>().ok()?.into(),
        ColumnType::BigInteger => text.parse::<i64>().ok()?.into(),
        ColumnType::TinyUnsigned => text.parse::<u8>().ok()?.into(),
        ColumnType::SmallUnsigned => text.parse::<u16>().ok()?.into(),
        ColumnType::Unsigned => text.parse::<u32>().ok()?.into(),
        ColumnType::BigUnsigned => text.parse::<u64>().ok()?.into(),
        ColumnType::Uuid => sea_orm::prelude::Uuid::parse_str(text).ok()?.into(),
        _ => text.into(),
    })
}

/// The registrations, by (syncer, table).
fn registrations() -> &'static BTreeMap<(String, String), Vec<&'static DependentRoots>> {
    static ALL: OnceLock<BTreeMap<(String, String), Vec<&'static DependentRoots>>> =
        OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for found in inventory::iter::<DependentRoots> {
            all.entry((found.syncer.to_owned(), (found.table)().to_owned()))
                .or_default()
                .push(found);
        }
        all
    })
}

/// For the first 1,000 logged touches that name a dependent, by touch id: the roots their
/// dependents have in the committed data, found by the registered function, through `db`
/// outside any transaction (so that a function taking a lock holds it only for its statement).
/// Every such touch read has an entry, empty when there is nothing more to touch: the
/// dependent is gone, its function finds no root, this program does not know its model, or
/// the function failed (logged as a warning: the touch still reaches the root found when it
/// was written).
pub(crate) async fn logged_dependents(
    db: &DatabaseConnection,
) -> Result<BTreeMap<i64, Vec<RootKey>>> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(store::statement(
            backend,
            "SELECT id, syncer, dependent, dependent_key FROM sync_touches \
             WHERE dependent IS NOT NULL ORDER BY id LIMIT 1000",
            vec![],
        ))
        .await
        .map_err(Error::db_while("reading the dependents of logged touches"))?;
    let mut found = BTreeMap::new();
    if rows.is_empty() {
        return Ok(found);
    }
    let mut touches = Vec::with_capacity(rows.len());
    let mut wanted: BTreeMap<(String, String), BTreeSet<RootKey>> = BTreeMap::new();
    for row in &rows {
        let id: i64 = row.try_get("", "id")?;
        let syncer: String = row.try_get("", "syncer")?;
        let table: String = row.try_get("", "dependent")?;
        let key: Option<String> = row.try_get("", "dependent_key")?;
        let key = RootKey::from(key.unwrap_or_default());
        wanted
            .entry((syncer.clone(), table.clone()))
            .or_default()
            .insert(key.clone());
        touches.push((id, syncer, table, key));
    }
    let mut roots: BTreeMap<(String, String, RootKey), Vec<RootKey>> = BTreeMap::new();
    for ((syncer, table), keys) in wanted {
        let Some(registered) = registrations().get(&(syncer.clone(), table.clone())) else {
            continue;
        };
        let keys: Vec<RootKey> = keys.into_iter().collect();
        for registration in registered {
            match (registration.find)(db, &keys).await {
                Ok(pairs) => {
                    for (key, root) in pairs {
                        roots
                            .entry((syncer.clone(), table.clone(), key))
                            .or_default()
                            .push(root);
                    }
                }
                Err(error) => tracing::warn!(
                    %error,
                    syncer,
                    table,
                    "finding the roots of logged dependents again failed; their touches reach \
                     the roots found when they were written"
                ),
            }
        }
    }
    for (id, syncer, table, key) in touches {
        let again = roots
            .get(&(syncer, table, key))
            .cloned()
            .unwrap_or_default();
        found.insert(id, again);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_keys_are_typed_as_their_columns() {
        assert_eq!(
            typed_value(&ColumnType::Integer, "42"),
            Some(Value::from(42_i32))
        );
        assert_eq!(typed_value(&ColumnType::Integer, "x"), None);
        assert_eq!(
            typed_value(&ColumnType::Text, "a,b"),
            Some(Value::from("a,b"))
        );
    }
}
