//! Reading a sink table's columns from the database's catalog, and checking the mapping
//! against them.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{ColumnType, DeleteMode, TableSink, error};
use crate::{Error, Result};

/// The mapping, checked against the table: every column with the type it is written as.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(super) backend: DbBackend,
    /// The mapped columns, in mapping order.
    pub(super) columns: Vec<Column>,
    /// The key columns, as indexes into `columns`, in key order.
    pub(super) keys: Vec<usize>,
    /// The soft-delete column (its pointer is empty).
    pub(super) soft_delete: Option<Column>,
}

impl Resolved {
    /// The key columns, in key order.
    pub(super) fn key_columns(&self) -> Vec<&Column> {
        self.keys.iter().map(|&i| &self.columns[i]).collect()
    }
}

/// One column and how values are written into it.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) pointer: String,
    pub(super) ty: ColumnType,
    /// PostgreSQL: a type the sink does not know; the value's text is cast to it.
    pub(super) cast: Option<String>,
    /// PostgreSQL `timestamp without time zone`: written as UTC without an offset.
    pub(super) naive: bool,
}

/// A column as the catalog describes it.
#[derive(Debug)]
struct Found {
    name: String,
    declared: String,
    ty: ColumnType,
    cast: Option<String>,
    naive: bool,
}

/// Reads the table's columns and checks the sink's mapping against them.
pub(super) async fn resolve(sink: &TableSink) -> Result<Resolved> {
    let backend = sink.backend()?;
    let inner = &*sink.inner;
    let found = match backend {
        DbBackend::Postgres => postgres(sink).await?,
        DbBackend::MySql => mysql(sink).await?,
        _ => sqlite(sink).await?,
    };
    if found.is_empty() {
        let how = match backend {
            DbBackend::Postgres if inner.schema.is_none() => {
                " (looked up on the connection's `search_path`)"
            }
            DbBackend::MySql if inner.schema.is_none() => {
                " (looked up in the connection's database)"
            }
            _ => "",
        };
        return Err(Error::Config(format!(
            "table sink `{}`: the table does not exist in the sink's database{how}; create it \
             (with a primary key or unique index on {}) before the worker pushes",
            inner.shown,
            list(&inner.keys)
        )));
    }
    let lookup = |name: &str| {
        found.iter().find(|f| f.name == name).or_else(|| {
            // Column names are case-insensitive on MySQL and SQLite.
            (backend != DbBackend::Postgres)
                .then(|| found.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
                .flatten()
        })
    };
    let missing = |name: &str, what: &str| {
        Error::Config(format!(
            "table sink `{}`: the table has no column `{name}` ({what}); its columns are {}",
            inner.shown,
            list(&found.iter().map(|f| f.name.clone()).collect::<Vec<_>>())
        ))
    };
    let mut columns = Vec::with_capacity(inner.columns.len());
    for spec in &inner.columns {
        let what = format!("mapped from `{}`", spec.pointer);
        let column = lookup(&spec.name).ok_or_else(|| missing(&spec.name, &what))?;
        columns.push(match spec.ty {
            Some(ty) => Column {
                name: spec.name.clone(),
                pointer: spec.pointer.clone(),
                ty,
                cast: None,
                naive: ty == ColumnType::Timestamp && column.naive,
            },
            None => Column {
                name: spec.name.clone(),
                pointer: spec.pointer.clone(),
                ty: column.ty,
                cast: column.cast.clone(),
                naive: column.naive,
            },
        });
    }
    let keys: Vec<usize> = inner
        .keys
        .iter()
        .map(|key| {
            columns
                .iter()
                .position(|c| &c.name == key)
                .expect("build checked that every key column is mapped")
        })
        .collect();
    for &i in &keys {
        if columns[i].ty == ColumnType::Json {
            return Err(Error::Config(format!(
                "table sink `{}`: key column `{}` holds JSON; a key must be a scalar column",
                inner.shown, columns[i].name
            )));
        }
    }
    let soft_delete = match &inner.delete {
        DeleteMode::Delete => None,
        DeleteMode::SoftDelete { column } => {
            let found = lookup(column).ok_or_else(|| missing(column, "the soft-delete column"))?;
            if !matches!(found.ty, ColumnType::Boolean | ColumnType::Integer) {
                return Err(Error::Config(format!(
                    "table sink `{}`: soft-delete column `{column}` is `{}`; it must be a \
                     boolean (or an integer holding 0 and 1)",
                    inner.shown, found.declared
                )));
            }
            Some(Column {
                name: column.clone(),
                pointer: String::new(),
                ty: found.ty,
                cast: None,
                naive: false,
            })
        }
    };
    if backend == DbBackend::MySql {
        mysql_unique_key(sink).await?;
    }
    Ok(Resolved {
        backend,
        columns,
        keys,
        soft_delete,
    })
}

/// `a`, `b` and `c`, for messages.
fn list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "none".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

async fn rows(sink: &TableSink, statement: Statement) -> Result<Vec<sea_orm::QueryResult>> {
    sink.inner
        .db
        .query_all_raw(statement)
        .await
        .map_err(|e| error::classify(sink, &e, "reading the table's columns from the catalog"))
}

fn text(row: &sea_orm::QueryResult, column: &str) -> Result<String> {
    row.try_get::<Option<String>>("", column)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::permanent(format!("reading the catalog's `{column}`: {e}")))
}

async fn postgres(sink: &TableSink) -> Result<Vec<Found>> {
    let inner = &*sink.inner;
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let name = match &inner.schema {
        Some(schema) => format!("{}.{}", quote(schema), quote(&inner.name)),
        None => quote(&inner.name),
    };
    // `to_regclass` resolves the name as the statements will: on the `search_path` unless
    // qualified.
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS declared, \
                t.typname::text AS udt \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
        [name.into()],
    );
    let mut found = Vec::new();
    for row in rows(sink, statement).await? {
        let declared = text(&row, "declared")?;
        let udt = text(&row, "udt")?;
        let (ty, cast, naive) = match udt.as_str() {
            "int2" | "int4" | "int8" => (ColumnType::Integer, None, false),
            "float4" | "float8" | "numeric" => (ColumnType::Float, None, false),
            "bool" => (ColumnType::Boolean, None, false),
            "json" | "jsonb" => (ColumnType::Json, None, false),
            "timestamptz" => (ColumnType::Timestamp, None, false),
            "timestamp" => (ColumnType::Timestamp, None, true),
            "date" => (ColumnType::Date, None, false),
            "uuid" => (ColumnType::Uuid, None, false),
            "text" | "varchar" | "bpchar" | "name" => (ColumnType::Text, None, false),
            _ => (ColumnType::Text, Some(declared.clone()), false),
        };
        found.push(Found {
            name: text(&row, "name")?,
            declared,
            ty,
            cast,
            naive,
        });
    }
    Ok(found)
}

async fn mysql(sink: &TableSink) -> Result<Vec<Found>> {
    let inner = &*sink.inner;
    let schema = || sea_orm::Value::String(inner.schema.clone());
    let statement = Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(DATA_TYPE AS CHAR) AS data_type, \
                CAST(COLUMN_TYPE AS CHAR) AS declared \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
        [schema(), inner.name.clone().into()],
    );
    let columns = rows(sink, statement).await?;
    // MariaDB's JSON is `longtext` with a `json_valid` check; MySQL reports `json` itself (and
    // has no `TABLE_NAME` here, so the question fails there and is not needed).
    let checks = sink
        .inner
        .db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT CAST(CHECK_CLAUSE AS CHAR) AS clause FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            [schema(), inner.name.clone().into()],
        ))
        .await
        .unwrap_or_default();
    let mut json_checked = Vec::new();
    for row in checks {
        let clause = text(&row, "clause")?;
        let clause = clause.trim();
        if let Some(rest) = clause
            .strip_prefix("json_valid(`")
            .and_then(|r| r.strip_suffix("`)"))
        {
            json_checked.push(rest.replace("``", "`"));
        }
    }
    let mut found = Vec::new();
    for row in columns {
        let name = text(&row, "name")?;
        let data_type = text(&row, "data_type")?.to_ascii_lowercase();
        let declared = text(&row, "declared")?;
        let ty = match data_type.as_str() {
            "tinyint" if declared.to_ascii_lowercase().starts_with("tinyint(1)") => {
                ColumnType::Boolean
            }
            "bool" | "boolean" => ColumnType::Boolean,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                ColumnType::Integer
            }
            "float" | "double" | "real" | "decimal" | "numeric" => ColumnType::Float,
            "json" => ColumnType::Json,
            "longtext" if json_checked.iter().any(|c| c.eq_ignore_ascii_case(&name)) => {
                ColumnType::Json
            }
            "datetime" | "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            _ => ColumnType::Text,
        };
        found.push(Found {
            name,
            declared,
            ty,
            cast: None,
            naive: false,
        });
    }
    Ok(found)
}

/// MySQL/MariaDB upsert on any unique index, and insert when there is none: without a
/// primary key or unique index on exactly the key columns, upserts would make duplicates.
async fn mysql_unique_key(sink: &TableSink) -> Result<()> {
    let inner = &*sink.inner;
    let statement = Statement::from_sql_and_values(
        DbBackend::MySql,
        "SELECT CAST(INDEX_NAME AS CHAR) AS index_name, CAST(COLUMN_NAME AS CHAR) AS column_name \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0",
        [
            sea_orm::Value::String(inner.schema.clone()),
            inner.name.clone().into(),
        ],
    );
    let mut indexes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows(sink, statement).await? {
        indexes
            .entry(text(&row, "index_name")?)
            .or_default()
            .push(text(&row, "column_name")?.to_ascii_lowercase());
    }
    let mut keys: Vec<String> = inner.keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    keys.sort();
    let covered = indexes.values_mut().any(|columns| {
        columns.sort();
        *columns == keys
    });
    if covered {
        return Ok(());
    }
    Err(Error::Config(format!(
        "table sink `{}`: the table has no primary key or unique index on exactly {}; \
         MySQL and MariaDB would insert duplicates instead of updating: add one",
        inner.shown,
        list(&inner.keys)
    )))
}

async fn sqlite(sink: &TableSink) -> Result<Vec<Found>> {
    let inner = &*sink.inner;
    let statement = match &inner.schema {
        Some(schema) => Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT name, type AS declared FROM pragma_table_info(?, ?)",
            [inner.name.clone().into(), schema.clone().into()],
        ),
        None => Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT name, type AS declared FROM pragma_table_info(?)",
            [inner.name.clone().into()],
        ),
    };
    let mut found = Vec::new();
    for row in rows(sink, statement).await? {
        let declared = text(&row, "declared")?;
        found.push(Found {
            name: text(&row, "name")?,
            ty: sqlite_type(&declared),
            declared,
            cast: None,
            naive: false,
        });
    }
    Ok(found)
}

/// The type of an SQLite column by its declared type's name (what SeaORM's schema builder
/// writes included: `json_text`, `timestamp_with_timezone_text`, `uuid_text`).
fn sqlite_type(declared: &str) -> ColumnType {
    let d = declared.to_ascii_lowercase();
    if d.contains("bool") {
        ColumnType::Boolean
    } else if d.contains("json") {
        ColumnType::Json
    } else if d.contains("uuid") {
        ColumnType::Uuid
    } else if d.contains("timestamp") || d.contains("datetime") {
        ColumnType::Timestamp
    } else if d.starts_with("date") {
        ColumnType::Date
    } else if d.contains("int") {
        ColumnType::Integer
    } else if ["real", "floa", "doub", "numeric", "decimal"]
        .iter()
        .any(|t| d.contains(t))
    {
        ColumnType::Float
    } else {
        ColumnType::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_types_follow_their_declared_names() {
        for (declared, ty) in [
            ("INTEGER", ColumnType::Integer),
            ("bigint", ColumnType::Integer),
            ("BOOLEAN", ColumnType::Boolean),
            ("json_text", ColumnType::Json),
            ("timestamp_with_timezone_text", ColumnType::Timestamp),
            ("DATETIME", ColumnType::Timestamp),
            ("date", ColumnType::Date),
            ("uuid_text", ColumnType::Uuid),
            ("DOUBLE PRECISION", ColumnType::Float),
            ("REAL", ColumnType::Float),
            ("varchar(20)", ColumnType::Text),
            ("", ColumnType::Text),
        ] {
            assert_eq!(sqlite_type(declared), ty, "{declared}");
        }
    }

    #[test]
    fn lists_read_well() {
        let l = |names: &[&str]| list(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        assert_eq!(l(&[]), "none");
        assert_eq!(l(&["id"]), "`id`");
        assert_eq!(l(&["a", "b", "c"]), "`a`, `b` and `c`");
    }
}
