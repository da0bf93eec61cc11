//! Models covering every form of `#[derive(Syncable)]`.
//!
//! - `customer`: a root of two syncers, registered on insert for one (`erp.customer`, with a
//!   soft-delete column) and explicitly with `sync()` for the other (`crm.contact`).
//! - `address`: a dependent of both customer groups through its `customer_id` foreign key.
//! - `order`: a root registered on insert (`erp.sales_order`).
//! - `line_item`: a dependent of its order through `order_id`, and of its order's customer
//!   (`crm.contact`) through a function: a two-hop chain.
//! - `billing_info`: a second dependent of the order.
//! - `product`: a root whose `ActiveModelBehavior` is written by hand (`manual_hooks`).
//! - `plain_customer`: `customer` without the derive, for benchmarks.

pub mod address;
pub mod billing_info;
pub mod customer;
pub mod line_item;
pub mod order;
pub mod plain_customer;
pub mod product;
