//! The sandbox HubSpot: contacts, properties and owners of the CRM API v3 and the
//! OAuth token endpoint, for several portals told apart by the bearer token.
//! Served under `/hubspot`. See `sandbox/docs/hubspot.md` for what is emulated
//! and what is not.

mod admin;
mod api;
pub mod kit;
pub mod limits;
pub mod model;
pub(crate) mod oauth;
mod properties;
mod search;
pub(crate) mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AppState, Shared};
use limits::{LimitConfig, Op, RateHeaders, Verdict};
use model::{Owner, Portal, PortalData, Property, Settings};

pub use kit::SandboxKind;

/// Every scope a token is granted unless told otherwise.
pub const ALL_SCOPES: &[&str] = &[
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.objects.owners.read",
    "oauth",
];

/// How long an OAuth access token lives, in seconds.
pub const ACCESS_TOKEN_SECS: i64 = 1800;

/// Portals, tokens and OAuth apps.
#[derive(Debug, Default)]
pub struct HubspotState {
    portals: RwLock<BTreeMap<u64, Arc<Portal>>>,
    tokens: RwLock<HashMap<String, Token>>,
    refresh_tokens: RwLock<HashMap<String, Refresh>>,
    apps: RwLock<HashMap<String, App>>,
    /// Webhook settings and subscriptions, by app id.
    webhooks: Mutex<BTreeMap<u64, webhooks::AppWebhooks>>,
    next_portal: AtomicU64,
    counter: AtomicU64,
}

/// An access token: a private app's or an OAuth one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    portal: u64,
    /// `private` or the OAuth client id: whose 10-second window the calls count in.
    app: String,
    oauth: bool,
    /// Epoch ms the token stops working (OAuth tokens).
    expires_ms: Option<i64>,
    scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Refresh {
    portal: u64,
    client_id: String,
    scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct App {
    secret: String,
    portal: u64,
    /// The app's id, as the webhooks API names it.
    app_id: u64,
    /// The API key of the developer account that owns the app.
    developer_api_key: String,
}

/// The default portal as printed at start, and what the admin API returns for a portal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HubspotDescription {
    /// `{base}/hubspot`: the API is at `{base_url}/crm/v3/...`, OAuth at `{base_url}/oauth/v1/token`.
    pub base_url: String,
    /// A private app's access token.
    pub access_token: String,
    /// The portal (hub) id.
    pub portal_id: u64,
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: String,
    /// A refresh token of the OAuth app for this portal.
    pub refresh_token: String,
    /// The OAuth app's id (the webhooks API's `{appId}`).
    #[serde(default)]
    pub app_id: u64,
    /// The API key of the developer account that owns the OAuth app (the
    /// webhooks API's `hapikey`).
    #[serde(default)]
    pub developer_api_key: String,
    /// Custom contact properties (name to type).
    #[serde(default)]
    pub custom_properties: BTreeMap<String, String>,
    /// Owners: id to e-mail.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
}

impl HubspotState {
    /// The portal with this id.
    pub(crate) fn portal(&self, id: u64) -> Option<Arc<Portal>> {
        self.portals.read().get(&id).cloned()
    }

    /// Every portal.
    pub(crate) fn portals(&self) -> Vec<Arc<Portal>> {
        self.portals.read().values().cloned().collect()
    }

    pub(crate) fn token(&self, token: &str) -> Option<Token> {
        self.tokens.read().get(token).cloned()
    }

    fn random(&self, seed: u64, prefix: &str, hex: usize) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
            seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x4855_4253,
        );
        let body: String = (0..hex)
            .map(|i| {
                if i > 0 && i % 8 == 0 && prefix.starts_with("pat") {
                    '-'
                } else {
                    char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')
                }
            })
            .collect();
        format!("{prefix}{body}")
    }

    /// Mints a private-app access token for a portal.
    pub(crate) fn mint_private(&self, seed: u64, portal: u64, scopes: Vec<String>) -> String {
        let token = self.random(seed, "pat-eu1-", 36);
        self.tokens.write().insert(
            token.clone(),
            Token {
                portal,
                app: "private".into(),
                oauth: false,
                expires_ms: None,
                scopes,
            },
        );
        token
    }

    /// Mints a refresh token of an OAuth app for a portal.
    pub(crate) fn mint_refresh(
        &self,
        seed: u64,
        portal: u64,
        client_id: &str,
        scopes: Vec<String>,
    ) -> String {
        let token = self.random(seed, "eu1-", 32);
        self.refresh_tokens.write().insert(
            token.clone(),
            Refresh {
                portal,
                client_id: client_id.to_owned(),
                scopes,
            },
        );
        token
    }

    /// Mints an OAuth access token that expires at `expires_ms`.
    pub(crate) fn mint_access(
        &self,
        seed: u64,
        portal: u64,
        client_id: &str,
        scopes: Vec<String>,
        expires_ms: i64,
    ) -> String {
        let token = self.random(seed, "CK", 48);
        self.tokens.write().insert(
            token.clone(),
            Token {
                portal,
                app: client_id.to_owned(),
                oauth: true,
                expires_ms: Some(expires_ms),
                scopes,
            },
        );
        token
    }

    /// Replaces the scopes of one of a portal's tokens (access or refresh token);
    /// false when the portal has no such token.
    pub(crate) fn set_scopes(&self, portal: u64, token: &str, scopes: &[String]) -> bool {
        if let Some(t) = self.tokens.write().get_mut(token)
            && t.portal == portal
        {
            t.scopes = scopes.to_vec();
            return true;
        }
        if let Some(t) = self.refresh_tokens.write().get_mut(token)
            && t.portal == portal
        {
            t.scopes = scopes.to_vec();
            return true;
        }
        false
    }

    /// Forgets every token of a portal.
    pub(crate) fn revoke(&self, portal: u64) {
        self.tokens.write().retain(|_, t| t.portal != portal);
        self.refresh_tokens
            .write()
            .retain(|_, t| t.portal != portal);
    }

    /// The portal's live private-app tokens and refresh tokens.
    fn tokens_of(&self, portal: u64) -> (Vec<String>, Vec<String>) {
        let mut private: Vec<String> = self
            .tokens
            .read()
            .iter()
            .filter(|(_, t)| t.portal == portal && !t.oauth)
            .map(|(k, _)| k.clone())
            .collect();
        private.sort();
        let mut refresh: Vec<String> = self
            .refresh_tokens
            .read()
            .iter()
            .filter(|(_, t)| t.portal == portal)
            .map(|(k, _)| k.clone())
            .collect();
        refresh.sort();
        (private, refresh)
    }

    fn app_of(&self, portal: u64) -> Option<(String, String)> {
        self.app_details(portal)
            .map(|(client_id, app)| (client_id, app.secret))
    }

    /// The portal's OAuth app: its client id and details.
    fn app_details(&self, portal: u64) -> Option<(String, App)> {
        let mut apps: Vec<(String, App)> = self
            .apps
            .read()
            .iter()
            .filter(|(_, a)| a.portal == portal)
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect();
        apps.sort_by(|a, b| a.0.cmp(&b.0));
        apps.into_iter().next()
    }

    /// The app with this id: its client secret and the portal it is installed in.
    fn app_by_id(&self, app_id: u64) -> Option<App> {
        self.apps
            .read()
            .values()
            .find(|a| a.app_id == app_id)
            .cloned()
    }
}

/// What it takes to create a portal (admin API).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortalSpec {
    portal_id: Option<u64>,
    name: Option<String>,
    limits: Option<LimitConfig>,
    settings: Option<Settings>,
    /// Custom properties; the default set (plezi_url, ...) when absent.
    properties: Option<Vec<Property>>,
    owners: Option<Vec<OwnerSpec>>,
    seed: Option<crate::seed::SeedSpec>,
    scopes: Option<Vec<String>>,
}

/// An owner to create with a portal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnerSpec {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    archived: bool,
}

const DEFAULT_OWNERS: &[(&str, &str, bool)] = &[
    ("Camille", "Admin", false),
    ("Hugo", "Sales", false),
    ("Léa", "Marketing", false),
    ("Marc", "Departed", true),
];

/// Why a portal could not be created.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// A bad value; names the field.
    Invalid(String),
    /// The portal id is taken.
    Taken(String),
}

/// Creates a portal with properties, owners, a private-app token, an OAuth app with
/// a refresh token and, when asked, seeded contacts.
pub(crate) fn create_portal(state: &Shared, spec: PortalSpec) -> Result<Arc<Portal>, CreateError> {
    let hs = &state.hubspot;
    let limits = spec.limits.clone().unwrap_or_default();
    limits
        .validate()
        .map_err(|e| CreateError::Invalid(format!("limits.{e}")))?;
    let settings = spec.settings.clone().unwrap_or_default();
    settings
        .validate()
        .map_err(|e| CreateError::Invalid(format!("settings.{e}")))?;
    if let Some(seed) = &spec.seed {
        seed.validate()
            .map_err(|e| CreateError::Invalid(format!("seed.{e}")))?;
    }
    let scopes = spec
        .scopes
        .clone()
        .unwrap_or_else(|| ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    let now_ms = state.clock.now().timestamp_millis();
    let mut properties = model::default_properties(now_ms);
    for (i, mut p) in spec
        .properties
        .clone()
        .unwrap_or_else(model::default_custom_properties)
        .into_iter()
        .enumerate()
    {
        p.validate()
            .map_err(|e| CreateError::Invalid(format!("properties[{i}].{e}")))?;
        if properties.iter().any(|q| q.name == p.name) {
            return Err(CreateError::Invalid(format!(
                "properties[{i}].name: {} already exists",
                p.name
            )));
        }
        p.hubspot_defined = false;
        p.created_ms = now_ms;
        properties.push(p);
    }
    let id = match spec.portal_id {
        Some(id) => id,
        None => 1_000_000 + hs.next_portal.fetch_add(1, Ordering::Relaxed) * 1_111 + 1_234,
    };
    if hs.portal(id).is_some() {
        return Err(CreateError::Taken(format!("portal_id: {id} is taken")));
    }
    let owner_specs: Vec<OwnerSpec> = spec.owners.clone().unwrap_or_else(|| {
        DEFAULT_OWNERS
            .iter()
            .map(|(first, last, archived)| OwnerSpec {
                email: format!(
                    "{}.{}@portal{id}.example",
                    crate::seed::slug(first),
                    crate::seed::slug(last)
                ),
                first_name: (*first).into(),
                last_name: (*last).into(),
                archived: *archived,
            })
            .collect()
    });
    let owners: Vec<Owner> = owner_specs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if !model::valid_email(&o.email) {
                return Err(CreateError::Invalid(format!(
                    "owners[{i}].email: {:?} is not an e-mail address",
                    o.email
                )));
            }
            Ok(Owner {
                id: id % 1000 * 100_000 + 41_000_000 + i as u64 + 1,
                email: o.email.clone(),
                first_name: o.first_name.clone(),
                last_name: o.last_name.clone(),
                user_id: 9_000_000 + id % 1000 * 1000 + i as u64 + 1,
                archived: o.archived,
            })
        })
        .collect::<Result<_, _>>()?;
    let portal = Arc::new(Portal {
        id,
        name: spec.name.clone().unwrap_or_else(|| format!("Portal {id}")),
        created_ms: now_ms,
        data: Mutex::new(PortalData {
            properties,
            owners,
            next_id: 100,
            settings,
            ..PortalData::default()
        }),
        usage: Mutex::new(limits::Usage::new(limits)),
    });
    if let Some(seed) = &spec.seed {
        admin::seed(&mut portal.data.lock(), seed, now_ms);
    }
    {
        let mut portals = hs.portals.write();
        if portals.contains_key(&id) {
            return Err(CreateError::Taken(format!("portal_id: {id} is taken")));
        }
        portals.insert(id, portal.clone());
    }
    let seed = state.config.seed;
    hs.mint_private(seed, id, scopes.clone());
    let client_id = format!(
        "{}-{}",
        &hs.random(seed ^ id, "", 8),
        &hs.random(seed ^ id, "", 4)
    );
    let secret = hs.random(seed ^ id, "", 36);
    let key = hs.random(seed ^ id, "", 32);
    let developer_api_key = format!(
        "{}-{}-{}-{}-{}",
        &key[0..8],
        &key[8..12],
        &key[12..16],
        &key[16..20],
        &key[20..32]
    );
    hs.apps.write().insert(
        client_id.clone(),
        App {
            secret,
            portal: id,
            app_id: 2_000_000 + id % 1_000_000,
            developer_api_key,
        },
    );
    hs.mint_refresh(seed, id, &client_id, scopes);
    Ok(portal)
}

/// The description of a portal with its first tokens.
pub(crate) fn describe(state: &Shared, portal: &Portal) -> HubspotDescription {
    let (private, refresh) = state.hubspot.tokens_of(portal.id);
    let (client_id, client_secret) = state.hubspot.app_of(portal.id).unwrap_or_default();
    let (app_id, developer_api_key) = state
        .hubspot
        .app_details(portal.id)
        .map(|(_, app)| (app.app_id, app.developer_api_key))
        .unwrap_or_default();
    let data = portal.data.lock();
    HubspotDescription {
        base_url: format!("{}/hubspot", state.base_url),
        access_token: private.first().cloned().unwrap_or_default(),
        portal_id: portal.id,
        client_id,
        client_secret,
        refresh_token: refresh.first().cloned().unwrap_or_default(),
        app_id,
        developer_api_key,
        custom_properties: data
            .properties
            .iter()
            .filter(|p| !p.hubspot_defined)
            .map(|p| (p.name.clone(), p.kind.clone()))
            .collect(),
        owners: data
            .owners
            .iter()
            .map(|o| (o.id.to_string(), o.email.clone()))
            .collect(),
    }
}

/// Creates the default portal with `config.people` seeded contacts.
pub(crate) fn bootstrap(state: &Shared) -> HubspotDescription {
    let spec = PortalSpec {
        seed: Some(crate::seed::SeedSpec {
            seed: state.config.seed,
            people: state.config.people,
            duplicate_email: 0.0,
            ..crate::seed::SeedSpec::default()
        }),
        ..PortalSpec::default()
    };
    match create_portal(state, spec) {
        Ok(portal) => describe(state, &portal),
        Err(error) => {
            tracing::error!(?error, "could not create the default HubSpot portal");
            HubspotDescription::default()
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/objects/contacts", get(api::list).post(api::create))
        .route(
            "/crm/v3/objects/contacts/{contactId}",
            get(api::get_one).patch(api::update).delete(api::archive),
        )
        .route("/crm/v3/objects/contacts/search", post(search::search))
        .route("/crm/v3/objects/contacts/batch/read", post(api::batch_read))
        .route(
            "/crm/v3/objects/contacts/batch/create",
            post(api::batch_create),
        )
        .route(
            "/crm/v3/objects/contacts/batch/update",
            post(api::batch_update),
        )
        .route(
            "/crm/v3/objects/contacts/batch/upsert",
            post(api::batch_upsert),
        )
        .route(
            "/crm/v3/objects/contacts/batch/archive",
            post(api::batch_archive),
        )
        .route(
            "/crm/v3/properties/contacts",
            get(properties::list).post(properties::create),
        )
        .route(
            "/crm/v3/properties/contacts/{propertyName}",
            get(properties::get_one),
        )
        .route("/crm/v3/owners", get(properties::owners))
        .route("/crm/v3/owners/", get(properties::owners))
        .route("/crm/v3/owners/{ownerId}", get(properties::owner))
        .merge(webhooks::router())
        .route("/oauth/v1/token", post(oauth::token))
        .route(
            "/oauth/v1/access-tokens/{token}",
            get(oauth::access_token_info),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_path)
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "HTTP 405 Method Not Allowed",
    )
    .into_response()
}

async fn unknown_path() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, None, "HTTP 404 Not Found").into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The portal id of the bearer token, for the request counts.
pub(crate) fn tenant_of(state: &Shared, request: &Request) -> Option<String> {
    let token = bearer(request.headers())?;
    state.hubspot.token(&token).map(|t| t.portal.to_string())
}

/// A server error or 429 as HubSpot sends them (fault injection).
pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let config = LimitConfig::default();
        let headers = RateHeaders {
            max: config.ten_secondly,
            remaining: 0,
            daily: config.daily,
            daily_remaining: config.daily,
            secondly: None,
        };
        return with_rate_headers(rate_limited("TEN_SECONDLY_ROLLING"), &headers);
    }
    let message = match status.as_u16() {
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "internal error",
    };
    ApiError::new(status, None, message).into_response()
}

/// A correlation id: a random UUID v4.
pub(crate) fn correlation_id() -> String {
    let mut rng = rand::rng();
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An error reply in HubSpot's shape:
/// `{"status":"error","message":..,"correlationId":..,"category":..}` plus extras.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    status: StatusCode,
    category: Option<&'static str>,
    message: String,
    extra: serde_json::Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        category: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR"), message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Some("OBJECT_NOT_FOUND"),
            "resource not found",
        )
    }

    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub(crate) fn from_write(error: &model::WriteError) -> Self {
        Self::new(
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            Some(error.category()),
            error.message(),
        )
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
        });
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extra {
                map.insert(k.clone(), v.clone());
            }
            if let Some(category) = self.category {
                map.insert("category".into(), json!(category));
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .body(Body::from(bytes))
        .unwrap_or_default()
}

/// The 429 body, which carries `errorType` and `policyName` but no category.
fn rate_limited(policy: &str) -> Response {
    let message = match policy {
        "DAILY" => "You have reached your daily limit.".to_owned(),
        other => format!("You have reached your {} limit.", other.to_lowercase()),
    };
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
        }),
    )
}

fn with_rate_headers(mut response: Response, h: &RateHeaders) -> Response {
    let headers = response.headers_mut();
    if let Some((max, remaining)) = h.secondly {
        headers.insert("x-hubspot-ratelimit-secondly", HeaderValue::from(max));
        headers.insert(
            "x-hubspot-ratelimit-secondly-remaining",
            HeaderValue::from(remaining),
        );
        return response;
    }
    headers.insert("x-hubspot-ratelimit-daily", HeaderValue::from(h.daily));
    headers.insert(
        "x-hubspot-ratelimit-daily-remaining",
        HeaderValue::from(h.daily_remaining),
    );
    headers.insert(
        "x-hubspot-ratelimit-interval-milliseconds",
        HeaderValue::from(limits::INTERVAL_MS),
    );
    headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(h.max));
    headers.insert(
        "x-hubspot-ratelimit-remaining",
        HeaderValue::from(h.remaining),
    );
    response
}

/// An authenticated call: the portal and the sandbox time.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub portal: Arc<Portal>,
    pub now_ms: i64,
}

impl Ctx {
    /// When the portal was created: the owners' times.
    pub(crate) fn portal_created_ms(&self) -> i64 {
        self.portal.created_ms
    }
}

const AUTH_MESSAGE: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

fn unauthorized(category: &'static str, message: String) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, Some(category), message).into_response()
}

fn missing_scope(scope: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        Some("MISSING_SCOPES"),
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    )
    .with(
        "errors",
        json!([{
            "message": "One or more of the following scopes are required.",
            "context": { "requiredGranularScopes": [scope] },
        }]),
    )
    .with("links", json!({ "scopes": "https://developers.hubspot.com/scopes" }))
    .into_response()
}

/// Runs one API call: authentication (401), scope (403), the 10-second, search and
/// daily limits (429), then `handler`; admitted replies carry the rate-limit headers.
pub(crate) fn serve(
    state: &Shared,
    headers: &HeaderMap,
    scope: &str,
    op: Op,
    handler: impl FnOnce(&Ctx) -> Result<Response, ApiError>,
) -> Response {
    let Some(token) = bearer(headers) else {
        return unauthorized("INVALID_AUTHENTICATION", AUTH_MESSAGE.into());
    };
    let Some(info) = state.hubspot.token(&token) else {
        return unauthorized("INVALID_AUTHENTICATION", AUTH_MESSAGE.into());
    };
    let now = state.clock.now().timestamp_millis();
    if let Some(expires) = info.expires_ms
        && now >= expires
    {
        let secs = (now - expires) / 1000;
        return unauthorized(
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {secs} second(s) ago."),
        );
    }
    if !info.scopes.iter().any(|s| s == scope) {
        return missing_scope(scope);
    }
    let Some(portal) = state.hubspot.portal(info.portal) else {
        return unauthorized("INVALID_AUTHENTICATION", AUTH_MESSAGE.into());
    };
    let verdict = portal.usage.lock().admit(&info.app, info.oauth, op, now);
    let rate = match verdict {
        Verdict::Allowed(rate) => rate,
        Verdict::TenSecondly(rate) => {
            return with_rate_headers(rate_limited("TEN_SECONDLY_ROLLING"), &rate);
        }
        Verdict::Secondly(rate) => return with_rate_headers(rate_limited("SECONDLY"), &rate),
        Verdict::Daily(rate) => return with_rate_headers(rate_limited("DAILY"), &rate),
    };
    let ctx = Ctx {
        portal,
        now_ms: now,
    };
    let response = handler(&ctx).unwrap_or_else(IntoResponse::into_response);
    // Contact changes the call made go out to the webhooks.
    webhooks::flush(state, &ctx.portal, webhooks::CHANGE_SOURCE_API);
    let mut response = with_rate_headers(response, &rate);
    if info.oauth {
        // HubSpot leaves the daily headers off replies to OAuth-authorised calls.
        response.headers_mut().remove("x-hubspot-ratelimit-daily");
        response
            .headers_mut()
            .remove("x-hubspot-ratelimit-daily-remaining");
    }
    response
}

/// Parses a JSON request body, answering HubSpot's 400 when it is not JSON of that shape.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// `properties=a,b` and repeated `properties=` parameters, merged.
pub(crate) fn list_param(query: &[(String, String)], key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, v) in query {
        if k == key {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !out.iter().any(|o| o == part) {
                    out.push(part.to_owned());
                }
            }
        }
    }
    out
}

/// The last value of a query parameter.
pub(crate) fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn shared() -> Shared {
        Shared {
            clock: crate::clock::Clock::default(),
            faults: crate::faults::Faults::new(1),
            metrics: crate::metrics::Metrics::default(),
            notify: crate::notify::Notifier::default(),
            zoho: crate::zoho::ZohoState::default(),
            pipedrive: crate::pipedrive::PipedriveState::default(),
            hubspot: HubspotState::default(),
            salesforce: crate::salesforce::SalesforceState::default(),
            sap_c4c: crate::sap_c4c::SapC4cState::default(),
            zendesk_sell: crate::zendesk_sell::ZendeskSellState::default(),
            base_url: "http://127.0.0.1:1".into(),
            config: crate::SandboxConfig::default(),
            description: std::sync::OnceLock::new(),
        }
    }

    #[tokio::test]
    async fn an_injected_429_looks_like_hubspots() {
        let response = fault_response(&shared(), 429);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "0");
        assert_eq!(
            response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
        let body = body(response).await;
        assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(body["errorType"], "RATE_LIMIT");
        assert!(body.get("category").is_none());
    }

    #[tokio::test]
    async fn injected_server_errors_have_hubspots_shape() {
        let response = fault_response(&shared(), 503);
        assert_eq!(response.status(), 503);
        let body = body(response).await;
        assert_eq!(body["status"], "error");
        assert_eq!(body["correlationId"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn bootstrap_creates_the_default_portal_with_seeded_contacts() {
        let state = shared();
        let description = bootstrap(&state);
        assert_eq!(description.base_url, "http://127.0.0.1:1/hubspot");
        assert!(description.access_token.starts_with("pat-"));
        assert!(!description.refresh_token.is_empty());
        let portal = state.hubspot.portal(description.portal_id).unwrap();
        let data = portal.data.lock();
        let live = data
            .contacts
            .values()
            .filter(|c| c.archived_ms.is_none())
            .count();
        assert_eq!(live, state.config.people);
        assert!(data.property("plezi_url").is_some());
    }
}
