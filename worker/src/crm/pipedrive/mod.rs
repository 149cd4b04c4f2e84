//! The Pipedrive client: persons on API v2, person fields and users on v1.
//!
//! - Pacing: our own rolling window under the token's burst limit (learned from
//!   `x-ratelimit-limit`), a pause when the CRM reports the window full, and a
//!   separate window for search calls. A 429 pauses every call of this client for
//!   as long as the CRM asks; a client that keeps calling gets blocked (403 HTML).
//! - Retries: 429, 5xx, timeouts and dropped connections, with jittered
//!   exponential backoff and a bounded number of attempts.
//! - Deletions: v1 recents of persons since a time (the last 30 days, what
//!   Pipedrive keeps of deleted persons, when none is given); deleted
//!   persons come marked `active_flag: false`.
//! - Creates are never doubled: after a create whose outcome is unknown (timeout,
//!   dropped connection, 5xx) the person is looked up by e-mail before the create
//!   is sent again.

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
use serde_json::Value;
use tokio::sync::OnceCell;

use self::wire::{Catalog, Envelope, WireField, WireUser};
use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::pacer::Pacer;
use crate::crm::retry::transport_error;
use crate::crm::{
    ConnectionCheck, CrmClient, CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord,
    Expectations, FieldsHelp, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics, endpoint};

/// Pipedrive's largest list page.
pub const MAX_PAGE: u32 = 500;
/// Pipedrive's most ids in one list call (`ids`).
pub const MAX_IDS: usize = 100;
/// Writes in flight at once (each is one call: Pipedrive has no batch write).
const WRITE_CONCURRENCY: usize = 8;
/// Persons carry `marketing_status` only when asked for it; the mappings read it.
const INCLUDE_FIELDS: (&str, &str) = ("include_fields", "marketing_status");
/// Pipedrive's documented search limit per token and 2 s.
const SEARCH_LIMIT: u32 = 10;
/// Pipedrive's documented window length.
const WINDOW: Duration = Duration::from_secs(2);
/// How long Pipedrive keeps a deleted person visible (readable by id and
/// in recents): a deleted-records call without a time looks back this far.
pub const DELETED_KEPT: chrono::Duration = chrono::Duration::days(30);
/// The largest recents page.
const RECENTS_PAGE: u64 = 500;
/// Rows of a recents page read again with the next one. Recents pages by
/// offset over persons ordered by their last change: a person changed while
/// they are read moves from before the offset to the end, and what follows
/// shifts back. Re-reading this many rows covers that many changes a page.
const RECENTS_OVERLAP: u64 = 100;

/// A Pipedrive company.
#[derive(Debug)]
pub struct PipedriveClient {
    http: HttpClient,
    base: String,
    company: String,
    token: SecretString,
    policy: RetryPolicy,
    pacer: Pacer,
    search_pacer: Pacer,
    catalog: OnceCell<Arc<Catalog>>,
    metrics: Option<Metrics>,
}

/// A successful reply: `data` and `additional_data`.
struct Reply {
    data: Value,
    additional: Value,
}

impl PipedriveClient {
    /// A client for the credentials' company; `base_url` replaces `https://{company}.pipedrive.com`.
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let described = kit::Kit.describe();
        let api_token = crm_kit::stored(credentials, described, "apiToken")?;
        let company_domain =
            crm_kit::stored(credentials, described, "companyDomain")?.expose_secret();
        let company = company_domain.trim().to_owned();
        if company.is_empty() && base_url.is_none() {
            return Err(CrmError::Unauthorized(
                "the Pipedrive company domain is empty".into(),
            ));
        }
        let base = base_url
            .map(|b| b.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{company}.pipedrive.com"));
        http.egress().check_url(&base)?;
        Ok(Self {
            http,
            base,
            company,
            token: api_token.clone(),
            policy: RetryPolicy::default(),
            pacer: Pacer::new(WINDOW, None),
            search_pacer: Pacer::new(WINDOW, Some(SEARCH_LIMIT)),
            catalog: OnceCell::new(),
            metrics: None,
        })
    }

    /// Counts this client's calls in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// One call, once: paced, classified, rate-limit headers learned.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        search: bool,
    ) -> Result<Reply, CrmError> {
        let search_slot = if search {
            Some(self.search_pacer.acquire().await)
        } else {
            None
        };
        let slot = self.pacer.acquire().await;
        // The route template, made only when calls are counted.
        let route = self
            .metrics
            .as_ref()
            .map(|_| endpoint(method.as_str(), path));
        let mut request = self
            .http
            .request(method, &format!("{}{path}", self.base))?
            .header("x-api-token", self.token.expose_secret())
            .header("accept", "application/json")
            .timeout(self.policy.request_timeout)
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await;
        if let (Some(metrics), Some(route)) = (&self.metrics, route) {
            let status = CallStatus::of(&response);
            metrics.crm_call(kit::TAG, route, status, started.elapsed());
        }
        let response = response.map_err(|e| transport_error("Pipedrive", e))?;
        self.pacer.replied(slot).await;
        if let Some(slot) = search_slot {
            self.search_pacer.replied(slot).await;
        }
        let status = response.status();
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let limit = header("x-ratelimit-limit").map(|v| v as u32);
        let remaining = header("x-ratelimit-remaining").map(|v| v as u32);
        let reset = header("x-ratelimit-reset");
        self.pacer
            .observe(
                limit,
                remaining,
                Duration::from_secs(reset.unwrap_or(1).max(1)),
            )
            .await;
        let html = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        let text = response
            .text()
            .await
            .map_err(|e| transport_error("Pipedrive", e))?;
        let envelope: Option<Envelope<Value>> = serde_json::from_str(&text).ok();
        let message = envelope
            .as_ref()
            .and_then(|e| e.error.clone())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        match status {
            s if s.is_success() => {
                let envelope = envelope.ok_or_else(|| {
                    CrmError::Protocol(format!(
                        "{path}: the reply is not Pipedrive's JSON envelope"
                    ))
                })?;
                if !envelope.success {
                    return Err(CrmError::Protocol(format!("{path}: {message}")));
                }
                Ok(Reply {
                    data: envelope.data.unwrap_or(Value::Null),
                    additional: envelope.additional_data.unwrap_or(Value::Null),
                })
            }
            StatusCode::UNAUTHORIZED => Err(CrmError::Unauthorized(format!(
                "Pipedrive refused the API token ({message}); paste a valid token of company \"{}\"",
                self.company
            ))),
            StatusCode::TOO_MANY_REQUESTS => {
                if message.to_lowercase().contains("daily") {
                    return Err(CrmError::DailyLimit(message));
                }
                let retry_after = header("retry-after")
                    .or(reset.filter(|r| *r > 0))
                    .map(Duration::from_secs);
                Err(CrmError::RateLimited { retry_after })
            }
            // Pipedrive blocks clients that ignore 429s with HTML pages: wait it out.
            StatusCode::FORBIDDEN if html => Err(CrmError::RateLimited {
                retry_after: Some(Duration::from_secs(10)),
            }),
            s if s.is_server_error() => Err(CrmError::Unavailable(format!(
                "Pipedrive answered {}: {message}",
                s.as_u16()
            ))),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Err(validation_error(&message))
            }
            StatusCode::NOT_FOUND => Err(CrmError::Rejected {
                code: "NOT_FOUND_IN_CRM".into(),
                field: None,
                message: format!("Pipedrive: {message}"),
            }),
            s => Err(CrmError::Protocol(format!(
                "{path}: Pipedrive answered {}: {message}",
                s.as_u16()
            ))),
        }
    }

    /// One call with retries of the retryable failures.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        search: bool,
    ) -> Result<Reply, CrmError> {
        self.policy
            .run(
                "Pipedrive",
                path,
                || self.send_once(method.clone(), path, query, body, search),
                // Every call of this client waits, not only this one.
                |delay| self.pacer.pause(delay),
            )
            .await
    }

    /// Fields and users, read once per client.
    async fn catalog(&self) -> Result<Arc<Catalog>, CrmError> {
        self.catalog
            .get_or_try_init(|| async {
                let fields = self.fetch_fields().await?;
                let users = self.fetch_users().await?;
                Ok(Arc::new(Catalog::new(fields, users)))
            })
            .await
            .cloned()
    }

    async fn fetch_fields(&self) -> Result<Vec<CrmField>, CrmError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let reply = self
                .call(
                    Method::GET,
                    "/api/v1/personFields",
                    &[("start", start.to_string()), ("limit", "500".into())],
                    None,
                    false,
                )
                .await?;
            let fields: Vec<WireField> = serde_json::from_value(reply.data)
                .map_err(|e| CrmError::Protocol(format!("personFields: {e}")))?;
            out.extend(fields.iter().map(wire::to_crm_field));
            let pagination = &reply.additional["pagination"];
            match (
                pagination["more_items_in_collection"].as_bool(),
                pagination["next_start"].as_u64(),
            ) {
                (Some(true), Some(next)) if next > start => start = next,
                _ => return Ok(out),
            }
        }
    }

    async fn fetch_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let reply = self
            .call(Method::GET, "/api/v1/users", &[], None, false)
            .await?;
        let users: Vec<WireUser> = serde_json::from_value(reply.data)
            .map_err(|e| CrmError::Protocol(format!("users: {e}")))?;
        Ok(users.iter().map(wire::to_crm_user).collect())
    }

    /// A person by id.
    async fn get_person(&self, id: &str) -> Result<Value, CrmError> {
        Ok(self
            .call(
                Method::GET,
                &format!("/api/v2/persons/{id}"),
                &[(INCLUDE_FIELDS.0, INCLUDE_FIELDS.1.to_owned())],
                None,
                false,
            )
            .await?
            .data)
    }

    /// The person a lost create may have made: searched by exact e-mail.
    async fn find_by_email(&self, email: &str) -> Result<Option<Value>, CrmError> {
        if email.trim().is_empty() {
            return Ok(None);
        }
        let reply = self
            .call(
                Method::GET,
                "/api/v2/persons/search",
                &[
                    ("term", email.trim().to_owned()),
                    ("fields", "email".into()),
                    ("exact_match", "true".into()),
                ],
                None,
                true,
            )
            .await?;
        // The newest person with that e-mail is the one our create made.
        let newest = reply.data["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["item"]["id"].as_i64())
            .max();
        match newest {
            Some(id) => Ok(Some(self.get_person(&id.to_string()).await?)),
            None => Ok(None),
        }
    }

    async fn write_one(&self, write: RecordWrite) -> Result<WriteResult, CrmError> {
        let catalog = self.catalog().await?;
        let create = write.id.is_none();
        let body = wire::person_body(
            &write.values,
            write.owner_email.as_deref(),
            &catalog,
            create,
        )?;
        let person = match &write.id {
            Some(id) => {
                // A PATCH is idempotent: plain retries are safe.
                self.call(
                    Method::PATCH,
                    &format!("/api/v2/persons/{id}"),
                    &[],
                    Some(&body),
                    false,
                )
                .await?
                .data
            }
            None => self.create(&body, &write.email).await?,
        };
        let record = wire::to_record(&person, &catalog)?;
        Ok(WriteResult {
            id: record.id,
            modified_at: record.modified_at,
            created: create,
        })
    }

    /// A create that is never applied twice.
    async fn create(&self, body: &Value, email: &str) -> Result<Value, CrmError> {
        let mut failures = 0;
        let mut limited = 0;
        loop {
            match self
                .send_once(Method::POST, "/api/v2/persons", &[], Some(body), false)
                .await
            {
                Ok(reply) => return Ok(reply.data),
                // A 429 is refused before anything is written.
                Err(CrmError::RateLimited { retry_after }) => {
                    limited += 1;
                    if limited >= self.policy.rate_limit_attempts {
                        return Err(CrmError::RateLimited { retry_after });
                    }
                    self.pacer
                        .pause(self.policy.rate_limit_wait(retry_after, limited))
                        .await;
                }
                Err(CrmError::Unavailable(message)) => {
                    failures += 1;
                    tracing::debug!(failures, %message, "create outcome unknown: looking it up");
                    tokio::time::sleep(self.policy.backoff(failures)).await;
                    // The create may have been applied with its reply lost.
                    if let Some(person) = self.find_by_email(email).await? {
                        return Ok(person);
                    }
                    if failures >= self.policy.attempts {
                        return Err(CrmError::Unavailable(message));
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }
}

/// "Validation failed: owner_id: must be an integer" names the field.
fn validation_error(message: &str) -> CrmError {
    let field = message
        .strip_prefix("Validation failed: ")
        .and_then(|rest| rest.split_once(':'))
        .map(|(field, _)| field.trim().to_owned());
    CrmError::Rejected {
        code: "CRM_VALIDATION".into(),
        field,
        message: format!("Pipedrive refused the person: {message}"),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[async_trait::async_trait]
impl CrmClient for PipedriveClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Pipedrive
    }

    fn subscriptions(&self) -> Option<&dyn crate::crm::realtime::Subscriptions> {
        Some(self)
    }

    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let me = match self
            .call(Method::GET, "/api/v1/users/me", &[], None, false)
            .await
        {
            Ok(reply) => reply.data,
            Err(CrmError::Rejected { .. }) => {
                return Ok(ConnectionCheck {
                    ok: false,
                    message: format!(
                        "there is no Pipedrive company \"{}\": check the company domain (the part before .pipedrive.com)",
                        self.company
                    ),
                });
            }
            Err(CrmError::Unavailable(message)) => {
                return Ok(ConnectionCheck {
                    ok: false,
                    message: format!("cannot reach Pipedrive at {}: {message}", self.base),
                });
            }
            // A refused token stays `Err(Unauthorized)`, as on every CRM: the
            // caller words the fix and marks the connector NEEDS_REAUTH.
            Err(other) => return Err(other),
        };
        let user = me["name"].as_str().unwrap_or("an API user").to_owned();
        let company = me["company_name"]
            .as_str()
            .unwrap_or(&self.company)
            .to_owned();
        if expect.filter_field.is_some() || expect.platform_link_field.is_some() {
            let fields = self.fields(CrmModule::Persons).await?;
            let help = FieldsHelp {
                records: "Pipedrive persons",
                settings: kit::Kit.describe().fields_settings,
            };
            if let Some(problem) = expect
                .filter_problem(&fields, help)
                .or_else(|| expect.link_problem(&fields, help))
            {
                return Ok(ConnectionCheck {
                    ok: false,
                    message: format!("connected to {company} as {user}, but {problem}"),
                });
            }
        }
        Ok(ConnectionCheck {
            ok: true,
            message: format!("connected to {company} as {user}"),
        })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        if module != CrmModule::Persons {
            return Err(CrmError::Protocol(format!(
                "Pipedrive has persons, not {module}"
            )));
        }
        // Read once per client: listing and writing need them too.
        Ok(self.catalog().await?.field_list.clone())
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.catalog().await?.user_list.clone())
    }

    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        if query.module != CrmModule::Persons {
            return Err(CrmError::Protocol(format!(
                "Pipedrive has persons, not {}",
                query.module
            )));
        }
        let catalog = self.catalog().await?;
        let mut params = vec![
            ("sort_by", "update_time".to_owned()),
            ("sort_direction", "asc".to_owned()),
            ("limit", query.page_size.clamp(1, MAX_PAGE).to_string()),
            (INCLUDE_FIELDS.0, INCLUDE_FIELDS.1.to_owned()),
        ];
        if let Some(since) = query.since {
            params.push(("updated_since", rfc3339(since)));
        }
        if let Some(cursor) = &query.cursor {
            params.push(("cursor", cursor.clone()));
        }
        let reply = self
            .call(Method::GET, "/api/v2/persons", &params, None, false)
            .await?;
        let records = reply
            .data
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["is_deleted"].as_bool() != Some(true))
            .map(|p| wire::to_record(p, &catalog))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = reply.additional["next_cursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(RecordPage {
            records,
            next_cursor,
        })
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        if module != CrmModule::Persons {
            return Err(CrmError::Protocol(format!(
                "Pipedrive has persons, not {module}"
            )));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.catalog().await?;
        let mut unique: Vec<&str> = ids.iter().map(|id| id.trim()).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_IDS) {
            let mut cursor: Option<String> = None;
            loop {
                let mut params = vec![
                    ("ids", chunk.join(",")),
                    ("limit", MAX_IDS.to_string()),
                    (INCLUDE_FIELDS.0, INCLUDE_FIELDS.1.to_owned()),
                ];
                if let Some(cursor) = &cursor {
                    params.push(("cursor", cursor.clone()));
                }
                let reply = self
                    .call(Method::GET, "/api/v2/persons", &params, None, false)
                    .await?;
                for person in reply.data.as_array().into_iter().flatten() {
                    if person["is_deleted"].as_bool() != Some(true) {
                        out.push(wire::to_record(person, &catalog)?);
                    }
                }
                match reply.additional["next_cursor"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Persons deleted at or after `since` (the last [`DELETED_KEPT`] when
    /// `None`), from v1 recents: every person changed since then, paged by
    /// `start` (pages overlapping by [`RECENTS_OVERLAP`] rows, each person
    /// kept once), of which the deleted ones (`active_flag: false`) are kept.
    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        if module != CrmModule::Persons {
            return Err(CrmError::Protocol(format!(
                "Pipedrive has persons, not {module}"
            )));
        }
        let since = since.unwrap_or_else(|| Utc::now() - DELETED_KEPT);
        // To the second, inclusive: a deletion in `since`'s second may come
        // back from before it, which the trait allows.
        let since_timestamp = since.format("%Y-%m-%d %H:%M:%S").to_string();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut start = 0u64;
        loop {
            let params = [
                ("since_timestamp", since_timestamp.clone()),
                ("items", "person".to_owned()),
                ("start", start.to_string()),
                ("limit", RECENTS_PAGE.to_string()),
            ];
            let reply = self
                .call(Method::GET, "/api/v1/recents", &params, None, false)
                .await?;
            if !(reply.data.is_null() || reply.data.is_array()) {
                return Err(CrmError::Protocol(format!(
                    "recents: data is not a list: {}",
                    reply.data
                )));
            }
            for row in reply.data.as_array().into_iter().flatten() {
                if let Some(person) = wire::deleted_person(row)?
                    && seen.insert(person.id.clone())
                {
                    out.push(person);
                }
            }
            let pagination = &reply.additional["pagination"];
            match (
                pagination["more_items_in_collection"].as_bool(),
                pagination["next_start"].as_u64(),
            ) {
                (Some(true), Some(next)) if next > start => {
                    start = next.saturating_sub(RECENTS_OVERLAP).max(start + 1);
                }
                (Some(true), _) => {
                    return Err(CrmError::Protocol(
                        "recents: more items follow, but no next_start after this page".into(),
                    ));
                }
                _ => return Ok(out),
            }
        }
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        if module != CrmModule::Persons {
            return writes
                .iter()
                .map(|_| {
                    Err(CrmError::Protocol(format!(
                        "Pipedrive has persons, not {module}"
                    )))
                })
                .collect();
        }
        futures::stream::iter(writes)
            .map(|w| self.write_one(w))
            .buffered(WRITE_CONCURRENCY)
            .collect()
            .await
    }
}
