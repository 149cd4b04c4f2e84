//! Progress events (R3): published by the run as it works, delivered to
//! `syncProgress` / `syncEvents` subscribers of the same tenant only (T3).
//!
//! Three buses behind one trait, chosen by [`connect`]:
//!
//! - [`InProcessBus`]: a broadcast channel, for the embedded default (SQLite,
//!   one process). Needs neither PostgreSQL nor Redis.
//! - [`PgBus`]: PostgreSQL LISTEN/NOTIFY on the application's database, when it
//!   is PostgreSQL and no Redis is configured.
//! - [`RedisBus`]: Redis pub/sub, when the queue is on Redis (`CRMSYNC_QUEUE_URL`).
//!
//! The cross-process buses deliver an event to the publishing process's own
//! subscribers at once (no round trip through the server), and send it on the
//! wire from a background task, tagged with the process's origin id; each
//! process skips its own echoes, so a local subscriber sees an event exactly
//! once. Every bus has the same semantics: tenant isolation, a publish that
//! never blocks the run, and a lagging subscriber that loses intermediate
//! events (the next one carries the full counts) but never its stream.
//! Events are transient: one sent while a listener is reconnecting is lost.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::SyncRunStatus;
use crmsync_entity::models::sync_run;
use futures::Stream;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

mod pg;
mod redis_bus;
mod relay;

pub use pg::PgBus;
pub use redis_bus::RedisBus;

/// Counts of one leg (R1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegCounts {
    /// Created on the target side.
    pub created: i64,
    /// Updated on the target side.
    pub updated: i64,
    /// Nothing to do.
    pub unchanged: i64,
    /// Refused.
    pub rejected: i64,
    /// Changed on both sides.
    pub conflicts: i64,
    /// CRM records found deleted (S12).
    #[serde(default)]
    pub deleted: i64,
}

/// Both legs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legs {
    /// Platform to CRM.
    pub to_crm: LegCounts,
    /// CRM to platform.
    pub from_crm: LegCounts,
}

impl Legs {
    /// The legs as stored on a run row.
    pub fn of_run(run: &sync_run::Model) -> Self {
        Self {
            to_crm: LegCounts {
                created: run.to_crm_created,
                updated: run.to_crm_updated,
                unchanged: run.to_crm_unchanged,
                rejected: run.to_crm_rejected,
                conflicts: run.to_crm_conflicts,
                deleted: run.to_crm_deleted,
            },
            from_crm: LegCounts {
                created: run.from_crm_created,
                updated: run.from_crm_updated,
                unchanged: run.from_crm_unchanged,
                rejected: run.from_crm_rejected,
                conflicts: run.from_crm_conflicts,
                deleted: run.from_crm_deleted,
            },
        }
    }
}

/// One progress event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEvent {
    /// The tenant: subscribers see only their own.
    pub tenant_id: String,
    /// The run.
    pub run_id: String,
    /// The connector.
    pub connector_id: String,
    /// The run's status at that moment.
    pub status: SyncRunStatus,
    /// What it is doing (`queued`, `import`, `export`, `done`).
    pub phase: String,
    /// Records processed so far.
    pub processed: i64,
    /// Counts so far.
    pub legs: Legs,
    /// When.
    pub at: DateTime<Utc>,
}

impl SyncEvent {
    /// The event describing a run row as it is now.
    pub fn of_run(run: &sync_run::Model) -> Self {
        Self {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
            connector_id: run.connector_id.clone(),
            status: run.status,
            phase: run.phase.clone(),
            processed: run.processed,
            legs: Legs::of_run(run),
            at: Utc::now(),
        }
    }
}

/// A stream of one tenant's events.
pub type EventStream = Pin<Box<dyn Stream<Item = SyncEvent> + Send>>;

/// Where runs publish and subscriptions listen.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Sends an event to the tenant's current subscribers; never blocks the run.
    fn publish(&self, event: SyncEvent);
    /// Every event of `tenant_id` published from now on.
    fn subscribe(&self, tenant_id: &str) -> EventStream;
}

/// Why a cross-process bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// LISTEN on PostgreSQL failed.
    #[error("event bus on PostgreSQL: {0}")]
    Postgres(#[from] sea_orm::sqlx::Error),
    /// Subscribing on Redis failed.
    #[error("event bus on Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The bus for this deployment: Redis pub/sub when `redis_url` is given (the
/// queue is on Redis), else LISTEN/NOTIFY when the database is PostgreSQL, else
/// (SQLite, one process) in-process.
///
/// The cross-process buses are listening when this returns, so an event
/// published anywhere afterwards reaches this process's subscribers.
pub async fn connect(
    db: &DatabaseConnection,
    redis_url: Option<&SecretString>,
) -> Result<Arc<dyn EventBus>, BusError> {
    if let Some(url) = redis_url {
        return Ok(Arc::new(RedisBus::connect(url.expose_secret()).await?));
    }
    let bus: Arc<dyn EventBus> = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            Arc::new(PgBus::connect(db.get_postgres_connection_pool()).await?)
        }
        _ => Arc::new(InProcessBus::default()),
    };
    Ok(bus)
}

/// A bus inside one process.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<SyncEvent>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: SyncEvent) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }

    fn subscribe(&self, tenant_id: &str) -> EventStream {
        let tenant_id = tenant_id.to_owned();
        let receiver = self.sender.subscribe();
        Box::pin(futures::stream::unfold(
            (receiver, tenant_id),
            |(mut receiver, tenant_id)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if event.tenant_id == tenant_id => {
                            return Some((event, (receiver, tenant_id)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            // A slow subscriber loses intermediate progress, never the stream:
                            // the next event carries the full counts.
                            tracing::warn!(missed, "event subscriber lagged");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    pub(super) fn event(tenant: &str, run: &str) -> SyncEvent {
        SyncEvent {
            tenant_id: tenant.into(),
            run_id: run.into(),
            connector_id: "c".into(),
            status: SyncRunStatus::Running,
            phase: "import".into(),
            processed: 1,
            legs: Legs::default(),
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn subscribers_see_only_their_tenants_events() {
        let bus = InProcessBus::default();
        let mut acme = bus.subscribe("acme");
        bus.publish(event("globex", "r1"));
        bus.publish(event("acme", "r2"));
        assert_eq!(acme.next().await.unwrap().run_id, "r2");
    }
}
