//! An example application: an axum JSON API over SeaORM models whose customers, addresses,
//! orders, line items and billing info are kept in step with an ERP and a CRM.

pub mod api;
pub mod demo;
pub mod entities;
pub mod migration;
pub mod syncers;
