//! A worker binary for the multi-process tests: the test syncers, pushing to
//! `TEST_REMOTE_URL`. Settings come from the usual flags and environment (`--help`).
//! `TEST_REGISTER_TWICE=1` registers a syncer twice, to test that startup refuses it.

use std::process::ExitCode;
use std::sync::Arc;

use sync_core::{Error, Limits, Syncer, TranslateContext, async_trait};

/// A syncer under another name.
struct Renamed {
    name: String,
    syncer: Arc<dyn Syncer>,
}

#[async_trait]
impl Syncer for Renamed {
    fn name(&self) -> &str {
        &self.name
    }

    async fn translate(
        &self,
        cx: &TranslateContext<'_>,
    ) -> sync_core::Result<Option<serde_json::Value>> {
        self.syncer.translate(cx).await
    }
}
use sync_tests::syncers::{Knobs, try_registry};

/// `TEST_SOURCES=1`: the worker also runs `erp.products`, pulling the test remote's
/// json-server style `/products` listing, 10 records a page.
fn sources() -> sync_core::Result<sync_core::source::Sources> {
    let mut sources = sync_core::source::Sources::new();
    if std::env::var_os("TEST_SOURCES").is_some() {
        let url = std::env::var("TEST_REMOTE_URL").unwrap_or_default();
        let knobs = Arc::new(sync_tests::sources::ApplyKnobs::default());
        sources.register(sync_tests::sources::ErpProducts::new(
            sync_tests::sources::json_server_feed_at(&url, 10),
            &knobs,
        ))?;
    }
    Ok(sources)
}

#[tokio::main]
async fn main() -> ExitCode {
    sync_worker::cli::main_with(
        |_settings| {
            let url = std::env::var("TEST_REMOTE_URL").map_err(|_| {
                Error::Config(
                    "`TEST_REMOTE_URL` is not set; it holds the base URL of the test remote".into(),
                )
            })?;
            let knobs = Arc::new(Knobs::default());
            // `TEST_ERP_CUSTOMER_LIMITS=rate/burst/in_flight`, e.g. `40/4/0` (0: no cap).
            if let Ok(spec) = std::env::var("TEST_ERP_CUSTOMER_LIMITS") {
                let parts: Vec<f64> = spec.split('/').map(|p| p.parse().unwrap_or(0.0)).collect();
                let (rate, burst, in_flight) = (parts[0], parts[1] as u32, parts[2] as u32);
                let mut limits = if rate > 0.0 {
                    Limits::rate(rate, burst)
                } else {
                    Limits::in_flight(in_flight)
                };
                if in_flight > 0 {
                    limits = limits.max_in_flight(in_flight);
                }
                *knobs.erp_customer_limits.lock().expect("knobs") = Some(limits);
            }
            // `TEST_ERP_CUSTOMER_CREATE_ONLY=1`: `erp.customer` is a one-time sync.
            if std::env::var_os("TEST_ERP_CUSTOMER_CREATE_ONLY").is_some() {
                knobs
                    .erp_customer_create_only
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            // `TEST_LIST_PAGE_SIZE=n`: the remotes list their collections, n records a page.
            if let Ok(size) = std::env::var("TEST_LIST_PAGE_SIZE") {
                *knobs.list_page_size.lock().expect("knobs") = size.parse().ok();
            }
            let mut registry = try_registry(&url, &knobs)?;
            // `TEST_RENAME_ERP_CUSTOMER=name` registers `erp.customer` under another name, to test
            // that startup refuses a syncer no model declares.
            if let Ok(name) = std::env::var("TEST_RENAME_ERP_CUSTOMER") {
                let syncer = registry.get("erp.customer").expect("registered").clone();
                let mut renamed = sync_core::Registry::new();
                renamed.register(Renamed { name, syncer })?;
                for other in registry.names() {
                    if other != "erp.customer" {
                        renamed.register_arc(registry.get(&other).expect("registered").clone())?;
                    }
                }
                registry = renamed;
            }
            if std::env::var_os("TEST_REGISTER_TWICE").is_some() {
                let again = registry.get("erp.customer").expect("registered").clone();
                registry.register_arc(again)?;
            }
            Ok(registry)
        },
        |_settings| sources(),
    )
    .await
}
