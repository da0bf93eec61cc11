//! Verification: does the remote really hold what the framework believes it sent?
//!
//! [`Engine::verify`](crate::Engine::verify) reads each pushed group's remote record
//! ([`Syncer::fetch`](crate::Syncer::fetch); the built-in [`HttpRemote`](crate::HttpRemote)
//! reads `GET {collection}/{id}`) and compares it with the group's *current* translation. The
//! comparison ([`compare`]) looks only at the fields the payload carries: fields only the remote
//! has (its ids, timestamps, computed fields) are ignored. How values are normalised is the
//! syncer's [`Comparison`] ([`Syncer::comparison`](crate::Syncer::comparison)):
//!
//! - numbers are equal when they are the same number (`1`, `1.0` and `1e0`);
//! - with `null_is_absent` (the default), a `null` in the payload matches a field the remote
//!   leaves out, and the other way round;
//! - with `unordered_arrays`, arrays are equal when they hold the same elements in any order
//!   (default: order matters);
//! - objects nested in the payload are compared field by field, by the same rules.
//!
//! Each remote read takes a token of the syncer's [`Limits`](crate::Limits), like a push.
//! Nothing is written: repairing is pushing again (a differing record: `resync`; a record the
//! remote lost: `forget`, then the worker creates it again).

use serde_json::Value;

use crate::RemoteId;

/// How [`compare`] normalises values. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Comparison {
    /// A `null` matches an absent field (default `true`).
    pub null_is_absent: bool,
    /// Arrays match whatever the order of their elements (default `false`).
    pub unordered_arrays: bool,
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            null_is_absent: true,
            unordered_arrays: false,
        }
    }
}

impl Comparison {
    /// Arrays match whatever the order of their elements.
    pub fn unordered_arrays(mut self) -> Self {
        self.unordered_arrays = true;
        self
    }

    /// A `null` and an absent field differ.
    pub fn strict_nulls(mut self) -> Self {
        self.null_is_absent = false;
        self
    }
}

/// One field whose value differs: the payload's value and the remote's (`None`: absent).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldDiff {
    /// The field's JSON pointer, e.g. `/address/city`.
    pub path: String,
    /// The value the current translation gives.
    pub local: Value,
    /// The value the remote holds; `None` when the remote lacks the field.
    pub remote: Option<Value>,
}

/// The fields of `local` (a payload) whose values `remote` (the remote's record) does not hold,
/// under `rules`. Empty: in step. Fields only `remote` has are ignored; a `local` that is not
/// an object is compared whole.
pub fn compare(local: &Value, remote: &Value, rules: &Comparison) -> Vec<FieldDiff> {
    let mut diffs = Vec::new();
    compare_at("", local, Some(remote), rules, &mut diffs);
    diffs
}

fn compare_at(
    path: &str,
    local: &Value,
    remote: Option<&Value>,
    rules: &Comparison,
    diffs: &mut Vec<FieldDiff>,
) {
    match (local, remote) {
        (Value::Object(fields), Some(Value::Object(theirs))) => {
            for (name, value) in fields {
                let child = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
                compare_at(&child, value, theirs.get(name), rules, diffs);
            }
        }
        _ if same(local, remote, rules) => {}
        _ => diffs.push(FieldDiff {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            local: local.clone(),
            remote: remote.cloned(),
        }),
    }
}

fn same(local: &Value, remote: Option<&Value>, rules: &Comparison) -> bool {
    let Some(remote) = remote else {
        return rules.null_is_absent && local.is_null();
    };
    match (local, remote) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            if rules.unordered_arrays {
                let mut left: Vec<&Value> = b.iter().collect();
                a.iter().all(|x| {
                    let found = left.iter().position(|y| same(x, Some(y), rules));
                    found.map(|i| left.swap_remove(i)).is_some()
                })
            } else {
                a.iter().zip(b).all(|(x, y)| same(x, Some(y), rules))
            }
        }
        (Value::Object(_), Value::Object(_)) => compare(local, remote, rules).is_empty(),
        _ => local == remote,
    }
}

/// What verification found for one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// The remote holds what the current translation gives.
    InStep,
    /// The remote's record differs on these fields.
    Different {
        /// The fields that differ.
        fields: Vec<FieldDiff>,
    },
    /// The remote has no record under the group's remote id: it lost it.
    Missing,
    /// The group was never pushed (no remote id yet): nothing to compare.
    NotPushed,
    /// The remote record or the translation could not be read.
    Unreadable {
        /// What went wrong.
        error: String,
    },
}

impl Drift {
    /// `in_step`, `different`, `missing`, `not_pushed` or `unreadable`.
    pub fn label(&self) -> &'static str {
        match self {
            Drift::InStep => "in_step",
            Drift::Different { .. } => "different",
            Drift::Missing => "missing",
            Drift::NotPushed => "not_pushed",
            Drift::Unreadable { .. } => "unreadable",
        }
    }
}

/// One group's verification.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupDrift {
    /// `sync_groups.id`.
    pub group_id: i64,
    /// The syncer.
    pub syncer: String,
    /// The root's key.
    pub root_key: String,
    /// The group's version when it was verified.
    pub version: i64,
    /// The remote id the group holds, if any.
    pub remote_id: Option<String>,
    /// What was found.
    pub drift: Drift,
}

/// Which groups [`Engine::verify`](crate::Engine::verify) reads.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Only this syncer's groups.
    pub syncer: Option<String>,
    /// Only this group.
    pub group: Option<i64>,
    /// At most this many groups (the lowest ids first).
    pub limit: Option<u64>,
    /// Only the groups whose id modulo `.0` is `.1`: one slice of `.0`, so that `.0` runs with
    /// the indexes `0..n` verify every group once (a scheduled, sampled verification).
    pub slice: Option<(u64, u64)>,
}

impl VerifyOptions {
    /// Every group of every registered syncer.
    pub fn all() -> Self {
        VerifyOptions::default()
    }

    /// Only `syncer`'s groups.
    pub fn syncer(mut self, syncer: impl Into<String>) -> Self {
        self.syncer = Some(syncer.into());
        self
    }

    /// Only the group `id`.
    pub fn group(mut self, id: i64) -> Self {
        self.group = Some(id);
        self
    }

    /// At most `n` groups.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Only slice `index` of `of` (the groups whose id modulo `of` is `index`); `of` of 0 or 1
    /// is every group.
    pub fn slice(mut self, of: u64, index: u64) -> Self {
        self.slice = (of > 1).then_some((of, index % of.max(1)));
        self
    }
}

/// One page of a remote collection ([`HttpRemote::list`](crate::HttpRemote::list)).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RemotePage {
    /// The page's live records with their remote ids, in the remote's order.
    pub records: Vec<(RemoteId, Value)>,
    /// Where the next page starts (given back to the next `list` call); `None`: this is the
    /// last page.
    pub next: Option<Value>,
}

impl RemotePage {
    /// A page of `records`, followed by the page at `next` (`None`: the last page).
    pub fn new(records: Vec<(RemoteId, Value)>, next: Option<Value>) -> Self {
        RemotePage { records, next }
    }
}

/// The drift report: every verified group, and counts by kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    /// The groups, in id order.
    pub groups: Vec<GroupDrift>,
}

impl VerifyReport {
    /// How many groups found `label` (see [`Drift::label`]).
    pub fn count(&self, label: &str) -> usize {
        self.groups
            .iter()
            .filter(|g| g.drift.label() == label)
            .count()
    }

    /// Whether the remote holds everything the framework pushed (no group different, missing
    /// or unreadable).
    pub fn is_clean(&self) -> bool {
        self.groups
            .iter()
            .all(|g| matches!(g.drift, Drift::InStep | Drift::NotPushed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_only_the_remote_has_are_ignored() {
        let local = json!({"name": "Ada", "email": "ada@example.com"});
        let remote = json!({"id": 7, "name": "Ada", "email": "ada@example.com", "updated_at": "x"});
        assert!(compare(&local, &remote, &Comparison::default()).is_empty());
    }

    #[test]
    fn a_changed_field_is_reported_with_both_values() {
        let local = json!({"name": "Ada", "address": {"city": "London"}});
        let remote = json!({"name": "Ada L.", "address": {"city": "Paris", "zip": "75001"}});
        let diffs = compare(&local, &remote, &Comparison::default());
        assert_eq!(
            diffs,
            vec![
                FieldDiff {
                    path: "/address/city".into(),
                    local: json!("London"),
                    remote: Some(json!("Paris")),
                },
                FieldDiff {
                    path: "/name".into(),
                    local: json!("Ada"),
                    remote: Some(json!("Ada L.")),
                },
            ]
        );
    }

    #[test]
    fn numbers_compare_as_numbers() {
        let rules = Comparison::default();
        assert!(compare(&json!({"n": 1}), &json!({"n": 1.0}), &rules).is_empty());
        assert!(compare(&json!({"n": 2.5}), &json!({"n": 2.5}), &rules).is_empty());
        assert_eq!(
            compare(&json!({"n": 1}), &json!({"n": "1"}), &rules).len(),
            1
        );
        assert_eq!(compare(&json!({"n": 1}), &json!({"n": 2}), &rules).len(), 1);
    }

    #[test]
    fn null_and_absent_match_unless_strict() {
        let local = json!({"phone": null});
        assert!(compare(&local, &json!({}), &Comparison::default()).is_empty());
        let strict = Comparison::default().strict_nulls();
        assert_eq!(
            compare(&local, &json!({}), &strict),
            vec![FieldDiff {
                path: "/phone".into(),
                local: Value::Null,
                remote: None,
            }]
        );
        // A missing field the payload sets is a difference either way.
        assert_eq!(
            compare(&json!({"a": 1}), &json!({}), &Comparison::default()).len(),
            1
        );
    }

    #[test]
    fn array_order_matters_unless_unordered() {
        let local = json!({"tags": ["a", "b", "b"]});
        let remote = json!({"tags": ["b", "a", "b"]});
        assert_eq!(compare(&local, &remote, &Comparison::default()).len(), 1);
        let unordered = Comparison::default().unordered_arrays();
        assert!(compare(&local, &remote, &unordered).is_empty());
        // Multiplicities count.
        let other = json!({"tags": ["a", "a", "b"]});
        assert_eq!(compare(&local, &other, &unordered).len(), 1);
    }

    #[test]
    fn slashes_in_field_names_are_escaped_in_the_path() {
        let diffs = compare(
            &json!({"a/b": 1}),
            &json!({"a/b": 2}),
            &Comparison::default(),
        );
        assert_eq!(diffs[0].path, "/a~1b");
    }

    #[test]
    fn the_report_counts_by_kind() {
        let group = |drift| GroupDrift {
            group_id: 1,
            syncer: "s".into(),
            root_key: "1".into(),
            version: 1,
            remote_id: None,
            drift,
        };
        let report = VerifyReport {
            groups: vec![group(Drift::InStep), group(Drift::NotPushed)],
        };
        assert!(report.is_clean());
        let report = VerifyReport {
            groups: vec![group(Drift::InStep), group(Drift::Missing)],
        };
        assert!(!report.is_clean());
        assert_eq!((report.count("in_step"), report.count("missing")), (1, 1));
    }
}
