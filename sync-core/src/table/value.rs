//! Payload values into the values bound for a column, and a column's text back into the
//! payload's JSON.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use sea_orm::DbBackend;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Value as SqlValue};
use serde_json::{Number, Value};

use super::ColumnType;
use super::catalog::Column;
use crate::RemoteId;

/// The expression that writes `value` (a payload value; `None` when the payload lacks it) into
/// `column`, or why it does not fit (completing "`/field` is … , which").
pub(super) fn to_sql(
    column: &Column,
    backend: DbBackend,
    value: Option<&Value>,
) -> Result<Expr, String> {
    let value = value.unwrap_or(&Value::Null);
    if let Some(cast) = &column.cast {
        // A PostgreSQL type the sink does not know: its text form, cast by the database.
        let text = match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        return Ok(Expr::val(SqlValue::String(text)).cast_as(Alias::new(cast.clone())));
    }
    let bound = match column.ty {
        ColumnType::Text => match value {
            Value::Null => SqlValue::String(None),
            Value::String(s) => SqlValue::String(Some(s.clone())),
            other => return Err(misfit(other, column)),
        },
        ColumnType::Integer => match value {
            Value::Null => SqlValue::BigInt(None),
            Value::Number(n) => SqlValue::BigInt(Some(integer(n).ok_or_else(|| {
                format!(
                    "{} is not a whole number that fits a 64-bit integer",
                    shown(value)
                )
            })?)),
            other => return Err(misfit(other, column)),
        },
        ColumnType::Float => match value {
            Value::Null => SqlValue::Double(None),
            Value::Number(n) => SqlValue::Double(n.as_f64()),
            other => return Err(misfit(other, column)),
        },
        ColumnType::Boolean => match value {
            Value::Null => SqlValue::Bool(None),
            Value::Bool(b) => SqlValue::Bool(Some(*b)),
            other => return Err(misfit(other, column)),
        },
        ColumnType::Json => match value {
            Value::Null => SqlValue::Json(None),
            other => SqlValue::Json(Some(Box::new(other.clone()))),
        },
        ColumnType::Timestamp => match value {
            Value::Null if column.naive => SqlValue::ChronoDateTime(None),
            Value::Null => SqlValue::ChronoDateTimeUtc(None),
            Value::String(s) => {
                let at = timestamp(s).ok_or_else(|| {
                    format!(
                        "{} is not an RFC 3339 date and time such as `2024-05-01T12:30:00Z`",
                        shown(value)
                    )
                })?;
                if column.naive {
                    SqlValue::ChronoDateTime(Some(at.naive_utc()))
                } else {
                    SqlValue::ChronoDateTimeUtc(Some(at))
                }
            }
            other => return Err(misfit(other, column)),
        },
        ColumnType::Date => match value {
            Value::Null => SqlValue::ChronoDate(None),
            Value::String(s) => SqlValue::ChronoDate(Some(
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| format!("{} is not a date such as `2024-05-01`", shown(value)))?,
            )),
            other => return Err(misfit(other, column)),
        },
        ColumnType::Uuid => match value {
            Value::Null if backend == DbBackend::Postgres => SqlValue::Uuid(None),
            Value::Null => SqlValue::String(None),
            Value::String(s) => {
                let uuid =
                    Uuid::parse_str(s).map_err(|_| format!("{} is not a UUID", shown(value)))?;
                if backend == DbBackend::Postgres {
                    SqlValue::Uuid(Some(uuid))
                } else {
                    SqlValue::String(Some(uuid.hyphenated().to_string()))
                }
            }
            other => return Err(misfit(other, column)),
        },
    };
    Ok(Expr::val(bound))
}

/// The value of a boolean flag (the soft-delete column) for `column`.
pub(super) fn flag(column: &Column, on: bool) -> Expr {
    match column.ty {
        ColumnType::Integer => Expr::val(SqlValue::BigInt(Some(i64::from(on)))),
        _ => Expr::val(SqlValue::Bool(Some(on))),
    }
}

/// Whether a flag read back as text is set.
pub(super) fn flag_is_set(text: Option<&str>) -> bool {
    text.is_some_and(|t| {
        matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "t" | "true" | "1" | "y" | "yes"
        )
    })
}

/// A column's value, read as text, in the JSON form a payload carries.
pub(super) fn from_text(ty: ColumnType, text: Option<String>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let read = match ty {
        ColumnType::Text => None,
        ColumnType::Integer => text
            .trim()
            .parse::<i64>()
            .ok()
            .map(Value::from)
            .or_else(|| float(&text)),
        ColumnType::Float => float(&text),
        ColumnType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" => Some(Value::Bool(true)),
            "f" | "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        ColumnType::Json => serde_json::from_str(&text).ok(),
        ColumnType::Timestamp => timestamp(&text).map(|at| Value::String(rfc3339(at))),
        ColumnType::Date => NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d")
            .ok()
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
        ColumnType::Uuid => Uuid::parse_str(text.trim())
            .ok()
            .map(|u| Value::String(u.hyphenated().to_string())),
    };
    read.unwrap_or(Value::String(text))
}

/// A key value in its canonical JSON form (the form it is read back in), or why it does not
/// fit the column.
pub(super) fn canonical(column: &Column, value: Option<&Value>) -> Result<Value, String> {
    let value = value.unwrap_or(&Value::Null);
    match (column.ty, value) {
        (_, Value::Null) => Err("is missing or null; a key column needs a value".into()),
        (_, Value::Object(_) | Value::Array(_)) => {
            Err(format!("{}; a key must be a scalar", misfit(value, column)))
        }
        _ if column.cast.is_some() => Ok(match value {
            Value::String(_) => value.clone(),
            other => Value::String(other.to_string()),
        }),
        (ColumnType::Integer, Value::Number(n)) => integer(n)
            .map(Value::from)
            .ok_or_else(|| format!("{} is not a whole number", shown(value))),
        (ColumnType::Float, Value::Number(n)) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{} is not a finite number", shown(value))),
        (ColumnType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (ColumnType::Timestamp, Value::String(s)) => timestamp(s)
            .map(|at| Value::String(rfc3339(at)))
            .ok_or_else(|| format!("{} is not an RFC 3339 date and time", shown(value))),
        (ColumnType::Date, Value::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("{} is not a date such as `2024-05-01`", shown(value))),
        (ColumnType::Uuid, Value::String(s)) => Uuid::parse_str(s)
            .map(|u| Value::String(u.hyphenated().to_string()))
            .map_err(|_| format!("{} is not a UUID", shown(value))),
        (ColumnType::Text | ColumnType::Json, Value::String(_)) => Ok(value.clone()),
        _ => Err(misfit(value, column)),
    }
}

/// The remote id of a row whose key columns hold `values` (canonical): one key's value (a
/// number stays a number), or the JSON array of several keys' values, as text.
pub(super) fn remote_id(values: &[Value]) -> RemoteId {
    match values {
        [Value::Number(n)] => RemoteId::number(n.clone()),
        [Value::String(s)] => RemoteId::string(s.clone()),
        [other] => RemoteId::string(other.to_string()),
        several => RemoteId::string(Value::Array(several.to_vec()).to_string()),
    }
}

/// The key values a remote id stands for, each as a payload value of its key column (then
/// made canonical by [`canonical`]), or why it is not a key of this table.
pub(super) fn key_values(keys: &[&Column], remote_id: &str) -> Result<Vec<Value>, String> {
    let raw: Vec<Value> = match keys {
        [key] => vec![match key.ty {
            _ if key.cast.is_some() => Value::String(remote_id.to_owned()),
            ColumnType::Integer | ColumnType::Float => serde_json::from_str::<Number>(remote_id)
                .map(Value::Number)
                .map_err(|_| {
                    format!(
                        "`{remote_id}` is not a number, as key column `{}` holds",
                        key.name
                    )
                })?,
            ColumnType::Boolean => Value::Bool(remote_id == "true"),
            _ => Value::String(remote_id.to_owned()),
        }],
        several => match serde_json::from_str::<Value>(remote_id) {
            Ok(Value::Array(values)) if values.len() == several.len() => values,
            _ => {
                return Err(format!(
                    "`{remote_id}` is not a JSON array of {} key values",
                    several.len()
                ));
            }
        },
    };
    keys.iter()
        .zip(&raw)
        .map(|(key, value)| {
            canonical(key, Some(value)).map_err(|why| format!("key column `{}`: {why}", key.name))
        })
        .collect()
}

/// Sets `value` at `pointer` in `target`, making the objects on the way.
pub(super) fn set_at(target: &mut Value, pointer: &str, value: Value) {
    let mut here = target;
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = tokens.split_last() else {
        *here = value;
        return;
    };
    for token in path {
        if !here.is_object() {
            *here = Value::Object(serde_json::Map::new());
        }
        here = here
            .as_object_mut()
            .expect("made an object above")
            .entry(token.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if !here.is_object() {
        *here = Value::Object(serde_json::Map::new());
    }
    here.as_object_mut()
        .expect("made an object above")
        .insert(last.clone(), value);
}

fn integer(n: &Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // Whole numbers within the exactly representable range only.
        (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64)
    })
}

fn float(text: &str) -> Option<Value> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// A date and time in RFC 3339 (or the forms databases write: a space for the `T`, an offset
/// of hours only, none at all for UTC).
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Some(at.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    None
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// "`12` (a number) does not fit text column `name`" — the sentence's subject is the caller's.
fn misfit(value: &Value, column: &Column) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let hint = match (column.ty, value) {
        (ColumnType::Text, Value::Array(_) | Value::Object(_)) => {
            "; declare the column `ColumnType::Json` with `column_as` to store JSON text"
        }
        _ => "",
    };
    format!(
        "{} ({kind}), which does not fit {} column `{}`{hint}",
        shown(value),
        column.ty,
        column.name
    )
}

/// A value for a message: at most 60 characters of its JSON.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("`{}…`", &text[..end]),
        None => format!("`{text}`"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn column(ty: ColumnType) -> Column {
        Column {
            name: "c".into(),
            pointer: "/c".into(),
            ty,
            cast: None,
            naive: false,
        }
    }

    #[test]
    fn values_read_back_as_the_payload_wrote_them() {
        let cases = [
            (ColumnType::Integer, "12", json!(12)),
            (ColumnType::Integer, "12.0", json!(12.0)),
            (ColumnType::Float, "12.50", json!(12.5)),
            (ColumnType::Boolean, "t", json!(true)),
            (ColumnType::Boolean, "0", json!(false)),
            (ColumnType::Json, r#"{"a": [1, 2]}"#, json!({"a": [1, 2]})),
            (
                ColumnType::Timestamp,
                "2024-05-01 12:30:00+00",
                json!("2024-05-01T12:30:00Z"),
            ),
            (
                ColumnType::Timestamp,
                "2024-05-01 14:30:00.25+02",
                json!("2024-05-01T12:30:00.250Z"),
            ),
            (
                ColumnType::Timestamp,
                "2024-05-01T12:30:00+00:00",
                json!("2024-05-01T12:30:00Z"),
            ),
            (
                ColumnType::Timestamp,
                "2024-05-01 12:30:00",
                json!("2024-05-01T12:30:00Z"),
            ),
            (ColumnType::Date, "2024-05-01", json!("2024-05-01")),
            (
                ColumnType::Uuid,
                "6F9619FF-8B86-D011-B42D-00CF4FC964FF",
                json!("6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
            ),
            (ColumnType::Text, "12", json!("12")),
            // Text a column of that type cannot hold comes back as it is.
            (ColumnType::Integer, "n/a", json!("n/a")),
        ];
        for (ty, text, expected) in cases {
            assert_eq!(from_text(ty, Some(text.into())), expected, "{ty} {text}");
        }
        assert_eq!(from_text(ColumnType::Text, None), Value::Null);
    }

    #[test]
    fn misfits_say_what_and_where() {
        let text = column(ColumnType::Text);
        let err = to_sql(&text, DbBackend::Postgres, Some(&json!(12))).unwrap_err();
        assert_eq!(err, "`12` (a number), which does not fit text column `c`");
        let err = to_sql(&text, DbBackend::Postgres, Some(&json!({"a": 1}))).unwrap_err();
        assert!(err.contains("ColumnType::Json"), "{err}");
        let int = column(ColumnType::Integer);
        assert!(to_sql(&int, DbBackend::Sqlite, Some(&json!(3.0))).is_ok());
        let err = to_sql(&int, DbBackend::Sqlite, Some(&json!(3.5))).unwrap_err();
        assert!(err.contains("not a whole number"), "{err}");
        let at = column(ColumnType::Timestamp);
        let err = to_sql(&at, DbBackend::MySql, Some(&json!("yesterday"))).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(
            to_sql(&at, DbBackend::MySql, None).is_ok(),
            "absent is NULL"
        );
    }

    #[test]
    fn keys_encode_and_decode() {
        let id = column(ColumnType::Integer);
        let region = Column {
            name: "region".into(),
            ..column(ColumnType::Text)
        };
        let one = canonical(&id, Some(&json!(12.0))).unwrap();
        let rid = remote_id(std::slice::from_ref(&one));
        assert!(rid.is_number());
        assert_eq!(rid.as_str(), "12");
        assert_eq!(key_values(&[&id], "12").unwrap(), vec![json!(12)]);
        assert!(key_values(&[&id], "twelve").is_err());

        let both = [json!("eu"), json!(12)];
        let rid = remote_id(&both);
        assert_eq!(rid.as_str(), r#"["eu",12]"#);
        assert_eq!(
            key_values(&[&region, &id], rid.as_str()).unwrap(),
            both.to_vec()
        );
        assert!(key_values(&[&region, &id], "[\"eu\"]").is_err());
        assert!(canonical(&id, None).unwrap_err().contains("missing"));
    }

    #[test]
    fn values_are_set_at_their_pointers() {
        let mut row = Value::Null;
        set_at(&mut row, "/id", json!(1));
        set_at(&mut row, "/address/city", json!("Paris"));
        set_at(&mut row, "/address/zip", Value::Null);
        set_at(&mut row, "/a~1b", json!(true));
        assert_eq!(
            row,
            json!({"id": 1, "address": {"city": "Paris", "zip": null}, "a/b": true})
        );
    }
}
