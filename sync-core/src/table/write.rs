//! Upserts, moves and deletes.

use std::collections::HashSet;

use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait, OnConflict, Query, SelectStatement, TableRef,
};
use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::Value;

use super::catalog::{Column, Resolved};
use super::{DeleteMode, TableSink, error, value};
use crate::{BulkItem, Error, RemoteId, Result};

/// One payload, ready to write.
struct Row {
    /// The item's index in the batch.
    index: usize,
    /// The remote id the row's key makes.
    remote_id: RemoteId,
    /// The values of the mapped columns, in mapping order.
    values: Vec<Expr>,
    /// For an update: the key of the row it replaces, and whether that is another row.
    old: Option<(Vec<Value>, bool)>,
}

/// Upserts the rows of `items`; one result per item, in order.
pub(super) async fn push_many(
    sink: &TableSink,
    resolved: &Resolved,
    items: &[BulkItem],
) -> Vec<Result<RemoteId>> {
    let mut results: Vec<Option<Result<RemoteId>>> = items.iter().map(|_| None).collect();
    let mut rows = Vec::with_capacity(items.len());
    let mut keys_seen = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        match row(sink, resolved, index, item) {
            Ok(row) if !keys_seen.insert(row.remote_id.as_str().to_owned()) => {
                results[index] = Some(Err(Error::permanent(format!(
                    "table sink `{}`: key `{}` is written by two groups in one batch; the key \
                     columns must identify the group's root",
                    sink.inner.shown, row.remote_id
                ))));
            }
            Ok(row) => rows.push(row),
            Err(error) => results[index] = Some(Err(error)),
        }
    }

    // An update whose row is gone fails as a 404 does: the syncer's `when_missing` decides.
    let olds: Vec<&Vec<Value>> = rows
        .iter()
        .filter_map(|r| r.old.as_ref().map(|(key, _)| key))
        .collect();
    if !olds.is_empty() {
        match live_keys(sink, resolved, &olds).await {
            Ok(live) => rows.retain(|row| {
                let Some((old, _)) = &row.old else {
                    return true;
                };
                let old_id = value::remote_id(old);
                if live.contains(old_id.as_str()) {
                    return true;
                }
                results[row.index] = Some(Err(missing(sink, resolved, &old_id)));
                false
            }),
            Err(error) => rows.retain(|row| {
                if row.old.is_none() {
                    return true;
                }
                results[row.index] = Some(Err(error.copy_for_item()));
                false
            }),
        }
    }

    let per_statement = rows_per_statement(resolved, sink.inner.batch_size);
    let mut written = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(per_statement) {
        let refs: Vec<&Row> = chunk.iter().collect();
        match upsert(sink, resolved, &refs).await {
            Ok(()) => written.extend(chunk.iter()),
            Err(error) if chunk.len() > 1 && matches!(error, Error::Permanent { .. }) => {
                // One row's data refused the statement: write them one by one, so that only
                // the rows at fault fail.
                for row in chunk {
                    match upsert(sink, resolved, &[row]).await {
                        Ok(()) => written.push(row),
                        Err(error) => results[row.index] = Some(Err(error)),
                    }
                }
            }
            Err(error) => {
                for row in chunk {
                    results[row.index] = Some(Err(error.copy_for_item()));
                }
            }
        }
    }

    // Updates that changed the key moved their row: the old one goes, unless another group of
    // this batch has just written that key.
    let written_ids: HashSet<&str> = written.iter().map(|r| r.remote_id.as_str()).collect();
    let moved: Vec<&Row> = written
        .iter()
        .copied()
        .filter(|r| {
            r.old.as_ref().is_some_and(|(old, other)| {
                *other && !written_ids.contains(value::remote_id(old).as_str())
            })
        })
        .collect();
    let mut move_failed = HashSet::new();
    for chunk in moved.chunks(per_statement) {
        let olds: Vec<&Vec<Value>> = chunk
            .iter()
            .filter_map(|r| r.old.as_ref().map(|(k, _)| k))
            .collect();
        if let Err(error) = remove(sink, resolved, &olds, "removing the rows of changed keys").await
        {
            for row in chunk {
                results[row.index] = Some(Err(error.copy_for_item()));
                move_failed.insert(row.index);
            }
        }
    }
    for row in written {
        if !move_failed.contains(&row.index) {
            results[row.index] = Some(Ok(row.remote_id.clone()));
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(Error::permanent("the table sink left an item unanswered")))
        })
        .collect()
}

/// Deletes (or soft-deletes) the row `remote_id`.
pub(super) async fn delete(sink: &TableSink, resolved: &Resolved, remote_id: &str) -> Result<()> {
    let key = decode(sink, resolved, remote_id)?;
    remove(
        sink,
        resolved,
        &[&key],
        &format!("deleting key `{remote_id}`"),
    )
    .await
}

/// The remote id's key values, or a permanent error saying it is no key of this table.
pub(super) fn decode(sink: &TableSink, resolved: &Resolved, remote_id: &str) -> Result<Vec<Value>> {
    value::key_values(&resolved.key_columns(), remote_id).map_err(|why| {
        Error::permanent(format!(
            "table sink `{}`: the remote id `{remote_id}` is not a key of the table: {why}",
            sink.inner.shown
        ))
    })
}

/// The table, as statements name it.
pub(super) fn table_ref(sink: &TableSink) -> TableRef {
    let inner = &*sink.inner;
    match &inner.schema {
        Some(schema) => (Alias::new(schema.clone()), Alias::new(inner.name.clone())).into(),
        None => Alias::new(inner.name.clone()).into(),
    }
}

/// Rows whose key columns hold one of `keys` (canonical values).
pub(super) fn key_condition(
    resolved: &Resolved,
    keys: &[&Vec<Value>],
) -> std::result::Result<Condition, String> {
    let columns = resolved.key_columns();
    let mut any = Condition::any();
    for key in keys {
        let mut all = Condition::all();
        for (column, value) in columns.iter().zip(key.iter()) {
            let bound = value::to_sql(column, resolved.backend, Some(value))?;
            all = all.add(Expr::col(Alias::new(column.name.clone())).eq(bound));
        }
        any = any.add(all);
    }
    Ok(any)
}

/// Rows not soft-deleted.
pub(super) fn live(resolved: &Resolved) -> Condition {
    let mut live = Condition::all();
    if let Some(flag) = &resolved.soft_delete {
        let column = Alias::new(flag.name.clone());
        live = live.add(
            Condition::any()
                .add(Expr::col(column.clone()).is_null())
                .add(Expr::col(column).eq(value::flag(flag, false))),
        );
    }
    live
}

/// The type a column is read as text with.
pub(super) fn text_type(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::MySql => "CHAR",
        _ => "TEXT",
    }
}

/// A column read as text, for reading back.
pub(super) fn as_text(resolved: &Resolved, column: &str) -> Expr {
    Expr::col(Alias::new(column.to_owned())).cast_as(Alias::new(text_type(resolved.backend)))
}

/// The key of the row of `payload`, canonical.
pub(super) fn key_of(sink: &TableSink, resolved: &Resolved, payload: &Value) -> Result<Vec<Value>> {
    resolved
        .key_columns()
        .into_iter()
        .map(|column| {
            value::canonical(column, payload.pointer(&column.pointer)).map_err(|why| {
                Error::permanent(format!(
                    "table sink `{}`: key column `{}` is mapped from `{}`, which {why}",
                    sink.inner.shown, column.name, column.pointer
                ))
            })
        })
        .collect()
}

fn row(sink: &TableSink, resolved: &Resolved, index: usize, item: &BulkItem) -> Result<Row> {
    let shown = &sink.inner.shown;
    let key = key_of(sink, resolved, &item.payload)?;
    let remote_id = value::remote_id(&key);
    let mut values = Vec::with_capacity(resolved.columns.len());
    for column in &resolved.columns {
        values.push(
            value::to_sql(
                column,
                resolved.backend,
                item.payload.pointer(&column.pointer),
            )
            .map_err(|why| {
                Error::permanent(format!(
                    "table sink `{shown}`, key `{remote_id}`: the payload's `{}` is {why}",
                    column.pointer
                ))
            })?,
        );
    }
    let old = match &item.remote_id {
        None => None,
        Some(old) => {
            let old_key = decode(sink, resolved, old.as_str())?;
            let other = old_key != key;
            Some((old_key, other))
        }
    };
    Ok(Row {
        index,
        remote_id,
        values,
        old,
    })
}

fn missing(sink: &TableSink, resolved: &Resolved, remote_id: &RemoteId) -> Error {
    let how = if resolved.soft_delete.is_some() {
        "no live row (none, or one marked deleted)"
    } else {
        "no row"
    };
    Error::Permanent {
        message: format!(
            "table sink `{}` has {how} with key `{remote_id}`: it was deleted behind the \
             framework's back",
            sink.inner.shown
        ),
        status: Some(404),
    }
}

/// How many rows one statement carries: the batch size, or fewer when the database's limit of
/// bound parameters needs it.
fn rows_per_statement(resolved: &Resolved, batch_size: usize) -> usize {
    let per_row = resolved.columns.len() + usize::from(resolved.soft_delete.is_some());
    (parameter_limit(resolved.backend) / per_row.max(1)).clamp(1, batch_size.max(1))
}

/// The most parameters one statement may bind.
fn parameter_limit(backend: DbBackend) -> usize {
    match backend {
        // SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32.
        DbBackend::Sqlite => 32_766,
        _ => 65_535,
    }
}

async fn upsert(sink: &TableSink, resolved: &Resolved, rows: &[&Row]) -> Result<()> {
    let mut insert = Query::insert();
    insert.into_table(table_ref(sink));
    let mut columns: Vec<Alias> = resolved
        .columns
        .iter()
        .map(|c| Alias::new(c.name.clone()))
        .collect();
    if let Some(flag) = &resolved.soft_delete {
        columns.push(Alias::new(flag.name.clone()));
    }
    insert.columns(columns);
    for row in rows {
        let mut values = row.values.clone();
        if let Some(flag) = &resolved.soft_delete {
            values.push(value::flag(flag, false));
        }
        insert
            .values(values)
            .expect("one value per column, as built");
    }
    let keys: Vec<Alias> = resolved
        .key_columns()
        .iter()
        .map(|c| Alias::new(c.name.clone()))
        .collect();
    let mut updates: Vec<Alias> = resolved
        .columns
        .iter()
        .enumerate()
        .filter(|(i, _)| !resolved.keys.contains(i))
        .map(|(_, c)| Alias::new(c.name.clone()))
        .collect();
    if let Some(flag) = &resolved.soft_delete {
        updates.push(Alias::new(flag.name.clone()));
    }
    let mut on_conflict = OnConflict::columns(keys.clone());
    if updates.is_empty() {
        // Only key columns: the row is there or it is not; a no-op update keeps one statement
        // form on every backend.
        on_conflict.update_column(keys[0].clone());
    } else {
        on_conflict.update_columns(updates);
    }
    insert.on_conflict(on_conflict);
    let doing = match rows {
        [one] => format!("upserting key `{}`", one.remote_id),
        many => format!("upserting {} rows", many.len()),
    };
    sink.inner
        .db
        .execute(&insert)
        .await
        .map(drop)
        .map_err(|e| error::classify(sink, &e, &doing))
}

/// Deletes (or soft-deletes) the rows of `keys`. Rows already gone are no error.
async fn remove(
    sink: &TableSink,
    resolved: &Resolved,
    keys: &[&Vec<Value>],
    doing: &str,
) -> Result<()> {
    let condition = key_condition(resolved, keys).map_err(|why| {
        Error::permanent(format!("table sink `{}`: {doing}: {why}", sink.inner.shown))
    })?;
    let result = match &sink.inner.delete {
        DeleteMode::SoftDelete { .. } => {
            let flag = resolved
                .soft_delete
                .as_ref()
                .expect("resolved with the delete mode");
            let mut update = Query::update();
            update
                .table(table_ref(sink))
                .value(Alias::new(flag.name.clone()), value::flag(flag, true))
                .cond_where(condition);
            sink.inner.db.execute(&update).await
        }
        _ => {
            let mut delete = Query::delete();
            delete.from_table(table_ref(sink)).cond_where(condition);
            sink.inner.db.execute(&delete).await
        }
    };
    result
        .map(drop)
        .map_err(|e| error::classify(sink, &e, doing))
}

/// Which of `keys` have a live row: their remote ids.
async fn live_keys(
    sink: &TableSink,
    resolved: &Resolved,
    keys: &[&Vec<Value>],
) -> Result<HashSet<String>> {
    let key_columns: Vec<&Column> = resolved.key_columns();
    let per_statement = (parameter_limit(resolved.backend) / key_columns.len().max(1)).max(1);
    let mut live = HashSet::new();
    for chunk in keys.chunks(per_statement) {
        let condition = key_condition(resolved, chunk).map_err(|why| {
            Error::permanent(format!(
                "table sink `{}`: looking rows up: {why}",
                sink.inner.shown
            ))
        })?;
        let mut select: SelectStatement = Query::select();
        for column in &key_columns {
            select.expr(as_text(resolved, &column.name));
        }
        select
            .from(table_ref(sink))
            .cond_where(condition)
            .cond_where(self::live(resolved));
        let rows = sink
            .inner
            .db
            .query_all(&select)
            .await
            .map_err(|e| error::classify(sink, &e, "looking up the rows to update"))?;
        for row in rows {
            let mut key = Vec::with_capacity(key_columns.len());
            for (i, column) in key_columns.iter().enumerate() {
                let text: Option<String> = row.try_get_by_index(i).map_err(|e| {
                    Error::permanent(format!(
                        "table sink `{}`: reading key column `{}`: {e}",
                        sink.inner.shown, column.name
                    ))
                })?;
                key.push(value::from_text(column.ty, text));
            }
            live.insert(value::remote_id(&key).as_str().to_owned());
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnType;

    fn resolved(backend: DbBackend, columns: usize, soft_delete: bool) -> Resolved {
        let column = |i: usize| Column {
            name: format!("c{i}"),
            pointer: format!("/c{i}"),
            ty: ColumnType::Text,
            cast: None,
            naive: false,
        };
        Resolved {
            backend,
            columns: (0..columns).map(column).collect(),
            keys: vec![0],
            soft_delete: soft_delete.then(|| column(columns)),
        }
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        // 10 columns and the soft-delete flag: 11 parameters a row.
        assert_eq!(
            rows_per_statement(&resolved(DbBackend::Postgres, 10, true), 500),
            500
        );
        assert_eq!(
            rows_per_statement(&resolved(DbBackend::Postgres, 10, true), 10_000),
            65_535 / 11
        );
        assert_eq!(
            rows_per_statement(&resolved(DbBackend::Sqlite, 100, false), 10_000),
            327
        );
        assert_eq!(
            rows_per_statement(&resolved(DbBackend::MySql, 70_000, false), 500),
            1,
            "at least one row"
        );
    }
}
