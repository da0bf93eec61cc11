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
//! # Orphans
//!
//! A syncer whose remote can be listed ([`Syncer::can_list`](crate::Syncer::can_list); the
//! built-in remote with a [`listing`](crate::HttpRemoteBuilder::listing)) is also listed, page
//! by page, when a verification covers the whole syncer (no [`group`](VerifyOptions::group),
//! [`limit`](VerifyOptions::limit) or [`slice`](VerifyOptions::slice): a listing cannot be cut
//! into the same parts as the groups, so a partial verification does not list). A listed record
//! that no group points at is an *orphan* ([`Drift::Orphan`]): created by hand, left by a
//! create whose answer was lost, or a record the framework deleted and the remote restored.
//! Orphans are reported only when the listing reached its end; a listing that failed part way
//! is reported as [`Drift::Unreadable`] and no orphan of that syncer is reported. The groups'
//! remote ids are read again after the listing, so that a create recorded meanwhile does not
//! make its record an orphan.
//!
//! Each remote read — a record, a page of the listing — takes a token of the syncer's
//! [`Limits`](crate::Limits), like a push. Nothing is written: repairing is pushing again (a
//! differing record: [`ops::repair`](crate::ops::repair) makes it due with its digest forgotten;
//! a record the remote lost: its remote id forgotten, and the worker creates it again); orphans
//! are deleted only when asked ([`Engine::delete_orphans`](crate::Engine::delete_orphans)).

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

/// What verification found for one group (or, for an orphan, one remote record).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The remote record, the translation or (for an entry with no group) the listing could
    /// not be read.
    Unreadable {
        /// What went wrong.
        error: String,
    },
    /// The remote holds this record (its id is the entry's
    /// [`remote_id`](GroupDrift::remote_id)) and no group points at it. Found only by a
    /// complete listing (see the [module documentation](self#orphans)).
    Orphan {
        /// The record as the listing gave it.
        record: Value,
    },
}

impl Drift {
    /// `in_step`, `different`, `missing`, `not_pushed`, `unreadable` or `orphan`.
    pub fn label(&self) -> &'static str {
        match self {
            Drift::InStep => "in_step",
            Drift::Different { .. } => "different",
            Drift::Missing => "missing",
            Drift::NotPushed => "not_pushed",
            Drift::Unreadable { .. } => "unreadable",
            Drift::Orphan { .. } => "orphan",
        }
    }
}

/// One group's verification, or one finding that concerns no group: an orphan (a remote
/// record no group points at), or a listing that failed.
///
/// An entry with no group has `group_id` 0 (group ids start at 1), an empty `root_key` and
/// `version` 0; an orphan's `remote_id` is its id on the remote. The attempt log records the
/// deletion of orphans under the same group id 0.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupDrift {
    /// `sync_groups.id`; 0 for an entry with no group.
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
    /// Read the groups only: list no remote collection, report no orphan (what `group`,
    /// `limit` and `slice` imply).
    pub groups_only: bool,
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

    /// Reads the groups only: no listing, no orphans (a listing costs one request per page).
    pub fn groups_only(mut self) -> Self {
        self.groups_only = true;
        self
    }

    /// Whether the syncers that can list are listed for orphans: when every group of the
    /// syncers in scope is verified (no `group`, `limit` or `slice`) and not
    /// [`groups_only`](Self::groups_only).
    pub fn lists(&self) -> bool {
        !self.groups_only && self.group.is_none() && self.limit.is_none() && self.slice.is_none()
    }
}

/// How far a verification got, as [`Engine::verify_with_progress`](crate::Engine::verify_with_progress)
/// reports it: after every group read, and after every page listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyProgress {
    /// Groups verified so far.
    pub checked: u64,
    /// Groups to verify.
    pub total: u64,
    /// Remote records listed so far (looking for orphans).
    pub listed: u64,
}

/// One page of a remote collection ([`Syncer::list`](crate::Syncer::list)).
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

/// What [`Engine::delete_orphans`](crate::Engine::delete_orphans) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OrphansDeleted {
    /// Orphans deleted on their remote.
    pub deleted: u64,
    /// Orphans left alone: a group points at them by now, or their syncer had creates in
    /// flight (a listed record may be one of them; verify again when the workers are idle).
    pub kept: u64,
    /// The deletes that failed: `syncer remote-id: error`.
    pub failed: Vec<String>,
}

/// The drift report: every verified group, and counts by kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    /// The groups, in id order, then per listed syncer its orphans in the listing's order (or
    /// its failed listing).
    pub groups: Vec<GroupDrift>,
    /// The syncers whose remote collections were listed, and how each listing went.
    pub listings: Vec<ListingReport>,
}

/// How the listing of one syncer's remote collection went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ListingReport {
    /// The syncer.
    pub syncer: String,
    /// Pages read (one request each).
    pub pages: u64,
    /// Live records listed.
    pub records: u64,
    /// Whether the listing reached its end (only then are orphans reported).
    pub complete: bool,
}

impl GroupDrift {
    /// Whether the entry concerns a group (not an orphan or a failed listing).
    pub fn has_group(&self) -> bool {
        self.group_id > 0
    }
}

impl VerifyReport {
    /// How many entries found `label` (see [`Drift::label`]).
    pub fn count(&self, label: &str) -> usize {
        self.groups
            .iter()
            .filter(|g| g.drift.label() == label)
            .count()
    }

    /// The orphans: entries with [`Drift::Orphan`].
    pub fn orphans(&self) -> impl Iterator<Item = &GroupDrift> {
        self.groups
            .iter()
            .filter(|g| matches!(g.drift, Drift::Orphan { .. }))
    }

    /// Whether the remote holds everything the framework pushed and nothing else it should
    /// have deleted (no group different, missing or unreadable, no orphan, no failed listing).
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
            ..VerifyReport::default()
        };
        assert!(report.is_clean());
        let report = VerifyReport {
            groups: vec![group(Drift::InStep), group(Drift::Missing)],
            ..VerifyReport::default()
        };
        assert!(!report.is_clean());
        assert_eq!((report.count("in_step"), report.count("missing")), (1, 1));
        let orphan = GroupDrift {
            group_id: 0,
            root_key: String::new(),
            version: 0,
            remote_id: Some("9".into()),
            ..group(Drift::Orphan {
                record: serde_json::json!({"id": 9}),
            })
        };
        let report = VerifyReport {
            groups: vec![group(Drift::InStep), orphan],
            ..VerifyReport::default()
        };
        assert!(!report.is_clean(), "an orphan is drift");
        assert_eq!(report.count("orphan"), 1);
        assert_eq!(report.orphans().count(), 1);
        assert!(!report.orphans().next().unwrap().has_group());
    }
}
