//! Per-syncer limits shared by every worker process through the database: a rate (requests per
//! second with a burst), a cap on pushes in flight, and a pause when the remote says "slow down".
//!
//! The limits belong to the remote account, not to one process: the token bucket and the pause
//! live in `sync_syncers`, and pushes in flight are the syncer's leased groups, counted under a
//! lock on the syncer's row when claiming.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait, Value};

use crate::store::statement;
use crate::{Error, Result};

/// Limits of one syncer, declared by [`Syncer::limits`](crate::Syncer::limits).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Requests per second, all workers together. `None`: unlimited.
    pub per_second: Option<f64>,
    /// Requests that may be sent at once after a quiet period.
    pub burst: u32,
    /// Pushes in flight at once, all workers together. `None`: unlimited.
    pub max_in_flight: Option<u32>,
}

impl Limits {
    /// At most `per_second` requests per second, with bursts of `burst`.
    pub fn rate(per_second: f64, burst: u32) -> Self {
        Limits {
            per_second: Some(per_second),
            burst: burst.max(1),
            max_in_flight: None,
        }
    }

    /// No more than `n` pushes in flight at once (on top of any rate).
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = Some(n.max(1));
        self
    }

    /// No rate, only a cap on pushes in flight.
    pub fn in_flight(n: u32) -> Self {
        Limits {
            per_second: None,
            burst: 1,
            max_in_flight: Some(n.max(1)),
        }
    }

    /// Checks the numbers.
    pub fn validate(&self, syncer: &str) -> Result<()> {
        if let Some(rate) = self.per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(Error::Config(format!(
                "syncer `{syncer}`: the rate limit must be a positive number of requests per second, not {rate}"
            )));
        }
        Ok(())
    }
}

async fn ensure_row<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    tokens_milli: i64,
    now: i64,
) -> Result<()> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::MySql => {
            "INSERT IGNORE INTO sync_syncers (syncer, tokens_milli, refilled_at, paused_until) VALUES (?, ?, ?, 0)"
        }
        _ => {
            "INSERT INTO sync_syncers (syncer, tokens_milli, refilled_at, paused_until) VALUES (?, ?, ?, 0) ON CONFLICT (syncer) DO NOTHING"
        }
    };
    db.execute_raw(statement(
        backend,
        sql,
        vec![syncer.into(), tokens_milli.into(), now.into()],
    ))
    .await
    .map_err(Error::db_while(format!(
        "creating the limits of syncer `{syncer}`"
    )))?;
    Ok(())
}

/// Takes one request from the syncer's token bucket. `Ok(None)`: go ahead. `Ok(Some(wait))`:
/// no token (or the syncer is paused); try again after `wait`.
pub(crate) async fn acquire<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    limits: &Limits,
    now: i64,
) -> Result<Option<Duration>> {
    let backend = db.get_database_backend();
    let capacity = i64::from(limits.burst) * 1000;
    // Tokens are counted in thousandths; the rate in thousandths per millisecond is the rate
    // per second.
    let rate_milli = limits
        .per_second
        .map_or(i64::MAX / 4, |r| (r * 1000.0).round().max(1.0) as i64);
    let refilled = "CASE WHEN tokens_milli + (? - refilled_at) * ? / 1000 > ? THEN ? ELSE tokens_milli + (? - refilled_at) * ? / 1000 END";
    let sql = format!(
        "UPDATE sync_syncers SET tokens_milli = {refilled} - 1000, refilled_at = ? \
         WHERE syncer = ? AND paused_until <= ? AND {refilled} >= 1000"
    );
    let refill_values = |v: &mut Vec<Value>| {
        v.extend([
            now.into(),
            rate_milli.into(),
            capacity.into(),
            capacity.into(),
            now.into(),
            rate_milli.into(),
        ]);
    };
    let mut values = Vec::new();
    refill_values(&mut values);
    values.extend([now.into(), syncer.into(), now.into()]);
    refill_values(&mut values);
    let context = || format!("taking a request from the rate limit of syncer `{syncer}`");
    let done = db
        .execute_raw(statement(backend, &sql, values.clone()))
        .await
        .map_err(Error::db_while(context()))?;
    if done.rows_affected() == 1 {
        return Ok(None);
    }
    let row = db
        .query_one_raw(statement(
            backend,
            "SELECT tokens_milli, refilled_at, paused_until FROM sync_syncers WHERE syncer = ?",
            vec![syncer.into()],
        ))
        .await
        .map_err(Error::db_while(context()))?;
    let Some(row) = row else {
        ensure_row(db, syncer, capacity, now).await?;
        return Ok(Some(Duration::ZERO));
    };
    let tokens: i64 = row.try_get("", "tokens_milli")?;
    let refilled_at: i64 = row.try_get("", "refilled_at")?;
    let paused_until: i64 = row.try_get("", "paused_until")?;
    if paused_until > now {
        return Ok(Some(Duration::from_millis((paused_until - now) as u64)));
    }
    let current =
        (tokens + (now - refilled_at).max(0).saturating_mul(rate_milli) / 1000).min(capacity);
    let missing = (1000 - current).max(1);
    let wait_ms = (missing as f64 / rate_milli as f64).ceil() as u64;
    Ok(Some(Duration::from_millis(wait_ms.clamp(1, 1000))))
}

/// Pauses the syncer for every worker until `until` (a remote answered 429 with
/// `Retry-After`). A pause never shortens one already in place.
pub(crate) async fn pause<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    until: i64,
    reason: &str,
) -> Result<()> {
    let backend = db.get_database_backend();
    ensure_row(db, syncer, 0, until).await?;
    db.execute_raw(statement(
        backend,
        "UPDATE sync_syncers SET paused_until = ?, pause_reason = ? WHERE syncer = ? AND paused_until < ?",
        vec![until.into(), reason.into(), syncer.into(), until.into()],
    ))
    .await
    .map_err(Error::db_while(format!("pausing syncer `{syncer}`")))?;
    Ok(())
}

/// Syncers paused at `now`, with the end of their pause.
pub(crate) async fn paused<C: ConnectionTrait>(db: &C, now: i64) -> Result<Vec<(String, i64)>> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(statement(
            backend,
            "SELECT syncer, paused_until FROM sync_syncers WHERE paused_until > ?",
            vec![now.into()],
        ))
        .await
        .map_err(Error::db_while("reading paused syncers"))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String>("", "syncer")?,
                r.try_get::<i64>("", "paused_until")?,
            ))
        })
        .collect()
}

/// How many more groups of `syncer` may be claimed now without exceeding `max_in_flight`
/// pushes in flight across all workers; runs `claim` with that number while holding the
/// syncer's row lock, so concurrent claimers cannot both take the last slots.
pub(crate) async fn claim_within<C, F, T>(
    db: &C,
    syncer: &str,
    max_in_flight: u32,
    now: i64,
    claim: F,
) -> Result<Vec<T>>
where
    C: ConnectionTrait + TransactionTrait,
    F: AsyncFnOnce(&C::Transaction, u32) -> Result<Vec<T>>,
{
    let backend = db.get_database_backend();
    ensure_row(db, syncer, 0, now).await?;
    let context = || format!("claiming within the in-flight limit of syncer `{syncer}`");
    let txn = match backend {
        DbBackend::Sqlite => {
            db.begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
        _ => db.begin().await,
    }
    .map_err(Error::db_while(context()))?;
    let lock = match backend {
        DbBackend::Sqlite => "SELECT syncer FROM sync_syncers WHERE syncer = ?",
        _ => "SELECT syncer FROM sync_syncers WHERE syncer = ? FOR UPDATE",
    };
    txn.query_one_raw(statement(backend, lock, vec![syncer.into()]))
        .await
        .map_err(Error::db_while(context()))?;
    let row = txn
        .query_one_raw(statement(
            backend,
            "SELECT COUNT(*) AS n FROM sync_groups WHERE syncer = ? AND lease_owner IS NOT NULL AND lease_until >= ?",
            vec![syncer.into(), now.into()],
        ))
        .await
        .map_err(Error::db_while(context()))?;
    let in_flight: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
    let free = i64::from(max_in_flight) - in_flight;
    let claimed = if free > 0 {
        claim(&txn, free as u32).await?
    } else {
        Vec::new()
    };
    sea_orm::TransactionSession::commit(txn)
        .await
        .map_err(Error::db_while(context()))?;
    Ok(claimed)
}

/// Records the health of `syncer` after a run: `clean` (no failure), and whether it pushed or
/// skipped anything. Returns `true` when this call changed the syncer between healthy and
/// failing — exactly one caller (across all workers) sees each change, so exactly one alert is
/// sent per change.
pub async fn record_health<C: ConnectionTrait>(
    db: &C,
    syncer: &str,
    clean: bool,
    succeeded: bool,
    now: i64,
) -> Result<bool> {
    let backend = db.get_database_backend();
    ensure_row(db, syncer, 0, now).await?;
    let context = || Error::db_while(format!("recording the health of syncer `{syncer}`"));
    if clean && succeeded {
        db.execute_raw(statement(
            backend,
            "UPDATE sync_syncers SET last_success_at = ? WHERE syncer = ?",
            vec![now.into(), syncer.into()],
        ))
        .await
        .map_err(context())?;
    }
    let changed = db
        .execute_raw(statement(
            backend,
            "UPDATE sync_syncers SET healthy = ?, health_changed_at = ? WHERE syncer = ? AND healthy = ?",
            vec![clean.into(), now.into(), syncer.into(), (!clean).into()],
        ))
        .await
        .map_err(context())?;
    Ok(changed.rows_affected() == 1)
}
