//! The built-in table sink: a [`Syncer`](crate::Syncer) that keeps a table of another database
//! in step, through SeaORM (PostgreSQL, MySQL/MariaDB, SQLite). See [`TableSink`].

mod catalog;
mod error;
mod read;
mod value;
mod write;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use sea_orm::{DatabaseConnection, DbBackend};
use serde_json::Value;

use crate::{BulkItem, Error, RemoteId, Result};

pub(crate) use catalog::Resolved;

/// How the sink's rows are kept in step with the application's data: each group is one row of a
/// table in another database, written with upserts by its key columns.
///
/// - **Rows.** Every mapped column takes the payload's value at its JSON pointer (an absent
///   value or `null` writes `NULL`). A create and an update are both one upsert (`INSERT … ON
///   CONFLICT (keys) DO UPDATE`, or `ON DUPLICATE KEY UPDATE` on MySQL/MariaDB): a create
///   repeated after a crash overwrites the row it wrote before, so the syncer's
///   [`creates_upsert`](crate::Syncer::creates_upsert) is `true`. The key columns must carry a
///   primary key or a unique index; on MySQL/MariaDB the sink checks that it exists, because
///   there a missing one would let duplicates in.
/// - **Batches.** Creates and updates ready at the same moment are written in one statement,
///   at most [`batch_size`](TableSinkBuilder::batch_size) rows (500 by default), and fewer when
///   the database's limit of bound parameters (65,535 on PostgreSQL and MySQL, 32,766 on
///   SQLite) needs it. A statement refused for one row's data is repeated row by row, so that
///   only the rows at fault fail.
/// - **Remote ids.** A row's remote id is its key: for one key column, the key's value (a JSON
///   number for an integer column, otherwise text); for several, the JSON array of their values
///   in key order, as text (`["eu",12]`). When an update's payload carries another key than the
///   group's remote id, the row moves: the new key is written and the old row deleted (or
///   soft-deleted).
/// - **Deletes.** When the root is deleted, the row is deleted, or with
///   [`soft_delete`](TableSinkBuilder::soft_delete) its boolean column is set to true (the
///   upserts write false there, so a restored root is live again). Deleting a row that is gone
///   succeeds.
/// - **A lost row.** An update whose row is missing (deleted by hand, or soft-deleted) fails
///   as the HTTP remote's `404` does: with status 404, so that the syncer's
///   [`when_missing`](crate::Syncer::when_missing) decides (by default the group fails visibly
///   and `forget --missing` recreates it; with `WhenMissing::Recreate` the next attempt writes it
///   back).
/// - **Types.** Each column's type is read from the database's catalog on first use (or given
///   with [`column_as`](TableSinkBuilder::column_as)); see [`ColumnType`] for what each accepts.
///   A payload value that does not fit its column fails that group with [`Error::Permanent`]
///   naming the table, column, key and field. A missing table or column is an
///   [`Error::Config`] naming what exists; a database that cannot be reached, or a deadlock, is
///   [`Error::Retryable`].
/// - **Verification.** [`fetch`](Self::fetch) reads the row back into the payload's shape
///   (each column's value at its pointer), so `verify` compares it field by field; a
///   soft-deleted row counts as missing.
///
/// A syncer hands its pushes to the sink by returning it from
/// [`Syncer::table`](crate::Syncer::table):
///
/// ```no_run
/// # async fn demo(warehouse: sea_orm::DatabaseConnection) -> sync_core::Result<()> {
/// use serde_json::{Value, json};
/// use sync_core::{Result, Syncer, TableSink, TranslateContext, async_trait};
///
/// struct CustomerReport { sink: TableSink }
///
/// #[async_trait]
/// impl Syncer for CustomerReport {
///     fn name(&self) -> &str { "report.customer" }
///     async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
///         let id: i64 = cx.key()?;
///         // Read the customer through `cx.db()`; `Ok(None)` when it is gone.
///         Ok(Some(json!({ "id": id, "name": "Ada", "address": { "city": "London" } })))
///     }
///     fn table(&self) -> Option<&TableSink> { Some(&self.sink) }
/// }
///
/// let sink = TableSink::builder(warehouse, "reporting.customers")
///     .key("customer_id")
///     .column("customer_id", "/id")
///     .column("name", "name")
///     .column("city", "/address/city")
///     .soft_delete("is_deleted")
///     .build()?;
/// let syncer = CustomerReport { sink };
/// # let _ = syncer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TableSink {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    /// `None` for a connection that is not connected (`DatabaseConnection::default()`).
    backend: Option<DbBackend>,
    /// The name as given, for messages.
    shown: String,
    /// The schema (PostgreSQL), database (MySQL) or attached database (SQLite), if given.
    schema: Option<String>,
    /// The table's own name.
    name: String,
    keys: Vec<String>,
    columns: Vec<ColumnSpec>,
    delete: DeleteMode,
    batch_size: usize,
    /// The columns' types, read from the catalog once it answered.
    resolved: Mutex<Option<Arc<Resolved>>>,
}

/// One mapped column, as configured.
#[derive(Debug, Clone)]
struct ColumnSpec {
    name: String,
    pointer: String,
    ty: Option<ColumnType>,
}

impl fmt::Debug for TableSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("TableSink")
            .field("table", &i.shown)
            .field("backend", &i.backend)
            .field("keys", &i.keys)
            .field(
                "columns",
                &i.columns
                    .iter()
                    .map(|c| format!("{} <- {}", c.name, c.pointer))
                    .collect::<Vec<_>>(),
            )
            .field("delete", &i.delete)
            .field("batch_size", &i.batch_size)
            .finish_non_exhaustive()
    }
}

/// The type of a sink column: how a payload value is written into it and read back.
///
/// Without [`TableSinkBuilder::column_as`], a column's type is read from the database's catalog:
/// integer types are `Integer`; `real`, `double`, `float`, `numeric` and `decimal` are `Float`;
/// `boolean` (and MySQL's `tinyint(1)`) is `Boolean`; `json`, `jsonb` (and a MariaDB `longtext`
/// checked by `json_valid`) are `Json`; `timestamp`, `timestamptz` and `datetime` are
/// `Timestamp`; `date` is `Date`; PostgreSQL's `uuid` is `Uuid`; anything else is `Text` (on
/// PostgreSQL the text is cast to the column's type, so that enums and other types work). On
/// SQLite the declared type decides by the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// A JSON string. Numbers, booleans, objects and arrays do not fit (declare the column
    /// `Json` to store JSON text).
    Text,
    /// A JSON integer (or a number with no fraction), as a 64-bit integer.
    Integer,
    /// A JSON number, as a double.
    Float,
    /// A JSON boolean.
    Boolean,
    /// Any JSON value, stored as JSON (`jsonb`/`json` on PostgreSQL, JSON text elsewhere) and
    /// read back parsed.
    Json,
    /// An RFC 3339 date and time (`2024-05-01T12:30:00Z`, any offset; without one, UTC), stored
    /// in UTC and read back as RFC 3339 in UTC with `Z`, as chrono writes a `DateTime<Utc>`.
    Timestamp,
    /// A date, `2024-05-01`.
    Date,
    /// A UUID in text form, read back lowercase with hyphens.
    Uuid,
}

impl ColumnType {
    fn label(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Uuid => "uuid",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a root's deletion does to its row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeleteMode {
    /// `DELETE` the row.
    #[default]
    Delete,
    /// Set this boolean column to true and keep the row. Upserts write false there.
    SoftDelete {
        /// The column, e.g. `is_deleted`; it must not be mapped from the payload.
        column: String,
    },
}

impl TableSink {
    /// The default number of rows one statement upserts at most.
    pub const DEFAULT_BATCH_SIZE: usize = 500;

    /// A sink writing into `table` (`name`, or `schema.name`: a PostgreSQL schema, a MySQL
    /// database, an attached SQLite database) of `db`, which is usually not the application's
    /// own database. See [`TableSinkBuilder`] for the settings; [`build`](TableSinkBuilder::build)
    /// checks them.
    pub fn builder(db: DatabaseConnection, table: impl Into<String>) -> TableSinkBuilder {
        TableSinkBuilder {
            db,
            table: table.into(),
            keys: Vec::new(),
            columns: Vec::new(),
            delete: DeleteMode::Delete,
            batch_size: Self::DEFAULT_BATCH_SIZE,
        }
    }

    /// The table, as given to [`builder`](Self::builder).
    pub fn table(&self) -> &str {
        &self.inner.shown
    }

    /// The database the sink writes to.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The most rows one statement upserts.
    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// Reads the table's columns from the database's catalog and checks the mapping against
    /// them: the table exists, every key, mapped and soft-delete column exists (and, on
    /// MySQL/MariaDB, a unique index covers the key). Pushes do this on first use; call it at
    /// startup to fail early. [`Error::Config`] names what is wrong.
    pub async fn check(&self) -> Result<()> {
        self.resolved().await.map(drop)
    }

    /// The remote id the row of `payload` would have: its key (see the type's
    /// documentation). Reads the catalog on first use, like a push.
    pub async fn remote_id_of(&self, payload: &Value) -> Result<RemoteId> {
        let resolved = self.resolved().await?;
        let key = write::key_of(self, &resolved, payload)?;
        Ok(value::remote_id(&key))
    }

    /// Upserts the row of `payload`; returns its remote id (its key).
    pub async fn create(&self, payload: &Value) -> Result<RemoteId> {
        let item = BulkItem {
            remote_id: None,
            idempotency_key: String::new(),
            payload: payload.clone(),
        };
        one(self.push_many(std::slice::from_ref(&item)).await)
    }

    /// Upserts the row of `payload` in place of the row `remote_id`, which must exist (else a
    /// [`Error::Permanent`] with status 404, as the HTTP remote answers). When the payload's
    /// key differs from `remote_id`, the row moves (see the type's documentation).
    pub async fn update(&self, remote_id: &str, payload: &Value) -> Result<()> {
        let item = BulkItem {
            remote_id: Some(RemoteId::string(remote_id)),
            idempotency_key: String::new(),
            payload: payload.clone(),
        };
        one(self.push_many(std::slice::from_ref(&item)).await).map(drop)
    }

    /// Deletes the row `remote_id` (or soft-deletes it). A row already gone is no error.
    pub async fn delete(&self, remote_id: &str) -> Result<()> {
        let resolved = self.resolved().await?;
        write::delete(self, &resolved, remote_id).await
    }

    /// Upserts the rows of several creates and updates, in as few statements as the batch size
    /// and the database's parameter limit allow. One result per item, in order: the row's
    /// remote id, or why that item failed.
    pub async fn push_many(&self, items: &[BulkItem]) -> Vec<Result<RemoteId>> {
        match self.resolved().await {
            Ok(resolved) => write::push_many(self, &resolved, items).await,
            Err(error) => items.iter().map(|_| Err(error.copy_for_item())).collect(),
        }
    }

    /// Reads the row `remote_id` back in the payload's shape: each mapped column's value at
    /// its pointer. `Ok(None)` when there is no such row, or it is soft-deleted.
    pub async fn fetch(&self, remote_id: &str) -> Result<Option<Value>> {
        let resolved = self.resolved().await?;
        read::fetch(self, &resolved, remote_id).await
    }

    /// The columns' types, read from the catalog on first use and kept.
    async fn resolved(&self) -> Result<Arc<Resolved>> {
        if let Some(found) = self.inner.resolved.lock().expect("table sink").clone() {
            return Ok(found);
        }
        let found = Arc::new(catalog::resolve(self).await?);
        *self.inner.resolved.lock().expect("table sink") = Some(found.clone());
        Ok(found)
    }

    /// Forgets the catalog read, after the database said the table or a column is not what it
    /// was: the next use reads it again.
    fn forget_catalog(&self) {
        *self.inner.resolved.lock().expect("table sink") = None;
    }

    fn backend(&self) -> Result<DbBackend> {
        self.inner.backend.ok_or_else(|| {
            Error::Config(format!(
                "table sink `{}`: its database connection is not connected; give the builder a \
                 connection from `sync_core::connect` or `sea_orm::Database::connect`",
                self.inner.shown
            ))
        })
    }
}

fn one(mut results: Vec<Result<RemoteId>>) -> Result<RemoteId> {
    results
        .pop()
        .unwrap_or_else(|| Err(Error::permanent("the table sink answered no result")))
}

/// Builds a [`TableSink`]; see [`TableSink::builder`]. Nothing is checked until
/// [`build`](Self::build), and nothing is read from the database until the first use (or
/// [`TableSink::check`]).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct TableSinkBuilder {
    db: DatabaseConnection,
    table: String,
    keys: Vec<String>,
    columns: Vec<ColumnSpec>,
    delete: DeleteMode,
    batch_size: usize,
}

impl TableSinkBuilder {
    /// A key column; call it once per column of a composite key, in order. The key columns
    /// identify a row (a primary key or unique index over exactly them), must be mapped with
    /// [`column`](Self::column), and make the row's remote id.
    pub fn key(mut self, column: impl Into<String>) -> Self {
        self.keys.push(column.into());
        self
    }

    /// Maps `column` from the payload: `source` is a JSON pointer (`/address/city`) or, without
    /// a leading `/`, the name of a top-level field (`name`). The column's type is read from
    /// the database's catalog.
    pub fn column(self, column: impl Into<String>, source: impl Into<String>) -> Self {
        self.push_column(column.into(), source.into(), None)
    }

    /// Maps columns from the top-level payload fields of the same names.
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for column in columns {
            let column = column.into();
            self = self.push_column(column.clone(), column, None);
        }
        self
    }

    /// Like [`column`](Self::column), with the column's type given instead of read from the
    /// catalog, e.g. [`ColumnType::Json`] for a text column holding JSON.
    pub fn column_as(
        self,
        column: impl Into<String>,
        source: impl Into<String>,
        ty: ColumnType,
    ) -> Self {
        self.push_column(column.into(), source.into(), Some(ty))
    }

    /// Soft deletes: a root's deletion sets this boolean column to true instead of deleting
    /// the row. Shorthand for [`delete_mode`](Self::delete_mode) with
    /// [`DeleteMode::SoftDelete`].
    pub fn soft_delete(self, column: impl Into<String>) -> Self {
        self.delete_mode(DeleteMode::SoftDelete {
            column: column.into(),
        })
    }

    /// What a root's deletion does (default [`DeleteMode::Delete`]).
    pub fn delete_mode(mut self, mode: DeleteMode) -> Self {
        self.delete = mode;
        self
    }

    /// The most rows one statement upserts, and so the syncer's
    /// [`batch_limit`](crate::Syncer::batch_limit) (default 500).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    fn push_column(mut self, name: String, source: String, ty: Option<ColumnType>) -> Self {
        let pointer = if source.starts_with('/') || source.is_empty() {
            source
        } else {
            format!("/{}", source.replace('~', "~0").replace('/', "~1"))
        };
        self.columns.push(ColumnSpec { name, pointer, ty });
        self
    }

    /// Checks the settings and builds the sink. Every [`Error::Config`] it returns names the
    /// table and says what to fix.
    pub fn build(self) -> Result<TableSink> {
        let shown = self.table.trim().to_owned();
        let config = |what: String| Error::Config(format!("table sink `{shown}`: {what}"));
        let (schema, table) = match shown.split('.').collect::<Vec<_>>().as_slice() {
            [table] => (None, (*table).to_owned()),
            [schema, table] => (Some((*schema).to_owned()), (*table).to_owned()),
            _ => {
                return Err(config(
                    "give the table as `name` or `schema.name`, with at most one `.`".into(),
                ));
            }
        };
        if table.is_empty() || schema.as_deref().is_some_and(str::is_empty) {
            return Err(config("the table name is empty".into()));
        }
        if self.columns.is_empty() {
            return Err(config(
                "no column is mapped; map the payload's fields with `.column(column, source)`"
                    .into(),
            ));
        }
        let mut seen = HashSet::new();
        for column in &self.columns {
            if column.name.is_empty() {
                return Err(config("a mapped column has an empty name".into()));
            }
            if !seen.insert(column.name.as_str()) {
                return Err(config(format!(
                    "column `{}` is mapped twice; map each column once",
                    column.name
                )));
            }
            check_pointer(&column.pointer).map_err(|why| {
                config(format!(
                    "column `{}` is mapped from `{}`, which {why}",
                    column.name, column.pointer
                ))
            })?;
        }
        for (a, b) in self.columns.iter().flat_map(|a| {
            self.columns
                .iter()
                .filter(move |b| b.name != a.name)
                .map(move |b| (a, b))
        }) {
            if b.pointer.starts_with(&format!("{}/", a.pointer)) {
                return Err(config(format!(
                    "column `{}` is mapped from `{}`, inside `{}` which column `{}` holds; \
                     a row can be read back into one shape only",
                    b.name, b.pointer, a.pointer, a.name
                )));
            }
        }
        if self.keys.is_empty() {
            return Err(config(
                "no key column; name the column(s) that identify a row with `.key(column)`".into(),
            ));
        }
        let mut keys_seen = HashSet::new();
        for key in &self.keys {
            if !keys_seen.insert(key.as_str()) {
                return Err(config(format!("key column `{key}` is given twice")));
            }
            if !seen.contains(key.as_str()) {
                return Err(config(format!(
                    "key column `{key}` is not mapped; map it from the payload with \
                     `.column(\"{key}\", \"/id\")` (the field that identifies the row)"
                )));
            }
            if let Some(ty) = self
                .columns
                .iter()
                .find(|c| &c.name == key)
                .and_then(|c| c.ty)
                && ty == ColumnType::Json
            {
                return Err(config(format!(
                    "key column `{key}` is declared `json`; a key must be a scalar"
                )));
            }
        }
        if let DeleteMode::SoftDelete { column } = &self.delete {
            if column.is_empty() {
                return Err(config("the soft-delete column's name is empty".into()));
            }
            if seen.contains(column.as_str()) {
                return Err(config(format!(
                    "soft-delete column `{column}` is also mapped from the payload; the sink \
                     writes it itself (false on upsert, true on delete)"
                )));
            }
        }
        if self.batch_size == 0 {
            return Err(config("the batch size is 0; give at least 1".into()));
        }
        let backend = (!matches!(self.db.inner, sea_orm::DatabaseConnectionType::Disconnected))
            .then(|| self.db.get_database_backend());
        Ok(TableSink {
            inner: Arc::new(Inner {
                db: self.db,
                backend,
                shown,
                schema,
                name: table,
                keys: self.keys,
                columns: self.columns,
                delete: self.delete,
                batch_size: self.batch_size,
                resolved: Mutex::new(None),
            }),
        })
    }
}

/// Checks an RFC 6901 JSON pointer; the error completes "… which".
fn check_pointer(pointer: &str) -> std::result::Result<(), &'static str> {
    if pointer.is_empty() {
        return Err("is empty; give a field name or a JSON pointer such as `/address/city`");
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("has a `~` not followed by `0` or `1` (write `~0` for `~`, `~1` for `/`)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
