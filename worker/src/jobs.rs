//! Sync jobs on the apalis queue (the loop that runs them is
//! [`crate::worker`]). The queue is stored in the application's own database (SQLite or PostgreSQL, the same
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
//! - A job is a token for a slot ([`crate::slots`]): the worker that gets it
//!   takes the fairest run waiting. FORM runs' tokens go on a queue of their
//!   own (the queue's name and `-form`), read by the FORM lane's slots.

use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use redis::aio::ConnectionManagerConfig;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};

pub use crate::slots::Lane;
pub use crate::sync::SyncJob;

/// The named queue every process reads (never the type path: see stack notes).
pub const QUEUE: &str = "crmsync-sync";
/// Deliveries of one job before it is given up. A delivery is spent when a
/// worker dies and another takes over; a run handed back (its slice over, or
/// its worker shutting down) gets a new job instead, and spends none.
pub const MAX_ATTEMPTS: usize = 8;
/// The longest a run may take.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How often SQLite and Redis storage look for new jobs.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How often PostgreSQL storage looks for jobs that came back without a
/// NOTIFY (re-enqueued after a worker died, or handed back at shutdown).
pub(crate) const PG_POLL: Duration = Duration::from_secs(1);
/// The default interval of worker heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// Heartbeats a worker may miss before its jobs are handed to another.
pub const MISSED_HEARTBEATS: usize = 3;
/// The longest [`JobQueue::ping`] and [`JobQueue::depth`] wait.
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

/// Why the queue failed.
#[derive(Debug, thiserror::Error)]
#[error("job queue: {0}")]
pub struct QueueError(pub String);

/// The storage the queue's jobs live in (the worker loop polls each its own way).
#[derive(Clone)]
pub(crate) enum Storage {
    Sqlite(SqliteStorage<SyncJob>),
    Postgres(PostgresStorage<SyncJob>),
    Redis(RedisStorage<SyncJob>),
}

/// The job queue: on the application's database pool, or on Redis.
#[derive(Clone)]
pub struct JobQueue {
    pub(crate) storage: Storage,
    /// The FORM lane's queue, beside it.
    pub(crate) form: Storage,
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
        let form_queue = format!("{queue}-form");
        let (storage, form) = match (&settings.redis_url, db.get_database_backend()) {
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
                let on = |name: &str| {
                    let config = apalis_redis::Config::default()
                        .queue(name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(4);
                    Storage::Redis(RedisStorage::new(connection.clone()).with_config(config))
                };
                (on(queue), on(&form_queue))
            }
            (None, DatabaseBackend::Sqlite) => {
                let pool = db.get_sqlite_connection_pool();
                // Its tables only: `SqliteStorage::setup` also sets pragmas on
                // whichever pooled connections it is given (a 512 MB page cache,
                // `synchronous = OFF`, an ANALYZE of empty tables), which the
                // rest of crmsync's queries then run with.
                SqliteStorage::migrations()
                    .run(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the SQLite queue: {e}")))?;
                let on = |name: &str| {
                    let config = apalis_sqlite::Config::default()
                        .queue(name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(4);
                    Storage::Sqlite(SqliteStorage::new(pool).with_config(config))
                };
                (on(queue), on(&form_queue))
            }
            (None, DatabaseBackend::Postgres) => {
                let pool = db.get_postgres_connection_pool();
                PostgresStorage::<()>::setup(pool)
                    .await
                    .map_err(|e| QueueError(format!("setting up the PostgreSQL queue: {e}")))?;
                let on = |name: &str| {
                    let config = apalis_postgres::Config::default()
                        .queue(name)
                        .heartbeat_interval(heartbeat)
                        .missed_heartbeats(MISSED_HEARTBEATS)
                        .batch_size(4);
                    Storage::Postgres(PostgresStorage::new(pool).with_config(config))
                };
                (on(queue), on(&form_queue))
            }
            (None, other) => return Err(QueueError(format!("unsupported database {other:?}"))),
        };
        Ok(Self {
            storage,
            form,
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

    /// Enqueues a job on the main lane under a task id made by
    /// [`new_task_id`] (and already stored on its run, so the run row can be
    /// committed before the job exists).
    pub async fn enqueue_with_id(&self, job: &SyncJob, task_id: &str) -> Result<(), QueueError> {
        self.enqueue_in(Lane::Main, job, task_id).await
    }

    /// Enqueues a token for a slot of `lane`, naming `job`'s run, under a
    /// task id made by [`new_task_id`].
    pub async fn enqueue_in(
        &self,
        lane: Lane,
        job: &SyncJob,
        task_id: &str,
    ) -> Result<(), QueueError> {
        let ulid: ulid::Ulid = task_id
            .parse()
            .map_err(|_| QueueError(format!("task id {task_id} is not a ULID")))?;
        let task = TaskBuilder::new(job.clone())
            .task_id(TaskId::from_ulid(ulid))
            .max_attempts(MAX_ATTEMPTS)
            .build();
        let storage = match lane {
            Lane::Main => &self.storage,
            Lane::Form => &self.form,
        };
        let result = match storage {
            Storage::Sqlite(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
            Storage::Postgres(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
            Storage::Redis(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
        };
        result.map_err(|e| QueueError(format!("enqueueing run {}: {e}", job.run_id)))
    }

    /// Jobs of our queue (both lanes) waiting for a worker: on the
    /// databases, failed ones due for a retry included (what apalis fetches
    /// next); on Redis, the queues' active lists.
    pub async fn pending_jobs(&self) -> Result<Option<u64>, QueueError> {
        use sea_orm::sqlx;
        let form_queue = format!("{}-form", self.queue);
        // The storages' own tables, states and keys (apalis-sqlite, -postgres
        // and -redis 1.0).
        let count: i64 = match (&self.storage, &self.form) {
            (Storage::Sqlite(s), _) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM Jobs WHERE job_type IN (?1, ?2) \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(&self.queue)
            .bind(&form_queue)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
            (Storage::Postgres(s), _) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type IN ($1, $2) \
                 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind(&self.queue)
            .bind(&form_queue)
            .fetch_one(s.pool())
            .await
            .map_err(|e| QueueError(format!("reading the queue: {e}")))?,
            (Storage::Redis(s), Storage::Redis(form)) => {
                let mut n = 0;
                for s in [s, form] {
                    let mut s = s.clone();
                    let list = s.get_config().active_jobs_list();
                    let len: i64 = redis::cmd("LLEN")
                        .arg(list)
                        .query_async(s.get_connection())
                        .await
                        .map_err(|e| QueueError(format!("reading the queue: {e}")))?;
                    n += len;
                }
                n
            }
            (Storage::Redis(_), _) => 0,
        };
        Ok(Some(count.max(0) as u64))
    }

    /// The queue depth for a metrics scrape: [`JobQueue::pending_jobs`]
    /// within three seconds, or `None` (logged) when the queue does not answer.
    pub async fn depth(&self) -> Option<u64> {
        match tokio::time::timeout(PING_TIMEOUT, self.pending_jobs()).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: cannot read the queue depth");
                None
            }
            Err(_) => {
                tracing::warn!("metrics: reading the queue depth timed out");
                None
            }
        }
    }
}

/// A fresh task id (a ULID).
pub fn new_task_id() -> String {
    ulid::Ulid::generate().to_string()
}
