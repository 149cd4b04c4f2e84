//! The sandbox Salesforce: the REST API (query, sObjects, Collections, describe,
//! limits) and the OAuth token endpoint (refresh token and JWT bearer flows),
//! for several orgs told apart by the bearer token (and, at the token endpoint,
//! by the client id). A Salesforce instance is a host, so this one is served at
//! the sandbox's root: `/services/oauth2/token`, `/services/data/...`, `/id/...`.
//! See `sandbox/docs/salesforce.md` for what is emulated and what is not.

mod admin;
mod api;
mod collections;
pub mod kit;
pub mod limits;
pub mod model;
mod oauth;
mod query;
pub mod soql;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
use model::{API_VERSION, Org, OrgData, Record, SObject, Settings, Val};

pub use kit::SandboxKind;

/// The scopes a token reply names.
pub const SCOPES: &str = "api refresh_token id";

/// Orgs, connected apps, refresh tokens and sessions.
#[derive(Debug, Default)]
pub struct SalesforceState {
    orgs: RwLock<BTreeMap<String, Arc<Org>>>,
    apps: RwLock<HashMap<String, App>>,
    refresh_tokens: RwLock<HashMap<String, Refresh>>,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    next_org: AtomicU64,
    counter: AtomicU64,
}

/// A connected app of one org: the client id and secret, and the certificates
/// JWT bearer assertions are verified against.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub secret: String,
    pub org: String,
    /// PEM texts (CERTIFICATE or PUBLIC KEY), as registered.
    pub certificates: Vec<String>,
    /// Set by `revoke`: the JWT bearer flow is refused too.
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub org: String,
    pub user: String,
    pub client_id: String,
}

/// A session (an access token): it ends `session_timeout_secs` after its last call.
#[derive(Debug)]
pub(crate) struct Session {
    pub org: String,
    pub user: String,
    pub last_used_ms: AtomicI64,
}

/// The default org as printed at start, and what `POST /admin/salesforce/orgs` returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SalesforceDescription {
    /// Where OAuth lives: `{login_url}/services/oauth2/token` (the sandbox's root).
    pub login_url: String,
    /// Where the REST API lives: `{instance_url}/services/data/{api_version}/...`.
    pub instance_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: String,
    /// A refresh token of the org's first user for that app.
    pub refresh_token: String,
    /// The org's first user's Username (the JWT bearer flow's `sub`).
    pub username: String,
    /// `v62.0`.
    pub api_version: String,
    /// The 18-character org id.
    pub org_id: String,
}

impl SalesforceState {
    /// The org with this id (15 or 18 characters).
    pub(crate) fn org(&self, id: &str) -> Option<Arc<Org>> {
        let orgs = self.orgs.read();
        orgs.get(id).cloned().or_else(|| {
            (id.len() == 15)
                .then(|| orgs.values().find(|o| o.id.starts_with(id)).cloned())
                .flatten()
        })
    }

    /// Every org.
    pub(crate) fn orgs(&self) -> Vec<Arc<Org>> {
        self.orgs.read().values().cloned().collect()
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<App> {
        self.apps.read().get(client_id).cloned()
    }

    pub(crate) fn refresh(&self, token: &str) -> Option<Refresh> {
        self.refresh_tokens.read().get(token).cloned()
    }

    pub(crate) fn session(&self, token: &str) -> Option<Arc<Session>> {
        self.sessions.read().get(token).cloned()
    }

    fn end_session(&self, token: &str) {
        self.sessions.write().remove(token);
    }

    fn random(&self, seed: u64, len: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
            seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5346_4443,
        );
        (0..len)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    /// Starts a session for a user of an org; the access token.
    pub(crate) fn mint_session(&self, seed: u64, org: &str, user: &str, now_ms: i64) -> String {
        let token = format!("{}!AQ{}", &org[..15.min(org.len())], self.random(seed, 94));
        self.sessions.write().insert(
            token.clone(),
            Arc::new(Session {
                org: org.to_owned(),
                user: user.to_owned(),
                last_used_ms: AtomicI64::new(now_ms),
            }),
        );
        token
    }

    /// A refresh token of a user of an org for a connected app.
    pub(crate) fn mint_refresh(&self, seed: u64, org: &str, user: &str, client_id: &str) -> String {
        let token = format!("5Aep861{}", self.random(seed, 80));
        self.refresh_tokens.write().insert(
            token.clone(),
            Refresh {
                org: org.to_owned(),
                user: user.to_owned(),
                client_id: client_id.to_owned(),
            },
        );
        token
    }

    /// Ends every session of an org (refresh tokens keep working).
    pub(crate) fn expire_sessions(&self, org: &str) {
        self.sessions.write().retain(|_, s| s.org != org);
    }

    /// Refuses every credential of an org from now on: sessions, refresh
    /// tokens, and the JWT bearer flow of its apps.
    pub(crate) fn revoke(&self, org: &str) {
        self.expire_sessions(org);
        self.refresh_tokens.write().retain(|_, r| r.org != org);
        for app in self.apps.write().values_mut() {
            if app.org == org {
                app.revoked = true;
            }
        }
    }

    /// Registers a certificate (or public key) for the org's apps.
    pub(crate) fn add_certificate(&self, org: &str, pem: &str) {
        for app in self.apps.write().values_mut() {
            if app.org == org {
                app.certificates.push(pem.to_owned());
            }
        }
    }

    fn app_of(&self, org: &str) -> Option<(String, App)> {
        let apps = self.apps.read();
        let mut mine: Vec<(&String, &App)> = apps.iter().filter(|(_, a)| a.org == org).collect();
        mine.sort_by_key(|(id, _)| *id);
        mine.first().map(|(id, a)| ((*id).clone(), (*a).clone()))
    }

    fn first_refresh(&self, org: &str, client_id: &str) -> Option<String> {
        let tokens = self.refresh_tokens.read();
        let mut mine: Vec<&String> = tokens
            .iter()
            .filter(|(_, r)| r.org == org && r.client_id == client_id)
            .map(|(t, _)| t)
            .collect();
        mine.sort();
        mine.first().map(|t| (*t).clone())
    }
}

/// A user to create with an org or through the admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSpec {
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    pub last_name: String,
    /// The login name; the e-mail when absent.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

/// What it takes to create an org (admin API); all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgSpec {
    name: Option<String>,
    settings: Option<Settings>,
    daily_api_requests: Option<u64>,
    /// Users; three default ones (one inactive) when absent.
    users: Option<Vec<UserSpec>>,
    /// Custom fields added to both Lead and Contact (beyond Plezi_URL__c and Sync_To_Plezi__c).
    fields: Option<Vec<model::FieldSpec>>,
    /// Seeded leads and contacts (see `admin::seed`).
    seed: Option<crate::seed::SeedSpec>,
}

const DEFAULT_USERS: &[(&str, &str, bool)] = &[
    ("Camille", "Admin", true),
    ("Hugo", "Sales", true),
    ("Marc", "Departed", false),
];

/// Creates an org with users, a connected app, a refresh token of its first
/// user and, when asked, seeded records. The error names the field.
pub(crate) fn create_org(state: &Shared, spec: OrgSpec) -> Result<Arc<Org>, String> {
    let sf = &state.salesforce;
    let settings = spec.settings.clone().unwrap_or_default();
    settings.validate().map_err(|e| format!("settings.{e}"))?;
    if spec.daily_api_requests == Some(0) {
        return Err("daily_api_requests: must be at least 1".into());
    }
    let n = sf.next_org.fetch_add(1, Ordering::Relaxed) + 1;
    let id = model::make_id("00D", 0x5A_0000 + n);
    let mut data = OrgData::new(settings, n);
    for (i, field) in spec.fields.iter().flatten().enumerate() {
        let field = field.build().map_err(|e| format!("fields[{i}].{e}"))?;
        for object in [SObject::Lead, SObject::Contact] {
            let table = data.table_mut(object);
            if table.schema.index(&field.name).is_some() {
                return Err(format!("fields[{i}].name: {} already exists", field.name));
            }
            table.schema.push(field.clone());
        }
    }
    let users = spec.users.clone().unwrap_or_else(|| {
        DEFAULT_USERS
            .iter()
            .map(|(first, last, active)| UserSpec {
                email: format!(
                    "{}.{}@org{n}.example",
                    crate::seed::slug(first),
                    crate::seed::slug(last)
                ),
                first_name: Some((*first).into()),
                last_name: (*last).into(),
                username: None,
                is_active: *active,
            })
            .collect()
    });
    if users.is_empty() {
        return Err("users: an org needs at least one user".into());
    }
    let now_ms = state.clock.now().timestamp_millis();
    let mut user_ids = Vec::new();
    for (i, user) in users.iter().enumerate() {
        user_ids
            .push(admin::add_user(&mut data, user, now_ms).map_err(|e| format!("users[{i}].{e}"))?);
    }
    let org = Arc::new(Org {
        id: id.clone(),
        name: spec.name.clone().unwrap_or_else(|| format!("Org {n}")),
        data: Mutex::new(data),
        usage: Mutex::new(limits::Usage::new(
            spec.daily_api_requests
                .unwrap_or(limits::DEFAULT_DAILY_API_REQUESTS),
        )),
    });
    if let Some(seed) = &spec.seed {
        seed.validate().map_err(|e| format!("seed.{e}"))?;
        admin::seed(&mut org.data.lock(), seed, now_ms);
    }
    sf.orgs.write().insert(id.clone(), org.clone());
    let seed = state.config.seed ^ n;
    let client_id = format!("3MVG9{}", sf.random(seed, 80));
    let secret = sf.random(seed, 64).to_uppercase();
    sf.apps.write().insert(
        client_id.clone(),
        App {
            secret,
            org: id.clone(),
            certificates: Vec::new(),
            revoked: false,
        },
    );
    sf.mint_refresh(seed, &id, &user_ids[0], &client_id);
    Ok(org)
}

/// The description of an org: its app, first user and first refresh token.
pub(crate) fn describe(state: &Shared, org: &Org) -> SalesforceDescription {
    let sf = &state.salesforce;
    let (client_id, app) = sf.app_of(&org.id).unwrap_or_else(|| {
        (
            String::new(),
            App {
                secret: String::new(),
                org: org.id.clone(),
                certificates: Vec::new(),
                revoked: false,
            },
        )
    });
    let username = {
        let data = org.data.lock();
        let users = data.table(SObject::User);
        let i = users.schema.at("Username");
        users
            .records
            .values()
            .next()
            .and_then(|u| u.get(i).as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    SalesforceDescription {
        login_url: state.base_url.clone(),
        instance_url: state.base_url.clone(),
        refresh_token: sf.first_refresh(&org.id, &client_id).unwrap_or_default(),
        client_id,
        client_secret: app.secret,
        username,
        api_version: API_VERSION.into(),
        org_id: org.id.clone(),
    }
}

/// Creates the default org with `config.people` seeded leads (and the
/// converted leads' contacts).
pub(crate) fn bootstrap(state: &Shared) -> SalesforceDescription {
    let spec = OrgSpec {
        seed: Some(crate::seed::SeedSpec {
            seed: state.config.seed,
            people: state.config.people,
            ..crate::seed::SeedSpec::default()
        }),
        ..OrgSpec::default()
    };
    match create_org(state, spec) {
        Ok(org) => describe(state, &org),
        Err(error) => {
            tracing::error!(%error, "could not create the default Salesforce org");
            SalesforceDescription::default()
        }
    }
}

/// `/services/...`, nested at `/services`.
pub(crate) fn services_router() -> Router<AppState> {
    let v = "/data/{version}";
    let mut router = Router::new()
        .route("/oauth2/token", post(oauth::token))
        .route("/data", get(api::versions))
        .route("/data/", get(api::versions));
    // Clients differ on trailing slashes (simple-salesforce adds them): both forms work.
    for slash in ["", "/"] {
        router = router
            .route(&format!("{v}{slash}"), get(api::resources))
            .route(&format!("{v}/query{slash}"), get(query::query))
            .route(&format!("{v}/queryAll{slash}"), get(query::query_all))
            .route(&format!("{v}/sobjects{slash}"), get(api::describe_global))
            .route(
                &format!("{v}/sobjects/{{sobject}}{slash}"),
                get(api::basic_info).post(api::create),
            )
            .route(
                &format!("{v}/sobjects/{{sobject}}/describe{slash}"),
                get(api::describe),
            )
            .route(
                &format!("{v}/sobjects/{{sobject}}/deleted{slash}"),
                get(api::get_deleted),
            )
            .route(
                &format!("{v}/sobjects/{{sobject}}/updated{slash}"),
                get(api::get_updated),
            )
            .route(
                &format!("{v}/sobjects/{{sobject}}/{{id}}{slash}"),
                get(api::get_one).patch(api::update).delete(api::delete),
            )
            .route(
                &format!("{v}/composite/sobjects{slash}"),
                post(collections::create)
                    .patch(collections::update)
                    .delete(collections::delete),
            )
            .route(
                &format!("{v}/composite/sobjects/{{sobject}}{slash}"),
                get(collections::retrieve).post(collections::retrieve_post),
            )
            .route(&format!("{v}/limits{slash}"), get(api::limits));
    }
    router
        .route(&format!("{v}/query/{{locator}}"), get(query::next_page))
        .route(
            &format!("{v}/queryAll/{{locator}}"),
            get(query::next_page_all),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_path)
}

/// `/id/{org}/{user}`, nested at `/id`.
pub(crate) fn id_router() -> Router<AppState> {
    Router::new()
        .route("/{org}/{user}", get(oauth::identity).post(oauth::identity))
        .fallback(unknown_path)
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "HTTP Method not allowed for this resource",
    )
    .into_response()
}

async fn unknown_path() -> Response {
    ApiError::not_found().into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_owned())
}

/// The org id of the bearer token, for the request counts.
pub(crate) fn tenant_of(state: &Shared, request: &Request) -> Option<String> {
    let token = bearer(request.headers())?;
    state.salesforce.session(&token).map(|s| s.org.clone())
}

/// A server error as Salesforce sends it (fault injection). A `rate_limit`
/// fault answers what Salesforce sends when too many long requests run at once:
/// 403 REQUEST_LIMIT_EXCEEDED, "ConcurrentPerOrgLongTxn Limit exceeded.".
pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    match status {
        429 => ApiError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        )
        .into_response(),
        503 => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable, please try again later.",
        )
        .into_response(),
        other => {
            let status = StatusCode::from_u16(other).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let n: u32 = rand::rng().random_range(100_000_000..999_999_999);
            ApiError::new(
                status,
                "UNKNOWN_EXCEPTION",
                format!(
                    "An unexpected error occurred. Please include this ErrorId if you contact support: {n}-{} (-{})",
                    n / 7,
                    n % 1000
                ),
            )
            .into_response()
        }
    }
}

/// An error reply in Salesforce's shape: `[{"message","errorCode"(,"fields")}]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    status: StatusCode,
    errors: Vec<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![json!({ "message": message.into(), "errorCode": code })],
        }
    }

    /// 400 with the fields named.
    pub(crate) fn bad_request(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: vec![json!({ "message": message.into(), "errorCode": code, "fields": fields })],
        }
    }

    /// A refused write as a single call reports it.
    pub(crate) fn write(error: &model::WriteError) -> Self {
        let status = match error.code {
            "ENTITY_IS_DELETED" | "NOT_FOUND" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut body = error.rest_json();
        if error.code == "DUPLICATES_DETECTED" {
            body["duplicateResult"] = error.collection_json()["duplicateResult"].clone();
        }
        Self {
            status,
            errors: vec![body],
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.errors)
    }
}

pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .body(Body::from(bytes))
        .unwrap_or_default()
}

fn with_usage(mut response: Response, used: u64, max: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

/// An authenticated REST call: the org, the session's user, the sandbox time
/// and the API version of the path.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub org: Arc<Org>,
    pub user: String,
    pub now_ms: i64,
    pub version: String,
}

/// The API versions the sandbox answers to: 20.0 to 62.0.
pub(crate) fn known_version(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|n| (20..=62).contains(&n))
}

/// Runs one REST call: the session (401 INVALID_SESSION_ID), the version
/// (404), the daily limit (403 REQUEST_LIMIT_EXCEEDED), then `handler`; every
/// counted reply carries `Sforce-Limit-Info`.
pub(crate) fn serve(
    state: &Shared,
    headers: &HeaderMap,
    version: &str,
    handler: impl FnOnce(&Ctx) -> Result<Response, ApiError>,
) -> Response {
    let now_ms = state.clock.now().timestamp_millis();
    let session_expired = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
        .into_response()
    };
    let Some(token) = bearer(headers) else {
        return session_expired();
    };
    let Some(session) = state.salesforce.session(&token) else {
        return session_expired();
    };
    let Some(org) = state.salesforce.org(&session.org) else {
        return session_expired();
    };
    let timeout_ms = org.data.lock().settings.session_timeout_secs as i64 * 1000;
    if now_ms - session.last_used_ms.load(Ordering::Relaxed) >= timeout_ms {
        state.salesforce.end_session(&token);
        return session_expired();
    }
    session.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
    if !known_version(version) {
        return ApiError::not_found().into_response();
    }
    let (admitted, max) = {
        let mut usage = org.usage.lock();
        (usage.admit(now_ms), usage.max)
    };
    let used = match admitted {
        Ok(used) => used,
        Err(used) => {
            let refused = ApiError::new(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .into_response();
            return with_usage(refused, used, max);
        }
    };
    let ctx = Ctx {
        org,
        user: session.user.clone(),
        now_ms,
        version: version.to_owned(),
    };
    let response = handler(&ctx).unwrap_or_else(IntoResponse::into_response);
    with_usage(response, used, max)
}

/// Parses a JSON request body, answering Salesforce's 400 JSON_PARSER_ERROR.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            format!("{e} at [line:{}, column:{}]", e.line(), e.column()),
        )
    })
}

/// The last value of a query parameter.
pub(crate) fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The org holding a record id, and the record's sObject.
pub(crate) fn org_of_record(state: &Shared, id: &str) -> Option<(Arc<Org>, SObject)> {
    let object = SObject::of_id(id)?;
    state
        .salesforce
        .orgs()
        .into_iter()
        .find(|o| o.data.lock().table(object).records.contains_key(id))
        .map(|o| (o, object))
}

/// A record of a user, as stored.
pub(crate) fn user_record(data: &OrgData, id: &str) -> Option<Record> {
    data.table(SObject::User).records.get(id).cloned()
}

/// The value of a text field of a record, or "".
pub(crate) fn text_of(data: &OrgData, object: SObject, record: &Record, field: &str) -> String {
    match data.table(object).value(record, field) {
        Val::Text(s) => s.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_20_to_62_are_known() {
        assert!(known_version("v62.0"));
        assert!(known_version("v20.0"));
        assert!(!known_version("v63.0"));
        assert!(!known_version("62.0"));
    }
}
