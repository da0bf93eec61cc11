//! Payload digests: what lets the worker skip a push the remote already holds.

use serde_json::Value;

/// The digest of `payload` as pushed by syncer `syncer` at mapping version `payload_version`:
/// 64 hex characters of BLAKE3 over the name, the version and the payload in canonical JSON
/// (object keys sorted, no whitespace).
///
/// The name and version are included so that a payload that happens to be equal under another
/// syncer or an older mapping never counts as already sent.
pub fn digest(syncer: &str, payload_version: u32, payload: &Value) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"sync-core/1\0");
    hasher.update(syncer.as_bytes());
    hasher.update(b"\0");
    hasher.update(&payload_version.to_le_bytes());
    hasher.update(b"\0");
    write_canonical(&mut hasher, payload);
    hasher.finalize().to_hex().to_string()
}

fn write_canonical(hasher: &mut blake3::Hasher, value: &Value) {
    match value {
        Value::Object(map) => {
            hasher.update(b"{");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_canonical(hasher, &Value::String(key.clone()));
                hasher.update(b":");
                write_canonical(hasher, &map[key]);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_canonical(hasher, item);
            }
            hasher.update(b"]");
        }
        scalar => {
            hasher.update(scalar.to_string().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::digest;

    #[test]
    fn key_order_does_not_matter() {
        let a =
            json!({"name": "Ada", "tags": [1, 2], "address": {"city": "Paris", "zip": "75001"}});
        let b =
            json!({"address": {"zip": "75001", "city": "Paris"}, "tags": [1, 2], "name": "Ada"});
        assert_eq!(digest("crm.contact", 1, &a), digest("crm.contact", 1, &b));
    }

    #[test]
    fn name_version_and_content_matter() {
        let a = json!({"name": "Ada"});
        let base = digest("crm.contact", 1, &a);
        assert_ne!(base, digest("erp.customer", 1, &a));
        assert_ne!(base, digest("crm.contact", 2, &a));
        assert_ne!(base, digest("crm.contact", 1, &json!({"name": "Ada "})));
        assert_ne!(
            digest("s", 1, &json!([1, 2])),
            digest("s", 1, &json!([2, 1]))
        );
        assert_eq!(base.len(), 64);
    }
}
