//! How the remote entities are built from the local rows, and where they are sent.
//!
//! Each syncer reads its group's root and dependents in `translate` and returns the payload the
//! remote should hold, or `None` when the root is gone (the worker then deletes the remote copy).
//! Sending is left to the built-in [`HttpRemote`]: `POST` creates, `PUT` updates, `DELETE`
//! deletes. The worker skips the push when the payload equals the last one the remote accepted.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, EntityTrait, ModelTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use sync_core::{HttpRemote, Registry, Result, Syncer, TranslateContext, async_trait};

use crate::entities::{address, billing_info, customer, line_item, order};

/// The ERP's collection of customers.
pub const ERP_CUSTOMERS: &str = "customers";
/// The ERP's collection of sales orders.
pub const ERP_SALES_ORDERS: &str = "sales_orders";
/// The CRM's collection of contacts.
pub const CRM_CONTACTS: &str = "contacts";

/// `erp.customer`: a customer with its contact details and every address.
#[derive(Debug)]
pub struct ErpCustomerSyncer {
    remote: HttpRemote,
}

impl ErpCustomerSyncer {
    /// A syncer pushing to `remote` (the ERP's `customers`).
    pub fn new(remote: HttpRemote) -> Self {
        ErpCustomerSyncer { remote }
    }
}

#[async_trait]
impl Syncer for ErpCustomerSyncer {
    fn name(&self) -> &str {
        "erp.customer"
    }

    /// Bump it after changing `translate`: every customer is then pushed again, once.
    fn payload_version(&self) -> u32 {
        1
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let Some(customer) = live_customer(cx).await? else {
            return Ok(None);
        };
        let addresses: Vec<Value> = addresses_of(cx, &customer)
            .await?
            .iter()
            .map(|a| json!({ "street": a.street, "city": a.city }))
            .collect();
        Ok(Some(json!({
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "addresses": addresses,
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// `crm.contact`: the same customer in the CRM's shape — split name, the cities it is found in.
#[derive(Debug)]
pub struct CrmContactSyncer {
    remote: HttpRemote,
}

impl CrmContactSyncer {
    /// A syncer pushing to `remote` (the CRM's `contacts`).
    pub fn new(remote: HttpRemote) -> Self {
        CrmContactSyncer { remote }
    }
}

#[async_trait]
impl Syncer for CrmContactSyncer {
    fn name(&self) -> &str {
        "crm.contact"
    }

    /// Sales people edit contacts in the CRM; `crm.contacts` pulls their edits into the
    /// customers. What it applied is not pushed back.
    fn mirrored_by(&self) -> Option<&str> {
        Some(crate::sources::CRM_CONTACT_EDITS)
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let Some(customer) = live_customer(cx).await? else {
            return Ok(None);
        };
        let (first_name, last_name) = customer
            .name
            .split_once(' ')
            .unwrap_or((customer.name.as_str(), ""));
        // Distinct and sorted: a second address in a known city leaves the contact as it was,
        // and the worker skips the push.
        let cities: BTreeSet<String> = addresses_of(cx, &customer)
            .await?
            .into_iter()
            .map(|a| a.city)
            .collect();
        Ok(Some(json!({
            "first_name": first_name,
            "last_name": last_name,
            "email": customer.email,
            "cities": cities,
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// `erp.sales_order`: one remote entity built from an order, its line items and its billing
/// info, referring to its customer by the customer's ERP id.
#[derive(Debug)]
pub struct ErpSalesOrderSyncer {
    remote: HttpRemote,
}

impl ErpSalesOrderSyncer {
    /// A syncer pushing to `remote` (the ERP's `sales_orders`).
    pub fn new(remote: HttpRemote) -> Self {
        ErpSalesOrderSyncer { remote }
    }
}

#[async_trait]
impl Syncer for ErpSalesOrderSyncer {
    fn name(&self) -> &str {
        "erp.sales_order"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let Some(order) = order::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?
        else {
            return Ok(None);
        };
        // Until the ERP has created the customer, this answers "not ready" and the worker tries
        // the order again shortly, without counting a failure. Should the customer be created
        // again under another id (archived and restored), the worker pushes the order again.
        let customer_erp_id = cx.remote_id_of("erp.customer", order.customer_id).await?;
        let lines = order
            .find_related(line_item::Entity)
            .order_by_asc(line_item::Column::Id)
            .all(cx.db())
            .await?;
        let billing = order
            .find_related(billing_info::Entity)
            .one(cx.db())
            .await?;
        let total_cents: i64 = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        let lines: Vec<Value> = lines
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku,
                    "quantity": l.quantity,
                    "unit_price_cents": l.unit_price_cents,
                })
            })
            .collect();
        let billing = billing
            .map(|b| json!({ "company": b.company, "vat_id": b.vat_id, "address": b.address }));
        Ok(Some(json!({
            "reference": order.reference,
            "status": order.status,
            "customer_id": customer_erp_id,
            "lines": lines,
            "total_cents": total_cents,
            "billing": billing,
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// The group's customer, unless it is gone or archived.
async fn live_customer(cx: &TranslateContext<'_>) -> Result<Option<customer::Model>> {
    Ok(customer::Entity::find_by_id(cx.key::<i32>()?)
        .filter(customer::Column::DeletedAt.is_null())
        .one(cx.db())
        .await?)
}

async fn addresses_of(
    cx: &TranslateContext<'_>,
    customer: &customer::Model,
) -> Result<Vec<address::Model>> {
    Ok(customer
        .find_related(address::Entity)
        .order_by_asc(address::Column::Id)
        .all(cx.db())
        .await?)
}

/// The three syncers, for an ERP at `erp_url` and a CRM at `crm_url` (no credentials).
pub fn registry(erp_url: &str, crm_url: &str) -> Result<Registry> {
    registry_with(
        HttpRemote::builder(erp_url, ERP_CUSTOMERS).build()?,
        HttpRemote::builder(erp_url, ERP_SALES_ORDERS).build()?,
        HttpRemote::builder(crm_url, CRM_CONTACTS).build()?,
    )
}

/// The three syncers, configured from the environment: `ERP_URL` and `CRM_URL`, and optionally
/// `ERP_TOKEN` and `CRM_TOKEN` (bearer tokens) and `ERP_TIMEOUT_SECS` and `CRM_TIMEOUT_SECS`.
pub fn registry_from_env() -> Result<Registry> {
    registry_with(
        HttpRemote::from_env("ERP", ERP_CUSTOMERS)?,
        HttpRemote::from_env("ERP", ERP_SALES_ORDERS)?,
        HttpRemote::from_env("CRM", CRM_CONTACTS)?,
    )
}

/// The three syncers, pushing to remotes built elsewhere (other credentials, timeouts…).
pub fn registry_with(
    erp_customers: HttpRemote,
    erp_sales_orders: HttpRemote,
    crm_contacts: HttpRemote,
) -> Result<Registry> {
    let mut registry = Registry::new();
    registry
        .register(ErpCustomerSyncer::new(erp_customers))?
        .register(ErpSalesOrderSyncer::new(erp_sales_orders))?
        .register(CrmContactSyncer::new(crm_contacts))?
        // Where `backfill` finds the existing roots of each syncer.
        .roots::<customer::Entity>()
        .roots::<order::Entity>();
    Ok(registry)
}
