//! Sync jobs on the apalis queue, stored in the application's own database
//! (SQLite or PostgreSQL, the same pool sea-orm uses), and the worker loop that
//! runs them.
//!
//! - The queue is named ([`QUEUE`]): the default name is the Rust type path,
//!   which differs between binaries.
//! - We make the task id (a ULID) and store it on the run; `max_attempts` is set
//!   (the storage default is 25 immediate retries).
//! - SQLite polls every 250 ms (its heartbeat alone is 30 s); PostgreSQL is told
//!   of new jobs by LISTEN/NOTIFY. Either way a job is picked up within a second.
//! - Jobs run under a timeout, so a hung run is not held forever.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use serde::{Deserialize, Serialize};

use crate::credentials::CredentialsKey;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::sync::{SyncError, SyncOptions};

/// The named queue every process reads (never the type path: see stack notes).
pub const QUEUE: &str = "crmsync-sync";
/// Deliveries of one job before it is given up.
pub const MAX_ATTEMPTS: usize = 3;
/// The longest a run may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How often SQLite storage looks for new jobs.
const SQLITE_POLL: Duration = Duration::from_millis(250);
/// Heartbeats: a dead worker's jobs are taken back after about a minute.
const HEARTBEAT: Duration = Duration::from_secs(20);

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

#[derive(Clone)]
enum Storage {
    Sqlite(SqliteStorage<SyncJob>),
    Postgres(PostgresStorage<SyncJob>),
}

/// The job queue, on the application's database pool.
#[derive(Clone)]
pub struct JobQueue {
    storage: Storage,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.storage {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
        };
        f.debug_struct("JobQueue")
            .field("backend", &backend)
            .field("queue", &QUEUE)
            .finish()
    }
}

fn sqlite_config() -> apalis_sqlite::Config {
    apalis_sqlite::Config::default()
        .queue(QUEUE)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(3)
        .batch_size(4)
}

fn postgres_config() -> apalis_postgres::Config {
    apalis_postgres::Config::default()
        .queue(QUEUE)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(3)
        .batch_size(4)
}

impl JobQueue {
    /// Sets up the queue's tables on the database's pool (SQLite or PostgreSQL).
    pub async fn connect(db: &DatabaseConnection) -> Result<Self, QueueError> {
        let storage = match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                SqliteStorage::setup(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the SQLite queue: {e}")))?;
                Storage::Sqlite(SqliteStorage::new(pool).with_config(sqlite_config()))
            }
            DatabaseBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                PostgresStorage::<()>::setup(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the PostgreSQL queue: {e}")))?;
                Storage::Postgres(PostgresStorage::new(pool).with_config(postgres_config()))
            }
            other => return Err(QueueError(format!("unsupported database {other:?}"))),
        };
        Ok(Self { storage })
    }

    /// Enqueues a job under a task id we generate; returns that id.
    pub async fn enqueue(&self, job: &SyncJob) -> Result<String, QueueError> {
        let id = new_task_id();
        self.enqueue_with_id(job, &id).await?;
        Ok(id)
    }

    /// Enqueues a job under a task id made by [`new_task_id`] (and already stored
    /// on its run, so the run row can be committed before the job exists).
    pub async fn enqueue_with_id(&self, job: &SyncJob, task_id: &str) -> Result<(), QueueError> {
        let ulid: ulid::Ulid = task_id
            .parse()
            .map_err(|_| QueueError(format!("task id {task_id} is not a ULID")))?;
        let task = TaskBuilder::new(job.clone())
            .task_id(TaskId::from_ulid(ulid))
            .max_attempts(MAX_ATTEMPTS)
            .build();
        let result = match &self.storage {
            Storage::Sqlite(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
            Storage::Postgres(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
        };
        result.map_err(|e| QueueError(format!("enqueueing run {}: {e}", job.run_id)))
    }

    /// Checks that the queue's storage answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), QueueError> {
        self.pending_jobs().await.map(|_| ())
    }

    /// Jobs of our queue waiting for a worker, failed ones due for a retry
    /// included (what apalis fetches next); `None` where the storage cannot say.
    pub async fn pending_jobs(&self) -> Result<Option<u64>, QueueError> {
        use sea_orm::sqlx;
        // The storages' own tables and states (apalis-sqlite and -postgres 1.0).
        let count: i64 = match &self.storage {
            Storage::Sqlite(s) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(QUEUE)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
            Storage::Postgres(s) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(QUEUE)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
        };
        Ok(Some(count.max(0) as u64))
    }
}

/// A fresh task id (a ULID).
pub fn new_task_id() -> String {
    ulid::Ulid::generate().to_string()
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
    /// Where runs, items and CRM calls are counted.
    pub metrics: Metrics,
}

/// Host, process id and a random suffix: a name no other worker holds.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let suffix: u32 = rand::random();
    format!("crmsync-{host}-{}-{suffix:08x}", std::process::id())
}

async fn handle(job: SyncJob, ctx: Data<WorkerContext>) -> Result<(), BoxDynError> {
    match crate::sync::run_sync(&ctx, &job).await {
        Ok(run) => {
            tracing::info!(run = %run.id, status = %run.status, "sync run ended");
            Ok(())
        }
        // A job for a run or tenant that does not exist never will: do not retry.
        Err(SyncError::NotFound) => Err(AbortError::new(SyncError::NotFound).into()),
        Err(e) => Err(e.into()),
    }
}

/// Runs jobs from the queue until `shutdown` completes. A backend error
/// restarts the worker after a pause (under a new name).
pub async fn run_worker(
    queue: JobQueue,
    ctx: WorkerContext,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), QueueError> {
    tokio::pin!(shutdown);
    loop {
        let name = worker_name();
        let run = async {
            match &queue.storage {
                Storage::Sqlite(s) => {
                    let backend = s.clone().poll_with_interval(SQLITE_POLL);
                    WorkerBuilder::new(name.as_str())
                        .backend(backend)
                        .data(ctx.clone())
                        .timeout(JOB_TIMEOUT)
                        .build(handle)
                        .run()
                        .await
                }
                Storage::Postgres(s) => {
                    let backend = s.clone().with_pubsub();
                    WorkerBuilder::new(name.as_str())
                        .backend(backend)
                        .data(ctx.clone())
                        .timeout(JOB_TIMEOUT)
                        .build(handle)
                        .run()
                        .await
                }
            }
        };
        tokio::select! {
            result = run => {
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(worker = %name, error = %e, "job worker stopped; restarting");
                    }
                }
            }
            () = &mut shutdown => return Ok(()),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}
