//! The sandbox Zendesk Sell (API v2, formerly Base CRM): leads, contacts,
//! their custom field definitions, users and lead conversions, for several
//! accounts told apart by the access token. Sell's API is a host of its own
//! (`https://api.getbase.com/v2/...`); here it lives under `/zendesk_sell`, so a
//! client's base URL is `{sandbox}/zendesk_sell`.
//! See `sandbox/docs/zendesk_sell.md` for what is emulated and what is not.

mod admin;
mod api;
pub mod kit;
pub mod limits;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AppState, Shared};
use limits::{LimitConfig, Limits};
use model::{Account, Data, FieldSpec, FieldType, Resource, Settings, User};

pub use kit::SandboxKind;

/// Accounts, access tokens and id counters.
#[derive(Debug, Default)]
pub struct ZendeskSellState {
    accounts: RwLock<BTreeMap<u64, Arc<Account>>>,
    tokens: RwLock<HashMap<String, TokenOwner>>,
    next_account: AtomicU64,
    /// Ids of users, records, fields and conversions: one counter, so ids never repeat.
    next_id: Arc<AtomicU64>,
    next_request: AtomicU64,
}

/// Who an access token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenOwner {
    pub account: u64,
    pub user: u64,
}

/// The default account as printed at start, and what the admin API returns for an account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZendeskSellDescription {
    /// `{sandbox}/zendesk_sell`: what `https://api.getbase.com` is for the real one.
    pub base_url: String,
    /// A personal access token of the account's first (admin) user: 64 hex digits.
    pub access_token: String,
    /// The account id (the tenant label of its requests and fault rules).
    #[serde(default)]
    pub account_id: u64,
    /// The user the token belongs to.
    #[serde(default)]
    pub user_id: u64,
}

impl ZendeskSellState {
    /// The account with this id.
    pub(crate) fn account(&self, id: u64) -> Option<Arc<Account>> {
        self.accounts.read().get(&id).cloned()
    }

    pub(crate) fn owner_of(&self, token: &str) -> Option<TokenOwner> {
        self.tokens.read().get(token).copied()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn ids(&self) -> Arc<AtomicU64> {
        self.next_id.clone()
    }

    /// Mints a new 64-hex access token for a user of an account.
    pub(crate) fn mint_token(&self, seed: u64, account: u64, user: u64) -> String {
        let mut tokens = self.tokens.write();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
            seed ^ account.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (tokens.len() as u64) << 20,
        );
        loop {
            let token: String = (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect();
            if !tokens.contains_key(&token) {
                tokens.insert(token.clone(), TokenOwner { account, user });
                return token;
            }
        }
    }

    /// Refuses every token of an account from now on.
    pub(crate) fn revoke(&self, account: u64) {
        self.tokens.write().retain(|_, o| o.account != account);
    }

    /// A request id (`X-Request-Id`, and `logref` in errors).
    pub(crate) fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
        let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!("{mixed:016x}{n:016x}")
    }
}

/// A user to create with an account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSpec {
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// What it takes to create an account (admin API); all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountSpec {
    name: Option<String>,
    users: Option<Vec<UserSpec>>,
    /// Custom fields of leads; the defaults (`sync_to_plezi`, `plezi_url`, `source`, `score`, `status`) when absent.
    lead_fields: Option<Vec<FieldSpec>>,
    /// Custom fields of contacts; the same defaults when absent.
    contact_fields: Option<Vec<FieldSpec>>,
    limits: Option<LimitConfig>,
    settings: Option<Settings>,
    seed: Option<crate::seed::SeedSpec>,
}

const DEFAULT_USERS: &[(&str, bool)] = &[
    ("Camille Admin", true),
    ("Hugo Sales", true),
    ("Marc Departed", false),
];

/// The custom fields a new account has unless told otherwise.
pub fn default_fields() -> Vec<FieldSpec> {
    let spec = |name: &str, field_type, choices: &[&str]| FieldSpec {
        name: name.into(),
        field_type,
        choices: choices.iter().map(|s| (*s).to_owned()).collect(),
    };
    vec![
        spec("sync_to_plezi", FieldType::Bool, &[]),
        spec("plezi_url", FieldType::Url, &[]),
        spec("source", FieldType::List, crate::seed::SOURCES),
        spec("score", FieldType::Number, &[]),
        spec("status", FieldType::List, crate::seed::STATUSES),
    ]
}

/// Creates an account with users, custom fields, a token of its first user
/// and, when asked, seeded leads and contacts. The error names the field.
pub(crate) fn create_account(
    state: &Shared,
    spec: AccountSpec,
) -> Result<(Arc<Account>, String), String> {
    let zs = &state.zendesk_sell;
    let limits = spec.limits.unwrap_or_default();
    limits.validate().map_err(|e| format!("limits.{e}"))?;
    if let Some(seed) = &spec.seed {
        seed.validate().map_err(|e| format!("seed.{e}"))?;
    }
    let users: Vec<UserSpec> = spec.users.clone().unwrap_or_else(|| {
        DEFAULT_USERS
            .iter()
            .map(|(name, active)| UserSpec {
                name: (*name).into(),
                email: None,
                active: *active,
            })
            .collect()
    });
    if !users.first().is_some_and(|u| u.active) {
        return Err("users: the first user (the admin) must be active".into());
    }
    if let Some(bad) = users.iter().position(|u| u.name.trim().is_empty()) {
        return Err(format!("users[{bad}].name: must not be empty"));
    }
    let n = zs.next_account.fetch_add(1, Ordering::Relaxed) + 1;
    let id = 9_000_000 + n;
    let now_ms = state.clock.now().timestamp_millis();
    let mut data = Data {
        settings: spec.settings.clone().unwrap_or_default(),
        ..Data::default()
    };
    for (i, u) in users.iter().enumerate() {
        data.users.push(User {
            id: zs.next_id(),
            name: u.name.trim().to_owned(),
            email: u.email.clone().unwrap_or_else(|| {
                format!(
                    "{}@account{n}.example",
                    crate::seed::slug(&u.name.replace(' ', "."))
                )
            }),
            status: if u.active { "active" } else { "inactive" }.into(),
            role: if i == 0 { "admin" } else { "user" }.into(),
            created_ms: model::to_second(now_ms),
        });
    }
    for (resource, specs, key) in [
        (Resource::Lead, &spec.lead_fields, "lead_fields"),
        (Resource::Contact, &spec.contact_fields, "contact_fields"),
    ] {
        let specs = specs.clone().unwrap_or_else(default_fields);
        for (i, field) in specs.iter().enumerate() {
            data.add_field(resource, zs.next_id(), field)
                .map_err(|e| format!("{key}[{i}].{e}"))?;
        }
    }
    if let Some(seed) = &spec.seed {
        admin::seed(zs, &mut data, seed, now_ms);
    }
    let admin_user = data.users[0].id;
    let account = Arc::new(Account {
        id,
        name: spec.name.clone().unwrap_or_else(|| format!("Account {n}")),
        data: Mutex::new(data),
        limits: Mutex::new(Limits::new(limits)),
    });
    zs.accounts.write().insert(id, account.clone());
    let token = zs.mint_token(state.config.seed, id, admin_user);
    Ok((account, token))
}

/// The description of an account with one of its tokens.
pub(crate) fn describe(state: &Shared, account: &Account, token: &str) -> ZendeskSellDescription {
    let user_id = state.zendesk_sell.owner_of(token).map_or(0, |o| o.user);
    ZendeskSellDescription {
        base_url: format!("{}/zendesk_sell", state.base_url),
        access_token: token.to_owned(),
        account_id: account.id,
        user_id,
    }
}

/// Creates the default account with `config.people` seeded leads (and the
/// converted ones' contacts).
pub(crate) fn bootstrap(state: &Shared) -> ZendeskSellDescription {
    let spec = AccountSpec {
        name: Some("Sandbox".into()),
        seed: Some(crate::seed::SeedSpec {
            seed: state.config.seed,
            people: state.config.people,
            ..crate::seed::SeedSpec::default()
        }),
        ..AccountSpec::default()
    };
    match create_account(state, spec) {
        Ok((account, token)) => describe(state, &account, &token),
        Err(error) => {
            tracing::error!(%error, "could not create the default Zendesk Sell account");
            ZendeskSellDescription::default()
        }
    }
}

/// `/v2/...`, nested at `/zendesk_sell`.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for resource in [Resource::Lead, Resource::Contact] {
        let plural = resource.plural();
        router = router
            .route(
                &format!("/v2/{plural}"),
                get(move |s, h, q| api::list(resource, s, h, q))
                    .post(move |s, h, b| api::create(resource, s, h, b)),
            )
            .route(
                &format!("/v2/{plural}/upsert"),
                post(move |s, h, q, b| api::upsert(resource, s, h, q, b)),
            )
            .route(
                &format!("/v2/{plural}/{{id}}"),
                get(move |s, h, p| api::get_one(resource, s, h, p))
                    .put(move |s, h, p, b| api::update(resource, s, h, p, b))
                    .delete(move |s, h, p| api::delete(resource, s, h, p)),
            )
            .route(
                &format!("/v2/{}/custom_fields", resource.type_name()),
                get(move |s, h| api::custom_fields(resource, s, h)),
            );
    }
    router
        .route("/v2/users", get(api::users))
        .route("/v2/users/self", get(api::user_self))
        .route("/v2/users/{id}", get(api::user))
        .route(
            "/v2/lead_conversions",
            get(api::conversions).post(api::convert),
        )
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::unknown_path)
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

/// The account id, from the bearer token.
pub(crate) fn tenant_of(state: &Shared, request: &Request) -> Option<String> {
    let token = bearer(request.headers())?;
    state
        .zendesk_sell
        .owner_of(&token)
        .map(|o| o.account.to_string())
}

/// The bearer token of a request.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// A server error or 429 in Sell's error envelope (fault injection).
pub(crate) fn fault_response(state: &Shared, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = if status == StatusCode::TOO_MANY_REQUESTS {
        ApiError::rate_limited()
    } else {
        ApiError::new(
            status,
            "server_error",
            "Internal server error",
            "the server encountered an unexpected condition",
        )
    };
    error.render(&state.zendesk_sell.request_id())
}

/// A Sell error: one entry of the `errors` list, and the status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: String,
    pub resource: Option<&'static str>,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: details.into(),
            resource: None,
            field: None,
        }
    }

    /// 400 `invalid_param` for a bad query parameter.
    pub fn invalid_param(field: &str, details: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_param",
                "Invalid query parameter",
                details,
            )
        }
    }

    /// 404 `not_found`.
    pub fn not_found(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found",
            details,
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "the access token is missing, invalid or revoked",
        )
    }

    /// 429 when a token exceeds its rate limit.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Too many requests",
            "the rate limit of this access token is exceeded: slow down",
        )
    }

    /// 422 for a record that breaks a rule.
    pub fn invalid(resource: Resource, invalid: model::Invalid) -> Self {
        ApiError {
            resource: Some(resource.type_name()),
            field: Some(invalid.field),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid.code,
                match invalid.code {
                    "unknown_attribute" => "unknown attribute",
                    "blank" => "can't be blank",
                    _ => "is invalid",
                },
                invalid.details,
            )
        }
    }

    /// The response: Sell's error envelope, `logref` the request id.
    pub fn render(self, request_id: &str) -> Response {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
        });
        if let Some(resource) = self.resource {
            error["resource"] = json!(resource);
        }
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        let http_status = format!(
            "{} {}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error")
        );
        let body = json!({
            "errors": [{ "error": error, "meta": { "type": "error" } }],
            "meta": { "type": "errors", "http_status": http_status, "logref": request_id },
        });
        json_response(self.status, &body, request_id)
    }
}

/// A JSON reply with the request id.
pub(crate) fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default();
    with_request_id(&mut response, request_id);
    response
}

pub(crate) fn with_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
}

/// An authenticated call: the account, the token's user, the sandbox time.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub account: Arc<Account>,
    pub user: u64,
    pub now_ms: i64,
    ids: Arc<AtomicU64>,
}

/// A new id for a record or conversion made by a call.
pub(crate) fn next_id_of(ctx: &Ctx) -> u64 {
    ctx.ids.fetch_add(1, Ordering::Relaxed) + 1
}

/// Runs one API call: `Accept` (406 for anything but JSON), the token (401),
/// the rate limit (429), then `handler`; every reply carries `X-Request-Id`.
pub(crate) fn serve(
    state: &Shared,
    headers: &HeaderMap,
    handler: impl FnOnce(&Ctx) -> Result<Response, ApiError>,
) -> Response {
    let request_id = state.zendesk_sell.request_id();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !accept.contains("json") && !accept.contains("*/*") && !accept.contains("application/*") {
        return ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "Not acceptable",
            "the API answers application/json only",
        )
        .render(&request_id);
    }
    let owner = bearer(headers).and_then(|t| state.zendesk_sell.owner_of(&t).map(|o| (t, o)));
    let Some((token, owner)) = owner else {
        return ApiError::unauthorized().render(&request_id);
    };
    let Some(account) = state.zendesk_sell.account(owner.account) else {
        return ApiError::unauthorized().render(&request_id);
    };
    let now_ms = state.clock.now().timestamp_millis();
    if !account.limits.lock().admit(&token, now_ms) {
        return ApiError::rate_limited().render(&request_id);
    }
    let ctx = Ctx {
        account,
        user: owner.user,
        now_ms,
        ids: state.zendesk_sell.ids(),
    };
    match handler(&ctx) {
        Ok(mut response) => {
            with_request_id(&mut response, &request_id);
            response
        }
        Err(error) => error.render(&request_id),
    }
}
