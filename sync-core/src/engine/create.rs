//! Creates: recorded on the group before they are sent, and repeated exactly (same key, same
//! body) by whoever takes the group over after a crash.

use std::sync::Arc;

use serde_json::Value;

use super::report::RecordedCreate;
use super::{Engine, payload_text};
use crate::queue::{self, Synced};
use crate::{ClaimedGroup, Error, PushContext, RemoteId, Result, Syncer, digest};

impl Engine {
    /// A fresh create of `payload`: recorded on the group first (unless the claim's batch did,
    /// or the syncer's creates upsert), then sent with the recorded key.
    pub(super) async fn create(
        &self,
        syncer: &Arc<dyn Syncer>,
        group: &ClaimedGroup,
        payload: &Value,
        recorded: Option<RecordedCreate>,
    ) -> std::result::Result<Synced, Error> {
        let create = match recorded {
            Some(create) => create,
            None => {
                let digest = digest::digest(syncer.name(), syncer.payload_version(), payload);
                let create = RecordedCreate {
                    key: group.idempotency_key(&digest),
                    payload: payload_text(payload),
                    digest,
                };
                if !syncer.creates_upsert() {
                    let row = [(group.id, create.key.as_str(), create.payload.as_str())];
                    let turn = self.write_turn().await;
                    let held = queue::record_pending_creates(&self.db, &group.lease_owner, &row)
                        .await
                        .map_err(|e| {
                            Error::retryable(format!(
                                "could not record the create before sending it: {e}"
                            ))
                        });
                    drop(turn);
                    let held = held?;
                    if !held.contains(&group.id) {
                        return Err(Error::retryable(
                            "lost the lease before the create was recorded: another worker took the group over",
                        ));
                    }
                }
                create
            }
        };
        self.take_token(syncer.as_ref()).await?;
        let cx = PushContext::with_key(group, create.key.clone(), false);
        let remote_id = self.send_create(syncer, &cx, payload).await?;
        Ok(Synced::Pushed {
            remote_id,
            digest: create.digest,
            payload: create.payload,
            caught_up: true,
        })
    }

    /// Repeats the create an earlier attempt recorded (same key, same body). The group stays
    /// due when the data changed since (or the root is gone), so that the next attempt updates
    /// (or deletes) the record it finds.
    pub(super) async fn repeat_create(
        &self,
        syncer: &Arc<dyn Syncer>,
        group: &ClaimedGroup,
        pending: &crate::PendingCreate,
        current: Option<&Value>,
        full: bool,
    ) -> std::result::Result<Synced, Error> {
        let body: Value = serde_json::from_str(&pending.payload).map_err(|e| {
            Error::permanent(format!(
                "the recorded body of the pending create of `{}` group `{}` is not JSON ({e})",
                group.syncer, group.root_key
            ))
        })?;
        self.take_token(syncer.as_ref()).await?;
        let cx = PushContext::with_key(group, pending.key.clone(), true);
        tracing::info!(group = group.id, syncer = %group.syncer, key = %pending.key, "repeating a create an earlier attempt may have delivered");
        let remote_id = self.send_create(syncer, &cx, &body).await?;
        let digest = digest::digest(syncer.name(), syncer.payload_version(), &body);
        let caught_up = !full
            && current.is_some_and(|p| {
                digest::digest(syncer.name(), syncer.payload_version(), p) == digest
            });
        Ok(Synced::Pushed {
            remote_id,
            digest,
            payload: pending.payload.clone(),
            caught_up,
        })
    }

    /// Sends a create, in a batch when the syncer pushes in batches.
    pub(super) async fn send_create(
        &self,
        syncer: &Arc<dyn Syncer>,
        cx: &PushContext<'_>,
        payload: &Value,
    ) -> Result<RemoteId> {
        match syncer.batch_limit() {
            Some(limit) => {
                let item = crate::BulkItem {
                    remote_id: None,
                    idempotency_key: cx.idempotency_key().to_owned(),
                    payload: payload.clone(),
                };
                self.batchers.push(syncer, limit, item).await
            }
            None => syncer.create(cx, payload).await,
        }
    }
}
