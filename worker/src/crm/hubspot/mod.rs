//! The HubSpot client: contacts on the CRM API v3, with a private app's
//! token or an OAuth app's refresh token.
//!
//! - Tokens: an OAuth app's access tokens (30 minutes) are shared by every
//!   client of one refresh token in the process and refreshed single-flight
//!   before they expire ([`crate::crm::oauth`]); a 401 refreshes once and
//!   retries; a refused refresh token is `Unauthorized` (NEEDS_REAUTH).
//! - Pacing: our own rolling 10-second window under the account's limit
//!   (learned from `X-HubSpot-RateLimit-Max`/`-Remaining`), a second one for
//!   the search endpoint (5 a second). A 429 waits out the window
//!   (TEN_SECONDLY_ROLLING) or ends the run (DAILY: `DailyLimit`).
//! - Listing: search on `lastmodifieddate` (ascending, ties by id), 200 a page,
//!   every page a new search after the last record's key (time, id): records
//!   written meanwhile never shift a page, and no search pages past the
//!   10,000-result cap. HubSpot's search index lags writes by a few seconds.
//! - Writes: creates by `batch/upsert` on e-mail, updates by `batch/update` on
//!   id (the record may have been matched by another of its e-mails, or its
//!   e-mail may change), 100 a call. HubSpot refuses a whole upsert for one bad
//!   input: the batch is split until the bad record stands alone. Upserts by
//!   e-mail are safe to re-send, so a lost reply never duplicates a contact.
//! - Deletions: the list endpoint's archived contacts (`archived=true`),
//!   filtered by `archivedAt` here: HubSpot filters them by no time.
//! - `lifecyclestage` only moves forward: an update reads the records' stages
//!   first and never sends an earlier one (S10).
//! - Real time: an OAuth app's webhooks, managed with its developer API key
//!   (`realtime.rs`).

pub mod kit;
pub mod realtime;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use self::wire::{Catalog, Owners, WireOwner, WireProperty};
use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::oauth::{AccessToken, TokenSlot, shared_token, token_reply};
use crate::crm::pacer::Pacer;
use crate::crm::retry::transport_error;
use crate::crm::{
    ClientOptions, ConnectionCheck, CrmClient, CrmError, CrmField, CrmRecord, CrmUser,
    DeletedRecord, Expectations, FieldsHelp, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics, endpoint};

/// HubSpot's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// Inputs per batch call.
pub const MAX_BATCH: usize = 100;
/// The search endpoint's largest page.
pub const MAX_SEARCH_PAGE: u32 = 200;
/// The most results one search reaches.
pub const SEARCH_CAP: u32 = 10_000;
/// The list endpoint's largest page (archived contacts are read through it).
pub const MAX_LIST_PAGE: u32 = 100;
/// The scopes contacts need.
pub const SCOPES: &str = "crm.objects.contacts.read and crm.objects.contacts.write";
/// HubSpot's rate-limit window.
const WINDOW: Duration = Duration::from_secs(10);
/// The search endpoint's window and limit (5 requests a second per account).
const SEARCH_WINDOW: Duration = Duration::from_secs(1);
const SEARCH_LIMIT: u32 = 5;
/// Batch writes in flight at once: enough to fill the 10-second window.
const WRITE_CONCURRENCY: usize = 6;
/// Property names asked for when reading contacts.
const MAX_PROPERTIES: usize = 250;
/// An access token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// How calls are authorised.
#[derive(Debug)]
enum Auth {
    /// A private app's token.
    Static(SecretString),
    /// An OAuth app's refresh token.
    OAuth {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
        token: TokenSlot,
    },
}

/// A HubSpot portal.
#[derive(Debug)]
pub struct HubspotClient {
    http: HttpClient,
    base: String,
    auth: Auth,
    policy: RetryPolicy,
    pacer: Pacer,
    search_pacer: Pacer,
    catalog: OnceCell<Arc<Catalog>>,
    owners: OnceCell<Arc<Owners>>,
    writes: usize,
    metrics: Option<Metrics>,
    /// The OAuth app whose webhooks real time manages, when the
    /// credentials name it.
    app: Option<realtime::WebhookApp>,
}

/// A successful reply.
struct Reply {
    status: StatusCode,
    body: Value,
}

/// The token endpoint's reply.
#[derive(Debug, Deserialize)]
struct TokenReply {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// What a person must do about a missing scope, for messages.
fn scope_message(scopes: &str) -> String {
    format!(
        "the HubSpot app lacks the scope {scopes}: add {SCOPES} to the private app (Settings > Integrations > Private Apps > Scopes) or the OAuth app, then update the connector"
    )
}

impl HubspotClient {
    /// A client for the credentials' portal; `base_url` replaces `https://api.hubapi.com`.
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let described = kit::Kit.describe();
        let base = base_url
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_owned();
        http.egress().check_url(&base)?;
        let auth = match credentials.secret("accessToken") {
            Some(token) if credentials.tag() == kit::TAG => Auth::Static(token.clone()),
            _ => {
                let client_id = crm_kit::stored(credentials, described, "clientId")?
                    .expose_secret()
                    .trim()
                    .to_owned();
                let client_secret = crm_kit::stored(credentials, described, "clientSecret")?;
                let refresh_token = crm_kit::stored(credentials, described, "refreshToken")?;
                Auth::OAuth {
                    token: shared_token(&[&base, &client_id], refresh_token),
                    client_id,
                    client_secret: client_secret.clone(),
                    refresh_token: refresh_token.clone(),
                }
            }
        };
        Ok(Self {
            http,
            base,
            auth,
            policy: RetryPolicy::default(),
            pacer: Pacer::new(WINDOW, None),
            search_pacer: Pacer::new(SEARCH_WINDOW, Some(SEARCH_LIMIT + 1)),
            catalog: OnceCell::new(),
            owners: OnceCell::new(),
            writes: WRITE_CONCURRENCY,
            metrics: None,
            app: realtime::app_of(credentials),
        })
    }

    /// Applies the connector's options (the calls in flight at once).
    pub fn with_options(mut self, options: &ClientOptions) -> Self {
        self.writes = options.calls_in_flight(self.writes, WRITE_CONCURRENCY * 4);
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

    fn count(&self, method: &str, path: &str, status: CallStatus, started: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.crm_call(kit::TAG, endpoint(method, path), status, started.elapsed());
        }
    }

    /// A valid access token. `stale` is a token the API just refused: it is
    /// renewed unless another caller renewed it meanwhile.
    async fn access_token(&self, stale: Option<&str>) -> Result<String, CrmError> {
        let (client_id, client_secret, refresh_token, slot) = match &self.auth {
            Auth::Static(token) => return Ok(token.expose_secret().to_owned()),
            Auth::OAuth {
                client_id,
                client_secret,
                refresh_token,
                token,
            } => (client_id, client_secret, refresh_token, token),
        };
        // The lock is held across the refresh: callers queued behind it find
        // the new token instead of refreshing again.
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && token.usable(stale)
        {
            return Ok(token.value.clone());
        }
        let path = "/oauth/v1/token";
        let started = Instant::now();
        let response = self
            .http
            .request(Method::POST, &format!("{}{path}", self.base))?
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose_secret()),
                ("refresh_token", refresh_token.expose_secret()),
            ])
            .timeout(self.policy.request_timeout)
            .send()
            .await;
        self.count("POST", path, CallStatus::of(&response), started);
        let (status, reply): (StatusCode, TokenReply) =
            token_reply("HubSpot", "HubSpot's token endpoint", response).await?;
        match reply.access_token.filter(|_| status.is_success()) {
            Some(value) => {
                let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(1800));
                *cached = Some(AccessToken::new(
                    value.clone(),
                    String::new(),
                    lifetime,
                    TOKEN_MARGIN,
                ));
                Ok(value)
            }
            None => {
                let code = reply.status.unwrap_or_else(|| "error".into());
                let message = reply.message.unwrap_or_default();
                Err(CrmError::Unauthorized(match code.as_str() {
                    "BAD_CLIENT_ID" | "BAD_CLIENT_SECRET" => format!(
                        "HubSpot refused the OAuth app's client id or secret ({code}: {message}): copy them from the app's Auth settings and update the connector"
                    ),
                    _ => format!(
                        "HubSpot refused the refresh token ({code}: {message}): the app was uninstalled or the token revoked; install the app again and update the connector with its new refresh token"
                    ),
                }))
            }
        }
    }

    /// One call, once: paced, authorised (one token renewal on a 401),
    /// classified, rate-limit headers learned.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        search: bool,
    ) -> Result<Reply, CrmError> {
        let mut stale: Option<String> = None;
        loop {
            let token = self.access_token(stale.as_deref()).await?;
            let search_slot = if search {
                Some(self.search_pacer.acquire().await)
            } else {
                None
            };
            let slot = self.pacer.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), &format!("{}{path}", self.base))?
                .bearer_auth(&token)
                .header("accept", "application/json")
                .timeout(self.policy.request_timeout)
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let response = request.send().await;
            self.count(method.as_str(), path, CallStatus::of(&response), started);
            let response = response.map_err(|e| transport_error("HubSpot", e))?;
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
            let interval = header("x-hubspot-ratelimit-interval-milliseconds")
                .map_or(WINDOW, Duration::from_millis);
            self.pacer
                .observe(
                    header("x-hubspot-ratelimit-max").map(|v| v as u32),
                    header("x-hubspot-ratelimit-remaining").map(|v| v as u32),
                    interval / 10,
                )
                .await;
            let text = response
                .text()
                .await
                .map_err(|e| transport_error("HubSpot", e))?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(Reply { status, body });
            }
            let category = body["category"].as_str().unwrap_or_default().to_owned();
            let message = body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            match status {
                StatusCode::UNAUTHORIZED
                    if stale.is_none() && matches!(self.auth, Auth::OAuth { .. }) =>
                {
                    // Expired or revoked under us: renew once and retry.
                    stale = Some(token);
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(CrmError::Unauthorized(format!(
                        "HubSpot refused the token ({category}: {message})"
                    )));
                }
                StatusCode::FORBIDDEN if category == "MISSING_SCOPES" => {
                    let scopes: Vec<String> = body["errors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|e| {
                            e["context"]["requiredGranularScopes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                        })
                        .collect();
                    let scopes = if scopes.is_empty() {
                        SCOPES.to_owned()
                    } else {
                        scopes.join(", ")
                    };
                    return Err(CrmError::Unauthorized(scope_message(&scopes)));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let policy = body["policyName"].as_str().unwrap_or_default();
                    if policy.eq_ignore_ascii_case("DAILY") {
                        return Err(CrmError::DailyLimit(format!(
                            "HubSpot's daily API limit is spent: {message}"
                        )));
                    }
                    let asked = header("retry-after").map(Duration::from_secs);
                    let wait = match policy {
                        "SECONDLY" => SEARCH_WINDOW,
                        // A rolling window: wait it out.
                        _ => interval,
                    };
                    return Err(CrmError::RateLimited {
                        retry_after: Some(asked.unwrap_or(wait)),
                    });
                }
                s if s.is_server_error() => {
                    return Err(CrmError::Unavailable(format!(
                        "HubSpot answered {}: {message}",
                        s.as_u16()
                    )));
                }
                StatusCode::BAD_REQUEST
                | StatusCode::NOT_FOUND
                | StatusCode::CONFLICT
                | StatusCode::UNPROCESSABLE_ENTITY => {
                    return Err(wire::rejection(&category, &message));
                }
                s => {
                    return Err(CrmError::Protocol(format!(
                        "{path}: HubSpot answered {} {category}: {message}",
                        s.as_u16()
                    )));
                }
            }
        }
    }

    /// One call with retries of the retryable failures; a 429 pauses every
    /// call of this client (or its searches) for as long as it asks.
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
                "HubSpot",
                path,
                || self.send_once(method.clone(), path, query, body, search),
                |delay| async move {
                    if search {
                        self.search_pacer.pause(delay).await;
                    } else {
                        self.pacer.pause(delay).await;
                    }
                },
            )
            .await
    }

    /// The contact properties, read once per client.
    async fn catalog(&self) -> Result<Arc<Catalog>, CrmError> {
        self.catalog
            .get_or_try_init(|| async {
                let reply = self
                    .call(Method::GET, "/crm/v3/properties/contacts", &[], None, false)
                    .await?;
                let props: Vec<WireProperty> =
                    serde_json::from_value(reply.body["results"].clone())
                        .map_err(|e| CrmError::Protocol(format!("properties/contacts: {e}")))?;
                Ok(Arc::new(Catalog::new(
                    props
                        .iter()
                        .filter(|p| !p.hidden || !p.hubspot_defined)
                        .map(wire::to_crm_field)
                        .collect(),
                )))
            })
            .await
            .cloned()
    }

    /// Every owner, active and archived, read once per client.
    async fn owners(&self) -> Result<Arc<Owners>, CrmError> {
        self.owners
            .get_or_try_init(|| async {
                let mut list = Vec::new();
                for archived in [false, true] {
                    let mut after: Option<String> = None;
                    loop {
                        let mut params = vec![
                            ("limit", "100".to_owned()),
                            ("archived", archived.to_string()),
                        ];
                        if let Some(after) = &after {
                            params.push(("after", after.clone()));
                        }
                        let reply = self
                            .call(Method::GET, "/crm/v3/owners", &params, None, false)
                            .await?;
                        let owners: Vec<WireOwner> =
                            serde_json::from_value(reply.body["results"].clone())
                                .map_err(|e| CrmError::Protocol(format!("owners: {e}")))?;
                        list.extend(owners.iter().map(|o| {
                            let mut user = wire::to_crm_user(o);
                            user.active &= !archived;
                            user
                        }));
                        match next_after(&reply.body) {
                            Some(next) => after = Some(next),
                            None => break,
                        }
                    }
                }
                Ok(Arc::new(Owners::new(list)))
            })
            .await
            .cloned()
    }

    /// Owners for reading records; a token without the owners scope reads
    /// records without owners rather than not at all.
    async fn owners_for_reading(&self) -> Result<Option<Arc<Owners>>, CrmError> {
        match self.owners().await {
            Ok(o) => Ok(Some(o)),
            Err(CrmError::Unauthorized(message)) if matches!(self.auth, Auth::Static(_)) => {
                tracing::warn!(%message, "HubSpot owners unreadable: owners left out");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One search page, oldest first: contacts after `cursor`, else
    /// modified at or after `since`, else all.
    async fn search(
        &self,
        since: Option<DateTime<Utc>>,
        cursor: Option<&Cursor>,
        limit: u32,
        names: &[String],
    ) -> Result<Value, CrmError> {
        let filter_groups = match (cursor, since) {
            (Some(cursor), _) => cursor.filter_groups(),
            (None, Some(since)) => json!([{"filters": [{
                "propertyName": "lastmodifieddate",
                "operator": "GTE",
                "value": since.to_rfc3339_opts(SecondsFormat::Millis, true),
            }]}]),
            (None, None) => json!([]),
        };
        let body = json!({
            "filterGroups": filter_groups,
            // HubSpot takes one sort, and orders ties as it likes (see `Cursor`).
            "sorts": [{
                "propertyName": cursor.map_or("lastmodifieddate", Cursor::sort_property),
                "direction": "ASCENDING",
            }],
            "properties": names,
            "limit": limit,
            "after": "0",
        });
        Ok(self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/search",
                &[],
                Some(&body),
                true,
            )
            .await?
            .body)
    }

    /// Reads contacts by id (at most 100); unknown ids are absent.
    async fn read_batch(&self, ids: &[&str], names: &[String]) -> Result<Vec<Value>, CrmError> {
        let body = json!({
            "properties": names,
            "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        });
        let reply = self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts/batch/read",
                &[("archived", "false".to_owned())],
                Some(&body),
                false,
            )
            .await?;
        Ok(reply.body["results"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The lifecycle stages of these records, by id.
    async fn stages(&self, ids: &[&str]) -> Result<HashMap<String, String>, CrmError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(MAX_BATCH) {
            for object in self
                .read_batch(chunk, &[wire::LIFECYCLE.to_owned()])
                .await?
            {
                if let (Some(id), Some(stage)) = (
                    object["id"].as_str(),
                    object["properties"][wire::LIFECYCLE].as_str(),
                ) {
                    out.insert(id.to_owned(), stage.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// One batch of at most 100 writes; one result per write, in order.
    async fn write_batch(&self, writes: Vec<RecordWrite>) -> Vec<Result<WriteResult, CrmError>> {
        let prepared = match self.prepare(&writes).await {
            Ok(p) => p,
            Err(e) => return writes.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out: Vec<Option<Result<WriteResult, CrmError>>> =
            writes.iter().map(|_| None).collect();
        let mut upserts = Vec::new();
        let mut updates = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(input) if input.by_id => updates.push((i, input)),
                Ok(input) => upserts.push((i, input)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        for (group, by_id) in [(upserts, false), (updates, true)] {
            if group.is_empty() {
                continue;
            }
            let (slots, inputs): (Vec<usize>, Vec<Input>) = group.into_iter().unzip();
            let results = self.send_inputs(inputs, by_id).await;
            for (slot, result) in slots.into_iter().zip(results) {
                out[slot] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CrmError::Protocol("no result".into()))))
            .collect()
    }

    /// Sends inputs as one batch; a batch HubSpot refuses as a whole is split
    /// in two until the refused input stands alone.
    async fn send_inputs(
        &self,
        inputs: Vec<Input>,
        by_id: bool,
    ) -> Vec<Result<WriteResult, CrmError>> {
        let mut pending = vec![inputs];
        let mut done: Vec<(usize, Result<WriteResult, CrmError>)> = Vec::new();
        while let Some(batch) = pending.pop() {
            match self.send_batch(&batch, by_id).await {
                Ok(results) => done.extend(batch.iter().map(|i| i.order).zip(results)),
                Err(CrmError::Rejected { .. }) if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                Err(e) => done.extend(batch.iter().map(|i| (i.order, Err(e.clone())))),
            }
        }
        done.sort_by_key(|(order, _)| *order);
        done.into_iter().map(|(_, r)| r).collect()
    }

    /// One `batch/upsert` (by e-mail) or `batch/update` (by id) call; the
    /// results matched to the inputs (HubSpot does not keep their order).
    async fn send_batch(
        &self,
        batch: &[Input],
        by_id: bool,
    ) -> Result<Vec<Result<WriteResult, CrmError>>, CrmError> {
        let inputs: Vec<Value> = batch
            .iter()
            .map(|i| {
                if by_id {
                    json!({"id": i.key, "properties": i.properties})
                } else {
                    json!({"idProperty": "email", "id": i.key, "properties": i.properties})
                }
            })
            .collect();
        let path = if by_id {
            "/crm/v3/objects/contacts/batch/update"
        } else {
            "/crm/v3/objects/contacts/batch/upsert"
        };
        let reply = self
            .call(
                Method::POST,
                path,
                &[],
                Some(&json!({"inputs": inputs})),
                false,
            )
            .await?;
        let results = reply.body["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut by_key: HashMap<String, &Value> = HashMap::new();
        for r in &results {
            let key = if by_id {
                r["id"].as_str().map(str::to_owned)
            } else {
                r["properties"]["email"].as_str().map(wire::normalise_email)
            };
            if let Some(key) = key {
                by_key.insert(key, r);
            }
        }
        let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
        let positional = results.len() == batch.len() && by_key.len() != batch.len();
        Ok(batch
            .iter()
            .enumerate()
            .map(|(n, input)| {
                let key = if by_id {
                    input.key.clone()
                } else {
                    wire::normalise_email(&input.key)
                };
                let found = by_key
                    .get(&key)
                    .copied()
                    .or_else(|| positional.then(|| &results[n]));
                match found {
                    Some(r) => write_result(r, by_id),
                    None => Err(error_for(&errors, &input.key, reply.status)),
                }
            })
            .collect())
    }

    /// The inputs of a batch: enumerations checked, owners resolved, stages
    /// moved forward only.
    async fn prepare(
        &self,
        writes: &[RecordWrite],
    ) -> Result<Vec<Result<Input, CrmError>>, CrmError> {
        let catalog = self.catalog().await?;
        let needs_owners = writes.iter().any(|w| {
            w.owner_email.is_some() || w.values.get(wire::OWNER).is_some_and(Value::is_string)
        });
        let owners = if needs_owners {
            self.owners_for_reading().await?
        } else {
            None
        };
        let mut inputs: Vec<Result<(Input, Option<String>), CrmError>> = Vec::new();
        for (order, w) in writes.iter().enumerate() {
            inputs.push(
                wire::properties(
                    &w.values,
                    w.owner_email.as_deref(),
                    &catalog,
                    owners.as_deref(),
                )
                .and_then(|(properties, stage)| {
                    // Updates go by id: the record may have been matched by
                    // another of its e-mails, or its e-mail may change.
                    let by_id = w.id.is_some();
                    let key = if by_id {
                        w.id.clone().unwrap_or_default()
                    } else {
                        w.email.trim().to_owned()
                    };
                    if key.is_empty() {
                        return Err(CrmError::Rejected {
                            code: "MISSING_EMAIL".into(),
                            field: Some("email".into()),
                            message: "HubSpot contacts are written by e-mail: the contact has none"
                                .into(),
                        });
                    }
                    Ok((
                        Input {
                            order,
                            key,
                            by_id,
                            id: w.id.clone(),
                            properties,
                        },
                        stage,
                    ))
                }),
            );
        }
        // S10: a stage is never moved backwards; updates read the current ones.
        let ids: Vec<&str> = inputs
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .filter(|(input, stage)| stage.is_some() && input.id.is_some())
            .filter_map(|(input, _)| input.id.as_deref())
            .collect();
        let current = if ids.is_empty() {
            HashMap::new()
        } else {
            self.stages(&ids).await?
        };
        Ok(inputs
            .into_iter()
            .map(|i| {
                i.map(|(mut input, stage)| {
                    if let Some(wanted) = stage {
                        let have = input.id.as_ref().and_then(|id| current.get(id));
                        if let Some(stage) = wire::forward_stage(&wanted, have.map(String::as_str))
                        {
                            input
                                .properties
                                .insert(wire::LIFECYCLE.into(), Value::String(stage));
                        }
                    }
                    input
                })
            })
            .collect())
    }
}

/// One prepared write.
#[derive(Debug, Clone)]
struct Input {
    /// Its place in the batch.
    order: usize,
    /// The e-mail (upsert) or id (update) it is written by.
    key: String,
    /// Written by id (an update), else upserted by e-mail.
    by_id: bool,
    /// The record's id, for an update.
    id: Option<String>,
    properties: Map<String, Value>,
}

fn write_result(r: &Value, by_id: bool) -> Result<WriteResult, CrmError> {
    let id = r["id"]
        .as_str()
        .ok_or_else(|| CrmError::Protocol("a HubSpot write result without id".into()))?;
    let modified_at = r["updatedAt"]
        .as_str()
        .or(r["properties"]["lastmodifieddate"].as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| CrmError::Protocol(format!("HubSpot contact {id}: no updatedAt")))?;
    Ok(WriteResult {
        id: id.to_owned(),
        modified_at,
        created: !by_id && r["new"].as_bool() == Some(true),
    })
}

/// The error of an input HubSpot returned no result for: the error whose
/// context names it, else the only error, else "not found".
fn error_for(errors: &[Value], key: &str, status: StatusCode) -> CrmError {
    let names = |e: &Value| {
        e["context"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
            .filter_map(Value::as_array)
            .flatten()
            .any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(key)))
    };
    let error = errors
        .iter()
        .find(|e| names(e))
        .or_else(|| (errors.len() == 1).then(|| &errors[0]));
    match error {
        Some(e) => wire::rejection(
            e["category"].as_str().unwrap_or_default(),
            e["message"].as_str().unwrap_or("refused"),
        ),
        None => CrmError::Rejected {
            code: "NOT_FOUND_IN_CRM".into(),
            field: None,
            message: format!(
                "HubSpot answered {} without a result for contact {key}",
                status.as_u16()
            ),
        },
    }
}

/// The `after` of a reply's next page.
fn next_after(body: &Value) -> Option<String> {
    body["paging"]["next"]["after"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            body["paging"]["next"]["after"]
                .as_u64()
                .map(|n| n.to_string())
        })
        .filter(|a| !a.is_empty())
}

/// Where the next page of a listing starts: after this record's key
/// (modification time, then id). Every page is a new search from there, so
/// records written meanwhile (moved to the end) never shift a page, and no
/// search pages past the 10,000-result cap.
///
/// HubSpot sorts by one property and documents no order among records that
/// tie on it, so a page may hold some of a millisecond's records and not
/// others. A page therefore ends before its last millisecond (the next one
/// starts there), and a millisecond that fills a page on its own is read
/// apart, sorted by id (`ties`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    at: DateTime<Utc>,
    id: u64,
    /// Reading the records of `at` alone, by id.
    ties: bool,
}

impl Cursor {
    fn parse(c: &str) -> Result<Self, CrmError> {
        let bad = || CrmError::Protocol(format!("bad HubSpot cursor {c}"));
        let (key, ties) = match c.strip_suffix(":ties") {
            Some(key) => (key, true),
            None => (c, false),
        };
        let (millis, id) = key.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            at: millis
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(bad)?,
            id: id.parse().map_err(|_| bad())?,
            ties,
        })
    }

    /// The search filters of what comes after the key: the same time and a
    /// greater id, or (unless reading one millisecond's ties) a later time
    /// (HubSpot times are to the millisecond).
    fn filter_groups(&self) -> Value {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let same_time = json!({"filters": [
            {"propertyName": "lastmodifieddate", "operator": "EQ", "value": time(self.at)},
            {"propertyName": "hs_object_id", "operator": "GTE", "value": (self.id + 1).to_string()},
        ]});
        if self.ties {
            return json!([same_time]);
        }
        json!([
            same_time,
            {"filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE",
                 "value": time(self.at + chrono::Duration::milliseconds(1))},
            ]},
        ])
    }

    /// The property results are sorted by: the modification time, or the id
    /// among one millisecond's ties.
    fn sort_property(&self) -> &'static str {
        if self.ties {
            "hs_object_id"
        } else {
            "lastmodifieddate"
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.at.timestamp_millis(), self.id)?;
        if self.ties {
            f.write_str(":ties")?;
        }
        Ok(())
    }
}

/// A record's id as HubSpot's number.
fn numeric_id(record: &CrmRecord) -> Result<u64, CrmError> {
    record.id.parse().map_err(|_| {
        CrmError::Protocol(format!("HubSpot contact id {} is not a number", record.id))
    })
}

#[async_trait::async_trait]
impl CrmClient for HubspotClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Hubspot
    }

    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let fail = |message: String| Ok(ConnectionCheck { ok: false, message });
        let scope = |message: &str| message.contains("lacks the scope");
        // A refused token is `Err(Unauthorized)`: the caller marks the
        // connector NEEDS_REAUTH; a missing scope is said in words.
        let probe = self
            .call(
                Method::GET,
                "/crm/v3/objects/contacts",
                &[("limit", "1".to_owned())],
                None,
                false,
            )
            .await;
        match probe {
            Ok(_) => {}
            Err(CrmError::Unauthorized(m)) if scope(&m) => return fail(m),
            Err(CrmError::Unavailable(message)) => {
                return fail(format!("cannot reach HubSpot at {}: {message}", self.base));
            }
            Err(e) => return Err(e),
        }
        // The write scope: an empty batch update is refused for its emptiness
        // (400) by a token that may write, for the scope (403) by one that may not.
        match self
            .send_once(
                Method::POST,
                "/crm/v3/objects/contacts/batch/update",
                &[],
                Some(&json!({"inputs": []})),
                false,
            )
            .await
        {
            Err(CrmError::Unauthorized(m)) if scope(&m) => return fail(m),
            Err(CrmError::Unauthorized(m)) => return Err(CrmError::Unauthorized(m)),
            _ => {}
        }
        let fields = match self.catalog().await {
            Ok(c) => c.field_list.clone(),
            Err(CrmError::Unauthorized(m)) if scope(&m) => return fail(m),
            Err(e) => return Err(e),
        };
        let help = FieldsHelp {
            records: "HubSpot contacts",
            settings: kit::Kit.describe().fields_settings,
        };
        if let Some(problem) = expect
            .filter_problem(&fields, help)
            .or_else(|| expect.link_problem(&fields, help))
        {
            return fail(format!("connected to HubSpot, but {problem}"));
        }
        let mut message = "connected to HubSpot: contacts are readable and writable".to_owned();
        if let Some(problem) = self.webhooks_problem().await {
            message = format!("{message}; {problem}");
        }
        Ok(ConnectionCheck { ok: true, message })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        if module != CrmModule::Contacts {
            return Err(not_a_module(module));
        }
        Ok(self.catalog().await?.field_list.clone())
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.owners().await?.list.clone())
    }

    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        if query.module != CrmModule::Contacts {
            return Err(not_a_module(query.module));
        }
        let catalog = self.catalog().await?;
        let owners = self.owners_for_reading().await?;
        let names = catalog.read_names(MAX_PROPERTIES);
        let limit = query.page_size.clamp(1, MAX_SEARCH_PAGE);
        let mut cursor = query.cursor.as_deref().map(Cursor::parse).transpose()?;
        loop {
            let reply = self
                .search(query.since, cursor.as_ref(), limit, &names)
                .await?;
            let mut records = reply["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| wire::to_record(o, &catalog, owners.as_deref()))
                .collect::<Result<Vec<_>, _>>()?;
            // Ties in time by id, as the engine's order asks (ids are numbers).
            records.sort_by(|a, b| {
                (a.modified_at, a.id.len(), &a.id).cmp(&(b.modified_at, b.id.len(), &b.id))
            });
            let more = next_after(&reply).is_some();
            let next = match (cursor.as_ref().filter(|c| c.ties), records.last()) {
                // One millisecond's ties, by id: when they are all read, the
                // listing goes on after the last of them.
                (Some(c), last) => Some(Cursor {
                    at: c.at,
                    id: last.map_or(Ok(c.id), numeric_id)?,
                    ties: more,
                }),
                (None, _) if !more => None,
                (None, None) => {
                    return Err(CrmError::Protocol(
                        "HubSpot said more contacts follow an empty page".into(),
                    ));
                }
                (None, Some(last)) => {
                    let at = last.modified_at;
                    if records[0].modified_at == at {
                        // The page is one millisecond, of which HubSpot may
                        // have left out any: read it by id instead.
                        let from = cursor.as_ref().filter(|c| c.at == at).map_or(0, |c| c.id);
                        cursor = Some(Cursor {
                            at,
                            id: from,
                            ties: true,
                        });
                        continue;
                    }
                    // The page may end inside its last millisecond: the next
                    // page starts again at it.
                    records.retain(|r| r.modified_at < at);
                    let last = records.last().expect("the page has an earlier millisecond");
                    Some(Cursor {
                        at: last.modified_at,
                        id: numeric_id(last)?,
                        ties: false,
                    })
                }
            };
            return Ok(RecordPage {
                records,
                next_cursor: next.map(|c| c.to_string()),
            });
        }
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        if module != CrmModule::Contacts {
            return Err(not_a_module(module));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.catalog().await?;
        let owners = self.owners_for_reading().await?;
        let names = catalog.read_names(MAX_PROPERTIES);
        let mut unique: Vec<&str> = ids.iter().map(|id| id.trim()).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut out = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_BATCH) {
            for object in self.read_batch(chunk, &names).await? {
                out.push(wire::to_record(&object, &catalog, owners.as_deref())?);
            }
        }
        Ok(out)
    }

    fn writes_in_flight(&self) -> usize {
        MAX_BATCH * self.writes
    }

    /// Archived contacts (`GET /crm/v3/objects/contacts?archived=true`, by id,
    /// paged by `after`), `archivedAt` the deletion time. The listing has no
    /// time filter: `since` is applied here, and a contact without an
    /// `archivedAt` is kept (it cannot be placed before `since`).
    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        if module != CrmModule::Contacts {
            return Err(not_a_module(module));
        }
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut params = vec![
                ("archived", "true".to_owned()),
                ("limit", MAX_LIST_PAGE.to_string()),
                // Only the id matters: the fewest properties HubSpot sends.
                ("properties", "hs_object_id".to_owned()),
            ];
            if let Some(after) = &after {
                params.push(("after", after.clone()));
            }
            let reply = self
                .call(
                    Method::GET,
                    "/crm/v3/objects/contacts",
                    &params,
                    None,
                    false,
                )
                .await?;
            let results = reply.body["results"].as_array().ok_or_else(|| {
                CrmError::Protocol("HubSpot's archived contacts reply has no results".into())
            })?;
            for object in results {
                let record = wire::archived_contact(object)?;
                if since.is_none_or(|s| record.deleted_at.is_none_or(|at| at >= s)) {
                    out.push(record);
                }
            }
            match next_after(&reply.body) {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                Some(_) => {
                    return Err(CrmError::Protocol(
                        "HubSpot gave the same paging cursor twice for archived contacts".into(),
                    ));
                }
                None => return Ok(out),
            }
        }
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        if module != CrmModule::Contacts {
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
            .map(|batch| self.write_batch(batch))
            .buffered(self.writes)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    fn subscriptions(&self) -> Option<&dyn crate::crm::realtime::Subscriptions> {
        Some(self)
    }
}

fn not_a_module(module: CrmModule) -> CrmError {
    CrmError::Protocol(format!("HubSpot has contacts, not {module}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn a_cursor_round_trips_and_asks_for_what_follows_its_key() {
        let c = Cursor {
            at: at(1_700_000_000_123),
            id: 42,
            ties: false,
        };
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        assert!(Cursor::parse("x").is_err());
        let groups = c.filter_groups();
        assert_eq!(groups[0]["filters"][1]["value"], json!("43"));
        assert_eq!(
            groups[1]["filters"][0]["value"],
            json!("2023-11-14T22:13:20.124Z")
        );
        let ties = Cursor { ties: true, ..c };
        assert_eq!(Cursor::parse(&ties.to_string()).unwrap(), ties);
        assert_eq!(
            ties.filter_groups().as_array().unwrap().len(),
            1,
            "that millisecond only"
        );
        assert_eq!(ties.sort_property(), "hs_object_id");
    }
}
