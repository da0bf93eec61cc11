//! The operator subcommands: `status`, `failed`, `retry`, `forget`, `resync`, `backfill`,
//! `plan`. Human output by default, `--json` for scripts; progress on stderr (a bar on a
//! terminal, a line every few seconds otherwise). A command that could not do what it was asked
//! fails with [`Error::Incomplete`], so that its exit code is not 0.

use std::time::Duration;

/// `println!` that ignores a closed stdout (`worker status | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use sea_orm::DatabaseConnection;
use serde_json::json;
use sync_core::ops::{self, ForgetScope, RetryScope};
use sync_core::{Registry, now_ms};

use crate::format::age;
use crate::progress::Progress;
use crate::{Error, Result, Worker, WorkerSettings};

/// `status`: per syncer, groups by state, work left, last success, recent failures.
pub(crate) async fn status(
    db: &DatabaseConnection,
    known: &[String],
    create_only: &[String],
    json: bool,
) -> Result<()> {
    let now = now_ms();
    let mut status = ops::status(db, known, now).await?;
    for s in &mut status {
        s.create_only = create_only.contains(&s.syncer);
    }
    if json {
        return print_json(&status);
    }
    say!(
        "{:<24} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}  {:<12} {:<14} {:>10}",
        "syncer",
        "pending",
        "synced",
        "failed",
        "dead",
        "deleted",
        "to do",
        "oldest to do",
        "last success",
        "fails/1h"
    );
    for s in status {
        let n = |state: &str| s.groups.get(state).copied().unwrap_or(0);
        let health = if s.healthy { "" } else { "  FAILING" };
        let once = if s.create_only { "  create-only" } else { "" };
        let paused = s
            .paused_until
            .map(|u| format!("  paused {}", age(u - now)))
            .unwrap_or_default();
        say!(
            "{:<24} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}  {:<12} {:<14} {:>10}{health}{paused}{once}",
            s.syncer,
            n("pending"),
            n("synced"),
            n("failed"),
            n("dead"),
            n("deleted"),
            s.dirty,
            s.oldest_dirty_ms.map_or("-".into(), age),
            s.last_success_at
                .map_or("never".into(), |t| format!("{} ago", age(now - t))),
            s.failures_last_hour,
        );
    }
    Ok(())
}

/// `failed`: failed and dead groups with their last error.
pub(crate) async fn failed(
    db: &DatabaseConnection,
    syncer: Option<&str>,
    limit: u64,
    json: bool,
) -> Result<()> {
    let now = now_ms();
    let groups = ops::problems(db, syncer, limit).await?;
    if json {
        let rows: Vec<_> = groups
            .iter()
            .map(|g| {
                json!({"id": g.id, "syncer": g.syncer, "root_key": g.root_key, "state": g.state,
                       "attempts": g.attempts, "next_attempt_at": g.next_attempt_at, "last_error": g.last_error,
                       "last_status": g.last_status, "remote_id": g.remote_id,
                       "version": g.version, "synced_version": g.synced_version})
            })
            .collect();
        return print_json(&rows);
    }
    if groups.is_empty() {
        say!("no failed or dead groups");
        return Ok(());
    }
    for g in groups {
        let next = if g.state == "dead" {
            "never (retry it)".to_owned()
        } else {
            format!("in {}", age(g.next_attempt_at - now))
        };
        let lost = if g.last_status == Some(404) && g.remote_id.is_some() {
            "  (the remote lost its record: `forget` it to create it again)"
        } else {
            ""
        };
        say!(
            "#{:<6} {:<20} {:<12} {:<6} attempts {:<3} next {}{lost}\n        {}",
            g.id,
            g.syncer,
            g.root_key,
            g.state,
            g.attempts,
            next,
            g.last_error.as_deref().unwrap_or("(no error recorded)")
        );
    }
    Ok(())
}

/// What `retry` and `forget` apply to, and whether they then wait for the pushes.
#[derive(Debug)]
pub(crate) struct Then {
    /// Push the groups and wait, with the syncers of this registry.
    pub(crate) wait: Option<(Registry, WorkerSettings)>,
    pub(crate) json: bool,
}

/// `retry`: makes failed or dead groups due now (and with `--wait`, pushes them).
pub(crate) async fn retry(db: &DatabaseConnection, scope: RetryScope, then: Then) -> Result<()> {
    let retried = ops::retry(db, &scope, now_ms()).await?;
    if let RetryScope::Group(id) = scope
        && retried == 0
    {
        return Err(Error::Incomplete(not_retried(db, id).await?));
    }
    let syncer = match &scope {
        RetryScope::Syncer(name) => Some(name.clone()),
        RetryScope::Group(id) => ops::group(db, *id).await?.map(|g| g.syncer),
        _ => None,
    };
    let report = wait_for(db, syncer.as_deref(), retried, &then, "retry").await?;
    if then.json {
        print_json(&json!({"retried": retried, "failed_or_dead": report}))?;
    } else if retried == 0 {
        say!("nothing to retry: no group matches");
    } else {
        say!("{retried} group(s) due again now");
    }
    left_over(report, syncer.as_deref())
}

async fn not_retried(db: &DatabaseConnection, id: i64) -> Result<String> {
    Ok(match ops::group(db, id).await? {
        None => format!("there is no group {id} (`failed` lists the groups to retry)"),
        Some(g) => format!(
            "group {id} (`{}` {}) is {}, not failed or dead: nothing to retry",
            g.syncer, g.root_key, g.state
        ),
    })
}

/// `forget`: forgets the remote ids of groups whose remote lost the record, so that they are
/// created again (and with `--wait`, pushes them).
pub(crate) async fn forget(db: &DatabaseConnection, scope: ForgetScope, then: Then) -> Result<()> {
    let forgotten = ops::forget(db, &scope, now_ms()).await?;
    if let ForgetScope::Group(id) = scope
        && forgotten == 0
    {
        let reason = match ops::group(db, id).await? {
            None => format!("there is no group {id}"),
            Some(g) if g.state == "deleted" => format!(
                "group {id} is closed (its root is deleted): there is nothing to create again"
            ),
            Some(_) => format!(
                "group {id} is being pushed by a worker right now; try again when its lease ends"
            ),
        };
        return Err(Error::Incomplete(reason));
    }
    let syncer = match &scope {
        ForgetScope::Missing { syncer } => syncer.clone(),
        ForgetScope::Group(id) => ops::group(db, *id).await?.map(|g| g.syncer),
        _ => None,
    };
    let report = wait_for(db, syncer.as_deref(), forgotten, &then, "recreate").await?;
    if then.json {
        print_json(&json!({"forgotten": forgotten, "failed_or_dead": report}))?;
    } else if forgotten == 0 {
        say!("no group's remote record is known to be lost (none failed with a 404)");
    } else {
        say!("{forgotten} group(s) forgotten: their records will be created again");
    }
    left_over(report, syncer.as_deref())
}

/// With `then.wait`, pushes until the groups of `syncer` (or all) are no longer in progress;
/// returns how many are then failed or dead (`None` without waiting).
async fn wait_for(
    db: &DatabaseConnection,
    syncer: Option<&str>,
    total: u64,
    then: &Then,
    what: &str,
) -> Result<Option<u64>> {
    let Some((registry, settings)) = &then.wait else {
        return Ok(None);
    };
    if total == 0 {
        return Ok(Some(0));
    }
    let registry = match syncer {
        Some(name) => registry
            .only(name)
            .ok_or_else(|| unknown_syncer(name, registry))?,
        None => registry.clone(),
    };
    let worker = Worker::new(db.clone(), registry, settings.clone())?;
    drain(db, &worker, syncer, total, then.json, what).await?;
    Ok(Some(ops::problem_count(db, syncer).await?))
}

/// Fails when groups are left failed or dead after waiting.
fn left_over(report: Option<u64>, syncer: Option<&str>) -> Result<()> {
    match report {
        Some(n) if n > 0 => Err(Error::Incomplete(format!(
            "{n} group(s){} are failed or dead; `failed{}` shows why",
            syncer.map(|s| format!(" of `{s}`")).unwrap_or_default(),
            syncer.map(|s| format!(" --syncer {s}")).unwrap_or_default(),
        ))),
        _ => Ok(()),
    }
}

/// Runs passes of `worker` until no group of `syncer` is in progress (see
/// [`ops::in_progress`]); groups that failed and wait for a later retry end the wait.
async fn drain(
    db: &DatabaseConnection,
    worker: &Worker,
    syncer: Option<&str>,
    total: u64,
    quiet: bool,
    what: &str,
) -> Result<()> {
    let label = match syncer {
        Some(name) => format!("{what} `{name}`"),
        None => what.to_owned(),
    };
    let mut progress = Progress::new(&label, total, quiet);
    loop {
        let pass = worker.run_once().await?;
        let left = ops::in_progress(db, syncer, now_ms()).await?;
        let problems = ops::problem_count(db, syncer).await?;
        let done = total.saturating_sub(left);
        progress.set(done, &format!("done, {problems} failed or dead"));
        if left == 0 {
            progress.finish(done, &format!("done, {problems} failed or dead"));
            return Ok(());
        }
        if pass.claimed == 0 {
            // What is left waits for a prerequisite, a retry time or another worker's lease.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn unknown_syncer(name: &str, registry: &Registry) -> Error {
    Error::Config(format!(
        "no syncer `{name}` is registered; known: {}",
        registry.names().join(", ")
    ))
}

/// `resync`: a full run of one syncer, ignoring digests.
pub(crate) async fn resync(
    db: &DatabaseConnection,
    registry: &Registry,
    settings: WorkerSettings,
    syncer: &str,
    no_wait: bool,
    json: bool,
) -> Result<()> {
    let only = registry
        .only(syncer)
        .ok_or_else(|| unknown_syncer(syncer, registry))?;
    let total = ops::request_full_run(db, syncer, now_ms()).await?;
    if no_wait {
        if json {
            return print_json(&json!({"syncer": syncer, "groups": total, "waited": false}));
        }
        say!(
            "{total} group(s) of `{syncer}` marked for a full run; running workers will push them"
        );
        return Ok(());
    }
    let worker = Worker::new(db.clone(), only, settings)?;
    drain(db, &worker, Some(syncer), total, json, "full run of").await?;
    let problems = ops::problem_count(db, Some(syncer)).await?;
    if json {
        print_json(
            &json!({"syncer": syncer, "groups": total, "waited": true, "failed_or_dead": problems}),
        )?;
    } else {
        say!(
            "full run of `{syncer}`: {total} group(s) pushed ignoring digests; {problems} failed or dead"
        );
    }
    left_over(Some(problems), Some(syncer))
}

/// `backfill`: registers every existing root of a syncer that has no group yet.
pub(crate) async fn backfill(
    db: &DatabaseConnection,
    registry: &Registry,
    syncer: &str,
    batch: u64,
    json: bool,
) -> Result<()> {
    let source = registry.root_source(syncer).ok_or_else(|| {
        Error::Config(format!(
            "no root entity is declared for syncer `{syncer}`; call `registry.roots::<your_root::Entity>()` in the worker binary"
        ))
    })?;
    let mut progress = Progress::new(&format!("backfill of `{syncer}`"), 0, json);
    let (mut after, mut created, mut batches, mut read) = (None, 0, 0, 0);
    loop {
        let (last, n) = source
            .backfill_batch(db, syncer, after, batch, now_ms())
            .await?;
        created += n;
        batches += 1;
        read += batch;
        progress.set(read, &format!("roots read, {created} registered"));
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    progress.finish(created, "registered");
    if json {
        return print_json(&json!({"syncer": syncer, "registered": created, "batches": batches}));
    }
    say!("backfill of `{syncer}`: {created} new group(s) registered; the workers will push them");
    Ok(())
}

/// What `plan` shows.
#[derive(Debug)]
pub(crate) struct PlanRequest {
    pub(crate) syncer: Option<String>,
    pub(crate) all: bool,
    pub(crate) full: bool,
    pub(crate) payloads: bool,
    pub(crate) limit: u64,
    pub(crate) json: bool,
}

/// `plan`: a dry run.
pub(crate) async fn plan(
    db: &DatabaseConnection,
    registry: &Registry,
    request: PlanRequest,
) -> Result<()> {
    let items = ops::plan(
        db,
        registry,
        request.syncer.as_deref(),
        request.all,
        request.full,
        request.limit,
    )
    .await?;
    if request.json {
        return print_json(&items);
    }
    let mut counts = std::collections::BTreeMap::new();
    for item in &items {
        *counts.entry(item.action).or_insert(0) += 1;
        let reason = item
            .reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default();
        say!(
            "{:<7} {:<20} {}{reason}",
            item.action,
            item.syncer,
            item.root_key
        );
        if request.payloads
            && let Some(payload) = &item.payload
        {
            say!("        {payload}");
        }
    }
    let summary: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    say!(
        "plan: {} (nothing was pushed)",
        if summary.is_empty() {
            "nothing to do".into()
        } else {
            summary.join(", ")
        }
    );
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    say!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| Error::Runtime(e.to_string()))?
    );
    Ok(())
}

/// `sources`: per inbound source, the last run, its counts, lag and quarantined records.
pub(crate) async fn sources(db: &DatabaseConnection, json: bool) -> Result<()> {
    let now = now_ms();
    let status = sync_core::source::source_status(db).await?;
    if json {
        return print_json(&status);
    }
    say!(
        "{:<24} {:<14} {:>8} {:>8} {:>8} {:>11} {:>8} {:>11}  cursor",
        "source",
        "last success",
        "fetched",
        "applied",
        "skipped",
        "quarantined",
        "deleted",
        "quarantine"
    );
    for s in status {
        let [fetched, applied, skipped, quarantined, deleted] = s.last_counts;
        let success = s
            .last_success_at
            .map_or_else(|| "never".to_owned(), |at| format!("{} ago", age(now - at)));
        let mut notes = String::new();
        if let Some(worker) = &s.running_on {
            notes.push_str(&format!("  running on {worker}"));
        }
        if s.full_run {
            notes.push_str("  full run");
        }
        if let Some(error) = &s.last_error {
            notes.push_str(&format!("  FAILING: {error}"));
        }
        say!(
            "{:<24} {:<14} {:>8} {:>8} {:>8} {:>11} {:>8} {:>11}  {}{notes}",
            s.source,
            success,
            fetched,
            applied,
            skipped,
            quarantined,
            deleted,
            s.quarantined,
            s.cursor.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `sources --quarantined`: the records whose apply failed, with payload and error.
pub(crate) async fn quarantined(
    db: &DatabaseConnection,
    source: Option<&str>,
    limit: u64,
    json: bool,
) -> Result<()> {
    let rows = sync_core::source::quarantined(db, source, limit).await?;
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "source": r.source,
                    "remote_id": r.remote_id,
                    "attempts": r.attempts,
                    "next_retry_at": r.next_retry_at,
                    "error": r.error,
                    "payload": r.payload.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()),
                })
            })
            .collect();
        return print_json(&list);
    }
    let now = now_ms();
    for r in &rows {
        let next = r
            .next_retry_at
            .map_or_else(String::new, |at| format!(", next try in {}", age(at - now)));
        say!(
            "{} {}: {} attempt(s){next}\n  error: {}\n  payload: {}",
            r.source,
            r.remote_id,
            r.attempts,
            r.error.as_deref().unwrap_or("-"),
            r.payload.as_deref().unwrap_or("-")
        );
    }
    if rows.is_empty() {
        say!("no quarantined records");
    }
    Ok(())
}

/// `plan-source`: what a run of the source would do locally, nothing written.
pub(crate) async fn plan_source(
    db: &DatabaseConnection,
    source: &dyn sync_core::source::Source,
    full: bool,
    limit: usize,
    json: bool,
) -> Result<()> {
    let plan = sync_core::source::plan_source(db, source, full, limit).await?;
    if json {
        return print_json(&plan);
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in &plan.records {
        let key = if r.error.is_some() {
            "quarantine"
        } else {
            r.action
        };
        *counts.entry(key).or_default() += 1;
        if r.action != "unchanged" {
            match &r.error {
                Some(error) => say!(
                    "{:<10} {}  would be quarantined: {error}",
                    r.action,
                    r.remote_id
                ),
                None => say!("{:<10} {}", r.action, r.remote_id),
            }
        }
    }
    for id in &plan.vanished {
        say!("{:<10} {id}  (no longer listed)", "vanished");
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    say!(
        "source {}: fetched {}{}; {}{}",
        plan.source,
        plan.fetched,
        if plan.full { " (full run)" } else { "" },
        if summary.is_empty() {
            "nothing to do".to_owned()
        } else {
            summary.join(", ")
        },
        if plan.truncated {
            "; stopped at the limit"
        } else {
            ""
        }
    );
    Ok(())
}

/// What `verify` is asked to do.
#[derive(Debug)]
pub(crate) struct VerifyRequest {
    pub(crate) options: sync_core::verify::VerifyOptions,
    pub(crate) repair: bool,
    pub(crate) delete_orphans: bool,
    pub(crate) json: bool,
}

/// `verify`: the drift report, one line per group that is not in step and per orphan, then the
/// counts, and with `repair` the repairs queued ([`ops::repair`]) and, with `delete_orphans`,
/// the orphans deleted ([`sync_core::Engine::delete_orphans`]). A progress bar on a terminal
/// (lines otherwise), none with `--json`. Fails with [`Error::Incomplete`] when anything
/// differs, is missing, is an orphan or could not be read (with `repair`: when something could
/// not be read, or orphans are left).
pub(crate) async fn verify(
    db: &DatabaseConnection,
    registry: Registry,
    settings: WorkerSettings,
    request: &VerifyRequest,
) -> Result<()> {
    use sync_core::verify::Drift;
    let engine = sync_core::Engine::new(db.clone(), registry, settings.engine)?;
    let shown = std::sync::Mutex::new(Progress::new("verify", 0, request.json));
    let report = engine
        .verify_with_progress(&request.options, |p| {
            let mut shown = shown.lock().expect("progress");
            shown.set_total(p.total);
            if p.listed > 0 {
                shown.set(
                    p.checked,
                    &format!("groups checked, {} remote records listed", p.listed),
                );
            } else {
                shown.set(p.checked, "groups checked");
            }
        })
        .await;
    let shown = shown.into_inner().expect("progress");
    let report = report?;
    shown.finish(report.groups.len() as u64, "checked");
    let repaired = if request.repair {
        Some(ops::repair(db, &report, now_ms()).await?)
    } else {
        None
    };
    let deleted = if request.repair && request.delete_orphans {
        Some(engine.delete_orphans(&report).await?)
    } else {
        None
    };
    let orphans = report.count("orphan");
    if request.json {
        print_json(&json!({
            "groups": report.groups,
            "listings": report.listings,
            "repaired": repaired,
            "orphans_deleted": deleted,
        }))?;
    } else {
        for g in &report.groups {
            let what = match &g.drift {
                Drift::InStep | Drift::NotPushed => continue,
                Drift::Different { fields } => fields
                    .iter()
                    .map(|f| {
                        let remote = f
                            .remote
                            .as_ref()
                            .map_or_else(|| "(absent)".to_owned(), ToString::to_string);
                        format!("{}: local {} remote {remote}", f.path, f.local)
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                Drift::Missing => "the remote has no such record".to_owned(),
                Drift::Unreadable { error } => error.clone(),
                Drift::Orphan { record } => {
                    let mut held = record.to_string();
                    if let Some((cut, _)) = held.char_indices().nth(120) {
                        held.truncate(cut);
                        held.push('…');
                    }
                    format!("no group points at it; it holds {held}")
                }
                other => format!("{other:?}"),
            };
            if g.has_group() {
                say!(
                    "{:<10} {:<20} {:<12} group {} remote id {}: {what}",
                    g.drift.label(),
                    g.syncer,
                    g.root_key,
                    g.group_id,
                    g.remote_id.as_deref().unwrap_or("-")
                );
            } else {
                say!(
                    "{:<10} {:<20} {:<12} remote id {}: {what}",
                    g.drift.label(),
                    g.syncer,
                    "(no group)",
                    g.remote_id.as_deref().unwrap_or("-")
                );
            }
        }
        for l in &report.listings {
            say!(
                "listed {}: {} record(s) in {} page(s){}",
                l.syncer,
                l.records,
                l.pages,
                if l.complete {
                    ""
                } else {
                    " (incomplete: no orphan reported)"
                }
            );
        }
        say!(
            "verify: {} group(s): {} in step, {} different, {} missing, {} unreadable, {} not pushed yet; {} orphan(s)",
            report.groups.iter().filter(|g| g.has_group()).count(),
            report.count("in_step"),
            report.count("different"),
            report.count("missing"),
            report.count("unreadable"),
            report.count("not_pushed"),
            orphans,
        );
        if let Some(r) = &repaired {
            say!(
                "repair: {} to push again, {} to create again; the running workers push them (run `verify` again afterwards)",
                r.pushed_again,
                r.created_again
            );
        }
        match &deleted {
            Some(d) => {
                say!(
                    "orphans: {} deleted, {} kept, {} failed",
                    d.deleted,
                    d.kept,
                    d.failed.len()
                );
                for failure in &d.failed {
                    say!("  {failure}");
                }
            }
            None if orphans > 0 => say!(
                "orphans are left alone; `verify --repair --delete-orphans` deletes them on their remotes"
            ),
            None => {}
        }
    }
    let unreadable = report.count("unreadable");
    if report.is_clean() {
        return Ok(());
    }
    if repaired.is_some() {
        let mut left = Vec::new();
        if unreadable > 0 {
            left.push(format!(
                "{unreadable} could not be verified (see their errors above)"
            ));
        }
        match &deleted {
            None if orphans > 0 => left.push(format!(
                "{orphans} orphan(s) are left on the remote (`--delete-orphans` deletes them)"
            )),
            Some(d) if d.kept > 0 || !d.failed.is_empty() => left.push(format!(
                "{} orphan(s) were not deleted ({} kept, {} failed)",
                d.kept + d.failed.len() as u64,
                d.kept,
                d.failed.len()
            )),
            _ => {}
        }
        if left.is_empty() {
            return Ok(());
        }
        return Err(Error::Incomplete(format!(
            "{}; the other repairs are queued",
            left.join("; ")
        )));
    }
    Err(Error::Incomplete(format!(
        "the remotes differ from the local data: {} different, {} missing, {} orphan(s), {} \
         unreadable; `verify --repair` queues the fix (push the current data again, as \
         `resync --syncer NAME` does; have a record the remote lost created again, as \
         `forget --group ID` does), and with `--delete-orphans` deletes the orphans",
        report.count("different"),
        report.count("missing"),
        orphans,
        unreadable,
    )))
}
