//! The Zoho CRM client: a self-client's refresh token, API v8, Leads and Contacts.
//!
//! - Tokens: the grant code is exchanged once for a refresh token
//!   ([`exchange_grant_code`]); access tokens are shared by every client of one
//!   refresh token in the process and refreshed single-flight, because Zoho gives
//!   at most ten access tokens per refresh token per ten minutes. A 401
//!   INVALID_TOKEN refreshes once and retries.
//! - Calls go to the `api_domain` the token reply names, never to a guessed host.
//! - Limits: every call holds a permit of the connector's concurrency limit (its
//!   edition's); writes of more than ten records and conversions also one of the
//!   heavy-call sub-limit.
//! - Listing: `If-Modified-Since`, sorted by `Modified_Time`, converted leads
//!   included; from the second page on Zoho's page token, which resumes after the
//!   last record's key (records written meanwhile never shift a page).
//! - Picklists are read as their display labels and written as actual values.
//! - Deletions: each module's recycle bin (`/{Module}/deleted?type=all`),
//!   `If-Modified-Since` and paged like a listing.
//! - Retries: 429, 5xx, timeouts and dropped connections, with jittered backoff.
//!   An upsert batch is safe to re-send: upsert by Email does not duplicate.

pub mod kit;
pub mod realtime;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, Semaphore};

use self::wire::{TokenReply, WireField, WireUser};
use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::oauth::{AccessToken, TokenSlot, shared_token, token_reply};
use crate::crm::retry::transport_error;
use crate::crm::{
    ClientOptions, ConnectionCheck, Conversion, CrmClient, CrmError, CrmField, CrmRecord, CrmUser,
    DeletedRecord, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics, endpoint};

/// Zoho's largest page.
pub const MAX_PAGE: u32 = 200;
/// Records reachable with `page`; beyond, `page_token`.
pub const DISCRETE_PAGE_LIMIT: u32 = 2000;
/// Records per upsert call.
pub const MAX_BATCH: usize = 100;
/// Most api names in `fields`.
pub const MAX_FIELDS: usize = 50;
/// Calls in flight at once when the connector does not say: the Standard
/// edition's limit (Free 5, Standard 10, Professional 15, Enterprise 20, Ultimate 25).
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Zoho's sub-limit for heavy calls (writes of more than ten records, conversions).
pub const HEAVY_CONCURRENCY: usize = 10;
/// Reads by id in flight at once (at most the connector's limit).
const READ_CONCURRENCY: usize = 8;
/// Most record ids one "get records" call takes (`ids=`).
pub const MAX_IDS: usize = 100;
/// An access token is renewed this long before Zoho says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// The scope a self-client grant code needs.
pub const SCOPE: &str = "ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ";

/// The accounts server of a Zoho data centre.
pub fn accounts_url(data_center: &str) -> Option<&'static str> {
    Some(match data_center.trim().trim_start_matches('.') {
        "com" => "https://accounts.zoho.com",
        "eu" => "https://accounts.zoho.eu",
        "in" => "https://accounts.zoho.in",
        "com.au" => "https://accounts.zoho.com.au",
        "jp" => "https://accounts.zoho.jp",
        "com.cn" => "https://accounts.zoho.com.cn",
        "ca" => "https://accounts.zohocloud.ca",
        "sa" => "https://accounts.zoho.sa",
        _ => return None,
    })
}

/// What a grant code is exchanged for.
#[derive(Debug, Clone)]
pub struct GrantExchange {
    /// The refresh token (never expires): store it encrypted.
    pub refresh_token: SecretString,
    /// Where API calls go.
    pub api_domain: String,
}

/// How to make a new grant code, for messages.
fn new_code_hint() -> String {
    format!(
        "make a new grant code in the Zoho API console (Self Client > Generate Code) with scope {SCOPE}"
    )
}

/// Exchanges a self-client's grant code (it lives minutes and works once) for a
/// refresh token.
pub async fn exchange_grant_code(
    http: &HttpClient,
    accounts_url: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
) -> Result<GrantExchange, CrmError> {
    let reply = token_call(
        http,
        accounts_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("code", code.trim()),
        ],
        None,
    )
    .await?;
    match (reply.access_token, reply.refresh_token, reply.api_domain) {
        (Some(_), Some(refresh), Some(api_domain)) => Ok(GrantExchange {
            refresh_token: SecretString::from(refresh),
            api_domain: api_domain.trim_end_matches('/').to_owned(),
        }),
        (Some(_), _, _) => Err(CrmError::Protocol(
            "Zoho's token reply has no refresh token or api_domain".into(),
        )),
        (None, _, _) => Err(grant_error(
            reply.error.as_deref().unwrap_or("no access_token"),
            reply.error_description.as_deref(),
        )),
    }
}

fn grant_error(error: &str, description: Option<&str>) -> CrmError {
    let rejected = |code: &str, field: &str, message: String| CrmError::Rejected {
        code: code.into(),
        field: Some(field.into()),
        message,
    };
    match error {
        "invalid_code" => rejected(
            "INVALID_GRANT_CODE",
            "grantCode",
            format!(
                "Zoho refused the grant code: it was already used or has expired (codes last a few minutes); {}",
                new_code_hint()
            ),
        ),
        "invalid_client" => rejected(
            "INVALID_CLIENT_ID",
            "clientId",
            "Zoho does not know this client id in this data centre: copy it from the Self Client in the Zoho API console and check the data centre".into(),
        ),
        "invalid_client_secret" => rejected(
            "INVALID_CLIENT_SECRET",
            "clientSecret",
            "Zoho refused the client secret: copy it from the Self Client in the Zoho API console".into(),
        ),
        "Access Denied" => CrmError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        other => CrmError::Rejected {
            code: "CRM_VALIDATION".into(),
            field: None,
            message: format!(
                "Zoho refused the grant code exchange: {other}{}",
                description.map(|d| format!(" ({d})")).unwrap_or_default()
            ),
        },
    }
}

/// One call to the accounts server's token endpoint.
/// The grant-code exchange is not counted (`metrics` is `None`): it happens
/// once, when a connector is created.
async fn token_call(
    http: &HttpClient,
    accounts_url: &str,
    form: &[(&str, &str)],
    metrics: Option<&Metrics>,
) -> Result<TokenReply, CrmError> {
    let started = Instant::now();
    let response = http
        .request(
            Method::POST,
            &format!("{}/oauth/v2/token", accounts_url.trim_end_matches('/')),
        )?
        .form(form)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    if let Some(metrics) = metrics {
        metrics.crm_call(
            kit::TAG,
            endpoint("POST", "/oauth/v2/token"),
            CallStatus::of(&response),
            started.elapsed(),
        );
    }
    let (_, reply) = token_reply("Zoho", "Zoho accounts", response).await?;
    Ok(reply)
}

/// A Zoho CRM org, reached through a self-client's refresh token.
#[derive(Debug)]
pub struct ZohoClient {
    http: HttpClient,
    accounts: String,
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    policy: RetryPolicy,
    /// One permit per API call in flight: the org's concurrency limit (S11).
    calls: Semaphore,
    /// One permit per heavy call in flight, taken before `calls`.
    heavy: Semaphore,
    /// Permits of `calls` and `heavy`.
    limits: (usize, usize),
    /// `trigger: ["workflow"]` on writes instead of `[]`.
    run_workflows: bool,
    /// Held while a token is refreshed: concurrent callers wait for that refresh.
    /// Shared by every client of the same self-client and refresh token in
    /// this process, so runs one after another reuse one access token.
    token: TokenSlot,
    leads_fields: OnceCell<Arc<Vec<CrmField>>>,
    contacts_fields: OnceCell<Arc<Vec<CrmField>>>,
    users: OnceCell<Arc<Vec<CrmUser>>>,
    metrics: Option<Metrics>,
}

/// A successful reply's JSON; `Null` for 204 and 304.
struct Reply {
    body: Value,
}

/// A successful reply as it came: its text (empty for 204 and 304), for a
/// caller that reads it into its own types.
struct RawReply {
    status: StatusCode,
    text: String,
}

impl From<RawReply> for Reply {
    fn from(raw: RawReply) -> Self {
        Reply {
            body: serde_json::from_str(&raw.text).unwrap_or(Value::Null),
        }
    }
}

impl ZohoClient {
    /// A client for the credentials' data centre; `base_url` replaces the accounts
    /// server (the API is wherever the token reply says).
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let described = kit::Kit.describe();
        let client_id = crm_kit::stored(credentials, described, "clientId")?.expose_secret();
        let client_secret = crm_kit::stored(credentials, described, "clientSecret")?;
        let data_center = crm_kit::stored(credentials, described, "dataCenter")?.expose_secret();
        let refresh_token = crm_kit::stored(credentials, described, "refreshToken")?;
        let accounts = match base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => accounts_url(data_center)
                .ok_or_else(|| {
                    CrmError::Unauthorized(format!(
                        "unknown Zoho data centre \"{data_center}\": use com, eu, in, com.au, jp, com.cn, ca or sa"
                    ))
                })?
                .to_owned(),
        };
        http.egress().check_url(&accounts)?;
        let token = shared_token(&[&accounts, client_id.trim()], refresh_token);
        Ok(Self {
            http,
            accounts,
            client_id: client_id.trim().to_owned(),
            client_secret: client_secret.clone(),
            refresh_token: refresh_token.clone(),
            policy: RetryPolicy::default(),
            calls: Semaphore::new(DEFAULT_CONCURRENCY),
            heavy: Semaphore::new(HEAVY_CONCURRENCY),
            limits: (DEFAULT_CONCURRENCY, HEAVY_CONCURRENCY),
            run_workflows: false,
            token,
            leads_fields: OnceCell::new(),
            contacts_fields: OnceCell::new(),
            users: OnceCell::new(),
            metrics: None,
        })
    }

    /// Applies the connector's options: the concurrency limit of its edition
    /// and whether writes run Zoho's workflow rules.
    pub fn with_options(mut self, options: &ClientOptions) -> Self {
        let limit = options
            .max_concurrent_calls
            .map_or(DEFAULT_CONCURRENCY, |n| n.max(1) as usize);
        let heavy = limit.min(HEAVY_CONCURRENCY);
        self.calls = Semaphore::new(limit);
        self.heavy = Semaphore::new(heavy);
        self.limits = (limit, heavy);
        self.run_workflows = options.run_workflows;
        self
    }

    /// Counts this client's calls (token refreshes included) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// A valid access token and the API domain. `stale` is a token the API just
    /// refused: it is renewed unless another caller renewed it meanwhile.
    async fn access_token(&self, stale: Option<&str>) -> Result<(String, String), CrmError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.usable(stale)
        {
            return Ok((token.value.clone(), token.api_domain.clone()));
        }
        // The lock is held across the refresh: callers queued behind it find the
        // new token instead of refreshing again.
        let reply = token_call(
            &self.http,
            &self.accounts,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose_secret()),
                ("refresh_token", self.refresh_token.expose_secret()),
            ],
            self.metrics.as_ref(),
        )
        .await?;
        let (Some(value), Some(api_domain)) = (reply.access_token, reply.api_domain) else {
            return Err(refresh_error(
                reply.error.as_deref().unwrap_or("no access_token"),
            ));
        };
        let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(3600));
        let token = AccessToken::new(
            value.clone(),
            api_domain.trim_end_matches('/').to_owned(),
            lifetime,
            TOKEN_MARGIN,
        );
        let out = (value, token.api_domain.clone());
        *cached = Some(token);
        Ok(out)
    }

    /// One API call, once, with one token renewal on INVALID_TOKEN.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_modified_since: Option<&str>,
    ) -> Result<RawReply, CrmError> {
        let mut stale: Option<String> = None;
        loop {
            let (token, api_domain) = self.access_token(stale.as_deref()).await?;
            let mut request = self
                .http
                .request(method.clone(), &format!("{api_domain}/crm/v8{path}"))?
                .header("Authorization", format!("Zoho-oauthtoken {token}"))
                .timeout(self.policy.request_timeout)
                .query(query);
            if let Some(since) = if_modified_since {
                request = request.header("If-Modified-Since", since);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            // The org's concurrency limit, held for the call until its reply
            // begins: Zoho has finished with a call when it answers, and the
            // next call need not wait for this reply's body.
            let permit = self
                .calls
                .acquire()
                .await
                .map_err(|_| CrmError::Protocol("the Zoho client was shut down".into()))?;
            let started = Instant::now();
            let response = request.send().await;
            if let Some(metrics) = &self.metrics {
                metrics.crm_call(
                    kit::TAG,
                    endpoint(method.as_str(), &format!("/crm/v8{path}")),
                    CallStatus::of(&response),
                    started.elapsed(),
                );
            }
            drop(permit);
            let response = response.map_err(|e| transport_error("Zoho", e))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response
                .text()
                .await
                .map_err(|e| transport_error("Zoho", e))?;
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(RawReply { status, text });
            }
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            let message = body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            match status {
                StatusCode::UNAUTHORIZED
                    if stale.is_none()
                        && matches!(code.as_str(), "INVALID_TOKEN" | "AUTHENTICATION_FAILURE") =>
                {
                    // Expired or revoked under us: renew once and retry.
                    stale = Some(token);
                }
                StatusCode::UNAUTHORIZED if code == "OAUTH_SCOPE_MISMATCH" => {
                    // The Notification API needs a scope of its own.
                    let extra = if path.starts_with("/actions/watch") {
                        format!(",{}", realtime::NOTIFICATIONS_SCOPE)
                    } else {
                        String::new()
                    };
                    return Err(CrmError::Unauthorized(format!(
                        "the Zoho grant lacks a scope this needs ({path}): make a new grant code with scope {SCOPE}{extra}"
                    )));
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(CrmError::Unauthorized(format!(
                        "Zoho refused a fresh access token ({code}: {message}); {}",
                        new_code_hint()
                    )));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    if body["details"]["limit"].as_str() == Some("credits")
                        || message.to_lowercase().contains("credit")
                    {
                        return Err(CrmError::DailyLimit(format!(
                            "Zoho's API credits for the day are spent: {message}"
                        )));
                    }
                    return Err(CrmError::RateLimited { retry_after });
                }
                s if s.is_server_error() => {
                    return Err(CrmError::Unavailable(format!(
                        "Zoho answered {}: {message}",
                        s.as_u16()
                    )));
                }
                // A write whose records all failed: the per-record results are the answer.
                StatusCode::BAD_REQUEST if body["data"].is_array() => {
                    return Ok(RawReply { status, text });
                }
                StatusCode::FORBIDDEN => {
                    return Err(CrmError::Unauthorized(format!(
                        "the Zoho user of this grant may not do this ({path}: {code}): give the user the permission or make the grant code as an admin"
                    )));
                }
                s => {
                    let field = body["details"]["api_name"]
                        .as_str()
                        .or(body["details"]["param"].as_str())
                        .map(str::to_owned);
                    return Err(CrmError::Rejected {
                        code: if code == "INVALID_MODULE" {
                            "INVALID_MODULE".into()
                        } else {
                            "CRM_VALIDATION".into()
                        },
                        field,
                        message: format!("Zoho answered {} {code}: {message}", s.as_u16()),
                    });
                }
            }
        }
    }

    /// One call with retries of the retryable failures.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_modified_since: Option<&str>,
    ) -> Result<Reply, CrmError> {
        self.call_raw(method, path, query, body, if_modified_since)
            .await
            .map(Reply::from)
    }

    /// [`Self::call`], the reply left as text.
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_modified_since: Option<&str>,
    ) -> Result<RawReply, CrmError> {
        self.policy
            .run(
                "Zoho",
                path,
                || self.send_once(method.clone(), path, query, body, if_modified_since),
                tokio::time::sleep,
            )
            .await
    }

    async fn module_fields(&self, module: CrmModule) -> Result<Arc<Vec<CrmField>>, CrmError> {
        let (cell, name) = match module {
            CrmModule::Leads => (&self.leads_fields, "Leads"),
            CrmModule::Contacts => (&self.contacts_fields, "Contacts"),
            other => return Err(not_a_module(other)),
        };
        cell.get_or_try_init(|| async {
            let reply = self
                .call(
                    Method::GET,
                    "/settings/fields",
                    &[("module", name.to_owned())],
                    None,
                    None,
                )
                .await?;
            let fields: Vec<WireField> = serde_json::from_value(reply.body["fields"].clone())
                .map_err(|e| CrmError::Protocol(format!("settings/fields: {e}")))?;
            Ok(Arc::new(fields.iter().map(wire::to_crm_field).collect()))
        })
        .await
        .cloned()
    }

    async fn active_users(&self) -> Result<Arc<Vec<CrmUser>>, CrmError> {
        self.users
            .get_or_try_init(|| async {
                let reply = self
                    .call(
                        Method::GET,
                        "/users",
                        &[("type", "ActiveUsers".to_owned())],
                        None,
                        None,
                    )
                    .await?;
                if reply.body.is_null() {
                    return Ok(Arc::new(Vec::new()));
                }
                let users: Vec<WireUser> = serde_json::from_value(reply.body["users"].clone())
                    .map_err(|e| CrmError::Protocol(format!("users: {e}")))?;
                Ok(Arc::new(users.iter().map(wire::to_crm_user).collect()))
            })
            .await
            .cloned()
    }

    /// The api names asked for in listings: the ones the sync needs first, then
    /// the rest, at most fifty.
    fn field_names(fields: &[CrmField]) -> String {
        const FIRST: [&str; 6] = [
            "Email",
            "Last_Name",
            "First_Name",
            "Owner",
            "Modified_Time",
            "Email_Opt_Out",
        ];
        let mut names: Vec<&str> = FIRST
            .iter()
            .copied()
            .filter(|n| fields.iter().any(|f| f.api_name == *n))
            .collect();
        for f in fields {
            if names.len() >= MAX_FIELDS {
                break;
            }
            if !names.contains(&f.api_name.as_str()) {
                names.push(&f.api_name);
            }
        }
        names.truncate(MAX_FIELDS);
        names.join(",")
    }

    /// One upsert call of at most 100 records; one result per record.
    async fn upsert_batch(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        let prepared = match self.prepare(module, &writes).await {
            Ok(p) => p,
            Err(e) => return writes.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out: Vec<Option<Result<WriteResult, CrmError>>> = Vec::new();
        let mut data = Vec::new();
        for body in prepared {
            match body {
                Ok(body) => {
                    data.push(body);
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        if !data.is_empty() {
            let sent = data.len();
            let trigger: &[&str] = if self.run_workflows {
                &["workflow"]
            } else {
                &[]
            };
            let body = json!({
                "data": data,
                "trigger": trigger,
                "duplicate_check_fields": ["Email"],
            });
            // Writes of more than ten records are heavy calls (a sub-limit of their own).
            let _heavy = if sent > 10 {
                self.heavy.acquire().await.ok()
            } else {
                None
            };
            // Upsert by Email is idempotent: a batch whose reply was lost is re-sent.
            let reply = self
                .call_raw(
                    Method::POST,
                    &format!("/{}/upsert", module_name(module)),
                    &[],
                    Some(&body),
                    None,
                )
                .await;
            let read = reply.and_then(|reply| {
                let bad = |why: String| {
                    CrmError::Protocol(format!(
                        "Zoho's upsert answered {} without one result per record ({why})",
                        reply.status.as_u16()
                    ))
                };
                match serde_json::from_str::<wire::WireUpsertReply>(&reply.text) {
                    Ok(r) if r.data.len() == sent => Ok(r.data),
                    Ok(r) => Err(bad(format!("{} results for {sent} records", r.data.len()))),
                    Err(e) => Err(bad(e.to_string())),
                }
            });
            let mut results: Vec<Result<WriteResult, CrmError>> = match read {
                Ok(items) => items.iter().map(wire::write_result).collect(),
                Err(e) => (0..sent).map(|_| Err(e.clone())).collect(),
            };
            results.reverse();
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                *slot = results.pop();
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CrmError::Protocol("no result".into()))))
            .collect()
    }

    /// Bodies of a batch, picklists checked, owners resolved.
    async fn prepare(
        &self,
        module: CrmModule,
        writes: &[RecordWrite],
    ) -> Result<Vec<Result<Value, CrmError>>, CrmError> {
        let fields = self.module_fields(module).await?;
        let needs_users = writes.iter().any(|w| {
            w.owner_email.is_some() || w.values.get("Owner").is_some_and(Value::is_string)
        });
        let users = if needs_users {
            Some(self.active_users().await?)
        } else {
            None
        };
        Ok(writes
            .iter()
            .map(|w| {
                let owner = w
                    .owner_email
                    .as_deref()
                    .or_else(|| w.values.get("Owner").and_then(Value::as_str));
                // An owner who is no active user is left out: Zoho keeps the record's own.
                let owner_id = owner.and_then(|e| {
                    let e = e.trim().to_lowercase();
                    users
                        .as_ref()?
                        .iter()
                        .find(|u| u.active && u.email == e)
                        .map(|u| u.id.as_str())
                });
                wire::record_body(&w.values, w.id.as_deref(), &w.email, owner_id, &fields)
            })
            .collect())
    }
}

/// Where the next page of a listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    /// How the page is reached.
    next: Next,
    /// Set on a listing started again past what page tokens reach
    /// (100,000 records): it lists from this record's modification time,
    /// and what it lists at or before this record was listed already. Every
    /// page of it sends the same `If-Modified-Since` (Zoho binds its tokens
    /// to it).
    from: Option<(DateTime<Utc>, String)>,
}

/// How a page of a listing is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// `page=n`.
    Page(u32),
    /// `page_token=...`.
    Token(String),
}

impl Cursor {
    fn first() -> Self {
        Self {
            next: Next::Page(1),
            from: None,
        }
    }

    /// `p:{n}`, `t:{token}`; for a listing started again, `a:{millis}:{id}`
    /// (its first page), `ap:{millis}:{id}:{n}` and `at:{millis}:{id}:{token}`.
    fn parse(c: &str) -> Result<Self, CrmError> {
        let bad = || CrmError::Protocol(format!("bad Zoho cursor {c}"));
        let page = |n: &str| n.parse().map(Next::Page).map_err(|_| bad());
        let from = |rest: &str| -> Result<(DateTime<Utc>, String, Option<String>), CrmError> {
            let (millis, rest) = rest.split_once(':').ok_or_else(bad)?;
            let at = millis
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(bad)?;
            Ok(match rest.split_once(':') {
                Some((id, next)) => (at, id.to_owned(), Some(next.to_owned())),
                None => (at, rest.to_owned(), None),
            })
        };
        match c.split_once(':').ok_or_else(bad)? {
            ("p", n) => Ok(Self {
                next: page(n)?,
                from: None,
            }),
            ("t", token) => Ok(Self {
                next: Next::Token(token.to_owned()),
                from: None,
            }),
            ("a", rest) => {
                let (at, id, _) = from(rest)?;
                Ok(Self {
                    next: Next::Page(1),
                    from: Some((at, id)),
                })
            }
            ("ap", rest) => {
                let (at, id, n) = from(rest)?;
                Ok(Self {
                    next: page(&n.ok_or_else(bad)?)?,
                    from: Some((at, id)),
                })
            }
            ("at", rest) => {
                let (at, id, token) = from(rest)?;
                Ok(Self {
                    next: Next::Token(token.ok_or_else(bad)?),
                    from: Some((at, id)),
                })
            }
            _ => Err(bad()),
        }
    }

    /// The cursor of the next page, of the same listing.
    fn then(&self, next: Next) -> Self {
        Self {
            next,
            from: self.from.clone(),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.next, &self.from) {
            (Next::Page(n), None) => write!(f, "p:{n}"),
            (Next::Token(t), None) => write!(f, "t:{t}"),
            (Next::Page(1), Some((at, id))) => write!(f, "a:{}:{id}", at.timestamp_millis()),
            (Next::Page(n), Some((at, id))) => write!(f, "ap:{}:{id}:{n}", at.timestamp_millis()),
            (Next::Token(t), Some((at, id))) => write!(f, "at:{}:{id}:{t}", at.timestamp_millis()),
        }
    }
}

/// Zoho's listing order: modification time, then id (ids are numbers).
fn record_key(at: DateTime<Utc>, id: &str) -> (DateTime<Utc>, usize, &str) {
    (at, id.len(), id)
}

fn module_name(module: CrmModule) -> &'static str {
    match module {
        CrmModule::Contacts => "Contacts",
        _ => "Leads",
    }
}

fn not_a_module(module: CrmModule) -> CrmError {
    CrmError::Protocol(format!("Zoho CRM has Leads and Contacts, not {module}"))
}

fn refresh_error(error: &str) -> CrmError {
    match error {
        "Access Denied" => CrmError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        "invalid_client" | "invalid_client_secret" => CrmError::Unauthorized(format!(
            "Zoho refused the self-client's id or secret ({error}): check them in the Zoho API console and reconnect with a new grant code"
        )),
        other => CrmError::Unauthorized(format!(
            "Zoho refused the refresh token ({other}): the self-client was deleted or the grant revoked; {} and update the connector",
            new_code_hint()
        )),
    }
}

/// Zoho's `If-Modified-Since` is exclusive and to the second; ours is inclusive.
fn if_modified_since(t: DateTime<Utc>) -> String {
    (t - chrono::Duration::seconds(1)).to_rfc3339_opts(SecondsFormat::Secs, false)
}

#[async_trait::async_trait]
impl CrmClient for ZohoClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::ZohoCrm
    }

    fn subscriptions(&self) -> Option<&dyn crate::crm::realtime::Subscriptions> {
        Some(self)
    }

    async fn check(&self, expect: &crate::crm::Expectations) -> Result<ConnectionCheck, CrmError> {
        let fail = |message: String| Ok(ConnectionCheck { ok: false, message });
        // Leads hold the mappings' fields, so they must be readable even when only
        // Contacts are imported.
        let mut modules = vec![CrmModule::Leads];
        if expect.modules.contains(&CrmModule::Contacts) {
            modules.push(CrmModule::Contacts);
        }
        for &module in &modules {
            let name = module_name(module);
            // A refused refresh token, client or scope is `Err(Unauthorized)`:
            // the caller marks the connector NEEDS_REAUTH.
            let fields = match self.module_fields(module).await {
                Ok(fields) => fields,
                Err(CrmError::Unavailable(message)) => {
                    return fail(format!("cannot reach Zoho at {}: {message}", self.accounts));
                }
                Err(CrmError::RateLimited { .. }) => {
                    return fail(
                        "Zoho refuses new access tokens for now (more than ten in ten minutes): try again in a few minutes".into(),
                    );
                }
                Err(other) => return Err(other),
            };
            self.call(
                Method::GET,
                &format!("/{name}"),
                &[
                    ("fields", Self::field_names(&fields)),
                    ("per_page", "1".into()),
                ],
                None,
                None,
            )
            .await?;
            let help = crate::crm::FieldsHelp {
                records: name,
                settings: kit::Kit.describe().fields_settings,
            };
            let filter = expect
                .imports(module, CrmModule::Leads)
                .then(|| expect.filter_problem(&fields, help))
                .flatten();
            let link = (module == CrmModule::Leads)
                .then(|| expect.link_problem(&fields, help))
                .flatten();
            if let Some(problem) = filter.or(link) {
                return fail(format!("connected to Zoho CRM, but {problem}"));
            }
        }
        let readable = modules
            .iter()
            .map(|m| module_name(*m))
            .collect::<Vec<_>>()
            .join(" and ");
        let mut message = format!("connected to Zoho CRM: {readable} are readable");
        if let Some(problem) = self.notifications_scope_problem().await {
            message = format!("{message}; {problem}");
        }
        Ok(ConnectionCheck { ok: true, message })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        Ok(self.module_fields(module).await?.as_ref().clone())
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.active_users().await?.as_ref().clone())
    }

    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        let module = query.module;
        let fields = self.module_fields(module).await?;
        let per_page = query.page_size.clamp(1, MAX_PAGE);
        let mut params = vec![
            ("fields", Self::field_names(&fields)),
            ("per_page", per_page.to_string()),
            ("sort_by", "Modified_Time".to_owned()),
            ("sort_order", "asc".to_owned()),
        ];
        if module == CrmModule::Leads {
            // Converted leads too: their conversion makes the contact a client (S10).
            params.push(("converted", "both".to_owned()));
        }
        // The cursor says how the next page is reached (a page number or
        // Zoho's page token) and whether the listing was started again from
        // a record's time, past what tokens reach.
        let cursor = match query.cursor.as_deref() {
            Some(c) => Cursor::parse(c)?,
            None => Cursor::first(),
        };
        match &cursor.next {
            Next::Page(n) => params.push(("page", n.to_string())),
            Next::Token(token) => params.push(("page_token", token.clone())),
        }
        let since = cursor
            .from
            .as_ref()
            .map(|(at, _)| *at)
            .or(query.since)
            .map(if_modified_since);
        let reply = self
            .call(
                Method::GET,
                &format!("/{}", module_name(module)),
                &params,
                None,
                since.as_deref(),
            )
            .await?;
        if reply.body.is_null() {
            return Ok(RecordPage {
                records: Vec::new(),
                next_cursor: None,
            });
        }
        let mut records = reply.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| wire::to_record(r, module))
            .collect::<Result<Vec<_>, _>>()?;
        let last = records.last().map(|r| (r.modified_at, r.id.clone()));
        if let Some((at, id)) = &cursor.from {
            records.retain(|r| record_key(r.modified_at, &r.id) > record_key(*at, id));
        }
        wire::show_labels(&mut records, &fields);
        let info = &reply.body["info"];
        let token = info["next_page_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| Next::Token(t.to_owned()));
        // The page token resumes after the last record's key, so records this
        // run writes (and moves to the end) never shift a page; page numbers
        // only where Zoho gives no token.
        let next = if info["more_records"].as_bool() != Some(true) {
            None
        } else if let Some(token) = token {
            Some(cursor.then(token))
        } else {
            match (&cursor.next, last) {
                (Next::Page(n), _) if n * per_page < DISCRETE_PAGE_LIMIT => {
                    Some(cursor.then(Next::Page(n + 1)))
                }
                // Past what tokens reach (100,000 records): list again from here.
                (_, Some((at, id))) => {
                    let moved_on = cursor.from.as_ref().is_none_or(|(from, from_id)| {
                        record_key(at, &id) > record_key(*from, from_id)
                    });
                    if !moved_on {
                        return Err(CrmError::Protocol(format!(
                            "Zoho lists more than 100,000 {} modified within a second of {at}: a listing cannot get past them",
                            module_name(module)
                        )));
                    }
                    Some(Cursor {
                        next: Next::Page(1),
                        from: Some((at, id)),
                    })
                }
                (_, None) => {
                    return Err(CrmError::Protocol(
                        "Zoho said more records follow an empty page".into(),
                    ));
                }
            }
        };
        Ok(RecordPage {
            records,
            next_cursor: next.map(|c| c.to_string()),
        })
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        if !matches!(module, CrmModule::Leads | CrmModule::Contacts) {
            return Err(not_a_module(module));
        }
        let mut unique: Vec<String> = ids.iter().map(|id| id.trim().to_owned()).collect();
        // Zoho's ids are digits: another names no record (and would fail the call).
        unique.retain(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.module_fields(module).await?;
        let names = Self::field_names(&fields);
        // Get records by `ids`, the most Zoho takes in one call, a few calls at once.
        let chunks: Vec<String> = unique.chunks(MAX_IDS).map(|c| c.join(",")).collect();
        let pages: Vec<Result<Vec<CrmRecord>, CrmError>> = futures::stream::iter(chunks)
            .map(|ids| {
                let names = names.clone();
                async move {
                    let mut params = vec![
                        ("fields", names),
                        ("ids", ids),
                        ("per_page", MAX_PAGE.to_string()),
                    ];
                    if module == CrmModule::Leads {
                        params.push(("converted", "both".to_owned()));
                    }
                    let path = format!("/{}", module_name(module));
                    let reply = self.call(Method::GET, &path, &params, None, None).await?;
                    reply.body["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| wire::to_record(r, module))
                        .collect::<Result<Vec<_>, _>>()
                }
            })
            .buffer_unordered(READ_CONCURRENCY.min(self.limits.0))
            .collect()
            .await;
        let mut out = Vec::with_capacity(unique.len());
        for page in pages {
            out.extend(page?);
        }
        wire::show_labels(&mut out, &fields);
        Ok(out)
    }

    fn writes_in_flight(&self) -> usize {
        MAX_BATCH * self.limits.1
    }

    /// The module's recycle bin (`/{Module}/deleted?type=all`) since `since`
    /// (Zoho's `If-Modified-Since`), page after page; `deleted_time` is when.
    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        if !matches!(module, CrmModule::Leads | CrmModule::Contacts) {
            return Err(not_a_module(module));
        }
        let path = format!("/{}/deleted", module_name(module));
        let since = since.map(if_modified_since);
        let mut out = Vec::new();
        for page in 1u32.. {
            let params = [
                ("type", "all".to_owned()),
                ("page", page.to_string()),
                ("per_page", MAX_PAGE.to_string()),
            ];
            let reply = self
                .call(Method::GET, &path, &params, None, since.as_deref())
                .await?;
            // 204 (none) and 304 (none since) have no body.
            if reply.body.is_null() {
                break;
            }
            let rows = reply.body["data"].as_array().ok_or_else(|| {
                CrmError::Protocol(format!("Zoho's {path} reply has no data list"))
            })?;
            for row in rows {
                out.push(wire::deleted_record(row)?);
            }
            if reply.body["info"]["more_records"].as_bool() != Some(true) || rows.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        // A conversion is a heavy call.
        let _heavy = self.heavy.acquire().await.ok();
        let body = json!({ "data": [{ "overwrite": true, "notify_lead_owner": false }] });
        let reply = self
            .call(
                Method::POST,
                &format!("/Leads/{}/actions/convert", lead_id.trim()),
                &[],
                Some(&body),
                None,
            )
            .await?;
        wire::conversion(&reply.body["data"][0], lead_id)
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        if !matches!(module, CrmModule::Leads | CrmModule::Contacts) {
            return writes.iter().map(|_| Err(not_a_module(module))).collect();
        }
        let mut batches = Vec::new();
        let mut rest = writes;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH));
            batches.push(rest);
            rest = tail;
        }
        futures::stream::iter(batches)
            .map(|batch| self.upsert_batch(module, batch))
            .buffered(self.limits.1)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_as_written_restarted_listings_keeping_where_they_started() {
        let at = DateTime::from_timestamp_millis(1_765_100_000_000).unwrap();
        let from = Some((at, "5725767000000412001".to_owned()));
        for cursor in [
            Cursor::first(),
            Cursor::first().then(Next::Page(7)),
            Cursor::first().then(Next::Token("eyJrIjoiMSJ9".into())),
            Cursor {
                next: Next::Page(1),
                from: from.clone(),
            },
            Cursor {
                next: Next::Page(3),
                from: from.clone(),
            },
            Cursor {
                next: Next::Token("eyJrIjoiMSJ9".into()),
                from: from.clone(),
            },
        ] {
            let text = cursor.to_string();
            assert_eq!(Cursor::parse(&text).unwrap(), cursor, "{text}");
        }
        assert!(Cursor::parse("at:12:34").is_err(), "a token is missing");
        assert!(Cursor::parse("x:1").is_err());
    }
}
