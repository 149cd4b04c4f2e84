//! The sandbox Pipedrive: persons on API v2, personFields, users and recents on v1,
//! for several companies told apart by the path prefix `/pipedrive/{company}`.
//! See `sandbox/docs/pipedrive.md` for what is emulated and what is not.

mod admin;
mod api;
mod fields;
pub mod kit;
pub mod limits;
pub mod model;
mod validate;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AppState, Shared};
use limits::{LimitConfig, Op, RateHeaders, Verdict};
use model::{Company, FieldSpec, User};

pub use kit::SandboxKind;

/// Pipedrive's `error_info` on every error.
pub const ERROR_INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// Companies, API tokens and the id counters shared across companies.
#[derive(Debug, Default)]
pub struct PipedriveState {
    companies: RwLock<BTreeMap<String, Arc<Company>>>,
    tokens: RwLock<HashMap<String, TokenOwner>>,
    next_company_id: AtomicU64,
    next_user_id: AtomicU64,
}

/// Who an API token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenOwner {
    company_id: u64,
    user_id: u64,
}

/// The default company as printed at start, and what the admin API returns for a company.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipedriveDescription {
    /// `{base}/pipedrive/{company_domain}`: what `https://{company}.pipedrive.com` is for the real one.
    pub base_url: String,
    /// An API token of the company's first (admin) user.
    pub api_token: String,
    /// The company's subdomain.
    pub company_domain: String,
    /// The company id.
    #[serde(default)]
    pub company_id: u64,
    /// The user the token belongs to.
    #[serde(default)]
    pub user_id: u64,
    /// Custom field keys by field name (`sync_to_plezi`, `score`, ...).
    #[serde(default)]
    pub field_keys: BTreeMap<String, String>,
}

impl PipedriveState {
    /// The company with this domain.
    pub(crate) fn company(&self, domain: &str) -> Option<Arc<Company>> {
        self.companies.read().get(domain).cloned()
    }

    /// Every company, by domain.
    pub(crate) fn companies(&self) -> Vec<Arc<Company>> {
        self.companies.read().values().cloned().collect()
    }

    fn owner_of(&self, token: &str) -> Option<TokenOwner> {
        self.tokens.read().get(token).cloned()
    }

    /// The tokens of a company, by user.
    pub(crate) fn tokens_of(&self, company_id: u64) -> Vec<(String, u64)> {
        let mut tokens: Vec<(String, u64)> = self
            .tokens
            .read()
            .iter()
            .filter(|(_, o)| o.company_id == company_id)
            .map(|(t, o)| (t.clone(), o.user_id))
            .collect();
        tokens.sort();
        tokens
    }

    /// Mints a new 40-hex API token for a user of a company.
    pub(crate) fn mint_token(&self, seed: u64, company: &Company, user_id: u64) -> String {
        let mut tokens = self.tokens.write();
        let mut rng = model::company_rng(seed, company.id, 0x70_6B + tokens.len() as u64);
        loop {
            let token = model::hex_key(&mut rng);
            if !tokens.contains_key(&token) {
                tokens.insert(
                    token.clone(),
                    TokenOwner {
                        company_id: company.id,
                        user_id,
                    },
                );
                return token;
            }
            // Practically unreachable; reseed from the counter to move on.
            rng = model::company_rng(seed ^ rng.random::<u64>(), company.id, 1);
        }
    }
}

/// What it takes to create a company (admin API).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompanySpec {
    domain: String,
    burst_limit: Option<u32>,
    daily_budget: Option<u64>,
    search_limit: Option<u32>,
    abuse_threshold: Option<u32>,
    abuse_block_secs: Option<u64>,
    #[serde(default)]
    users: Option<Vec<UserSpec>>,
    #[serde(default)]
    custom_fields: Option<Vec<FieldSpec>>,
    #[serde(default)]
    seed: Option<crate::seed::SeedSpec>,
}

/// Optional changes to a company's limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitPatch {
    burst_limit: Option<u32>,
    daily_budget: Option<u64>,
    search_limit: Option<u32>,
    abuse_threshold: Option<u32>,
    abuse_block_secs: Option<u64>,
}

impl LimitPatch {
    fn apply(&self, config: &mut LimitConfig) {
        if let Some(v) = self.burst_limit {
            config.burst_limit = v;
        }
        if let Some(v) = self.daily_budget {
            config.daily_budget = v;
        }
        if let Some(v) = self.search_limit {
            config.search_limit = v;
        }
        if let Some(v) = self.abuse_threshold {
            config.abuse_threshold = v;
        }
        if let Some(v) = self.abuse_block_secs {
            config.abuse_block_secs = v;
        }
    }
}

/// A user to create with a company.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSpec {
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "yes")]
    active_flag: bool,
    #[serde(default)]
    is_admin: bool,
}

fn yes() -> bool {
    true
}

const DEFAULT_USERS: &[(&str, bool)] = &[
    ("Camille Admin", true),
    ("Hugo Sales", true),
    ("Léa Marketing", true),
    ("Marc Departed", false),
];

/// Creates a company with users, custom fields, a token for the first user and,
/// when asked, seeded persons. Fails with a message naming the field.
pub(crate) fn create_company(
    state: &Shared,
    spec: CompanySpec,
) -> Result<(Arc<Company>, String), CreateError> {
    let domain = spec.domain.trim().to_owned();
    if domain.is_empty()
        || domain.len() > 63
        || !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(CreateError::Invalid(format!(
            "domain: must be 1 to 63 lower-case letters, digits or hyphens, got {domain:?}"
        )));
    }
    let mut limits = LimitConfig::default();
    LimitPatch {
        burst_limit: spec.burst_limit,
        daily_budget: spec.daily_budget,
        search_limit: spec.search_limit,
        abuse_threshold: spec.abuse_threshold,
        abuse_block_secs: spec.abuse_block_secs,
    }
    .apply(&mut limits);
    limits.validate().map_err(CreateError::Invalid)?;
    if let Some(seed) = &spec.seed {
        seed.validate()
            .map_err(|e| CreateError::Invalid(format!("seed.{e}")))?;
    }
    let user_specs: Vec<UserSpec> = spec.users.clone().unwrap_or_else(|| {
        DEFAULT_USERS
            .iter()
            .enumerate()
            .map(|(i, (name, active))| UserSpec {
                name: (*name).into(),
                email: None,
                active_flag: *active,
                is_admin: i == 0,
            })
            .collect()
    });
    if !user_specs.iter().any(|u| u.active_flag) {
        return Err(CreateError::Invalid(
            "users: at least one user must be active".into(),
        ));
    }
    if let Some(bad) = user_specs.iter().position(|u| u.name.trim().is_empty()) {
        return Err(CreateError::Invalid(format!(
            "users[{bad}].name: must not be empty"
        )));
    }

    // Checked again on insert: seeding runs without holding the companies lock.
    if state.pipedrive.company(&domain).is_some() {
        return Err(CreateError::Taken(format!("domain: {domain} is taken")));
    }
    let id = state
        .pipedrive
        .next_company_id
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    let users: Vec<User> = user_specs
        .iter()
        .map(|u| {
            let id = 10_000 + state.pipedrive.next_user_id.fetch_add(1, Ordering::Relaxed) + 1;
            User {
                id,
                name: u.name.clone(),
                email: u.email.clone().unwrap_or_else(|| {
                    format!(
                        "{}@{domain}.example",
                        crate::seed::slug(&u.name.replace(' ', "."))
                    )
                }),
                active_flag: u.active_flag,
                is_admin: u.is_admin,
            }
        })
        .collect();
    let first_user = users.iter().find(|u| u.active_flag).map_or(0, |u| u.id);
    let company = Arc::new(Company::new(id, domain.clone(), users, limits));
    {
        let mut data = company.data.lock();
        let mut rng = model::company_rng(state.config.seed, id, 0xF1E1D);
        let field_specs = spec
            .custom_fields
            .clone()
            .unwrap_or_else(model::default_field_specs);
        for (i, field) in field_specs.iter().enumerate() {
            data.add_field(&mut rng, field)
                .map_err(|e| CreateError::Invalid(format!("custom_fields[{i}].{e}")))?;
        }
        if let Some(seed) = &spec.seed {
            data.seed(seed, state.clock.now().timestamp());
        }
    }
    {
        let mut companies = state.pipedrive.companies.write();
        if companies.contains_key(&domain) {
            return Err(CreateError::Taken(format!("domain: {domain} is taken")));
        }
        companies.insert(domain, company.clone());
    }
    let token = state
        .pipedrive
        .mint_token(state.config.seed, &company, first_user);
    Ok((company, token))
}

/// Why a company could not be created.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// A bad value; names the field.
    Invalid(String),
    /// The domain is taken.
    Taken(String),
}

/// The description of a company with one of its tokens.
pub(crate) fn describe(state: &Shared, company: &Company, token: &str) -> PipedriveDescription {
    let user_id = state.pipedrive.owner_of(token).map_or(0, |o| o.user_id);
    let data = company.data.lock();
    PipedriveDescription {
        base_url: format!("{}/pipedrive/{}", state.base_url, company.domain),
        api_token: token.to_owned(),
        company_domain: company.domain.clone(),
        company_id: company.id,
        user_id,
        field_keys: data
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.key.clone()))
            .collect(),
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/persons",
            get(api::list_persons).post(api::create_person),
        )
        .route("/api/v2/persons/search", get(api::search_persons))
        .route(
            "/api/v2/persons/{id}",
            get(api::get_person)
                .patch(api::update_person)
                .delete(api::delete_person),
        )
        .route("/api/v2/personFields", get(fields::person_fields_v2))
        .route("/api/v1/personFields", get(api::person_fields))
        .route("/api/v1/users", get(api::users))
        .route("/api/v1/users/me", get(api::me))
        .route("/api/v1/recents", get(api::recents))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/api/v1/webhooks/{id}",
            axum::routing::delete(webhooks::delete_webhook),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_path)
}

pub(crate) fn admin_router() -> Router<AppState> {
    admin::router()
}

async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").into_response()
}

async fn unknown_path() -> Response {
    ApiError::not_found("Unknown method .").into_response()
}

/// The company domain: the first path segment after `/pipedrive/`.
pub(crate) fn tenant_of(_state: &Shared, request: &Request) -> Option<String> {
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |u| u.0.path());
    let rest = path.strip_prefix("/pipedrive/")?;
    let domain = rest.split('/').next().filter(|d| !d.is_empty())?;
    Some(domain.to_owned())
}

/// A server error or 429 in Pipedrive's envelope (fault injection).
pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let config = LimitConfig::default();
        let headers = RateHeaders {
            limit: config.burst_limit,
            remaining: 0,
            reset: 2,
            daily_left: config.daily_budget,
        };
        return with_rate_headers(
            ApiError::new(status, "Request over limit").into_response(),
            &headers,
        );
    }
    let message = match status.as_u16() {
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    };
    ApiError::new(status, message).into_response()
}

/// Creates the default company `sandbox` with `config.people` seeded persons.
pub(crate) fn bootstrap(state: &Shared) -> PipedriveDescription {
    let spec = CompanySpec {
        domain: "sandbox".into(),
        seed: Some(crate::seed::SeedSpec {
            seed: state.config.seed,
            people: state.config.people,
            ..crate::seed::SeedSpec::default()
        }),
        ..CompanySpec::default()
    };
    match create_company(state, spec) {
        Ok((company, token)) => describe(state, &company, &token),
        Err(error) => {
            tracing::error!(?error, "could not create the default Pipedrive company");
            PipedriveDescription::default()
        }
    }
}

/// An error reply in Pipedrive's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn unauthorized() -> Response {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({
                "success": false,
                "error": "unauthorized access",
                "errorCode": 401,
                "error_info": ERROR_INFO,
                "data": null,
                "additional_data": null,
            }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({
                "success": false,
                "error": self.message,
                "error_info": ERROR_INFO,
                "data": null,
                "additional_data": null,
            }),
        )
    }
}

pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap_or_default()
}

/// `{"success":true,"data":..,"additional_data":..}`; no `additional_data` key when None.
pub(crate) fn ok(status: StatusCode, data: Value, additional: Option<Value>) -> Response {
    let mut body = json!({ "success": true, "data": data });
    if let (Some(additional), Value::Object(map)) = (additional, &mut body) {
        map.insert("additional_data".into(), additional);
    }
    json_response(status, &body)
}

fn with_rate_headers(mut response: Response, h: &RateHeaders) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(h.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(h.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(h.reset));
    headers.insert("x-daily-requests-left", HeaderValue::from(h.daily_left));
    response
}

/// An authenticated call: the company, the token's user, the token.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub company: Arc<Company>,
    pub user_id: u64,
    pub now: i64,
}

const BLOCKED_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body><h1>403 Forbidden</h1>\n<p>Your requests have been blocked because of too many requests over the rate limit. Please back off and try again later.</p></body></html>\n";

/// Runs one API call: company lookup (404), authentication (401), the 403 block, the
/// burst, daily and search limits (429), then `handler`; every admitted reply gets the
/// rate-limit headers.
pub(crate) fn serve(
    state: &Shared,
    domain: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    op: Op,
    handler: impl FnOnce(&Ctx) -> Result<Response, ApiError>,
) -> Response {
    let Some(company) = state.pipedrive.company(domain) else {
        return ApiError::not_found(format!("Company {domain} not found")).into_response();
    };
    let token = headers
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "api_token")
                .map(|(_, v)| v.clone())
        });
    let Some(token) = token else {
        return ApiError::unauthorized();
    };
    let Some(owner) = state.pipedrive.owner_of(&token) else {
        return ApiError::unauthorized();
    };
    if owner.company_id != company.id {
        return ApiError::unauthorized();
    }
    let now = state.clock.now();
    let verdict = company
        .usage
        .lock()
        .admit(&token, op, now.timestamp_millis());
    let rate = match verdict {
        Verdict::Allowed(rate) => rate,
        Verdict::Blocked => {
            return Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                .body(Body::from(BLOCKED_PAGE))
                .unwrap_or_default();
        }
        Verdict::Burst(rate) | Verdict::Search(rate) => {
            let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
            return with_rate_headers(error.into_response(), &rate);
        }
        Verdict::Daily(rate) => {
            let budget = company.usage.lock().config.daily_budget;
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Request over limit: the company's daily API token budget ({budget} tokens per 24 hours) is used up"
                ),
            );
            return with_rate_headers(error.into_response(), &rate);
        }
    };
    let ctx = Ctx {
        company,
        user_id: owner.user_id,
        now: now.timestamp(),
    };
    let response = handler(&ctx).unwrap_or_else(IntoResponse::into_response);
    // Person changes the call made go out to the company's webhooks.
    webhooks::flush(state, &ctx.company, "api");
    with_rate_headers(response, &rate)
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
            pipedrive: PipedriveState::default(),
            hubspot: crate::hubspot::HubspotState::default(),
            salesforce: crate::salesforce::SalesforceState::default(),
            sap_c4c: crate::sap_c4c::SapC4cState::default(),
            zendesk_sell: crate::zendesk_sell::ZendeskSellState::default(),
            base_url: "http://127.0.0.1:1".into(),
            config: crate::SandboxConfig::default(),
            description: std::sync::OnceLock::new(),
        }
    }

    #[tokio::test]
    async fn an_injected_429_has_the_envelope_and_the_rate_limit_headers() {
        let response = fault_response(&shared(), 429);

        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
        assert_eq!(response.headers()["x-ratelimit-limit"], "80");
        assert!(response.headers().contains_key("x-ratelimit-reset"));
        let body = body(response).await;
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], "Request over limit");
        assert_eq!(body["error_info"], ERROR_INFO);
    }

    #[tokio::test]
    async fn injected_server_errors_have_the_envelope() {
        for (status, message) in [
            (500, "Internal Server Error"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
        ] {
            let response = fault_response(&shared(), status);
            assert_eq!(response.status(), status);
            let body = body(response).await;
            assert_eq!(body["error"], message);
            assert_eq!(body["data"], Value::Null);
        }
    }

    #[test]
    fn bootstrap_creates_the_default_company_with_seeded_persons() {
        let state = shared();

        let description = bootstrap(&state);

        assert_eq!(description.company_domain, "sandbox");
        assert_eq!(description.base_url, "http://127.0.0.1:1/pipedrive/sandbox");
        assert_eq!(description.api_token.len(), 40);
        let company = state.pipedrive.company("sandbox").unwrap();
        assert_eq!(company.data.lock().live_ids.len(), state.config.people);
    }
}
