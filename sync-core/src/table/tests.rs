use sea_orm::DatabaseConnection;

use super::*;

fn builder() -> TableSinkBuilder {
    TableSink::builder(DatabaseConnection::default(), "reporting.customers")
}

fn error(builder: TableSinkBuilder) -> String {
    match builder.build() {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn a_valid_mapping_builds() {
    let sink = builder()
        .key("customer_id")
        .column("customer_id", "/id")
        .columns(["name", "email"])
        .column("city", "/address/city")
        .column_as("tags", "tags", ColumnType::Json)
        .soft_delete("is_deleted")
        .batch_size(200)
        .build()
        .unwrap();
    assert_eq!(sink.table(), "reporting.customers");
    assert_eq!(sink.batch_size(), 200);
    assert_eq!(sink.inner.schema.as_deref(), Some("reporting"));
    assert_eq!(sink.inner.name, "customers");
    let pointers: Vec<&str> = sink
        .inner
        .columns
        .iter()
        .map(|c| c.pointer.as_str())
        .collect();
    assert_eq!(
        pointers,
        ["/id", "/name", "/email", "/address/city", "/tags"]
    );
    let shown = format!("{sink:?}");
    assert!(shown.contains("city <- /address/city"), "{shown}");
}

#[test]
fn misconfigurations_fail_at_build_with_what_to_fix() {
    let e = error(builder().column("name", "name"));
    assert!(e.contains("`reporting.customers`: no key column"), "{e}");

    let e = error(builder().key("id").column("name", "name"));
    assert!(e.contains("key column `id` is not mapped"), "{e}");

    let e = error(
        builder()
            .key("id")
            .column("id", "/id")
            .column("name", "/name")
            .column("name", "/full_name"),
    );
    assert!(e.contains("column `name` is mapped twice"), "{e}");

    let e = error(builder().key("id").key("id").column("id", "id"));
    assert!(e.contains("key column `id` is given twice"), "{e}");

    let e = error(
        builder()
            .key("id")
            .column("id", "id")
            .column("is_deleted", "deleted")
            .soft_delete("is_deleted"),
    );
    assert!(
        e.contains("soft-delete column `is_deleted` is also mapped"),
        "{e}"
    );

    let e = error(builder().key("id").column("id", "id").batch_size(0));
    assert!(e.contains("batch size is 0"), "{e}");

    let e = error(builder().key("id").column("id", "/a~2"));
    assert!(e.contains("`~` not followed by"), "{e}");

    let e = error(
        builder()
            .key("id")
            .column("id", "id")
            .column_as("address", "/address", ColumnType::Json)
            .column("city", "/address/city"),
    );
    assert!(e.contains("inside `/address`"), "{e}");

    let e = error(
        builder()
            .key("doc")
            .column_as("doc", "doc", ColumnType::Json),
    );
    assert!(e.contains("a key must be a scalar"), "{e}");

    let e = error(
        TableSink::builder(DatabaseConnection::default(), "a.b.c")
            .key("id")
            .column("id", "id"),
    );
    assert!(e.contains("at most one `.`"), "{e}");

    let e = error(TableSink::builder(DatabaseConnection::default(), " ").key("id"));
    assert!(e.contains("table name is empty"), "{e}");
}

#[tokio::test]
async fn a_disconnected_database_is_a_configuration_error() {
    let sink = builder().key("id").column("id", "id").build().unwrap();
    let error = sink.check().await.unwrap_err();
    assert!(
        matches!(&error, Error::Config(m) if m.contains("not connected")),
        "{error}"
    );
    let results = sink
        .push_many(&[BulkItem {
            remote_id: None,
            idempotency_key: String::new(),
            payload: serde_json::json!({"id": 1}),
        }])
        .await;
    assert!(matches!(results.as_slice(), [Err(Error::Config(_))]));
}
