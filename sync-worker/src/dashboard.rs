//! The operators' dashboard: an axum router an application mounts (e.g. at `/sync`), with
//! server-rendered pages and the JSON API behind them.
//!
//! ```no_run
//! # fn demo(db: sea_orm::DatabaseConnection, app: axum::Router) -> axum::Router {
//! use sync_worker::dashboard::{Auth, Dashboard};
//! let token = std::env::var("SYNC_DASHBOARD_TOKEN").expect("a token");
//! app.nest("/sync", Dashboard::new(db, "/sync", Auth::bearer(token)).router())
//! # }
//! ```
//!
//! Pages: an overview per syncer with Run now and Full run, the failed and dead groups with
//! their errors and a Retry button, and one group's attempt history and last payload. The JSON
//! API: `GET api/status`, `GET api/groups?state=failed`, `GET api/groups/{id}`, `GET api/runs`,
//! `POST api/groups/{id}/retry`, `POST api/groups/{id}/forget`, `POST api/syncers/{name}/run`,
//! `POST api/syncers/{name}/resync`.
//!
//! With the syncers ([`Dashboard::with_registry`]), the *Verify* page (`verify`) runs a
//! verification of every syncer or of one (see [`sync_core::verify`]) and shows its report:
//! the counts per kind, the differing groups with their fields, the missing records, the
//! orphans and what could not be read, with a *Repair* button (differing records pushed again,
//! missing ones created again, through the queue: [`ops::repair`]) and a separate *Delete
//! orphans* action that must be confirmed ([`Engine::delete_orphans`](sync_core::Engine::delete_orphans)).
//! In JSON: `POST api/verify?syncer=NAME` runs one (the answer is the report), `GET api/verify`
//! is the last report, `POST api/verify/repair` repairs it, `POST
//! api/verify/delete-orphans?confirm=yes` deletes its orphans. The last report is kept in this
//! process (one verification runs at a time); the request that runs it waits for it to end.
//!
//! Every route is behind the [`Auth`] guard: a bearer token in the `Authorization` header (for
//! scripts) or in a cookie set by the login form (for browsers). Pages show data and errors, never
//! credentials.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use maud::{DOCTYPE, Markup, html};
use sea_orm::DatabaseConnection;
use serde::Deserialize;
use serde_json::json;
use sync_core::ops::{self, ForgetScope, Repaired, RetryScope};
use sync_core::verify::{Drift, OrphansDeleted, VerifyOptions, VerifyReport};
use sync_core::{Engine, EngineConfig, Registry, Secret, now_ms};

use crate::format::age;

const COOKIE: &str = "sync_dashboard";

/// Who may use the dashboard.
#[derive(Clone)]
pub enum Auth {
    /// Requests must carry this token (`Authorization: Bearer …`, or the login cookie).
    Bearer(Secret),
    /// A check of your own on the request headers (e.g. your app's session).
    Custom(Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer(***)"),
            Auth::Custom(_) => f.write_str("Auth::Custom(..)"),
        }
    }
}

impl Auth {
    /// A bearer token guard.
    pub fn bearer(token: impl Into<String>) -> Self {
        Auth::Bearer(Secret::new(token.into()))
    }

    fn allows_token(&self, token: &str) -> bool {
        match self {
            Auth::Bearer(expected) => {
                !expected.expose().is_empty() && same(token, expected.expose())
            }
            Auth::Custom(_) => false,
        }
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            Auth::Custom(check) => check(headers),
            Auth::Bearer(token) => {
                let expected = token.expose();
                if expected.is_empty() {
                    return false;
                }
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                let cookie = headers
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .filter_map(|c| {
                        c.trim()
                            .strip_prefix(&format!("{COOKIE}="))
                            .map(str::to_owned)
                    })
                    .next();
                bearer.is_some_and(|b| same(b, expected))
                    || cookie.is_some_and(|c| same(&c, expected))
            }
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The dashboard over one database.
#[derive(Debug, Clone)]
pub struct Dashboard {
    db: DatabaseConnection,
    base: String,
    auth: Auth,
    /// The syncers, for verification; `None`: the Verify page says it is not configured.
    registry: Option<Registry>,
    /// The last verification and what was done about it: written by the verify routes (one
    /// at a time, under this lock), read by the page.
    last: Arc<tokio::sync::Mutex<LastVerify>>,
}

/// The last verification this dashboard ran.
#[derive(Debug, Default)]
struct LastVerify {
    report: Option<VerifyReport>,
    /// Its syncer (`None`: all).
    syncer: Option<String>,
    at: i64,
    repaired: Option<Repaired>,
    orphans_deleted: Option<OrphansDeleted>,
}

impl Dashboard {
    /// A dashboard to be mounted at `base_path` (e.g. `/sync`), guarded by `auth`.
    pub fn new(db: DatabaseConnection, base_path: &str, auth: Auth) -> Self {
        Dashboard {
            db,
            base: base_path.trim_end_matches('/').to_owned(),
            auth,
            registry: None,
            last: Arc::default(),
        }
    }

    /// Gives the dashboard the syncers, so that its Verify page can read what the remotes
    /// hold and repair drift. Without them the page says verification is not configured.
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The overview's path.
    fn home(&self) -> String {
        if self.base.is_empty() {
            "/".to_owned()
        } else {
            self.base.clone()
        }
    }

    /// The router: nest it at the base path.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        let guarded = Router::new()
            .route("/", get(overview))
            .route("/groups/{id}", get(group_page))
            .route("/groups/{id}/retry", post(retry_form))
            .route("/groups/{id}/forget", post(forget_form))
            .route("/syncers/{name}/run", post(run_form))
            .route("/syncers/{name}/resync", post(resync_form))
            .route("/sources/{name}/run", post(source_run_form))
            .route("/sources/{name}/full", post(source_full_form))
            .route("/verify", get(verify_page))
            .route("/verify/run", post(verify_run_form))
            .route("/verify/repair", post(verify_repair_form))
            .route("/verify/delete-orphans", post(verify_delete_form))
            .route("/api/verify", get(api_verify_last).post(api_verify_run))
            .route("/api/verify/repair", post(api_verify_repair))
            .route("/api/verify/delete-orphans", post(api_verify_delete))
            .route("/api/status", get(api_status))
            .route("/api/groups", get(api_groups))
            .route("/api/groups/{id}", get(api_group))
            .route("/api/groups/{id}/retry", post(api_retry))
            .route("/api/groups/{id}/forget", post(api_forget))
            .route("/api/syncers/{name}/run", post(api_run))
            .route("/api/syncers/{name}/resync", post(api_resync))
            .route("/api/runs", get(api_runs))
            .route("/api/sources", get(api_sources))
            .route("/api/sources/quarantined", get(api_quarantined))
            .route("/api/sources/{name}/run", post(api_source_run))
            .route("/api/sources/{name}/full", post(api_source_full))
            .route("/api/sources/{name}/webhook", post(api_source_run))
            .route_layer(middleware::from_fn_with_state(state.clone(), guard));
        Router::new()
            .route("/login", get(login_page).post(login))
            .merge(guarded)
            .with_state(state)
    }
}

type Shared = State<Arc<Dashboard>>;

async fn guard(State(d): Shared, request: Request, next: Next) -> Response {
    if d.auth.allows(request.headers()) {
        return next.run(request).await;
    }
    if request.uri().path().contains("/api/") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "a valid bearer token is required"})),
        )
            .into_response();
    }
    Redirect::to(&format!("{}/login", d.base)).into_response()
}

/// A failure while answering: logged, shown without internals.
struct Failure(sync_core::Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self.0, "dashboard request failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the sync database could not be read; see the logs"})),
        )
            .into_response()
    }
}

impl From<sync_core::Error> for Failure {
    fn from(e: sync_core::Error) -> Self {
        Failure(e)
    }
}

type Answer<T> = Result<T, Failure>;

fn page(d: &Dashboard, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · sync" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href=(d.home()) { "sync" } " · " (title)
                    nav { a href={ (d.base) "/verify" } { "Verify" } }
                }
                main { (body) }
            }
        }
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}header{background:#223;color:#fff;padding:.6em 1em}\
header a{color:#fff;text-decoration:none;font-weight:bold}header nav{float:right}main{padding:1em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f6}\
.dead{color:#a00;font-weight:bold}.failed{color:#b60}.synced{color:#070}.pending{color:#036}\
.error{font-family:monospace;white-space:pre-wrap;max-width:60em}pre{background:#f6f6f8;padding:.6em;overflow:auto}\
form{display:inline}button{cursor:pointer}";

async fn login_page(State(d): Shared) -> Markup {
    page(
        &d,
        "sign in",
        html! {
            form method="post" action={ (d.base) "/login" } {
                label { "Token " input type="password" name="token" autofocus; }
                " " button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(d): Shared, Form(login): Form<Login>) -> Response {
    if !d.auth.allows_token(&login.token) {
        return (
            StatusCode::UNAUTHORIZED,
            page(
                &d,
                "sign in",
                html! { p { "Wrong token." } a href={ (d.base) "/login" } { "Try again" } },
            ),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path={}; HttpOnly; SameSite=Strict",
        login.token,
        d.home()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&d.home())).into_response()
}

async fn overview(State(d): Shared) -> Answer<Markup> {
    let now = now_ms();
    let status = ops::status(&d.db, &[], now).await?;
    let problems = ops::problems(&d.db, None, 200).await?;
    let runs = ops::runs(&d.db, None, 10).await?;
    let sources = sync_core::source::source_status(&d.db).await?;
    let quarantined = sync_core::source::quarantined(&d.db, None, 200).await?;
    Ok(page(
        &d,
        "overview",
        html! {
            h2 { "Syncers" }
            table {
                tr { th { "syncer" } th { "pending" } th { "synced" } th { "failed" } th { "dead" } th { "dirty" }
                     th { "oldest dirty" } th { "last success" } th { "failures (1h)" } th { "health" } th {} }
                @for s in &status {
                    tr {
                        td { (s.syncer) }
                        @for state in ["pending", "synced", "failed", "dead"] {
                            td class=(state) { (s.groups.get(state).copied().unwrap_or(0)) }
                        }
                        td { (s.dirty) }
                        td { (s.oldest_dirty_ms.map_or("-".into(), age)) }
                        td { (s.last_success_at.map_or("never".into(), |t| format!("{} ago", age(now - t)))) }
                        td { (s.failures_last_hour) }
                        td { @if s.healthy { "healthy" } @else { span class="dead" { "failing" } } }
                        td {
                            form method="post" action={ (d.base) "/syncers/" (s.syncer) "/run" } { button { "Run now" } }
                            " "
                            form method="post" action={ (d.base) "/syncers/" (s.syncer) "/resync" } { button { "Full run" } }
                        }
                    }
                }
            }
            h2 { "Failed and dead groups" }
            @if problems.is_empty() { p { "None." } } @else {
                table id="problems" {
                    tr { th { "group" } th { "syncer" } th { "root" } th { "state" } th { "attempts" } th { "next attempt" } th { "last error" } th {} }
                    @for g in &problems {
                        tr id={ "group-" (g.id) } {
                            td { a href={ (d.base) "/groups/" (g.id) } { "#" (g.id) } }
                            td { (g.syncer) }
                            td { (g.root_key) }
                            td class=(g.state) data-state=(g.state) { (g.state) }
                            td { (g.attempts) }
                            td { @if g.state == "dead" { "-" } @else { "in " (age(g.next_attempt_at - now)) } }
                            td class="error" { (g.last_error.as_deref().unwrap_or("")) }
                            td { form method="post" action={ (d.base) "/groups/" (g.id) "/retry" } { button { "Retry" } } }
                        }
                    }
                }
            }
            @if !sources.is_empty() {
                h2 { "Sources" }
                table id="sources" {
                    tr { th { "source" } th { "cursor" } th { "last success" } th { "last run: fetched" } th { "applied" }
                         th { "unchanged" } th { "quarantined" } th { "deleted" } th { "quarantined now" } th { "running on" }
                         th { "last error" } th {} }
                    @for s in &sources {
                        tr id={ "source-" (s.source) } {
                            td { (s.source) @if s.full_run { " (full run)" } }
                            td class="error" { (s.cursor.as_deref().unwrap_or("-")) }
                            td { (s.last_success_at.map_or("never".into(), |t| format!("{} ago", age(now - t)))) }
                            @for n in s.last_counts { td { (n) } }
                            td class=(if s.quarantined > 0 { "failed" } else { "synced" }) { (s.quarantined) }
                            td { (s.running_on.as_deref().unwrap_or("-")) }
                            td class="error" { (s.last_error.as_deref().unwrap_or("")) }
                            td {
                                form method="post" action={ (d.base) "/sources/" (s.source) "/run" } { button { "Run now" } }
                                " "
                                form method="post" action={ (d.base) "/sources/" (s.source) "/full" } { button { "Full run" } }
                            }
                        }
                    }
                }
                h2 { "Quarantined records" }
                @if quarantined.is_empty() { p { "None." } } @else {
                    table id="quarantined" {
                        tr { th { "source" } th { "remote id" } th { "attempts" } th { "next retry" } th { "error" } th { "payload" } }
                        @for r in &quarantined {
                            tr {
                                td { (r.source) } td { (r.remote_id) } td { (r.attempts) }
                                td { (r.next_retry_at.map_or("-".into(), |t| format!("in {}", age(t - now)))) }
                                td class="error" { (r.error.as_deref().unwrap_or("")) }
                                td { pre { (r.payload.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
            h2 { "Recent runs" }
            table {
                tr { th { "syncer" } th { "worker" } th { "ended" } th { "attempted" } th { "pushed" } th { "skipped" } th { "failed" } }
                @for r in &runs {
                    tr {
                        td { (r.syncer) } td { (r.worker) } td { (age(now - r.finished_at)) " ago" }
                        td { (r.attempted) } td { (r.pushed) } td { (r.skipped) }
                        td class=(if r.clean { "synced" } else { "dead" }) { (r.failed) }
                    }
                }
            }
        },
    ))
}

async fn group_page(State(d): Shared, Path(id): Path<i64>) -> Answer<Response> {
    let now = now_ms();
    let Some(g) = ops::group(&d.db, id).await? else {
        return Ok((
            StatusCode::NOT_FOUND,
            page(&d, "not found", html! { p { "No group " (id) "." } }),
        )
            .into_response());
    };
    let attempts = ops::attempts(&d.db, id, 50).await?;
    let payload = g
        .last_payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .map(|p| serde_json::to_string_pretty(&p).unwrap_or_default());
    Ok(page(
        &d,
        &format!("group #{id}"),
        html! {
            h2 { (g.syncer) " " (g.root_key) }
            table {
                tr { th { "state" } td class=(g.state) id="state" { (g.state) } }
                tr { th { "version / synced" } td { (g.version) " / " (g.synced_version) } }
                tr { th { "remote id" } td id="remote-id" { (g.remote_id.as_deref().unwrap_or("-")) } }
                tr { th { "attempts" } td { (g.attempts) } }
                tr { th { "last status" } td { (g.last_status.map_or("-".to_owned(), |s| s.to_string())) } }
                tr { th { "last error" } td class="error" { (g.last_error.as_deref().unwrap_or("-")) } }
                tr { th { "touched" } td { (age(now - g.touched_at)) " ago" } }
            }
            @if matches!(g.state.as_str(), "failed" | "dead") {
                form method="post" action={ (d.base) "/groups/" (g.id) "/retry" } { button { "Retry" } }
            }
            @if g.remote_id.is_some() && g.state != "deleted" {
                form method="post" action={ (d.base) "/groups/" (g.id) "/forget" } {
                    button id="forget" title="The remote lost this record: forget its id and create it again" { "Forget remote id and recreate" }
                }
            }
            h3 { "Attempts" }
            table {
                tr { th { "when" } th { "version" } th { "operation" } th { "outcome" } th { "status" } th { "took" } th { "worker" } th { "error" } }
                @for a in &attempts {
                    tr {
                        td { (age(now - a.started_at)) " ago" } td { (a.version) } td { (a.operation) }
                        td class=(if a.outcome == "ok" { "synced" } else { a.outcome.as_str() }) { (a.outcome) }
                        td { (a.status_code.map_or(String::new(), |s| s.to_string())) }
                        td { (a.duration_ms) " ms" } td { (a.worker) }
                        td class="error" { (a.error.as_deref().unwrap_or("")) }
                    }
                }
            }
            h3 { "Last payload the remote accepted" }
            @match payload { Some(p) => pre { (p) }, None => p { "None yet." } }
        },
    )
    .into_response())
}

fn back(d: &Dashboard, headers: &HeaderMap) -> Redirect {
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .filter(|r| r.contains(&d.base));
    Redirect::to(referer.unwrap_or(&d.home()))
}

async fn retry_form(State(d): Shared, Path(id): Path<i64>, headers: HeaderMap) -> Answer<Redirect> {
    ops::retry(&d.db, &RetryScope::Group(id), now_ms()).await?;
    Ok(back(&d, &headers))
}

async fn forget_form(
    State(d): Shared,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Answer<Redirect> {
    ops::forget(&d.db, &ForgetScope::Group(id), now_ms()).await?;
    Ok(back(&d, &headers))
}

async fn run_form(
    State(d): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer<Redirect> {
    ops::run_now(&d.db, &name, now_ms()).await?;
    Ok(back(&d, &headers))
}

async fn resync_form(
    State(d): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer<Redirect> {
    ops::request_full_run(&d.db, &name, now_ms()).await?;
    Ok(back(&d, &headers))
}

async fn source_run_form(
    State(d): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = sync_core::source::request_run(&d.db, &name).await;
    source_form(&d, &headers, result)
}

async fn source_full_form(
    State(d): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = sync_core::source::request_full_run(&d.db, &name).await;
    source_form(&d, &headers, result)
}

/// Back to the page after a source request; a page naming the error for a source no worker
/// has run.
fn source_form(d: &Dashboard, headers: &HeaderMap, result: sync_core::Result<()>) -> Response {
    match result {
        Ok(()) => back(d, headers).into_response(),
        Err(sync_core::Error::Config(message)) => (
            StatusCode::NOT_FOUND,
            page(d, "not found", html! { p { (message) } }),
        )
            .into_response(),
        Err(error) => Failure(error).into_response(),
    }
}

async fn api_status(State(d): Shared) -> Answer<Json<serde_json::Value>> {
    Ok(Json(json!(ops::status(&d.db, &[], now_ms()).await?)))
}

#[derive(Deserialize)]
struct GroupsQuery {
    syncer: Option<String>,
    limit: Option<u64>,
}

async fn api_groups(
    State(d): Shared,
    Query(q): Query<GroupsQuery>,
) -> Answer<Json<serde_json::Value>> {
    let groups = ops::problems(&d.db, q.syncer.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(json!(
        groups.iter().map(group_json).collect::<Vec<_>>()
    )))
}

fn group_json(g: &sync_core::entity::sync_group::Model) -> serde_json::Value {
    json!({"id": g.id, "syncer": g.syncer, "root_key": g.root_key, "state": g.state, "version": g.version,
           "synced_version": g.synced_version, "remote_id": g.remote_id, "attempts": g.attempts,
           "next_attempt_at": g.next_attempt_at, "last_error": g.last_error, "touched_at": g.touched_at,
           "synced_at": g.synced_at})
}

async fn api_group(State(d): Shared, Path(id): Path<i64>) -> Answer<Response> {
    let Some(g) = ops::group(&d.db, id).await? else {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no group {id}")})),
        )
            .into_response());
    };
    let attempts = ops::attempts(&d.db, id, 50).await?;
    let mut value = group_json(&g);
    value["last_payload"] = g
        .last_payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    value["attempts"] = json!(attempts
        .iter()
        .map(|a| json!({"version": a.version, "operation": a.operation, "outcome": a.outcome, "status_code": a.status_code,
                         "error": a.error, "duration_ms": a.duration_ms, "worker": a.worker, "started_at": a.started_at}))
        .collect::<Vec<_>>());
    Ok(Json(value).into_response())
}

async fn api_retry(State(d): Shared, Path(id): Path<i64>) -> Answer<Json<serde_json::Value>> {
    Ok(Json(
        json!({"retried": ops::retry(&d.db, &RetryScope::Group(id), now_ms()).await?}),
    ))
}

async fn api_forget(State(d): Shared, Path(id): Path<i64>) -> Answer<Json<serde_json::Value>> {
    Ok(Json(
        json!({"forgotten": ops::forget(&d.db, &ForgetScope::Group(id), now_ms()).await?}),
    ))
}

async fn api_run(State(d): Shared, Path(name): Path<String>) -> Answer<Json<serde_json::Value>> {
    Ok(Json(
        json!({"due": ops::run_now(&d.db, &name, now_ms()).await?}),
    ))
}

async fn api_resync(State(d): Shared, Path(name): Path<String>) -> Answer<Json<serde_json::Value>> {
    Ok(Json(
        json!({"marked": ops::request_full_run(&d.db, &name, now_ms()).await?}),
    ))
}

async fn api_runs(State(d): Shared) -> Answer<Json<serde_json::Value>> {
    let runs = ops::runs(&d.db, None, 100).await?;
    Ok(Json(json!(runs
        .iter()
        .map(|r| json!({"syncer": r.syncer, "worker": r.worker, "started_at": r.started_at, "finished_at": r.finished_at,
                         "attempted": r.attempted, "pushed": r.pushed, "skipped": r.skipped, "failed": r.failed, "clean": r.clean}))
        .collect::<Vec<_>>())))
}

async fn api_sources(State(d): Shared) -> Answer<Json<serde_json::Value>> {
    Ok(Json(json!(sync_core::source::source_status(&d.db).await?)))
}

async fn api_quarantined(State(d): Shared) -> Answer<Json<serde_json::Value>> {
    let rows = sync_core::source::quarantined(&d.db, None, 200).await?;
    Ok(Json(json!(rows
        .iter()
        .map(|r| json!({"source": r.source, "remote_id": r.remote_id, "attempts": r.attempts,
                         "next_retry_at": r.next_retry_at, "error": r.error,
                         "payload": r.payload.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())}))
        .collect::<Vec<_>>())))
}

/// Run now, and the webhook a remote calls when records changed (any body): the source runs
/// at the next look of a worker running it (within its poll interval).
async fn api_source_run(State(d): Shared, Path(name): Path<String>) -> Response {
    source_request(sync_core::source::request_run(&d.db, &name).await, "run")
}

async fn api_source_full(State(d): Shared, Path(name): Path<String>) -> Response {
    source_request(
        sync_core::source::request_full_run(&d.db, &name).await,
        "full run",
    )
}

fn source_request(result: sync_core::Result<()>, what: &str) -> Response {
    match result {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"requested": what}))).into_response(),
        Err(sync_core::Error::Config(message)) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response()
        }
        Err(error) => Failure(error).into_response(),
    }
}

// --- verification ------------------------------------------------------------------------

const NOT_CONFIGURED: &str = "Verification is not configured on this dashboard: it needs the \
syncers, which the application gives it with `Dashboard::with_registry`.";

/// What a verify route could not do.
enum VerifyRefusal {
    /// No registry.
    NotConfigured,
    /// A verification is running.
    Busy,
    /// Nothing verified yet.
    NoReport,
    /// Bad input (an unknown syncer, no confirmation).
    Bad(String),
    /// The database or the remote failed.
    Failed(sync_core::Error),
}

impl VerifyRefusal {
    fn status_and_message(self) -> Result<(StatusCode, String), sync_core::Error> {
        Ok(match self {
            VerifyRefusal::NotConfigured => (StatusCode::NOT_IMPLEMENTED, NOT_CONFIGURED.into()),
            VerifyRefusal::Busy => (
                StatusCode::CONFLICT,
                "a verification is running; try again when it ended".into(),
            ),
            VerifyRefusal::NoReport => (
                StatusCode::CONFLICT,
                "nothing verified yet: run a verification first".into(),
            ),
            VerifyRefusal::Bad(message) => (StatusCode::BAD_REQUEST, message),
            VerifyRefusal::Failed(sync_core::Error::Config(message)) => {
                (StatusCode::BAD_REQUEST, message)
            }
            VerifyRefusal::Failed(error) => return Err(error),
        })
    }

    fn into_json(self) -> Response {
        match self.status_and_message() {
            Ok((status, message)) => (status, Json(json!({"error": message}))).into_response(),
            Err(error) => Failure(error).into_response(),
        }
    }

    fn into_page(self, d: &Dashboard) -> Response {
        match self.status_and_message() {
            Ok((status, message)) => (
                status,
                page(
                    d,
                    "verify",
                    html! { p id="verify-error" { (message) } a href={ (d.base) "/verify" } { "Back" } },
                ),
            )
                .into_response(),
            Err(error) => Failure(error).into_response(),
        }
    }
}

impl From<sync_core::Error> for VerifyRefusal {
    fn from(error: sync_core::Error) -> Self {
        VerifyRefusal::Failed(error)
    }
}

#[derive(Deserialize)]
struct VerifyForm {
    syncer: Option<String>,
}

#[derive(Deserialize)]
struct ConfirmForm {
    confirm: Option<String>,
}

impl Dashboard {
    fn engine(&self) -> Result<Engine, VerifyRefusal> {
        let registry = self.registry.clone().ok_or(VerifyRefusal::NotConfigured)?;
        Ok(Engine::new(
            self.db.clone(),
            registry,
            EngineConfig::default(),
        )?)
    }

    /// Runs a verification of `syncer` (all when `None` or empty) and keeps its report.
    async fn run_verify(&self, syncer: Option<String>) -> Result<(), VerifyRefusal> {
        let engine = self.engine()?;
        let syncer = syncer.filter(|s| !s.trim().is_empty());
        let mut last = self.last.try_lock().map_err(|_| VerifyRefusal::Busy)?;
        let mut options = VerifyOptions::all();
        if let Some(name) = &syncer {
            options = options.syncer(name.clone());
        }
        let report = engine.verify(&options).await?;
        *last = LastVerify {
            report: Some(report),
            syncer,
            at: now_ms(),
            repaired: None,
            orphans_deleted: None,
        };
        Ok(())
    }

    /// Queues the repair of the last report's differing and missing groups.
    async fn repair_last(&self) -> Result<Repaired, VerifyRefusal> {
        if self.registry.is_none() {
            return Err(VerifyRefusal::NotConfigured);
        }
        let mut last = self.last.try_lock().map_err(|_| VerifyRefusal::Busy)?;
        let report = last.report.as_ref().ok_or(VerifyRefusal::NoReport)?;
        let repaired = ops::repair(&self.db, report, now_ms()).await?;
        last.repaired = Some(repaired);
        Ok(repaired)
    }

    /// Deletes the last report's orphans, when `confirm` is `yes`.
    async fn delete_last_orphans(
        &self,
        confirm: Option<&str>,
    ) -> Result<OrphansDeleted, VerifyRefusal> {
        let engine = self.engine()?;
        if confirm != Some("yes") {
            return Err(VerifyRefusal::Bad(
                "deleting orphans must be confirmed (`confirm=yes`): it deletes records on the \
                 remotes"
                    .into(),
            ));
        }
        let mut last = self.last.try_lock().map_err(|_| VerifyRefusal::Busy)?;
        let report = last.report.as_ref().ok_or(VerifyRefusal::NoReport)?;
        let deleted = engine.delete_orphans(report).await?;
        last.orphans_deleted = Some(deleted.clone());
        Ok(deleted)
    }
}

/// The report's counts per kind.
fn counts(report: &VerifyReport) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for kind in KINDS {
        counts.insert(kind.to_owned(), json!(report.count(kind)));
    }
    serde_json::Value::Object(counts)
}

const KINDS: [&str; 6] = [
    "in_step",
    "different",
    "missing",
    "orphan",
    "unreadable",
    "not_pushed",
];

fn last_json(last: &LastVerify) -> serde_json::Value {
    let Some(report) = &last.report else {
        return json!(null);
    };
    json!({
        "syncer": last.syncer,
        "verified_at": last.at,
        "clean": report.is_clean(),
        "counts": counts(report),
        "groups": report.groups,
        "listings": report.listings,
        "repaired": last.repaired,
        "orphans_deleted": last.orphans_deleted,
    })
}

async fn verify_page(State(d): Shared) -> Markup {
    let Some(registry) = &d.registry else {
        return page(
            &d,
            "verify",
            html! { p id="verify-not-configured" class="failed" { (NOT_CONFIGURED) } },
        );
    };
    let now = now_ms();
    let last = d.last.try_lock();
    let chosen = last.as_ref().ok().and_then(|l| l.syncer.clone());
    page(
        &d,
        "verify",
        html! {
            form method="post" action={ (d.base) "/verify/run" } {
                label { "Syncer "
                    select name="syncer" {
                        option value="" { "all" }
                        @for name in registry.names() {
                            option value=(name) selected[chosen.as_deref() == Some(name.as_str())] { (name) }
                        }
                    }
                }
                " " button id="run-verify" { "Verify" }
            }
            p { "Reads what the remote holds for every pushed record (one GET each) and, for the syncers \
                 whose remote can be listed, lists the collection looking for orphans (one GET per \
                 page), all under each syncer's rate limits. Nothing is written until you repair." }
            @match &last {
                Err(_) => { p id="verify-running" { "A verification is running…" } }
                Ok(last) => {
                    @match &last.report {
                        None => { p { "Nothing verified yet." } }
                        Some(report) => { (report_markup(&d, last, report, now)) }
                    }
                }
            }
        },
    )
}

fn report_markup(d: &Dashboard, last: &LastVerify, report: &VerifyReport, now: i64) -> Markup {
    let of = |kind: &str| {
        report
            .groups
            .iter()
            .filter(move |g| g.drift.label() == kind)
            .collect::<Vec<_>>()
    };
    let (different, missing, orphans, unreadable) = (
        of("different"),
        of("missing"),
        of("orphan"),
        of("unreadable"),
    );
    let group_cell = |g: &sync_core::verify::GroupDrift| {
        html! {
            @if g.has_group() { a href={ (d.base) "/groups/" (g.group_id) } { "#" (g.group_id) } }
            @else { "-" }
        }
    };
    html! {
        h2 { "Report" }
        p id="verify-scope" {
            (last.syncer.as_deref().map_or("every syncer".to_owned(), |s| format!("`{s}`")))
            ", " (age(now - last.at)) " ago: "
            @if report.is_clean() { span class="synced" { "in step" } } @else { span class="dead" { "drift" } }
        }
        table id="verify-counts" {
            tr { @for kind in KINDS { th { (kind.replace('_', " ")) } } }
            tr { @for kind in KINDS { td data-kind=(kind) { (report.count(kind)) } } }
        }
        @if !report.listings.is_empty() {
            table id="listings" {
                tr { th { "listed syncer" } th { "pages" } th { "records" } th { "complete" } }
                @for l in &report.listings {
                    tr { td { (l.syncer) } td { (l.pages) } td { (l.records) }
                         td class=(if l.complete { "synced" } else { "dead" }) { (if l.complete { "yes" } else { "no: orphans not reported" }) } }
                }
            }
        }
        @if !different.is_empty() {
            h3 { "Different" }
            table id="different" {
                tr { th { "group" } th { "syncer" } th { "root" } th { "remote id" } th { "field" } th { "here" } th { "on the remote" } }
                @for g in &different {
                    @if let Drift::Different { fields } = &g.drift {
                        @for f in fields {
                            tr data-group=(g.group_id) {
                                td { (group_cell(g)) } td { (g.syncer) } td { (g.root_key) }
                                td { (g.remote_id.as_deref().unwrap_or("-")) }
                                td { code { (f.path) } }
                                td class="error" { (f.local.to_string()) }
                                td class="error" { (f.remote.as_ref().map_or_else(|| "(absent)".to_owned(), ToString::to_string)) }
                            }
                        }
                    }
                }
            }
        }
        @if !missing.is_empty() {
            h3 { "Missing on the remote" }
            table id="missing" {
                tr { th { "group" } th { "syncer" } th { "root" } th { "remote id" } }
                @for g in &missing {
                    tr data-group=(g.group_id) { td { (group_cell(g)) } td { (g.syncer) } td { (g.root_key) } td { (g.remote_id.as_deref().unwrap_or("-")) } }
                }
            }
        }
        @if !orphans.is_empty() {
            h3 { "Orphans: on the remote, no group points at them" }
            table id="orphans" {
                tr { th { "syncer" } th { "remote id" } th { "record" } }
                @for g in &orphans {
                    tr data-remote-id=(g.remote_id.as_deref().unwrap_or("")) {
                        td { (g.syncer) } td { (g.remote_id.as_deref().unwrap_or("-")) }
                        td { @if let Drift::Orphan { record } = &g.drift { pre { (serde_json::to_string_pretty(record).unwrap_or_default()) } } }
                    }
                }
            }
        }
        @if !unreadable.is_empty() {
            h3 { "Could not be read" }
            table id="unreadable" {
                tr { th { "group" } th { "syncer" } th { "root" } th { "error" } }
                @for g in &unreadable {
                    tr { td { (group_cell(g)) } td { (g.syncer) } td { (if g.has_group() { g.root_key.as_str() } else { "(listing)" }) }
                         td class="error" { @if let Drift::Unreadable { error } = &g.drift { (error) } } }
                }
            }
        }
        @match &last.repaired {
            Some(r) => {
                p id="repaired" { "Repair queued: " (r.pushed_again) " to push again, " (r.created_again) " to create again; the workers push them. Verify again afterwards." }
            }
            None => {
                @if !different.is_empty() || !missing.is_empty() {
                    form method="post" action={ (d.base) "/verify/repair" } {
                        button id="repair" title="Differing records pushed again, missing ones created again, through the queue" {
                            "Repair (" (different.len()) " to push again, " (missing.len()) " to create again)"
                        }
                    }
                }
            }
        }
        @match &last.orphans_deleted {
            Some(o) => {
                p id="orphans-deleted" { "Orphans: " (o.deleted) " deleted, " (o.kept) " kept, " (o.failed.len()) " failed." }
                @for failure in &o.failed { p class="error" { (failure) } }
            }
            None => {
                @if !orphans.is_empty() {
                    form method="post" action={ (d.base) "/verify/delete-orphans" } {
                        label { input type="checkbox" name="confirm" value="yes" required;
                            " delete these " (orphans.len()) " record(s) on their remotes (this cannot be undone)" }
                        " " button id="delete-orphans" { "Delete orphans" }
                    }
                }
            }
        }
    }
}

async fn verify_run_form(State(d): Shared, Form(form): Form<VerifyForm>) -> Response {
    match d.run_verify(form.syncer).await {
        Ok(()) => Redirect::to(&format!("{}/verify", d.base)).into_response(),
        Err(refusal) => refusal.into_page(&d),
    }
}

async fn verify_repair_form(State(d): Shared, headers: HeaderMap) -> Response {
    match d.repair_last().await {
        Ok(_) => back(&d, &headers).into_response(),
        Err(refusal) => refusal.into_page(&d),
    }
}

async fn verify_delete_form(
    State(d): Shared,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    match d.delete_last_orphans(form.confirm.as_deref()).await {
        Ok(_) => back(&d, &headers).into_response(),
        Err(refusal) => refusal.into_page(&d),
    }
}

async fn api_verify_run(State(d): Shared, Query(q): Query<VerifyForm>) -> Response {
    if let Err(refusal) = d.run_verify(q.syncer).await {
        return refusal.into_json();
    }
    api_verify_last(State(d)).await
}

async fn api_verify_last(State(d): Shared) -> Response {
    if d.registry.is_none() {
        return VerifyRefusal::NotConfigured.into_json();
    }
    match d.last.try_lock() {
        Ok(last) if last.report.is_some() => Json(last_json(&last)).into_response(),
        Ok(_) => VerifyRefusal::NoReport.into_json(),
        Err(_) => VerifyRefusal::Busy.into_json(),
    }
}

async fn api_verify_repair(State(d): Shared) -> Response {
    match d.repair_last().await {
        Ok(repaired) => Json(json!({"repaired": repaired})).into_response(),
        Err(refusal) => refusal.into_json(),
    }
}

async fn api_verify_delete(State(d): Shared, Query(q): Query<ConfirmForm>) -> Response {
    match d.delete_last_orphans(q.confirm.as_deref()).await {
        Ok(deleted) => Json(json!({"orphans_deleted": deleted})).into_response(),
        Err(refusal) => refusal.into_json(),
    }
}
