//! Translating and pushing one claimed group: the rate limit and pauses, the lease kept alive
//! during long pushes, creates (recorded first, repeated exactly after a crash), updates,
//! deletes and digest skips. Never panics: a panic in a syncer becomes a permanent error.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;
use tracing::Instrument;

use super::report::{Attempt, Operation, PreparedGroup, RecordedCreate};
use super::{Engine, payload_text};
use crate::panic::panic_message;
use crate::queue::Synced;
use crate::references::{Lookups, Reference};
use crate::{ClaimedGroup, Error, PushContext, Result, Syncer, TranslateContext, digest};

impl Engine {
    /// Waits for the syncer's rate limit (and any pause) before a request.
    pub(super) async fn take_token(&self, syncer: &dyn Syncer) -> Result<()> {
        // A pause learnt at the last claim, or from a 429 this engine recorded, holds back the
        // groups already claimed too.
        let until = self
            .paused
            .lock()
            .expect("pause table")
            .get(syncer.name())
            .copied();
        if let Some(until) = until {
            let wait = until - self.clock.now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let Some(limits) = syncer.limits().filter(|l| l.per_second.is_some()) else {
            return Ok(());
        };
        while let Some(wait) =
            crate::limits::acquire(&self.db, syncer.name(), &limits, self.clock.now_ms()).await?
        {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Translates `group` and pushes it unless the remote already holds the payload (`full`
    /// pushes regardless). Never panics: a panic in the syncer becomes a permanent error.
    pub(crate) async fn process(&self, group: ClaimedGroup, full: bool) -> Attempt {
        self.process_translated(group, full, None, None, Vec::new())
            .await
    }

    /// [`process`](Self::process) for a group from [`claim_prepared`](Self::claim_prepared),
    /// with its translation (or, where the batch could not translate it, translating it now)
    /// and the create recorded for it.
    ///
    /// A group that waited for a slot longer than a third of the lease has its lease renewed
    /// before the push; if the lease is gone (another worker took the group over) or cannot be
    /// renewed, nothing is pushed and the attempt carries that error (recording it then changes
    /// nothing, the lease being someone else's).
    pub(crate) async fn process_prepared(&self, prepared: PreparedGroup, full: bool) -> Attempt {
        if prepared.claimed_at.elapsed() > self.config.lease / 3 {
            let lost = match self.renew(&[prepared.group.id]).await {
                Ok(1) => None,
                Ok(_) => Some(Error::retryable(
                    "lost the lease while waiting for a free slot: another worker took the group over",
                )),
                Err(error) => Some(Error::retryable(format!(
                    "could not renew the lease before the push: {error}"
                ))),
            };
            if let Some(error) = lost {
                return Attempt {
                    group: prepared.group,
                    operation: Operation::None,
                    result: Err(error),
                    started_at: self.clock.now_ms(),
                    duration: Duration::ZERO,
                    references: None,
                };
            }
        }
        self.process_translated(
            prepared.group,
            full,
            prepared.translated,
            prepared.create,
            prepared.references,
        )
        .await
    }

    /// Like [`process`](Self::process), with the translation already made (by
    /// [`Syncer::translate_many`](crate::Syncer::translate_many)) when `translated` is given,
    /// having read `references`.
    async fn process_translated(
        &self,
        group: ClaimedGroup,
        full: bool,
        translated: Option<Result<Option<Value>>>,
        create: Option<RecordedCreate>,
        references: Vec<Reference>,
    ) -> Attempt {
        let started_at = self.clock.now_ms();
        let start = Instant::now();
        let span = tracing::info_span!("push", group = group.id, syncer = %group.syncer, version = group.version);
        let work =
            AssertUnwindSafe(self.translate_and_push(&group, full, translated, create, references))
                .catch_unwind();
        let guarded = async {
            tokio::select! {
                done = work => Ok(done),
                lost = self.keep_lease(&group) => Err(lost),
            }
        };
        let (operation, result, references) =
            match tokio::time::timeout(self.config.push_timeout, guarded)
                .instrument(span)
                .await
            {
                Ok(Err(lease_lost)) => (Operation::None, Err(lease_lost), None),
                Ok(Ok(Ok(done))) => done,
                Ok(Ok(Err(panic))) => (
                    Operation::None,
                    Err(Error::permanent(format!(
                        "the syncer panicked: {}",
                        panic_message(&panic)
                    ))),
                    None,
                ),
                Err(_) => (
                    Operation::None,
                    Err(Error::retryable(format!(
                        "timed out after {:?}",
                        self.config.push_timeout
                    ))),
                    None,
                ),
            };
        Attempt {
            group,
            operation,
            result,
            started_at,
            duration: start.elapsed(),
            references,
        }
    }

    /// Renews the lease on `group` every third of the lease while its push runs. Returns (and
    /// so abandons the push) only when the lease is lost, or could not be renewed for two thirds
    /// of its length: past that point another worker may take the group over.
    async fn keep_lease(&self, group: &ClaimedGroup) -> Error {
        let every = self.config.lease / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.renew(&[group.id]).await {
                Ok(1) => renewed = Instant::now(),
                Ok(_) => {
                    return Error::retryable(
                        "lost the lease during the push: another worker took the group over",
                    );
                }
                Err(error) if renewed.elapsed() >= self.config.lease * 2 / 3 => {
                    return Error::retryable(format!(
                        "could not renew the lease during the push ({error}); abandoned it so that \
                         another worker can take the group over"
                    ));
                }
                Err(error) => {
                    tracing::warn!(group = group.id, %error, "could not renew a lease; retrying");
                }
            }
        }
    }

    /// Translates (unless `translated` is given, with the `references` it read) and pushes
    /// `group`. With the outcome, the references the remote's record now carries when it holds
    /// this translation (none once deleted), `None` when unknown.
    async fn translate_and_push(
        &self,
        group: &ClaimedGroup,
        full: bool,
        translated: Option<Result<Option<Value>>>,
        recorded: Option<RecordedCreate>,
        references: Vec<Reference>,
    ) -> (
        Operation,
        std::result::Result<Synced, Error>,
        Option<Vec<Reference>>,
    ) {
        let Some(syncer) = self.registry.get(&group.syncer) else {
            return (
                Operation::None,
                Err(Error::Config(format!(
                    "no syncer `{}` is registered",
                    group.syncer
                ))),
                None,
            );
        };
        let (payload, references) = if group.root_deleted {
            (None, Vec::new())
        } else {
            let (translation, references) = match translated {
                Some(done) => (done, references),
                None => {
                    let lookups = Lookups::default();
                    let cx = TranslateContext::recording(&self.db, group, &lookups);
                    let done = syncer.translate(&cx).await;
                    (done, lookups.take(group.id))
                }
            };
            match translation {
                Ok(payload) => (payload, references),
                Err(e) => return (Operation::None, Err(e), None),
            }
        };
        let (operation, result) = self
            .push_translation(syncer, group, full, payload, recorded)
            .await;
        let carried = match &result {
            Ok(Synced::Deleted) => Some(Vec::new()),
            // The remote holds an earlier attempt's body, or (a one-time sync) the first one.
            Ok(Synced::Pushed {
                caught_up: false, ..
            }) => None,
            Ok(Synced::Skipped) if syncer.create_only() => None,
            Ok(_) => Some(references),
            Err(_) => None,
        };
        (operation, result, carried)
    }

    /// Pushes the translation `payload` of `group` (`None`: the root is gone).
    async fn push_translation(
        &self,
        syncer: &std::sync::Arc<dyn Syncer>,
        group: &ClaimedGroup,
        full: bool,
        payload: Option<Value>,
        recorded: Option<RecordedCreate>,
    ) -> (Operation, std::result::Result<Synced, Error>) {
        // A create an earlier attempt sent and never recorded comes first, exactly as it was
        // sent: the remote may hold its record already.
        if group.remote_id.is_none()
            && let Some(pending) = &group.pending_create
            && !syncer.creates_upsert()
        {
            return (
                Operation::Create,
                self.repeat_create(syncer, group, pending, payload.as_ref(), full)
                    .await,
            );
        }
        let Some(payload) = payload else {
            // The root is gone: delete the remote copy if there is one, then close the group.
            let Some(remote_id) = group.remote_id.as_ref() else {
                return (Operation::None, Ok(Synced::Deleted));
            };
            let cx = PushContext::new(group, "delete");
            if let Err(e) = self.take_token(syncer.as_ref()).await {
                return (Operation::None, Err(e));
            }
            return (
                Operation::Delete,
                syncer
                    .delete(&cx, remote_id.as_str())
                    .await
                    .map(|()| Synced::Deleted),
            );
        };
        let Some(remote_id) = group.remote_id.as_ref() else {
            return (
                Operation::Create,
                self.create(syncer, group, &payload, recorded).await,
            );
        };
        let digest = digest::digest(syncer.name(), syncer.payload_version(), &payload);
        if !full && group.last_digest.as_deref() == Some(digest.as_str()) {
            return (Operation::None, Ok(Synced::Skipped));
        }
        // A one-time sync: created once, never updated.
        if syncer.create_only() {
            return (Operation::None, Ok(Synced::Skipped));
        }
        if !full && let Some(source) = syncer.mirrored_by() {
            match crate::source::is_echo(&self.db, source, remote_id.as_str(), &payload).await {
                Ok(true) => {
                    return (
                        Operation::None,
                        Ok(Synced::Echo {
                            remote_id: remote_id.clone(),
                            digest,
                            payload: payload_text(&payload),
                        }),
                    );
                }
                Ok(false) => {}
                Err(error) => return (Operation::None, Err(error)),
            }
        }
        let cx = PushContext::new(group, &digest);
        if let Err(e) = self.take_token(syncer.as_ref()).await {
            return (Operation::None, Err(e));
        }
        let text = payload_text(&payload);
        let done = |remote_id: crate::RemoteId| Synced::Pushed {
            remote_id,
            digest: digest.clone(),
            payload: text.clone(),
            caught_up: true,
        };
        let result = if let Some(limit) = syncer.batch_limit() {
            let item = crate::BulkItem {
                remote_id: Some(remote_id.clone()),
                idempotency_key: cx.idempotency_key().to_owned(),
                payload,
            };
            self.batchers.push(syncer, limit, item).await.map(done)
        } else {
            syncer
                .update(&cx, remote_id.as_str(), &payload)
                .await
                .map(|()| done(remote_id.clone()))
        };
        (Operation::Update, result)
    }
}
