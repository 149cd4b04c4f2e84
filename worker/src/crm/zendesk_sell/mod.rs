//! The Zendesk Sell client: leads (both ways) and contacts (read) on API v2.
//!
//! - Listing: oldest first. Sell's API has no "modified since" filter, so a
//!   listing since a time reads `sort_by=updated_at:desc` pages until it
//!   passes that time and hands the records over oldest first in one page: a
//!   record changed meanwhile moves to the front, so it is read twice (dropped
//!   by id), never skipped. A whole listing starts with the oldest page
//!   (`updated_at:asc`) and continues as a listing since its last record, so
//!   the run's own writes (which move records to the end) shift nothing.
//! - Pacing: Sell sends no rate-limit headers, so the client keeps under the
//!   documented 10 calls per second per token itself (or the connector's
//!   `maxRequestsPerSecond`, for an account whose limit Zendesk raised); a 429 pauses every call
//!   of the client for a second (Sell sends no `Retry-After` either); 429s
//!   that persist mean the hourly allowance is spent: the run stops cleanly.
//! - Creates are never doubled: after a create whose outcome is unknown the
//!   lead is looked up by e-mail before the create is sent again.
//! - Deletions: Sell lists no deleted records outside its Sync API, so the
//!   kit reconciles (a FULL run compares its links with the listing). A lead
//!   converted in Sell also leaves the leads: looked up by id, it is found
//!   through its lead conversion and reported converted, not deleted.

pub mod kit;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::pacer::Pacer;
use crate::crm::retry::transport_error;
use crate::crm::{
    ClientOptions, ConnectionCheck, Conversion, CrmClient, CrmError, CrmField, CrmRecord, CrmUser,
    Expectations, FieldsHelp, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics, endpoint};

/// Sell's largest page (`per_page`).
pub const MAX_PAGE: u32 = 100;
/// Sell's documented calls per second per token.
const PER_SECOND: u32 = 10;
/// Writes in flight at once (Sell writes one record per call).
const WRITE_CONCURRENCY: usize = 4;
/// Most writes in flight a connector may ask for.
const MAX_WRITE_CONCURRENCY: usize = 32;
/// 429s in a row, a second apart, after which the hourly allowance is taken
/// as spent (Sell's 429 does not say which limit it hit).
const LIMITED_IN_A_ROW: u32 = 4;

/// A Zendesk Sell account, reached with a personal access token.
#[derive(Debug)]
pub struct ZendeskSellClient {
    http: HttpClient,
    base: String,
    token: SecretString,
    policy: RetryPolicy,
    pacer: Pacer,
    writes: usize,
    catalog: OnceCell<Arc<Catalog>>,
    metrics: Option<Metrics>,
}

/// Fields of both modules and the users, read once per client.
#[derive(Debug)]
struct Catalog {
    leads: Vec<CrmField>,
    contacts: Vec<CrmField>,
    users: Vec<CrmUser>,
}

impl Catalog {
    fn fields(&self, module: CrmModule) -> &[CrmField] {
        if module == CrmModule::Contacts {
            &self.contacts
        } else {
            &self.leads
        }
    }
}

impl ZendeskSellClient {
    /// A client for the credentials' account; `base_url` replaces `https://api.getbase.com`.
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let token = crm_kit::stored(credentials, kit::Kit.describe(), "accessToken")?.clone();
        let base = base_url
            .unwrap_or("https://api.getbase.com")
            .trim_end_matches('/')
            .to_owned();
        http.egress().check_url(&base)?;
        Ok(Self {
            http,
            base,
            token,
            policy: RetryPolicy::default(),
            pacer: Pacer::new(Duration::from_secs(1), Some(PER_SECOND)).without_reserve(),
            writes: WRITE_CONCURRENCY,
            catalog: OnceCell::new(),
            metrics: None,
        })
    }

    /// Applies the connector's options: writes in flight, and the
    /// account's requests per second where Zendesk raised its limit.
    pub fn with_options(mut self, options: &ClientOptions) -> Self {
        self.writes = options.calls_in_flight(WRITE_CONCURRENCY, MAX_WRITE_CONCURRENCY);
        if let Some(rate) = options.requests_per_second.filter(|r| *r > 0) {
            self.pacer = Pacer::new(Duration::from_secs(1), Some(rate)).without_reserve();
        }
        self
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

    /// One call, once: paced and classified. The reply's JSON (Null for 204).
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let slot = self.pacer.acquire().await;
        let route = self
            .metrics
            .as_ref()
            .map(|_| endpoint(method.as_str(), path));
        let mut request = self
            .http
            .request(method, &format!("{}/v2{path}", self.base))?
            .bearer_auth(self.token.expose_secret())
            .header("accept", "application/json")
            .timeout(self.policy.request_timeout)
            .query(query);
        if let Some(body) = body {
            request = request.json(&json!({ "data": body }));
        }
        let started = Instant::now();
        let response = request.send().await;
        if let (Some(metrics), Some(route)) = (&self.metrics, route) {
            metrics.crm_call(
                kit::TAG,
                route,
                CallStatus::of(&response),
                started.elapsed(),
            );
        }
        let response = response.map_err(|e| transport_error("Zendesk Sell", e))?;
        self.pacer.replied(slot).await;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| transport_error("Zendesk Sell", e))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            StatusCode::NO_CONTENT => Ok(Value::Null),
            s if s.is_success() => {
                if json.is_null() {
                    return Err(CrmError::Protocol(format!("{path}: the reply is not JSON")));
                }
                Ok(json)
            }
            StatusCode::UNAUTHORIZED => Err(CrmError::Unauthorized(
                "Zendesk Sell refused the access token".into(),
            )),
            StatusCode::TOO_MANY_REQUESTS => Err(CrmError::RateLimited { retry_after: None }),
            s if s.is_server_error() => Err(CrmError::Unavailable(format!(
                "Zendesk Sell answered {}",
                s.as_u16()
            ))),
            StatusCode::BAD_REQUEST
            | StatusCode::NOT_FOUND
            | StatusCode::CONFLICT
            | StatusCode::UNPROCESSABLE_ENTITY => Err(wire::rejection(&json, status.as_u16())),
            s => Err(CrmError::Protocol(format!(
                "{path}: Zendesk Sell answered {}",
                s.as_u16()
            ))),
        }
    }

    /// One call with retries: 5xx and transport failures back off; a 429
    /// pauses every call of the client for a second (the per-second window
    /// drains) and is retried, and a 429 that persists past
    /// [`LIMITED_IN_A_ROW`] tries means the token's hourly allowance is spent:
    /// the run stops cleanly and resumes later.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let mut failures = 0;
        let mut limited = 0;
        loop {
            match self.send_once(method.clone(), path, query, body).await {
                Err(CrmError::RateLimited { .. }) => {
                    limited += 1;
                    if limited >= LIMITED_IN_A_ROW {
                        return Err(CrmError::DailyLimit(
                            "Zendesk Sell keeps refusing calls (429): the access token's hourly allowance of 36,000 requests is spent".into(),
                        ));
                    }
                    self.pacer.pause(Duration::from_secs(1)).await;
                }
                Err(CrmError::Unavailable(message)) => {
                    failures += 1;
                    if failures >= self.policy.attempts {
                        return Err(CrmError::Unavailable(message));
                    }
                    tokio::time::sleep(self.policy.backoff(failures)).await;
                }
                other => return other,
            }
        }
    }

    /// Every item of a collection, page by page.
    async fn all_items(&self, path: &str) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        for page in 1.. {
            let reply = self
                .call(
                    Method::GET,
                    path,
                    &[
                        ("page", page.to_string()),
                        ("per_page", MAX_PAGE.to_string()),
                    ],
                    None,
                )
                .await?;
            let items = data_of_items(&reply);
            let last = items.len() < MAX_PAGE as usize || !has_next(&reply);
            out.extend(items);
            if last {
                break;
            }
        }
        Ok(out)
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, CrmError> {
        self.catalog
            .get_or_try_init(|| async {
                let lead_custom = self
                    .call(Method::GET, "/lead/custom_fields", &[], None)
                    .await?;
                let contact_custom = self
                    .call(Method::GET, "/contact/custom_fields", &[], None)
                    .await?;
                let users = self.all_items("/users").await?;
                Ok(Arc::new(Catalog {
                    leads: wire::fields(CrmModule::Leads, &data_of_items(&lead_custom)),
                    contacts: wire::fields(CrmModule::Contacts, &data_of_items(&contact_custom)),
                    users: users.iter().filter_map(wire::user).collect(),
                }))
            })
            .await
            .cloned()
    }

    fn records(
        &self,
        module: CrmModule,
        items: &[Value],
        catalog: &Catalog,
    ) -> Result<Vec<CrmRecord>, CrmError> {
        items
            .iter()
            .map(|d| wire::to_record(module, d, catalog.fields(module), &catalog.users))
            .collect()
    }

    /// The oldest page of a whole listing.
    async fn first_page(&self, module: CrmModule) -> Result<RecordPage, CrmError> {
        let path = format!("/{}s", wire::resource(module)?);
        let catalog = self.catalog().await?;
        let reply = self
            .call(
                Method::GET,
                &path,
                &[
                    ("page", "1".into()),
                    ("per_page", MAX_PAGE.to_string()),
                    ("sort_by", "updated_at:asc".into()),
                ],
                None,
            )
            .await?;
        let items = data_of_items(&reply);
        let records = self.records(module, &items, &catalog)?;
        let more = items.len() == MAX_PAGE as usize && has_next(&reply);
        let next_cursor = records
            .last()
            .filter(|_| more)
            .map(|r| format!("{}|{}", r.modified_at.to_rfc3339(), r.id));
        Ok(RecordPage {
            records,
            next_cursor,
        })
    }

    /// Everything modified at or after `since`: newest first until past it
    /// (a record changed meanwhile moves to the front, so it is read twice,
    /// never skipped), then oldest first.
    async fn list_since(
        &self,
        module: CrmModule,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<RecordPage, CrmError> {
        let path = format!("/{}s", wire::resource(module)?);
        let catalog = self.catalog().await?;
        let mut by_id: BTreeMap<String, CrmRecord> = BTreeMap::new();
        for page in 1.. {
            let reply = self
                .call(
                    Method::GET,
                    &path,
                    &[
                        ("page", page.to_string()),
                        ("per_page", MAX_PAGE.to_string()),
                        ("sort_by", "updated_at:desc".into()),
                    ],
                    None,
                )
                .await?;
            let items = data_of_items(&reply);
            let records = self.records(module, &items, &catalog)?;
            let passed = records.iter().any(|r| r.modified_at < since);
            for record in records.into_iter().filter(|r| r.modified_at >= since) {
                by_id.insert(record.id.clone(), record);
            }
            if passed || items.len() < MAX_PAGE as usize || !has_next(&reply) {
                break;
            }
        }
        let mut records: Vec<CrmRecord> = by_id.into_values().collect();
        records.sort_by(|a, b| {
            let n = |r: &CrmRecord| r.id.parse::<u64>().unwrap_or_default();
            a.modified_at
                .cmp(&b.modified_at)
                .then_with(|| n(a).cmp(&n(b)))
        });
        Ok(RecordPage {
            records,
            next_cursor: None,
        })
    }

    /// The lead `id` as converted, when a lead conversion names it.
    async fn converted_lead(&self, id: &str) -> Result<Option<CrmRecord>, CrmError> {
        if id.parse::<u64>().is_err() {
            return Ok(None);
        }
        let reply = self
            .call(
                Method::GET,
                "/lead_conversions",
                &[("lead_id", id.to_owned()), ("per_page", "1".into())],
                None,
            )
            .await?;
        let Some(conversion) = data_of_items(&reply).into_iter().next() else {
            return Ok(None);
        };
        let modified_at = conversion["created_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| {
                CrmError::Protocol(format!("lead conversion of {id} without created_at"))
            })?;
        Ok(Some(CrmRecord {
            id: id.to_owned(),
            module: CrmModule::Leads,
            modified_at,
            email: None,
            values: BTreeMap::new(),
            owner_email: None,
            converted: true,
        }))
    }

    /// The newest lead with this e-mail: what a lost create may have made.
    async fn find_by_email(&self, path: &str, email: &str) -> Result<Option<Value>, CrmError> {
        if email.trim().is_empty() {
            return Ok(None);
        }
        let reply = self
            .call(
                Method::GET,
                path,
                &[
                    ("email", email.trim().to_owned()),
                    ("sort_by", "id:desc".into()),
                    ("per_page", "1".into()),
                ],
                None,
            )
            .await?;
        Ok(data_of_items(&reply).into_iter().next())
    }

    async fn write_one(
        &self,
        module: CrmModule,
        write: RecordWrite,
    ) -> Result<WriteResult, CrmError> {
        let catalog = self.catalog().await?;
        let plural = format!("/{}s", wire::resource(module)?);
        let body = wire::body(
            &write.values,
            write.owner_email.as_deref(),
            catalog.fields(module),
            &catalog.users,
        )?;
        let created = write.id.is_none();
        let data = match &write.id {
            // A PUT is idempotent: plain retries are safe.
            Some(id) => self
                .call(Method::PUT, &format!("{plural}/{id}"), &[], Some(&body))
                .await?["data"]
                .clone(),
            None => self.create(&plural, &body, &write.email).await?,
        };
        let record = wire::to_record(module, &data, catalog.fields(module), &catalog.users)?;
        Ok(WriteResult {
            id: record.id,
            modified_at: record.modified_at,
            created,
        })
    }

    /// A create that is never applied twice.
    async fn create(&self, path: &str, body: &Value, email: &str) -> Result<Value, CrmError> {
        let mut failures = 0;
        let mut limited = 0;
        loop {
            match self.send_once(Method::POST, path, &[], Some(body)).await {
                Ok(reply) => return Ok(reply["data"].clone()),
                Err(CrmError::RateLimited { .. }) => {
                    limited += 1;
                    if limited >= LIMITED_IN_A_ROW {
                        return Err(CrmError::DailyLimit(
                            "Zendesk Sell keeps refusing calls (429): the access token's hourly allowance of 36,000 requests is spent".into(),
                        ));
                    }
                    self.pacer.pause(Duration::from_secs(1)).await;
                }
                Err(CrmError::Unavailable(message)) => {
                    failures += 1;
                    tokio::time::sleep(self.policy.backoff(failures)).await;
                    if let Some(found) = self.find_by_email(path, email).await? {
                        return Ok(found);
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

/// The `data` of each item of a collection reply.
fn data_of_items(reply: &Value) -> Vec<Value> {
    reply["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["data"].clone())
        .collect()
}

/// A record id as a number, for ordering ties.
fn id_number(id: &str) -> u64 {
    id.parse().unwrap_or_default()
}

/// `<RFC 3339 time>|<id>`: where a whole listing continues.
fn parse_cursor(cursor: &str) -> Result<(chrono::DateTime<chrono::Utc>, u64), CrmError> {
    let bad = || CrmError::Protocol(format!("bad Zendesk Sell cursor {cursor}"));
    let (at, id) = cursor.split_once('|').ok_or_else(bad)?;
    let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((
        at.with_timezone(&chrono::Utc),
        id.parse().map_err(|_| bad())?,
    ))
}

fn has_next(reply: &Value) -> bool {
    reply["meta"]["links"]["next_page"].is_string()
}

#[async_trait::async_trait]
impl CrmClient for ZendeskSellClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::ZendeskSell
    }

    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let me = match self.call(Method::GET, "/users/self", &[], None).await {
            Ok(reply) => reply["data"].clone(),
            Err(CrmError::Unavailable(message)) => {
                return Ok(ConnectionCheck {
                    ok: false,
                    message: format!("cannot reach Zendesk Sell at {}: {message}", self.base),
                });
            }
            Err(other) => return Err(other),
        };
        let user = me["email"].as_str().unwrap_or("an API user").to_owned();
        if expect.filter_field.is_some() || expect.platform_link_field.is_some() {
            let fields = self.fields(CrmModule::Leads).await?;
            let help = FieldsHelp {
                records: "Zendesk Sell leads",
                settings: kit::Kit.describe().fields_settings,
            };
            if let Some(problem) = expect
                .filter_problem(&fields, help)
                .or_else(|| expect.link_problem(&fields, help))
            {
                return Ok(ConnectionCheck {
                    ok: false,
                    message: format!("connected to Zendesk Sell as {user}, but {problem}"),
                });
            }
        }
        Ok(ConnectionCheck {
            ok: true,
            message: format!("connected to Zendesk Sell as {user}"),
        })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        wire::resource(module)?;
        Ok(self.catalog().await?.fields(module).to_vec())
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.catalog().await?.users.clone())
    }

    /// Oldest first. A whole listing starts with the oldest page of 100; the
    /// cursor is the last record's time and id, and the rest is read as a
    /// listing since that time (see [`Self::list_since`]), so records this run
    /// writes meanwhile (which move to the end) never shift what is left.
    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        match (&query.cursor, query.since) {
            (Some(cursor), _) => {
                let (at, id) = parse_cursor(cursor)?;
                let mut page = self.list_since(query.module, at).await?;
                page.records
                    .retain(|r| (r.modified_at, id_number(&r.id)) > (at, id));
                Ok(page)
            }
            (None, Some(since)) => self.list_since(query.module, since).await,
            (None, None) => self.first_page(query.module).await,
        }
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        let path = format!("/{}s", wire::resource(module)?);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.catalog().await?;
        let mut unique: Vec<&str> = ids.iter().map(|id| id.trim()).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_PAGE as usize) {
            let reply = self
                .call(
                    Method::GET,
                    &path,
                    &[("ids", chunk.join(",")), ("per_page", MAX_PAGE.to_string())],
                    None,
                )
                .await?;
            out.extend(self.records(module, &data_of_items(&reply), &catalog)?);
        }
        if module == CrmModule::Leads {
            // A converted lead leaves Sell's leads: it is sales' now, not deleted.
            let found: Vec<String> = out.iter().map(|r| r.id.clone()).collect();
            for id in unique.iter().filter(|id| !found.iter().any(|f| f == *id)) {
                if let Some(converted) = self.converted_lead(id).await? {
                    out.push(converted);
                }
            }
        }
        Ok(out)
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        futures::stream::iter(writes)
            .map(|w| self.write_one(module, w))
            .buffered(self.writes)
            .collect()
            .await
    }

    fn writes_in_flight(&self) -> usize {
        self.writes
    }

    fn records_per_read(&self) -> u32 {
        MAX_PAGE
    }

    /// `POST /v2/lead_conversions`: the lead becomes a person contact.
    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        let id: u64 = lead_id.trim().parse().map_err(|_| CrmError::Rejected {
            code: "NOT_FOUND_IN_CRM".into(),
            field: None,
            message: format!("{lead_id} is not a Zendesk Sell lead id"),
        })?;
        let reply = self
            .call(
                Method::POST,
                "/lead_conversions",
                &[],
                Some(&json!({ "lead_id": id })),
            )
            .await
            .map_err(|e| match e {
                // A lead converted already is gone from the leads.
                CrmError::Rejected { field, .. } if field.as_deref() == Some("lead_id") => {
                    CrmError::Rejected {
                        code: "CONVERTED_LEAD".into(),
                        field: None,
                        message: format!(
                            "Zendesk Sell lead {lead_id} is converted already or gone"
                        ),
                    }
                }
                other => other,
            })?;
        let contact = reply["data"]["individual_id"].as_u64().ok_or_else(|| {
            CrmError::Protocol(format!("lead_conversions: no individual_id in {reply}"))
        })?;
        Ok(Conversion {
            contact_id: contact.to_string(),
        })
    }
}
