//! Reading a row back into the payload's shape, for verification.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::Query;
use serde_json::Value;

use super::catalog::Resolved;
use super::write::{as_text, decode, key_condition, table_ref};
use super::{TableSink, error, value};
use crate::{Error, Result};

/// The row `remote_id` in the payload's shape; `None` when it is missing or soft-deleted.
pub(super) async fn fetch(
    sink: &TableSink,
    resolved: &Resolved,
    remote_id: &str,
) -> Result<Option<Value>> {
    let key = decode(sink, resolved, remote_id)?;
    let condition = key_condition(resolved, &[&key]).map_err(|why| {
        Error::permanent(format!(
            "table sink `{}`: reading key `{remote_id}`: {why}",
            sink.inner.shown
        ))
    })?;
    let mut select = Query::select();
    for column in &resolved.columns {
        select.expr(as_text(resolved, &column.name));
    }
    if let Some(flag) = &resolved.soft_delete {
        select.expr(as_text(resolved, &flag.name));
    }
    select.from(table_ref(sink)).cond_where(condition).limit(1);
    let doing = format!("reading key `{remote_id}`");
    let Some(row) = sink
        .inner
        .db
        .query_one(&select)
        .await
        .map_err(|e| error::classify(sink, &e, &doing))?
    else {
        return Ok(None);
    };
    let text = |i: usize, column: &str| -> Result<Option<String>> {
        row.try_get_by_index(i).map_err(|e| {
            Error::permanent(format!(
                "table sink `{}`: {doing}: column `{column}` cannot be read as text: {e}",
                sink.inner.shown
            ))
        })
    };
    if let Some(flag) = &resolved.soft_delete
        && value::flag_is_set(text(resolved.columns.len(), &flag.name)?.as_deref())
    {
        return Ok(None);
    }
    let mut payload = Value::Object(serde_json::Map::new());
    for (i, column) in resolved.columns.iter().enumerate() {
        let read = value::from_text(column.ty, text(i, &column.name)?);
        value::set_at(&mut payload, &column.pointer, read);
    }
    Ok(Some(payload))
}
