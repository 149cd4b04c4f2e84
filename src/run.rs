//! The long-running commands: wiring config into the database, queue, API and worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use crmsync_api::ApiState;
use crmsync_api::auth::{Authenticator, JwtKey, JwtSettings};
use crmsync_api::ops::Ops;
use crmsync_entity::enums::Role;
use crmsync_worker::context::WorkerContext;
use crmsync_worker::credentials::CredentialsKey;
use crmsync_worker::egress::{HttpClient, HttpOptions};
use crmsync_worker::events::EventBus;
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::metrics::Metrics;
use crmsync_worker::notify::Dispatcher;
use crmsync_worker::sync::SyncOptions;
use crmsync_worker::worker::still_waiting_for;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::config::Config;

/// Connects and migrates; errors name the variable.
async fn database(config: &Config) -> anyhow::Result<DatabaseConnection> {
    if config.is_embedded() {
        crate::config::create_data_dir(&config.data_dir)?;
    }
    let db = crmsync_entity::db::connect(&config.database_url)
        .await
        .context("CRMSYNC_DATABASE_URL: cannot connect to the database")?;
    crmsync_entity::db::migrate(&db)
        .await
        .context("applying database migrations")?;
    warn_without_autovacuum(&db).await;
    Ok(db)
}

/// PostgreSQL plans each page's lookups (links, CRM records, contacts by
/// id) from its table statistics, which autovacuum keeps fresh: without
/// them a lookup can read the whole table, so a large run slows down as its
/// tables grow. Said once at start, for the operator to act on.
async fn warn_without_autovacuum(db: &DatabaseConnection) {
    if crmsync_entity::db::autovacuum_off(db).await {
        tracing::warn!(
            "PostgreSQL's autovacuum is off: its table statistics go stale, and large syncs slow down as their tables grow; turn it on, or run ANALYZE regularly"
        );
    }
}

/// The job queue: on Redis when `CRMSYNC_QUEUE_URL` is set, else in the database.
async fn job_queue(config: &Config, db: &DatabaseConnection) -> anyhow::Result<JobQueue> {
    JobQueue::connect_with(db, &config.queue_settings())
        .await
        .context(if config.queue_url.is_some() {
            "CRMSYNC_QUEUE_URL: cannot set up the job queue on Redis"
        } else {
            "setting up the job queue"
        })
}

/// Progress events across processes: Redis pub/sub with `CRMSYNC_QUEUE_URL`,
/// else PostgreSQL LISTEN/NOTIFY; in-process in the embedded default.
async fn event_bus(config: &Config, db: &DatabaseConnection) -> anyhow::Result<Arc<dyn EventBus>> {
    crmsync_worker::events::connect(db, config.queue_url.as_ref())
        .await
        .context(if config.queue_url.is_some() {
            "CRMSYNC_QUEUE_URL: cannot subscribe to progress events on Redis"
        } else {
            "CRMSYNC_DATABASE_URL: cannot LISTEN for progress events"
        })
}

fn jwt_settings(config: &Config) -> anyhow::Result<JwtSettings> {
    let key = match (&config.jwt_secret, &config.jwt_public_key) {
        (Some(secret), None) => JwtKey::Hs256(secret.clone()),
        (None, Some(pem)) => JwtKey::Rs256PublicPem(pem.clone()),
        _ => bail!("CRMSYNC_JWT_SECRET: set either CRMSYNC_JWT_SECRET or CRMSYNC_JWT_PUBLIC_KEY"),
    };
    Ok(JwtSettings {
        key,
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
    })
}

fn credentials_key(config: &Config) -> anyhow::Result<Arc<CredentialsKey>> {
    let encoded = config
        .credentials_key
        .as_ref()
        .context("CRMSYNC_CREDENTIALS_KEY: not set")?;
    Ok(Arc::new(
        CredentialsKey::from_base64(encoded.expose_secret()).context("CRMSYNC_CREDENTIALS_KEY")?,
    ))
}

/// The client of every CRM call, under the outbound rule.
fn http_client(config: &Config) -> anyhow::Result<HttpClient> {
    Ok(config.egress().client(HttpOptions::default())?)
}

/// Ctrl-C or SIGTERM (what process managers and orchestrators send).
///
/// The handlers are installed here, before the caller says it serves: a
/// signal sent as soon as the process is ready stops it gracefully instead
/// of killing it.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

/// `crmsync serve`: the API and, unless `worker` is `None` (`--no-worker`), an
/// in-process worker carrying out that many runs at once.
pub async fn serve(mut config: Config, demo: bool, worker: Option<usize>) -> anyhow::Result<()> {
    config.ensure_keys()?;
    if demo && !config.allow_local_targets {
        // The demo's CRMs are the sandbox, on this machine.
        tracing::info!("--demo: CRMSYNC_ALLOW_LOCAL_TARGETS is on for the sandbox CRMs");
        config.allow_local_targets = true;
    }
    if demo {
        // GraphiQL documents the schema before the demo's token is pasted in.
        config.introspection = crmsync_api::Introspection::Always;
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("CRMSYNC_BIND: cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    if config.public_url == format!("http://{}", config.bind) {
        config.public_url = format!("http://{addr}");
    }
    let db = database(&config).await?;
    let queue = job_queue(&config, &db).await?;
    let bus = event_bus(&config, &db).await?;
    let key = credentials_key(&config)?;
    let http = http_client(&config)?;
    let (stop, shutdown) = crmsync_api::Shutdown::new();
    let signalled = shutdown_signal()?;
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    let metrics = Metrics::new();
    let state = ApiState {
        db: db.clone(),
        queue: queue.clone(),
        bus: bus.clone(),
        credentials_key: key.clone(),
        auth: Arc::new(Authenticator::new(jwt_settings(&config)?)?),
        http: http.clone(),
        public_url: config.public_url.clone(),
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        schedule_min_interval: config.schedule_min_interval,
        ws_max_subscriptions: config.ws_max_subscriptions,
        rate_limits: Arc::new(crmsync_api::rate_limit::RateLimits::new(config.rate_limits)),
        introspection: config.introspection,
        fields_cache: Default::default(),
        // The cap the workers apply: set, or the in-process worker's.
        tenant_cap: worker
            .map(|slots| config.slots.cap_for(slots))
            .or(config.slots.tenant_cap),
    };
    let context = WorkerContext {
        db,
        bus,
        credentials_key: key,
        http,
        options: SyncOptions {
            lease: config.run_lease(),
            slots: config.slots.clone(),
            ..SyncOptions::new(config.public_url.clone())
        },
        metrics,
    };
    // A process with a worker also offers to schedule, to prune and to keep
    // the connectors' real-time subscriptions (one process does each).
    let scheduler = worker.map(|_| {
        let scheduler = scheduler(&config, &context, &queue);
        let pruner = pruner(&config, &context);
        let realtime = realtime(&config, &context, &queue, shutdown.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::join!(
                scheduler.run(shutdown.started()),
                pruner.run(shutdown.started()),
                realtime
            );
        })
    });
    let delivery = config.delivery_settings()?;
    let worker = worker.map(|concurrency| {
        let shutdown = shutdown.clone();
        // Every worker process sends the notifications outbox (R5).
        let dispatcher = Dispatcher::new(
            context.db.clone(),
            context.credentials_key.clone(),
            delivery,
        );
        let dispatching = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { dispatcher.run(shutdown.started()).await })
        };
        tokio::spawn(async move {
            let worked =
                crmsync_worker::worker::run_worker(queue, context, concurrency, shutdown.started())
                    .await;
            let _ = still_waiting_for("the deliveries in flight", dispatching).await;
            worked
        })
    });
    // On shutdown: no new connections, open subscriptions closed with 1001,
    // requests in flight answered; the worker hands its runs back.
    let shutdown_sockets = shutdown.clone();
    let server = tokio::spawn(async move {
        crmsync_api::serve(listener, crmsync_api::router(state), async move {
            shutdown.started().await;
        })
        .await
    });
    tracing::info!(graphql = %format!("http://{addr}/graphql"), "crmsync is serving");
    let _sandbox = if demo {
        Some(crate::demo::setup(&config, addr).await?)
    } else {
        None
    };
    server.await?.context("the API server failed")?;
    // Upgraded connections outlive the server: let the subscriptions send
    // their close frames before the process ends.
    if tokio::time::timeout(Duration::from_secs(5), shutdown_sockets.sockets_closed())
        .await
        .is_err()
    {
        tracing::warn!("some subscriptions did not close within 5 s");
    }
    if let Some(worker) = worker {
        worker.await?.context("the worker failed")?;
    }
    if let Some(scheduler) = scheduler {
        let waited = "the scheduler, the pruner and the real-time subscriptions";
        still_waiting_for(waited, scheduler).await?;
    }
    Ok(())
}

/// The scheduler of a process that runs a worker: it ticks while it holds
/// the scheduler lease, which lasts as long as a run's.
fn scheduler(
    config: &Config,
    context: &WorkerContext,
    queue: &JobQueue,
) -> crmsync_worker::scheduler::Scheduler {
    crmsync_worker::scheduler::Scheduler {
        db: context.db.clone(),
        queue: queue.clone(),
        bus: context.bus.clone(),
        holder: crmsync_worker::context::instance_name(),
        lease: config.run_lease(),
    }
}

/// The history pruner of a process that runs a worker: it prunes while it
/// holds the pruner lease, which lasts as long as a run's.
fn pruner(config: &Config, context: &WorkerContext) -> crmsync_worker::retention::Pruner {
    crmsync_worker::retention::Pruner {
        db: context.db.clone(),
        holder: crmsync_worker::context::instance_name(),
        lease: config.run_lease(),
        settings: config.prune.clone(),
    }
}

/// The real-time task of a process that runs a worker: it keeps the
/// connectors' subscriptions while it holds the `realtime` lease.
fn realtime(
    config: &Config,
    context: &WorkerContext,
    queue: &JobQueue,
    shutdown: crmsync_api::Shutdown,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let realtime = crmsync_worker::realtime::Realtime {
        db: context.db.clone(),
        queue: queue.clone(),
        bus: context.bus.clone(),
        credentials_key: context.credentials_key.clone(),
        http: context.http.clone(),
        metrics: context.metrics.clone(),
        public_url: config.public_url.clone(),
        clients: Default::default(),
    };
    let holder = crmsync_worker::context::instance_name();
    let lease = config.run_lease();
    async move { realtime.run(holder, lease, shutdown.started()).await }
}

/// `crmsync worker`: a worker alone, on the shared queue, carrying out
/// `concurrency` runs at once.
pub async fn worker(mut config: Config, concurrency: usize) -> anyhow::Result<()> {
    config.ensure_keys()?;
    let db = database(&config).await?;
    let queue = job_queue(&config, &db).await?;
    let metrics = Metrics::new();
    let ops = Ops {
        db: db.clone(),
        queue: queue.clone(),
        metrics: metrics.clone(),
    };
    crmsync_api::ops::spawn(config.worker_bind, ops)
        .await
        .with_context(|| {
            format!(
                "CRMSYNC_WORKER_BIND: cannot listen on {} (port 0 picks a free one)",
                config.worker_bind
            )
        })?;
    let context = WorkerContext {
        bus: event_bus(&config, &db).await?,
        db,
        credentials_key: credentials_key(&config)?,
        http: http_client(&config)?,
        options: SyncOptions {
            lease: config.run_lease(),
            slots: config.slots.clone(),
            ..SyncOptions::new(config.public_url.clone())
        },
        metrics,
    };
    let (stop, shutdown) = crmsync_api::Shutdown::new();
    let signalled = shutdown_signal()?;
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    // Every worker process sends the notifications outbox (R5) and offers
    // to schedule (one process does).
    let dispatcher = Dispatcher::new(
        context.db.clone(),
        context.credentials_key.clone(),
        config.delivery_settings()?,
    );
    let dispatching = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { dispatcher.run(shutdown.started()).await })
    };
    let scheduling = {
        let scheduler = scheduler(&config, &context, &queue);
        let pruner = pruner(&config, &context);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::join!(
                scheduler.run(shutdown.started()),
                pruner.run(shutdown.started())
            );
        })
    };
    let keeping = tokio::spawn(realtime(&config, &context, &queue, shutdown.clone()));
    tracing::info!(concurrency, "worker started");
    crmsync_worker::worker::run_worker(queue, context, concurrency, shutdown.started()).await?;
    still_waiting_for("the deliveries in flight", dispatching).await?;
    still_waiting_for("the scheduler and the pruner", scheduling).await?;
    still_waiting_for("the real-time subscriptions", keeping).await?;
    tracing::info!("worker stopped");
    Ok(())
}

/// `crmsync migrate`.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    database(&config).await?;
    eprintln!("migrations applied");
    Ok(())
}

/// `crmsync token`: prints a JWT alone on stdout, and on stderr which secret
/// signed it. It signs with the secret the server uses and never makes one up.
pub async fn token(
    config: Config,
    role: Role,
    tenant: Option<String>,
    ttl: Duration,
) -> anyhow::Result<()> {
    let (secret, source) = config.existing_jwt_secret()?;
    match (role, &tenant) {
        (Role::Operator, Some(_)) => bail!("--tenant: operator tokens are not bound to a tenant"),
        (Role::Admin | Role::Viewer, None) => {
            bail!("--tenant: admin and viewer tokens need the tenant's slug")
        }
        (Role::Admin | Role::Viewer, Some(slug)) => {
            if config.is_embedded() && !config.data_dir.join("crmsync.db").exists() {
                bail!(
                    "--tenant: no database at {} to find \"{slug}\" in (run `crmsync serve` or `crmsync migrate` first, with the same CRMSYNC_DATA_DIR)",
                    std::path::absolute(config.data_dir.join("crmsync.db"))?.display()
                );
            }
            let db = database(&config).await?;
            if crmsync_api::tenants::find_by_slug(&db, slug)
                .await?
                .is_none()
            {
                bail!("--tenant: no tenant with slug \"{slug}\"");
            }
        }
        (Role::Operator, None) => {}
    }
    let token = crmsync_api::auth::mint_hs256(
        &secret,
        &config.jwt_issuer,
        &config.jwt_audience,
        &format!("cli:{}", whoami()),
        role,
        tenant.as_deref(),
        ttl,
    );
    eprintln!("signed with the HS256 secret from {source}");
    println!("{token}");
    Ok(())
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}
