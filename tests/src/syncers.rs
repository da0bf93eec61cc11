//! Syncers for the test models, pushing to a `MockRemote` through the built-in `HttpRemote`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use sync_core::{Error, HttpRemote, Registry, Result, Syncer, TranslateContext, async_trait};

use crate::models::{address, billing_info, customer, line_item, order};

/// Knobs a test turns to change what the syncers do.
#[derive(Debug, Default)]
pub struct Knobs {
    /// `payload_version` of every syncer (starts at 1).
    pub payload_version: AtomicU32,
    /// Make `translate` of this (syncer, key) fail: `"panic"`, `"error"`.
    pub sabotage: Mutex<Option<(String, String, &'static str)>>,
    /// Limits of `erp.customer`.
    pub erp_customer_limits: Mutex<Option<sync_core::Limits>>,
    /// What `erp.customer` does when an update answers 404.
    pub erp_customer_when_missing: Mutex<sync_core::WhenMissing>,
    /// Read when the registry is built: every remote finds repeated creates by this field.
    pub lookup_field: Mutex<Option<String>>,
    /// Read when the registry is built: the inbound source `crm.contact` is mirrored by.
    pub contact_mirrored_by: Mutex<Option<String>>,
    /// `erp.customer` is a one-time sync (`Syncer::create_only`).
    pub erp_customer_create_only: std::sync::atomic::AtomicBool,
    /// Read when the registry is built: every remote lists its collection json-server style
    /// (`?_page=n&_limit=size`), this many records a page, so that verification finds orphans.
    pub list_page_size: Mutex<Option<u32>>,
}

impl Knobs {
    fn check(&self, cx: &TranslateContext<'_>) -> Result<()> {
        let sabotage = self.sabotage.lock().expect("knobs").clone();
        if let Some((syncer, key, how)) = sabotage
            && syncer == cx.group().syncer
            && key == cx.root_key().as_str()
        {
            match how {
                "panic" => panic!("translate exploded for {key}"),
                _ => {
                    return Err(Error::permanent(format!(
                        "cannot translate {key}: bad data"
                    )));
                }
            }
        }
        Ok(())
    }

    fn version(&self) -> u32 {
        self.payload_version.load(Ordering::SeqCst).max(1)
    }
}

/// `erp.customer`: name, email and addresses.
#[derive(Debug)]
pub struct ErpCustomer {
    remote: HttpRemote,
    knobs: Arc<Knobs>,
}

#[async_trait]
impl Syncer for ErpCustomer {
    fn name(&self) -> &str {
        "erp.customer"
    }

    fn payload_version(&self) -> u32 {
        self.knobs.version()
    }

    fn limits(&self) -> Option<sync_core::Limits> {
        *self.knobs.erp_customer_limits.lock().expect("knobs")
    }

    fn when_missing(&self) -> sync_core::WhenMissing {
        *self.knobs.erp_customer_when_missing.lock().expect("knobs")
    }

    fn create_only(&self) -> bool {
        self.knobs
            .erp_customer_create_only
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        self.knobs.check(cx)?;
        let id: i32 = cx.key()?;
        let Some(c) = customer::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(None);
        };
        if c.deleted_at.is_some() {
            return Ok(None);
        }
        let addresses = address::Entity::find()
            .filter(address::Column::CustomerId.eq(id))
            .order_by_asc(address::Column::Id)
            .all(cx.db())
            .await?;
        let mut payload = json!({
            "name": c.name,
            "email": c.email,
            "addresses": addresses.iter().map(|a| json!({"street": a.street, "city": a.city})).collect::<Vec<_>>(),
        });
        if self.knobs.version() > 1 {
            payload["mapping"] = json!(self.knobs.version());
        }
        Ok(Some(payload))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// `crm.contact`: a contact with the customer's city and lifetime spend (two hops away).
#[derive(Debug)]
pub struct CrmContact {
    remote: HttpRemote,
    knobs: Arc<Knobs>,
    mirrored_by: Option<String>,
}

#[async_trait]
impl Syncer for CrmContact {
    fn name(&self) -> &str {
        "crm.contact"
    }

    fn mirrored_by(&self) -> Option<&str> {
        self.mirrored_by.as_deref()
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        self.knobs.check(cx)?;
        let id: i32 = cx.key()?;
        let Some(c) = customer::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(None);
        };
        let city = address::Entity::find()
            .filter(address::Column::CustomerId.eq(id))
            .order_by_asc(address::Column::Id)
            .one(cx.db())
            .await?
            .map(|a| a.city);
        let orders: Vec<i32> = order::Entity::find()
            .filter(order::Column::CustomerId.eq(id))
            .all(cx.db())
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let items = line_item::Entity::find()
            .filter(line_item::Column::OrderId.is_in(orders))
            .all(cx.db())
            .await?;
        let spend: i64 = items
            .iter()
            .map(|i| i.price_cents * i64::from(i.quantity))
            .sum();
        Ok(Some(
            json!({"full_name": c.name, "email": c.email, "phone": c.phone, "city": city, "lifetime_cents": spend}),
        ))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// `erp.sales_order`: one remote entity from an order, its line items and billing info,
/// carrying its customer's ERP id.
#[derive(Debug)]
pub struct ErpSalesOrder {
    remote: HttpRemote,
    knobs: Arc<Knobs>,
}

#[async_trait]
impl Syncer for ErpSalesOrder {
    fn name(&self) -> &str {
        "erp.sales_order"
    }

    async fn translate(&self, cx: &TranslateContext<'_>) -> Result<Option<Value>> {
        self.knobs.check(cx)?;
        let id: i32 = cx.key()?;
        let Some(o) = order::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(None);
        };
        let customer = cx.remote_id_of("erp.customer", o.customer_id).await?;
        let lines = line_item::Entity::find()
            .filter(line_item::Column::OrderId.eq(id))
            .order_by_asc(line_item::Column::Id)
            .all(cx.db())
            .await?;
        let billing = billing_info::Entity::find()
            .filter(billing_info::Column::OrderId.eq(id))
            .one(cx.db())
            .await?;
        Ok(Some(json!({
            "reference": o.reference,
            "status": o.status,
            "customer": customer,
            "lines": lines.iter().map(|l| json!({"sku": l.sku, "qty": l.quantity, "price_cents": l.price_cents})).collect::<Vec<_>>(),
            "billing": billing.map(|b| json!({"iban": b.iban, "address": b.address})),
        })))
    }

    fn remote(&self) -> Option<&HttpRemote> {
        Some(&self.remote)
    }
}

/// The three syncers, pushing to `{base_url}/erp/customers`, `{base_url}/crm/contacts` and
/// `{base_url}/erp/sales_orders`.
pub fn registry(base_url: &str, knobs: &Arc<Knobs>) -> Registry {
    try_registry(base_url, knobs).expect("a valid registry")
}

/// Like [`registry`], failing on a bad URL.
pub fn try_registry(base_url: &str, knobs: &Arc<Knobs>) -> Result<Registry> {
    let lookup = knobs.lookup_field.lock().expect("knobs").clone();
    let page_size = *knobs.list_page_size.lock().expect("knobs");
    let remote = |prefix: &str, collection: &str| {
        let mut builder = HttpRemote::builder(format!("{base_url}/{prefix}"), collection)
            .request_timeout(std::time::Duration::from_secs(2));
        if let Some(field) = &lookup {
            builder = builder.lookup_field(field.clone());
        }
        if let Some(size) = page_size {
            builder = builder.listing(sync_core::Listing::new(sync_core::Pagination::pages(
                "_page", "_limit", size,
            )));
        }
        builder.build()
    };
    let mut registry = Registry::new();
    registry
        .register(ErpCustomer {
            remote: remote("erp", "customers")?,
            knobs: knobs.clone(),
        })?
        .register(CrmContact {
            remote: remote("crm", "contacts")?,
            knobs: knobs.clone(),
            mirrored_by: knobs.contact_mirrored_by.lock().expect("knobs").clone(),
        })?
        .register(ErpSalesOrder {
            remote: remote("erp", "sales_orders")?,
            knobs: knobs.clone(),
        })?
        .roots::<customer::Entity>()
        .roots::<order::Entity>();
    Ok(registry)
}
