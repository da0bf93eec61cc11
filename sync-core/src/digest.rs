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

/// The digest of an inbound record of source `source`: the same as [`digest`] of
/// `{"data": data, "deleted": deleted}` at version 0, without building that object.
pub(crate) fn digest_record(source: &str, data: &Value, deleted: bool) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"sync-core/1\0");
    hasher.update(source.as_bytes());
    hasher.update(b"\0");
    hasher.update(&0_u32.to_le_bytes());
    hasher.update(b"\0");
    // Keys in canonical order: "data" sorts before "deleted".
    hasher.update(b"{\"data\":");
    write_canonical(&mut hasher, data);
    hasher.update(if deleted {
        b",\"deleted\":true}".as_slice()
    } else {
        b",\"deleted\":false}".as_slice()
    });
    hasher.finalize().to_hex().to_string()
}

/// Feeds `value` to the hasher as canonical JSON, written straight into it (no text is built).
fn write_canonical(hasher: &mut blake3::Hasher, value: &Value) {
    match value {
        Value::Object(map) => {
            hasher.update(b"{");
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_scalar(hasher, key);
                hasher.update(b":");
                write_canonical(hasher, value);
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
        scalar => write_scalar(hasher, scalar),
    }
}

/// A string, number, boolean or null in JSON, as `serde_json` writes it.
fn write_scalar(hasher: &mut blake3::Hasher, scalar: &impl serde::Serialize) {
    serde_json::to_writer(hasher, scalar).expect("hashing cannot fail");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::digest;

    #[test]
    fn a_record_digest_equals_the_digest_of_its_object() {
        let data = json!({"name": "Ada", "tags": [1, 2], "price": 1.5, "note": null});
        for deleted in [false, true] {
            assert_eq!(
                super::digest_record("erp.products", &data, deleted),
                digest(
                    "erp.products",
                    0,
                    &json!({"data": data, "deleted": deleted})
                )
            );
        }
    }

    #[test]
    fn the_hashed_bytes_stay_what_digests_stored_before_were_made_of() {
        // Stored digests of every database depend on these bytes: a change would make every
        // group look changed (one push each) and every inbound record look new.
        let expected = blake3::hash(
            b"sync-core/1\0crm.contact\0\x01\0\0\0\0{\"a\":1,\"b\":[true,null],\"c\":{\"x\":\"\\\"q\\\"\",\"y\":1.5}}",
        );
        let value = json!({"c": {"y": 1.5, "x": "\"q\""}, "b": [true, null], "a": 1});
        assert_eq!(
            digest("crm.contact", 1, &value),
            expected.to_hex().to_string()
        );
    }

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

    /// Digests are stored: the same payload must keep its digest from one release to the next,
    /// or every group would be pushed again after an upgrade. (Computed by the first
    /// implementation, which built the canonical text before hashing it.)
    #[test]
    fn digests_are_stable_across_releases() {
        let payload = json!({"name": "Ada \"L\" é", "n": 1.5, "i": -3, "ok": true, "none": null,
            "tags": ["a", {"z": 1, "a": [2]}]});
        assert_eq!(
            digest("crm.contact", 2, &payload),
            "9327cb3b3a11142314f9fe31a357dd8b84379615963ffa761339a01e5160a43e"
        );
    }
}
