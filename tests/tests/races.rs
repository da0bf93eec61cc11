//! Two transactions writing one row at once: the hook of the one that commits last must judge
//! "changed?" and "which root?" against the row as the other left it, not as it was before.
//!
//! Each test holds transaction B open on a row while transaction A writes the same row, checks
//! that A is blocked, then commits B and lets A finish. A worker may push between B's commit and
//! A's, so whatever A changes relative to B's state must leave a touch after B's version.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, ModelTrait, TransactionTrait,
};
use sync_tests::models::{address, customer, line_item, order};
use sync_tests::stepping::{Harness, harness};
use sync_tests::{Backend, TestDb, fixtures, on_each_backend};

async fn version_in<C: ConnectionTrait>(db: &C, syncer: &str, key: i32) -> i64 {
    sync_tests::version_seen_by(db, syncer, key).await
}

/// Runs `write` in its own transaction while `holder` (which has already written the row) is
/// open, then commits `holder`. Returns whether `write`'s transaction committed.
async fn race<F, Fut>(t: &TestDb, holder: DatabaseTransaction, write: F) -> bool
where
    F: FnOnce(DatabaseTransaction) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), sea_orm::DbErr>> + Send,
{
    let db: DatabaseConnection = t.db.clone();
    let racer = tokio::spawn(async move {
        let txn = db.begin().await?;
        write(txn).await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let blocked = !racer.is_finished();
    holder.commit().await.unwrap();
    let result = racer.await.unwrap();
    match t.backend {
        // SQLite lets the racer wait for the write lock, or refuses it a stale snapshot.
        Backend::Sqlite => result.is_ok(),
        _ => {
            assert!(
                blocked,
                "the second writer waited for the first one's row lock"
            );
            result.expect("the second writer commits once the first has");
            true
        }
    }
}

/// Ada's address, which transaction B (held open) is moving to Bob, and Bob's group version in B.
struct Moving {
    bob: customer::Model,
    a: address::Model,
    b: DatabaseTransaction,
    bob_after_b: i64,
}

async fn moving(t: &TestDb) -> Moving {
    let ada = fixtures::customer(&t.db, "Ada").await;
    let bob = fixtures::customer(&t.db, "Bob").await;
    let a = fixtures::address(&t.db, ada.id, "Paris").await;
    fixtures::mark_all_synced(&t.db).await;
    let b = t.db.begin().await.unwrap();
    let mut am = a.clone().into_active_model();
    am.customer_id = Set(bob.id);
    am.update(&b).await.unwrap();
    let bob_after_b = version_in(&b, "erp.customer", bob.id).await;
    Moving {
        bob,
        a,
        b,
        bob_after_b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_to_the_old_value_after_a_concurrent_change_touches() {
    on_each_backend(|t| async move {
        let c = fixtures::customer(&t.db, "Ada").await;
        fixtures::mark_all_synced(&t.db).await;

        // B renames Ada to Bea and holds its transaction.
        let b = t.db.begin().await.unwrap();
        let mut am = c.clone().into_active_model();
        am.name = Set("Bea".into());
        am.update(&b).await.unwrap();
        let after_b = version_in(&b, "erp.customer", c.id).await;

        // A, loaded before, writes "Ada": the same as the value before B, not as B's.
        let stale = c.clone();
        let committed = race(&t, b, move |txn| async move {
            let mut am = stale.into_active_model();
            am.name = Set("Ada".into());
            am.update(&txn).await?;
            txn.commit().await
        })
        .await;

        let row = customer::Entity::find_by_id(c.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        if committed {
            assert_eq!(row.name, "Ada");
            assert!(
                version_in(&t.db, "erp.customer", c.id).await > after_b,
                "Ada→Bea→Ada: the second change is a change, and touches"
            );
        } else {
            assert_eq!(row.name, "Bea");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_dependent_being_moved_touches_its_new_root() {
    on_each_backend(|t| async move {
        let Moving {
            bob,
            a,
            b,
            bob_after_b,
        } = moving(&t).await;

        // A, which read the address while it was Ada's, changes its city.
        let stale = a.clone();
        let committed = race(&t, b, move |txn| async move {
            let mut am = stale.into_active_model();
            am.city = Set("Lyon".into());
            am.update(&txn).await?;
            txn.commit().await
        })
        .await;

        let row = address::Entity::find_by_id(a.id)
            .one(&t.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.customer_id, bob.id);
        if committed {
            assert_eq!(row.city, "Lyon");
            assert!(
                version_in(&t.db, "erp.customer", bob.id).await > bob_after_b,
                "Bob's group now holds the city Lyon, and is touched for it"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_dependent_being_moved_touches_its_new_root() {
    on_each_backend(|t| async move {
        let Moving {
            bob,
            a,
            b,
            bob_after_b,
        } = moving(&t).await;

        // A deletes the address through a model that still says it is Ada's.
        let stale = a.clone();
        let committed = race(&t, b, move |txn| async move {
            stale.delete(&txn).await?;
            txn.commit().await
        })
        .await;

        let row = address::Entity::find_by_id(a.id).one(&t.db).await.unwrap();
        if committed {
            assert!(row.is_none());
            assert!(
                version_in(&t.db, "erp.customer", bob.id).await > bob_after_b,
                "Bob lost the address after B's version: his group is touched"
            );
        } else {
            assert_eq!(row.map(|r| r.customer_id), Some(bob.id));
        }
    })
    .await;
}

/// Ada and Bob with their contacts, and Ada's order with one item (1 × 500 cents), all pushed.
struct TwoHop {
    h: Harness,
    ada: customer::Model,
    bob: customer::Model,
    order: order::Model,
    item: line_item::Model,
}

async fn two_hop(t: TestDb) -> TwoHop {
    let h = harness(t, |_| {}).await;
    let ada = fixtures::customer(&h.t.db, "Ada").await;
    let bob = fixtures::customer(&h.t.db, "Bob").await;
    for c in [&ada, &bob] {
        sync_core::sync_as(&h.t.db, "crm.contact", c).await.unwrap();
    }
    let order = fixtures::order(&h.t.db, ada.id, "R-1").await;
    let item = fixtures::line_item(&h.t.db, order.id, "A").await;
    push_everything(&h).await;
    TwoHop {
        h,
        ada,
        bob,
        order,
        item,
    }
}

/// Runs the worker until nothing is due (a push of `crm.contact` waits for nothing else).
async fn push_everything(h: &Harness) {
    for _ in 0..10 {
        let pass = h.engine.run_once().await.unwrap();
        h.clock.advance(Duration::from_secs(2));
        if pass.pushed == 0 && pass.failed == 0 {
            return;
        }
    }
    panic!("groups still due after ten passes");
}

/// What the CRM holds as the customer's lifetime spend.
async fn lifetime_cents(h: &Harness, customer: &customer::Model) -> i64 {
    let group = h.group("crm.contact", customer.id).await;
    let id = group.remote_id.expect("the contact was created");
    h.remote.record("crm/contacts", &id).expect("the contact")["lifetime_cents"]
        .as_i64()
        .expect("a number")
}

async fn move_order<C: ConnectionTrait>(db: &C, o: &order::Model, to: &customer::Model) {
    let mut am = o.clone().into_active_model();
    am.customer_id = Set(to.id);
    am.update(db).await.unwrap();
}

async fn set_quantity<C: ConnectionTrait>(db: &C, item: &line_item::Model, quantity: i32) {
    let mut am = item.clone().into_active_model();
    am.quantity = Set(quantity);
    am.update(db).await.unwrap();
}

/// A line item's root is found through its order by a function (`line_item::customer_of`) that
/// reads the order without a lock. Transaction B moves the order to Bob and is held open;
/// transaction A edits an item of that order: its function reads the order as committed,
/// Ada's, and A logs a touch of Ada's contact. B commits and a worker pushes Bob's contact,
/// without A's quantity; then A commits. Applying A's touch runs the function again on the
/// committed item and finds Bob: his contact is pushed again, with the quantity. Without it
/// Bob's contact kept the old spend until he was touched again. (On SQLite the two writes
/// cannot overlap; on MariaDB a worker cannot apply the log between the two commits.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_two_hop_dependent_whose_order_moves_touches_the_new_root() {
    on_each_backend(|t| async move {
        let TwoHop {
            h,
            ada,
            bob,
            order,
            item,
        } = two_hop(t).await;
        let b = h.t.db.begin().await.unwrap();
        move_order(&b, &order, &bob).await;
        if h.t.backend == Backend::Sqlite {
            // One writer at a time: A can only write after B; its function finds Bob.
            b.commit().await.unwrap();
            push_everything(&h).await;
            set_quantity(&h.t.db, &item, 7).await;
        } else if h.t.backend == Backend::MySql {
            // A's function reads Ada here too, but a MariaDB worker applying the log waits for
            // A's logged touch (its row lock), so no push of Bob comes between the commits.
            let a = h.t.db.begin().await.unwrap();
            set_quantity(&a, &item, 7).await;
            b.commit().await.unwrap();
            a.commit().await.unwrap();
        } else {
            let a = h.t.db.begin().await.unwrap();
            set_quantity(&a, &item, 7).await;
            b.commit().await.unwrap();
            push_everything(&h).await;
            assert_eq!(
                lifetime_cents(&h, &bob).await,
                500,
                "pushed when B committed: A's edit is not committed yet"
            );
            a.commit().await.unwrap();
        }
        push_everything(&h).await;
        assert_eq!(lifetime_cents(&h, &bob).await, 7 * 500);
        assert_eq!(lifetime_cents(&h, &ada).await, 0);
    })
    .await;
}

/// The move commits after the edit: the edit's function found Ada, and the move touches both
/// customers, so Bob's contact is pushed with the edit whatever the applier finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_two_hop_dependent_before_its_order_moves_reaches_the_new_root() {
    on_each_backend(|t| async move {
        let TwoHop {
            h,
            ada,
            bob,
            order,
            item,
        } = two_hop(t).await;
        let a = h.t.db.begin().await.unwrap();
        set_quantity(&a, &item, 7).await;
        a.commit().await.unwrap();
        if h.t.backend != Backend::Sqlite {
            // The edit is applied (and its function run again) before the move.
            push_everything(&h).await;
            assert_eq!(lifetime_cents(&h, &ada).await, 7 * 500);
        }
        let b = h.t.db.begin().await.unwrap();
        move_order(&b, &order, &bob).await;
        b.commit().await.unwrap();
        push_everything(&h).await;
        assert_eq!(lifetime_cents(&h, &bob).await, 7 * 500);
        assert_eq!(lifetime_cents(&h, &ada).await, 0);
    })
    .await;
}

/// A two-hop dependent deleted before its edit's touch is applied: the applier finds no row to
/// run the function on, and needs none (the delete touched the root it found). The touches
/// apply, and both contacts end in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_hop_dependent_deleted_before_its_touch_is_applied_needs_nothing_more() {
    on_each_backend(|t| async move {
        let TwoHop {
            h,
            ada,
            bob,
            order,
            item,
        } = two_hop(t).await;
        let logged_before = sync_core::ops::logged_touches(&h.t.db).await.unwrap();
        assert_eq!(logged_before, 0);
        if h.t.backend == Backend::Sqlite {
            move_order(&h.t.db, &order, &bob).await;
            set_quantity(&h.t.db, &item, 7).await;
        } else {
            // The edit's function reads Ada, the move commits first: the edit's touch names
            // Ada and the item, to be found again when it is applied.
            let b = h.t.db.begin().await.unwrap();
            move_order(&b, &order, &bob).await;
            let a = h.t.db.begin().await.unwrap();
            set_quantity(&a, &item, 7).await;
            b.commit().await.unwrap();
            a.commit().await.unwrap();
        }
        // Deleted before any worker applies the edit's touch.
        let gone = line_item::Entity::find_by_id(item.id)
            .one(&h.t.db)
            .await
            .unwrap()
            .unwrap();
        let txn = h.t.db.begin().await.unwrap();
        gone.delete(&txn).await.unwrap();
        txn.commit().await.unwrap();
        assert!(sync_core::ops::logged_touches(&h.t.db).await.unwrap() >= 3);

        sync_tests::apply_all_touches(&h.t.db).await;
        push_everything(&h).await;
        assert_eq!(lifetime_cents(&h, &bob).await, 0);
        assert_eq!(lifetime_cents(&h, &ada).await, 0);
        for c in [&ada, &bob] {
            let group = h.group("crm.contact", c.id).await;
            assert_eq!(
                (group.state.as_str(), group.synced_version),
                ("synced", group.version)
            );
        }
    })
    .await;
}

/// A customer archived and then restored, both logged, while another worker is in the middle of
/// applying the log (it holds the first of the two touches): the group must end restored. Two
/// appliers each taking the touches the other had not locked applied the restore first and the
/// archive last, leaving the group of a live customer marked deleted.
#[tokio::test]
async fn a_group_s_touches_are_applied_in_log_order_while_another_worker_applies() {
    on_each_backend(|t| async move {
        if t.backend == Backend::Sqlite {
            // One writer at a time: appliers cannot overlap.
            return;
        }
        let c = fixtures::customer(&t.db, "Archived and back").await;
        sync_tests::apply_all_touches(&t.db).await;
        for archived in [Some(1), None] {
            let mut am = customer::Entity::find_by_id(c.id)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap()
                .into_active_model();
            am.deleted_at = Set(archived);
            am.update(&t.db).await.unwrap();
        }
        let logged = sync_core::ops::logged_touches(&t.db).await.unwrap();
        assert!(
            logged >= 2,
            "the archive and the restore are logged ({logged})"
        );

        // Another applier holds the oldest touch (the archive) in its transaction.
        let other = t.db.begin().await.unwrap();
        let held = other
            .query_all_raw(sea_orm::Statement::from_string(
                t.db.get_database_backend(),
                "SELECT id FROM sync_touches ORDER BY id LIMIT 1 FOR UPDATE",
            ))
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        let db = t.db.clone();
        let applier = tokio::spawn(async move { sync_core::apply_touches(&db).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.commit().await.unwrap();
        applier.await.unwrap().unwrap();

        let group = t.group("erp.customer", c.id).await.unwrap();
        assert!(
            !group.root_deleted,
            "the customer exists: its group is not marked deleted ({group:?})"
        );
        assert_eq!(group.state, "pending");
    })
    .await;
}
