//! What the app pulls from the remotes: the inbound [`Source`]s.
//!
//! | source | remote | into |
//! |---|---|---|
//! | `erp.products` | ERP `products` (json-server style listing: `?_page=&_limit=&updated_at_gte=`) | `products` |
//! | `crm.contacts` | CRM `contacts/_changes` (a changes feed with a cursor token and tombstones) | the linked `customers` |
//!
//! Both write through the app's models, so its validations and hooks run: a contact edited in
//! the CRM marks the customer's ERP group dirty and reaches the ERP, while `crm.contact` (see
//! [`Syncer::mirrored_by`](sync_core::Syncer::mirrored_by)) does not push the edit back.

use std::time::Duration;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, ModelTrait};
use sync_core::source::{
    ApplyContext, HttpFeed, InboundRecord, Pagination, Since, Source, Sources,
};
use sync_core::{Error, HttpRemote, Result, async_trait};

use crate::entities::{customer, product};

/// The name of the CRM's contact edits source.
pub const CRM_CONTACT_EDITS: &str = "crm.contacts";

/// `erp.products`: the ERP's products, prices and stock.
#[derive(Debug)]
pub struct ErpProducts {
    feed: HttpFeed,
}

impl ErpProducts {
    /// Reads `remote` (the ERP's `products`) in pages of 100, asking for the records modified
    /// since the last run minus 30 s (how late the ERP may commit).
    pub fn new(remote: HttpRemote) -> Result<Self> {
        let feed = HttpFeed::builder(remote)
            .pagination(Pagination::pages("_page", "_limit", 100))
            .since(Since::ModifiedSince {
                param: "updated_at_gte".into(),
                overlap: Duration::from_secs(30),
            })
            .modified_pointer("/updated_at")
            .query("_sort", "updated_at")
            .build()?;
        Ok(ErpProducts { feed })
    }
}

#[async_trait]
impl Source for ErpProducts {
    fn name(&self) -> &str {
        "erp.products"
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()> {
        let id: i64 = record.remote_id.as_str().parse().map_err(|_| {
            Error::permanent(format!(
                "ERP product id `{}` is not a number",
                record.remote_id
            ))
        })?;
        let existing = product::Entity::find_by_id(id).one(cx.db()).await?;
        if record.deleted {
            if let Some(existing) = existing {
                existing.delete(cx.db()).await?;
            }
            return Ok(());
        }
        let data = &record.data;
        let field = |name: &str| {
            data.get(name)
                .cloned()
                .ok_or_else(|| Error::permanent(format!("ERP product {id} has no `{name}`")))
        };
        let text = |name: &str| -> Result<String> {
            field(name)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::permanent(format!("ERP product {id}: `{name}` is not text")))
        };
        let number = |name: &str| -> Result<i64> {
            field(name)?.as_i64().ok_or_else(|| {
                Error::permanent(format!("ERP product {id}: `{name}` is not an integer"))
            })
        };
        let is_new = existing.is_none();
        let mut row: product::ActiveModel = match existing {
            Some(existing) => existing.into(),
            None => product::ActiveModel {
                id: Set(id),
                ..Default::default()
            },
        };
        row.sku = Set(text("sku")?);
        row.name = Set(text("name")?);
        row.price_cents = Set(number("price_cents")?);
        row.stock = Set(i32::try_from(number("stock")?).unwrap_or(i32::MAX));
        if is_new {
            row.insert(cx.db()).await?;
        } else {
            row.update(cx.db()).await?;
        }
        Ok(())
    }
}

/// `crm.contacts`: contact edits made in the CRM, into the linked customers.
#[derive(Debug)]
pub struct CrmContactEdits {
    feed: HttpFeed,
}

impl CrmContactEdits {
    /// Reads `remote` (the CRM's `contacts/_changes`).
    pub fn new(remote: HttpRemote) -> Result<Self> {
        let feed = HttpFeed::builder(remote)
            .pagination(Pagination::Token {
                param: "cursor".into(),
                next: "/next_cursor".into(),
                more: Some("/has_more".into()),
            })
            .records_pointer("/data")
            .deleted_pointer("/deleted")
            .build()?;
        Ok(CrmContactEdits { feed })
    }
}

#[async_trait]
impl Source for CrmContactEdits {
    fn name(&self) -> &str {
        CRM_CONTACT_EDITS
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()> {
        // Contacts are created by the app (`crm.contact`): a contact the app does not know was
        // made in the CRM by hand, and is not the app's business.
        let Some(key) = cx
            .linked_key("crm.contact", record.remote_id.as_str())
            .await?
        else {
            return Ok(());
        };
        // A contact deleted in the CRM leaves the customer alone (the app decides about
        // customers); so does one whose customer is gone.
        if record.deleted {
            return Ok(());
        }
        let id: i32 = key
            .as_str()
            .parse()
            .map_err(|_| Error::permanent(format!("customer key `{key}` is not a number")))?;
        let Some(existing) = customer::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(());
        };
        let data = &record.data;
        let first = data["first_name"].as_str().unwrap_or_default();
        let last = data["last_name"].as_str().unwrap_or_default();
        let name = format!("{first} {last}").trim().to_owned();
        let email = data["email"].as_str().unwrap_or(&existing.email).to_owned();
        if name.is_empty() {
            return Err(Error::permanent(format!(
                "CRM contact `{}` has no name",
                record.remote_id
            )));
        }
        let mut row: customer::ActiveModel = existing.into();
        row.name = Set(name);
        row.email = Set(email);
        row.update(cx.db()).await?;
        Ok(())
    }
}

/// Both sources, reading the ERP at `erp_url` and the CRM at `crm_url`.
pub fn sources(erp_url: &str, crm_url: &str) -> Result<Sources> {
    sources_with(
        HttpRemote::builder(erp_url, "products").build()?,
        HttpRemote::builder(crm_url, "contacts/_changes").build()?,
    )
}

/// Both sources, configured from the environment as the syncers are (`ERP_URL`, `CRM_URL`,
/// tokens and timeouts).
pub fn sources_from_env() -> Result<Sources> {
    sources_with(
        HttpRemote::from_env("ERP", "products")?,
        HttpRemote::from_env("CRM", "contacts/_changes")?,
    )
}

/// Both sources, reading remotes built elsewhere.
pub fn sources_with(erp_products: HttpRemote, crm_changes: HttpRemote) -> Result<Sources> {
    let mut sources = Sources::new();
    sources
        .register(ErpProducts::new(erp_products)?)?
        .register(CrmContactEdits::new(crm_changes)?)?;
    Ok(sources)
}
