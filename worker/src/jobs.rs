//! Sync jobs on the apalis queue, and the worker loop that runs them. The queue
//! is stored in the application's own database (SQLite or PostgreSQL, the same
//! pool sea-orm uses), or on Redis when a queue URL is configured.
//!
//! - The queue is named ([`QUEUE`]): the default name is the Rust type path,
//!   which differs between binaries.
//! - We make the task id (a ULID) and store it on the run; `max_attempts` is set
//!   (the storage default is 25 immediate retries).
//! - SQLite and Redis poll every 250 ms (their heartbeat alone is 20 s);
//!   PostgreSQL is told of new jobs by LISTEN/NOTIFY, and polls every second
//!   for jobs that come back without an insert (re-enqueued or handed back).
//!   Either way a job is picked up within a second.
//! - Workers beat every [`QueueSettings::heartbeat`] (20 s by default); one
//!   silent for [`MISSED_HEARTBEATS`] beats is dead, and its jobs are taken back
//!   by a peer's next beat: 60 to 80 s after the death by default.
//! - Jobs run under a timeout, so a hung run is not held forever.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use redis::aio::ConnectionManagerConfig;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::credentials::CredentialsKey;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::sync::{SyncError, SyncOptions};

/// The named queue every process reads (never the type path: see stack notes).
pub const QUEUE: &str = "crmsync-sync";
/// Deliveries of one job before it is given up. A delivery is also spent when
/// a worker shuts down and hands the run back, or dies and another takes over.
pub const MAX_ATTEMPTS: usize = 8;
/// The longest a run may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How often SQLite and Redis storage look for new jobs.
const POLL: Duration = Duration::from_millis(250);
/// How often PostgreSQL storage looks for jobs that came back without a
/// NOTIFY (re-enqueued after a worker died, or handed back at shutdown).
const PG_POLL: Duration = Duration::from_secs(1);
/// The default interval of worker heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// Heartbeats a worker may miss before its jobs are handed to another.
pub const MISSED_HEARTBEATS: usize = 3;
/// The longest [`JobQueue::ping`] waits.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the queue lives and how soon a dead worker's jobs come back.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `redis://…` or `rediss://…` to keep the queue on Redis; `None` keeps it in
    /// the application's database.
    pub redis_url: Option<SecretString>,
    /// Interval of worker heartbeats ([`DEFAULT_HEARTBEAT`]; tests that kill
    /// workers use a second or two).
    pub heartbeat: Duration,
    /// The queue's name: [`QUEUE`], except in tests that share one Redis.
    pub queue: String,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            heartbeat: DEFAULT_HEARTBEAT,
            queue: QUEUE.to_owned(),
        }
    }
}

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
    Redis(RedisStorage<SyncJob>),
}

/// The job queue: on the application's database pool, or on Redis.
#[derive(Clone)]
pub struct JobQueue {
    storage: Storage,
    /// For [`JobQueue::ping`] when the queue is in the database.
    db: DatabaseConnection,
    /// The queue's name.
    queue: String,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("backend", &self.backend())
            .field("queue", &self.queue)
            .finish()
    }
}

impl JobQueue {
    /// The queue in the application's database, with the default settings.
    pub async fn connect(db: &DatabaseConnection) -> Result<Self, QueueError> {
        Self::connect_with(db, &QueueSettings::default()).await
    }

    /// The queue on Redis when `settings` names it, else in the application's
    /// database (its tables are created on the database's pool if missing).
    pub async fn connect_with(
        db: &DatabaseConnection,
        settings: &QueueSettings,
    ) -> Result<Self, QueueError> {
        let heartbeat = settings.heartbeat;
        let queue = settings.queue.as_str();
        let storage = match (&settings.redis_url, db.get_database_backend()) {
            (Some(url), _) => {
                let client = redis::Client::open(url.expose_secret())
                    .map_err(|e| QueueError(format!("the Redis URL: {e}")))?;
                // The default 500 ms reply timeout is short for the queue's
                // Lua scripts on a busy server.
                let connection = client
                    .get_connection_manager_with_config(
                        ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(Duration::from_secs(5)))
                            .set_response_timeout(Some(Duration::from_secs(5))),
                    )
                    .await
                    .map_err(|e| QueueError(format!("connecting to Redis: {e}")))?;
                let config = apalis_redis::Config::default()
                    .queue(queue)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS)
                    .batch_size(4);
                Storage::Redis(RedisStorage::new(connection).with_config(config))
            }
            (None, DatabaseBackend::Sqlite) => {
                let pool = db.get_sqlite_connection_pool();
                SqliteStorage::setup(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the SQLite queue: {e}")))?;
                let config = apalis_sqlite::Config::default()
                    .queue(queue)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS)
                    .batch_size(4);
                Storage::Sqlite(SqliteStorage::new(pool).with_config(config))
            }
            (None, DatabaseBackend::Postgres) => {
                let pool = db.get_postgres_connection_pool();
                PostgresStorage::<()>::setup(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the PostgreSQL queue: {e}")))?;
                let config = apalis_postgres::Config::default()
                    .queue(queue)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(MISSED_HEARTBEATS)
                    .batch_size(4);
                Storage::Postgres(PostgresStorage::new(pool).with_config(config))
            }
            (None, other) => return Err(QueueError(format!("unsupported database {other:?}"))),
        };
        Ok(Self {
            storage,
            db: db.clone(),
            queue: queue.to_owned(),
        })
    }

    /// Where the jobs are stored: `sqlite`, `postgres` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self.storage {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
            Storage::Redis(_) => "redis",
        }
    }

    /// Checks that the queue's store answers (the database, or Redis), within
    /// three seconds: for readiness probes.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let check = async {
            match &self.storage {
                Storage::Redis(s) => {
                    let mut s = s.clone();
                    redis::cmd("PING")
                        .query_async::<()>(s.get_connection())
                        .await
                        .map_err(|e| QueueError(format!("Redis does not answer: {e}")))
                }
                Storage::Sqlite(_) | Storage::Postgres(_) => self
                    .db
                    .ping()
                    .await
                    .map_err(|e| QueueError(format!("the database does not answer: {e}"))),
            }
        };
        tokio::time::timeout(PING_TIMEOUT, check)
            .await
            .map_err(|_| QueueError(format!("no answer within {PING_TIMEOUT:?}")))?
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
            Storage::Redis(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
        };
        result.map_err(|e| QueueError(format!("enqueueing run {}: {e}", job.run_id)))
    }

    /// Jobs of our queue waiting for a worker: on the databases, failed ones
    /// due for a retry included (what apalis fetches next); on Redis, the
    /// queue's active list.
    pub async fn pending_jobs(&self) -> Result<Option<u64>, QueueError> {
        use sea_orm::sqlx;
        // The storages' own tables, states and keys (apalis-sqlite, -postgres
        // and -redis 1.0).
        let count: i64 = match &self.storage {
            Storage::Sqlite(s) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM Jobs WHERE job_type = ?1 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(&self.queue)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
            Storage::Postgres(s) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(&self.queue)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
            Storage::Redis(s) => {
                let mut s = s.clone();
                let list = s.get_config().active_jobs_list();
                redis::cmd("LLEN")
                    .arg(list)
                    .query_async(s.get_connection())
                    .await
                    .map_err(|e| QueueError(format!("reading the queue: {e}")))?
            }
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
    /// HTTP client for the CRMs, under the outbound rule.
    pub http: crate::egress::HttpClient,
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
    // Short enough for a run's lease column with an execution id after it.
    let host: String = host.chars().take(40).collect();
    let suffix: u32 = rand::random();
    format!("crmsync-{host}-{}-{suffix:08x}", std::process::id())
}

/// This process's name, made once: host, process id and a random suffix
/// (the holder named on the runs it executes).
pub fn instance_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(worker_name).clone()
}

async fn handle(
    job: SyncJob,
    ctx: Data<WorkerContext>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    match crate::sync::run_sync(&ctx, &job).await {
        Ok(run) => {
            tracing::info!(run = %run.id, status = %run.status, "sync run ended");
            // Form submissions that came while it ran go in a run of their own.
            match crate::runs::after_run(&ctx.db, &queue, ctx.bus.as_ref(), &run).await {
                Ok(Some(next)) => {
                    tracing::info!(run = %next.id, "form submissions made while the run went on: FORM run queued");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "could not queue the FORM run of waiting submissions; the next run exports them");
                }
            }
            Ok(())
        }
        // A job for a run or tenant that does not exist never will: do not retry.
        Err(SyncError::NotFound) => Err(AbortError::new(SyncError::NotFound).into()),
        Err(e) => Err(e.into()),
    }
}

/// Runs jobs from the queue, at most `concurrency` at a time, until
/// `shutdown` completes. A backend error restarts the worker after a pause
/// (under a new name).
///
/// Shutdown is graceful: no new job is taken, and the runs in flight stop at
/// their next page (checkpoint saved), release their lease and go back to the
/// queue, where another worker takes them over at once.
pub async fn run_worker(
    queue: JobQueue,
    ctx: WorkerContext,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), QueueError> {
    let concurrency = concurrency.max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let draining = ctx.options.draining.clone();
    tokio::pin!(shutdown);
    loop {
        let name = worker_name();
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
            Ok::<(), WorkerError>(())
        };
        // The same worker on each storage (their backend types differ).
        macro_rules! worker_on {
            ($backend:expr) => {
                WorkerBuilder::new(name.as_str())
                    .backend($backend)
                    .data(ctx.clone())
                    .data(queue.clone())
                    .concurrency(concurrency)
                    .timeout(JOB_TIMEOUT)
                    .build(handle)
                    .run_until(signal)
                    .await
            };
        }
        let run = async {
            match &queue.storage {
                Storage::Sqlite(s) => worker_on!(s.clone().poll_with_interval(POLL)),
                Storage::Postgres(s) => {
                    // Woken by LISTEN/NOTIFY for new jobs, and polling for the
                    // ones that come back without an insert: a dead worker's,
                    // re-enqueued by a peer's heartbeat, and handed-back ones.
                    let pubsub = apalis_postgres::Pubsub::new(
                        s.pool().clone(),
                        s.config().queue.to_string(),
                    );
                    let strategy = Strategy::new().stream(pubsub).interval(PG_POLL);
                    worker_on!(s.clone().poll_with_strategy(strategy))
                }
                Storage::Redis(s) => worker_on!(s.clone().poll_with_interval(POLL)),
            }
        };
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => {
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(worker = %name, error = %e, "job worker stopped; restarting");
                    }
                }
            }
            () = &mut shutdown => {
                tracing::info!(worker = %name, "stopping: runs in flight go back to the queue at their next page");
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = stop.send(true);
                if let Err(e) = run.await {
                    tracing::warn!(worker = %name, error = %e, "job worker stopped with an error");
                }
                return Ok(());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}
