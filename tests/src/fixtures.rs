//! Rows for tests, written through `ActiveModel` so the hooks run.

use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ConnectionTrait};

use crate::models::{address, customer, line_item, order};

/// A customer named `name` (registered in `erp.customer` by its hook).
pub async fn customer<C: ConnectionTrait>(db: &C, name: &str) -> customer::Model {
    customer::ActiveModel {
        name: Set(name.into()),
        email: Set(format!("{}@example.com", name.to_lowercase())),
        phone: Set(None),
        notes: Set(String::new()),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a customer")
}

/// An address of `customer_id` in `city`.
pub async fn address<C: ConnectionTrait>(db: &C, customer_id: i32, city: &str) -> address::Model {
    address::ActiveModel {
        customer_id: Set(customer_id),
        street: Set("1 Main St".into()),
        city: Set(city.into()),
        label: Set("home".into()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert an address")
}

/// An open order of `customer_id`.
pub async fn order<C: ConnectionTrait>(db: &C, customer_id: i32, reference: &str) -> order::Model {
    order::ActiveModel {
        customer_id: Set(customer_id),
        reference: Set(reference.into()),
        status: Set("open".into()),
        internal_note: Set(String::new()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert an order")
}

/// One unit of `sku` at 5.00 on `order_id`.
pub async fn line_item<C: ConnectionTrait>(db: &C, order_id: i32, sku: &str) -> line_item::Model {
    line_item::ActiveModel {
        order_id: Set(order_id),
        sku: Set(sku.into()),
        quantity: Set(1),
        price_cents: Set(500),
        comment: Set(String::new()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert a line item")
}

/// Applies the logged touches, then marks every group clean, as a completed sync would.
pub async fn mark_all_synced(db: &sea_orm::DatabaseConnection) {
    crate::apply_all_touches(db).await;
    db.execute_unprepared(
        "UPDATE sync_groups SET synced_version = version, state = 'synced', synced_at = touched_at",
    )
    .await
    .expect("mark groups synced");
}
