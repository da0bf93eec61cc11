//! In-process wake-up: a worker running in the same process as the application waits here
//! instead of polling.
//!
//! Hooks call [`notify`] right after writing `sync_groups`, which is usually before the
//! application's transaction commits; a worker woken too early finds nothing (the row is locked
//! or not yet visible), so it looks again shortly after a wake-up before going back to sleep.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

static NOTIFY: LazyLock<Notify> = LazyLock::new(Notify::new);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Wakes workers waiting in this process.
pub fn notify() {
    GENERATION.fetch_add(1, Ordering::Release);
    NOTIFY.notify_waiters();
}

/// A counter that moves on every [`notify`]; compare two readings to learn whether anything was
/// touched in between.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Waits until the next [`notify`] after this call.
pub async fn notified() {
    NOTIFY.notified().await;
}
