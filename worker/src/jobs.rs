//! INTERFACE (to be implemented): sync jobs on the apalis queue.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::credentials::CredentialsKey;
use crate::events::EventBus;
use crate::sync::SyncOptions;

/// The named queue every process reads (never the type path: see stack notes).
pub const QUEUE: &str = "crmsync-sync";

/// What a worker needs to run one sync: re-checked against the database by tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// The tenant; the worker reads the run and connector through tenant-scoped finders.
    pub tenant_id: String,
    /// The run to execute.
    pub run_id: String,
    /// The run's connector.
    pub connector_id: String,
}

/// Why the queue failed.
#[derive(Debug, thiserror::Error)]
#[error("job queue: {0}")]
pub struct QueueError(pub String);

/// The job queue, on the application's database pool.
#[derive(Debug, Clone)]
pub struct JobQueue {}

impl JobQueue {
    /// Sets up the queue's tables on the database's pool (SQLite or PostgreSQL).
    pub async fn connect(_db: &DatabaseConnection) -> Result<Self, QueueError> {
        todo!("worker issue 3")
    }

    /// Enqueues a job under a task id we generate; returns that id.
    pub async fn enqueue(&self, _job: &SyncJob) -> Result<String, QueueError> {
        todo!("worker issue 3")
    }
}

/// Everything a running sync needs.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// The database.
    pub db: DatabaseConnection,
    /// Where progress goes.
    pub bus: Arc<dyn EventBus>,
    /// Decrypts connector credentials.
    pub credentials_key: Arc<CredentialsKey>,
    /// HTTP client for the CRMs.
    pub http: reqwest::Client,
    /// Tuning.
    pub options: SyncOptions,
}

/// Runs jobs from the queue until `shutdown` completes.
pub async fn run_worker(
    _queue: JobQueue,
    _ctx: WorkerContext,
    _shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), QueueError> {
    todo!("worker issue 3")
}
