//! The application's models. Each names the sync groups it feeds with `#[sync(...)]`.
//!
//! - A customer is the root of two remote entities: an ERP customer (registered when the
//!   customer is inserted; its soft-delete column deletes it remotely) and a CRM contact
//!   (registered explicitly by the service code with `sync_core::sync_as`).
//! - An address belongs to both of its customer's groups.
//! - An order is the root of an ERP sales order, built from the order, its line items and its
//!   billing info.

pub mod address;
pub mod billing_info;
pub mod customer;
pub mod line_item;
pub mod order;
