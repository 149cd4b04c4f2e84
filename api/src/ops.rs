//! Endpoints for operators and orchestrators: `GET /healthz` (the process is
//! alive), `GET /readyz` (the database and the queue answer) and
//! `GET /metrics` (Prometheus, OpenMetrics text). The API router serves them;
//! a worker-only process serves them alone with [`spawn`].
//!
//! They need no credentials: their answers hold component names and counts,
//! never a tenant, an id, a URL or error text (causes go to the log).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::metrics::{self, Metrics};
use sea_orm::DatabaseConnection;

/// How long `/readyz` waits for each dependency.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// What the endpoints look at; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ops {
    /// The database.
    pub db: DatabaseConnection,
    /// The job queue.
    pub queue: JobQueue,
    /// The process's metrics.
    pub metrics: Metrics,
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

/// Serves [`router`] on `bind` (port 0: any free port) in a background task;
/// returns the address it listens on.
pub async fn spawn(bind: SocketAddr, ops: Ops) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = crate::server::serve(listener, router(ops), std::future::pending()).await {
            tracing::error!(error = %e, "the operations server stopped");
        }
    });
    tracing::info!(metrics = %format!("http://{addr}/metrics"), "operations endpoints are serving");
    Ok(addr)
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 `{"status": "ready"}`, or 503 `{"status": "unavailable", "failed": [...]}`
/// naming `database` and/or `queue`.
async fn readyz(State(ops): State<Ops>) -> Response {
    let (db, queue) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, ops.db.ping()),
        tokio::time::timeout(READY_TIMEOUT, ops.queue.ping()),
    );
    let mut failed = Vec::new();
    match db {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: the database does not answer");
            failed.push("database");
        }
        Err(_) => {
            tracing::warn!("readyz: the database timed out");
            failed.push("database");
        }
    }
    match queue {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readyz: the queue does not answer");
            failed.push("queue");
        }
        Err(_) => {
            tracing::warn!("readyz: the queue timed out");
            failed.push("queue");
        }
    }
    if failed.is_empty() {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "failed": failed })),
        )
            .into_response()
    }
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let body = ops.metrics.render(&ops.db, ops.queue.depth().await).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}
