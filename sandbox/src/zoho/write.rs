//! Write endpoints: insert, update, upsert, delete and lead conversion.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::{Call, Need, begin};
use super::fields::{Invalid, check, lookup_id, stored_lookup};
use super::org::{Module, OrgData, norm_email};
use super::read::{invalid, module_of, unknown_id};
use super::{Reject, data_reply, error, json_reply};
use crate::AppState;

type Reply = Result<Response, Reject>;

/// Most records one write may carry.
const MAX_RECORDS: usize = 100;
/// Writes of more records than this are heavy calls.
const HEAVY_RECORDS: usize = 10;

fn done(r: Reply) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// A parsed write body.
struct WriteBody {
    records: Vec<Value>,
    workflow: bool,
    duplicate_check_fields: Option<Vec<String>>,
}

fn parse_body(body: &[u8]) -> Result<WriteBody, Reject> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("the body is not valid JSON: {e}"), json!({})))?;
    let Value::Object(mut obj) = value else {
        return Err(invalid("the body must be a JSON object", json!({})));
    };
    let records = match obj.remove("data") {
        None | Some(Value::Null) => {
            return Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({ "param": "data" }),
            ));
        }
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(_) => {
            return Err(invalid(
                "data must be a non-empty array of records",
                json!({ "param": "data" }),
            ));
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(error(
            400,
            "LIMIT_EXCEEDED",
            &format!(
                "at most {MAX_RECORDS} records can be written in one call, got {}",
                records.len()
            ),
            json!({ "param": "data", "limit": MAX_RECORDS }),
        ));
    }
    let workflow = match obj.get("trigger") {
        None => true,
        Some(Value::Array(items)) => {
            let mut workflow = false;
            for item in items {
                match item.as_str() {
                    Some("workflow") => workflow = true,
                    Some("approval" | "blueprint") => {}
                    _ => {
                        return Err(invalid(
                            &format!(
                                "trigger values are workflow, approval and blueprint, got {item}"
                            ),
                            json!({ "param": "trigger" }),
                        ));
                    }
                }
            }
            workflow
        }
        Some(_) => {
            return Err(invalid(
                "trigger must be an array",
                json!({ "param": "trigger" }),
            ));
        }
    };
    let duplicate_check_fields = match obj.get("duplicate_check_fields") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            Some(names.ok_or_else(|| {
                invalid(
                    "duplicate_check_fields must be an array of field api names",
                    json!({ "param": "duplicate_check_fields" }),
                )
            })?)
        }
        Some(_) => {
            return Err(invalid(
                "duplicate_check_fields must be an array of field api names",
                json!({ "param": "duplicate_check_fields" }),
            ));
        }
    };
    Ok(WriteBody {
        records,
        workflow,
        duplicate_check_fields,
    })
}

fn rec_error(code: &str, message: &str, details: Value) -> Value {
    json!({ "code": code, "details": details, "message": message, "status": "error" })
}

fn mandatory(api: &str, i: usize) -> Value {
    rec_error(
        "MANDATORY_NOT_FOUND",
        "required field not found",
        json!({ "api_name": api, "json_path": format!("$.data[{i}].{api}") }),
    )
}

fn invalid_field(api: &str, i: usize, why: Invalid) -> Value {
    let mut details = json!({ "api_name": api, "json_path": format!("$.data[{i}].{api}") });
    match why {
        Invalid::Type(t) => details["expected_data_type"] = json!(t),
        Invalid::Length(n) => details["maximum_length"] = json!(n),
        Invalid::Value => {}
    }
    rec_error("INVALID_DATA", "invalid data", details)
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

/// Validated changes of one record: values to set and the owner, if given.
struct Changes {
    values: Map<String, Value>,
    owner: Option<u64>,
}

/// Validates one record's fields. Unknown and read-only fields are ignored, as Zoho does.
fn validate(
    data: &OrgData,
    m: Module,
    i: usize,
    obj: Map<String, Value>,
    insert: bool,
) -> Result<Changes, Value> {
    for f in data
        .fields(m)
        .iter()
        .filter(|f| f.mandatory && !f.read_only)
    {
        let v = obj.get(&f.api_name);
        let missing = if insert {
            is_blank(v)
        } else {
            v.is_some() && is_blank(v)
        };
        if missing {
            return Err(mandatory(&f.api_name, i));
        }
    }
    let mut changes = Changes {
        values: Map::new(),
        owner: None,
    };
    for (key, value) in obj {
        let Some(def) = data.field(m, &key) else {
            continue;
        };
        if def.read_only {
            continue;
        }
        check(def, &value, data).map_err(|why| invalid_field(&key, i, why))?;
        match def.data_type.as_str() {
            "ownerlookup" => {
                if value.is_null() {
                    return Err(invalid_field(&key, i, Invalid::Type("jsonobject")));
                }
                changes.owner = lookup_id(&value);
            }
            "lookup" => {
                let stored = stored_lookup(&value, data);
                changes.values.insert(key, stored);
            }
            _ => {
                changes.values.insert(key, value);
            }
        }
    }
    Ok(changes)
}

/// What a successful write did.
struct Written {
    id: u64,
    update: bool,
    duplicate_field: Option<String>,
}

/// The users and times of one call's success replies, each made once: a
/// batch's records mostly share them (the caller, the call's second).
#[derive(Default)]
struct Replies {
    users: Vec<(u64, Value)>,
    times: Vec<(i64, String)>,
}

impl Replies {
    fn user(&mut self, data: &OrgData, id: u64) -> Value {
        if let Some((_, v)) = self.users.iter().find(|(u, _)| *u == id) {
            return v.clone();
        }
        let v = data.user(id).map_or(
            json!({}),
            |u| json!({ "name": u.full_name(), "id": u.id.to_string() }),
        );
        self.users.push((id, v.clone()));
        v
    }

    fn time(&mut self, data: &OrgData, secs: i64) -> String {
        if let Some((_, t)) = self.times.iter().find(|(s, _)| *s == secs) {
            return t.clone();
        }
        let t = data.time(secs);
        self.times.push((secs, t.clone()));
        t
    }
}

fn success(data: &OrgData, m: Module, w: &Written, replies: &mut Replies) -> Value {
    let r = &data.store(m).records[&w.id];
    json!({
        "code": "SUCCESS",
        "duplicate_field": w.duplicate_field,
        "action": if w.update { "update" } else { "insert" },
        "details": {
            "Modified_Time": replies.time(data, r.modified),
            "Modified_By": replies.user(data, r.modified_by),
            "Created_Time": replies.time(data, r.created),
            "id": r.id.to_string(),
            "Created_By": replies.user(data, r.created_by),
        },
        "message": if w.update { "record updated" } else { "record added" },
        "status": "success",
    })
}

fn record_id(obj: &Map<String, Value>) -> Option<Option<u64>> {
    match obj.get("id")? {
        Value::String(s) => Some(s.trim().parse().ok()),
        Value::Number(n) => Some(n.as_u64()),
        Value::Null => None,
        _ => Some(None),
    }
}

struct Ctx<'a> {
    m: Module,
    user: u64,
    now: i64,
    workflow: bool,
    data: &'a mut OrgData,
}

impl Ctx<'_> {
    fn insert(&mut self, i: usize, obj: Map<String, Value>) -> Result<Written, Value> {
        let changes = validate(self.data, self.m, i, obj, true)?;
        let owner = changes.owner.unwrap_or(self.user);
        let id = self
            .data
            .create(self.m, changes.values, owner, self.user, self.now, self.now);
        self.ran_workflow(id);
        Ok(Written {
            id,
            update: false,
            duplicate_field: None,
        })
    }

    fn update(
        &mut self,
        i: usize,
        id: u64,
        obj: Map<String, Value>,
        duplicate_field: Option<String>,
    ) -> Result<Written, Value> {
        let Some(existing) = self.data.store(self.m).records.get(&id) else {
            return Err(rec_error(
                "INVALID_DATA",
                "the related id given seems to be invalid",
                json!({ "api_name": "id", "json_path": format!("$.data[{i}].id"), "id": id.to_string() }),
            ));
        };
        if existing.converted {
            return Err(rec_error(
                "CONVERTED_RECORD",
                "can't update the converted record",
                json!({ "id": id.to_string() }),
            ));
        }
        let changes = validate(self.data, self.m, i, obj, false)?;
        let (user, now) = (self.user, self.now);
        self.data.store_mut(self.m).modify(id, |r| {
            for (k, v) in changes.values {
                if v.is_null() {
                    r.values.remove(&k);
                } else {
                    r.values.insert(k, v);
                }
            }
            if let Some(owner) = changes.owner {
                r.owner = owner;
            }
            r.modified = now;
            r.modified_by = user;
        });
        self.ran_workflow(id);
        Ok(Written {
            id,
            update: true,
            duplicate_field,
        })
    }

    fn ran_workflow(&mut self, id: u64) {
        if self.workflow {
            self.data.workflow_runs += 1;
            self.data
                .store_mut(self.m)
                .modify(id, |r| r.workflow_runs += 1);
        }
    }

    /// The earliest-created record matching `obj` on the first duplicate-check field that matches.
    fn duplicate(&self, obj: &Map<String, Value>, fields: &[String]) -> Option<(u64, String)> {
        let store = self.data.store(self.m);
        for f in fields {
            let Some(value) = obj.get(f).filter(|v| !is_blank(Some(v))) else {
                continue;
            };
            let hit = if f == "Email" {
                value
                    .as_str()
                    .and_then(|e| store.with_email(e).first().copied())
            } else {
                let same = |stored: &Value| match (stored, value) {
                    (Value::String(a), Value::String(b)) => norm_email(a) == norm_email(b),
                    (a, b) => a == b,
                };
                store
                    .records
                    .values()
                    .filter(|r| r.values.get(f).is_some_and(same))
                    .min_by_key(|r| (r.created, r.id))
                    .map(|r| r.id)
            };
            if let Some(id) = hit {
                return Some((id, f.clone()));
            }
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Insert,
    Update,
    Upsert,
}

async fn write(
    state: &AppState,
    module: &str,
    headers: &HeaderMap,
    body: &[u8],
    kind: Kind,
    path_id: Option<&str>,
) -> Reply {
    let m = module_of(module)?;
    let op = match kind {
        Kind::Insert => "create",
        Kind::Update | Kind::Upsert => "update",
    };
    // Parsed before the call takes its concurrency slot (its errors still
    // come after the token's and the scope's).
    let parsed = parse_body(body);
    let mut call = begin(state, headers, Need::Module(m, op)).await?;
    if kind == Kind::Upsert
        && !super::auth::scope_allows(&scope_of(state, headers), Need::Module(m, "create"))
    {
        return Err(error(
            401,
            "OAUTH_SCOPE_MISMATCH",
            "invalid oauth scope to access this URL",
            json!({}),
        ));
    }
    let mut body = parsed?;
    if let Some(id) = path_id {
        if body.records.len() != 1 {
            return Err(invalid(
                "updating one record by id takes exactly one record in data",
                json!({ "param": "data" }),
            ));
        }
        if let Some(obj) = body.records[0].as_object_mut() {
            obj.insert("id".into(), Value::String(id.to_owned()));
        }
    }
    let n = body.records.len();
    if n > HEAVY_RECORDS {
        call.heavy()?;
    }
    call.charge(n.div_ceil(10) as u64).await?;
    let now = state.clock.now().timestamp();
    let mut data = call.org.data.lock();
    let dup_fields = match body.duplicate_check_fields.take() {
        Some(fields) if !fields.is_empty() => {
            for f in &fields {
                if data.field(m, f).is_none_or(|d| d.read_only) {
                    return Err(invalid(
                        &format!("{f} cannot be used as a duplicate check field"),
                        json!({ "param": "duplicate_check_fields", "api_name": f }),
                    ));
                }
            }
            fields
        }
        _ => vec!["Email".to_owned()],
    };
    let mut ctx = Ctx {
        m,
        user: call.user,
        now,
        workflow: body.workflow,
        data: &mut data,
    };
    let mut results = Vec::with_capacity(n);
    let mut replies = Replies::default();
    let (mut ok, mut updated) = (0, 0);
    for (i, rec) in body.records.into_iter().enumerate() {
        let outcome = match rec {
            Value::Object(obj) => match (kind, record_id(&obj)) {
                (Kind::Insert, _) => ctx.insert(i, obj),
                (Kind::Update, None) => Err(mandatory("id", i)),
                (_, Some(None)) => Err(rec_error(
                    "INVALID_DATA",
                    "the related id given seems to be invalid",
                    json!({ "api_name": "id", "json_path": format!("$.data[{i}].id"), "expected_data_type": "bigint" }),
                )),
                (Kind::Update | Kind::Upsert, Some(Some(id))) => ctx.update(i, id, obj, None),
                (Kind::Upsert, None) => match ctx.duplicate(&obj, &dup_fields) {
                    Some((id, field)) => ctx.update(i, id, obj, Some(field)),
                    None => ctx.insert(i, obj),
                },
            },
            _ => Err(rec_error(
                "INVALID_DATA",
                "invalid data",
                json!({ "json_path": format!("$.data[{i}]") }),
            )),
        };
        results.push(match outcome {
            Ok(w) => {
                ok += 1;
                if w.update {
                    updated += 1;
                }
                success(ctx.data, m, &w, &mut replies)
            }
            Err(e) => e,
        });
    }
    drop(data);
    let status = if ok == 0 {
        StatusCode::BAD_REQUEST
    } else if ok < n {
        StatusCode::MULTI_STATUS
    } else if updated > 0 {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_reply(status, &data_reply(results, [])))
}

fn scope_of(state: &AppState, headers: &HeaderMap) -> String {
    super::auth::bearer(headers)
        .and_then(|t| {
            state
                .zoho
                .registry
                .read()
                .access_tokens
                .get(t)
                .map(|a| a.scope.clone())
        })
        .unwrap_or_default()
}

pub(crate) async fn insert(
    State(state): State<AppState>,
    Path(module): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    done(write(&state, &module, &headers, &body, Kind::Insert, None).await)
}

pub(crate) async fn update_many(
    State(state): State<AppState>,
    Path(module): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    done(write(&state, &module, &headers, &body, Kind::Update, None).await)
}

pub(crate) async fn update_one(
    State(state): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    done(write(&state, &module, &headers, &body, Kind::Update, Some(&id)).await)
}

pub(crate) async fn upsert(
    State(state): State<AppState>,
    Path(module): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    done(write(&state, &module, &headers, &body, Kind::Upsert, None).await)
}

pub(crate) async fn delete_many(
    State(state): State<AppState>,
    Path(module): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ids: Vec<String> = q
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    done(delete(&state, &module, &headers, ids, false).await)
}

pub(crate) async fn delete_one(
    State(state): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    done(delete(&state, &module, &headers, vec![id], true).await)
}

async fn delete(
    state: &AppState,
    module: &str,
    headers: &HeaderMap,
    ids: Vec<String>,
    single: bool,
) -> Reply {
    let m = module_of(module)?;
    let call = begin(state, headers, Need::Module(m, "delete")).await?;
    if ids.is_empty() && !single {
        return Err(error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({ "param": "ids" }),
        ));
    }
    if ids.len() > MAX_RECORDS {
        return Err(error(
            400,
            "LIMIT_EXCEEDED",
            &format!(
                "at most {MAX_RECORDS} ids can be deleted in one call, got {}",
                ids.len()
            ),
            json!({ "param": "ids", "limit": MAX_RECORDS }),
        ));
    }
    call.charge(1).await?;
    let now = state.clock.now().timestamp();
    let mut data = call.org.data.lock();
    let mut ok = 0;
    let mut results = Vec::with_capacity(ids.len());
    for raw in &ids {
        let removed = raw
            .parse::<u64>()
            .is_ok_and(|id| data.recycle(m, id, now, call.user));
        if removed {
            ok += 1;
            results.push(json!({ "code": "SUCCESS", "details": { "id": raw }, "message": "record deleted", "status": "success" }));
        } else {
            results.push(rec_error(
                "INVALID_DATA",
                "the related id given seems to be invalid",
                json!({ "id": raw }),
            ));
        }
    }
    let status = if ok == 0 {
        StatusCode::BAD_REQUEST
    } else if ok < ids.len() {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    Ok(json_reply(status, &data_reply(results, [])))
}

pub(crate) async fn convert(
    State(state): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    done(convert_inner(&state, &module, &id, &headers, &body).await)
}

async fn convert_inner(
    state: &AppState,
    module: &str,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let m = module_of(module)?;
    if m != Module::Leads {
        return Err(error(
            400,
            "INVALID_MODULE",
            "only Leads can be converted",
            json!({ "resource_path_index": 0 }),
        ));
    }
    let mut call: Call = begin(state, headers, Need::Module(m, "create")).await?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("the body is not valid JSON: {e}"), json!({})))?;
    let options = match value.get("data") {
        None | Some(Value::Null) => {
            return Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({ "param": "data" }),
            ));
        }
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_object() => a[0].clone(),
        Some(_) => {
            return Err(invalid(
                "data must be an array of one object",
                json!({ "param": "data" }),
            ));
        }
    };
    call.heavy()?;
    call.charge(5).await?;
    let now = state.clock.now().timestamp();
    let mut data = call.org.data.lock();
    let lead_id = id
        .parse::<u64>()
        .ok()
        .filter(|n| data.leads.records.contains_key(n))
        .ok_or_else(|| unknown_id(id))?;
    if data.leads.records[&lead_id].converted {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({ "data": [rec_error("ID_ALREADY_CONVERTED", "id already converted", json!({ "id": id }))] })),
        )
            .into_response()
            .into());
    }
    let account = match options.get("Accounts") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            lookup_id(v)
                .filter(|a| data.accounts.records.contains_key(a))
                .ok_or_else(|| {
                    invalid(
                        "the related id given seems to be invalid",
                        json!({ "api_name": "Accounts", "json_path": "$.data[0].Accounts" }),
                    )
                })?,
        ),
    };
    let (contact, account) = data
        .convert_lead(lead_id, call.user, now, account)
        .ok_or_else(|| unknown_id(id))?;
    Ok(Json(json!({
        "data": [{
            "code": "SUCCESS",
            "status": "success",
            "message": "The record has been converted successfully",
            "details": {
                "Contacts": { "id": contact.to_string() },
                "Accounts": account.map(|a| json!({ "id": a.to_string() })),
                "Deals": Value::Null,
            },
        }],
    }))
    .into_response())
}
