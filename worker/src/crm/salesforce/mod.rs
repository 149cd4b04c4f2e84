//! The Salesforce client: Leads (both ways) and Contacts (read) on the REST
//! API v62.0, with a connected app's refresh token or the JWT bearer flow.
//!
//! - Sessions: the token endpoint is at the login URL (production, sandbox,
//!   or the connector's base URL); its reply names the `instance_url` the
//!   REST API lives at. A session is shared by every client of one grant in
//!   the process and renewed single-flight ([`crate::crm::oauth`]); a 401
//!   INVALID_SESSION_ID renews once and retries; a refused refresh token or
//!   assertion is `Unauthorized` (NEEDS_REAUTH). JWT assertions are RS256,
//!   `iss` the client id, `sub` the username, `aud` the login URL, three
//!   minutes long.
//! - Budget: every reply's `Sforce-Limit-Info: api-usage=n/max` is read; a
//!   spent budget stops calls before they are sent (`DailyLimit`), as does a
//!   403 REQUEST_LIMIT_EXCEEDED.
//! - Listing: SOQL ordered by (SystemModstamp, Id), converted leads
//!   included, pages of the size the engine asks (`batchSize`, 200 to
//!   2,000) where Salesforce honours it; no page size is assumed.
//!   The cursor holds the last record's key and Salesforce's query locator;
//!   a locator Salesforce no longer knows is replaced by a new query after
//!   the key (keyset), so a listing resumes whatever happened meanwhile.
//! - Writes: sObject Collections, 200 records a call, `allOrNone: false`,
//!   per-record results; a few calls in flight. A create whose reply was lost
//!   is looked up by e-mail before it is sent again. A Lead gets the
//!   connector's default company when it has none, else is refused naming
//!   `Company` without a call (and that company reads back as none).
//!   Collections replies carry no modification times: a write's time is the
//!   reply's `Date` (to the second, as Salesforce keeps modification times).
//! - Deletions: the replication call `sobjects/{T}/deleted/` over whole
//!   minutes, at most 30 days back.
//! - Conversion: Salesforce's REST API cannot convert leads (`convertLead`
//!   is SOAP and Apex only): [`CrmClient::convert_lead`] says what a sales
//!   rep does instead.

pub mod kit;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, OnceCell};

use self::wire::{Catalog, QueryPage, SaveResult, TokenReply, WireError, WireField, WireUser};
use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::oauth::{AccessToken, TokenSlot, shared_token, token_reply};
use crate::crm::owners::{Owners, normalise_email};
use crate::crm::retry::transport_error;
use crate::crm::{
    ClientOptions, ConnectionCheck, Conversion, CrmClient, CrmError, CrmField, CrmRecord, CrmUser,
    DeletedRecord, Expectations, FieldsHelp, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics, endpoint};

/// The REST API version every call uses.
pub const API_VERSION: &str = "v62.0";
/// The login URL of production orgs.
pub const PRODUCTION_LOGIN: &str = "https://login.salesforce.com";
/// The login URL of sandbox orgs.
pub const SANDBOX_LOGIN: &str = "https://test.salesforce.com";
/// The smallest and largest query page Salesforce takes (`batchSize`).
const MIN_QUERY_BATCH: u32 = 200;
const MAX_QUERY_BATCH: u32 = 2_000;
/// Records per sObject Collections call.
pub const MAX_BATCH: usize = 200;
/// Collections calls in flight at once when the connector does not say.
const WRITE_CONCURRENCY: usize = 4;
/// Most collections calls in flight a connector may ask for.
const MAX_WRITE_CONCURRENCY: usize = 16;
/// How long a session is used before it is renewed unasked. Salesforce does
/// not say (the org's session timeout decides); a 401 renews it anyway.
const SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// A session is renewed this long before [`SESSION_LIFETIME`] ends.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// How long a JWT bearer assertion is valid.
const ASSERTION_LIFETIME: chrono::Duration = chrono::Duration::minutes(3);
/// The longest field list a query selects: SOQL travels in the URL.
const MAX_SELECT_CHARS: usize = 6_000;
/// The longest query text sent, field list and conditions together.
const MAX_QUERY_CHARS: usize = 14_000;
/// The JWT bearer grant type.
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The login URL of an `environment` (PRODUCTION when `None`); the error
/// says what the field takes.
pub fn login_url(environment: Option<&str>) -> Result<&'static str, String> {
    match environment
        .map(|e| e.trim().to_ascii_uppercase())
        .as_deref()
    {
        None | Some("" | "PRODUCTION") => Ok(PRODUCTION_LOGIN),
        Some("SANDBOX") => Ok(SANDBOX_LOGIN),
        Some(other) => Err(format!(
            "must be PRODUCTION (login.salesforce.com) or SANDBOX (test.salesforce.com), not \"{other}\""
        )),
    }
}

/// How sessions are obtained.
#[derive(Debug)]
enum Grant {
    /// A connected app's refresh token.
    Refresh {
        client_secret: SecretString,
        refresh_token: SecretString,
    },
    /// The JWT bearer flow: assertions signed with the app's private key.
    Jwt { username: String, key: EncodingKey },
}

/// The claims of a JWT bearer assertion.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
}

/// An RS256 assertion for the JWT bearer flow, valid three minutes from `now`.
pub(crate) fn assertion(
    client_id: &str,
    username: &str,
    login: &str,
    key: &EncodingKey,
    now: DateTime<Utc>,
) -> Result<String, CrmError> {
    let claims = Claims {
        iss: client_id.to_owned(),
        sub: username.to_owned(),
        aud: login.to_owned(),
        exp: (now + ASSERTION_LIFETIME).timestamp(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map_err(|e| CrmError::Unauthorized(format!("the private key cannot sign: {e}")))
}

/// The signing key of a PEM private key, or why it is none.
pub fn signing_key(pem: &str) -> Result<EncodingKey, String> {
    EncodingKey::from_rsa_pem(pem.trim().as_bytes()).map_err(|e| {
        format!(
            "is not an RSA private key in PEM (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----): {e}"
        )
    })
}

/// A Salesforce org.
#[derive(Debug)]
pub struct SalesforceClient {
    http: HttpClient,
    login: String,
    client_id: String,
    grant: Grant,
    token: TokenSlot,
    policy: RetryPolicy,
    writes: usize,
    default_company: Option<String>,
    leads: OnceCell<Arc<Catalog>>,
    contacts: OnceCell<Arc<Catalog>>,
    owners: OnceCell<Arc<Owners>>,
    /// The org's API usage as the last reply reported it: (used, allowed).
    usage: std::sync::Mutex<Option<(u64, u64)>>,
    metrics: Option<Metrics>,
}

/// A successful reply.
struct Reply {
    body: Value,
    /// The reply's `Date`: when Salesforce answered.
    date: Option<DateTime<Utc>>,
}

/// A refused session or token request, worded per grant.
fn token_refusal(grant: &Grant, error: &str, description: &str) -> CrmError {
    let said = if description.is_empty() {
        error.to_owned()
    } else {
        format!("{error}: {description}")
    };
    CrmError::Unauthorized(match (error, grant) {
        ("invalid_client_id", _) => format!(
            "Salesforce does not know the connected app's client id ({said}): copy its Consumer Key (Setup > App Manager > the app > View > Manage Consumer Details) and check the environment"
        ),
        ("invalid_client", _) => format!(
            "Salesforce refused the connected app's client secret ({said}): copy its Consumer Secret and update the connector"
        ),
        (_, Grant::Refresh { .. }) => format!(
            "Salesforce refused the refresh token ({said}): it was revoked or expired under the connected app's refresh token policy; authorise the app again and update the connector with the new refresh token"
        ),
        (_, Grant::Jwt { .. }) => format!(
            "Salesforce refused the JWT bearer assertion ({said}): upload the certificate of the private key to the connected app (Use digital signatures), pre-authorise the user's profile, and check the username and the environment"
        ),
    })
}

impl SalesforceClient {
    /// A client for the credentials' org; `base_url` replaces the login URL
    /// (the REST API is wherever the token reply says).
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let described = kit::Kit.describe();
        let client_id = crm_kit::stored(credentials, described, "clientId")?
            .expose_secret()
            .trim()
            .to_owned();
        let login = match base_url {
            Some(base) => base.trim().trim_end_matches('/').to_owned(),
            None => login_url(credentials.text("environment"))
                .map_err(|e| CrmError::Unauthorized(format!("the stored environment {e}")))?
                .to_owned(),
        };
        http.egress().check_url(&login)?;
        let (grant, token) = match credentials.secret("refreshToken") {
            Some(refresh_token) => {
                let client_secret = crm_kit::stored(credentials, described, "clientSecret")?;
                (
                    Grant::Refresh {
                        client_secret: client_secret.clone(),
                        refresh_token: refresh_token.clone(),
                    },
                    shared_token(&[&login, &client_id, "refresh"], refresh_token),
                )
            }
            None => {
                let username = crm_kit::stored(credentials, described, "username")?
                    .expose_secret()
                    .trim()
                    .to_owned();
                let pem = crm_kit::stored(credentials, described, "privateKeyPem")?;
                let key = signing_key(pem.expose_secret())
                    .map_err(|e| CrmError::Unauthorized(format!("the stored privateKeyPem {e}")))?;
                let token = shared_token(&[&login, &client_id, "jwt", &username], pem);
                (Grant::Jwt { username, key }, token)
            }
        };
        Ok(Self {
            http,
            login,
            client_id,
            grant,
            token,
            policy: RetryPolicy::default(),
            writes: WRITE_CONCURRENCY,
            default_company: None,
            leads: OnceCell::new(),
            contacts: OnceCell::new(),
            owners: OnceCell::new(),
            usage: std::sync::Mutex::new(None),
            metrics: None,
        })
    }

    /// Applies the connector's options: collections calls in flight, and
    /// the company of leads created without one.
    pub fn with_options(mut self, options: &ClientOptions) -> Self {
        self.writes = options.calls_in_flight(self.writes, MAX_WRITE_CONCURRENCY);
        self.default_company = options.company();
        self
    }

    /// Counts this client's calls (token requests included) in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn count(&self, method: &str, path: &str, status: CallStatus, started: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.crm_call(kit::TAG, endpoint(method, path), status, started.elapsed());
        }
    }

    /// A valid session and the instance it works at. `stale` is a session
    /// the API just refused: it is renewed unless another caller renewed it
    /// meanwhile.
    async fn session(&self, stale: Option<&str>) -> Result<(String, String), CrmError> {
        // The lock is held across the request: callers queued behind it
        // find the new session instead of asking again.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.usable(stale)
        {
            return Ok((token.value.clone(), token.api_domain.clone()));
        }
        let form: Vec<(&str, String)> = match &self.grant {
            Grant::Refresh {
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", self.client_id.clone()),
                ("client_secret", client_secret.expose_secret().to_owned()),
                ("refresh_token", refresh_token.expose_secret().to_owned()),
            ],
            Grant::Jwt { username, key } => vec![
                ("grant_type", JWT_GRANT.to_owned()),
                (
                    "assertion",
                    assertion(&self.client_id, username, &self.login, key, Utc::now())?,
                ),
            ],
        };
        let path = "/services/oauth2/token";
        let started = Instant::now();
        let response = self
            .http
            .request(Method::POST, &format!("{}{path}", self.login))?
            .form(&form)
            .timeout(self.policy.request_timeout)
            .send()
            .await;
        self.count("POST", path, CallStatus::of(&response), started);
        let (status, reply): (StatusCode, TokenReply) =
            token_reply("Salesforce", "Salesforce's token endpoint", response).await?;
        let (Some(value), Some(instance)) = (
            reply.access_token.filter(|_| status.is_success()),
            reply.instance_url,
        ) else {
            return Err(token_refusal(
                &self.grant,
                reply.error.as_deref().unwrap_or("no access_token"),
                reply.error_description.as_deref().unwrap_or_default(),
            ));
        };
        let instance = instance.trim().trim_end_matches('/').to_owned();
        // The REST API is wherever the token reply says, under the same rule
        // as every other address we call.
        self.http.egress().check_url(&instance)?;
        let token = AccessToken::new(value.clone(), instance, SESSION_LIFETIME, TOKEN_MARGIN);
        let out = (value, token.api_domain.clone());
        *cached = Some(token);
        Ok(out)
    }

    /// Refuses a call the org's daily budget cannot take.
    fn check_budget(&self) -> Result<(), CrmError> {
        let usage = *self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match usage {
            Some((used, allowed)) if allowed > 0 && used >= allowed => {
                Err(CrmError::DailyLimit(format!(
                    "Salesforce's daily API request limit is spent ({used} of {allowed} requests in the last 24 hours)"
                )))
            }
            _ => Ok(()),
        }
    }

    fn observe_usage(&self, headers: &reqwest::header::HeaderMap) {
        let usage = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(wire::api_usage);
        if let Some(usage) = usage {
            *self
                .usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(usage);
        }
    }

    /// One REST call, once: budget checked, authorised (one session renewal
    /// on a 401), classified. `path` is the instance's path; `counted` the
    /// path metrics count it under (ids and locators left out).
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        counted: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        batch: Option<u32>,
    ) -> Result<Reply, CrmError> {
        let mut stale: Option<String> = None;
        loop {
            self.check_budget()?;
            let (token, instance) = self.session(stale.as_deref()).await?;
            let mut request = self
                .http
                .request(method.clone(), &format!("{instance}{path}"))?
                .bearer_auth(&token)
                .header("accept", "application/json")
                .timeout(self.policy.request_timeout)
                .query(query);
            if let Some(batch) = batch {
                request = request.header("sforce-query-options", format!("batchSize={batch}"));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let response = request.send().await;
            self.count(method.as_str(), counted, CallStatus::of(&response), started);
            let response = response.map_err(|e| transport_error("Salesforce", e))?;
            let status = response.status();
            self.observe_usage(response.headers());
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let date = header("date")
                .and_then(|d| DateTime::parse_from_rfc2822(&d).ok())
                .map(|d| d.with_timezone(&Utc));
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response
                .text()
                .await
                .map_err(|e| transport_error("Salesforce", e))?;
            if status.is_success() {
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                return Ok(Reply { body, date });
            }
            let error = first_error(&text, status);
            match status {
                StatusCode::UNAUTHORIZED if stale.is_none() => {
                    // The session expired or was revoked under us: renew once and retry.
                    stale = Some(token);
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(CrmError::Unauthorized(format!(
                        "Salesforce refused a new session ({}: {})",
                        error.error_code, error.message
                    )));
                }
                StatusCode::FORBIDDEN if error.error_code == "REQUEST_LIMIT_EXCEEDED" => {
                    return Err(wire::rejection(&error));
                }
                StatusCode::FORBIDDEN => {
                    return Err(CrmError::Unauthorized(format!(
                        "the Salesforce user may not do this ({path}: {}: {}): give the user the API Enabled permission and access to Leads and Contacts",
                        error.error_code, error.message
                    )));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(CrmError::RateLimited { retry_after });
                }
                s if s.is_server_error() => {
                    return Err(CrmError::Unavailable(format!(
                        "Salesforce answered {} {}: {}",
                        s.as_u16(),
                        error.error_code,
                        error.message
                    )));
                }
                s if s.is_client_error() => return Err(wire::rejection(&error)),
                s => {
                    return Err(CrmError::Protocol(format!(
                        "{path}: Salesforce answered {} {}: {}",
                        s.as_u16(),
                        error.error_code,
                        error.message
                    )));
                }
            }
        }
    }

    /// One call with retries of the retryable failures.
    async fn call(
        &self,
        method: Method,
        path: &str,
        counted: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        batch: Option<u32>,
    ) -> Result<Reply, CrmError> {
        self.policy
            .run(
                "Salesforce",
                counted,
                || self.send_once(method.clone(), path, counted, query, body, batch),
                tokio::time::sleep,
            )
            .await
    }

    /// The first page of a SOQL query, of `batch` records where Salesforce
    /// honours it (2,000 when `None`).
    async fn query(&self, soql: &str, batch: Option<u32>) -> Result<QueryPage, CrmError> {
        let path = data_path("/query");
        let reply = self
            .call(
                Method::GET,
                &path,
                &path,
                &[("q", soql.to_owned())],
                None,
                batch,
            )
            .await?;
        query_page(reply.body)
    }

    /// The page a query's `nextRecordsUrl` names.
    async fn query_more(&self, locator: &str, batch: Option<u32>) -> Result<QueryPage, CrmError> {
        let counted = data_path("/query/{locator}");
        let reply = self
            .call(Method::GET, locator, &counted, &[], None, batch)
            .await?;
        query_page(reply.body)
    }

    /// Every record of a SOQL query, page after page.
    async fn query_all(&self, soql: &str) -> Result<Vec<Value>, CrmError> {
        let mut page = self.query(soql, None).await?;
        let mut out = std::mem::take(&mut page.records);
        while let (false, Some(next)) = (page.done, page.next_records_url.take()) {
            page = self.query_more(&checked_locator(&next)?, None).await?;
            out.append(&mut page.records);
        }
        Ok(out)
    }

    /// The describe of a module's sObject, read once per client.
    async fn catalog(&self, module: CrmModule) -> Result<Arc<Catalog>, CrmError> {
        let object = sobject(module)?;
        let cell = match module {
            CrmModule::Contacts => &self.contacts,
            _ => &self.leads,
        };
        cell.get_or_try_init(|| async {
            let path = data_path(&format!("/sobjects/{object}/describe"));
            let reply = self
                .call(Method::GET, &path, &path, &[], None, None)
                .await?;
            let fields: Vec<WireField> = serde_json::from_value(reply.body["fields"].clone())
                .map_err(|e| CrmError::Protocol(format!("{object} describe: {e}")))?;
            Ok(Arc::new(Catalog::new(&fields)))
        })
        .await
        .cloned()
    }

    /// Every user, active or not, read once per client.
    async fn owners(&self) -> Result<Arc<Owners>, CrmError> {
        self.owners
            .get_or_try_init(|| async {
                let rows = self
                    .query_all("SELECT Id, Email, Name, IsActive FROM User ORDER BY Id")
                    .await?;
                let users = rows
                    .into_iter()
                    .map(|r| {
                        serde_json::from_value::<WireUser>(r)
                            .map(|u| wire::to_crm_user(&u))
                            .map_err(|e| CrmError::Protocol(format!("User: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Arc::new(Owners::new(users)))
            })
            .await
            .cloned()
    }

    /// Query rows as records. A lead whose company is the connector's
    /// default company reads as one without a company: the default stands
    /// in for a value Salesforce requires, and is not the person's company.
    fn records(
        &self,
        rows: &[Value],
        module: CrmModule,
        catalog: &Catalog,
        owners: &Owners,
    ) -> Result<Vec<CrmRecord>, CrmError> {
        rows.iter()
            .map(|r| {
                let mut record = wire::to_record(r, module, catalog, Some(owners))?;
                if let (Some(default), Some(company)) = (
                    self.default_company.as_deref(),
                    record.values.get_mut(wire::COMPANY),
                ) && company.as_str() == Some(default)
                {
                    *company = Value::Null;
                }
                Ok(record)
            })
            .collect()
    }

    /// One batch of at most 200 writes; one result per write, in order.
    async fn write_batch(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        let prepared = match self.prepare(module, &writes).await {
            Ok(p) => p,
            Err(e) => return writes.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out: Vec<Option<Result<WriteResult, CrmError>>> =
            writes.iter().map(|_| None).collect();
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for (order, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(input) if input.id.is_some() => updates.push(Input { order, ..input }),
                Ok(input) => creates.push(Input { order, ..input }),
                Err(e) => out[order] = Some(Err(e)),
            }
        }
        let object = sobject(module).unwrap_or("Lead");
        let results =
            futures::future::join(self.create(object, creates), self.update(updates)).await;
        for (order, result) in results.0.into_iter().chain(results.1) {
            out[order] = Some(result);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CrmError::Protocol("no result".into()))))
            .collect()
    }

    /// The records of a batch: values checked against the describe, owners
    /// resolved, the e-mail and a lead's company filled in.
    async fn prepare(
        &self,
        module: CrmModule,
        writes: &[RecordWrite],
    ) -> Result<Vec<Result<Input, CrmError>>, CrmError> {
        let object = sobject(module)?;
        let catalog = self.catalog(module).await?;
        let needs_owners = writes.iter().any(|w| {
            w.owner_email.is_some() || w.values.get(wire::OWNER).is_some_and(Value::is_string)
        });
        let owners = if needs_owners {
            Some(self.owners().await?)
        } else {
            None
        };
        let needs_company = catalog
            .fields
            .get(wire::COMPANY)
            .is_some_and(|f| f.mandatory);
        Ok(writes
            .iter()
            .map(|w| {
                let creating = w.id.is_none();
                let mut fields = wire::record_fields(
                    &w.values,
                    w.owner_email.as_deref(),
                    creating,
                    &catalog,
                    owners.as_deref(),
                )?;
                if creating && !fields.contains_key("Email") && !w.email.trim().is_empty() {
                    fields.insert("Email".into(), Value::String(w.email.trim().to_owned()));
                }
                if needs_company {
                    self.fill_company(&mut fields, creating)?;
                }
                fields.insert("attributes".into(), json!({ "type": object }));
                if let Some(id) = &w.id {
                    fields.insert("Id".into(), Value::String(id.trim().to_owned()));
                }
                Ok(Input {
                    order: 0,
                    id: w.id.clone(),
                    email: w.email.trim().to_owned(),
                    fields,
                })
            })
            .collect())
    }

    /// A lead created (or cleared) without a company gets the connector's
    /// default company; without one it is refused before anything is sent.
    fn fill_company(
        &self,
        fields: &mut Map<String, Value>,
        creating: bool,
    ) -> Result<(), CrmError> {
        let missing = match fields.get(wire::COMPANY) {
            None => creating,
            Some(v) => v.as_str().is_none_or(|s| s.trim().is_empty()),
        };
        if !missing {
            return Ok(());
        }
        match &self.default_company {
            Some(company) => {
                fields.insert(wire::COMPANY.into(), Value::String(company.clone()));
                Ok(())
            }
            None => Err(CrmError::Rejected {
                code: "CRM_VALIDATION".into(),
                field: Some(wire::COMPANY.into()),
                message: "Salesforce requires a Company on every lead: map the platform's company to Company, give the contact one, or set the connector's default company (settings defaultCompany)".into(),
            }),
        }
    }

    /// Creates records; a call whose reply was lost is followed by a look-up
    /// of its records by e-mail, and only those not found are sent again.
    async fn create(
        &self,
        object: &str,
        inputs: Vec<Input>,
    ) -> Vec<(usize, Result<WriteResult, CrmError>)> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let path = data_path("/composite/sobjects");
        // What is left to send, and what is settled, across attempts.
        let pending = Mutex::new((inputs, Vec::new()));
        let attempts = AtomicU32::new(0);
        let (pending, attempts, path) = (&pending, &attempts, path.as_str());
        let sent = self
            .policy
            .run(
                "Salesforce",
                path,
                move || async move {
                    let mut state = pending.lock().await;
                    if attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                        let (inputs, done) = &mut *state;
                        self.settle_found(object, inputs, done).await?;
                    }
                    let (inputs, _) = &*state;
                    if inputs.is_empty() {
                        return Ok(None);
                    }
                    let body = collection(inputs);
                    self.send_once(Method::POST, path, path, &[], Some(&body), None)
                        .await
                        .map(Some)
                },
                tokio::time::sleep,
            )
            .await;
        let (inputs, mut done) = std::mem::take(&mut *pending.lock().await);
        match sent {
            Ok(Some(reply)) => done.extend(save_results(&inputs, &reply, true)),
            Ok(None) => {}
            Err(e) => done.extend(inputs.iter().map(|i| (i.order, Err(e.clone())))),
        }
        done
    }

    /// Moves the inputs whose record exists already (by e-mail) to `done`.
    async fn settle_found(
        &self,
        object: &str,
        inputs: &mut Vec<Input>,
        done: &mut Vec<(usize, Result<WriteResult, CrmError>)>,
    ) -> Result<(), CrmError> {
        let emails: Vec<String> = inputs
            .iter()
            .map(|i| i.email.clone())
            .filter(|e| !e.is_empty())
            .collect();
        let found = self.find_by_email(object, &emails).await?;
        inputs.retain(|i| match found.get(&normalise_email(&i.email)) {
            Some((id, at)) if !i.email.is_empty() => {
                done.push((
                    i.order,
                    Ok(WriteResult {
                        id: id.clone(),
                        modified_at: *at,
                        created: true,
                    }),
                ));
                false
            }
            _ => true,
        });
        Ok(())
    }

    /// The newest record of each e-mail: its id and modification time.
    async fn find_by_email(
        &self,
        object: &str,
        emails: &[String],
    ) -> Result<HashMap<String, (String, DateTime<Utc>)>, CrmError> {
        let mut found: HashMap<String, (String, DateTime<Utc>)> = HashMap::new();
        for chunk in chunks_within(emails, 0, |e| wire::soql_string(e).len() + 1) {
            let list: Vec<String> = chunk.iter().map(|e| wire::soql_string(e)).collect();
            let soql = format!(
                "SELECT Id, Email, SystemModstamp FROM {object} WHERE Email IN ({})",
                list.join(",")
            );
            for row in self.query_all(&soql).await? {
                let (Some(id), Some(email), Some(at)) = (
                    row["Id"].as_str(),
                    row["Email"].as_str(),
                    row[wire::MODSTAMP].as_str().and_then(wire::parse_time),
                ) else {
                    continue;
                };
                let key = normalise_email(email);
                if found.get(&key).is_none_or(|(_, t)| *t < at) {
                    found.insert(key, (id.to_owned(), at));
                }
            }
        }
        Ok(found)
    }

    /// Updates records by id (safe to send again).
    async fn update(&self, inputs: Vec<Input>) -> Vec<(usize, Result<WriteResult, CrmError>)> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let path = data_path("/composite/sobjects");
        let body = collection(&inputs);
        match self
            .call(Method::PATCH, &path, &path, &[], Some(&body), None)
            .await
        {
            Ok(reply) => save_results(&inputs, &reply, false),
            Err(e) => inputs.iter().map(|i| (i.order, Err(e.clone()))).collect(),
        }
    }

    /// A listing's first query: records modified at or after `since`, or
    /// after a cursor's key.
    fn listing_soql(
        &self,
        catalog: &Catalog,
        object: &str,
        since: Option<DateTime<Utc>>,
        after: Option<&Cursor>,
    ) -> String {
        let condition = match (after, since) {
            (Some(c), _) => Some(c.condition()),
            (None, Some(since)) => {
                Some(format!("{} >= {}", wire::MODSTAMP, wire::soql_time(since)))
            }
            (None, None) => None,
        };
        format!(
            "SELECT {} FROM {object}{} ORDER BY {}, Id",
            catalog.select_list(MAX_SELECT_CHARS),
            condition.map(|c| format!(" WHERE {c}")).unwrap_or_default(),
            wire::MODSTAMP,
        )
    }
}

/// One prepared record.
#[derive(Debug, Clone)]
struct Input {
    /// Its place in the batch.
    order: usize,
    /// The record's id, for an update.
    id: Option<String>,
    /// The e-mail a lost create is looked up by.
    email: String,
    /// The record as sent (attributes, Id and fields).
    fields: Map<String, Value>,
}

/// The body of an sObject Collections call.
fn collection(inputs: &[Input]) -> Value {
    json!({
        "allOrNone": false,
        "records": inputs.iter().map(|i| Value::Object(i.fields.clone())).collect::<Vec<_>>(),
    })
}

/// The per-record results of a collections call, in input order. Salesforce
/// does not report modification times here: the reply's time (to the
/// second) stands for them.
fn save_results(
    inputs: &[Input],
    reply: &Reply,
    created: bool,
) -> Vec<(usize, Result<WriteResult, CrmError>)> {
    let results: Vec<SaveResult> = match serde_json::from_value(reply.body.clone()) {
        Ok(r) => r,
        Err(e) => {
            let e = CrmError::Protocol(format!("a collections reply is not a result list: {e}"));
            return inputs.iter().map(|i| (i.order, Err(e.clone()))).collect();
        }
    };
    if results.len() != inputs.len() {
        let e = CrmError::Protocol(format!(
            "Salesforce answered {} results for {} records",
            results.len(),
            inputs.len()
        ));
        return inputs.iter().map(|i| (i.order, Err(e.clone()))).collect();
    }
    let at = reply.date.unwrap_or_else(Utc::now);
    inputs
        .iter()
        .zip(results)
        .map(|(input, r)| {
            let result = match (r.success, r.id.or_else(|| input.id.clone())) {
                (true, Some(id)) => Ok(WriteResult {
                    id,
                    modified_at: at,
                    created,
                }),
                (true, None) => Err(CrmError::Protocol(
                    "Salesforce saved a record without naming its id".into(),
                )),
                (false, _) => Err(r.errors.first().map_or_else(
                    || CrmError::Protocol("Salesforce refused a record without saying why".into()),
                    wire::rejection,
                )),
            };
            (input.order, result)
        })
        .collect()
}

/// The first error of a refused call's body (`[{"message","errorCode"}]`).
fn first_error(text: &str, status: StatusCode) -> WireError {
    let parsed: Option<WireError> = serde_json::from_str::<Vec<WireError>>(text)
        .ok()
        .and_then(|e| e.into_iter().next())
        .or_else(|| serde_json::from_str::<WireError>(text).ok())
        .filter(|e| !e.error_code.is_empty());
    parsed.unwrap_or_else(|| WireError {
        error_code: status.as_u16().to_string(),
        message: status.canonical_reason().unwrap_or("error").to_owned(),
        fields: Vec::new(),
    })
}

fn query_page(body: Value) -> Result<QueryPage, CrmError> {
    serde_json::from_value(body).map_err(|e| CrmError::Protocol(format!("a query reply: {e}")))
}

/// A path under the REST API's version root.
fn data_path(tail: &str) -> String {
    format!("/services/data/{API_VERSION}{tail}")
}

/// A `nextRecordsUrl`, checked to be a query path of the instance.
fn checked_locator(url: &str) -> Result<String, CrmError> {
    let ok = url.starts_with("/services/data/")
        && url.contains("/query")
        && !url.contains("..")
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.' | '_'));
    if ok {
        Ok(url.to_owned())
    } else {
        Err(CrmError::Protocol(format!(
            "an unexpected nextRecordsUrl: {url}"
        )))
    }
}

/// The sObject of a module.
fn sobject(module: CrmModule) -> Result<&'static str, CrmError> {
    match module {
        CrmModule::Leads => Ok("Lead"),
        CrmModule::Contacts => Ok("Contact"),
        other => Err(CrmError::Protocol(format!(
            "Salesforce has Leads and Contacts, not {other}"
        ))),
    }
}

/// Splits `items` into runs whose query text stays under the budget (less
/// `fixed`, what the query holds besides them), 200 at most.
fn chunks_within<T>(items: &[T], fixed: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let budget = MAX_QUERY_CHARS.saturating_sub(fixed + 200);
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (used + n > budget || i - start >= MAX_BATCH) {
            out.push(&items[start..i]);
            start = i;
            used = 0;
        }
        used += n;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Where the next page of a listing starts: after the last record's key
/// (SystemModstamp, Id), through Salesforce's query locator while it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    at: DateTime<Utc>,
    id: String,
    /// The `nextRecordsUrl` of the query the page came from.
    locator: Option<String>,
}

impl Cursor {
    fn parse(c: &str) -> Result<Self, CrmError> {
        let bad = || CrmError::Protocol(format!("bad Salesforce cursor {c}"));
        let mut parts = c.splitn(3, ':');
        let at = parts
            .next()
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(bad)?;
        let id = parts
            .next()
            .filter(|id| wire::is_record_id(id))
            .ok_or_else(bad)?
            .to_owned();
        let locator = parts
            .next()
            .map(|l| checked_locator(l).map_err(|_| bad()))
            .transpose()?;
        Ok(Self { at, id, locator })
    }

    /// The SOQL condition of what follows the key.
    fn condition(&self) -> String {
        let t = wire::soql_time(self.at);
        format!(
            "({m} > {t} OR ({m} = {t} AND Id > {id}))",
            m = wire::MODSTAMP,
            id = wire::soql_string(&self.id)
        )
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.at.timestamp_millis(), self.id)?;
        if let Some(locator) = &self.locator {
            write!(f, ":{locator}")?;
        }
        Ok(())
    }
}

/// True when Salesforce no longer knows a query locator (it expired, or
/// the org's open cursors were recycled).
fn locator_refused(error: &CrmError) -> bool {
    matches!(error, CrmError::Rejected { code, .. }
        if code == "INVALID_QUERY_LOCATOR" || code == "NOT_FOUND_IN_CRM")
}

#[async_trait::async_trait]
impl CrmClient for SalesforceClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Salesforce
    }

    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let fail = |message: String| Ok(ConnectionCheck { ok: false, message });
        // Leads hold the mappings' fields, so they must be readable even
        // when only Contacts are imported.
        let mut modules = vec![CrmModule::Leads];
        if expect.modules.contains(&CrmModule::Contacts) {
            modules.push(CrmModule::Contacts);
        }
        for &module in &modules {
            let object = sobject(module)?;
            // Refused credentials are `Err(Unauthorized)`: the caller marks
            // the connector NEEDS_REAUTH.
            let catalog = match self.catalog(module).await {
                Ok(c) => c,
                Err(CrmError::Unavailable(message)) => {
                    return fail(format!(
                        "cannot reach Salesforce at {}: {message}",
                        self.login
                    ));
                }
                Err(CrmError::Rejected { message, .. }) => {
                    return fail(format!(
                        "connected to Salesforce, but {object} cannot be described: {message}"
                    ));
                }
                Err(e) => return Err(e),
            };
            if let Err(CrmError::Rejected { message, .. }) = self
                .query(&format!("SELECT Id FROM {object} LIMIT 1"), None)
                .await
            {
                return fail(format!(
                    "connected to Salesforce, but {object} records cannot be queried: {message}"
                ));
            }
            let help = FieldsHelp {
                records: if module == CrmModule::Leads {
                    "Salesforce leads"
                } else {
                    "Salesforce contacts"
                },
                settings: kit::Kit.describe().fields_settings,
            };
            let filter = expect
                .imports(module, CrmModule::Leads)
                .then(|| expect.filter_problem(&catalog.field_list, help))
                .flatten();
            let link = (module == CrmModule::Leads)
                .then(|| expect.link_problem(&catalog.field_list, help))
                .flatten();
            if let Some(problem) = filter.or(link) {
                return fail(format!("connected to Salesforce, but {problem}"));
            }
        }
        if let Err(CrmError::Rejected { message, .. }) = self.owners().await {
            return fail(format!(
                "connected to Salesforce, but its users cannot be read (owners are matched by them): {message}"
            ));
        }
        let readable = modules
            .iter()
            .map(|m| {
                if *m == CrmModule::Leads {
                    "leads"
                } else {
                    "contacts"
                }
            })
            .collect::<Vec<_>>()
            .join(" and ");
        Ok(ConnectionCheck {
            ok: true,
            message: format!("connected to Salesforce: {readable} are readable"),
        })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        Ok(self.catalog(module).await?.field_list.clone())
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.owners().await?.list.clone())
    }

    /// One page: `page_size` records asked for (200 to 2,000), as many as
    /// Salesforce gives (it does not promise to honour the size); a page
    /// larger than asked is cut, and the next one queried after its key.
    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        let object = sobject(query.module)?;
        let catalog = self.catalog(query.module).await?;
        let owners = self.owners().await?;
        let cursor = query.cursor.as_deref().map(Cursor::parse).transpose()?;
        let size = query.page_size.clamp(MIN_QUERY_BATCH, MAX_QUERY_BATCH);
        let page = match &cursor {
            Some(Cursor {
                locator: Some(locator),
                ..
            }) => match self.query_more(locator, Some(size)).await {
                Ok(page) => page,
                // The locator is gone: a new query after the last key.
                Err(e) if locator_refused(&e) => {
                    tracing::debug!(%e, "Salesforce query locator refused: querying after the key");
                    let soql = self.listing_soql(&catalog, object, None, cursor.as_ref());
                    self.query(&soql, Some(size)).await?
                }
                Err(e) => return Err(e),
            },
            after => {
                let soql = self.listing_soql(&catalog, object, query.since, after.as_ref());
                self.query(&soql, Some(size)).await?
            }
        };
        let mut records = self.records(&page.records, query.module, &catalog, &owners)?;
        let mut locator = page
            .next_records_url
            .as_deref()
            .map(checked_locator)
            .transpose()?;
        let mut done = page.done;
        if records.len() > size as usize {
            // The rest is read again after the key: the locator is past it.
            records.truncate(size as usize);
            (done, locator) = (false, None);
        }
        let next = match (done, records.last()) {
            (true, _) => None,
            (false, None) => {
                return Err(CrmError::Protocol(
                    "Salesforce said more records follow an empty page".into(),
                ));
            }
            (false, Some(last)) => Some(Cursor {
                at: last.modified_at,
                id: last.id.clone(),
                locator,
            }),
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
        let object = sobject(module)?;
        let mut unique: Vec<&str> = ids
            .iter()
            .map(|id| id.trim())
            .filter(|id| wire::is_record_id(id))
            .collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.catalog(module).await?;
        let owners = self.owners().await?;
        let select = catalog.select_list(MAX_SELECT_CHARS);
        let mut out = Vec::with_capacity(unique.len());
        for chunk in chunks_within(&unique, select.len(), |id| id.len() + 3) {
            let list: Vec<String> = chunk.iter().map(|id| wire::soql_string(id)).collect();
            let soql = format!(
                "SELECT {select} FROM {object} WHERE Id IN ({})",
                list.join(",")
            );
            let rows = self.query_all(&soql).await?;
            out.extend(self.records(&rows, module, &catalog, &owners)?);
        }
        Ok(out)
    }

    fn writes_in_flight(&self) -> usize {
        MAX_BATCH * self.writes
    }

    /// The replication call `sobjects/{Lead|Contact}/deleted/?start=&end=`
    /// over `since` (at most 30 days back; the last 30 days when `None`) to
    /// now. Chosen over `queryAll ... WHERE IsDeleted = true` because it is
    /// the feed the kit names: it answers the deletion time itself
    /// (`deletedDate`, not a SystemModstamp that other changes also move),
    /// filters by that time on the server, and the sandbox serves it as
    /// documented (one reply, no paging, deleted records only).
    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        let object = sobject(module)?;
        let (start, end) = wire::replication_window(since, Utc::now());
        let path = data_path(&format!("/sobjects/{object}/deleted/"));
        let query = [
            ("start", wire::replication_time(start)),
            ("end", wire::replication_time(end)),
        ];
        let reply = self
            .call(Method::GET, &path, &path, &query, None, None)
            .await?;
        let mut out = wire::deleted_records(&reply.body)?;
        // Salesforce reads the start to the minute: keep to what was asked.
        if let Some(since) = since {
            out.retain(|d| d.deleted_at.is_none_or(|at| at >= since));
        }
        Ok(out)
    }

    /// A query call answers up to 2,000 records: the import reads that many
    /// a page (and writes them back in whole Collections calls of 200).
    fn records_per_read(&self) -> u32 {
        MAX_QUERY_BATCH
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        if let Err(e) = sobject(module) {
            return writes.iter().map(|_| Err(e.clone())).collect();
        }
        let mut batches = Vec::new();
        let mut rest = writes;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH));
            batches.push(rest);
            rest = tail;
        }
        futures::stream::iter(batches)
            .map(|batch| self.write_batch(module, batch))
            .buffered(self.writes)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    /// Salesforce's REST API has no lead conversion: the lead is reported
    /// for a sales rep to convert in Salesforce, without a call.
    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        Err(CrmError::Rejected {
            code: "CONVERT_IN_SALESFORCE".into(),
            field: None,
            message: format!(
                "Salesforce's API cannot convert leads: a sales rep converts lead {} in Salesforce (Convert on the lead); the next sync makes the platform contact a client of the new Contact",
                lead_id.trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA key made for tests only.
    const TEST_KEY: &str =
        include_str!("../../../../sandbox/tests/fixtures/test-only-jwt-private-key.pem");
    const TEST_PUBLIC_KEY: &str =
        include_str!("../../../../sandbox/tests/fixtures/test-only-jwt-public-key.pem");

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn a_cursor_round_trips_and_asks_for_what_follows_its_key() {
        let c = Cursor {
            at: at(1_700_000_000_000),
            id: "00Q000000000042AAA".into(),
            locator: Some("/services/data/v62.0/query/01gxx0000000001-2000".into()),
        };
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        let keyset = Cursor { locator: None, ..c };
        assert_eq!(Cursor::parse(&keyset.to_string()).unwrap(), keyset);
        assert_eq!(
            keyset.condition(),
            "(SystemModstamp > 2023-11-14T22:13:20Z OR (SystemModstamp = 2023-11-14T22:13:20Z AND Id > '00Q000000000042AAA'))"
        );
        assert!(Cursor::parse("x").is_err());
        assert!(
            Cursor::parse("1:00Q' OR Id != '").is_err(),
            "ids are checked"
        );
        assert!(
            Cursor::parse("1:00Q000000000042AAA:https://evil.test/x").is_err(),
            "locators are instance paths"
        );
    }

    #[test]
    fn the_deleted_records_window_is_whole_minutes_within_thirty_days() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = t("2026-11-21T10:00:30.500Z");
        let window = wire::replication_window;
        // `since`'s minute to the minute after now.
        assert_eq!(
            window(Some(t("2026-11-20T08:15:45Z")), now),
            (t("2026-11-20T08:15:00Z"), t("2026-11-21T10:01:00Z"))
        );
        // No older than thirty days, and thirty days when `None`.
        let reach = t("2026-10-22T10:01:00Z");
        assert_eq!(window(None, now), (reach, t("2026-11-21T10:01:00Z")));
        assert_eq!(window(Some(t("2026-01-01T00:00:00Z")), now).0, reach);
        // More than a minute between start and end, even for a `since` of now.
        assert_eq!(window(Some(now), now).0, t("2026-11-21T09:59:00Z"));
        assert_eq!(
            wire::replication_time(t("2026-11-20T08:15:00Z")),
            "2026-11-20T08:15:00+00:00"
        );
    }

    #[test]
    fn a_jwt_assertion_carries_the_claims_salesforce_checks() {
        let key = signing_key(TEST_KEY).unwrap();
        let now = at(1_700_000_000_000);
        let token =
            assertion("client-1", "ann@acme.test", "https://login.test", &key, now).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://login.test"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Claims>(
            &token,
            &jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(
            decoded.claims,
            Claims {
                iss: "client-1".into(),
                sub: "ann@acme.test".into(),
                aud: "https://login.test".into(),
                exp: now.timestamp() + 180,
            }
        );
        assert!(signing_key("not a key").is_err());
    }

    #[test]
    fn the_environment_picks_the_login_url() {
        assert_eq!(login_url(None).unwrap(), PRODUCTION_LOGIN);
        assert_eq!(login_url(Some("sandbox")).unwrap(), SANDBOX_LOGIN);
        assert!(
            login_url(Some("STAGING"))
                .unwrap_err()
                .contains("PRODUCTION")
        );
    }

    #[test]
    fn queries_are_cut_to_fit_the_url() {
        let ids: Vec<String> = (0..450).map(|i| format!("00Q{i:015}")).collect();
        let chunks = chunks_within(&ids, 0, |id| id.len() + 3);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [200, 200, 50]
        );
        let long = chunks_within(&ids, MAX_QUERY_CHARS - 1_000, |id| id.len() + 3);
        assert!(long.len() > 3 && long.iter().all(|c| !c.is_empty()));
        assert!(checked_locator("/services/data/v62.0/query/01g-2000").is_ok());
        assert!(checked_locator("/services/data/v62.0/query/../../x?y").is_err());
    }

    #[test]
    fn a_refused_call_names_salesforces_code() {
        let e = first_error(
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            StatusCode::UNAUTHORIZED,
        );
        assert_eq!(e.error_code, "INVALID_SESSION_ID");
        assert_eq!(
            first_error("<html>", StatusCode::BAD_GATEWAY).error_code,
            "502"
        );
    }
}
