//! The framework adds no deadlocks to the application's own transactions: many concurrent
//! writers moving, deleting, archiving and editing roots and dependents (with real foreign keys)
//! while workers claim, complete and fail the same groups. Every application transaction either
//! commits or fails for a reason of its own (a row another writer deleted); none is aborted as a
//! deadlock victim or by a lock wait timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, ModelTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use sync_core::retry::RetryPolicy;
use sync_core::{Engine, EngineConfig};
use sync_tests::cluster::{differences, wait_until_synced};
use sync_tests::models::{address, customer, line_item, order};
use sync_tests::syncers::{Knobs, registry};
use sync_tests::{Backend, fixtures, on_each_backend};
use sync_worker::testing::{Fault, FaultKind, MockRemote};
use sync_worker::{Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

/// Retries failed groups at once, so that the workers write failures as often as they can.
#[derive(Debug)]
struct Quickly;

impl RetryPolicy for Quickly {
    fn delay(&self, _attempts: u32) -> Duration {
        Duration::from_millis(5)
    }
}

/// What the application's transactions came to.
#[derive(Debug, Default)]
struct Tally {
    committed: AtomicUsize,
    /// Lost a race of the application's own making (a row deleted meanwhile, a foreign key).
    refused: AtomicUsize,
    refusals: Mutex<Vec<String>>,
    deadlocks: Mutex<Vec<String>>,
    lock_timeouts: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, result: Result<(), DbErr>) {
        let Err(error) = result else {
            self.committed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let text = error.to_string();
        let lower = text.to_lowercase();
        if lower.contains("deadlock") {
            self.deadlocks.lock().unwrap().push(text);
        } else if lower.contains("lock wait timeout") || lower.contains("lock timeout") {
            self.lock_timeouts.lock().unwrap().push(text);
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let mut refusals = self.refusals.lock().unwrap();
            if refusals.len() < 3 {
                refusals.push(text);
            }
        }
    }
}

/// The rows the writers pick from.
struct Population {
    customers: Vec<i32>,
    orders: Mutex<Vec<i32>>,
}

async fn pick_order(
    db: &impl ConnectionTrait,
    pop: &Population,
    rng: &mut StdRng,
) -> Option<order::Model> {
    let id = {
        let orders = pop.orders.lock().unwrap();
        orders[rng.random_range(0..orders.len())]
    };
    order::Entity::find_by_id(id).one(db).await.ok().flatten()
}

async fn new_order(
    db: &impl ConnectionTrait,
    customer_id: i32,
    n: usize,
) -> Result<order::Model, DbErr> {
    let o = order::ActiveModel {
        customer_id: Set(customer_id),
        reference: Set(format!("R-{n}")),
        status: Set("open".into()),
        internal_note: Set(String::new()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for sku in ["A", "B"] {
        line_item::ActiveModel {
            order_id: Set(o.id),
            sku: Set(sku.into()),
            quantity: Set(1),
            price_cents: Set(100),
            comment: Set(String::new()),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(o)
}

/// One application transaction of a random kind.
async fn app_transaction(
    db: &DatabaseConnection,
    pop: &Population,
    rng: &mut StdRng,
    n: usize,
) -> Result<(), DbErr> {
    let customer = pop.customers[rng.random_range(0..pop.customers.len())];
    let other = pop.customers[rng.random_range(0..pop.customers.len())];
    let txn = sync_core::begin_write(db).await.map_err(DbErr::from)?;
    match rng.random_range(0..100) {
        // Move an address to another customer (the new customer's row is key-share locked by
        // the foreign key check).
        0..20 => {
            if let Some(a) = address::Entity::find()
                .filter(address::Column::CustomerId.eq(customer))
                .one(&txn)
                .await?
            {
                let mut am = a.into_active_model();
                am.customer_id = Set(other);
                am.update(&txn).await?;
            }
        }
        // Delete an order: its line items first, then the order; a new one replaces it.
        20..35 => {
            if let Some(o) = pick_order(&txn, pop, rng).await {
                for item in o.find_related_items(&txn).await? {
                    item.delete(&txn).await?;
                }
                let gone = o.id;
                o.delete(&txn).await?;
                let replacement = new_order(&txn, customer, n).await?;
                txn.commit().await?;
                let mut orders = pop.orders.lock().unwrap();
                orders.retain(|id| *id != gone);
                orders.push(replacement.id);
                return Ok(());
            }
        }
        // Give an order to another customer.
        35..50 => {
            if let Some(o) = pick_order(&txn, pop, rng).await {
                let mut am = o.into_active_model();
                am.customer_id = Set(other);
                am.update(&txn).await?;
            }
        }
        // Archive or restore a customer (its `erp.customer` group is marked deleted or revived).
        50..60 => {
            if let Some(c) = customer::Entity::find_by_id(customer).one(&txn).await? {
                let archived = c.deleted_at.is_some();
                let mut am = c.into_active_model();
                am.deleted_at = Set(if archived { None } else { Some(n as i64) });
                am.update(&txn).await?;
            }
        }
        // Rename a customer.
        60..72 => {
            if let Some(c) = customer::Entity::find_by_id(customer).one(&txn).await? {
                let mut am = c.into_active_model();
                am.name = Set(format!("Customer v{n}"));
                am.update(&txn).await?;
            }
        }
        // Edit an address.
        72..84 => {
            if let Some(a) = address::Entity::find()
                .filter(address::Column::CustomerId.eq(customer))
                .one(&txn)
                .await?
            {
                let mut am = a.into_active_model();
                am.city = Set(format!("Town {n}"));
                am.update(&txn).await?;
            }
        }
        // Edit a line item, then its order.
        84..94 => {
            if let Some(o) = pick_order(&txn, pop, rng).await {
                if let Some(item) = o.find_related_items(&txn).await?.into_iter().next() {
                    let mut am = item.into_active_model();
                    am.quantity = Set(rng.random_range(1..10));
                    am.update(&txn).await?;
                }
                let mut am = o.into_active_model();
                am.status = Set(format!("s{n}"));
                am.update(&txn).await?;
            }
        }
        // Add a line item and an address: the order's row first, then the customer's, the
        // order every transaction here takes its locks in (line items, orders, addresses,
        // customers). On MariaDB a foreign key check share-locks the parent row, and a queued
        // exclusive lock (an archive) makes later share locks wait behind it: an application
        // that took a customer before an order here and an order before a customer elsewhere
        // would deadlock on its own, with or without the framework.
        _ => {
            if let Some(o) = pick_order(&txn, pop, rng).await {
                line_item::ActiveModel {
                    order_id: Set(o.id),
                    sku: Set(format!("N{n}")),
                    quantity: Set(1),
                    price_cents: Set(5),
                    comment: Set(String::new()),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
            }
            address::ActiveModel {
                customer_id: Set(customer),
                street: Set("2 Side St".into()),
                city: Set(format!("New {n}")),
                label: Set("work".into()),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
    }
    txn.commit().await
}

trait OrderItems {
    async fn find_related_items(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<Vec<line_item::Model>, DbErr>;
}

impl OrderItems for order::Model {
    async fn find_related_items(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<Vec<line_item::Model>, DbErr> {
        // In id order, the order every transaction here locks line items in: without it, two
        // transactions deleting one order's items could get them in two orders (an update moves
        // a row within the table) and deadlock on their own, with or without the framework.
        line_item::Entity::find()
            .filter(line_item::Column::OrderId.eq(self.id))
            .order_by_asc(line_item::Column::Id)
            .all(db)
            .await
    }
}

/// Real foreign keys, as an application's schema has them: their checks lock the parent rows.
async fn add_foreign_keys(db: &DatabaseConnection, backend: Backend) {
    if backend == Backend::Sqlite {
        return;
    }
    for sql in [
        "ALTER TABLE addresses ADD CONSTRAINT fk_addresses_customer FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "ALTER TABLE line_items ADD CONSTRAINT fk_line_items_order FOREIGN KEY (order_id) REFERENCES orders (id)",
    ] {
        db.execute_unprepared(sql).await.expect("add a foreign key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn application_transactions_never_deadlock_with_hooks_or_workers() {
    on_each_backend(|t| async move {
        let (writers, per_writer) = match t.backend {
            Backend::Sqlite => (4, 150),
            _ => (8, 400),
        };
        add_foreign_keys(&t.db, t.backend).await;
        let remote = MockRemote::start().await;
        // ERP customers fail for most of the run: the workers record failures of the very
        // groups the writers touch, while contacts and sales orders complete.
        remote.push_fault(
            Fault::new(FaultKind::Status(503, serde_json::json!({"error": "busy"})))
                .path_contains("/erp/customers")
                .times(2_000),
        );
        let mut customers = Vec::new();
        let mut orders = Vec::new();
        for i in 0..8 {
            let c = fixtures::customer(&t.db, &format!("Customer {i}")).await;
            sync_core::sync_as(&t.db, "crm.contact", &c).await.unwrap();
            fixtures::address(&t.db, c.id, "Start").await;
            fixtures::address(&t.db, c.id, "Second").await;
            customers.push(c.id);
        }
        for i in 0..12 {
            orders.push(new_order(&t.db, customers[i % customers.len()], i).await.unwrap().id);
        }
        let pop = Arc::new(Population {
            customers,
            orders: Mutex::new(orders),
        });

        let knobs = Arc::new(Knobs::default());
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        for w in 0..2 {
            let mut config = EngineConfig::default();
            config.worker_id = format!("w{w}");
            config.concurrency = 4;
            config.batch_size = 8;
            let engine = Engine::new(t.db.clone(), registry(&remote.url(), &knobs), config)
                .unwrap()
                .with_retry_policy(Quickly);
            let mut settings = WorkerSettings::default();
            settings.poll_interval = Duration::from_millis(10);
            settings.wake_delay = Duration::from_millis(1);
            let worker = Worker::from_engine(engine, settings);
            workers.push(tokio::spawn(worker.run_until(stop.clone().cancelled_owned())));
        }

        let tally = Arc::new(Tally::default());
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (db, pop, tally) = (t.db.clone(), pop.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                for i in 0..per_writer {
                    let result = app_transaction(&db, &pop, &mut rng, w * 100_000 + i).await;
                    tally.count(result);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let committed = tally.committed.load(Ordering::Relaxed);
        let refused = tally.refused.load(Ordering::Relaxed);
        let deadlocks = tally.deadlocks.lock().unwrap().clone();
        let timeouts = tally.lock_timeouts.lock().unwrap().clone();
        eprintln!(
            "{committed} committed, {refused} refused by the application's own constraints, {} deadlocks, {} lock timeouts; refusals such as {:?}",
            deadlocks.len(),
            timeouts.len(),
            tally.refusals.lock().unwrap()
        );
        assert!(
            deadlocks.is_empty(),
            "{} of {} application transactions were deadlock victims, e.g. {}",
            deadlocks.len(),
            writers * per_writer,
            deadlocks[0]
        );
        assert!(timeouts.is_empty(), "lock wait timeouts: {timeouts:?}");
        assert!(committed > writers * per_writer * 8 / 10, "most transactions commit");

        // The faults end and archived customers come back (their orders wait for their ERP
        // ids); everything converges to the final local state.
        remote.clear_faults();
        for c in customer::Entity::find().all(&t.db).await.unwrap() {
            if c.deleted_at.is_some() {
                let mut am = c.into_active_model();
                am.deleted_at = Set(None);
                am.update(&t.db).await.unwrap();
            }
        }
        sync_core::ops::retry(&t.db, &sync_core::ops::RetryScope::Syncer("erp.customer".into()), sync_core::now_ms())
            .await
            .unwrap();
        wait_until_synced(&t.db, Duration::from_secs(60)).await;
        stop.cancel();
        for w in workers {
            w.await.unwrap().unwrap();
        }
        let problems = differences(&t.db, &registry(&remote.url(), &knobs), &remote).await;
        assert!(problems.is_empty(), "remote differs from local: {problems:#?}");
    })
    .await;
}

/// Two transactions updating two rows in opposite orders: one is the database's deadlock
/// victim. `write_transaction` runs the victim again.
async fn opposite_orders(
    db: &DatabaseConnection,
    a: i32,
    b: i32,
    attempts: u32,
) -> Vec<Result<(), DbErr>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for (first, second) in [(a, b), (b, a)] {
        let (db, barrier) = (db.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let tries = Arc::new(AtomicUsize::new(0));
            sync_core::write_transaction(&db, attempts, move |txn| {
                let (barrier, tries) = (barrier.clone(), tries.clone());
                Box::pin(async move {
                    let update =
                        |id: i32| format!("UPDATE customers SET notes = 'n' WHERE id = {id}");
                    txn.execute_unprepared(&update(first)).await?;
                    if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Both hold their first row before either asks for its second.
                        barrier.wait().await;
                    }
                    txn.execute_unprepared(&update(second)).await?;
                    Ok(())
                })
            })
            .await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_transaction_runs_a_deadlock_victim_again() {
    // SQLite runs one write transaction at a time: no deadlock to make.
    for backend in sync_tests::backends()
        .into_iter()
        .filter(|b| *b != Backend::Sqlite)
    {
        let t = sync_tests::TestDb::new(backend).await;
        let a = fixtures::customer(&t.db, "A").await.id;
        let b = fixtures::customer(&t.db, "B").await.id;

        let once = opposite_orders(&t.db, a, b, 1).await;
        let victims: Vec<&DbErr> = once.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(
            victims.len(),
            1,
            "{backend:?}: one deadlock victim: {once:?}"
        );
        assert!(
            sync_core::is_transient_conflict(victims[0]),
            "{:?}",
            victims[0]
        );

        let again = opposite_orders(&t.db, a, b, 3).await;
        assert!(
            again.iter().all(Result::is_ok),
            "{backend:?}: the victim ran again: {again:?}"
        );
        t.cleanup_handle().run().await;
    }
}

/// On PostgreSQL, an update of an order does not wait for an open transaction that added a line
/// item to it: that insert's foreign-key check holds `FOR KEY SHARE` on the order, which the
/// `UPDATE`'s own `FOR NO KEY UPDATE` does not conflict with, and the hooks lock the row as the
/// update does. (A hook locking `FOR UPDATE` made the update wait for that transaction, and
/// deadlock when it went on to wait for the updater.) Both kinds of update hook: the one
/// statement that touches a root whose watched column changed, and the read of the old row when
/// an order moves to another customer.
#[tokio::test]
async fn an_update_does_not_wait_for_a_transaction_referencing_the_row() {
    on_each_backend(|t| async move {
        if t.backend != Backend::Postgres {
            return;
        }
        add_foreign_keys(&t.db, t.backend).await;
        let ada = fixtures::customer(&t.db, "Ada").await;
        let bob = fixtures::customer(&t.db, "Bob").await;
        let o = fixtures::order(&t.db, ada.id, "R-1").await;
        sync_core::apply_touches(&t.db).await.unwrap();
        let before = t.group("erp.sales_order", o.id).await.unwrap().version;

        let referencing = t.db.begin().await.unwrap();
        fixtures::line_item(&referencing, o.id, "A").await;

        let mut am = o.clone().into_active_model();
        am.status = Set("paid".into());
        let status = tokio::time::timeout(Duration::from_secs(10), am.update(&t.db)).await;
        assert!(
            matches!(status, Ok(Ok(_))),
            "the status update waited for the transaction referencing the order: {status:?}"
        );
        let mut am = order::Entity::find_by_id(o.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap()
            .into_active_model();
        am.customer_id = Set(bob.id);
        let moved = tokio::time::timeout(Duration::from_secs(10), am.update(&t.db)).await;
        assert!(
            matches!(moved, Ok(Ok(_))),
            "the move waited for the transaction referencing the order: {moved:?}"
        );
        referencing.commit().await.unwrap();

        // The hooks still touched what the writes changed: the line item, the status, the
        // customer.
        assert_eq!(
            t.group("erp.sales_order", o.id).await.unwrap().version,
            before + 3
        );
    })
    .await;
}
