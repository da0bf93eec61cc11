//! One run of a source: lease, quarantine retries, pages (applies, digests and cursor in one
//! transaction, a page alone or with the pages that arrived while the one before was applied),
//! and after a complete full run, the records that vanished.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::Either;
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, TransactionTrait,
};
use serde::Serialize;
use serde_json::{Value, json};

use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    ApplyContext, DigestColumn, FetchContext, IdType, InboundRecord, Source, record_digest,
};
use crate::entity::sync_inbound::{Column as I, Entity as Inbound};
use crate::panic::panic_message;
use crate::queue::{DocumentRow, json_chunks, json_document};
use crate::retry::RetryPolicy;
use crate::store::statement;
use crate::{Error, RemoteId, Result, clock};

/// How [`run_source`] runs.
#[derive(Debug, Clone)]
pub struct SourceRunOptions {
    /// The worker's name, held in the lease.
    pub owner: String,
    /// Start a full run: from no cursor, listing the whole collection; records applied before
    /// that the listing no longer has are deleted when it completes. (A full run an operator
    /// requested, or one a crash interrupted, runs without this.)
    pub full: bool,
    /// How long the lease lasts without a page committed; another worker takes the source
    /// over after it.
    pub lease: Duration,
}

impl SourceRunOptions {
    /// A normal run by worker `owner`, with a 60 s lease.
    pub fn new(owner: impl Into<String>) -> Self {
        SourceRunOptions {
            owner: owner.into(),
            full: false,
            lease: Duration::from_secs(60),
        }
    }

    /// The same options, for a full run.
    pub fn full(mut self) -> Self {
        self.full = true;
        self
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// The source's name.
    pub source: String,
    /// Another worker held the source: this run did nothing.
    pub busy: bool,
    /// The run was (or resumed) a full run.
    pub full: bool,
    /// Pages fetched.
    pub pages: u64,
    /// Transactions that committed pages: fewer than `pages` when pages arrived faster than
    /// they were applied (see [`Source::pages_per_commit`]).
    pub commits: u64,
    /// Records fetched.
    pub fetched: u64,
    /// Records applied (live ones; deletes are counted in `deleted`).
    pub applied: u64,
    /// Records skipped: the version applied already, or an older one.
    pub skipped: u64,
    /// Records whose apply failed, now quarantined (new ones and failed retries).
    pub quarantined: u64,
    /// Quarantined records applied successfully by this run (a retry or a newer version).
    pub revived: u64,
    /// Deletes applied: tombstones, and records a complete full run found gone.
    pub deleted: u64,
    /// Of `deleted`, the records a complete full run found gone without a tombstone.
    pub vanished: u64,
    /// Where the pages' time went.
    pub times: RunTimes,
}

/// Where a run's time went, summed over its pages, in wall time. The next page is fetched
/// while one is applied, so `fetching` overlaps the rest; the other four follow one another
/// and add up to the time the pages took to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunTimes {
    /// Fetching the pages (parsing the answers included).
    #[serde(serialize_with = "as_ms")]
    pub fetching: Duration,
    /// Reading what was applied before under the pages' remote ids (their digests).
    #[serde(serialize_with = "as_ms")]
    pub reading: Duration,
    /// Choosing what to apply and applying it: the source's `apply_many` or `apply`.
    #[serde(serialize_with = "as_ms")]
    pub applying: Duration,
    /// Recording what was applied (a `sync_inbound` row per record) and the cursor.
    #[serde(serialize_with = "as_ms")]
    pub recording: Duration,
    /// Opening and committing the pages' transactions.
    #[serde(serialize_with = "as_ms")]
    pub committing: Duration,
}

impl SourceReport {
    /// Sets the counts of applied records back to `before`'s (a transaction that applied
    /// records was rolled back).
    fn restore_counts(&mut self, before: &SourceReport) {
        self.applied = before.applied;
        self.skipped = before.skipped;
        self.quarantined = before.quarantined;
        self.revived = before.revived;
        self.deleted = before.deleted;
    }
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

const APPLIED: &str = "applied";
/// Written as a literal in the statements that read quarantined records (the index that finds
/// them is partial on PostgreSQL and SQLite, `WHERE state = 'quarantined'`).
const QUARANTINED: &str = "quarantined";

/// Runs `source` once: takes its lease (or returns a report with `busy` when another worker
/// holds it), fetches and applies pages from the stored cursor until the source says there are
/// no more, then applies again the quarantined records whose retry is due. A page commits with
/// the cursor after it, in one transaction with the pages before it that have not committed
/// yet: a page joins the open transaction when it has arrived by the time the one before is
/// applied, up to [`Source::pages_per_commit`] pages and [`Source::commit_within`]. The
/// outcome and counts are recorded in
/// `sync_sources`, and the next scheduled run is set one [`Source::interval`] later.
///
/// A fetch error ends the run with that error; what earlier pages applied stays, and the next
/// run starts where they left off.
pub async fn run_source(
    db: &DatabaseConnection,
    source: &dyn Source,
    options: &SourceRunOptions,
) -> Result<SourceReport> {
    let name = source.name();
    ensure_row(db, name).await?;
    let mut report = SourceReport {
        source: name.to_owned(),
        ..SourceReport::default()
    };
    if !acquire(db, name, options).await? {
        report.busy = true;
        return Ok(report);
    }
    let mut run = Run {
        db,
        source,
        options,
        name,
        full_run: None,
        started: clock::now_ms(),
        table: source.digest_column(),
        quarantined: AtomicBool::new(true),
    };
    let result = run.go(&mut report).await;
    run.finish(&report, result.as_ref().err()).await?;
    result.map(|()| report)
}

/// Whether the source is due at `now`: it never ran, its next run's time has come, or a full
/// run was asked for.
pub async fn is_due(db: &DatabaseConnection, source: &str, now: i64) -> Result<bool> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(
            backend,
            "SELECT next_run_at, full_requested FROM sync_sources WHERE source = ?",
            vec![source.into()],
        ))
        .await
        .map_err(Error::db_while(format!(
            "reading when source `{source}` is due"
        )))?;
    Ok(match row {
        None => true,
        Some(row) => {
            let next: i64 = row.try_get("", "next_run_at")?;
            let full: bool = row.try_get("", "full_requested")?;
            full || next <= now
        }
    })
}

/// Makes the source's next run due now (Run now, a webhook), and wakes the workers' source
/// loops (in this process, and on PostgreSQL in every process, by a notification). Fails with
/// [`Error::Config`] when no worker has run a source of that name yet (a source that never ran
/// is due anyway).
pub async fn request_run(db: &DatabaseConnection, source: &str) -> Result<()> {
    let hit = execute(
        db,
        "UPDATE sync_sources SET next_run_at = 0 WHERE source = ?",
        vec![source.into()],
        || format!("requesting a run of source `{source}`"),
    )
    .await?;
    known(db, source, hit).await?;
    crate::sleepers::wake_sources(db).await;
    Ok(())
}

/// Asks for a full run of the source, due now: from no cursor, and when its listing completes,
/// the records that vanished from the remote are deleted. Fails as [`request_run`] does.
pub async fn request_full_run(db: &DatabaseConnection, source: &str) -> Result<()> {
    let hit = execute(
        db,
        "UPDATE sync_sources SET full_requested = ?, next_run_at = 0 WHERE source = ?",
        vec![true.into(), source.into()],
        || format!("requesting a full run of source `{source}`"),
    )
    .await?;
    known(db, source, hit).await?;
    crate::sleepers::wake_sources(db).await;
    Ok(())
}

/// `Ok` when the update hit the source's row (MySQL counts only changed rows: look again).
async fn known(db: &DatabaseConnection, source: &str, hit: u64) -> Result<()> {
    if hit > 0 {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let found = db
        .query_one_raw(statement(
            backend,
            "SELECT source FROM sync_sources WHERE source = ?",
            vec![source.into()],
        ))
        .await
        .map_err(Error::db_while(format!("looking up source `{source}`")))?;
    if found.is_some() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "no source named `{source}` has run yet (sources appear in sync_sources after a worker \
         runs them; one that never ran runs as soon as a worker with it starts)"
    )))
}

async fn execute<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
    what: impl FnOnce() -> String,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let done = db
        .execute_raw(statement(backend, sql, values))
        .await
        .map_err(|e| Error::DatabaseWhile {
            context: what(),
            source: e,
        })?;
    Ok(done.rows_affected())
}

async fn ensure_row(db: &DatabaseConnection, source: &str) -> Result<()> {
    let sql = if db.get_database_backend() == DbBackend::MySql {
        "INSERT IGNORE INTO sync_sources (source) VALUES (?)"
    } else {
        "INSERT INTO sync_sources (source) VALUES (?) ON CONFLICT (source) DO NOTHING"
    };
    execute(db, sql, vec![source.into()], || {
        format!("registering source `{source}` in sync_sources")
    })
    .await
    .map(drop)
}

async fn acquire(
    db: &DatabaseConnection,
    source: &str,
    options: &SourceRunOptions,
) -> Result<bool> {
    let now = clock::now_ms();
    let until = now + options.lease.as_millis() as i64;
    let taken = execute(
        db,
        "UPDATE sync_sources SET lease_owner = ?, lease_until = ? \
         WHERE source = ? AND (lease_owner IS NULL OR lease_until < ? OR lease_owner = ?)",
        vec![
            options.owner.as_str().into(),
            until.into(),
            source.into(),
            now.into(),
            options.owner.as_str().into(),
        ],
        || format!("taking the lease of source `{source}`"),
    )
    .await?;
    Ok(taken == 1)
}

/// What `sync_inbound` holds for a remote id.
#[derive(Debug, Clone)]
struct Known<'r> {
    digest: Cow<'r, str>,
    /// [`APPLIED`] or [`QUARANTINED`].
    state: &'static str,
    modified_at: Option<i64>,
    payload: Option<Base<'r>>,
}

/// The data last applied for a remote id, parsed only when an `apply` asks for it.
#[derive(Debug, Clone)]
enum Base<'r> {
    /// As `sync_inbound` stores it.
    Stored(String),
    /// A record applied earlier in the same page.
    Page(&'r Value),
}

impl Base<'_> {
    /// The data (`None` when the stored text is not JSON: no base rather than no apply).
    fn value(&self) -> Option<Cow<'_, Value>> {
        match self {
            Base::Stored(text) => serde_json::from_str(text).ok().map(Cow::Owned),
            Base::Page(value) => Some(Cow::Borrowed(*value)),
        }
    }
}

/// A record of a page that is to be applied.
struct Candidate<'r> {
    record: &'r InboundRecord,
    digest: &'r str,
    modified_at: Option<i64>,
    /// The data applied last for its remote id.
    base: Option<Base<'r>>,
    was_quarantined: bool,
}

impl Candidate<'_> {
    fn outcome(&self, error: Option<String>) -> Outcome {
        Outcome {
            remote_id: self.record.remote_id.as_str().to_owned(),
            digest: self.digest.to_owned(),
            deleted: self.record.deleted,
            modified_at: self.modified_at,
            payload: self.record.data.to_string(),
            error: error.map(|e| (e, 1)),
        }
    }
}

/// The digests of `records`, in order.
fn digests_of(source: &str, records: &[InboundRecord]) -> Vec<String> {
    records.iter().map(|r| record_digest(source, r)).collect()
}

/// The remote ids of `records`, in order.
fn remote_ids(records: &[InboundRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.remote_id.as_str().to_owned())
        .collect()
}

/// A row to write into `sync_inbound`.
struct Outcome {
    remote_id: String,
    digest: String,
    deleted: bool,
    modified_at: Option<i64>,
    /// The record's data as JSON text.
    payload: String,
    /// `Err(message, attempts)` for a quarantined record.
    error: Option<(String, i32)>,
}

/// How [`Run::apply_records`] applies a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The only page of its transaction: all at once, then record by record if that fails.
    Alone,
    /// After other pages in one transaction: all at once, or the transaction is rolled back.
    Batched,
    /// Record by record, each under a savepoint.
    OneByOne,
}

/// A transaction holding pages applied and not committed yet.
struct Batch {
    txn: DatabaseTransaction,
    opened: Instant,
    /// The pages in it before the last, to apply again should a later page fail.
    pages: Vec<Kept>,
    /// The report when it opened (its counts are restored when it is rolled back).
    before: SourceReport,
}

/// A page in a [`Batch`], with the cursor and state after it.
struct Kept {
    records: Vec<InboundRecord>,
    cursor: Option<Value>,
    state: Value,
}

struct Run<'a> {
    db: &'a DatabaseConnection,
    source: &'a dyn Source,
    options: &'a SourceRunOptions,
    name: &'a str,
    full_run: Option<i64>,
    /// When the run started.
    started: i64,
    /// Where the application's table keeps the digests, if it does.
    table: Option<DigestColumn>,
    /// With `table`: the source may have quarantined records, so a page reads its records'
    /// rows in `sync_inbound` too.
    quarantined: AtomicBool,
}

impl Run<'_> {
    async fn go(&mut self, report: &mut SourceReport) -> Result<()> {
        let name = self.name;
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT next_cursor, state, full_run, full_requested FROM sync_sources WHERE source = ?",
                vec![name.into()],
            ))
            .await
            .map_err(Error::db_while(format!("reading source `{name}`")))?
            .ok_or_else(|| Error::Config(format!("source `{name}` has no row in sync_sources")))?;
        let stored_cursor: Option<String> = row.try_get("", "next_cursor")?;
        let stored_state: Option<String> = row.try_get("", "state")?;
        let full_run: Option<i64> = row.try_get("", "full_run")?;
        let full_requested: bool = row.try_get("", "full_requested")?;
        let mut cursor = parse_json(name, "cursor", stored_cursor)?;
        let mut state = parse_json(name, "state", stored_state)?.unwrap_or_else(|| json!({}));

        if self.options.full || full_requested {
            // A new full run: from no cursor; the records it lists are marked with its start.
            let started = clock::now_ms();
            self.guarded(
                "UPDATE sync_sources SET full_run = ?, full_requested = ?, next_cursor = NULL \
                 WHERE source = ? AND lease_owner = ?",
                vec![started.into(), false.into()],
            )
            .await?;
            self.full_run = Some(started);
            cursor = None;
            // The marks of an earlier full run that did not complete.
            self.clear_marks().await?;
        } else {
            self.full_run = full_run;
        }
        self.forget_applied_rows().await?;
        self.check_quarantined().await?;
        let full = self.full_run.is_some();
        report.full = full;
        let first = FetchContext {
            source: name,
            state: &state,
            full,
        };
        let fetching = Instant::now();
        let mut page = self.source.fetch(&first, cursor.as_ref()).await?;
        report.times.fetching += fetching.elapsed();
        // Pages applied and not committed yet (see `Source::pages_per_commit`).
        let mut batch: Option<Batch> = None;
        loop {
            report.pages += 1;
            report.fetched += page.records.len() as u64;
            let moved = page.cursor.is_some() && page.cursor != cursor;
            if page.more && !moved && page.records.is_empty() {
                return Err(Error::permanent(format!(
                    "source `{name}` said more records follow but returned none and the same \
                     cursor; stopping instead of asking again forever"
                )));
            }
            if let Some(next) = page.cursor.take() {
                cursor = Some(next);
            }
            if let Some(patch) = page.state.take() {
                merge_state(name, &mut state, patch)?;
            }
            // The next page is fetched while this one is applied: its request needs only the
            // cursor and state this page moved to, and nothing of it is written before this
            // page is applied. A failed fetch ends the run after this page's commit.
            let more = page.more;
            let (at_state, at_cursor, source) = (&state, cursor.as_ref(), self.source);
            let following = async move {
                if !more {
                    return None;
                }
                let cx = FetchContext {
                    source: name,
                    state: at_state,
                    full,
                };
                let fetching = Instant::now();
                let next = source.fetch(&cx, at_cursor).await;
                Some((next, fetching.elapsed()))
            };
            let mut following = std::pin::pin!(following);
            // Whether the next page arrived while this one was applied.
            let (applied, fetched) = {
                let apply = std::pin::pin!(self.apply_in(&mut batch, &page.records, report));
                match futures::future::select(apply, following.as_mut()).await {
                    // The fetch may have finished in the same moment.
                    Either::Left((applied, _)) => match futures::poll!(following.as_mut()) {
                        Poll::Ready(fetched) => (applied, Some(fetched)),
                        Poll::Pending => (applied, None),
                    },
                    Either::Right((fetched, apply)) => (apply.await, Some(fetched)),
                }
            };
            applied?;
            // The transaction stays open for the next page only when that page is here
            // already (never while waiting on the remote), within the source's bounds.
            let open = batch
                .as_mut()
                .expect("a page applied leaves its transaction open");
            let next_here = matches!(fetched, Some(Some((Ok(_), _))));
            let next = if next_here
                && open.pages.len() + 1 < self.source.pages_per_commit()
                && open.opened.elapsed() < self.source.commit_within()
            {
                open.pages.push(Kept {
                    records: std::mem::take(&mut page.records),
                    cursor: cursor.clone(),
                    state: state.clone(),
                });
                fetched.expect("the next page is here")
            } else {
                let open = batch.take().expect("checked above");
                let commit = self.commit(open.txn, cursor.as_ref(), &state, report);
                match fetched {
                    Some(fetched) => {
                        commit.await?;
                        fetched
                    }
                    None => {
                        let (committed, fetched) = futures::join!(commit, following);
                        committed?;
                        fetched
                    }
                }
            };
            match next {
                Some((next, took)) => {
                    report.times.fetching += took;
                    page = next?;
                }
                None => break,
            }
        }

        if let Some(run) = self.full_run {
            self.vanished(run, report).await?;
            self.clear_marks().await?;
        }
        // After the pages: a record the remote sent again in a new version was applied (or
        // quarantined anew) there, and its stale payload is not retried.
        self.retry_quarantined(report).await
    }

    /// Opens a transaction for pages.
    async fn open(&self, report: &mut SourceReport) -> Result<Batch> {
        let name = self.name;
        let opened = Instant::now();
        let txn = self.db.begin().await.map_err(Error::db_while(format!(
            "starting a page of source `{name}`"
        )))?;
        report.times.committing += opened.elapsed();
        Ok(Batch {
            txn,
            opened,
            pages: Vec::new(),
            before: report.clone(),
        })
    }

    /// Applies a page's records, and writes what is recorded of them, in the open
    /// transaction (`batch`; a new one when none is open), which it leaves open. When the
    /// records fail together in a transaction holding earlier pages, that transaction is rolled
    /// back, the earlier pages are applied again and committed each in a transaction of its own,
    /// and this page is applied record by record in a new one.
    async fn apply_in(
        &self,
        batch: &mut Option<Batch>,
        records: &[InboundRecord],
        report: &mut SourceReport,
    ) -> Result<()> {
        let open = match batch.take() {
            Some(open) => open,
            None => self.open(report).await?,
        };
        let Batch {
            txn,
            opened,
            pages,
            before,
        } = open;
        let mode = if pages.is_empty() {
            Mode::Alone
        } else {
            Mode::Batched
        };
        if let Some(txn) = self.apply_and_record(txn, records, mode, report).await? {
            *batch = Some(Batch {
                txn,
                opened,
                pages,
                before,
            });
            return Ok(());
        }
        // Rolled back: the counts of its pages go with it.
        report.restore_counts(&before);
        for kept in &pages {
            let open = self.open(report).await?;
            let txn = self
                .apply_and_record(open.txn, &kept.records, Mode::Alone, report)
                .await?
                .expect("a page applied alone is not rolled back");
            self.commit(txn, kept.cursor.as_ref(), &kept.state, report)
                .await?;
        }
        let open = self.open(report).await?;
        let txn = self
            .apply_and_record(open.txn, records, Mode::OneByOne, report)
            .await?
            .expect("a page applied record by record is not rolled back");
        *batch = Some(Batch { txn, ..open });
        Ok(())
    }

    /// Applies a page's records in `txn` and writes what is recorded of them (and, in a full
    /// run, their marks as seen); `None` when they failed together in [`Mode::Batched`] and
    /// `txn` was rolled back.
    async fn apply_and_record(
        &self,
        txn: DatabaseTransaction,
        records: &[InboundRecord],
        mode: Mode,
        report: &mut SourceReport,
    ) -> Result<Option<DatabaseTransaction>> {
        let applying = Instant::now();
        let reading = report.times.reading;
        let Some((txn, outcomes)) = self.apply_records(txn, records, mode, report).await? else {
            return Ok(None);
        };
        let recording = Instant::now();
        report.times.applying +=
            (recording - applying).saturating_sub(report.times.reading - reading);
        self.write_outcomes(&txn, &outcomes).await?;
        if let Some(run) = self.full_run {
            let ids = remote_ids(records);
            mark_seen(&txn, self.name, run, &ids, self.table.is_some()).await?;
        }
        report.times.recording += recording.elapsed();
        Ok(Some(txn))
    }

    /// Saves the cursor and state after the pages applied in `txn`, renewing the lease, and
    /// commits it.
    async fn commit(
        &self,
        txn: DatabaseTransaction,
        cursor: Option<&Value>,
        state: &Value,
        report: &mut SourceReport,
    ) -> Result<()> {
        let name = self.name;
        let recording = Instant::now();
        self.renew_in(
            &txn,
            "UPDATE sync_sources SET next_cursor = ?, state = ?, lease_until = ? \
             WHERE source = ? AND lease_owner = ?",
            vec![
                cursor.map(Value::to_string).into(),
                state.to_string().into(),
            ],
        )
        .await?;
        let committing = Instant::now();
        report.times.recording += committing - recording;
        txn.commit().await.map_err(Error::db_while(format!(
            "committing a page of source `{name}`"
        )))?;
        report.times.committing += committing.elapsed();
        report.commits += 1;
        Ok(())
    }

    /// Applies the page's records in `txn`; returns the transaction to go on with and what to
    /// record. First all at once ([`Source::apply_many`], or each record's `apply` without a
    /// savepoint of its own); when that fails, rolls the transaction back and, in
    /// [`Mode::Alone`], applies them one by one in a new one, each under its own savepoint, so
    /// that only the failing records are quarantined (in [`Mode::Batched`] returns `None`).
    /// [`Mode::OneByOne`] goes one by one at once.
    async fn apply_records(
        &self,
        txn: DatabaseTransaction,
        records: &[InboundRecord],
        mode: Mode,
        report: &mut SourceReport,
    ) -> Result<Option<(DatabaseTransaction, Vec<Outcome>)>> {
        let name = self.name;
        let ids = remote_ids(records);
        let reading = Instant::now();
        // The digests are computed while the database reads the ones known.
        let (known, digests) =
            futures::join!(self.known(&txn, &ids), async { digests_of(name, records) });
        let known = known?;
        report.times.reading += reading.elapsed();
        let txn = if mode == Mode::OneByOne {
            txn
        } else {
            let mut assumed = known.clone();
            let (candidates, skipped) = self.candidates(records, &digests, &mut assumed);
            if candidates.is_empty() {
                report.skipped += skipped;
                return Ok(Some((txn, Vec::new())));
            }
            if self.apply_all(&txn, &candidates).await {
                report.skipped += skipped;
                let mut outcomes = Vec::new();
                for c in &candidates {
                    tally(report, false, c.record.deleted, c.was_quarantined);
                    if self.recorded(false, c.was_quarantined) {
                        outcomes.push(c.outcome(None));
                    }
                }
                return Ok(Some((txn, outcomes)));
            }
            txn.rollback().await.map_err(Error::db_while(format!(
                "rolling back a page's applies in source `{name}`"
            )))?;
            if mode == Mode::Batched {
                return Ok(None);
            }
            self.db.begin().await.map_err(Error::db_while(format!(
                "starting a page of source `{name}` again, record by record"
            )))?
        };
        // One by one: `known` as before the page, updated as records are applied or fail.
        let mut known = known;
        let mut outcomes = Vec::new();
        for (record, digest) in records.iter().zip(&digests) {
            let (mut one, skip) = self.candidates(
                std::slice::from_ref(record),
                std::slice::from_ref(digest),
                &mut known,
            );
            let Some(c) = one.pop() else {
                report.skipped += skip;
                continue;
            };
            let base = c.base.as_ref().and_then(Base::value);
            let result = self
                .apply_one(&txn, c.record, base.as_deref(), c.digest)
                .await?;
            let outcome = c.outcome(result.err());
            count(report, &outcome, c.was_quarantined);
            if outcome.error.is_some() {
                self.quarantined.store(true, Ordering::Relaxed);
            }
            known.insert(
                outcome.remote_id.clone(),
                Known {
                    digest: Cow::Borrowed(c.digest),
                    state: if outcome.error.is_some() {
                        QUARANTINED
                    } else {
                        APPLIED
                    },
                    modified_at: c.modified_at,
                    payload: Some(Base::Page(&c.record.data)),
                },
            );
            if self.recorded(outcome.error.is_some(), c.was_quarantined) {
                outcomes.push(outcome);
            }
        }
        Ok(Some((txn, outcomes)))
    }

    /// The records to apply, in order, and how many are skipped (the version applied already,
    /// or an older one), assuming each candidate is applied (`known` is updated so).
    fn candidates<'r>(
        &self,
        records: &'r [InboundRecord],
        digests: &'r [String],
        known: &mut HashMap<String, Known<'r>>,
    ) -> (Vec<Candidate<'r>>, u64) {
        let mut out = Vec::new();
        let mut skipped = 0;
        for (record, digest) in records.iter().zip(digests) {
            let id = record.remote_id.as_str().to_owned();
            let digest = digest.as_str();
            let modified_at = record.modified_at.map(|t| t.timestamp_millis());
            let previous = known.get(&id);
            if let Some(previous) = previous {
                let stale = previous.state == APPLIED
                    && matches!((modified_at, previous.modified_at), (Some(new), Some(old)) if new < old);
                if previous.digest == digest || stale {
                    skipped += 1;
                    continue;
                }
            }
            let was_quarantined = previous.is_some_and(|p| p.state == QUARANTINED);
            let base = previous
                .filter(|p| p.state == APPLIED)
                .and_then(|p| p.payload.clone());
            known.insert(
                id,
                Known {
                    digest: Cow::Borrowed(digest),
                    state: APPLIED,
                    modified_at,
                    payload: Some(Base::Page(&record.data)),
                },
            );
            out.push(Candidate {
                record,
                digest,
                modified_at,
                base,
                was_quarantined,
            });
        }
        (out, skipped)
    }

    /// Applies every candidate in `txn`, without savepoints: whether all succeeded (when one
    /// failed, the caller rolls the transaction back).
    async fn apply_all(&self, txn: &DatabaseTransaction, candidates: &[Candidate<'_>]) -> bool {
        let name = self.name;
        let records: Vec<&InboundRecord> = candidates.iter().map(|c| c.record).collect();
        let digests: Vec<(&InboundRecord, &str)> =
            candidates.iter().map(|c| (c.record, c.digest)).collect();
        let cx = ApplyContext {
            db: txn,
            source: name,
            previous: None,
            digests: &digests,
            hint: Default::default(),
        };
        let together = AssertUnwindSafe(self.source.apply_many(&cx, &records))
            .catch_unwind()
            .await;
        match together {
            Ok(Some(result)) => result.is_ok(),
            Err(_) => false,
            Ok(None) => {
                for (c, digest) in candidates.iter().zip(&digests) {
                    let base = c.base.as_ref().and_then(Base::value);
                    let cx = ApplyContext {
                        db: txn,
                        source: name,
                        previous: base.as_deref(),
                        digests: std::slice::from_ref(digest),
                        hint: Default::default(),
                    };
                    let one = AssertUnwindSafe(self.source.apply(&cx, c.record))
                        .catch_unwind()
                        .await;
                    if !matches!(one, Ok(Ok(()))) {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Applies one record under a savepoint. The outer error is the database failing around
    /// the apply (the page cannot go on); the inner one is the apply's own failure, as text.
    async fn apply_one(
        &self,
        txn: &DatabaseTransaction,
        record: &InboundRecord,
        previous: Option<&Value>,
        digest: &str,
    ) -> Result<std::result::Result<(), String>> {
        let name = self.name;
        let savepoint = txn.begin().await.map_err(Error::db_while(format!(
            "opening a savepoint in source `{name}`"
        )))?;
        let digests = [(record, digest)];
        let cx = ApplyContext {
            db: &savepoint,
            source: name,
            previous,
            digests: &digests,
            hint: Default::default(),
        };
        let outcome = AssertUnwindSafe(self.source.apply(&cx, record))
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(panic) => Some(format!("apply panicked: {}", panic_message(&panic))),
        };
        match failure {
            None => {
                savepoint.commit().await.map_err(Error::db_while(format!(
                    "committing the apply of record `{}` of source `{name}`",
                    record.remote_id
                )))?;
                Ok(Ok(()))
            }
            Some(message) => {
                savepoint.rollback().await.map_err(Error::db_while(format!(
                    "rolling back the failed apply of record `{}` of source `{name}` ({message})",
                    record.remote_id
                )))?;
                tracing::warn!(source = name, remote_id = %record.remote_id, error = %message, "record quarantined");
                Ok(Err(message))
            }
        }
    }

    /// Applies the quarantined records whose retry is due, from their stored payloads; not
    /// those this run quarantined.
    async fn retry_quarantined(&self, report: &mut SourceReport) -> Result<()> {
        let name = self.name;
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(statement(
                backend,
                "SELECT remote_id, digest, deleted, modified_at, payload, attempts FROM sync_inbound \
                 WHERE source = ? AND state = 'quarantined' AND next_retry_at <= ? \
                 AND updated_at < ? ORDER BY next_retry_at LIMIT 500",
                vec![
                    name.into(),
                    clock::now_ms().into(),
                    self.started.into(),
                ],
            ))
            .await
            .map_err(Error::db_while(format!(
                "reading the quarantined records of source `{name}`"
            )))?;
        if rows.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await.map_err(Error::db_while(format!(
            "retrying records of source `{name}`"
        )))?;
        let mut outcomes = Vec::new();
        for row in rows {
            let remote_id: String = row.try_get("", "remote_id")?;
            let payload: Option<String> = row.try_get("", "payload")?;
            let attempts: i32 = row.try_get("", "attempts")?;
            let record = InboundRecord {
                remote_id: RemoteId::string(remote_id.clone()),
                data: parse_json(name, "quarantined payload", payload)?.unwrap_or(Value::Null),
                deleted: row.try_get("", "deleted")?,
                modified_at: row
                    .try_get::<Option<i64>>("", "modified_at")?
                    .and_then(chrono::DateTime::from_timestamp_millis),
            };
            let digest: String = row.try_get("", "digest")?;
            let result = self.apply_one(&txn, &record, None, &digest).await?;
            let outcome = Outcome {
                remote_id,
                digest,
                deleted: record.deleted,
                modified_at: record.modified_at.map(|t| t.timestamp_millis()),
                payload: record.data.to_string(),
                error: result.err().map(|e| (e, attempts.saturating_add(1))),
            };
            count(report, &outcome, true);
            outcomes.push(outcome);
        }
        self.record_and_commit(txn, &outcomes, "retries").await
    }

    /// After a complete full run: hands a tombstone to `apply` for every live record the
    /// listing did not have.
    async fn vanished(&self, run: i64, report: &mut SourceReport) -> Result<()> {
        let name = self.name;
        let backend = self.db.get_database_backend();
        if let Some(table) = &self.table {
            return self.vanished_from_table(table, run, report).await;
        }
        let mut after = 0_i64;
        loop {
            let rows = self
                .db
                .query_all_raw(statement(
                    backend,
                    "SELECT id, remote_id FROM sync_inbound WHERE source = ? AND deleted = ? \
                     AND (seen_run IS NULL OR seen_run <> ?) AND id > ? ORDER BY id LIMIT 200",
                    vec![name.into(), false.into(), run.into(), after.into()],
                ))
                .await
                .map_err(Error::db_while(format!(
                    "finding the records source `{name}` no longer lists"
                )))?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("", "id")?;
            let txn = self.db.begin().await.map_err(Error::db_while(format!(
                "deleting vanished records of `{name}`"
            )))?;
            let mut outcomes = Vec::new();
            for row in &rows {
                let remote_id: String = row.try_get("", "remote_id")?;
                let record = InboundRecord::tombstone(RemoteId::string(remote_id.clone()));
                let digest = record_digest(name, &record);
                let result = self.apply_one(&txn, &record, None, &digest).await?;
                let outcome = Outcome {
                    remote_id,
                    digest,
                    deleted: true,
                    modified_at: None,
                    payload: "null".to_owned(),
                    error: result.err().map(|e| (e, 1)),
                };
                count(report, &outcome, false);
                if outcome.error.is_none() {
                    report.vanished += 1;
                }
                outcomes.push(outcome);
            }
            self.record_and_commit(txn, &outcomes, "deletes").await?;
        }
        Ok(())
    }

    /// [`vanished`](Self::vanished) for a source whose digests live in the application's table:
    /// the rows holding a digest (other than a tombstone's, a row soft-deleted before) that the
    /// full run did not mark. Each batch handled is marked too, so the next one moves on.
    async fn vanished_from_table(
        &self,
        table: &DigestColumn,
        run: i64,
        report: &mut SourceReport,
    ) -> Result<()> {
        let name = self.name;
        let backend = self.db.get_database_backend();
        let tombstone = record_digest(name, &InboundRecord::tombstone(RemoteId::string("")));
        let (t, rid, dig) = (
            quote(backend, &table.table),
            quote(backend, &table.remote_id),
            quote(backend, &table.digest),
        );
        let as_text = id_as_text(backend, &format!("t.{rid}"));
        let sql = format!(
            "SELECT {as_text} AS remote_id FROM {t} t WHERE t.{dig} IS NOT NULL AND t.{dig} <> ? \
             AND NOT EXISTS (SELECT 1 FROM sync_inbound s WHERE s.source = ? \
             AND s.remote_id = {as_text} AND s.seen_run = ?) ORDER BY t.{rid} LIMIT 200"
        );
        loop {
            let rows = self
                .db
                .query_all_raw(statement(
                    backend,
                    &sql,
                    vec![tombstone.as_str().into(), name.into(), run.into()],
                ))
                .await
                .map_err(Error::db_while(format!(
                    "finding the rows of `{}` whose records source `{name}` no longer lists",
                    table.table
                )))?;
            if rows.is_empty() {
                break;
            }
            let txn = self.db.begin().await.map_err(Error::db_while(format!(
                "deleting vanished records of `{name}`"
            )))?;
            let mut outcomes = Vec::new();
            let mut ids = Vec::new();
            for row in &rows {
                let remote_id: String = row.try_get("", "remote_id")?;
                let record = InboundRecord::tombstone(RemoteId::string(remote_id.clone()));
                let result = self.apply_one(&txn, &record, None, &tombstone).await?;
                let outcome = Outcome {
                    remote_id: remote_id.clone(),
                    digest: tombstone.clone(),
                    deleted: true,
                    modified_at: None,
                    payload: "null".to_owned(),
                    error: result.err().map(|e| (e, 1)),
                };
                count(report, &outcome, false);
                if outcome.error.is_none() {
                    report.vanished += 1;
                } else {
                    self.quarantined.store(true, Ordering::Relaxed);
                }
                outcomes.push(outcome);
                ids.push(remote_id);
            }
            self.write_outcomes(&txn, &outcomes).await?;
            mark_seen(&txn, name, run, &ids, true).await?;
            self.renew_in(
                &txn,
                "UPDATE sync_sources SET lease_until = ? WHERE source = ? AND lease_owner = ?",
                vec![],
            )
            .await?;
            txn.commit().await.map_err(Error::db_while(format!(
                "committing deletes of source `{name}`"
            )))?;
        }
        Ok(())
    }

    /// What is known of the page's remote ids: their `sync_inbound` rows, or for a source with
    /// a [`DigestColumn`] the digests of the application's rows, overlaid with the quarantined
    /// records' rows when there may be any.
    async fn known(
        &self,
        txn: &DatabaseTransaction,
        ids: &[String],
    ) -> Result<HashMap<String, Known<'static>>> {
        let Some(table) = &self.table else {
            return load_known(txn, self.name, ids, false).await;
        };
        let mut known = table_digests(txn, self.name, table, ids).await?;
        if self.quarantined.load(Ordering::Relaxed) {
            known.extend(load_known(txn, self.name, ids, true).await?);
        }
        Ok(known)
    }

    /// For a source with a [`DigestColumn`]: deletes the marks of the records a full run listed
    /// (its other records have no `sync_inbound` row to hold one).
    async fn clear_marks(&self) -> Result<()> {
        self.delete_rows_in("seen", "clearing the marks of a full run")
            .await
    }

    /// For a source with a [`DigestColumn`]: deletes the `sync_inbound` rows of records
    /// applied, left from before the source kept its digests in the table (nothing reads them
    /// any more).
    async fn forget_applied_rows(&self) -> Result<()> {
        self.delete_rows_in(APPLIED, "deleting the rows of records applied before")
            .await
    }

    /// For a source with a [`DigestColumn`]: deletes its `sync_inbound` rows in `state`
    /// (`doing`: what for, in the error).
    async fn delete_rows_in(&self, state: &str, doing: &str) -> Result<()> {
        if self.table.is_none() {
            return Ok(());
        }
        let name = self.name;
        execute(
            self.db,
            "DELETE FROM sync_inbound WHERE source = ? AND state = ?",
            vec![name.into(), state.into()],
            || format!("{doing} of source `{name}`"),
        )
        .await
        .map(drop)
    }

    /// For a source with a [`DigestColumn`]: whether it has quarantined records now.
    async fn check_quarantined(&self) -> Result<()> {
        if self.table.is_none() {
            return Ok(());
        }
        let name = self.name;
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(statement(
                backend,
                "SELECT remote_id FROM sync_inbound WHERE state = 'quarantined' AND source = ? LIMIT 1",
                vec![name.into()],
            ))
            .await
            .map_err(Error::db_while(format!(
                "looking for quarantined records of source `{name}`"
            )))?;
        self.quarantined.store(row.is_some(), Ordering::Relaxed);
        Ok(())
    }

    /// Whether an outcome is written to `sync_inbound`: always, unless the digests live in the
    /// application's table, where only a failure is (and a success of a record quarantined
    /// before, whose row goes).
    fn recorded(&self, failed: bool, was_quarantined: bool) -> bool {
        self.table.is_none() || failed || was_quarantined
    }

    /// Writes `outcomes` to `sync_inbound`; for a source with a [`DigestColumn`], the failures,
    /// and the rows of the records that succeeded are deleted (they were quarantined).
    async fn write_outcomes(&self, txn: &DatabaseTransaction, outcomes: &[Outcome]) -> Result<()> {
        if self.table.is_none() {
            let all: Vec<&Outcome> = outcomes.iter().collect();
            return write_outcomes(txn, self.name, &all, self.source).await;
        }
        let (failed, succeeded): (Vec<&Outcome>, Vec<&Outcome>) =
            outcomes.iter().partition(|o| o.error.is_some());
        if !succeeded.is_empty() {
            let ids: Vec<String> = succeeded.iter().map(|o| o.remote_id.clone()).collect();
            forget_rows(txn, self.name, &ids).await?;
        }
        write_outcomes(txn, self.name, &failed, self.source).await
    }

    /// Records `outcomes` and renews the lease in `txn`, then commits it (`what`: the
    /// transaction's work, for the error).
    async fn record_and_commit(
        &self,
        txn: DatabaseTransaction,
        outcomes: &[Outcome],
        what: &str,
    ) -> Result<()> {
        let name = self.name;
        self.write_outcomes(&txn, outcomes).await?;
        self.renew_in(
            &txn,
            "UPDATE sync_sources SET lease_until = ? WHERE source = ? AND lease_owner = ?",
            vec![],
        )
        .await?;
        txn.commit().await.map_err(Error::db_while(format!(
            "committing {what} of source `{name}`"
        )))
    }

    /// Runs a statement that must find the lease still ours: `values` then `source`, `owner`.
    async fn guarded(&self, sql: &str, mut values: Vec<sea_orm::Value>) -> Result<()> {
        values.push(self.name.into());
        values.push(self.options.owner.as_str().into());
        let hit = execute(self.db, sql, values, || {
            format!("updating source `{}`", self.name)
        })
        .await?;
        self.check_lease(hit)
    }

    /// Like [`guarded`](Self::guarded) inside `txn`, with the renewed lease's expiry inserted
    /// after `values`.
    async fn renew_in(
        &self,
        txn: &DatabaseTransaction,
        sql: &str,
        mut values: Vec<sea_orm::Value>,
    ) -> Result<()> {
        values.push((clock::now_ms() + self.options.lease.as_millis() as i64).into());
        values.push(self.name.into());
        values.push(self.options.owner.as_str().into());
        let hit = execute(txn, sql, values, || {
            format!("saving the cursor of source `{}`", self.name)
        })
        .await?;
        self.check_lease(hit)
    }

    fn check_lease(&self, hit: u64) -> Result<()> {
        if hit == 1 {
            return Ok(());
        }
        Err(Error::retryable(format!(
            "worker `{}` lost the lease of source `{}` (it took longer than the lease, {:?}); \
             another worker runs it, and this one's last pages were not committed",
            self.options.owner, self.name, self.options.lease
        )))
    }

    /// Records the run's outcome and releases the lease.
    async fn finish(&self, report: &SourceReport, error: Option<&Error>) -> Result<()> {
        let now = clock::now_ms();
        let next = now + self.source.interval().as_millis() as i64;
        let ok = error.is_none();
        // A full run that completed is over; one that failed resumes at its cursor.
        let sql = format!(
            "UPDATE sync_sources SET lease_owner = NULL, lease_until = NULL, next_run_at = ?, \
             last_run_at = ?, last_error = ?, last_fetched = ?, last_applied = ?, \
             last_skipped = ?, last_quarantined = ?, last_deleted = ?{}{} \
             WHERE source = ? AND lease_owner = ?",
            if ok { ", last_success_at = ?" } else { "" },
            if ok && self.full_run.is_some() {
                ", full_run = NULL"
            } else {
                ""
            },
        );
        let mut values: Vec<sea_orm::Value> = vec![
            next.into(),
            now.into(),
            error.map(ToString::to_string).into(),
            (report.fetched as i64).into(),
            (report.applied as i64).into(),
            (report.skipped as i64).into(),
            (report.quarantined as i64).into(),
            (report.deleted as i64).into(),
        ];
        if ok {
            values.push(now.into());
        }
        values.push(self.name.into());
        values.push(self.options.owner.as_str().into());
        execute(self.db, &sql, values, || {
            format!("recording the run of source `{}`", self.name)
        })
        .await?;
        match error {
            None => tracing::info!(
                source = self.name,
                pages = report.pages,
                fetched = report.fetched,
                applied = report.applied,
                skipped = report.skipped,
                quarantined = report.quarantined,
                deleted = report.deleted,
                "source run"
            ),
            Some(error) => tracing::warn!(source = self.name, %error, "source run failed"),
        }
        Ok(())
    }
}

fn count(report: &mut SourceReport, outcome: &Outcome, was_quarantined: bool) {
    tally(
        report,
        outcome.error.is_some(),
        outcome.deleted,
        was_quarantined,
    );
}

fn tally(report: &mut SourceReport, failed: bool, deleted: bool, was_quarantined: bool) {
    match (failed, deleted) {
        (true, _) => report.quarantined += 1,
        (false, true) => report.deleted += 1,
        (false, false) => report.applied += 1,
    }
    if was_quarantined && !failed {
        report.revived += 1;
    }
}

fn parse_json(source: &str, what: &str, text: Option<String>) -> Result<Option<Value>> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "the stored {what} of source `{source}` is not JSON ({e}): {text:.200}"
            ))
        })
    })
    .transpose()
}

fn merge_state(source: &str, state: &mut Value, patch: Value) -> Result<()> {
    let Value::Object(patch) = patch else {
        return Err(Error::Config(format!(
            "source `{source}` returned a state that is not a JSON object: {patch:.200}"
        )));
    };
    let Value::Object(state) = state else {
        return Err(Error::Config(format!(
            "the stored state of source `{source}` is not a JSON object"
        )));
    };
    for (key, value) in patch {
        if value.is_null() {
            state.remove(&key);
        } else {
            state.insert(key, value);
        }
    }
    Ok(())
}

/// The `sync_inbound` rows of `ids` (only the quarantined ones: `only_quarantined`).
async fn load_known(
    txn: &DatabaseTransaction,
    source: &str,
    ids: &[String],
    only_quarantined: bool,
) -> Result<HashMap<String, Known<'static>>> {
    let filter = if only_quarantined {
        "t.source = ? AND t.state = 'quarantined'"
    } else {
        "t.source = ?"
    };
    let backend = txn.get_database_backend();
    let mut known = HashMap::new();
    for chunk in ids.chunks(500) {
        let (sql, values) = rows_of_ids(
            backend,
            "t.remote_id, t.digest, t.state, t.modified_at, t.payload",
            "sync_inbound",
            "remote_id",
            (filter, vec![source.into()]),
            chunk,
            IdType::Text,
        );
        let rows = txn
            .query_all_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!(
                "reading what source `{source}` applied before"
            )))?;
        for row in rows {
            let payload: Option<String> = row.try_get("", "payload")?;
            known.insert(
                row.try_get("", "remote_id")?,
                Known {
                    digest: Cow::Owned(row.try_get("", "digest")?),
                    state: if row.try_get::<String>("", "state")? == QUARANTINED {
                        QUARANTINED
                    } else {
                        APPLIED
                    },
                    modified_at: row.try_get("", "modified_at")?,
                    payload: payload.map(Base::Stored),
                },
            );
        }
    }
    Ok(known)
}

/// A statement reading the rows of `table` (alias `t`) whose `column` holds one of `ids` and that
/// match `filter` (a condition over `t` and its values, or `""`), selecting `columns`.
///
/// On PostgreSQL and SQLite the ids travel as one parameter: one short statement, prepared once
/// per connection, whatever the page's size. On PostgreSQL each id is looked up on its own in the
/// index: the `LIMIT 1` keeps the lateral subquery from being flattened into a join, which the
/// planner turns into a hash join over the whole table (with statistics or without), a page's
/// read then growing with the table.
fn rows_of_ids(
    backend: DbBackend,
    columns: &str,
    table: &str,
    column: &str,
    filter: (&str, Vec<sea_orm::Value>),
    ids: &[String],
    id_type: IdType,
) -> (String, Vec<sea_orm::Value>) {
    let (filter, mut values) = filter;
    let and = if filter.is_empty() {
        String::new()
    } else {
        format!("{filter} AND ")
    };
    match backend {
        DbBackend::Postgres => {
            let array = match id_type {
                IdType::Integer => "bigint[]",
                IdType::Text => "text[]",
            };
            values.insert(0, pg_array(ids).into());
            (
                format!(
                    "SELECT {columns} FROM unnest(CAST(? AS {array})) AS ids(id) CROSS JOIN LATERAL \
                     (SELECT * FROM {table} t WHERE {and}t.{column} = ids.id LIMIT 1) AS t"
                ),
                values,
            )
        }
        DbBackend::Sqlite => {
            // Integers as JSON numbers, so that `json_each` yields integers.
            let list: Value = match id_type {
                IdType::Integer => ids
                    .iter()
                    .filter_map(|id| id.parse::<i64>().ok())
                    .map(Value::from)
                    .collect(),
                IdType::Text => ids.iter().map(|id| Value::from(id.as_str())).collect(),
            };
            values.push(list.to_string().into());
            (
                format!(
                    "SELECT {columns} FROM {table} t WHERE {and}t.{column} IN \
                     (SELECT value FROM json_each(?))"
                ),
                values,
            )
        }
        _ => {
            values.extend(ids.iter().map(|id| match id_type {
                IdType::Integer => sea_orm::Value::from(id.parse::<i64>().unwrap_or_default()),
                IdType::Text => sea_orm::Value::from(id.as_str()),
            }));
            (
                format!(
                    "SELECT {columns} FROM {table} t WHERE {and}t.{column} IN ({})",
                    vec!["?"; ids.len()].join(", ")
                ),
                values,
            )
        }
    }
}

/// `name` quoted as an identifier.
fn quote(backend: DbBackend, name: &str) -> String {
    match backend {
        DbBackend::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// The SQL expression `column` (an application's remote-id column) as text, to compare with
/// `sync_inbound.remote_id`.
fn id_as_text(backend: DbBackend, column: &str) -> String {
    match backend {
        DbBackend::MySql => format!("CAST({column} AS CHAR)"),
        DbBackend::Postgres => format!("CAST({column} AS text)"),
        _ => format!("CAST({column} AS TEXT)"),
    }
}

/// The digests the application's rows hold for `ids` (rows without one are not known).
async fn table_digests(
    txn: &DatabaseTransaction,
    source: &str,
    table: &DigestColumn,
    ids: &[String],
) -> Result<HashMap<String, Known<'static>>> {
    let backend = txn.get_database_backend();
    let (t, rid, dig) = (
        quote(backend, &table.table),
        quote(backend, &table.remote_id),
        quote(backend, &table.digest),
    );
    let columns = format!(
        "{} AS remote_id, t.{dig} AS digest",
        id_as_text(backend, &format!("t.{rid}"))
    );
    // An id that is not an integer cannot be in an integer column (and would not cast).
    let ids: Vec<String> = match table.id_type {
        IdType::Integer => ids
            .iter()
            .filter(|id| id.parse::<i64>().is_ok())
            .cloned()
            .collect(),
        IdType::Text => ids.to_vec(),
    };
    let mut known = HashMap::new();
    for chunk in ids.chunks(500) {
        let (sql, values) = rows_of_ids(
            backend,
            &columns,
            &t,
            &rid,
            ("", Vec::new()),
            chunk,
            table.id_type,
        );
        let rows = txn
            .query_all_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!(
                "reading the digests of source `{source}` from `{}`.`{}` (its `digest_column`)",
                table.table, table.digest
            )))?;
        for row in rows {
            let Some(digest) = row.try_get::<Option<String>>("", "digest")? else {
                continue;
            };
            known.insert(
                row.try_get("", "remote_id")?,
                Known {
                    digest: Cow::Owned(digest),
                    state: APPLIED,
                    modified_at: None,
                    payload: None,
                },
            );
        }
    }
    Ok(known)
}

/// Deletes the `sync_inbound` rows of `ids`.
async fn forget_rows(txn: &DatabaseTransaction, source: &str, ids: &[String]) -> Result<()> {
    let what = || format!("clearing the quarantine of records of source `{source}`");
    if txn.get_database_backend() == DbBackend::Postgres {
        return execute(
            txn,
            "DELETE FROM sync_inbound WHERE id = ANY(ARRAY(\
             SELECT s.id FROM unnest(CAST(? AS text[])) AS ids(id) CROSS JOIN LATERAL \
             (SELECT id FROM sync_inbound WHERE source = ? AND remote_id = ids.id LIMIT 1) AS s))",
            vec![pg_array(ids).into(), source.into()],
            what,
        )
        .await
        .map(drop);
    }
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut values: Vec<sea_orm::Value> = vec![source.into()];
        values.extend(chunk.iter().map(|id| id.as_str().into()));
        execute(
            txn,
            &format!("DELETE FROM sync_inbound WHERE source = ? AND remote_id IN ({marks})"),
            values,
            what,
        )
        .await?;
    }
    Ok(())
}

/// `ids` as a PostgreSQL array literal of text (`{"a","b\"c"}`).
fn pg_array(ids: &[String]) -> String {
    let mut out = String::from("{");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in id.chars() {
            if matches!(ch, '"' | '\\') {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The columns `write_outcomes` sets, in order.
const OUTCOME_COLUMNS: &str = "digest, state, deleted, modified_at, payload, error, attempts, \
                               next_retry_at, updated_at";

async fn write_outcomes(
    txn: &DatabaseTransaction,
    source_name: &str,
    outcomes: &[&Outcome],
    source: &dyn Source,
) -> Result<()> {
    let now = clock::now_ms();
    let backoff = source.backoff();
    let backend = txn.get_database_backend();
    if outcomes.is_empty() {
        return Ok(());
    }
    if matches!(backend, DbBackend::Postgres | DbBackend::Sqlite) {
        // The rows travel as one JSON document per statement (see `load_known`, and
        // `queue::DocumentRow`); on PostgreSQL each under `PG_STATEMENT_BYTES` (several per page
        // only when the payloads are large).
        #[derive(Serialize)]
        struct Row<'a> {
            remote_id: &'a str,
            digest: &'a str,
            state: &'static str,
            deleted: bool,
            modified_at: Option<i64>,
            payload: &'a str,
            error: Option<String>,
            attempts: i32,
            next_retry_at: Option<i64>,
        }
        impl DocumentRow for Row<'_> {
            fn positional(&self) -> impl Serialize {
                (
                    self.remote_id,
                    self.digest,
                    self.state,
                    self.deleted,
                    self.modified_at,
                    self.payload,
                    &self.error,
                    self.attempts,
                    self.next_retry_at,
                )
            }
        }
        let rows = outcomes.iter().map(|o| {
            let (state, error, attempts, next_retry_at) = outcome_columns(o, now, &backoff);
            let size = 160
                + o.remote_id.len()
                + o.digest.len()
                + o.payload.len()
                + error.as_ref().map_or(0, String::len);
            let row = Row {
                remote_id: &o.remote_id,
                digest: &o.digest,
                state,
                deleted: o.deleted,
                modified_at: o.modified_at,
                payload: &o.payload,
                error,
                attempts,
                next_retry_at,
            };
            (row, size)
        });
        let chunks = json_chunks(backend, rows);
        let set = OUTCOME_COLUMNS
            .split(", ")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let select = match backend {
            DbBackend::Postgres =>                 "SELECT ?, v.remote_id, v.digest, v.state, v.deleted, v.modified_at, v.payload, \
                 v.error, v.attempts, v.next_retry_at, CAST(? AS bigint) FROM json_to_recordset(CAST(? AS json)) \
                 AS v(remote_id text, digest text, state text, deleted boolean, modified_at bigint, \
                 payload text, error text, attempts integer, next_retry_at bigint)"
                .to_owned(),
            _ => "SELECT ?, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                  value ->> 5, value ->> 6, value ->> 7, value ->> 8, ? \
                  FROM jsonb_each(?) WHERE true"
                .to_owned(),
        };
        let sql = format!(
            "INSERT INTO sync_inbound (source, remote_id, {OUTCOME_COLUMNS}) {select} \
             ON CONFLICT (source, remote_id) DO UPDATE SET {set}"
        );
        for rows in chunks {
            let document = json_document(backend, &rows)
                .map_err(|e| Error::permanent(format!("cannot encode the records applied: {e}")))?;
            execute(
                txn,
                &sql,
                vec![source_name.into(), now.into(), document.into()],
                || format!("recording the records source `{source_name}` applied"),
            )
            .await?;
        }
        return Ok(());
    }
    for chunk in outcomes.chunks(100) {
        let mut insert = Query::insert();
        insert.into_table(Inbound).columns([
            I::Source,
            I::RemoteId,
            I::Digest,
            I::State,
            I::Deleted,
            I::ModifiedAt,
            I::Payload,
            I::Error,
            I::Attempts,
            I::NextRetryAt,
            I::UpdatedAt,
        ]);
        for outcome in chunk {
            let (state, error, attempts, retry_at) = outcome_columns(outcome, now, &backoff);
            insert.values_panic([
                source_name.into(),
                outcome.remote_id.as_str().into(),
                outcome.digest.as_str().into(),
                state.into(),
                outcome.deleted.into(),
                outcome.modified_at.into(),
                Some(outcome.payload.as_str()).into(),
                error.into(),
                attempts.into(),
                retry_at.into(),
                now.into(),
            ]);
        }
        insert.on_conflict(
            OnConflict::columns([I::Source, I::RemoteId])
                .update_columns([
                    I::Digest,
                    I::State,
                    I::Deleted,
                    I::ModifiedAt,
                    I::Payload,
                    I::Error,
                    I::Attempts,
                    I::NextRetryAt,
                    I::UpdatedAt,
                ])
                .to_owned(),
        );
        txn.execute(&insert).await.map_err(Error::db_while(format!(
            "recording the records source `{source_name}` applied"
        )))?;
    }
    Ok(())
}

/// State, error, attempts and next retry of an outcome.
fn outcome_columns(
    outcome: &Outcome,
    now: i64,
    backoff: &crate::retry::ExponentialBackoff,
) -> (&'static str, Option<String>, i32, Option<i64>) {
    match &outcome.error {
        None => (APPLIED, None, 0, None),
        Some((message, attempts)) => (
            QUARANTINED,
            Some(message.clone()),
            *attempts,
            Some(now + backoff.delay(*attempts as u32).as_millis() as i64),
        ),
    }
}

async fn mark_seen(
    txn: &DatabaseTransaction,
    source: &str,
    run: i64,
    ids: &[String],
    insert: bool,
) -> Result<()> {
    if insert {
        // Digests in the application's table: a mark is a row of its own (state `seen`), or
        // the mark on a quarantined record's row.
        let ids: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let now = clock::now_ms();
        for chunk in ids.chunks(500) {
            let mut insert = Query::insert();
            insert.into_table(Inbound).columns([
                I::Source,
                I::RemoteId,
                I::Digest,
                I::State,
                I::Deleted,
                I::Attempts,
                I::SeenRun,
                I::UpdatedAt,
            ]);
            for id in chunk {
                insert.values_panic([
                    source.into(),
                    (*id).into(),
                    "".into(),
                    "seen".into(),
                    false.into(),
                    0_i32.into(),
                    run.into(),
                    now.into(),
                ]);
            }
            insert.on_conflict(
                OnConflict::columns([I::Source, I::RemoteId])
                    .update_column(I::SeenRun)
                    .to_owned(),
            );
            txn.execute(&insert).await.map_err(Error::db_while(format!(
                "marking the records a full run of source `{source}` listed"
            )))?;
        }
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        // Each id looked up on its own in the unique index, then the rows updated by their
        // primary key (see `load_known`): an `IN` list is planned as a scan of every record of
        // the source filtered against the list.
        return execute(
            txn,
            "UPDATE sync_inbound SET seen_run = ? WHERE id = ANY(ARRAY(\
             SELECT s.id FROM unnest(CAST(? AS text[])) AS ids(id) CROSS JOIN LATERAL \
             (SELECT id FROM sync_inbound WHERE source = ? AND remote_id = ids.id LIMIT 1) AS s))",
            vec![run.into(), pg_array(ids).into(), source.into()],
            || format!("marking the records a full run of source `{source}` listed"),
        )
        .await
        .map(drop);
    }
    for chunk in ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut values: Vec<sea_orm::Value> = vec![run.into(), source.into()];
        values.extend(chunk.iter().map(|id| id.as_str().into()));
        execute(
            txn,
            &format!(
                "UPDATE sync_inbound SET seen_run = ? WHERE source = ? AND remote_id IN ({marks})"
            ),
            values,
            || format!("marking the records a full run of source `{source}` listed"),
        )
        .await?;
    }
    Ok(())
}

/// What operators see of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// The source's name.
    pub source: String,
    /// The stored cursor, as JSON text.
    pub cursor: Option<String>,
    /// A full run is in progress (it resumes where it stopped) or requested.
    pub full_run: bool,
    /// The worker running it now, if any.
    pub running_on: Option<String>,
    /// When the next scheduled run is due (0: now).
    pub next_run_at: i64,
    /// When the last run ended.
    pub last_run_at: Option<i64>,
    /// When the last clean run ended: the lag is the time since.
    pub last_success_at: Option<i64>,
    /// The last run's error.
    pub last_error: Option<String>,
    /// The last run's counts: fetched, applied, skipped unchanged, quarantined, deleted.
    pub last_counts: [i64; 5],
    /// Records quarantined now.
    pub quarantined: i64,
}

/// Every source that has run or was asked to, by name, with its quarantined records counted.
pub async fn source_status(db: &DatabaseConnection) -> Result<Vec<SourceStatus>> {
    use sea_orm::{EntityTrait, QueryOrder};

    use crate::entity::sync_source;
    let rows = sync_source::Entity::find()
        .order_by_asc(sync_source::Column::Source)
        .all(db)
        .await
        .map_err(Error::db_while("reading sync_sources"))?;
    let backend = db.get_database_backend();
    let counts = db
        .query_all_raw(statement(
            backend,
            "SELECT source, COUNT(*) AS n FROM sync_inbound WHERE state = 'quarantined' \
             GROUP BY source",
            vec![],
        ))
        .await
        .map_err(Error::db_while("counting quarantined records"))?;
    let mut quarantined = HashMap::new();
    for row in counts {
        quarantined.insert(
            row.try_get::<String>("", "source")?,
            row.try_get::<i64>("", "n")?,
        );
    }
    let now = clock::now_ms();
    Ok(rows
        .into_iter()
        .map(|row| SourceStatus {
            quarantined: quarantined.get(&row.source).copied().unwrap_or(0),
            full_run: row.full_run.is_some() || row.full_requested,
            running_on: row
                .lease_owner
                .filter(|_| row.lease_until.is_some_and(|until| until > now)),
            cursor: row.next_cursor,
            next_run_at: row.next_run_at,
            last_run_at: row.last_run_at,
            last_success_at: row.last_success_at,
            last_error: row.last_error,
            last_counts: [
                row.last_fetched,
                row.last_applied,
                row.last_skipped,
                row.last_quarantined,
                row.last_deleted,
            ],
            source: row.source,
        })
        .collect())
}

/// The quarantined records (of one source, or all), oldest first, with payload and error.
pub async fn quarantined(
    db: &DatabaseConnection,
    source: Option<&str>,
    limit: u64,
) -> Result<Vec<crate::entity::sync_inbound::Model>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    // The state as a literal, not a parameter: the index of quarantined records is partial.
    let mut find = Inbound::find().filter(sea_orm::sea_query::Expr::cust(
        "sync_inbound.state = 'quarantined'",
    ));
    if let Some(source) = source {
        find = find.filter(I::Source.eq(source));
    }
    find.order_by_asc(I::UpdatedAt)
        .limit(limit)
        .all(db)
        .await
        .map_err(Error::db_while("reading quarantined records"))
}

/// What [`plan_source`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePlan {
    /// The source's name.
    pub source: String,
    /// Planned as a full run (from no cursor).
    pub full: bool,
    /// Records fetched.
    pub fetched: u64,
    /// What each fetched record would do.
    pub records: Vec<PlannedRecord>,
    /// With `full`, when the listing completed: the remote ids applied before that it no longer
    /// has, which a full run would delete.
    pub vanished: Vec<String>,
    /// The listing stopped at the record limit before its end (`vanished` is then empty).
    pub truncated: bool,
}

/// One record of a [`SourcePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRecord {
    /// The remote id.
    pub remote_id: String,
    /// `create` (never applied), `update`, `delete`, `revive` (quarantined now), `unchanged`
    /// or `stale` (older than the version applied).
    pub action: &'static str,
    /// The error its apply would end with (it would be quarantined).
    pub error: Option<String>,
}

/// A dry run of `source`: fetches from the stored cursor (or from none, `full`) up to
/// `max_records` records, and applies each record that would be applied inside a transaction
/// that is rolled back (one per page), so that the plan shows which applies would fail and
/// why. Nothing is written: not the records, not the cursor, not `sync_inbound`. Takes no lease.
pub async fn plan_source(
    db: &DatabaseConnection,
    source: &dyn Source,
    full: bool,
    max_records: usize,
) -> Result<SourcePlan> {
    let name = source.name();
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(statement(
            backend,
            "SELECT next_cursor, state FROM sync_sources WHERE source = ?",
            vec![name.into()],
        ))
        .await
        .map_err(Error::db_while(format!("reading source `{name}`")))?;
    let (mut cursor, state) = match row {
        Some(row) => (
            parse_json(name, "cursor", row.try_get("", "next_cursor")?)?,
            parse_json(name, "state", row.try_get("", "state")?)?,
        ),
        None => (None, None),
    };
    if full {
        cursor = None;
    }
    let state = state.unwrap_or_else(|| json!({}));
    let options = SourceRunOptions::new("plan");
    let run = Run {
        db,
        source,
        options: &options,
        name,
        full_run: None,
        started: clock::now_ms(),
        table: source.digest_column(),
        quarantined: AtomicBool::new(true),
    };
    run.check_quarantined().await?;
    let mut plan = SourcePlan {
        source: name.to_owned(),
        full,
        fetched: 0,
        records: Vec::new(),
        vanished: Vec::new(),
        truncated: false,
    };
    let mut listed = std::collections::HashSet::new();
    loop {
        let cx = FetchContext {
            source: name,
            state: &state,
            full,
        };
        let page = source.fetch(&cx, cursor.as_ref()).await?;
        plan.fetched += page.records.len() as u64;
        let txn = db
            .begin()
            .await
            .map_err(Error::db_while(format!("planning source `{name}`")))?;
        let known = run.known(&txn, &remote_ids(&page.records)).await?;
        for record in &page.records {
            let id = record.remote_id.as_str().to_owned();
            listed.insert(id.clone());
            let previous = known.get(&id);
            let modified_at = record.modified_at.map(|t| t.timestamp_millis());
            let action = match previous {
                Some(p) if p.digest == record_digest(name, record) => "unchanged",
                Some(p)
                    if p.state == APPLIED
                        && matches!((modified_at, p.modified_at), (Some(n), Some(o)) if n < o) =>
                {
                    "stale"
                }
                _ if record.deleted => "delete",
                Some(p) if p.state == QUARANTINED => "revive",
                Some(_) => "update",
                None => "create",
            };
            let error = if matches!(action, "unchanged" | "stale") {
                None
            } else {
                let base = previous
                    .filter(|p| p.state == APPLIED)
                    .and_then(|p| p.payload.as_ref())
                    .and_then(Base::value);
                let digest = record_digest(name, record);
                run.apply_one(&txn, record, base.as_deref(), &digest)
                    .await?
                    .err()
            };
            plan.records.push(PlannedRecord {
                remote_id: id,
                action,
                error,
            });
        }
        txn.rollback().await.map_err(Error::db_while(format!(
            "rolling back the plan of `{name}`"
        )))?;
        if page.cursor.is_some() {
            cursor = page.cursor;
        }
        if plan.records.len() >= max_records && page.more {
            plan.truncated = true;
            break;
        }
        if !page.more {
            break;
        }
    }
    if full && !plan.truncated {
        let (sql, values): (String, Vec<sea_orm::Value>) = match &run.table {
            None => (
                "SELECT remote_id FROM sync_inbound WHERE source = ? AND deleted = ? ORDER BY id"
                    .to_owned(),
                vec![name.into(), false.into()],
            ),
            Some(table) => {
                let (rid, dig) = (
                    quote(backend, &table.remote_id),
                    quote(backend, &table.digest),
                );
                let tombstone =
                    record_digest(name, &InboundRecord::tombstone(RemoteId::string("")));
                (
                    format!(
                        "SELECT {} AS remote_id FROM {} WHERE {dig} IS NOT NULL AND {dig} <> ? \
                         ORDER BY {rid}",
                        id_as_text(backend, &rid),
                        quote(backend, &table.table)
                    ),
                    vec![tombstone.into()],
                )
            }
        };
        let rows = db
            .query_all_raw(statement(backend, &sql, values))
            .await
            .map_err(Error::db_while(format!(
                "reading what source `{name}` applied"
            )))?;
        for row in rows {
            let id: String = row.try_get("", "remote_id")?;
            if !listed.contains(&id) {
                plan.vanished.push(id);
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ids_are_quoted_in_a_postgres_array() {
        let ids = ["7", "a,b", "say \"hi\"", "back\\slash", "{x}", ""].map(String::from);
        assert_eq!(
            pg_array(&ids),
            r#"{"7","a,b","say \"hi\"","back\\slash","{x}",""}"#
        );
        assert_eq!(pg_array(&[]), "{}");
    }
}
