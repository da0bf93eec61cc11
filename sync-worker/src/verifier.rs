//! Scheduled verification ([`VerifySchedule`]): every interval, the worker verifies one slice of
//! the groups against what the remotes hold ([`sync_core::Engine::verify`]), so that every group
//! is read once per `slices` runs. It repairs nothing: drift is reported in the log, in the
//! `sync_drift_groups{syncer,kind}` gauges, and by one alert per syncer when drift appears
//! (`drift`) and one when it is gone (`in_step`). It reads groups only: it lists no remote
//! collection, so it reports no orphans (the `verify` command and the dashboard do).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sync_core::Engine;
use sync_core::verify::{Drift, VerifyOptions, VerifyReport};

use crate::AlertSink;
use crate::activity::Alert;

/// When a worker verifies on its own (see [`WorkerSettings::verify`](crate::WorkerSettings)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifySchedule {
    /// How often a slice is verified.
    pub every: Duration,
    /// Into how many slices the groups are cut: each run reads one, every group is read once
    /// per `slices` runs (1: every group every run).
    pub slices: u64,
}

impl VerifySchedule {
    /// Every group, every `every`.
    pub fn every(every: Duration) -> Self {
        VerifySchedule { every, slices: 1 }
    }

    /// One slice of `slices` per run.
    pub fn slices(mut self, slices: u64) -> Self {
        self.slices = slices.max(1);
        self
    }
}

/// The groups each syncer has drifting now (different or missing), kept across slices.
#[derive(Debug, Default)]
pub(crate) struct DriftState {
    drifting: BTreeMap<String, BTreeSet<i64>>,
}

impl DriftState {
    /// Takes in one run's report; returns the alerts (a syncer that started or stopped
    /// drifting).
    pub(crate) fn update(&mut self, report: &VerifyReport, at: i64) -> Vec<Alert> {
        let mut verified: BTreeMap<&str, u32> = BTreeMap::new();
        let mut counts: BTreeMap<(&str, &'static str), u32> = BTreeMap::new();
        let before: BTreeMap<String, bool> = self
            .drifting
            .iter()
            .map(|(s, set)| (s.clone(), !set.is_empty()))
            .collect();
        for g in &report.groups {
            *verified.entry(&g.syncer).or_default() += 1;
            let set = self.drifting.entry(g.syncer.clone()).or_default();
            match g.drift {
                Drift::Different { .. } | Drift::Missing => {
                    set.insert(g.group_id);
                }
                _ => {
                    set.remove(&g.group_id);
                }
            }
            if matches!(
                g.drift,
                Drift::Different { .. } | Drift::Missing | Drift::Unreadable { .. }
            ) {
                *counts.entry((&g.syncer, g.drift.label())).or_default() += 1;
            }
        }
        for (syncer, n) in &verified {
            for kind in ["different", "missing", "unreadable"] {
                let value = counts.get(&(*syncer, kind)).copied().unwrap_or(0);
                metrics::gauge!("sync_drift_groups", "syncer" => (*syncer).to_owned(), "kind" => kind)
                    .set(f64::from(value));
            }
            metrics::counter!("sync_verified_groups_total", "syncer" => (*syncer).to_owned())
                .increment(u64::from(*n));
        }
        let mut alerts = Vec::new();
        for (syncer, set) in &self.drifting {
            let was = before.get(syncer).copied().unwrap_or(false);
            let is = !set.is_empty();
            if was != is {
                alerts.push(Alert {
                    syncer: syncer.clone(),
                    state: if is { "drift" } else { "in_step" },
                    at,
                    failed: u32::try_from(set.len()).unwrap_or(u32::MAX),
                    attempted: verified.get(syncer.as_str()).copied().unwrap_or(0),
                });
            }
        }
        alerts
    }
}

/// Verifies one slice every `schedule.every` until aborted.
pub(crate) fn spawn_loop(
    engine: Engine,
    schedule: VerifySchedule,
    alerts: AlertSink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut state = DriftState::default();
        let mut run: u64 = 0;
        loop {
            tokio::time::sleep(schedule.every).await;
            let options = VerifyOptions::all()
                .slice(schedule.slices, run)
                .groups_only();
            run = run.wrapping_add(1);
            let report = match engine.verify(&options).await {
                Ok(report) => report,
                Err(error) => {
                    tracing::warn!(%error, "scheduled verification failed");
                    continue;
                }
            };
            let (different, missing, unreadable) = (
                report.count("different"),
                report.count("missing"),
                report.count("unreadable"),
            );
            if different + missing + unreadable > 0 {
                tracing::warn!(
                    verified = report.groups.len(),
                    different,
                    missing,
                    unreadable,
                    "the remotes differ from the local data; `verify` shows which, `verify --repair` fixes them"
                );
            } else {
                tracing::info!(
                    verified = report.groups.len(),
                    "verified: the remotes are in step"
                );
            }
            for alert in state.update(&report, sync_core::now_ms()) {
                alerts.send(&alert).await;
            }
        }
    })
}
