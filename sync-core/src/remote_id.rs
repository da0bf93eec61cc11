//! The id a remote gave an entity, with its JSON type.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

/// The id a remote gave an entity when it was created: a JSON string or a JSON number, as the
/// remote answered it.
///
/// The text form ([`as_str`](Self::as_str)) addresses the record in URLs; the JSON form
/// ([`to_json`](Self::to_json), and `Serialize`) keeps the type, so that a payload referring to
/// another entity (`"customer_id": cx.remote_id_of("erp.customer", id).await?`) carries `12`
/// where the remote's own records say `"id": 12`, and `"r-12"` where they say `"id": "r-12"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteId {
    text: String,
    numeric: bool,
}

impl RemoteId {
    /// A string id.
    pub fn string(id: impl Into<String>) -> Self {
        RemoteId {
            text: id.into(),
            numeric: false,
        }
    }

    /// A numeric id.
    pub fn number(id: impl Into<serde_json::Number>) -> Self {
        RemoteId {
            text: id.into().to_string(),
            numeric: true,
        }
    }

    /// The id as stored: its text, and whether it is a JSON number. Text that is not a valid
    /// JSON number is taken as a string.
    pub fn from_stored(text: String, numeric: bool) -> Self {
        let numeric = numeric && text.parse::<serde_json::Number>().is_ok();
        RemoteId { text, numeric }
    }

    /// The id of a JSON value: a string or a number; `None` for anything else.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(RemoteId::string(s.clone())),
            Value::Number(n) => Some(RemoteId::number(n.clone())),
            _ => None,
        }
    }

    /// The id as text, for URLs and messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the remote answered it as a JSON number.
    pub fn is_number(&self) -> bool {
        self.numeric
    }

    /// The id as the remote wrote it: a JSON number or string.
    pub fn to_json(&self) -> Value {
        if self.numeric
            && let Ok(number) = self.text.parse::<serde_json::Number>()
        {
            return Value::Number(number);
        }
        Value::String(self.text.clone())
    }
}

impl fmt::Display for RemoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for RemoteId {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl Serialize for RemoteId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl From<RemoteId> for Value {
    fn from(id: RemoteId) -> Self {
        id.to_json()
    }
}

impl From<String> for RemoteId {
    fn from(id: String) -> Self {
        RemoteId::string(id)
    }
}

impl From<&str> for RemoteId {
    fn from(id: &str) -> Self {
        RemoteId::string(id)
    }
}

macro_rules! from_integer {
    ($($ty:ty),*) => {$(
        impl From<$ty> for RemoteId {
            fn from(id: $ty) -> Self {
                RemoteId::number(id)
            }
        }
    )*};
}

from_integer!(i32, i64, u32, u64);

impl PartialEq<str> for RemoteId {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for RemoteId {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_json_type() {
        assert_eq!(json!({ "id": RemoteId::from(12_i64) }), json!({ "id": 12 }));
        assert_eq!(json!({ "id": RemoteId::from("12") }), json!({ "id": "12" }));
        let stored = RemoteId::from_stored("12".into(), true);
        assert_eq!(stored.to_json(), json!(12));
        assert_eq!(stored.as_str(), "12");
        assert_eq!(
            RemoteId::from_json(&json!(7)).unwrap(),
            RemoteId::number(7_u64)
        );
        assert_eq!(RemoteId::from_json(&json!(null)), None);
    }

    #[test]
    fn stored_text_that_is_no_number_is_a_string() {
        let id = RemoteId::from_stored("r-1".into(), true);
        assert!(!id.is_number());
        assert_eq!(id.to_json(), json!("r-1"));
    }
}
