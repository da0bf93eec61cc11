//! The whole demo, as `example-app demo` runs it: on SQLite always, and on PostgreSQL and
//! MariaDB/MySQL when `SYNC_TEST_POSTGRES_URL` and `SYNC_TEST_MYSQL_URL` are set.

use sea_orm::{ConnectionTrait, Database};

use example_app::DemoReport;

fn assert_passed(report: &DemoReport) {
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.steps.len(), 18, "{report:#?}");
    assert!(report.mismatches.is_empty());
    // At least one by digest (a second address in a known city, checked by its step) and one
    // echo (the CRM's own edit, whose step checks that the CRM got nothing). More are harmless
    // and depend on timing: a group touched while its push is in flight is claimed again, and
    // when that push already carried the latest data the new claim finds the remote holding it.
    assert!(report.skipped_by_digest >= 2, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_on_sqlite() {
    let report = example_app::demo(None)
        .await
        .expect("the demo runs to the end");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_on_postgres_when_configured() {
    let Some(server) = configured("SYNC_TEST_POSTGRES_URL") else {
        return;
    };
    let admin = Database::connect(&server)
        .await
        .expect("SYNC_TEST_POSTGRES_URL is reachable");
    let schema = format!("example_demo_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-csearch_path%3D{schema}");
    let report = example_app::demo(Some(&url)).await;
    admin
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    assert_passed(&report.expect("the demo runs to the end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_on_mysql_when_configured() {
    let Some(server) = configured("SYNC_TEST_MYSQL_URL") else {
        return;
    };
    let admin = Database::connect(&server)
        .await
        .expect("SYNC_TEST_MYSQL_URL is reachable");
    let database = format!("example_demo_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE `{database}`"))
        .await
        .unwrap();
    let report = example_app::demo(Some(&with_database(&server, &database))).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();
    assert_passed(&report.expect("the demo runs to the end"));
}

fn configured(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|url| !url.is_empty())
}

/// `mysql://user@host:3306/test?x=y` with `database` instead of `test`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("://"))
        .unwrap_or((base, ""));
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}
