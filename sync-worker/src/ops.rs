//! The operator subcommands: `status`, `failed`, `retry`, `resync`, `backfill`, `plan`.
//! Human output by default, `--json` for scripts; progress bars on stderr.

use std::time::Duration;

/// `println!` that ignores a closed stdout (`worker status | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::DatabaseConnection;
use serde_json::json;
use sync_core::ops::{self, RetryScope};
use sync_core::{Registry, now_ms};

use crate::cli::Command;
use crate::{Error, Result, Worker, WorkerSettings};

pub(crate) async fn run(
    command: Command,
    db: DatabaseConnection,
    registry: Registry,
    settings: WorkerSettings,
) -> Result<()> {
    let now = now_ms();
    match command {
        Command::Run { .. } => unreachable!("handled by the caller"),
        Command::Status { json } => {
            let status = ops::status(&db, &registry.names(), now).await?;
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
                "dirty",
                "oldest dirty",
                "last success",
                "fails/1h"
            );
            for s in status {
                let n = |state: &str| s.groups.get(state).copied().unwrap_or(0);
                let health = if s.healthy { "" } else { "  FAILING" };
                let paused = s
                    .paused_until
                    .map(|u| format!("  paused {}", age(u - now)))
                    .unwrap_or_default();
                say!(
                    "{:<24} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}  {:<12} {:<14} {:>10}{health}{paused}",
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
        Command::Failed {
            syncer,
            limit,
            json,
        } => {
            let groups = ops::problems(&db, syncer.as_deref(), limit).await?;
            if json {
                let rows: Vec<_> = groups
                    .iter()
                    .map(|g| {
                        json!({"id": g.id, "syncer": g.syncer, "root_key": g.root_key, "state": g.state,
                               "attempts": g.attempts, "next_attempt_at": g.next_attempt_at, "last_error": g.last_error,
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
                say!(
                    "#{:<6} {:<20} {:<12} {:<6} attempts {:<3} next {}\n        {}",
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
        Command::Retry {
            group,
            syncer,
            dead,
            json,
        } => {
            let scope = match (group, syncer, dead) {
                (Some(id), _, _) => RetryScope::Group(id),
                (None, Some(name), _) => RetryScope::Syncer(name),
                (None, None, true) => RetryScope::AllDead,
                (None, None, false) => {
                    return Err(Error::Config(
                        "say what to retry: --group ID, --syncer NAME or --dead".into(),
                    ));
                }
            };
            let n = ops::retry(&db, &scope, now).await?;
            if json {
                return print_json(&json!({"retried": n}));
            }
            say!("{n} group(s) due again now");
            Ok(())
        }
        Command::Resync {
            syncer,
            no_wait,
            json,
        } => {
            let only = registry.only(&syncer).ok_or_else(|| {
                Error::Config(format!(
                    "no syncer `{syncer}` is registered; known: {}",
                    registry.names().join(", ")
                ))
            })?;
            let total = ops::request_full_run(&db, &syncer, now).await?;
            if !no_wait {
                let worker = Worker::new(db.clone(), only, settings)?;
                let bar = progress(total, json, "pushing");
                loop {
                    let pass = worker.run_once().await?;
                    let left = ops::remaining(&db, &syncer).await?;
                    bar.set_position(total.saturating_sub(left));
                    if left == 0 {
                        break;
                    }
                    if pass.claimed == 0 {
                        // What is left waits for a retry time or for another worker's lease.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                bar.finish_and_clear();
            }
            let problems = ops::problems(&db, Some(&syncer), 1_000_000).await?.len();
            if json {
                return print_json(
                    &json!({"syncer": syncer, "groups": total, "waited": !no_wait, "failed_or_dead": problems}),
                );
            }
            if no_wait {
                say!(
                    "{total} group(s) of `{syncer}` marked for a full run; running workers will push them"
                );
            } else {
                say!(
                    "full run of `{syncer}`: {total} group(s) pushed ignoring digests; {problems} failed or dead (see `failed`)"
                );
            }
            Ok(())
        }
        Command::Backfill {
            syncer,
            batch,
            json,
        } => {
            let source = registry.root_source(&syncer).ok_or_else(|| {
                Error::Config(format!(
                    "no root entity is declared for syncer `{syncer}`; call `registry.roots::<your_root::Entity>()` in the worker binary"
                ))
            })?;
            let bar = progress(0, json, "roots");
            let (mut after, mut created, mut batches) = (None, 0, 0);
            loop {
                let (last, n) = source
                    .backfill_batch(&db, &syncer, after, batch, now_ms())
                    .await?;
                created += n;
                batches += 1;
                bar.inc(batch);
                bar.set_message(format!("{created} registered"));
                match last {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
            bar.finish_and_clear();
            if json {
                return print_json(
                    &json!({"syncer": syncer, "registered": created, "batches": batches}),
                );
            }
            say!(
                "backfill of `{syncer}`: {created} new group(s) registered; the workers will push them"
            );
            Ok(())
        }
        Command::Plan {
            syncer,
            all,
            full,
            payloads,
            limit,
            json,
        } => {
            let items = ops::plan(&db, &registry, syncer.as_deref(), all, full, limit).await?;
            if json {
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
                if payloads && let Some(payload) = &item.payload {
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
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    say!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| Error::Runtime(e.to_string()))?
    );
    Ok(())
}

fn progress(total: u64, hidden: bool, unit: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = if total > 0 {
        format!("{{bar:40}} {{pos}}/{{len}} {unit} {{msg}} ({{eta}} left)")
    } else {
        format!("{{spinner}} {{pos}} {unit} read, {{msg}}")
    };
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `1h 2m`, `3m 4s`, `5s`, `120ms`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}
