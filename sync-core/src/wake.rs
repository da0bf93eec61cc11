//! In-process wake-up: a worker running in the same process as the application waits here
//! instead of polling.
//!
//! Hooks call [`notify`] right after writing `sync_groups`, which is usually before the
//! application's transaction commits; a worker woken too early finds nothing (the row is locked
//! or not yet visible), so it looks again shortly after a wake-up before going back to sleep.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use std::pin::Pin;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

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
    notified_future().await;
}

/// A future that completes at the next [`notify`] after this call. It is registered at once,
/// not when first polled, so no notification between this call and the first poll is missed.
pub fn notified_future() -> Pin<Box<Notified<'static>>> {
    let mut future = Box::pin(NOTIFY.notified());
    future.as_mut().enable();
    future
}

static SOURCES: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Wakes the inbound sources' loops waiting in this process: a source was asked to run now
/// (Run now, a full run, a webhook).
pub fn notify_sources() {
    SOURCES.notify_waiters();
}

/// A future that completes at the next [`notify_sources`] after this call (registered at once,
/// as [`notified_future`]'s is).
pub fn sources_notified_future() -> Pin<Box<Notified<'static>>> {
    let mut future = Box::pin(SOURCES.notified());
    future.as_mut().enable();
    future
}
