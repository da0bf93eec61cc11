//! PostgreSQL wake-ups: `LISTEN sync_groups`, fed by the trigger the migrations install, so idle
//! workers in other processes wake when a touching transaction commits, and `LISTEN
//! sync_sources`, sent when a source is asked to run (Run now, a full run, a webhook), so that
//! the source runs at once whichever process took the request. When the listening connection
//! drops, workers fall back to polling until it is back.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::task::JoinHandle;

/// Starts the listener on PostgreSQL; `None` on other backends. Abort the handle to stop it.
pub(crate) fn spawn(db: &DatabaseConnection) -> Option<JoinHandle<()>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return None;
    }
    let pool = db.get_postgres_connection_pool().clone();
    Some(tokio::spawn(async move {
        let mut delay = RECONNECT_FIRST;
        loop {
            match listen(&pool).await {
                Ok(()) => {
                    tracing::warn!(
                        "the LISTEN connection was lost; reconnecting, polling meanwhile"
                    );
                    delay = RECONNECT_FIRST;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, "LISTEN sync_groups failed; polling meanwhile");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }))
}

/// The wait before listening again after the connection was lost; doubled (up to 10 s) while
/// it cannot be opened again.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);

/// Listens until the connection is lost (`Ok`) or cannot be opened (`Err`). The listener does
/// not reconnect by itself: sqlx 0.9.1's listener retries a refused connection at once, in a
/// loop that takes a whole core while the database is down; the caller waits between attempts.
async fn listen(pool: &PgPool) -> Result<(), sea_orm::sqlx::Error> {
    let schema: String = sea_orm::sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pool)
        .await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen_all(["sync_groups", "sync_sources"]).await?;
    tracing::debug!(%schema, "listening for touches");
    // Anything touched, or any source asked to run, while we were not listening is due now.
    sync_core::wake::notify();
    sync_core::wake::notify_sources();
    loop {
        match listener.try_recv().await? {
            Some(notification) if notification.payload() == schema => {
                if notification.channel() == "sync_sources" {
                    sync_core::wake::notify_sources();
                } else {
                    sync_core::wake::notify();
                }
            }
            Some(_) => {}
            None => {
                // Whatever was touched meanwhile is found by polling until the next listen,
                // which wakes the workers again.
                sync_core::wake::notify();
                sync_core::wake::notify_sources();
                return Ok(());
            }
        }
    }
}
