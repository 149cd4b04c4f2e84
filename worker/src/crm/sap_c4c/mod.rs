//! The SAP Sales Cloud (C4C) client: leads (both ways), contacts and
//! individual customers (read) on the OData v2 service `c4codataapi`, as a
//! technical user (basic authentication).
//!
//! - CSRF: writes carry a token fetched with `x-csrf-token: fetch` on a GET
//!   of the service root, and the `SAP_SESSIONID_*` cookie that GET opened
//!   (kept by hand: the HTTP client keeps no cookies). A 403 "CSRF token
//!   validation failed" fetches a new token once and sends again.
//! - Fields: `$metadata` (EDMX) gives the properties, `sap:creatable` and
//!   `sap:updatable`, and the code list set of each code property
//!   (`c4c:value-help`), whose entries are read as the options. Codes are
//!   checked before anything is sent. Extension fields end in `_KUT`; they
//!   are labelled without it.
//! - Listing: `$filter` on `EntityLastChangedOn` (to the millisecond),
//!   `$orderby=EntityLastChangedOn,ObjectID`, `$top` at most the server page
//!   (1,000); a page that is full or names `__next` goes on after its last
//!   record's key, so a listing resumes whatever happened meanwhile.
//!   Contacts (`ContactCollection`) and individual customers
//!   (`IndividualCustomerCollection`, the `Customers` module) read under
//!   the lead's property names (`Email` as `ContactEMail`, `OwnerID` as
//!   `OwnerPartyID`, ...), so one mapping serves every module.
//! - Owners (S9): C4C's users are its employees (`EmployeeCollection`, read
//!   once per client); an owner property holds the employee's business
//!   partner id, read as the employee's e-mail and written from it (an
//!   owner who is no active employee is left out: C4C keeps its own).
//! - Writes: `$batch`, one changeset per record (a changeset is atomic: a
//!   refused record rolls back alone), 1,000 records a call. A lead gets a
//!   `Name` from its contact's names and the connector's default company
//!   when it has none (refused naming `Company` without a call when there
//!   is no default). Updates carry the record's `If-Match` ETag: the one
//!   the client last read or wrote (a listing's write-backs read nothing
//!   again), else read just before; a stale one (412) is read again and
//!   sent once more. A batch
//!   whose reply was lost is followed by a look-up of its creates by e-mail,
//!   and only those not found are sent again.
//! - Deletions: no feed; FULL runs reconcile (`Deletions::Reconcile`).
//! - Conversion: C4C's OData API converts no leads; a sales rep qualifies
//!   (converts) the lead in C4C, and the next sync reads the conversion
//!   (a lead naming its `ContactID` is converted).

pub mod kit;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, OnceCell};

use self::wire::{Catalog, OpReply, Operation};
use crate::credentials::Credentials;
use crate::crm::RetryPolicy;
use crate::crm::kit::{self as crm_kit, CrmKit as _};
use crate::crm::owners::{Owners, normalise_email};
use crate::crm::retry::transport_error;
use crate::crm::{
    ClientOptions, ConnectionCheck, Conversion, CrmClient, CrmError, CrmField, CrmRecord, CrmUser,
    Expectations, FieldsHelp, ListQuery, RecordPage, RecordWrite, WriteResult,
};
use crate::egress::HttpClient;
use crate::metrics::{CallStatus, Metrics};

/// Entries of a server page (C4C's default and the most `$top` asks for).
pub const PAGE_SIZE: u32 = 1_000;
/// Records (changesets of one operation each) per `$batch` call: the most
/// operations a batch holds (the sandbox's `batch_max`; SAP publishes no
/// figure, see sandbox/docs/sap_c4c.md).
pub const MAX_BATCH: usize = 1_000;
/// `$batch` calls in flight at once when the connector does not say.
const WRITE_CONCURRENCY: usize = 2;
/// Most `$batch` calls in flight a connector may ask for.
const MAX_WRITE_CONCURRENCY: usize = 8;
/// Ids or e-mails per `$filter` (the filter travels in the URL).
const FILTER_CHUNK: usize = 40;

/// A CSRF session: the token and the cookie it belongs to.
#[derive(Clone)]
struct Session {
    token: String,
    cookie: String,
}

/// Both are the session's secrets: never printed.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { token: <redacted>, cookie: <redacted> }")
    }
}

/// What a call sends.
enum Payload<'a> {
    None,
    Json(&'a Value),
    /// A `$batch` body and its boundary.
    Batch(&'a str, String),
}

/// A successful reply.
struct Reply {
    etag: Option<String>,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Result<Value, CrmError> {
        serde_json::from_str(&self.text)
            .map_err(|e| CrmError::Protocol(format!("SAP C4C answered no JSON: {e}")))
    }
}

/// A C4C tenant, as its technical user.
#[derive(Debug)]
pub struct SapC4cClient {
    http: HttpClient,
    /// The service root, without a trailing slash.
    root: String,
    username: String,
    password: SecretString,
    session: Mutex<Option<Session>>,
    policy: RetryPolicy,
    writes: usize,
    default_company: Option<String>,
    leads: OnceCell<Arc<Catalog>>,
    contacts: OnceCell<Arc<Catalog>>,
    customers: OnceCell<Arc<Catalog>>,
    owners: OnceCell<Arc<Owners>>,
    /// The last ETag read or written of each entity, so that an update of a
    /// record just listed sends its `If-Match` without reading it again (a
    /// stale one is 412: read again, sent once more).
    etags: std::sync::Mutex<HashMap<String, String>>,
    metrics: Option<Metrics>,
}

/// Most ETags a client keeps; past it, it forgets them all and reads again.
const MAX_ETAGS: usize = 250_000;

impl SapC4cClient {
    /// A client for the credentials' user on the tenant at `base_url` (its
    /// host, or the service root itself).
    pub fn new(
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
    ) -> Result<Self, CrmError> {
        let described = kit::Kit.describe();
        let username = crm_kit::stored(credentials, described, "username")?
            .expose_secret()
            .trim()
            .to_owned();
        let password = crm_kit::stored(credentials, described, "password")?.clone();
        let base = base_url
            .map(|b| b.trim().trim_end_matches('/'))
            .filter(|b| !b.is_empty())
            .ok_or_else(|| CrmError::Rejected {
                code: "BASE_URL_REQUIRED".into(),
                field: Some("baseUrl".into()),
                message: kit::BASE_URL_NEEDED.into(),
            })?;
        let root = if base.ends_with(wire::SERVICE_PATH) {
            base.to_owned()
        } else {
            format!("{base}{}", wire::SERVICE_PATH)
        };
        http.egress().check_url(&root)?;
        Ok(Self {
            http,
            root,
            username,
            password,
            session: Mutex::new(None),
            policy: RetryPolicy::default(),
            writes: WRITE_CONCURRENCY,
            default_company: None,
            leads: OnceCell::new(),
            contacts: OnceCell::new(),
            customers: OnceCell::new(),
            owners: OnceCell::new(),
            etags: std::sync::Mutex::new(HashMap::new()),
            metrics: None,
        })
    }

    /// Applies the connector's options: `$batch` calls in flight, and the
    /// company of leads created without one.
    pub fn with_options(mut self, options: &ClientOptions) -> Self {
        self.writes = options.calls_in_flight(self.writes, MAX_WRITE_CONCURRENCY);
        self.default_company = options.company();
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

    /// Counts a call under its resource: `LeadCollection('…')` as
    /// `LeadCollection({id})` (the other paths are the client's own names:
    /// sets, code lists, `$batch`, `$metadata`).
    fn count(&self, method: &str, path: &str, status: CallStatus, started: Instant) {
        if let Some(metrics) = &self.metrics {
            let resource = match path.split_once('(') {
                Some((set, _)) => format!("{set}({{id}})"),
                None => path.to_owned(),
            };
            metrics.crm_call(
                kit::TAG,
                format!("{method} {}/{resource}", wire::SERVICE_PATH),
                status,
                started.elapsed(),
            );
        }
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, CrmError> {
        Ok(self
            .http
            .request(method, &format!("{}/{path}", self.root))?
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .timeout(self.policy.request_timeout))
    }

    /// A CSRF token and its session cookie; `stale` is a token C4C just
    /// refused: a new one is fetched unless another call fetched one meanwhile.
    async fn session(&self, stale: Option<&str>) -> Result<Session, CrmError> {
        let mut cached = self.session.lock().await;
        if let Some(session) = cached.as_ref()
            && stale != Some(session.token.as_str())
        {
            return Ok(session.clone());
        }
        let started = Instant::now();
        let response = self
            .request(Method::GET, "")?
            .header("x-csrf-token", "fetch")
            .header("accept", "application/json")
            .query(&[("$format", "json")])
            .send()
            .await;
        self.count("GET", "", CallStatus::of(&response), started);
        let response = response.map_err(|e| transport_error("SAP C4C", e))?;
        let status = response.status();
        let token = response
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .map(str::trim)
            .filter(|c| c.contains('='))
            .collect::<Vec<_>>()
            .join("; ");
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| transport_error("SAP C4C", e))?;
        if !status.is_success() {
            return Err(wire::classify(status.as_u16(), &text, retry_after));
        }
        let token = token.filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("required"));
        let Some(token) = token else {
            return Err(CrmError::Protocol(
                "SAP C4C answered a CSRF token fetch without a token".into(),
            ));
        };
        let session = Session { token, cookie };
        *cached = Some(session.clone());
        Ok(session)
    }

    /// One call, once: authorised (writes with the CSRF token and its
    /// cookie, fetched again once when C4C refuses it), classified.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        payload: &Payload<'_>,
        if_match: Option<&str>,
    ) -> Result<Reply, CrmError> {
        let write = method != Method::GET;
        let mut stale: Option<String> = None;
        loop {
            let session = if write {
                Some(self.session(stale.as_deref()).await?)
            } else {
                None
            };
            let mut request = self
                .request(method.clone(), path)?
                .header("accept", "application/json")
                .query(query);
            if let Some(session) = &session {
                request = request.header("x-csrf-token", &session.token);
                if !session.cookie.is_empty() {
                    request = request.header("cookie", &session.cookie);
                }
            }
            if let Some(etag) = if_match {
                request = request.header("if-match", etag);
            }
            request = match payload {
                Payload::None => request,
                Payload::Json(body) => request.json(body),
                Payload::Batch(boundary, body) => request
                    .header(
                        "content-type",
                        format!("multipart/mixed; boundary={boundary}"),
                    )
                    .body(body.clone()),
            };
            let started = Instant::now();
            let response = request.send().await;
            self.count(method.as_str(), path, CallStatus::of(&response), started);
            let response = response.map_err(|e| transport_error("SAP C4C", e))?;
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let etag = header("etag");
            let content_type = header("content-type").unwrap_or_default();
            let csrf_required =
                header("x-csrf-token").is_some_and(|t| t.eq_ignore_ascii_case("required"));
            let retry_after = retry_after(response.headers());
            let text = response
                .text()
                .await
                .map_err(|e| transport_error("SAP C4C", e))?;
            if status.is_success() {
                return Ok(Reply {
                    etag,
                    content_type,
                    text,
                });
            }
            let csrf_refused = status == StatusCode::FORBIDDEN
                && (csrf_required || text.contains("CSRF token validation failed"));
            match (csrf_refused, session) {
                (true, Some(session)) if stale.is_none() => stale = Some(session.token),
                (true, _) => {
                    return Err(CrmError::Unauthorized(
                        "SAP C4C refused a freshly fetched CSRF token: check that the technical user may write leads".into(),
                    ));
                }
                _ => return Err(wire::classify(status.as_u16(), &text, retry_after)),
            }
        }
    }

    /// One call with retries of the retryable failures.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        payload: &Payload<'_>,
        if_match: Option<&str>,
    ) -> Result<Reply, CrmError> {
        self.policy
            .run(
                "SAP C4C",
                path,
                || self.send_once(method.clone(), path, query, payload, if_match),
                tokio::time::sleep,
            )
            .await
    }

    /// A JSON read of `path` with `query`.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CrmError> {
        let mut query = query.to_vec();
        query.push(("$format", "json".to_owned()));
        self.call(Method::GET, path, &query, &Payload::None, None)
            .await?
            .json()
    }

    /// The catalog of a module, read once per client: `$metadata`, then
    /// the code list sets its code properties name.
    async fn catalog(&self, module: CrmModule) -> Result<Arc<Catalog>, CrmError> {
        wire::entity_set(module)?;
        let cell = match module {
            CrmModule::Contacts => &self.contacts,
            CrmModule::Customers => &self.customers,
            _ => &self.leads,
        };
        cell.get_or_try_init(|| async {
            let reply = self
                .policy
                .run(
                    "SAP C4C",
                    "$metadata",
                    || async {
                        let started = Instant::now();
                        let response = self
                            .request(Method::GET, "$metadata")?
                            .header("accept", "application/xml")
                            .send()
                            .await;
                        self.count("GET", "$metadata", CallStatus::of(&response), started);
                        let response = response.map_err(|e| transport_error("SAP C4C", e))?;
                        let status = response.status();
                        let after = retry_after(response.headers());
                        let text = response
                            .text()
                            .await
                            .map_err(|e| transport_error("SAP C4C", e))?;
                        if status.is_success() {
                            Ok(text)
                        } else {
                            Err(wire::classify(status.as_u16(), &text, after))
                        }
                    },
                    tokio::time::sleep,
                )
                .await?;
            let props = wire::properties(&reply, module)?;
            let mut lists = BTreeMap::new();
            for set in props.iter().filter_map(|p| p.value_help.clone()) {
                if lists.contains_key(&set) {
                    continue;
                }
                let body = self.get(&set, &[]).await?;
                lists.insert(set, wire::code_list(&body));
            }
            Ok(Arc::new(Catalog::new(module, &props, &lists)))
        })
        .await
        .cloned()
    }

    /// Every employee, active or locked, read once per client: C4C's users,
    /// who own leads and customers by their business partner id.
    async fn owners(&self) -> Result<Arc<Owners>, CrmError> {
        self.owners
            .get_or_try_init(|| async {
                let rows = self
                    .query(
                        wire::EMPLOYEES,
                        &[("$select", wire::EMPLOYEE_SELECT.to_owned())],
                    )
                    .await?;
                Ok(Arc::new(Owners::new(
                    rows.iter().filter_map(wire::to_crm_user).collect(),
                )))
            })
            .await
            .cloned()
    }

    /// The owners, when records of `catalog`'s module name one.
    async fn owners_of(&self, catalog: &Catalog) -> Result<Option<Arc<Owners>>, CrmError> {
        if catalog.fields.contains_key(wire::OWNER) {
            Ok(Some(self.owners().await?))
        } else {
            Ok(None)
        }
    }

    /// Every entity of `set` matching `filter`, page after page.
    async fn query_all(&self, set: &str, filter: &str) -> Result<Vec<Value>, CrmError> {
        self.query(set, &[("$filter", filter.to_owned())]).await
    }

    /// Every entity of `set` the query `params` select, page after page.
    async fn query(&self, set: &str, params: &[(&str, String)]) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        loop {
            let mut query = params.to_vec();
            query.push(("$orderby", "ObjectID".to_owned()));
            query.push(("$skip", out.len().to_string()));
            let body = self.get(set, &query).await?;
            let page = wire::results(&body);
            out.extend(page.iter().cloned());
            if page.is_empty() || body["d"]["__next"].as_str().is_none() {
                return Ok(out);
            }
        }
    }

    /// Entities by ObjectID, a filter of `or`s per chunk.
    async fn by_ids(&self, module: CrmModule, ids: &[&str]) -> Result<Vec<Value>, CrmError> {
        let set = wire::entity_set(module)?;
        let mut out = Vec::new();
        for chunk in ids.chunks(FILTER_CHUNK) {
            let filter = chunk
                .iter()
                .map(|id| format!("ObjectID eq {}", wire::filter_string(id)))
                .collect::<Vec<_>>()
                .join(" or ");
            out.extend(self.query_all(set, &filter).await?);
        }
        Ok(out)
    }

    /// The newest lead of each e-mail: its id and modification time.
    async fn find_by_email(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, (String, DateTime<Utc>)>, CrmError> {
        let mut found: HashMap<String, (String, DateTime<Utc>)> = HashMap::new();
        for chunk in emails.chunks(FILTER_CHUNK) {
            let filter = chunk
                .iter()
                .map(|e| format!("{} eq {}", wire::LEAD_EMAIL, wire::filter_string(e)))
                .collect::<Vec<_>>()
                .join(" or ");
            for row in self.query_all("LeadCollection", &filter).await? {
                let (Some(id), Some(email), Some(at)) = (
                    row["ObjectID"].as_str(),
                    row[wire::LEAD_EMAIL].as_str(),
                    row[wire::MODIFIED].as_str().and_then(wire::parse_time),
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

    /// Keeps the ETags of entities read or written.
    fn remember<'a>(&self, etags: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut known = self.etags.lock().unwrap_or_else(|e| e.into_inner());
        for (id, etag) in etags {
            if known.len() >= MAX_ETAGS {
                known.clear();
            }
            known.insert(id.to_owned(), etag.to_owned());
        }
    }

    /// Keeps the ETags of the entities of a reply.
    fn remember_rows(&self, rows: &[Value]) {
        self.remember(
            rows.iter()
                .filter_map(|r| Some((r["ObjectID"].as_str()?, r["__metadata"]["etag"].as_str()?))),
        );
    }

    /// Entities as records. A lead whose company is the connector's default
    /// company reads as one without a company: the default stands in for a
    /// value C4C requires, and is not the person's company.
    fn records(
        &self,
        rows: &[Value],
        module: CrmModule,
        catalog: &Catalog,
        owners: Option<&Owners>,
    ) -> Result<Vec<CrmRecord>, CrmError> {
        self.remember_rows(rows);
        rows.iter()
            .map(|r| {
                let mut record = wire::to_record(r, module, catalog, owners)?;
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

    /// The properties of one write: values checked, a lead's e-mail, name
    /// and company filled in.
    fn prepare(
        &self,
        module: CrmModule,
        catalog: &Catalog,
        owners: Option<&Owners>,
        write: &RecordWrite,
    ) -> Result<Map<String, Value>, CrmError> {
        let creating = write.id.is_none();
        let mut fields = wire::record_fields(
            &write.values,
            write.owner_email.as_deref(),
            creating,
            catalog,
            owners,
        )?;
        if module != CrmModule::Leads {
            return Ok(fields);
        }
        if creating && !fields.contains_key(wire::LEAD_EMAIL) && !write.email.trim().is_empty() {
            fields.insert(
                wire::LEAD_EMAIL.into(),
                Value::String(write.email.trim().to_owned()),
            );
        }
        // C4C's lead name: the contact's names.
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (first, last) = (text("ContactFirstName"), text("ContactLastName"));
        // An update names the lead anew only when it carries both names.
        let whole = creating || (first.is_some() && last.is_some());
        let name = [first, last]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let named = text(wire::NAME).is_some();
        if !named && whole && !name.is_empty() {
            fields.insert(wire::NAME.into(), Value::String(name));
        } else if !named && creating {
            return Err(CrmError::Rejected {
                code: "CRM_VALIDATION".into(),
                field: Some(wire::NAME.into()),
                message: "SAP C4C requires a Name on every lead: give the contact a first or last name (the lead is named after them)".into(),
            });
        }
        let missing = match fields.get(wire::COMPANY) {
            None => creating,
            Some(v) => v.as_str().is_none_or(|s| s.trim().is_empty()),
        };
        if missing {
            match &self.default_company {
                Some(company) => {
                    fields.insert(wire::COMPANY.into(), Value::String(company.clone()));
                }
                None => {
                    return Err(CrmError::Rejected {
                        code: "CRM_VALIDATION".into(),
                        field: Some(wire::COMPANY.into()),
                        message: "SAP C4C requires a Company (or an account) on every lead: map the platform's company to Company, give the contact one, or set the connector's default company (settings defaultCompany)".into(),
                    });
                }
            }
        }
        Ok(fields)
    }

    /// One `$batch` of at most [`MAX_BATCH`] writes; one result per write, in order.
    async fn write_batch(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        let catalog = match self.catalog(module).await {
            Ok(c) => c,
            Err(e) => return writes.iter().map(|_| Err(e.clone())).collect(),
        };
        let needs_owners = writes.iter().any(|w| {
            w.owner_email.is_some() || w.values.get(wire::OWNER).is_some_and(Value::is_string)
        });
        let owners = match needs_owners {
            true => match self.owners().await {
                Ok(o) => Some(o),
                Err(e) => return writes.iter().map(|_| Err(e.clone())).collect(),
            },
            false => None,
        };
        let mut out: Vec<Option<Result<WriteResult, CrmError>>> =
            writes.iter().map(|_| None).collect();
        let mut inputs = Vec::new();
        for (order, w) in writes.iter().enumerate() {
            match self.prepare(module, &catalog, owners.as_deref(), w) {
                Ok(fields) => inputs.push(Input {
                    order,
                    id: w.id.as_ref().map(|id| id.trim().to_owned()),
                    email: w.email.trim().to_owned(),
                    fields,
                    etag: None,
                }),
                Err(e) => out[order] = Some(Err(e)),
            }
        }
        // Updates carry the record's current ETag.
        if let Err(e) = self.read_etags(module, &mut inputs, &mut out).await {
            for i in inputs.drain(..) {
                out[i.order] = Some(Err(e.clone()));
            }
        }
        for (order, result) in self.send_batch(module, inputs).await {
            out[order] = Some(result);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CrmError::Protocol("no result".into()))))
            .collect()
    }

    /// Fills in the ETags of the updates; an update of a record C4C does
    /// not know is settled as refused.
    async fn read_etags(
        &self,
        module: CrmModule,
        inputs: &mut Vec<Input>,
        out: &mut [Option<Result<WriteResult, CrmError>>],
    ) -> Result<(), CrmError> {
        let ids: Vec<&str> = inputs.iter().filter_map(|i| i.id.as_deref()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        if let Some(bad) = ids.iter().find(|id| !wire::is_object_id(id)) {
            return Err(CrmError::Protocol(format!("not a SAP C4C ObjectID: {bad}")));
        }
        // The ETags this client read last (a listing's write-backs need no
        // second read); the others are read now. An entity without an ETag
        // is updated without If-Match.
        let mut etags: HashMap<String, Option<String>> = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self.etags.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                match known.get(id) {
                    Some(etag) => {
                        etags.insert(id.to_owned(), Some(etag.clone()));
                    }
                    None => unknown.push(id),
                }
            }
        }
        if !unknown.is_empty() {
            etags.extend(self.by_ids(module, &unknown).await?.iter().filter_map(|r| {
                Some((
                    r["ObjectID"].as_str()?.to_owned(),
                    r["__metadata"]["etag"].as_str().map(str::to_owned),
                ))
            }));
        }
        inputs.retain_mut(|i| match &i.id {
            None => true,
            Some(id) => match etags.get(id) {
                Some(etag) => {
                    i.etag.clone_from(etag);
                    true
                }
                None => {
                    out[i.order] = Some(Err(CrmError::Rejected {
                        code: "NOT_FOUND_IN_CRM".into(),
                        field: None,
                        message: format!("SAP C4C has no record {id} (deleted?)"),
                    }));
                    false
                }
            },
        });
        Ok(())
    }

    /// Sends the inputs in one `$batch`, retrying what can be retried: a
    /// batch whose reply was lost looks up its creates by e-mail first and
    /// sends only those not found. A stale ETag is read again and the
    /// update sent once more, alone.
    async fn send_batch(
        &self,
        module: CrmModule,
        inputs: Vec<Input>,
    ) -> Vec<(usize, Result<WriteResult, CrmError>)> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let Ok(set) = wire::entity_set(module) else {
            return Vec::new();
        };
        let pending = Mutex::new((inputs, Vec::new()));
        let attempts = AtomicU32::new(0);
        let (pending, attempts) = (&pending, &attempts);
        let sent = self
            .policy
            .run(
                "SAP C4C",
                "$batch",
                move || async move {
                    let mut state = pending.lock().await;
                    if attempts.fetch_add(1, Ordering::Relaxed) > 0 {
                        let (inputs, done) = &mut *state;
                        self.settle_found(inputs, done).await?;
                    }
                    let (inputs, _) = &*state;
                    if inputs.is_empty() {
                        return Ok(None);
                    }
                    let operations: Vec<Operation> =
                        inputs.iter().map(|i| i.operation(set)).collect();
                    let boundary = format!("batch_{}", ulid::Ulid::generate());
                    let body = wire::batch_body(&boundary, &operations);
                    let reply = self
                        .send_once(
                            Method::POST,
                            "$batch",
                            &[],
                            &Payload::Batch(&boundary, body),
                            None,
                        )
                        .await?;
                    wire::batch_replies(&reply.content_type, &reply.text).map(Some)
                },
                tokio::time::sleep,
            )
            .await;
        let (inputs, mut done) = std::mem::take(&mut *pending.lock().await);
        match sent {
            Ok(Some(replies)) if replies.len() == inputs.len() => {
                for (input, reply) in inputs.iter().zip(replies) {
                    let result = match reply.status {
                        412 if input.id.is_some() => self.update_again(module, input).await,
                        _ => op_result(input, &reply),
                    };
                    if let (Ok(written), Some(etag), true) =
                        (&result, &reply.etag, (200..300).contains(&reply.status))
                    {
                        self.remember([(written.id.as_str(), etag.as_str())]);
                    }
                    done.push((input.order, result));
                }
            }
            Ok(Some(replies)) => {
                let e = CrmError::Protocol(format!(
                    "SAP C4C answered {} responses for {} changesets",
                    replies.len(),
                    inputs.len()
                ));
                done.extend(inputs.iter().map(|i| (i.order, Err(e.clone()))));
            }
            Ok(None) => {}
            Err(e) => done.extend(inputs.iter().map(|i| (i.order, Err(e.clone())))),
        }
        done
    }

    /// Moves the creates whose lead exists already (by e-mail) to `done`.
    async fn settle_found(
        &self,
        inputs: &mut Vec<Input>,
        done: &mut Vec<(usize, Result<WriteResult, CrmError>)>,
    ) -> Result<(), CrmError> {
        let emails: Vec<String> = inputs
            .iter()
            .filter(|i| i.id.is_none() && !i.email.is_empty())
            .map(|i| i.email.clone())
            .collect();
        if emails.is_empty() {
            return Ok(());
        }
        let found = self.find_by_email(&emails).await?;
        inputs.retain(|i| match found.get(&normalise_email(&i.email)) {
            Some((id, at)) if i.id.is_none() && !i.email.is_empty() => {
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

    /// An update refused for a stale ETag: the record's ETag read again,
    /// the update sent once more.
    async fn update_again(
        &self,
        module: CrmModule,
        input: &Input,
    ) -> Result<WriteResult, CrmError> {
        let id = input.id.as_deref().unwrap_or_default();
        let rows = self.by_ids(module, &[id]).await?;
        let etag = rows
            .first()
            .and_then(|r| r["__metadata"]["etag"].as_str())
            .ok_or_else(|| CrmError::Rejected {
                code: "NOT_FOUND_IN_CRM".into(),
                field: None,
                message: format!("SAP C4C has no record {id} (deleted?)"),
            })?;
        let set = wire::entity_set(module)?;
        let path = format!("{set}({})", wire::filter_string(id));
        let body = Value::Object(input.fields.clone());
        let reply = self
            .call(Method::PATCH, &path, &[], &Payload::Json(&body), Some(etag))
            .await?;
        Ok(WriteResult {
            id: id.to_owned(),
            modified_at: reply
                .etag
                .as_deref()
                .and_then(wire::etag_time)
                .unwrap_or_else(Utc::now),
            created: false,
        })
    }

    /// The listing's filter: records changed at or after `since`, or after
    /// a cursor's key.
    fn listing_filter(since: Option<DateTime<Utc>>, after: Option<&Cursor>) -> Option<String> {
        match (after, since) {
            (Some(c), _) => Some(c.condition()),
            (None, Some(since)) => Some(format!(
                "{} ge {}",
                wire::MODIFIED,
                wire::filter_time(since)
            )),
            (None, None) => None,
        }
    }
}

/// One prepared write.
#[derive(Debug, Clone)]
struct Input {
    order: usize,
    id: Option<String>,
    email: String,
    fields: Map<String, Value>,
    etag: Option<String>,
}

impl Input {
    fn operation(&self, set: &str) -> Operation {
        match &self.id {
            Some(id) => Operation {
                method: "PATCH",
                target: format!("{set}({})", wire::filter_string(id)),
                if_match: self.etag.clone(),
                body: Value::Object(self.fields.clone()),
            },
            None => Operation {
                method: "POST",
                target: set.to_owned(),
                if_match: None,
                body: Value::Object(self.fields.clone()),
            },
        }
    }
}

/// The result of one changeset's response.
fn op_result(input: &Input, reply: &OpReply) -> Result<WriteResult, CrmError> {
    if !(200..300).contains(&reply.status) {
        return Err(wire::classify(reply.status, &reply.body, None));
    }
    match &input.id {
        Some(id) => Ok(WriteResult {
            id: id.clone(),
            modified_at: reply
                .etag
                .as_deref()
                .and_then(wire::etag_time)
                .unwrap_or_else(Utc::now),
            created: false,
        }),
        None => {
            let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            let entity = &body["d"];
            let id = entity["ObjectID"].as_str().ok_or_else(|| {
                CrmError::Protocol("SAP C4C created a lead without naming its ObjectID".into())
            })?;
            let modified_at = entity[wire::MODIFIED]
                .as_str()
                .and_then(wire::parse_time)
                .or_else(|| reply.etag.as_deref().and_then(wire::etag_time))
                .unwrap_or_else(Utc::now);
            Ok(WriteResult {
                id: id.to_owned(),
                modified_at,
                created: true,
            })
        }
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Where the next page of a listing starts: after the last record's key
/// (EntityLastChangedOn to the millisecond, ObjectID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    at: DateTime<Utc>,
    id: String,
}

impl Cursor {
    fn parse(c: &str) -> Result<Self, CrmError> {
        let bad = || CrmError::Protocol(format!("bad SAP C4C cursor {c}"));
        let (ms, id) = c.split_once(':').ok_or_else(bad)?;
        let at = ms
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(bad)?;
        if !wire::is_object_id(id) {
            return Err(bad());
        }
        Ok(Self {
            at,
            id: id.to_owned(),
        })
    }

    /// The `$filter` of what follows the key.
    fn condition(&self) -> String {
        let t = wire::filter_time(self.at);
        format!(
            "({m} gt {t} or ({m} eq {t} and ObjectID gt {id}))",
            m = wire::MODIFIED,
            id = wire::filter_string(&self.id)
        )
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.at.timestamp_millis(), self.id)
    }
}

#[async_trait::async_trait]
impl CrmClient for SapC4cClient {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::SapC4c
    }

    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let fail = |message: String| Ok(ConnectionCheck { ok: false, message });
        let mut modules = vec![CrmModule::Leads];
        for module in [CrmModule::Contacts, CrmModule::Customers] {
            if expect.modules.contains(&module) {
                modules.push(module);
            }
        }
        for &module in &modules {
            let set = wire::entity_set(module)?;
            let catalog = match self.catalog(module).await {
                Ok(c) => c,
                Err(CrmError::Unavailable(message)) => {
                    return fail(format!("cannot reach SAP C4C at {}: {message}", self.root));
                }
                Err(CrmError::Rejected { message, .. }) => {
                    return fail(format!(
                        "connected to SAP C4C, but {set} cannot be described: {message}"
                    ));
                }
                Err(e) => return Err(e),
            };
            if let Err(CrmError::Rejected { message, .. }) =
                self.get(set, &[("$top", "1".to_owned())]).await
            {
                return fail(format!(
                    "connected to SAP C4C, but {set} cannot be read: {message}"
                ));
            }
            let help = FieldsHelp {
                records: match module {
                    CrmModule::Leads => "SAP C4C leads",
                    CrmModule::Customers => "SAP C4C individual customers",
                    _ => "SAP C4C contacts",
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
                return fail(format!("connected to SAP C4C, but {problem}"));
            }
        }
        let readable = match modules.as_slice() {
            [_] => "leads",
            [_, CrmModule::Contacts] => "leads and contacts",
            [_, CrmModule::Customers] => "leads and individual customers",
            _ => "leads, contacts and individual customers",
        };
        Ok(ConnectionCheck {
            ok: true,
            message: format!("connected to SAP C4C: {readable} are readable"),
        })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        Ok(self.catalog(module).await?.field_list.clone())
    }

    /// C4C's users are its employees (`EmployeeCollection`), identified by
    /// their business partner id (what `OwnerPartyID` holds); an employee
    /// whose user is locked is inactive.
    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        Ok(self.owners().await?.list.clone())
    }

    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        let set = wire::entity_set(query.module)?;
        let catalog = self.catalog(query.module).await?;
        let cursor = query.cursor.as_deref().map(Cursor::parse).transpose()?;
        let top = query.page_size.clamp(1, PAGE_SIZE);
        let mut params = vec![
            ("$orderby", format!("{},ObjectID", wire::MODIFIED)),
            ("$top", top.to_string()),
        ];
        if let Some(filter) = Self::listing_filter(query.since, cursor.as_ref()) {
            params.push(("$filter", filter));
        }
        let owners = self.owners_of(&catalog).await?;
        let body = self.get(set, &params).await?;
        let rows = wire::results(&body);
        let records = self.records(rows, query.module, &catalog, owners.as_deref())?;
        let more = body["d"]["__next"].as_str().is_some() || records.len() >= top as usize;
        let next = match (more, records.last()) {
            (true, Some(last)) => Some(
                Cursor {
                    at: last.modified_at,
                    id: last.id.clone(),
                }
                .to_string(),
            ),
            _ => None,
        };
        Ok(RecordPage {
            records,
            next_cursor: next,
        })
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        let mut unique: Vec<&str> = ids
            .iter()
            .map(|id| id.trim())
            .filter(|id| wire::is_object_id(id))
            .collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = self.catalog(module).await?;
        let owners = self.owners_of(&catalog).await?;
        let rows = self.by_ids(module, &unique).await?;
        self.records(&rows, module, &catalog, owners.as_deref())
    }

    fn writes_in_flight(&self) -> usize {
        MAX_BATCH * self.writes
    }

    fn records_per_read(&self) -> u32 {
        PAGE_SIZE
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        if let Err(e) = wire::entity_set(module) {
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

    /// C4C's OData API converts no leads: the lead is reported for a sales
    /// rep to qualify in C4C, without a call.
    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        Err(CrmError::Rejected {
            code: "CONVERT_IN_SAP_C4C".into(),
            field: None,
            message: format!(
                "SAP C4C's API cannot convert leads: a sales rep converts lead {} in SAP C4C (Sales > Leads > the lead > Convert); the next sync makes the platform contact a client of the new contact",
                lead_id.trim()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_asks_for_what_follows_its_key() {
        let c = Cursor {
            at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            id: "00163E0A1B2C".into(),
        };
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        assert_eq!(
            c.condition(),
            "(EntityLastChangedOn gt datetimeoffset'2023-11-14T22:13:20.123Z' or (EntityLastChangedOn eq datetimeoffset'2023-11-14T22:13:20.123Z' and ObjectID gt '00163E0A1B2C'))"
        );
        assert!(Cursor::parse("1:x' or 1 eq 1").is_err(), "ids are checked");
        assert!(Cursor::parse("x").is_err());
    }
}
