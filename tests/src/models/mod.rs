//! Models covering every form of `#[derive(Syncable)]`.
//!
//! - `customer`: a root of two syncers, registered on insert for one (`erp.customer`, with a
//!   soft-delete column) and explicitly with `sync()` for the other (`crm.contact`).
//! - `address`: a dependent of both customer groups through its `customer_id` foreign key.
//! - `order`: a root registered on insert (`erp.sales_order`).
//! - `line_item`: a dependent of its order through `order_id`, and of its order's customer
//!   (`crm.contact`) through a function: a two-hop chain.
//! - `billing_info`: a second dependent of the order.
//! - `product`: a root with a hook of the application's own beside the framework's.
//! - `plain_customer`: `customer` without the derive, for benchmarks.
//! - `stock_item`: products as a source that keeps its digests in the table applies them.

/// The `address` model (see above).
pub mod address;
/// The `billing_info` model (see above).
pub mod billing_info;
/// The `customer` model (see above).
pub mod customer;
/// The `line_item` model (see above).
pub mod line_item;
/// The `order` model (see above).
pub mod order;
/// The `plain_customer` model (see above).
pub mod plain_customer;
/// The `product` model (see above).
pub mod product;
/// The `stock_item` model (see above).
pub mod stock_item;
