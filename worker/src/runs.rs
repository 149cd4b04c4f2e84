//! INTERFACE (to be implemented): starting, cancelling and retrying runs.

use crmsync_entity::TenantId;
use crmsync_entity::enums::{SyncMode, SyncTrigger};
use crmsync_entity::models::sync_run;
use sea_orm::DatabaseConnection;

use crate::events::EventBus;
use crate::jobs::{JobQueue, QueueError};

/// Why a run could not be started, cancelled or retried.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such connector or run for this tenant.
    #[error("not found")]
    NotFound,
    /// The request cannot apply now (e.g. a disabled connector, a final run).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Creates a QUEUED run and enqueues its job, or returns the connector's run
/// already queued or running (one at a time per connector, R4).
pub async fn start_sync(
    _db: &DatabaseConnection,
    _queue: &JobQueue,
    _bus: &dyn EventBus,
    _tenant: &TenantId,
    _connector_id: &str,
    _trigger: SyncTrigger,
    _mode: SyncMode,
) -> Result<sync_run::Model, RunError> {
    todo!("worker issue 3")
}

/// Cancels a run: a QUEUED run at once, a RUNNING one at its next page.
pub async fn cancel_sync(
    _db: &DatabaseConnection,
    _bus: &dyn EventBus,
    _tenant: &TenantId,
    _run_id: &str,
) -> Result<sync_run::Model, RunError> {
    todo!("worker issue 3")
}

/// A new run that retries only the rejected contacts of `run_id`.
pub async fn retry_rejected(
    _db: &DatabaseConnection,
    _queue: &JobQueue,
    _bus: &dyn EventBus,
    _tenant: &TenantId,
    _run_id: &str,
) -> Result<sync_run::Model, RunError> {
    todo!("worker issue 3")
}
