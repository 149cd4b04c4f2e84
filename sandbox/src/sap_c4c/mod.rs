//! The sandbox SAP Sales Cloud (C4C): the OData v2 service
//! `/sap/c4c/odata/v1/c4codataapi/` (leads, individual customers, contacts,
//! corporate accounts, `$metadata`, `$batch`), basic authentication of
//! technical users, the CSRF token dance and ETags, for several tenants told
//! apart by the user name. A C4C tenant is a host, so the service lives at the
//! sandbox's root. See `sandbox/docs/sap_c4c.md` for what is emulated and what
//! is not.

// Checks refuse with the reply itself (`Result<_, Response>`), the way axum
// handlers compose; the size of a refusal does not matter on this path.
#![allow(clippy::result_large_err)]

mod admin;
mod api;
mod batch;
pub mod kit;
mod metadata;
pub mod model;
pub mod odata;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use base64::Engine;
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{AppState, Shared};
use model::{FieldSpec, Settings, TenantData};

pub use kit::SandboxKind;

/// Where the OData service lives on a tenant's host.
pub const SERVICE_PATH: &str = "/sap/c4c/odata/v1/c4codataapi";

/// Tenants, users and CSRF sessions.
#[derive(Debug, Default)]
pub struct SapC4cState {
    tenants: RwLock<BTreeMap<String, Arc<Tenant>>>,
    sessions: RwLock<HashMap<String, CsrfSession>>,
    next_tenant: AtomicU64,
    counter: AtomicU64,
}

/// A C4C tenant with its technical user.
#[derive(Debug)]
pub struct Tenant {
    /// `my{n}`, as the tenant's host name starts.
    pub id: String,
    /// The technical user's name.
    pub username: String,
    password: RwLock<String>,
    /// Records, settings and counters.
    pub data: Mutex<TenantData>,
}

/// A session opened by a CSRF token fetch: the cookie's id names it.
#[derive(Debug, Clone)]
struct CsrfSession {
    tenant: String,
    token: String,
}

/// The default tenant as printed at start, and what the admin API returns for a tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SapC4cDescription {
    /// The tenant's host (`https://my123456.crm.ondemand.com` in C4C): the sandbox's root.
    pub base_url: String,
    /// `{base_url}/sap/c4c/odata/v1/c4codataapi/`, the OData service root.
    pub service_url: String,
    /// The technical user's name.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The tenant id (`my1`, ...), as fault rules and request counts name it.
    pub tenant: String,
}

impl SapC4cState {
    /// The tenant with this id.
    pub fn tenant(&self, id: &str) -> Option<Arc<Tenant>> {
        self.tenants.read().get(id).cloned()
    }

    fn by_user(&self, username: &str) -> Option<Arc<Tenant>> {
        self.tenants
            .read()
            .values()
            .find(|t| t.username.eq_ignore_ascii_case(username))
            .cloned()
    }

    fn random(&self, seed: u64, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
            seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x00C4_C0DA,
        );
        (0..len)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    /// Opens a session for a tenant: the session cookie's value and the CSRF token.
    fn open_session(&self, seed: u64, tenant: &str) -> (String, String) {
        let sid = self.random(seed, 40);
        let token = format!("{}==", self.random(seed, 22));
        self.sessions.write().insert(
            sid.clone(),
            CsrfSession {
                tenant: tenant.to_owned(),
                token: token.clone(),
            },
        );
        (sid, token)
    }

    /// Refuses the tenant's password from now on and ends its sessions.
    pub(crate) fn revoke(&self, tenant: &Tenant) {
        *tenant.password.write() = format!("revoked-{}", self.random(7, 32));
        self.sessions.write().retain(|_, s| s.tenant != tenant.id);
    }
}

/// What it takes to create a tenant (admin API); all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantSpec {
    settings: Option<Settings>,
    /// Extension fields added to leads and contacts (beyond PleziURL_KUT and SyncToPlezi_KUT).
    fields: Option<Vec<FieldSpec>>,
    /// Seeded leads (see `admin::seed`).
    seed: Option<crate::seed::SeedSpec>,
}

/// The cookie a session is kept in, named after the tenant as C4C names its
/// `SAP_SESSIONID_<system>_<client>` cookie.
fn cookie_name(tenant: &str) -> String {
    format!("SAP_SESSIONID_{}_100", tenant.to_uppercase())
}

/// Creates a tenant with its technical user; the error names the field.
pub(crate) fn create_tenant(state: &Shared, spec: TenantSpec) -> Result<Arc<Tenant>, String> {
    let c4c = &state.sap_c4c;
    let settings = spec.settings.unwrap_or_default();
    settings.validate().map_err(|e| format!("settings.{e}"))?;
    let mut extensions = model::default_extensions();
    for (i, field) in spec.fields.iter().flatten().enumerate() {
        let prop = field.build().map_err(|e| format!("fields[{i}].{e}"))?;
        if extensions.iter().any(|p| p.name == prop.name) {
            return Err(format!("fields[{i}].name: {} already exists", prop.name));
        }
        extensions.push(prop);
    }
    let n = c4c.next_tenant.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("my{}", 300_000 + n);
    let mut data = TenantData::new(settings, n, &extensions);
    data.add_employees(state.clock.now().timestamp_millis());
    if let Some(seed) = &spec.seed {
        seed.validate().map_err(|e| format!("seed.{e}"))?;
        admin::seed(&mut data, seed, state.clock.now().timestamp_millis());
    }
    let seed = state.config.seed ^ n;
    let tenant = Arc::new(Tenant {
        id: id.clone(),
        username: format!("CRMSYNC_{n}"),
        password: RwLock::new(c4c.random(seed, 24)),
        data: Mutex::new(data),
    });
    c4c.tenants.write().insert(id, tenant.clone());
    Ok(tenant)
}

/// The description of a tenant.
pub(crate) fn describe(state: &Shared, tenant: &Tenant) -> SapC4cDescription {
    SapC4cDescription {
        base_url: state.base_url.clone(),
        service_url: format!("{}{SERVICE_PATH}/", state.base_url),
        username: tenant.username.clone(),
        password: tenant.password.read().clone(),
        tenant: tenant.id.clone(),
    }
}

/// Creates the default tenant with `config.people` seeded leads.
pub(crate) fn bootstrap(state: &Shared) -> SapC4cDescription {
    let spec = TenantSpec {
        seed: Some(crate::seed::SeedSpec {
            seed: state.config.seed,
            people: state.config.people,
            ..crate::seed::SeedSpec::default()
        }),
        ..TenantSpec::default()
    };
    match create_tenant(state, spec) {
        Ok(tenant) => describe(state, &tenant),
        Err(error) => {
            tracing::error!(%error, "could not create the default SAP C4C tenant");
            SapC4cDescription::default()
        }
    }
}

/// The OData service at [`SERVICE_PATH`]; the root without its trailing slash redirects.
pub(crate) fn router() -> Router<AppState> {
    let at = |p: &str| format!("{SERVICE_PATH}{p}");
    Router::new()
        .route(&at(""), get(api::without_slash))
        .route(&at("/"), get(api::service_document))
        .route(&at("/$metadata"), get(api::metadata))
        .route(&at("/$batch"), post(batch::batch))
        .route(&at("/{resource}"), any(api::resource))
        .route(&at("/{resource}/$count"), get(api::count))
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn session_cookie(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("SAP_SESSIONID_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The tenant of a request: by its basic credentials' user, else its session cookie.
pub(crate) fn tenant_of(state: &Shared, request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some((user, _)) = basic(headers) {
        return state.sap_c4c.by_user(&user).map(|t| t.id.clone());
    }
    let sessions = state.sap_c4c.sessions.read();
    session_cookie(headers)
        .iter()
        .find_map(|(_, sid)| sessions.get(sid).map(|s| s.tenant.clone()))
}

/// Who is calling: the tenant, authenticated by basic credentials or a session cookie.
pub(crate) fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Arc<Tenant>, Response> {
    if let Some((user, password)) = basic(headers) {
        return match state.sap_c4c.by_user(&user) {
            Some(t) if *t.password.read() == password => Ok(t),
            _ => Err(unauthorized()),
        };
    }
    let sessions = state.sap_c4c.sessions.read();
    session_cookie(headers)
        .iter()
        .find_map(|(_, sid)| sessions.get(sid))
        .and_then(|s| state.sap_c4c.tenant(&s.tenant))
        .ok_or_else(unauthorized)
}

/// Checks the CSRF token of a write: the `x-csrf-token` header must be the
/// token of the session the request's cookie names, for this tenant.
pub(crate) fn check_csrf(
    state: &Shared,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let sessions = state.sap_c4c.sessions.read();
    let valid = !token.is_empty()
        && session_cookie(headers).iter().any(|(_, sid)| {
            sessions
                .get(sid)
                .is_some_and(|s| s.tenant == tenant.id && s.token == token)
        });
    if valid {
        Ok(())
    } else {
        Err(Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("x-csrf-token", "Required")
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("CSRF token validation failed"))
            .unwrap_or_default())
    }
}

/// Answers a token fetch (`x-csrf-token: Fetch` on a GET or HEAD): a new
/// session cookie and its token go on the response.
pub(crate) fn fetch_csrf(
    state: &Shared,
    tenant: &Tenant,
    headers: &HeaderMap,
    response: &mut Response,
) {
    let asked = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("fetch"));
    if !asked {
        return;
    }
    let (sid, token) = state.sap_c4c.open_session(state.config.seed, &tenant.id);
    // C4C marks the cookie `secure`; the sandbox speaks plain HTTP, where clients
    // would not send a secure cookie back, so it leaves the flag off.
    let cookie = format!("{}={sid}; path=/; HttpOnly", cookie_name(&tenant.id));
    if let (Ok(t), Ok(c)) = (token.parse(), cookie.parse()) {
        response.headers_mut().insert("x-csrf-token", t);
        response.headers_mut().append(header::SET_COOKIE, c);
    }
}

fn unauthorized() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"SAP NetWeaver Application Server\"")
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(
            "<html><head><title>Logon Error Message</title></head><body>Anmeldung fehlgeschlagen / Logon failed</body></html>",
        ))
        .unwrap_or_default()
}

/// An OData error: `{"error": {"code", "message": {"lang", "value"}}}`.
pub(crate) fn odata_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": { "lang": "en", "value": message } } });
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

/// A server error or throttling as C4C's gateway sends it (fault injection).
pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    match status {
        429 => odata_error(
            429,
            "TOO_MANY_REQUESTS",
            "Too many requests; try again later",
        ),
        503 => odata_error(
            503,
            "SERVICE_UNAVAILABLE",
            "Service temporarily unavailable",
        ),
        other => odata_error(other, "INTERNAL_ERROR", "An internal server error occurred"),
    }
}
