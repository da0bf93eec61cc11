//! References between groups: the remote ids of other groups a push carried, and the touches
//! that keep them current.
//!
//! A translation that reads another group's remote id through
//! [`TranslateContext::remote_id_of`](crate::TranslateContext::remote_id_of) (a sales order
//! carrying its customer's ERP id) is recorded in [`Lookups`] while the worker translates. When
//! the push is recorded, the group's references go to `sync_references` in the same
//! transaction, keyed by the referenced group, with the remote id the push carried; a digest of
//! them on the group (`references_digest`, read with the claim) lets a push carrying the same
//! references write nothing.
//!
//! Two things touch a referring group, through the touch log like any write:
//!
//! - a referenced group given a remote id other than the one referrers carried (its completion
//!   after a create that follows a forgotten id or a deleted record, flagged by
//!   `remote_id_forgotten`, or an id the remote changed; an inbound source's link): every
//!   referrer carrying another id is touched;
//! - the guard: a referrer whose references are new or changed is touched when a referenced
//!   group's remote id, read at recording, is not the one its translation read. The push went
//!   out while that group was being created again; its completion looked for referrers before
//!   these references were stored.
//!
//! Cost: a batch whose groups looked up no remote id, or the same ones as their stored
//! references, and gave no forgotten remote id a new value, runs no statement here.

use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DbBackend, Value};

use crate::store::statement;
use crate::{ClaimedGroup, Error, RemoteId, Result};

/// A remote id a translation read: the group (`syncer`, `key`) and its remote id then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Reference {
    pub(crate) syncer: String,
    pub(crate) key: String,
    pub(crate) remote_id: String,
}

tokio::task_local! {
    static LOOKUPS: Lookups;
}

/// The remote ids looked up by the translations running under [`Lookups::scope`], by the id
/// of the group each translation was for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookups(Arc<Mutex<Vec<(i64, Reference)>>>);

impl Lookups {
    /// The collector of the translation running now, if a worker runs it.
    pub(crate) fn current() -> Option<Lookups> {
        LOOKUPS.try_with(Clone::clone).ok()
    }

    /// Runs `work` with this collector as the current one.
    pub(crate) async fn scope<F: Future>(&self, work: F) -> F::Output {
        LOOKUPS.scope(self.clone(), work).await
    }

    /// Records that the translation of group `group` read `remote_id` for (`syncer`, `key`).
    pub(crate) fn record(&self, group: i64, syncer: &str, key: &str, remote_id: &RemoteId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((
            group,
            Reference {
                syncer: syncer.to_owned(),
                key: key.to_owned(),
                remote_id: remote_id.as_str().to_owned(),
            },
        ));
    }

    /// The references the translation of `group` read, sorted, one per referenced group. A
    /// group read twice with two different ids (it changed during the translation) is kept
    /// with an empty id, which no group has: the guard then touches the referrer.
    pub(crate) fn take(&self, group: i64) -> Vec<Reference> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if all.is_empty() {
            return Vec::new();
        }
        let mut mine = Vec::new();
        all.retain(|(id, reference)| {
            if *id == group {
                mine.push(reference.clone());
                false
            } else {
                true
            }
        });
        mine.sort();
        mine.dedup();
        mine.dedup_by(|later, kept| {
            let same = later.syncer == kept.syncer && later.key == kept.key;
            if same {
                kept.remote_id.clear();
            }
            same
        });
        mine
    }
}

/// The digest stored for `references` (`None` for none): 32 hex characters of BLAKE3.
pub(crate) fn digest(references: &[Reference]) -> Option<String> {
    if references.is_empty() {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    for r in references {
        for part in [&r.syncer, &r.key, &r.remote_id] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let mut hex = hasher.finalize().to_hex().to_string();
    hex.truncate(32);
    Some(hex)
}

/// What recording a batch of attempts does to references.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Referring groups whose stored references change, with their new ones (maybe none).
    pub(crate) writes: Vec<(&'a ClaimedGroup, &'a [Reference])>,
    /// Groups given a remote id their referrers may not carry: the new id.
    pub(crate) changed: Vec<(&'a ClaimedGroup, &'a str)>,
}

impl Plan<'_> {
    /// Nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.changed.is_empty()
    }

    /// Keeps only the groups whose completion was written (`held`).
    pub(crate) fn retain_held(&mut self, held: &std::collections::HashSet<i64>) {
        self.writes.retain(|(g, _)| held.contains(&g.id));
        self.changed.retain(|(g, _)| held.contains(&g.id));
    }
}

/// Whether giving `group` the remote id `new` may leave referrers carrying another: its id
/// changed, or it had one that was forgotten. A first create never does.
pub(crate) fn changes_remote_id(group: &ClaimedGroup, new: &RemoteId) -> bool {
    match &group.remote_id {
        Some(old) => old.as_str() != new.as_str(),
        None => group.remote_id_forgotten,
    }
}

/// Writes the references of `plan` and appends the touches they call for, in `db` (the
/// transaction that completes the groups, after their completions). Returns how many touches
/// were appended.
///
/// PostgreSQL: one statement per batch (per `PG_STATEMENT_BYTES` of references). SQLite and MariaDB: one
/// statement per kind of work present — deleting replaced references, inserting the new ones,
/// the guard over them, the look-up of referrers of changed groups.
pub(crate) async fn record<C: ConnectionTrait>(db: &C, plan: &Plan<'_>) -> Result<u64> {
    if plan.is_empty() {
        return Ok(0);
    }
    let now = crate::clock::now_ms();
    match db.get_database_backend() {
        DbBackend::Postgres => record_postgres(db, plan, now).await,
        _ => record_each(db, plan, now).await,
    }
}

const CONTEXT: &str = "recording the references of pushed groups";

// The statements below append touches with `INSERT … SELECT` (the referrers are found in the
// database), writing the touch mark's code as the literal `0`: it must stay `Mark::Touch`'s.
const _: () = assert!(crate::touch_log::Mark::Touch.code() == 0);

/// One reference row, as the PostgreSQL statement reads it.
#[derive(serde::Serialize)]
struct Row<'a> {
    referrer_id: i64,
    referrer_syncer: &'a str,
    referrer_key: &'a str,
    target_syncer: &'a str,
    target_key: &'a str,
    remote_id: &'a str,
}

/// One changed group, as the PostgreSQL statement reads it.
#[derive(serde::Serialize)]
struct Changed<'a> {
    syncer: &'a str,
    root_key: &'a str,
    remote_id: &'a str,
}

async fn record_postgres<C: ConnectionTrait>(db: &C, plan: &Plan<'_>, now: i64) -> Result<u64> {
    // Every part in one statement: the replaced references deleted (those not written again),
    // the new ones upserted, then one touch per referrer whose reference the guard finds stale
    // or which carries another id of a changed group. The final SELECT reads the tables as they
    // were before this statement (its own writes are not visible to it), which is what both
    // parts need: the guard reads the input rows, and the referrers of a changed group are
    // those stored before. The replaced references are found by `referrer_id = ANY(ARRAY(…))`:
    // as a `DELETE … USING` join, while `sync_references` had no statistics yet (a new
    // install, a backfill), it was planned as a scan of every reference. The guard looks each
    // referenced group up on its own (a lateral subquery, kept by `LIMIT 1` from being
    // flattened into a join), as the touch applier does.
    const SQL: &str = "WITH v AS (SELECT * FROM json_to_recordset(CAST(? AS json)) AS v(\
         referrer_id bigint, referrer_syncer text, referrer_key text, target_syncer text, \
         target_key text, remote_id text)), \
         r AS (SELECT CAST(value AS bigint) AS id FROM json_array_elements_text(CAST(? AS json))), \
         c AS (SELECT * FROM json_to_recordset(CAST(? AS json)) AS c(syncer text, root_key text, \
         remote_id text)), \
         gone AS (DELETE FROM sync_references s WHERE s.referrer_id = ANY(ARRAY(SELECT id FROM r)) \
         AND NOT EXISTS (SELECT 1 FROM v WHERE v.referrer_id = s.referrer_id \
         AND v.target_syncer = s.target_syncer AND v.target_key = s.target_key)), \
         put AS (INSERT INTO sync_references (target_syncer, target_key, referrer_id, \
         referrer_syncer, referrer_key, remote_id) SELECT target_syncer, target_key, referrer_id, \
         referrer_syncer, referrer_key, remote_id FROM v \
         ON CONFLICT (target_syncer, target_key, referrer_id) DO UPDATE SET remote_id = \
         EXCLUDED.remote_id WHERE sync_references.remote_id <> EXCLUDED.remote_id) \
         INSERT INTO sync_touches (syncer, root_key, mark, at) \
         SELECT t.syncer, t.root_key, 0, ? FROM (\
         SELECT v.referrer_syncer AS syncer, v.referrer_key AS root_key FROM v \
         LEFT JOIN LATERAL (SELECT remote_id FROM sync_groups \
         WHERE syncer = v.target_syncer AND root_key = v.target_key LIMIT 1) g ON true \
         WHERE g.remote_id IS DISTINCT FROM v.remote_id \
         UNION SELECT s.referrer_syncer, s.referrer_key FROM sync_references s \
         JOIN c ON s.target_syncer = c.syncer AND s.target_key = c.root_key \
         WHERE s.remote_id <> c.remote_id) AS t";
    // Cut by referrer (a referrer's rows travel together), under the size where a statement
    // costs a second round trip; the changed groups go with the first statement.
    let mut chunks: Vec<(Vec<Row<'_>>, Vec<i64>)> = vec![(Vec::new(), Vec::new())];
    let mut size = 0;
    for (group, references) in &plan.writes {
        let weight: usize = 20
            + references
                .iter()
                .map(|r| {
                    120 + group.syncer.len()
                        + group.root_key.as_str().len()
                        + r.syncer.len()
                        + r.key.len()
                        + r.remote_id.len()
                })
                .sum::<usize>();
        if size + weight > crate::queue::PG_STATEMENT_BYTES
            && chunks
                .last()
                .is_some_and(|(rows, ids)| !rows.is_empty() || !ids.is_empty())
        {
            chunks.push((Vec::new(), Vec::new()));
            size = 0;
        }
        size += weight;
        let (rows, ids) = chunks.last_mut().expect("one chunk");
        if group.references_digest.is_some() {
            ids.push(group.id);
        }
        rows.extend(references.iter().map(|r| Row {
            referrer_id: group.id,
            referrer_syncer: &group.syncer,
            referrer_key: group.root_key.as_str(),
            target_syncer: &r.syncer,
            target_key: &r.key,
            remote_id: &r.remote_id,
        }));
    }
    let changed: Vec<Changed<'_>> = plan
        .changed
        .iter()
        .map(|(g, id)| Changed {
            syncer: &g.syncer,
            root_key: g.root_key.as_str(),
            remote_id: id,
        })
        .collect();
    let mut touched = 0;
    for (i, (rows, ids)) in chunks.iter().enumerate() {
        let changed_doc = if i == 0 {
            encode(&changed)?
        } else {
            "[]".to_owned()
        };
        if rows.is_empty() && ids.is_empty() && changed_doc == "[]" {
            continue;
        }
        let values: Vec<Value> = vec![
            encode(rows)?.into(),
            encode(ids)?.into(),
            changed_doc.into(),
            now.into(),
        ];
        touched += db
            .execute_raw(statement(DbBackend::Postgres, SQL, values))
            .await
            .map_err(Error::db_while(CONTEXT))?
            .rows_affected();
    }
    Ok(touched)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::permanent(format!("cannot encode the references: {e}")))
}

async fn record_each<C: ConnectionTrait>(db: &C, plan: &Plan<'_>, now: i64) -> Result<u64> {
    let backend = db.get_database_backend();
    let run = |sql: String, values: Vec<Value>| async move {
        db.execute_raw(statement(backend, &sql, values))
            .await
            .map(|done| done.rows_affected())
            .map_err(Error::db_while(CONTEXT))
    };
    let mut touched = 0;
    // Referrers of the changed groups carrying another id, before any reference of this batch
    // is written (as on PostgreSQL; the guard covers what this batch writes).
    for chunk in plan.changed.chunks(100) {
        let pairs = vec!["(target_syncer = ? AND target_key = ? AND remote_id <> ?)"; chunk.len()]
            .join(" OR ");
        let mut values: Vec<Value> = vec![now.into()];
        for (group, id) in chunk {
            values.extend([
                Value::from(group.syncer.as_str()),
                Value::from(group.root_key.as_str()),
                Value::from(*id),
            ]);
        }
        touched += run(
            format!(
                "INSERT INTO sync_touches (syncer, root_key, mark, at) \
                 SELECT DISTINCT referrer_syncer, referrer_key, 0, ? FROM sync_references WHERE {pairs}"
            ),
            values,
        )
        .await?;
    }
    let replaced: Vec<i64> = plan
        .writes
        .iter()
        .filter(|(g, _)| g.references_digest.is_some())
        .map(|(g, _)| g.id)
        .collect();
    for chunk in replaced.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        run(
            format!("DELETE FROM sync_references WHERE referrer_id IN ({list})"),
            chunk.iter().map(|id| Value::from(*id)).collect(),
        )
        .await?;
    }
    let rows: Vec<(&ClaimedGroup, &Reference)> = plan
        .writes
        .iter()
        .flat_map(|(g, refs)| refs.iter().map(move |r| (*g, r)))
        .collect();
    let upsert = match backend {
        DbBackend::MySql => "ON DUPLICATE KEY UPDATE remote_id = VALUES(remote_id)",
        _ => {
            "ON CONFLICT (target_syncer, target_key, referrer_id) DO UPDATE SET remote_id = \
             excluded.remote_id"
        }
    };
    for chunk in rows.chunks(100) {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (group, r) in chunk {
            values.extend([
                Value::from(r.syncer.as_str()),
                Value::from(r.key.as_str()),
                Value::from(group.id),
                Value::from(group.syncer.as_str()),
                Value::from(group.root_key.as_str()),
                Value::from(r.remote_id.as_str()),
            ]);
        }
        run(
            format!(
                "INSERT INTO sync_references (target_syncer, target_key, referrer_id, \
                 referrer_syncer, referrer_key, remote_id) VALUES {placeholders} {upsert}"
            ),
            values,
        )
        .await?;
    }
    // The guard, over the references just written.
    let written: Vec<i64> = plan
        .writes
        .iter()
        .filter(|(_, refs)| !refs.is_empty())
        .map(|(g, _)| g.id)
        .collect();
    for chunk in written.chunks(500) {
        let list = vec!["?"; chunk.len()].join(", ");
        let mut values: Vec<Value> = vec![now.into()];
        values.extend(chunk.iter().map(|id| Value::from(*id)));
        touched += run(
            format!(
                "INSERT INTO sync_touches (syncer, root_key, mark, at) \
                 SELECT DISTINCT s.referrer_syncer, s.referrer_key, 0, ? FROM sync_references s \
                 LEFT JOIN sync_groups g ON g.syncer = s.target_syncer AND g.root_key = s.target_key \
                 WHERE s.referrer_id IN ({list}) AND (g.remote_id IS NULL OR g.remote_id <> s.remote_id)"
            ),
            values,
        )
        .await?;
    }
    Ok(touched)
}

/// After the group (`syncer`, `key`) was linked to `remote_id` (it had none): touches the groups
/// whose pushes carried another remote id of it. Two statements at most; a plain read, so that
/// the inbound transaction this runs in locks no reference.
pub(crate) async fn touch_referrers<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    key: &crate::RootKey,
    remote_id: &RemoteId,
) -> Result<()> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(statement(
            backend,
            "SELECT DISTINCT referrer_syncer, referrer_key FROM sync_references \
             WHERE target_syncer = ? AND target_key = ? AND remote_id <> ?",
            vec![
                syncer.into(),
                key.as_str().into(),
                remote_id.as_str().into(),
            ],
        ))
        .await
        .map_err(Error::db_while(format!(
            "looking up the groups carrying another remote id of `{syncer}` group `{key}`"
        )))?;
    if rows.is_empty() {
        return Ok(());
    }
    let referrers: Vec<(String, crate::RootKey)> = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "referrer_syncer")?,
                crate::RootKey::from(row.try_get::<String>("", "referrer_key")?),
            ))
        })
        .collect::<Result<_>>()?;
    let touches: Vec<(&str, &crate::RootKey, crate::touch_log::Mark)> = referrers
        .iter()
        .map(|(s, k)| (s.as_str(), k, crate::touch_log::Mark::Touch))
        .collect();
    crate::touch_log::append(db, &touches).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookups_are_kept_per_group_sorted_and_once_per_referenced_group() {
        let lookups = Lookups::default();
        assert!(Lookups::current().is_none());
        lookups
            .scope(async {
                let current = Lookups::current().expect("in scope");
                current.record(
                    1,
                    "erp.customer",
                    "7",
                    &RemoteId::from_stored("12".into(), true),
                );
                current.record(
                    2,
                    "erp.customer",
                    "8",
                    &RemoteId::from_stored("13".into(), true),
                );
                current.record(
                    1,
                    "erp.customer",
                    "7",
                    &RemoteId::from_stored("12".into(), true),
                );
                current.record(
                    1,
                    "erp.address",
                    "3",
                    &RemoteId::from_stored("a".into(), false),
                );
                current.record(
                    2,
                    "erp.customer",
                    "8",
                    &RemoteId::from_stored("14".into(), true),
                );
            })
            .await;
        let one = lookups.take(1);
        assert_eq!(
            one.iter()
                .map(|r| (r.syncer.as_str(), r.key.as_str(), r.remote_id.as_str()))
                .collect::<Vec<_>>(),
            [("erp.address", "3", "a"), ("erp.customer", "7", "12")]
        );
        let two = lookups.take(2);
        assert_eq!(two.len(), 1, "one per referenced group");
        assert_eq!(
            two[0].remote_id, "",
            "read with two ids: never equal to the current one"
        );
        assert!(lookups.take(1).is_empty(), "taken");
    }

    #[test]
    fn digests_differ_when_any_part_differs_and_none_is_none() {
        let r = |s: &str, k: &str, id: &str| Reference {
            syncer: s.into(),
            key: k.into(),
            remote_id: id.into(),
        };
        assert_eq!(digest(&[]), None);
        let base = digest(&[r("a", "1", "x")]).unwrap();
        assert_eq!(base.len(), 32);
        assert_ne!(Some(base.clone()), digest(&[r("a", "1", "y")]));
        assert_ne!(Some(base.clone()), digest(&[r("a", "11", "")]));
        assert_ne!(Some(base), digest(&[r("a", "1", "x"), r("b", "1", "x")]));
    }
}
