//! The application's models. Each names the sync groups it feeds with `#[sync(...)]`.
//!
//! | model | `erp.customer` | `crm.contact` | `erp.sales_order` |
//! |---|---|---|---|
//! | [`customer`] | root, registered on insert | root, registered by the service code | |
//! | [`address`] | dependent (`customer_id`) | dependent (`customer_id`) | |
//! | [`order`] | | | root, registered on insert |
//! | [`line_item`] | | | dependent (`order_id`) |
//! | [`billing_info`] | | | dependent (`order_id`) |
//!
//! [`product`] is pulled from the ERP by the `erp.products` source (see `sources`) and synced
//! nowhere.
//!
//! Every model also has a column no syncer watches (`internal_note`, `label`, `note`):
//! changing only that column marks nothing dirty, so nothing is pushed.

pub mod address;
pub mod billing_info;
pub mod customer;
pub mod line_item;
pub mod order;
pub mod product;
