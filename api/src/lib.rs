#![doc = include_str!("../README.md")]

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

mod api_keys;
pub mod audit;
pub mod auth;
pub mod connectors;
pub mod contacts;
mod error;
mod fields_cache;
pub use fields_cache::FieldsCache;
mod graphiql;
mod graphql;
mod http;
mod idempotency;
pub mod ops;
pub mod patch;
pub mod rate_limit;
pub mod realtime;
pub mod runs;
mod server;
pub mod tenants;
pub mod webhooks;
mod ws;

pub use error::ApiError;
pub use idempotency::IdempotencyKey;
pub use server::serve;

/// The largest request body accepted on `POST /graphql` (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Subscriptions one WebSocket may hold at once unless configured otherwise.
pub const DEFAULT_WS_MAX_SUBSCRIPTIONS: usize = 100;

/// Everything the API needs; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub db: sea_orm::DatabaseConnection,
    /// Where sync jobs go.
    pub queue: crmsync_worker::jobs::JobQueue,
    /// Where run progress comes from.
    pub bus: Arc<dyn crmsync_worker::events::EventBus>,
    /// Seals and opens connector credentials.
    pub credentials_key: Arc<crmsync_worker::credentials::CredentialsKey>,
    /// Verifies JWTs.
    pub auth: Arc<auth::Authenticator>,
    /// HTTP client for CRM calls, under the outbound rule
    /// (`CRMSYNC_ALLOW_LOCAL_TARGETS`), which URL checks here follow too.
    pub http: crmsync_worker::egress::HttpClient,
    /// The address clients reach us at (links, GraphiQL).
    pub public_url: String,
    /// The process's metrics (shared with its in-process worker, if any).
    pub metrics: crmsync_worker::metrics::Metrics,
    /// The shortest schedule interval a connector may ask for
    /// (`CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS`, one minute by default).
    pub schedule_min_interval: std::time::Duration,
    /// Subscriptions one WebSocket may hold at once
    /// (`CRMSYNC_WS_MAX_SUBSCRIPTIONS`, [`DEFAULT_WS_MAX_SUBSCRIPTIONS`]).
    pub ws_max_subscriptions: usize,
    /// Completes when the process shuts down: open subscriptions are closed
    /// with 1001 (going away) so clients reconnect to another process.
    pub shutdown: Shutdown,
    /// Failed authentications per client address and requests per tenant
    /// (`CRMSYNC_RATE_LIMIT_*`).
    pub rate_limits: Arc<rate_limit::RateLimits>,
    /// Who may introspect the schema (`CRMSYNC_INTROSPECTION`).
    pub introspection: Introspection,
    /// The connectors' CRM fields, read at most once a minute.
    pub fields_cache: Arc<FieldsCache>,
    /// The most main-lane slots one tenant's runs hold at once, as the
    /// workers apply it (`CRMSYNC_WORKER_TENANT_SLOTS`, or half the
    /// in-process worker's slots), for `Connector.queuePosition`; `None` in
    /// an API process that cannot know it (no worker, no setting).
    pub tenant_cap: Option<usize>,
}

/// Who may introspect the schema (`__schema`, `__type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Introspection {
    /// Anyone, without a token (`always`; `serve --demo` sets it, for
    /// GraphiQL's documentation before a token is pasted).
    Always,
    /// Authenticated callers only (`authenticated`, the default): the
    /// schema is a map of the API that strangers need not be handed.
    #[default]
    Authenticated,
}

impl Introspection {
    /// The setting's values, as `CRMSYNC_INTROSPECTION` takes them.
    pub const VALUES: &[&str] = &["always", "authenticated"];

    /// Parses `always` or `authenticated`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "always" => Some(Self::Always),
            "authenticated" => Some(Self::Authenticated),
            _ => None,
        }
    }
}

/// The process's shutdown, as open WebSockets see it: they close when it
/// starts, and the process waits for them to have said goodbye.
#[derive(Debug, Clone)]
pub struct Shutdown {
    started: tokio::sync::watch::Receiver<bool>,
    /// For [`Shutdown::never`]: the sender, kept so the channel stays open.
    _sender: Option<Arc<tokio::sync::watch::Sender<bool>>>,
    /// WebSockets still open.
    open: Arc<tokio::sync::watch::Sender<usize>>,
}

/// Held by an open WebSocket; dropping it counts the socket closed.
#[derive(Debug)]
pub struct OpenSocket(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Shutdown {
    /// A shutdown and the sender that starts it (`send(true)`).
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let shutdown = Self {
            started: rx,
            _sender: None,
            open: Arc::new(tokio::sync::watch::channel(0).0),
        };
        (tx, shutdown)
    }

    /// A shutdown that never comes (tests, tools).
    pub fn never() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Self {
            started: rx,
            _sender: Some(Arc::new(tx)),
            open: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Completes once the shutdown has started.
    pub async fn started(&self) {
        let mut rx = self.started.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            // The sender is gone without a shutdown: wait forever.
            std::future::pending::<()>().await;
        }
    }

    /// Counts a WebSocket open until the returned guard is dropped.
    pub fn socket_opened(&self) -> OpenSocket {
        self.open.send_modify(|n| *n += 1);
        OpenSocket(self.open.clone())
    }

    /// Completes once every WebSocket has closed.
    pub async fn sockets_closed(&self) {
        let _ = self.open.subscribe().wait_for(|n| *n == 0).await;
    }
}

impl ApiState {
    /// The real-time side (inbound notifications, subscriptions) on this
    /// state's database, queue and CRM client.
    pub fn realtime(&self) -> crmsync_worker::realtime::Realtime {
        crmsync_worker::realtime::Realtime {
            db: self.db.clone(),
            queue: self.queue.clone(),
            bus: self.bus.clone(),
            credentials_key: self.credentials_key.clone(),
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            public_url: self.public_url.clone(),
            clients: Default::default(),
        }
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The HTTP routes: `POST /graphql`, `GET /graphql` (GraphiQL, or queries
/// only), `/graphql/ws` (graphql-transport-ws, or the legacy
/// graphql-ws of subscriptions-transport-ws), GraphiQL's embedded assets
/// under `/graphiql/assets/`, the operations endpoints
/// `GET /healthz`, `/readyz` and `/metrics` ([`ops`]), and CRMs' change
/// notifications at `POST /crm-events/{token}` ([`realtime`]).
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// limit on failed authentications is kept per client address, the socket's
/// peer (without it, addresses are not limited).
pub fn router(state: ApiState) -> Router {
    let schema = graphql::build(Some(state.clone()));
    let ops = ops::Ops {
        db: state.db.clone(),
        queue: state.queue.clone(),
        metrics: state.metrics.clone(),
    };
    let inbound = realtime::router(state.realtime());
    let app = http::App { state, schema };
    Router::new()
        .route(
            "/graphql",
            get(http::get_graphql)
                .post(http::post_graphql)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/graphql/ws", get(ws::upgrade))
        .route(
            &format!("{}/{{name}}", graphiql::ASSETS_PATH),
            get(graphiql::asset),
        )
        .with_state(app)
        .merge(ops::router(ops))
        .merge(inbound)
}

/// The schema in SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    graphql::build(None).sdl()
}
