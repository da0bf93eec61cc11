//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and `chromedriver`)
//! opens the page, signs in, clicks Retry on a dead group and sees its state change. Screenshots
//! are saved next to the test binary's temporary directory.
//!
//! Skipped when `chromedriver` is not installed, unless `SYNC_TEST_BROWSER=1` (as `.ci/run` sets,
//! after installing the packages), in which case a missing browser fails the test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{Backend, TestDb, fixtures};
use sync_worker::dashboard::{Auth, Dashboard};
use sync_worker::testing::{Fault, FaultKind, MockRemote};
use sync_worker::{Worker, WorkerSettings};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<&'static str> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[tokio::test]
async fn retry_a_dead_group_from_the_dashboard_in_chromium() {
    let Some(driver_path) = chromedriver() else {
        assert!(
            std::env::var_os("SYNC_TEST_BROWSER").is_none(),
            "SYNC_TEST_BROWSER is set but chromedriver is not installed"
        );
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };

    // A database with one dead group.
    let t = TestDb::new(Backend::Sqlite).await;
    let remote = MockRemote::start().await;
    remote.push_fault(
        Fault::new(FaultKind::Status(
            422,
            serde_json::json!({"error": "vat id rejected"}),
        ))
        .times(1),
    );
    let mut settings = WorkerSettings::default();
    settings.engine.max_attempts = 1;
    let worker = Worker::new(
        t.db.clone(),
        registry(&remote.url(), &Arc::new(Knobs::default())),
        settings,
    )
    .unwrap();
    let customer = fixtures::customer(&t.db, "Ada").await;
    worker.run_once().await.unwrap();
    let group = t.group("erp.customer", customer.id).await.unwrap();
    assert_eq!(group.state, "dead");

    // The dashboard, served on loopback.
    let app = axum::Router::new().nest(
        "/sync",
        Dashboard::new(t.db.clone(), "/sync", Auth::bearer("browser-token")).router(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // chromedriver on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both of rustls's crypto back-ends are in the dependency graph: pick one for the client.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let browser = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));

    // Not signed in: the dashboard sends the browser to the login form.
    browser.goto(&format!("{base}/sync")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/sync/login")
    );
    browser
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys("browser-token")
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The overview lists the dead group with its error.
    let row = browser
        .wait()
        .for_element(Locator::Id(&format!("group-{}", group.id)))
        .await
        .unwrap();
    let text = row.text().await.unwrap();
    assert!(
        text.contains("dead") && text.contains("vat id rejected"),
        "{text}"
    );
    std::fs::write(
        shots.join("dashboard-overview.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // Its page: state dead, history, Retry.
    row.find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = browser
        .wait()
        .for_element(Locator::Id("state"))
        .await
        .unwrap();
    assert_eq!(state.text().await.unwrap(), "dead");
    browser
        .find(Locator::XPath("//button[text()='Retry']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The Retry form reloads the page: an element found before the reload goes stale, and
        // the page may be between documents; look again until the deadline.
        let state = match browser.find(Locator::Id("state")).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if state == "pending" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the state did not change: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = shots.join("dashboard-retried.png");
    std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshots in {}", shots.display());
    assert_eq!(
        t.group("erp.customer", customer.id).await.unwrap().state,
        "pending"
    );
    browser.close().await.unwrap();
}
