//! The long-running commands: wiring config into the database, queue, API and worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use crmsync_api::ApiState;
use crmsync_api::auth::{Authenticator, JwtKey, JwtSettings};
use crmsync_api::ops::Ops;
use crmsync_entity::enums::Role;
use crmsync_worker::credentials::CredentialsKey;
use crmsync_worker::events::{EventBus, InProcessBus};
use crmsync_worker::jobs::{JobQueue, WorkerContext};
use crmsync_worker::metrics::Metrics;
use crmsync_worker::sync::SyncOptions;
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::config::Config;

/// Connects and migrates; errors name the variable.
async fn database(config: &Config) -> anyhow::Result<DatabaseConnection> {
    if config.is_embedded() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "CRMSYNC_DATA_DIR: cannot create {}",
                config.data_dir.display()
            )
        })?;
    }
    let db = crmsync_entity::db::connect(&config.database_url)
        .await
        .context("CRMSYNC_DATABASE_URL: cannot connect to the database")?;
    crmsync_entity::db::migrate(&db)
        .await
        .context("applying database migrations")?;
    Ok(db)
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

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

/// `crmsync serve`: the API and an in-process worker.
pub async fn serve(mut config: Config, demo: bool) -> anyhow::Result<()> {
    config.ensure_keys()?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("CRMSYNC_BIND: cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    if config.public_url == format!("http://{}", config.bind) {
        config.public_url = format!("http://{addr}");
    }
    let db = database(&config).await?;
    let queue = JobQueue::connect(&db)
        .await
        .context("setting up the job queue")?;
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::default());
    let key = credentials_key(&config)?;
    let http = http_client()?;
    let metrics = Metrics::new();
    let state = ApiState {
        db: db.clone(),
        queue: queue.clone(),
        bus: bus.clone(),
        credentials_key: key.clone(),
        auth: Arc::new(Authenticator::new(jwt_settings(&config)?)?),
        http: http.clone(),
        public_url: config.public_url.clone(),
        metrics: metrics.clone(),
    };
    let worker = WorkerContext {
        db,
        bus,
        credentials_key: key,
        http,
        options: SyncOptions {
            platform_url: config.public_url.clone(),
        },
        metrics,
    };
    let worker = tokio::spawn(crmsync_worker::jobs::run_worker(
        queue,
        worker,
        shutdown_signal(),
    ));
    let server = tokio::spawn(async move {
        axum::serve(listener, crmsync_api::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    tracing::info!(graphql = %format!("http://{addr}/graphql"), "crmsync is serving");
    let _sandbox = if demo {
        Some(crate::demo::setup(&config, addr).await?)
    } else {
        None
    };
    server.await?.context("the API server failed")?;
    worker.await?.context("the worker failed")?;
    Ok(())
}

/// `crmsync worker`: a worker alone, on the shared queue.
pub async fn worker(mut config: Config) -> anyhow::Result<()> {
    config.ensure_keys()?;
    let db = database(&config).await?;
    let queue = JobQueue::connect(&db)
        .await
        .context("setting up the job queue")?;
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
        db,
        bus: Arc::new(InProcessBus::default()),
        credentials_key: credentials_key(&config)?,
        http: http_client()?,
        options: SyncOptions {
            platform_url: config.public_url.clone(),
        },
        metrics,
    };
    tracing::info!("worker started");
    crmsync_worker::jobs::run_worker(queue, context, shutdown_signal()).await?;
    Ok(())
}

/// `crmsync migrate`.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    database(&config).await?;
    eprintln!("migrations applied");
    Ok(())
}

/// `crmsync token`: prints a JWT alone on stdout.
pub async fn token(
    mut config: Config,
    role: Role,
    tenant: Option<String>,
    ttl: Duration,
) -> anyhow::Result<()> {
    config.ensure_keys()?;
    let Some(secret) = &config.jwt_secret else {
        bail!(
            "CRMSYNC_JWT_SECRET: `crmsync token` signs with the HS256 secret; with CRMSYNC_JWT_PUBLIC_KEY (RS256) tokens come from your identity provider"
        );
    };
    match (role, &tenant) {
        (Role::Operator, Some(_)) => bail!("--tenant: operator tokens are not bound to a tenant"),
        (Role::Admin | Role::Viewer, None) => {
            bail!("--tenant: admin and viewer tokens need the tenant's slug")
        }
        (Role::Admin | Role::Viewer, Some(slug)) => {
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
        secret,
        &config.jwt_issuer,
        &config.jwt_audience,
        &format!("cli:{}", whoami()),
        role,
        tenant.as_deref(),
        ttl,
    );
    println!("{token}");
    Ok(())
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}
