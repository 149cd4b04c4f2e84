//! Startup, the accept loop, and the edge middleware every CRM request passes through.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::faults::FaultAction;
use crate::metrics::NO_REPLY;
use crate::{
    AppState, Shared, System, admin, clock, faults, hubspot, metrics, pipedrive, salesforce,
    sap_c4c, zendesk_sell, zoho,
};

/// How to start a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Seed for the data generator and for fault-injection draws.
    pub seed: u64,
    /// How many people to seed into the default Zoho org and Pipedrive company.
    pub people: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            people: 250,
        }
    }
}

/// What a started sandbox prints as its first line: where everything is and the
/// credentials of the default Zoho org, Pipedrive company and HubSpot portal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    /// Base URL of the admin API.
    pub admin_url: String,
    /// The default Zoho org.
    pub zoho: zoho::ZohoDescription,
    /// The default Pipedrive company.
    pub pipedrive: pipedrive::PipedriveDescription,
    /// The default HubSpot portal.
    pub hubspot: hubspot::HubspotDescription,
    /// The default Salesforce org.
    pub salesforce: salesforce::SalesforceDescription,
    /// The default SAP C4C tenant.
    pub sap_c4c: sap_c4c::SapC4cDescription,
    /// The default Zendesk Sell account.
    #[serde(default)]
    pub zendesk_sell: zendesk_sell::ZendeskSellDescription,
}

/// A running sandbox. Dropping it stops the server.
#[derive(Debug)]
pub struct Sandbox {
    state: AppState,
    description: Description,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Lets a handler close its own connection without replying (the `drop` and
/// `timeout_after_write` faults).
#[derive(Debug, Clone)]
pub(crate) struct ConnControl {
    kill: Arc<Notify>,
}

impl Sandbox {
    /// Binds, creates the default org and company with seeded data, and serves
    /// until dropped or shut down.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let state = Arc::new(Shared {
            clock: clock::Clock::default(),
            faults: faults::Faults::new(config.seed),
            metrics: metrics::Metrics::default(),
            notify: crate::notify::Notifier::default(),
            zoho: zoho::ZohoState::default(),
            pipedrive: pipedrive::PipedriveState::default(),
            hubspot: hubspot::HubspotState::default(),
            salesforce: salesforce::SalesforceState::default(),
            sap_c4c: sap_c4c::SapC4cState::default(),
            zendesk_sell: zendesk_sell::ZendeskSellState::default(),
            base_url: base_url.clone(),
            config: config.clone(),
            description: std::sync::OnceLock::new(),
        });
        let description = Description {
            admin_url: format!("{base_url}/admin"),
            zoho: zoho::bootstrap(&state),
            pipedrive: pipedrive::bootstrap(&state),
            hubspot: hubspot::bootstrap(&state),
            salesforce: salesforce::bootstrap(&state),
            sap_c4c: sap_c4c::bootstrap(&state),
            zendesk_sell: zendesk_sell::bootstrap(&state),
        };
        let _ = state.description.set(description.clone());
        let router = router(state.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(crate::notify::run(state.clone(), shutdown_rx.clone()));
        tokio::spawn(zoho::watch::run(state.clone(), shutdown_rx.clone()));
        let task = tokio::spawn(accept_loop(listener, router, shutdown_rx));
        Ok(Sandbox {
            state,
            description,
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// The description printed by `crmsync sandbox`.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The address the sandbox listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// Direct access to the state, for in-process callers (the demo, benchmarks).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn router(state: AppState) -> Router {
    let zoho = zoho::router().layer(middleware::from_fn_with_state(state.clone(), zoho_edge));
    let pipedrive = pipedrive::router().layer(middleware::from_fn_with_state(
        state.clone(),
        pipedrive_edge,
    ));
    let hubspot =
        hubspot::router().layer(middleware::from_fn_with_state(state.clone(), hubspot_edge));
    // A Salesforce instance is a host: its API lives at the root.
    let sf_services = salesforce::services_router().layer(middleware::from_fn_with_state(
        state.clone(),
        salesforce_edge,
    ));
    let sf_id = salesforce::id_router().layer(middleware::from_fn_with_state(
        state.clone(),
        salesforce_edge,
    ));
    // A C4C tenant is a host too: its OData service lives at the root.
    let c4c = sap_c4c::router().layer(middleware::from_fn_with_state(state.clone(), sap_c4c_edge));
    let zendesk_sell = zendesk_sell::router().layer(middleware::from_fn_with_state(
        state.clone(),
        zendesk_sell_edge,
    ));
    Router::new()
        .merge(c4c)
        .nest("/zoho", zoho)
        .nest("/zendesk_sell", zendesk_sell)
        .nest("/services", sf_services)
        .nest("/id", sf_id)
        .nest("/hubspot", hubspot)
        .nest("/pipedrive/{company}", pipedrive)
        .nest("/admin", admin::router())
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let control = ConnControl {
        kill: Arc::new(Notify::new()),
    };
    let kill = control.kill.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(control.clone());
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    // Dropping the connection future closes the socket without a reply.
    tokio::select! {
        _ = connection => {}
        _ = kill.notified() => {}
        _ = shutdown.changed() => {}
    }
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "crmsync_sandbox::requests",
        %method,
        path = %uri,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

async fn zoho_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = zoho::tenant_of(&state, &request);
    edge(state, System::Zoho, tenant, request, next).await
}

async fn pipedrive_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = pipedrive::tenant_of(&state, &request);
    edge(state, System::Pipedrive, tenant, request, next).await
}

async fn hubspot_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = hubspot::tenant_of(&state, &request);
    edge(state, System::Hubspot, tenant, request, next).await
}

async fn salesforce_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = salesforce::tenant_of(&state, &request);
    edge(state, System::Salesforce, tenant, request, next).await
}

async fn sap_c4c_edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = sap_c4c::tenant_of(&state, &request);
    edge(state, System::SapC4c, tenant, request, next).await
}

async fn zendesk_sell_edge(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let tenant = zendesk_sell::tenant_of(&state, &request);
    edge(state, System::ZendeskSell, tenant, request, next).await
}

/// The tenant a handler resolved, for the request counts when the edge could not
/// tell it from the request (e.g. the Zoho token endpoint).
#[derive(Debug, Clone)]
pub struct TenantLabel(pub String);

async fn edge(
    state: AppState,
    system: System,
    tenant: Option<String>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    // Salesforce's clients differ on trailing slashes; both forms count as one endpoint.
    let path = match system {
        System::Salesforce if path.len() > 1 => path.trim_end_matches('/').to_owned(),
        _ => path,
    };
    let endpoint = format!("{} {}", request.method(), path);
    let is_write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let control = request.extensions().get::<ConnControl>().cloned();
    let plan = state
        .faults
        .plan(system, tenant.as_deref(), &endpoint, is_write);

    if plan.action.is_some() && !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let response = match plan.action {
        Some(FaultAction::Error(status)) => fault_response(&state, system, status),
        Some(FaultAction::RateLimit) => fault_response(&state, system, 429),
        Some(FaultAction::Drop) => {
            state
                .metrics
                .record(system, tenant.as_deref(), &endpoint, NO_REPLY);
            return close_without_reply(control).await;
        }
        None => {
            // The handler may serve the latency itself once it holds the CRM's limits
            // (a slow Zoho call keeps its concurrency slot); what it leaves delays the reply.
            let latency = Arc::new(parking_lot::Mutex::new(plan.latency));
            let response = INJECTED_LATENCY
                .scope(latency.clone(), next.run(request))
                .await;
            let left = std::mem::take(&mut *latency.lock());
            if !left.is_zero() {
                tokio::time::sleep(left).await;
            }
            response
        }
    };
    let tenant = tenant.or_else(|| {
        response
            .extensions()
            .get::<TenantLabel>()
            .map(|t| t.0.clone())
    });
    if let Some(delay) = plan.timeout_after_write {
        state
            .metrics
            .record(system, tenant.as_deref(), &endpoint, NO_REPLY);
        tokio::time::sleep(delay).await;
        return close_without_reply(control).await;
    }
    state.metrics.record(
        system,
        tenant.as_deref(),
        &endpoint,
        response.status().as_u16(),
    );
    response
}

tokio::task_local! {
    static INJECTED_LATENCY: Arc<parking_lot::Mutex<std::time::Duration>>;
}

/// Sleeps the latency a fault rule planned for the current request, if the edge
/// has not served it yet. A handler calls this once it holds the CRM's limits, so
/// the injected delay counts against them as a slow real call would.
pub(crate) async fn serve_injected_latency() {
    let latency = INJECTED_LATENCY
        .try_with(|l| std::mem::take(&mut *l.lock()))
        .unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn fault_response(state: &Shared, system: System, status: u16) -> Response {
    match system {
        System::Zoho => zoho::fault_response(state, status),
        System::Pipedrive => pipedrive::fault_response(state, status),
        System::Hubspot => hubspot::fault_response(state, status),
        System::Salesforce => salesforce::fault_response(state, status),
        System::SapC4c => sap_c4c::fault_response(state, status),
        System::ZendeskSell => zendesk_sell::fault_response(state, status),
    }
}

async fn close_without_reply(control: Option<ConnControl>) -> Response {
    match control {
        Some(control) => {
            control.kill.notify_one();
            std::future::pending().await
        }
        // Not served through our accept loop (an in-process `oneshot`): there is no
        // connection to close, so reply with an empty 502 rather than hang.
        None => Response::builder()
            .status(502)
            .body(Body::empty())
            .unwrap_or_default(),
    }
}
