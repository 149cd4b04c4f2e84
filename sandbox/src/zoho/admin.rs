//! The Zoho admin API under `/admin/zoho`: orgs, clients, grant codes, seeding, records
//! as stored, limits and usage. See `docs/zoho.md` for examples.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fields::{CustomFieldSpec, default_custom_fields, module_fields};
use super::org::{Limits, Module, Org, OrgData, Record, User, parse_offset};
use super::{DEFAULT_SCOPE, ZohoDescription};
use crate::admin::{AdminError, DeletedAt, parse_body};
use crate::seed::{SeedSpec, generate, slug};
use crate::{AppState, Shared};

type AdminReply = Result<(StatusCode, Json<Value>), AdminError>;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs", get(list_orgs).post(post_org))
        .route("/orgs/{org}", get(get_org))
        .route("/orgs/{org}/clients", post(post_client))
        .route("/orgs/{org}/grant-codes", post(post_grant_code))
        .route(
            "/clients/{client_id}/grant-codes",
            post(post_client_grant_code),
        )
        .route("/orgs/{org}/seed", post(post_seed))
        .route(
            "/orgs/{org}/records/{module}",
            get(get_records).post(post_records),
        )
        .route(
            "/orgs/{org}/records/{module}/{id}",
            axum::routing::delete(delete_record),
        )
        .route("/orgs/{org}/limits", get(get_limits).patch(patch_limits))
        .route("/orgs/{org}/limits/exhaust-daily", post(exhaust_daily))
        .route("/orgs/{org}/usage", get(get_usage))
        .route("/orgs/{org}/channels", get(get_channels))
        .route(
            "/orgs/{org}/channels/{id}",
            axum::routing::delete(delete_channel),
        )
        .route("/orgs/{org}/channels/{id}/expire", post(expire_channel))
        .route("/orgs/{org}/gate", post(post_gate))
}

/// A user given when creating an org.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    first_name: String,
    last_name: String,
    email: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

/// Limits that can be given at creation or changed later; absent ones keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LimitsPatch {
    time_zone: Option<String>,
    concurrency: Option<usize>,
    heavy_concurrency: Option<usize>,
    daily_credits: Option<u64>,
    grant_code_ttl_secs: Option<u64>,
    access_token_ttl_secs: Option<u64>,
    token_throttle: Option<usize>,
}

impl LimitsPatch {
    fn apply(&self, limits: &mut Limits) -> Result<(), AdminError> {
        let positive = |name: &str, v: Option<u64>| match v {
            Some(0) => Err(AdminError::bad_request(format!(
                "{name}: must be at least 1"
            ))),
            _ => Ok(()),
        };
        positive("concurrency", self.concurrency.map(|v| v as u64))?;
        positive(
            "heavy_concurrency",
            self.heavy_concurrency.map(|v| v as u64),
        )?;
        positive("grant_code_ttl_secs", self.grant_code_ttl_secs)?;
        positive("access_token_ttl_secs", self.access_token_ttl_secs)?;
        positive("token_throttle", self.token_throttle.map(|v| v as u64))?;
        if let Some(tz) = &self.time_zone {
            parse_offset(tz).ok_or_else(|| {
                AdminError::bad_request(format!("time_zone: an offset such as +01:00, got {tz:?}"))
            })?;
            limits.time_zone = tz.clone();
        }
        if let Some(v) = self.concurrency {
            limits.concurrency = v;
        }
        if let Some(v) = self.heavy_concurrency {
            limits.heavy_concurrency = v;
        }
        if let Some(v) = self.daily_credits {
            limits.daily_credits = v;
        }
        if let Some(v) = self.grant_code_ttl_secs {
            limits.grant_code_ttl_secs = v;
        }
        if let Some(v) = self.access_token_ttl_secs {
            limits.access_token_ttl_secs = v;
        }
        if let Some(v) = self.token_throttle {
            limits.token_throttle = v;
        }
        Ok(())
    }
}

/// `POST /admin/zoho/orgs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NewOrg {
    name: Option<String>,
    #[serde(flatten)]
    limits: LimitsPatch,
    custom_fields: Option<Vec<CustomFieldSpec>>,
    users: Option<Vec<NewUser>>,
    seed: Option<SeedSpec>,
}

pub(crate) struct Created {
    pub description: ZohoDescription,
    org: Arc<Org>,
    seeded: Value,
}

fn default_users(domain: &str) -> Vec<NewUser> {
    let u = |f: &str, l: &str, status: &str, role: &str, profile: &str| NewUser {
        first_name: f.into(),
        last_name: l.into(),
        email: format!("{}.{}@{domain}", slug(f), slug(l)),
        status: Some(status.into()),
        role: Some(role.into()),
        profile: Some(profile.into()),
    };
    vec![
        u("Amélie", "Durand", "active", "CEO", "Administrator"),
        u("Marc", "Lefèvre", "active", "Manager", "Standard"),
        u(
            "Sofia",
            "Rossi",
            "active",
            "Sales Representative",
            "Standard",
        ),
        u(
            "Tom",
            "Becker",
            "disabled",
            "Sales Representative",
            "Standard",
        ),
    ]
}

/// Creates an org with its fields, users and one client, mints a grant code, and seeds
/// people when asked.
pub(crate) fn create_org(
    state: &Shared,
    new: NewOrg,
    default_seed: Option<&SeedSpec>,
) -> Result<Created, AdminError> {
    let mut limits = Limits::default();
    new.limits.apply(&mut limits)?;
    let tz = parse_offset(&limits.time_zone)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    let custom = new.custom_fields.unwrap_or_else(default_custom_fields);
    for (i, spec) in custom.iter().enumerate() {
        spec.validate(i).map_err(AdminError::bad_request)?;
    }
    let seed = new.seed.as_ref().or(default_seed);
    if let Some(spec) = seed {
        spec.validate()
            .map_err(|e| AdminError::bad_request(format!("seed.{e}")))?;
    }
    let index = {
        let mut registry = state.zoho.registry.write();
        registry.org_indexes += 1;
        registry.org_indexes - 1
    };
    let name = new.name.unwrap_or_else(|| {
        if index == 0 {
            "Sandbox Org".into()
        } else {
            format!("Sandbox Org {}", index + 1)
        }
    });
    let id = (800_001_234 + index * 7).to_string();
    let id_base = 6_800_000_000_000_000_000 + index * 100_000_000_000_000;
    let domain = format!("{}.example.com", slug(&name.replace(' ', "-")));
    let new_users = new.users.unwrap_or_else(|| default_users(&domain));
    if new_users.is_empty() {
        return Err(AdminError::bad_request("users: at least one user"));
    }
    let mut users = Vec::new();
    for (i, u) in new_users.into_iter().enumerate() {
        let status = u.status.unwrap_or_else(|| "active".into());
        if status != "active" && status != "disabled" {
            return Err(AdminError::bad_request(format!(
                "users[{i}].status: active or disabled, got {status:?}"
            )));
        }
        if !super::fields::is_email(&u.email) {
            return Err(AdminError::bad_request(format!(
                "users[{i}].email: not an e-mail address: {:?}",
                u.email
            )));
        }
        users.push(User {
            id: id_base + 1 + i as u64,
            first_name: u.first_name,
            last_name: u.last_name,
            email: u.email,
            status,
            role: u.role.unwrap_or_else(|| "Sales Representative".into()),
            profile: u.profile.unwrap_or_else(|| {
                if i == 0 {
                    "Administrator".into()
                } else {
                    "Standard".into()
                }
            }),
        });
    }
    if !users.iter().any(|u| u.status == "active") {
        return Err(AdminError::bad_request("users: at least one active user"));
    }
    let lead_fields = module_fields(Module::Leads, id_base + 100, &custom);
    let contact_fields = module_fields(Module::Contacts, id_base + 400, &custom);
    let mut data = OrgData::new(id_base, users, lead_fields, contact_fields, tz);
    let now = state.clock.now().timestamp();
    let seeded = match seed {
        Some(spec) => serde_json::to_value(data.seed(&generate(spec), now)).unwrap_or_default(),
        None => json!({ "leads": 0, "contacts": 0, "converted": 0 }),
    };
    let org = Arc::new(Org::new(id.clone(), name, limits, data, now));
    state.zoho.registry.write().orgs.push(org.clone());
    let (client_id, client_secret) = state.zoho.new_client(&org);
    let grant_code = state.zoho.mint_grant_code(
        &org,
        &client_id,
        DEFAULT_SCOPE,
        state.clock.now().timestamp_millis(),
    );
    let users = org
        .data
        .lock()
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| u.api_json(i))
        .collect();
    let description = ZohoDescription {
        accounts_url: format!("{}/zoho/accounts", state.base_url),
        api_domain: format!("{}/zoho/api", state.base_url),
        mint_grant_code_url: format!(
            "{}/admin/zoho/clients/{client_id}/grant-codes",
            state.base_url
        ),
        client_id,
        client_secret,
        grant_code,
        org_id: id,
        scope: DEFAULT_SCOPE.into(),
        users,
    };
    Ok(Created {
        description,
        org,
        seeded,
    })
}

fn org_or_404(state: &Shared, id: &str) -> Result<Arc<Org>, AdminError> {
    state
        .zoho
        .org(id)
        .ok_or_else(|| AdminError::not_found(format!("org: no Zoho org {id}")))
}

fn org_json(org: &Org) -> Value {
    let data = org.data.lock();
    let converted = data.leads.records.values().filter(|r| r.converted).count();
    let custom: Vec<Value> = data
        .lead_fields
        .iter()
        .chain(data.contact_fields.iter())
        .filter(|f| f.custom)
        .map(|f| json!({ "api_name": f.api_name, "data_type": f.data_type }))
        .collect();
    json!({
        "org_id": org.id,
        "name": org.name,
        "limits": *org.limits.lock(),
        "clients": *org.clients.lock(),
        "users": data.users.iter().enumerate().map(|(i, u)| u.api_json(i)).collect::<Vec<_>>(),
        "custom_fields": custom,
        "counts": {
            "leads": data.leads.records.len(),
            "converted_leads": converted,
            "contacts": data.contacts.records.len(),
            "accounts": data.accounts.records.len(),
            "deleted_leads": data.leads.deleted.len(),
            "deleted_contacts": data.contacts.deleted.len(),
        },
        "workflow_runs": data.workflow_runs,
    })
}

async fn list_orgs(State(state): State<AppState>) -> Json<Value> {
    let orgs: Vec<Value> = state.zoho.orgs().iter().map(|o| org_json(o)).collect();
    Json(json!({ "orgs": orgs }))
}

async fn get_org(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    Ok(Json(org_json(&org)))
}

async fn post_org(State(state): State<AppState>, body: Bytes) -> AdminReply {
    let new: NewOrg = parse_body(&body)?;
    let created = create_org(&state, new, None)?;
    let mut out = serde_json::to_value(&created.description).unwrap_or_default();
    out["name"] = json!(created.org.name);
    out["limits"] = json!(*created.org.limits.lock());
    out["seeded"] = created.seeded;
    Ok((StatusCode::CREATED, Json(out)))
}

async fn post_client(State(state): State<AppState>, Path(org): Path<String>) -> AdminReply {
    let org = org_or_404(&state, &org)?;
    let (client_id, client_secret) = state.zoho.new_client(&org);
    let mint = format!(
        "{}/admin/zoho/clients/{client_id}/grant-codes",
        state.base_url
    );
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "client_id": client_id, "client_secret": client_secret, "mint_grant_code_url": mint }),
        ),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GrantRequest {
    scope: Option<String>,
    client_id: Option<String>,
}

fn mint(state: &Shared, org: &Org, client_id: &str, scope: Option<String>) -> AdminReply {
    let scope = scope.unwrap_or_else(|| DEFAULT_SCOPE.into());
    if scope.split(',').all(|s| s.trim().is_empty()) {
        return Err(AdminError::bad_request(
            "scope: must name at least one scope",
        ));
    }
    let code =
        state
            .zoho
            .mint_grant_code(org, client_id, &scope, state.clock.now().timestamp_millis());
    let ttl = org.limits.lock().grant_code_ttl_secs;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "code": code, "client_id": client_id, "scope": scope, "expires_in": ttl })),
    ))
}

async fn post_grant_code(
    State(state): State<AppState>,
    Path(org): Path<String>,
    body: Bytes,
) -> AdminReply {
    let org = org_or_404(&state, &org)?;
    let req: GrantRequest = parse_body(&body)?;
    let client_id = match req.client_id {
        Some(id) => {
            if !org.clients.lock().contains(&id) {
                return Err(AdminError::not_found(format!(
                    "client_id: no client {id} in org {}",
                    org.id
                )));
            }
            id
        }
        None => org
            .clients
            .lock()
            .first()
            .cloned()
            .ok_or_else(|| AdminError::not_found("client_id: the org has no client"))?,
    };
    mint(&state, &org, &client_id, req.scope)
}

async fn post_client_grant_code(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> AdminReply {
    let org_id = state
        .zoho
        .registry
        .read()
        .clients
        .get(&client_id)
        .map(|c| c.org_id.clone())
        .ok_or_else(|| AdminError::not_found(format!("client_id: no client {client_id}")))?;
    let org = org_or_404(&state, &org_id)?;
    let req: GrantRequest = parse_body(&body)?;
    if req.client_id.as_ref().is_some_and(|c| *c != client_id) {
        return Err(AdminError::bad_request(
            "client_id: differs from the client in the URL",
        ));
    }
    mint(&state, &org, &client_id, req.scope)
}

async fn post_seed(
    State(state): State<AppState>,
    Path(org): Path<String>,
    body: Bytes,
) -> AdminReply {
    let org = org_or_404(&state, &org)?;
    let spec: SeedSpec = parse_body(&body)?;
    spec.validate().map_err(AdminError::bad_request)?;
    let people = generate(&spec);
    let now = state.clock.now().timestamp();
    let count = org.data.lock().seed(&people, now);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(count).unwrap_or_default()),
    ))
}

fn module_or_400(name: &str) -> Result<Module, AdminError> {
    Module::from_admin(name).ok_or_else(|| {
        AdminError::bad_request(format!("module: Leads, Contacts or Accounts, got {name:?}"))
    })
}

async fn get_records(
    State(state): State<AppState>,
    Path((org, module)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let m = module_or_400(&module)?;
    let data = org.data.lock();
    let store = data.store(m);
    let records: Vec<Value> = store
        .records
        .values()
        .map(|r| data.admin_json(m, r))
        .collect();
    let deleted: Vec<Value> = store.deleted.iter().map(|d| data.deleted_json(d)).collect();
    Ok(Json(
        json!({ "count": records.len(), "records": records, "deleted": deleted }),
    ))
}

/// Deletes a record as a person does in Zoho's screens: to the recycle bin,
/// deleted now by the org's first active user, where `GET /{Module}/deleted` lists it.
async fn delete_record(
    State(state): State<AppState>,
    Path((org, module, id)): Path<(String, String, String)>,
    Query(when): Query<DeletedAt>,
) -> AdminReply {
    let org = org_or_404(&state, &org)?;
    let m = module_or_400(&module)?;
    let now = when.at(state.clock.now())?.timestamp();
    let mut data = org.data.lock();
    let user = data.admin_user_id();
    let found = id
        .parse::<u64>()
        .is_ok_and(|n| data.recycle(m, n, now, user));
    if !found {
        return Err(AdminError::not_found(format!(
            "id: no live {module} record {id} in org {}",
            org.id
        )));
    }
    Ok((
        StatusCode::OK,
        Json(json!({ "id": id, "deleted_time": data.time(now) })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsBody {
    records: Vec<Map<String, Value>>,
}

fn time_of(v: Option<&Value>, at: &str, default: i64) -> Result<i64, AdminError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|_| AdminError::bad_request(format!("{at}: an RFC 3339 time, got {s:?}"))),
        Some(other) => Err(AdminError::bad_request(format!(
            "{at}: an RFC 3339 time, got {other}"
        ))),
    }
}

/// Stores records as given (no API validation beyond the shape): optional `id`,
/// `Created_Time`, `Modified_Time`, `Owner`, `Created_By`/`Modified_By` and, on Leads,
/// `$converted`.
async fn post_records(
    State(state): State<AppState>,
    Path((org, module)): Path<(String, String)>,
    body: Bytes,
) -> AdminReply {
    let org = org_or_404(&state, &org)?;
    let m = module_or_400(&module)?;
    let req: RecordsBody = parse_body(&body)?;
    let now = state.clock.now().timestamp();
    let mut data = org.data.lock();
    let admin = data.admin_user_id();
    let mut prepared = Vec::with_capacity(req.records.len());
    for (i, mut rec) in req.records.into_iter().enumerate() {
        let at = |k: &str| format!("records[{i}].{k}");
        let id = match rec.remove("id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let id = v
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .or(v.as_u64());
                let id = id.filter(|n| {
                    (1_000_000_000_000_000_000..=9_999_999_999_999_999_999).contains(n)
                });
                let id = id.ok_or_else(|| {
                    AdminError::bad_request(format!("{}: a string of 19 digits", at("id")))
                })?;
                if data.store(m).records.contains_key(&id)
                    || prepared.iter().any(|r: &Record| r.id == id)
                {
                    return Err(AdminError::conflict(format!(
                        "{}: a record {id} exists",
                        at("id")
                    )));
                }
                Some(id)
            }
        };
        let created = time_of(
            rec.remove("Created_Time").as_ref(),
            &at("Created_Time"),
            now,
        )?;
        let modified = time_of(
            rec.remove("Modified_Time").as_ref(),
            &at("Modified_Time"),
            created,
        )?;
        let mut user_field = |k: &str| -> Result<u64, AdminError> {
            match rec.remove(k) {
                None | Some(Value::Null) => Ok(admin),
                Some(v) => super::fields::lookup_id(&v)
                    .filter(|id| data.user(*id).is_some())
                    .ok_or_else(|| {
                        AdminError::bad_request(format!(
                            "{}: {{\"id\"}} of a user of the org",
                            at(k)
                        ))
                    }),
            }
        };
        let owner = user_field("Owner")?;
        let created_by = user_field("Created_By")?;
        let modified_by = user_field("Modified_By")?;
        let converted = match rec.remove("$converted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) if m == Module::Leads || !b => b,
            Some(_) => {
                return Err(AdminError::bad_request(format!(
                    "{}: a boolean, on Leads only",
                    at("$converted")
                )));
            }
        };
        for key in rec.keys() {
            if data.field(m, key).is_none_or(|f| f.read_only) {
                return Err(AdminError::bad_request(format!(
                    "{}: not a writable field of {}",
                    at(key),
                    m.name()
                )));
            }
        }
        prepared.push(Record {
            id: id.unwrap_or(0),
            values: rec,
            created,
            modified,
            owner,
            created_by,
            modified_by,
            converted,
            workflow_runs: 0,
        });
    }
    let mut ids = Vec::with_capacity(prepared.len());
    for mut record in prepared {
        if record.id == 0 {
            record.id = data.next_id();
        }
        ids.push(record.id.to_string());
        data.store_mut(m).insert(record);
    }
    Ok((StatusCode::CREATED, Json(json!({ "ids": ids }))))
}

async fn get_limits(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let limits = org.limits.lock().clone();
    Ok(Json(json!(limits)))
}

async fn patch_limits(
    State(state): State<AppState>,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let patch: LimitsPatch = parse_body(&body)?;
    let mut limits = org.limits.lock().clone();
    patch.apply(&mut limits)?;
    if let Some(tz) = parse_offset(&limits.time_zone) {
        org.data.lock().tz = tz;
    }
    *org.limits.lock() = limits.clone();
    Ok(Json(json!(limits)))
}

fn usage_json(state: &Shared, org: &Org) -> Value {
    let now_ms = state.clock.now().timestamp_millis();
    let daily = org.limits.lock().daily_credits;
    let (used, token_calls) = {
        let mut usage = org.usage.lock();
        (usage.used(now_ms), usage.token_calls)
    };
    json!({
        "credits_used": used,
        "daily_credits": daily,
        "credits_remaining": daily.saturating_sub(used),
        "in_flight": org.in_flight.load(Ordering::SeqCst),
        "heavy_in_flight": org.heavy_in_flight.load(Ordering::SeqCst),
        "token_calls": token_calls,
        "workflow_runs": org.data.lock().workflow_runs,
        "gate_closed": *org.gate.borrow(),
    })
}

async fn get_usage(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    Ok(Json(usage_json(&state, &org)))
}

/// Spends the rest of the rolling 24-hour budget now, as if the daily limit were reached.
async fn exhaust_daily(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let now_ms = state.clock.now().timestamp_millis();
    let daily = org.limits.lock().daily_credits;
    {
        let mut usage = org.usage.lock();
        let used = usage.used(now_ms);
        if daily > used {
            usage.credits.push_back((now_ms, daily - used));
        }
    }
    Ok(Json(usage_json(&state, &org)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gate {
    closed: bool,
}

/// Closes or opens the org's gate: while closed, API calls wait after being admitted
/// (holding their concurrency slot), so tests can hold requests in flight.
async fn post_gate(
    State(state): State<AppState>,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let gate: Gate = parse_body(&body)?;
    org.gate.send_replace(gate.closed);
    Ok(Json(json!({ "closed": gate.closed })))
}

/// The org's notification channels as stored (tokens included: a test tool).
async fn get_channels(
    State(state): State<AppState>,
    Path(org): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org_or_404(&state, &org)?;
    let channels = org.channels.lock().clone();
    Ok(Json(json!({ "channels": channels })))
}

/// Deletes a channel as if Zoho dropped it: the subscriber is not told.
async fn delete_channel(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let org = org_or_404(&state, &org)?;
    let mut channels = org.channels.lock();
    let before = channels.len();
    channels.retain(|c| c.channel_id != id);
    if channels.len() == before {
        return Err(AdminError::not_found(format!("id: no channel {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends a channel now (sandbox clock), as its expiry would.
async fn expire_channel(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let org = org_or_404(&state, &org)?;
    let now = state.clock.now();
    let mut channels = org.channels.lock();
    let channel = channels
        .iter_mut()
        .find(|c| c.channel_id == id)
        .ok_or_else(|| AdminError::not_found(format!("id: no channel {id}")))?;
    channel.channel_expiry = now;
    Ok(StatusCode::NO_CONTENT)
}
