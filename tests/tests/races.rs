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
use sync_tests::models::{address, customer, line_item};
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

/// A known window, not closed yet (see GUARANTEES.md, "Relationships"): a line item's root is
/// found through its order by a function (`line_item::customer_of`) that reads the order without
/// a lock. Transaction B moves the order to Bob and is held open; transaction A edits an item of
/// that order. A's function reads the order as committed, Ada's, and A touches Ada's contact
/// only; a push of Bob's contact made between B's commit and A's misses A's quantity until Bob's
/// contact is touched again. Locking the order in the function closes it but deadlocks two
/// transactions that each share-lock an order (a foreign key check) and then lock it for update.
/// Run with `--ignored` to see it.
#[ignore = "known window: a root found by a function that reads a row another transaction is moving"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_two_hop_dependent_whose_order_moves_touches_the_new_root() {
    on_each_backend(|t| async move {
        let ada = fixtures::customer(&t.db, "Ada").await;
        let bob = fixtures::customer(&t.db, "Bob").await;
        for c in [&ada, &bob] {
            sync_core::sync_as(&t.db, "crm.contact", c).await.unwrap();
        }
        let o = fixtures::order(&t.db, ada.id, "R-1").await;
        let item = fixtures::line_item(&t.db, o.id, "A").await;
        fixtures::mark_all_synced(&t.db).await;

        let b = t.db.begin().await.unwrap();
        let mut am = o.clone().into_active_model();
        am.customer_id = Set(bob.id);
        am.update(&b).await.unwrap();
        let bob_after_b = version_in(&b, "crm.contact", bob.id).await;

        let stale = item.clone();
        let committed = race(&t, b, move |txn| async move {
            let mut am = stale.into_active_model();
            am.quantity = Set(7);
            am.update(&txn).await?;
            txn.commit().await
        })
        .await;

        if committed {
            assert_eq!(
                line_item::Entity::find_by_id(item.id)
                    .one(&t.db)
                    .await
                    .unwrap()
                    .unwrap()
                    .quantity,
                7
            );
            assert!(
                version_in(&t.db, "crm.contact", bob.id).await > bob_after_b,
                "Bob's contact now counts the new quantity, and is touched for it"
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
