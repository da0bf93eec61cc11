//! How the remote entities are built from the local rows, and where they go.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use sync_core::{HttpRemote, Registry, Result, Syncer, TranslateContext, async_trait};

use crate::entities::{address, billing_info, customer, line_item, order};

/// The ERP's customer: name, contact details and every address.
#[derive(Debug)]
pub struct ErpCustomer {
    /// `{ERP}/customers`.
    pub remote: HttpRemote,
}

#[async_trait]
impl Syncer for ErpCustomer {
    fn name(&self) -> &str {
        "erp.customer"
    }

    fn payload_version(&self) -> u32 {
        1
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let Some(customer) = customer::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?
        else {
            return Ok(None);
        };
        if customer.deleted_at.is_some() {
            return Ok(None);
        }
        let addresses = addresses_of(cx, customer.id).await?;
        Ok(Some(json!({
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "addresses": addresses.iter().map(|a| json!({"street": a.street, "city": a.city})).collect::<Vec<_>>(),
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// The CRM's contact: another shape of the same customer.
#[derive(Debug)]
pub struct CrmContact {
    /// `{CRM}/contacts`.
    pub remote: HttpRemote,
}

#[async_trait]
impl Syncer for CrmContact {
    fn name(&self) -> &str {
        "crm.contact"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        let Some(customer) = customer::Entity::find_by_id(cx.key::<i32>()?)
            .one(cx.db())
            .await?
        else {
            return Ok(None);
        };
        let (first, last) = customer
            .name
            .split_once(' ')
            .unwrap_or((customer.name.as_str(), ""));
        let cities: Vec<String> = addresses_of(cx, customer.id)
            .await?
            .into_iter()
            .map(|a| a.city)
            .collect();
        Ok(Some(json!({
            "first_name": first,
            "last_name": last,
            "email": customer.email,
            "cities": cities,
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// The ERP's sales order: one remote entity built from an order, its line items and its
/// billing info, carrying its customer's ERP id.
#[derive(Debug)]
pub struct ErpSalesOrder {
    /// `{ERP}/sales_orders`.
    pub remote: HttpRemote,
}

#[async_trait]
impl Syncer for ErpSalesOrder {
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
        // Answers "not ready" until the customer exists in the ERP; the worker waits for it.
        let customer_erp_id = cx.remote_id_of("erp.customer", order.customer_id).await?;
        let lines = line_item::Entity::find()
            .filter(line_item::Column::OrderId.eq(order.id))
            .order_by_asc(line_item::Column::Id)
            .all(cx.db())
            .await?;
        let billing = billing_info::Entity::find()
            .filter(billing_info::Column::OrderId.eq(order.id))
            .one(cx.db())
            .await?;
        let total: i64 = lines
            .iter()
            .map(|l| l.unit_price_cents * i64::from(l.quantity))
            .sum();
        Ok(Some(json!({
            "reference": order.reference,
            "status": order.status,
            "customer_id": customer_erp_id,
            "lines": lines.iter().map(|l| json!({
                "sku": l.sku,
                "quantity": l.quantity,
                "unit_price_cents": l.unit_price_cents,
            })).collect::<Vec<_>>(),
            "total_cents": total,
            "billing": billing.map(|b| json!({"company": b.company, "vat_id": b.vat_id, "address": b.address})),
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

async fn addresses_of(cx: &TranslateContext<'_>, customer_id: i32) -> Result<Vec<address::Model>> {
    Ok(address::Entity::find()
        .filter(address::Column::CustomerId.eq(customer_id))
        .order_by_asc(address::Column::Id)
        .all(cx.db())
        .await?)
}

/// The three syncers, for an ERP at `erp_url` and a CRM at `crm_url`.
pub fn registry(erp_url: &str, crm_url: &str) -> Result<Registry> {
    registry_with(
        HttpRemote::builder(erp_url, "customers").build()?,
        HttpRemote::builder(crm_url, "contacts").build()?,
        HttpRemote::builder(erp_url, "sales_orders").build()?,
    )
}

/// The syncers, configured from `ERP_URL`, `CRM_URL` (and optional `ERP_TOKEN`, `CRM_TOKEN`).
pub fn registry_from_env() -> Result<Registry> {
    registry_with(
        HttpRemote::from_env("ERP", "customers")?,
        HttpRemote::from_env("CRM", "contacts")?,
        HttpRemote::from_env("ERP", "sales_orders")?,
    )
}

fn registry_with(
    erp_customers: HttpRemote,
    crm_contacts: HttpRemote,
    erp_orders: HttpRemote,
) -> Result<Registry> {
    let mut registry = Registry::new();
    registry
        .register(ErpCustomer {
            remote: erp_customers,
        })?
        .register(CrmContact {
            remote: crm_contacts,
        })?
        .register(ErpSalesOrder { remote: erp_orders })?;
    Ok(registry)
}
