//! An inbound source for the test models: the ERP owns the products (name, price), and the
//! application keeps them in `products`, written through the model so that its hooks run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, ModelTrait};
use serde_json::Value;
use sync_core::retry::ExponentialBackoff;
use sync_core::source::{ApplyContext, HttpFeed, InboundRecord, Pagination, Since, Source};
use sync_core::{Error, HttpRemote, Result, async_trait};
use tokio::sync::Notify;

use crate::models::{customer, product};

/// Knobs a test turns to change what the source's `apply` does.
#[derive(Debug, Default)]
pub struct ApplyKnobs {
    /// Applying a record whose name is this fails (a missing prerequisite, say).
    pub refuse_name: Mutex<Option<String>>,
    /// The apply of this many records succeeds; the next one waits on `stall` forever (a worker
    /// stuck, then killed, mid-page).
    pub stall_after: Mutex<Option<usize>>,
    /// Records applied (attempts, successful or not).
    pub applies: AtomicUsize,
    /// Signalled when an apply stalls.
    pub stalled: Notify,
    /// Apply whole pages with one upsert (`apply_many`), refusing a page with a blank name.
    pub batch: std::sync::atomic::AtomicBool,
    /// Calls of `apply_many` that wrote their page.
    pub batches: AtomicUsize,
}

/// `erp.products`: the ERP's products into `products`.
#[derive(Debug)]
pub struct ErpProducts {
    /// The feed (json-server style or a changes API).
    pub feed: HttpFeed,
    /// The source's name.
    pub name: String,
    /// What `apply` does.
    pub knobs: Arc<ApplyKnobs>,
}

impl ErpProducts {
    /// `erp.products` reading `feed`.
    pub fn new(feed: HttpFeed, knobs: &Arc<ApplyKnobs>) -> Self {
        ErpProducts {
            feed,
            name: "erp.products".into(),
            knobs: knobs.clone(),
        }
    }
}

#[async_trait]
impl Source for ErpProducts {
    fn name(&self) -> &str {
        &self.name
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBackoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: 0.0,
        }
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    async fn apply_many(
        &self,
        cx: &ApplyContext<'_>,
        records: &[&InboundRecord],
    ) -> Option<Result<()>> {
        if !self.knobs.batch.load(Ordering::SeqCst) {
            return None;
        }
        if records
            .iter()
            .any(|r| r.deleted || r.data["name"].as_str().is_none_or(|n| n.trim().is_empty()))
        {
            return Some(Err(Error::permanent(
                "a page with a blank name or a delete",
            )));
        }
        let rows = records.iter().map(|r| product::ActiveModel {
            id: Set(r.remote_id.as_str().parse().unwrap_or_default()),
            name: Set(r.data["name"].as_str().unwrap_or_default().to_owned()),
            price_cents: Set(r.data["price_cents"].as_i64().unwrap_or_default()),
            revision: Set(1),
        });
        let upsert = product::Entity::insert_many(rows)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(product::Column::Id)
                    .update_columns([product::Column::Name, product::Column::PriceCents])
                    .to_owned(),
            )
            .exec(cx.db())
            .await;
        Some(match upsert {
            Ok(_) => {
                self.knobs.batches.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => Err(e.into()),
        })
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()> {
        let done = self.knobs.applies.fetch_add(1, Ordering::SeqCst);
        let stall = *self.knobs.stall_after.lock().expect("knobs");
        if stall.is_some_and(|n| done >= n) {
            self.knobs.stalled.notify_one();
            std::future::pending::<()>().await;
        }
        let id: i32 = record.remote_id.as_str().parse().map_err(|_| {
            Error::permanent(format!("product id `{}` is not a number", record.remote_id))
        })?;
        let existing = product::Entity::find_by_id(id).one(cx.db()).await?;
        if record.deleted {
            if let Some(existing) = existing {
                existing.delete(cx.db()).await?;
            }
            return Ok(());
        }
        let name = record.data["name"].as_str().unwrap_or_default().to_owned();
        if self.knobs.refuse_name.lock().expect("knobs").as_deref() == Some(name.as_str()) {
            return Err(Error::permanent(format!(
                "the category of `{name}` is not known yet"
            )));
        }
        let price = record.data["price_cents"].as_i64().ok_or_else(|| {
            Error::permanent(format!(
                "product {id} has no integer `price_cents`: {}",
                record.data
            ))
        })?;
        match existing {
            Some(existing) => {
                let mut row: product::ActiveModel = existing.into();
                row.name = Set(name);
                row.price_cents = Set(price);
                row.update(cx.db()).await?;
            }
            None => {
                product::ActiveModel {
                    id: Set(id),
                    name: Set(name),
                    price_cents: Set(price),
                    revision: Set(0),
                }
                .insert(cx.db())
                .await?;
            }
        }
        Ok(())
    }
}

/// The product `id` as the ERP lists it.
pub fn erp_product(id: i64, name: &str, price_cents: i64, updated_at: &str) -> Value {
    serde_json::json!({
        "id": id,
        "name": name,
        "price_cents": price_cents,
        "updated_at": updated_at,
    })
}

/// `crm.contacts`: contact edits made by sales people in the CRM, into `customers`. A contact
/// the application does not know is refused (quarantined).
#[derive(Debug)]
pub struct CrmContacts {
    /// The CRM's changes feed.
    pub feed: HttpFeed,
}

#[async_trait]
impl Source for CrmContacts {
    fn name(&self) -> &str {
        "crm.contacts"
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()> {
        let Some(key) = cx
            .linked_key("crm.contact", record.remote_id.as_str())
            .await?
        else {
            return Err(Error::permanent(format!(
                "no customer is linked to CRM contact `{}`",
                record.remote_id
            )));
        };
        let id: i32 = key
            .as_str()
            .parse()
            .map_err(|_| Error::permanent(format!("customer key `{key}` is not a number")))?;
        let Some(existing) = customer::Entity::find_by_id(id).one(cx.db()).await? else {
            return Ok(());
        };
        if record.deleted {
            return Ok(());
        }
        let mut row: customer::ActiveModel = existing.into();
        if let Some(name) = record.data["full_name"].as_str() {
            row.name = Set(name.to_owned());
        }
        if let Some(email) = record.data["email"].as_str() {
            row.email = Set(email.to_owned());
        }
        row.phone = Set(record.data["phone"].as_str().map(str::to_owned));
        row.update(cx.db()).await?;
        Ok(())
    }
}

/// A json-server style feed of `{base_url}/products` (`_page`, `_limit`, `updated_at_gte` with
/// 30 s of overlap, sorted by `updated_at`), `size` records a page.
pub fn json_server_feed_at(base_url: &str, size: u32) -> HttpFeed {
    let http = HttpRemote::builder(base_url, "products")
        .build()
        .expect("remote");
    HttpFeed::builder(http)
        .pagination(Pagination::pages("_page", "_limit", size))
        .since(Since::ModifiedSince {
            param: "updated_at_gte".into(),
            overlap: Duration::from_secs(30),
        })
        .modified_pointer("/updated_at")
        .query("_sort", "updated_at")
        .build()
        .expect("feed")
}
