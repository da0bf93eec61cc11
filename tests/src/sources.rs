//! An inbound source for the test models: the ERP owns the products (name, price), and the
//! application keeps them in `products`, written through the model so that its hooks run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, ModelTrait};
use serde_json::Value;
use sync_core::retry::ExponentialBackoff;
use sync_core::source::{
    ApplyContext, DigestColumn, HttpFeed, InboundRecord, Pagination, Since, Source,
};
use sync_core::{Error, HttpRemote, Result, async_trait};
use tokio::sync::Notify;

use crate::models::{customer, product, stock_item};

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
    /// The source's `pages_per_commit` (0: the default).
    pub pages_per_commit: AtomicUsize,
}

impl ApplyKnobs {
    /// Fails for the name `refuse_name` holds, as an application's validation would.
    fn check_name(&self, name: &str) -> Result<()> {
        if self.refuse_name.lock().expect("knobs").as_deref() == Some(name) {
            return Err(Error::permanent(format!(
                "the category of `{name}` is not known yet"
            )));
        }
        Ok(())
    }

    /// What an `apply_many` returns for its upsert's `result`, counting a page written.
    fn batch_written(&self, result: std::result::Result<(), sea_orm::DbErr>) -> Result<()> {
        result?;
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
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
        quick_backoff()
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    fn pages_per_commit(&self) -> usize {
        match self.knobs.pages_per_commit.load(Ordering::SeqCst) {
            0 => 8,
            n => n,
        }
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
        Some(self.knobs.batch_written(upsert.map(drop)))
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
        self.knobs.check_name(&name)?;
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

/// Retries of quarantined records after 50 ms, doubling up to 200 ms: a test waits little.
fn quick_backoff() -> ExponentialBackoff {
    ExponentialBackoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
        jitter: 0.0,
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

/// `erp.stock`: the ERP's products into `stock_items`, each row holding the digest of the
/// record it was applied from (`digest_column`), so that no `sync_inbound` row is written for
/// a record applied. Pages are applied with one upsert when `knobs.batch` is set.
#[derive(Debug)]
pub struct ErpStock {
    /// The feed.
    pub feed: HttpFeed,
    /// What `apply` does (`refuse_name`, `batch`; `applies` counts the records applied).
    pub knobs: Arc<ApplyKnobs>,
    /// The remote id is in the text column `sku` (source `erp.stock-by-sku`), not `erp_id`.
    pub by_sku: bool,
}

#[async_trait]
impl Source for ErpStock {
    fn name(&self) -> &str {
        if self.by_sku {
            "erp.stock-by-sku"
        } else {
            "erp.stock"
        }
    }

    fn backoff(&self) -> ExponentialBackoff {
        quick_backoff()
    }

    fn feed(&self) -> Option<&HttpFeed> {
        Some(&self.feed)
    }

    fn digest_column(&self) -> Option<DigestColumn> {
        let key = if self.by_sku {
            stock_item::Column::Sku
        } else {
            stock_item::Column::ErpId
        };
        Some(DigestColumn::new(
            stock_item::Entity,
            key,
            stock_item::Column::ErpDigest,
        ))
    }

    async fn apply_many(
        &self,
        cx: &ApplyContext<'_>,
        records: &[&InboundRecord],
    ) -> Option<Result<()>> {
        if !self.knobs.batch.load(Ordering::SeqCst) {
            return None;
        }
        if records.iter().any(|r| r.deleted) {
            return Some(Err(Error::permanent("a page with a delete")));
        }
        let rows = records.iter().map(|r| stock_item::ActiveModel {
            erp_id: Set(r.remote_id.as_str().parse().unwrap_or_default()),
            sku: Set(Some(r.remote_id.as_str().to_owned())),
            name: Set(r.data["name"].as_str().unwrap_or_default().to_owned()),
            price_cents: Set(r.data["price_cents"].as_i64().unwrap_or_default()),
            erp_digest: Set(Some(cx.digest(r))),
            ..Default::default()
        });
        let upsert = stock_item::Entity::insert_many(rows)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(stock_item::Column::ErpId)
                    .update_columns([
                        stock_item::Column::Name,
                        stock_item::Column::PriceCents,
                        stock_item::Column::ErpDigest,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(cx.db())
            .await;
        self.knobs
            .applies
            .fetch_add(records.len(), Ordering::SeqCst);
        Some(self.knobs.batch_written(upsert.map(drop)))
    }

    async fn apply(&self, cx: &ApplyContext<'_>, record: &InboundRecord) -> Result<()> {
        use sea_orm::{ColumnTrait, QueryFilter};
        self.knobs.applies.fetch_add(1, Ordering::SeqCst);
        let erp_id: i64 = record.remote_id.as_str().parse().map_err(|_| {
            Error::permanent(format!("product id `{}` is not a number", record.remote_id))
        })?;
        let existing = stock_item::Entity::find()
            .filter(if self.by_sku {
                stock_item::Column::Sku.eq(record.remote_id.as_str())
            } else {
                stock_item::Column::ErpId.eq(erp_id)
            })
            .one(cx.db())
            .await?;
        if record.deleted {
            if let Some(existing) = existing {
                existing.delete(cx.db()).await?;
            }
            return Ok(());
        }
        let name = record.data["name"].as_str().unwrap_or_default().to_owned();
        self.knobs.check_name(&name)?;
        let mut row = match existing {
            Some(existing) => existing.into(),
            None => stock_item::ActiveModel {
                erp_id: Set(erp_id),
                sku: Set(Some(record.remote_id.as_str().to_owned())),
                ..Default::default()
            },
        };
        row.name = Set(name);
        row.price_cents = Set(record.data["price_cents"].as_i64().unwrap_or_default());
        row.erp_digest = Set(Some(cx.digest(record)));
        row.save(cx.db()).await?;
        Ok(())
    }
}
