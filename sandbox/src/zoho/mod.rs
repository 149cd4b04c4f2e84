//! The Zoho CRM sandbox: an accounts (OAuth) server and the CRM API v8 for Leads and
//! Contacts, with per-org users, fields, limits and credits. See `docs/zoho.md`.
//!
//! Layout: `org` holds an org's data and indexes, `fields` the field lists and value
//! validation, `oauth` the token endpoint, `auth` the per-request checks (token,
//! scope, concurrency, credits), `read` and `write` the API handlers, `organization`
//! the org endpoint, `criteria` the search grammar, `coql` the query API and `admin`
//! the admin API.

mod admin;
mod auth;
mod coql;
pub mod criteria;
mod fields;
pub mod kit;
mod oauth;
mod org;
mod organization;
mod read;
pub mod watch;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AppState, Shared};

pub use kit::SandboxKind;
pub(crate) use org::Org;

/// Scope a grant code carries when none is asked for.
pub const DEFAULT_SCOPE: &str =
    "ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ,ZohoCRM.notifications.ALL";

/// All Zoho orgs, OAuth clients, grant codes and tokens.
#[derive(Debug)]
pub struct ZohoState {
    registry: RwLock<Registry>,
    rng: Mutex<ChaCha8Rng>,
}

impl Default for ZohoState {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            registry: RwLock::new(Registry::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(nanos)),
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    orgs: Vec<Arc<Org>>,
    /// Org indexes handed out (ids derive from them), so that two orgs
    /// created at once never share an id.
    org_indexes: u64,
    clients: HashMap<String, Client>,
    grant_codes: HashMap<String, GrantCode>,
    refresh_tokens: HashMap<String, RefreshToken>,
    access_tokens: HashMap<String, AccessToken>,
}

#[derive(Debug, Clone)]
struct Client {
    secret: String,
    org_id: String,
}

#[derive(Debug, Clone)]
struct GrantCode {
    client_id: String,
    org_id: String,
    user_id: u64,
    scope: String,
    expires_ms: i64,
}

#[derive(Debug)]
struct RefreshToken {
    client_id: String,
    org_id: String,
    user_id: u64,
    scope: String,
    /// When each access token minted from this refresh token was issued (ms), for the throttle.
    issued_ms: std::collections::VecDeque<i64>,
}

#[derive(Debug, Clone)]
struct AccessToken {
    org_id: String,
    user_id: u64,
    scope: String,
    expires_ms: i64,
    /// The refresh token it was minted from: revoking that one revokes this one too.
    refresh_token: String,
}

impl ZohoState {
    fn org(&self, id: &str) -> Option<Arc<Org>> {
        self.registry
            .read()
            .orgs
            .iter()
            .find(|o| o.id == id)
            .cloned()
    }

    fn orgs(&self) -> Vec<Arc<Org>> {
        self.registry.read().orgs.clone()
    }

    /// A random token part of `len` lower-case hex digits.
    fn hex(&self, len: usize) -> String {
        let mut rng = self.rng.lock();
        (0..len)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    }

    fn new_client(&self, org: &Org) -> (String, String) {
        let id = format!("1000.{}", self.hex(30).to_uppercase());
        let secret = self.hex(42);
        self.registry.write().clients.insert(
            id.clone(),
            Client {
                secret: secret.clone(),
                org_id: org.id.clone(),
            },
        );
        org.clients.lock().push(id.clone());
        (id, secret)
    }

    /// Mints a single-use grant code for `client_id` (which must belong to the org).
    fn mint_grant_code(&self, org: &Org, client_id: &str, scope: &str, now_ms: i64) -> String {
        let code = format!("1000.{}.{}", self.hex(32), self.hex(32));
        let ttl = org.limits.lock().grant_code_ttl_secs as i64;
        let user_id = org.data.lock().admin_user_id();
        self.registry.write().grant_codes.insert(
            code.clone(),
            GrantCode {
                client_id: client_id.to_owned(),
                org_id: org.id.clone(),
                user_id,
                scope: scope.to_owned(),
                expires_ms: now_ms + ttl * 1000,
            },
        );
        code
    }
}

/// The default org's coordinates, printed at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZohoDescription {
    /// Accounts (OAuth) server: `POST {accounts_url}/oauth/v2/token`.
    pub accounts_url: String,
    /// API domain: calls go to `{api_domain}/crm/v8/...`.
    pub api_domain: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// A grant code minted at start (single use, expires after `grant_code_ttl_secs`).
    pub grant_code: String,
    /// `POST` here (no body) for a fresh grant code.
    pub mint_grant_code_url: String,
    /// The org id.
    pub org_id: String,
    /// The scope grant codes carry by default.
    pub scope: String,
    /// The org's users.
    pub users: Vec<Value>,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/oauth/v2/token", post(oauth::token))
        .route("/accounts/oauth/v2/token/revoke", post(oauth::revoke))
        .route("/api/crm/v8/users", get(read::users))
        .route("/api/crm/v8/org", get(organization::get))
        .route("/api/crm/v8/coql", post(coql::query))
        .route("/api/crm/v8/settings/fields", get(read::fields))
        .route(
            "/api/crm/v8/actions/watch",
            post(watch::subscribe)
                .put(watch::subscribe)
                .patch(watch::update)
                .get(watch::list)
                .delete(watch::unsubscribe),
        )
        .route(
            "/api/crm/v8/{module}",
            get(read::list)
                .post(write::insert)
                .put(write::update_many)
                .delete(write::delete_many),
        )
        .route("/api/crm/v8/{module}/search", get(read::search))
        .route("/api/crm/v8/{module}/deleted", get(read::deleted))
        .route("/api/crm/v8/{module}/upsert", post(write::upsert))
        .route(
            "/api/crm/v8/{module}/{id}",
            get(read::get_one)
                .put(write::update_one)
                .delete(write::delete_one),
        )
        .route(
            "/api/crm/v8/{module}/{id}/actions/convert",
            post(write::convert),
        )
        .fallback(invalid_url)
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

pub(crate) fn tenant_of(state: &Shared, request: &Request) -> Option<String> {
    let token = auth::bearer(request.headers())?;
    state
        .zoho
        .registry
        .read()
        .access_tokens
        .get(token)
        .map(|t| t.org_id.clone())
}

pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    fault(status)
}

/// An injected failure in Zoho's error envelope.
fn fault(status: u16) -> Response {
    match status {
        429 => error(429, "TOO_MANY_REQUESTS", "too many requests", json!({})),
        502..=504 => error(
            status,
            "SERVICE_UNAVAILABLE",
            "the service is temporarily unavailable",
            json!({}),
        ),
        _ => error(status, "INTERNAL_ERROR", "internal server error", json!({})),
    }
    .into_response()
}

pub(crate) fn bootstrap(state: &Shared) -> ZohoDescription {
    let spec = crate::seed::SeedSpec {
        seed: state.config.seed,
        people: state.config.people,
        ..crate::seed::SeedSpec::default()
    };
    let created = admin::create_org(state, admin::NewOrg::default(), Some(&spec))
        .expect("the default org is valid");
    created.description
}

/// A refused call, boxed so that `Result<_, Reject>` stays small.
#[derive(Debug)]
pub(crate) struct Reject(Box<Response>);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Reject {
    fn from(response: Response) -> Self {
        Reject(Box::new(response))
    }
}

/// A JSON reply written straight into its body (axum's `Json` writes through a
/// `BytesMut` writer, several times slower for the large pages and batches).
pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

/// `{"data": [..], ..}`: the records moved in (`json!` would copy them), then
/// the other members.
pub(crate) fn data_reply(
    data: Vec<Value>,
    rest: impl IntoIterator<Item = (&'static str, Value)>,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("data".to_owned(), Value::Array(data));
    for (key, value) in rest {
        out.insert(key.to_owned(), value);
    }
    Value::Object(out)
}

/// Zoho's error envelope: `{"code","details","message","status":"error"}`.
pub(crate) fn error(status: u16, code: &str, message: &str, details: Value) -> Reject {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "code": code, "details": details, "message": message, "status": "error" });
    (status, Json(body)).into_response().into()
}

/// Zoho's answer for a path that is not an API.
pub(crate) fn invalid_url_pattern() -> Reject {
    error(
        404,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    )
}

async fn invalid_url() -> Response {
    invalid_url_pattern().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[test]
    fn injected_faults_answer_in_zoho_error_envelope() {
        for (status, code) in [
            (429, "TOO_MANY_REQUESTS"),
            (500, "INTERNAL_ERROR"),
            (503, "SERVICE_UNAVAILABLE"),
        ] {
            let (got, body) = body_of(fault(status));
            assert_eq!(got, status);
            assert_eq!(body["status"], "error");
            assert_eq!(body["code"], code);
            assert!(body["details"].is_object() && body["message"].is_string());
        }
    }
}
