//! The demo's tools: calling the app, waiting for the worker, looking at what the remotes
//! received, and printing it all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use sync_core::Registry;
use sync_core::entity::sync_group;
use sync_worker::testing::{MockRemote, RecordedRequest};

use crate::syncers::{CRM_CONTACTS, ERP_CUSTOMERS, ERP_SALES_ORDERS};

use super::{DemoReport, Pushes, StepReport};

/// Output lines are cut to this many characters.
const WIDTH: usize = 100;

/// How long the worker may take to catch up after a step.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running demo.
pub(super) struct Demo {
    pub(super) db: DatabaseConnection,
    pub(super) erp: MockRemote,
    pub(super) crm: MockRemote,
    pub(super) registry: Registry,
    http: reqwest::Client,
    app_url: String,
    /// How many requests each remote had received when the current step began.
    seen: (usize, usize),
    /// What each remote held when the current step began, by path (`/customers/1`): updates are
    /// shown as the fields they change.
    held: BTreeMap<(&'static str, String), Value>,
    report: DemoReport,
}

/// The requests the remotes received during a step.
#[derive(Debug)]
pub(super) struct Received {
    pub(super) erp: Requests,
    pub(super) crm: Requests,
}

/// Requests one remote received.
#[derive(Debug)]
pub(super) struct Requests(pub(super) Vec<RecordedRequest>);

impl Requests {
    /// Whether these are exactly the requests `expected` (method and path), in any order.
    pub(super) fn are(&self, expected: &[(&str, &str)]) -> bool {
        let mut got: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        let mut expected = expected.to_vec();
        got.sort_unstable();
        expected.sort_unstable();
        got == expected
    }

    /// The requests with `method` whose path starts with `path_prefix`.
    pub(super) fn matching(&self, method: &str, path_prefix: &str) -> Vec<&RecordedRequest> {
        self.0
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Demo {
    pub(super) fn new(
        db: DatabaseConnection,
        app_url: String,
        erp: MockRemote,
        crm: MockRemote,
        registry: Registry,
    ) -> anyhow::Result<Self> {
        Ok(Demo {
            db,
            erp,
            crm,
            registry,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            app_url,
            seen: (0, 0),
            held: BTreeMap::new(),
            report: DemoReport::default(),
        })
    }

    /// Starts a step: prints its title.
    pub(super) fn step(&mut self, title: &str) {
        self.seen = (self.erp.requests().len(), self.crm.requests().len());
        self.held = self
            .collections()
            .into_iter()
            .flat_map(|(remote, mock, collection)| {
                mock.records(collection)
                    .into_iter()
                    .map(move |(id, record)| ((remote, format!("/{collection}/{id}")), record))
            })
            .collect();
        let number = self.report.steps.len() + 1;
        println!("\n{number}. {title}");
        self.report.steps.push(StepReport {
            title: title.to_owned(),
            checks: Vec::new(),
        });
    }

    /// Prints a remark about the current step.
    pub(super) fn note(&self, text: &str) {
        println!("   {}", cut(text, WIDTH - 3));
    }

    /// Records and prints one expectation of the current step.
    pub(super) fn expect(&mut self, what: &str, passed: bool) {
        println!("   {} {what}", if passed { "✓" } else { "✗ FAILED:" });
        if let Some(step) = self.report.steps.last_mut() {
            step.checks.push((what.to_owned(), passed));
        }
    }

    /// Calls the app and prints the call. Fails unless the app answers with a success.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, answer) = self.send(method, path, body.as_ref()).await?;
        let detail = body.as_ref().map(Value::to_string).unwrap_or_default();
        println!("{}", request_line("app", method, path, status, &detail));
        Ok(answer)
    }

    /// `POST path body`, printed.
    pub(super) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body)).await
    }

    /// `PATCH path body`, printed.
    pub(super) async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call("PATCH", path, Some(body)).await
    }

    /// `DELETE path`, printed.
    pub(super) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call("DELETE", path, None).await
    }

    /// `PATCH path body`, not printed.
    pub(super) async fn patch_quietly(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self.send("PATCH", path, Some(&body)).await?.1)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.app_url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling the app: {method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("the app answered {method} {path} with {status}: {text}");
        }
        let answer = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("reading the answer to {method} {path}"))?
        };
        Ok((status.as_u16(), answer))
    }

    /// Waits until the worker has caught up — no group dirty (`version > synced_version`) or
    /// due (`pending`, `failed`) — then prints and returns what the remotes received during
    /// the step. Fails when a group is dead, or after [`SETTLE_TIMEOUT`].
    pub(super) async fn settle(&mut self) -> anyhow::Result<Received> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            // Touches the app logged that the worker has not applied yet are work to do too.
            let logged = sync_core::ops::logged_touches(&self.db).await?;
            let busy = sync_group::Entity::find()
                .filter(
                    Condition::any()
                        .add(
                            Expr::col(sync_group::Column::Version)
                                .gt(Expr::col(sync_group::Column::SyncedVersion)),
                        )
                        .add(sync_group::Column::State.is_in(["pending", "failed"])),
                )
                .order_by_asc(sync_group::Column::Id)
                .all(&self.db)
                .await?;
            if let Some(dead) = busy.iter().find(|g| g.state == "dead") {
                bail!(
                    "`{}` group `{}` is dead: {}",
                    dead.syncer,
                    dead.root_key,
                    dead.last_error.as_deref().unwrap_or("no error recorded")
                );
            }
            if busy.is_empty() && logged == 0 {
                return Ok(self.received());
            }
            if Instant::now() > deadline {
                let waiting: Vec<String> = busy
                    .iter()
                    .map(|g| {
                        format!(
                            "`{}` group `{}` ({}, {})",
                            g.syncer,
                            g.root_key,
                            g.state,
                            g.last_error.as_deref().unwrap_or("no error")
                        )
                    })
                    .collect();
                bail!(
                    "the worker did not catch up within {SETTLE_TIMEOUT:?}; still dirty: {}",
                    waiting.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the remotes received since the step began, printed in the order they answered: a
    /// create with its body, an update with the fields it changes.
    fn received(&mut self) -> Received {
        // Pushes only: the inbound sources' reads (`GET`) are reported by their own steps.
        let pushes = |mut all: Vec<RecordedRequest>, seen: usize| {
            Requests(
                all.split_off(seen)
                    .into_iter()
                    .filter(|r| r.method != "GET")
                    .collect(),
            )
        };
        let erp = pushes(self.erp.requests(), self.seen.0);
        let crm = pushes(self.crm.requests(), self.seen.1);
        let mut all: Vec<(&'static str, &RecordedRequest)> = erp
            .0
            .iter()
            .map(|r| ("ERP", r))
            .chain(crm.0.iter().map(|r| ("CRM", r)))
            .collect();
        all.sort_by_key(|(_, r)| r.finished);
        for (remote, r) in all {
            let body = r.body.clone().unwrap_or(Value::Null);
            let detail = match r.method.as_str() {
                "PUT" => {
                    let before = self.held.get(&(remote, r.path.clone()));
                    changes(before, &body)
                }
                "DELETE" => String::new(),
                _ => body.to_string(),
            };
            println!(
                "{}",
                request_line(remote, &r.method, &r.path, r.status, &detail)
            );
            if r.method == "PUT" {
                self.held.insert((remote, r.path.clone()), body);
            }
        }
        Received { erp, crm }
    }

    /// The group of `syncer` for the root `key`, once the touches logged so far are applied.
    pub(super) async fn group(&self, syncer: &str, key: i64) -> anyhow::Result<sync_group::Model> {
        sync_core::settle_touches(&self.db).await?;
        sync_group::Entity::find()
            .filter(sync_group::Column::Syncer.eq(syncer))
            .filter(sync_group::Column::RootKey.eq(key.to_string()))
            .one(&self.db)
            .await?
            .with_context(|| format!("no `{syncer}` group for `{key}`"))
    }

    /// The remote id of the group of `syncer` for the root `key`.
    pub(super) async fn remote_id(
        &self,
        syncer: &str,
        key: i64,
    ) -> anyhow::Result<sync_core::RemoteId> {
        self.group(syncer, key)
            .await?
            .remote_id()
            .with_context(|| format!("`{syncer}` group `{key}` has no remote id"))
    }

    /// Every group's version, to tell whether a write marked anything dirty.
    pub(super) async fn versions(&self) -> anyhow::Result<BTreeMap<i64, i64>> {
        sync_core::settle_touches(&self.db).await?;
        Ok(sync_group::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|g| (g.id, g.version))
            .collect())
    }

    /// Every remote collection the syncers push to.
    pub(super) fn collections(&self) -> [(&'static str, &MockRemote, &'static str); 3] {
        [
            ("ERP", &self.erp, ERP_CUSTOMERS),
            ("ERP", &self.erp, ERP_SALES_ORDERS),
            ("CRM", &self.crm, CRM_CONTACTS),
        ]
    }

    pub(super) fn record_mismatch(&mut self, mismatch: String) {
        self.report.mismatches.push(mismatch);
    }

    /// The report, with what each remote received.
    pub(super) fn into_report(self) -> DemoReport {
        let mut report = self.report;
        for (remote, mock) in [("ERP", &self.erp), ("CRM", &self.crm)] {
            let mut pushes = Pushes {
                remote,
                ..Pushes::default()
            };
            for request in mock.requests() {
                match request.method.as_str() {
                    "POST" => pushes.creates += 1,
                    "PUT" => pushes.updates += 1,
                    "DELETE" => pushes.deletes += 1,
                    _ => {}
                }
            }
            report.pushes.push(pushes);
        }
        report
    }
}

/// `   ERP ← PUT /customers/1 (200)  email: "a@x.org" → "ada@x.org"`, cut to fit.
fn request_line(who: &str, method: &str, path: &str, status: u16, detail: &str) -> String {
    let head = format!("   {who} ← {method} {path} ({status})");
    if detail.is_empty() {
        return head;
    }
    let room = WIDTH.saturating_sub(head.chars().count() + 2);
    format!("{head}  {}", cut(detail, room))
}

/// The fields of `after` that differ from `before`, as `field: old → new`; simple values first.
fn changes(before: Option<&Value>, after: &Value) -> String {
    let (Some(Value::Object(before)), Value::Object(after)) = (before, after) else {
        return after.to_string();
    };
    let mut changed: Vec<(bool, String)> = after
        .iter()
        .filter(|(field, value)| *field != "id" && before.get(*field) != Some(value))
        .map(|(field, value)| {
            let old = before
                .get(field)
                .map_or("none".to_owned(), Value::to_string);
            let new = value.to_string();
            let composite = value.is_array() || value.is_object();
            if old.chars().count() + new.chars().count() > 60 {
                (composite, format!("{field}: {new}"))
            } else {
                (composite, format!("{field}: {old} → {new}"))
            }
        })
        .collect();
    if changed.is_empty() {
        return "no field changed".to_owned();
    }
    changed.sort_by_key(|(composite, _)| *composite);
    changed
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text`, cut to `max` characters with an ellipsis.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}
