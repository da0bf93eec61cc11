//! The text form of a root row's primary key, as stored in `sync_groups.root_key`.

use std::fmt;

use sea_orm::{Value, sea_query::ValueTuple};

/// A root row's primary key as text: decimal for integers, the text itself for strings, the
/// hyphenated form for UUIDs, and the parts joined with `,` for composite keys.
///
/// Root keys built from a root's primary key and from a dependent's foreign key to it are equal
/// whenever the values are, whatever the integer widths, so both find the same group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootKey(String);

impl RootKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the key back into the root's key type, e.g. `group.root_key().parse::<i32>()`.
    pub fn parse<T: std::str::FromStr>(&self) -> Result<T, T::Err> {
        self.0.parse()
    }

    /// The key of a single value, or `None` when it is SQL `NULL` (no root) or a type that cannot
    /// be a key (floats, blobs, JSON…).
    pub fn from_value(value: &Value) -> Option<RootKey> {
        value_text(value).map(RootKey)
    }

    /// The key of a (possibly composite) primary key value.
    pub fn from_tuple(tuple: &ValueTuple) -> Option<RootKey> {
        match tuple {
            ValueTuple::One(v) => RootKey::from_value(v),
            ValueTuple::Two(a, b) => join([a, b]),
            ValueTuple::Three(a, b, c) => join([a, b, c]),
            ValueTuple::Many(values) => join(values),
        }
    }
}

fn join<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<RootKey> {
    let parts: Option<Vec<String>> = values.into_iter().map(value_text).collect();
    parts.map(|parts| RootKey(parts.join(",")))
}

fn value_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::TinyInt(v) => v.as_ref()?.to_string(),
        Value::SmallInt(v) => v.as_ref()?.to_string(),
        Value::Int(v) => v.as_ref()?.to_string(),
        Value::BigInt(v) => v.as_ref()?.to_string(),
        Value::TinyUnsigned(v) => v.as_ref()?.to_string(),
        Value::SmallUnsigned(v) => v.as_ref()?.to_string(),
        Value::Unsigned(v) => v.as_ref()?.to_string(),
        Value::BigUnsigned(v) => v.as_ref()?.to_string(),
        Value::String(v) => v.as_ref()?.clone(),
        Value::Char(v) => v.as_ref()?.to_string(),
        Value::Uuid(v) => v.as_ref()?.hyphenated().to_string(),
        _ => return None,
    })
}

impl fmt::Display for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RootKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

macro_rules! from_display {
    ($($ty:ty),*) => {$(
        impl From<$ty> for RootKey {
            fn from(value: $ty) -> Self {
                RootKey(value.to_string())
            }
        }
    )*};
}

from_display!(i8, i16, i32, i64, u8, u16, u32, u64, &str, &String);

impl From<String> for RootKey {
    fn from(value: String) -> Self {
        RootKey(value)
    }
}

impl From<sea_orm::prelude::Uuid> for RootKey {
    fn from(value: sea_orm::prelude::Uuid) -> Self {
        RootKey(value.hyphenated().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_widths_agree() {
        assert_eq!(
            RootKey::from_value(&Value::Int(Some(42))),
            Some(RootKey::from(42_i64))
        );
        assert_eq!(
            RootKey::from_value(&Value::BigUnsigned(Some(42))),
            Some(RootKey::from("42"))
        );
    }

    #[test]
    fn null_is_no_key() {
        assert_eq!(RootKey::from_value(&Value::Int(None)), None);
        assert_eq!(RootKey::from_value(&Value::Double(Some(1.0))), None);
    }

    #[test]
    fn composite_keys_join() {
        let key = RootKey::from_tuple(&ValueTuple::Two(Value::Int(Some(1)), "a".into()));
        assert_eq!(key.unwrap().as_str(), "1,a");
    }
}
