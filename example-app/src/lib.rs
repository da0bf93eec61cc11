//! An example application kept in step with an ERP and a CRM.
//!
//! A small axum JSON API ([`api`]) over SeaORM models ([`entities`]): customers with addresses,
//! orders with line items and billing info. `#[derive(Syncable)]` on the models marks sync groups
//! dirty whenever the API writes a watched column; a worker pushes each dirty group to its remote
//! with the [`syncers`]:
//!
//! | syncer | remote entity | built from |
//! |---|---|---|
//! | `erp.customer` | ERP `customers` | a customer and its addresses |
//! | `crm.contact` | CRM `contacts` | the same, in the CRM's shape |
//! | `erp.sales_order` | ERP `sales_orders` | an order, its line items and billing info |
//!
//! The other way, [`sources`] pull the ERP's products and the contact edits made in the CRM
//! into the app's tables, through the same models.
//!
//! [`demo`] runs the whole story against mock remotes and checks the result.

pub mod api;
mod demo;
pub mod entities;
pub mod migration;
pub mod sources;
pub mod syncers;

pub use demo::{DemoReport, Pushes, StepReport, demo};
