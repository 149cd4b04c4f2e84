//! A short cache of each connector's CRM fields (`Connector.crmFields`, and
//! mapping validation), so that one request, or many in a row, asking for
//! the same fields makes one CRM call.
//!
//! - An entry lives [`TTL`] and is keyed by tenant, connector and module.
//! - It holds a digest of the connector's sealed credentials and base URL:
//!   new credentials or another address make it stale at once.
//! - Concurrent askers of one key wait for the one call in flight (aliases
//!   of a field resolve concurrently), and failures are not kept.
//!
//! The cache is the process's ([`crate::ApiState::fields_cache`]): every
//! process of a deployment makes its own calls, at most one per connector and
//! module per [`TTL`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_entity::enums::CrmModule;
use crmsync_entity::models::connector;
use crmsync_worker::crm::CrmField;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// How long fields are served without asking the CRM again.
pub const TTL: Duration = Duration::from_secs(60);

/// Beyond this many keys, stale ones are dropped when a key is added.
const PRUNE_ABOVE: usize = 1024;

type Key = (String, String, CrmModule);

struct Entry {
    /// The credentials and base URL the fields were read with.
    fingerprint: [u8; 32],
    fetched: Instant,
    fields: Arc<Vec<CrmField>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The cached fields of the process's connectors.
#[derive(Default)]
pub struct FieldsCache {
    slots: std::sync::Mutex<HashMap<Key, Slot>>,
}

impl std::fmt::Debug for FieldsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldsCache").finish_non_exhaustive()
    }
}

impl FieldsCache {
    /// The connector's fields for `module`: cached, or read with `fetch`.
    pub async fn fields<F, Fut>(
        &self,
        model: &connector::Model,
        module: CrmModule,
        fetch: F,
    ) -> Result<Arc<Vec<CrmField>>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<CrmField>, ApiError>>,
    {
        let fingerprint = fingerprint(model);
        let slot = self.slot((model.tenant_id.clone(), model.id.clone(), module));
        // Held across the call: concurrent askers find its result.
        let mut entry = slot.lock().await;
        if let Some(cached) = entry.as_ref()
            && cached.fingerprint == fingerprint
            && cached.fetched.elapsed() < TTL
        {
            return Ok(cached.fields.clone());
        }
        let fields = Arc::new(fetch().await?);
        *entry = Some(Entry {
            fingerprint,
            fetched: Instant::now(),
            fields: fields.clone(),
        });
        Ok(fields)
    }

    fn slot(&self, key: Key) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        if slots.len() >= PRUNE_ABOVE {
            // Slots nobody waits on whose fields are stale (or were never read).
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .try_lock()
                        .is_ok_and(|e| e.as_ref().is_some_and(|e| e.fetched.elapsed() < TTL))
            });
        }
        slots.entry(key).or_default().clone()
    }
}

fn fingerprint(model: &connector::Model) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(model.credentials.as_deref().unwrap_or_default());
    digest.update([0]);
    digest.update(model.base_url.as_deref().unwrap_or_default().as_bytes());
    digest.finalize().into()
}
