//! Read endpoints: get records (page and page-token pagination over ordered indexes),
//! get one record, search, deleted records, users and fields.

use std::collections::HashMap;
use std::ops::Bound;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{Need, begin};
use super::criteria::{self, Condition, CriteriaError, Expr, Op};
use super::fields::FieldDef;
use super::org::{Module, OrgData, Record, Store, User};
use super::{Reject, data_reply, error, json_reply};
use crate::AppState;

type Reply = Result<Response, Reject>;
type Params = HashMap<String, String>;

/// Most records reachable with `page`; beyond, a `page_token` is needed.
const DISCRETE_LIMIT: usize = 2000;
/// Most records reachable with page tokens.
const TOKEN_LIMIT: usize = 100_000;
const TOKEN_TTL_SECS: i64 = 86_400;
/// Most ids one listing may name (`ids=`).
const MAX_IDS: usize = 100;

/// The API's own top-level resources: a path under one of them that no route serves
/// is not an API at all, so it must not be answered as an unknown module.
const RESOURCES: [&str; 12] = [
    "org",
    "users",
    "settings",
    "coql",
    "actions",
    "files",
    "features",
    "bulk",
    "read",
    "write",
    "composite_requests",
    "notifications",
];

/// The module a path names. A well-formed api name (a letter, then letters, digits or
/// `_`) that is not a module here is `INVALID_MODULE`, as Zoho answers for a module the
/// org does not have; anything else (a resource name, a dot, a hyphen) is not an API
/// path and gets `INVALID_URL_PATTERN`.
pub(crate) fn module_of(name: &str) -> Result<Module, Reject> {
    if let Some(m) = Module::from_api(name) {
        return Ok(m);
    }
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed || RESOURCES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(super::invalid_url_pattern());
    }
    Err(error(
        400,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({ "resource_path_index": 0 }),
    ))
}

pub(crate) fn invalid(message: &str, details: Value) -> Reject {
    error(400, "INVALID_DATA", message, details)
}

fn done(r: Reply) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn no_content(status: StatusCode) -> Response {
    status.into_response()
}

/// Parses a positive integer parameter.
fn number(q: &Params, name: &str, default: usize, max: usize) -> Result<usize, Reject> {
    match q.get(name) {
        None => Ok(default),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(invalid(
                &format!("{name} must be a number between 1 and {max}"),
                json!({ "param": name, "maximum": max }),
            )),
        },
    }
}

/// `If-Modified-Since` as Unix seconds (RFC 3339 / ISO 8601 with an offset).
fn if_modified_since(headers: &HeaderMap) -> Result<Option<i64>, Reject> {
    let Some(value) = headers.get("if-modified-since") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| Some(t.timestamp()))
        .ok_or_else(|| {
            invalid(
                "If-Modified-Since must be an ISO 8601 date-time with an offset, e.g. 2026-11-21T10:00:00+00:00",
                json!({ "header": "If-Modified-Since" }),
            )
        })
}

/// The `fields` parameter: known api names, at most 50. `None` when absent and optional.
fn field_list(
    q: &Params,
    data: &OrgData,
    m: Module,
    required: bool,
) -> Result<Option<Vec<String>>, Reject> {
    let raw = q.get("fields").map(String::as_str).unwrap_or("");
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return if required {
            Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({ "param": "fields" }),
            ))
        } else {
            Ok(None)
        };
    }
    if names.len() > 50 {
        return Err(error(
            400,
            "LIMIT_EXCEEDED",
            "at most 50 field api names can be given in fields",
            json!({ "param": "fields", "limit": 50 }),
        ));
    }
    for name in &names {
        if name != "id" && data.field(m, name).is_none() {
            return Err(invalid(
                &format!("invalid field api name {name}"),
                json!({ "api_name": name, "param": "fields" }),
            ));
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(Some(out))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Converted {
    Hide,
    Only,
    Both,
}

fn converted_param(q: &Params) -> Result<Converted, Reject> {
    match q.get("converted").map(String::as_str) {
        None | Some("false") => Ok(Converted::Hide),
        Some("true") => Ok(Converted::Only),
        Some("both") => Ok(Converted::Both),
        Some(other) => Err(invalid(
            &format!("converted must be true, false or both, got {other}"),
            json!({ "param": "converted" }),
        )),
    }
}

fn shows(m: Module, c: Converted, r: &Record) -> bool {
    if m != Module::Leads {
        return true;
    }
    match c {
        Converted::Hide => !r.converted,
        Converted::Only => r.converted,
        Converted::Both => true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Id,
    Created,
    Modified,
}

impl SortBy {
    fn name(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Created => "Created_Time",
            SortBy::Modified => "Modified_Time",
        }
    }

    fn key(self, r: &Record) -> (i64, u64) {
        match self {
            SortBy::Id => (0, r.id),
            SortBy::Created => (r.created, r.id),
            SortBy::Modified => (r.modified, r.id),
        }
    }
}

/// Keys in sort order, strictly after `after` (in that order).
fn keys<'a>(
    store: &'a Store,
    by: SortBy,
    asc: bool,
    after: Option<(i64, u64)>,
) -> Box<dyn Iterator<Item = (i64, u64)> + 'a> {
    let set = match by {
        SortBy::Id => {
            let range = match (asc, after) {
                (true, Some((_, id))) => {
                    store.records.range((Bound::Excluded(id), Bound::Unbounded))
                }
                (false, Some((_, id))) => {
                    store.records.range((Bound::Unbounded, Bound::Excluded(id)))
                }
                (_, None) => store.records.range(..),
            };
            let ids = range.map(|(id, _)| (0, *id));
            return if asc {
                Box::new(ids)
            } else {
                Box::new(ids.rev())
            };
        }
        SortBy::Created => &store.by_created,
        SortBy::Modified => &store.by_modified,
    };
    let range = match (asc, after) {
        (true, Some(k)) => set.range((Bound::Excluded(k), Bound::Unbounded)),
        (false, Some(k)) => set.range((Bound::Unbounded, Bound::Excluded(k))),
        (_, None) => set.range(..),
    };
    if asc {
        Box::new(range.copied())
    } else {
        Box::new(range.rev().copied())
    }
}

/// `ids=a,b,...`: the records a listing is limited to (at most [`MAX_IDS`];
/// an id no record has matches nothing), distinct.
fn ids_param(q: &Params) -> Result<Option<Vec<u64>>, Reject> {
    let Some(raw) = q.get("ids") else {
        return Ok(None);
    };
    let ids: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(invalid(
            "ids must name at least one record id",
            json!({ "param": "ids" }),
        ));
    }
    if ids.len() > MAX_IDS {
        return Err(error(
            400,
            "LIMIT_EXCEEDED",
            &format!("at most {MAX_IDS} ids can be given, got {}", ids.len()),
            json!({ "param": "ids", "limit": MAX_IDS }),
        ));
    }
    let mut ids: Vec<u64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(Some(ids))
}

/// What a page token carries: the parameters it is bound to and where to resume.
#[derive(Debug, Serialize, Deserialize)]
struct PageToken {
    sig: String,
    after: (i64, String),
    page: usize,
    served: usize,
    exp: i64,
}

fn encode_token(t: &PageToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_token(s: &str) -> Option<PageToken> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn page_token_error(reason: &str, message: &str) -> Reject {
    invalid(message, json!({ "param": "page_token", "reason": reason }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Path(module): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(list_inner(&state, &module, &q, &headers).await)
}

async fn list_inner(state: &AppState, module: &str, q: &Params, headers: &HeaderMap) -> Reply {
    let m = module_of(module)?;
    let call = begin(state, headers, Need::Module(m, "read")).await?;
    call.charge(1).await?;
    let now = state.clock.now().timestamp();
    let per_page = number(q, "per_page", 200, 200)?;
    let sort_by = match q.get("sort_by").map(String::as_str) {
        None | Some("id") => SortBy::Id,
        Some("Created_Time") => SortBy::Created,
        Some("Modified_Time") => SortBy::Modified,
        Some(other) => {
            return Err(invalid(
                &format!("sort_by must be id, Created_Time or Modified_Time, got {other}"),
                json!({ "param": "sort_by", "supported_values": ["id", "Created_Time", "Modified_Time"] }),
            ));
        }
    };
    let asc = match q.get("sort_order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(invalid(
                &format!("sort_order must be asc or desc, got {other}"),
                json!({ "param": "sort_order", "supported_values": ["asc", "desc"] }),
            ));
        }
    };
    let converted = converted_param(q)?;
    let ids = ids_param(q)?;
    let ims = if_modified_since(headers)?;
    let data = call.org.data.lock();
    let only = field_list(q, &data, m, true)?.unwrap_or_default();
    let sig = format!(
        "{}|{}|{}|{}|{:?}|{}|{:?}|{:?}",
        m.name(),
        only.join(","),
        sort_by.name(),
        asc,
        converted,
        per_page,
        ims,
        ids
    );

    // Where to start: after a page token's key, or after skipping whole pages.
    let (after, page, skip, served_before) = match q.get("page_token") {
        Some(token) => {
            if q.contains_key("page") {
                return Err(invalid(
                    "page and page_token cannot be given together",
                    json!({ "param": "page_token", "conflicts_with": "page" }),
                ));
            }
            let t = decode_token(token)
                .ok_or_else(|| page_token_error("invalid", "the page_token given is invalid"))?;
            if t.exp <= now {
                return Err(page_token_error(
                    "expired",
                    "the page_token given has expired",
                ));
            }
            if t.sig != sig {
                return Err(page_token_error(
                    "parameters_changed",
                    "the page_token was issued for other parameters; keep fields, per_page, sort_by, sort_order, converted, ids and If-Modified-Since the same",
                ));
            }
            let id = t
                .after
                .1
                .parse::<u64>()
                .map_err(|_| page_token_error("invalid", "the page_token given is invalid"))?;
            (Some((t.after.0, id)), t.page, 0, t.served)
        }
        None => {
            let page = number(q, "page", 1, usize::MAX)?;
            let skip = (page - 1).saturating_mul(per_page);
            if skip >= DISCRETE_LIMIT {
                return Err(error(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "Cannot fetch more than 2000 records with page; use page_token",
                    json!({ "param": "page", "limit": DISCRETE_LIMIT }),
                ));
            }
            (None, page, skip, skip)
        }
    };

    let store = data.store(m);
    let listed: Box<dyn Iterator<Item = &Record>> = match &ids {
        None => {
            Box::new(keys(store, sort_by, asc, after).filter_map(|(_, id)| store.records.get(&id)))
        }
        // The records named, in the listing's order, after the token's key.
        Some(ids) => {
            let mut named: Vec<&Record> =
                ids.iter().filter_map(|id| store.records.get(id)).collect();
            named.sort_by_key(|r| sort_by.key(r));
            if !asc {
                named.reverse();
            }
            named.retain(|r| after.is_none_or(|k| (sort_by.key(r) > k) == asc));
            Box::new(named.into_iter())
        }
    };
    let mut matching =
        listed.filter(|r| shows(m, converted, r) && ims.is_none_or(|t| r.modified > t));
    let mut page_records: Vec<&Record> = matching.by_ref().skip(skip).take(per_page).collect();
    let more = matching.next().is_some();
    if page_records.is_empty() {
        return Ok(no_content(if ims.is_some() {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::NO_CONTENT
        }));
    }
    let served = served_before + page_records.len();
    let next = (more && served < TOKEN_LIMIT).then(|| {
        let last = sort_by.key(page_records.last().expect("not empty"));
        encode_token(&PageToken {
            sig: sig.clone(),
            after: (last.0, last.1.to_string()),
            page: page + 1,
            served,
            exp: now + TOKEN_TTL_SECS,
        })
    });
    let rows: Vec<Value> = page_records
        .drain(..)
        .map(|r| data.record_json(m, r, Some(&only)))
        .collect();
    let info = json!({
        "per_page": per_page,
        "count": rows.len(),
        "page": page,
        "sort_by": sort_by.name(),
        "sort_order": if asc { "asc" } else { "desc" },
        "more_records": more,
        "page_token_expiry": next.as_ref().map(|_| data.time(now + TOKEN_TTL_SECS)),
        "next_page_token": next,
        "previous_page_token": Value::Null,
    });
    Ok(json_reply(
        StatusCode::OK,
        &data_reply(rows, [("info", info)]),
    ))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    Path((module, id)): Path<(String, String)>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(get_one_inner(&state, &module, &id, &q, &headers).await)
}

pub(crate) fn unknown_id(id: &str) -> Reject {
    invalid(
        "the related id given seems to be invalid",
        json!({ "id": id }),
    )
}

async fn get_one_inner(
    state: &AppState,
    module: &str,
    id: &str,
    q: &Params,
    headers: &HeaderMap,
) -> Reply {
    let m = module_of(module)?;
    let call = begin(state, headers, Need::Module(m, "read")).await?;
    call.charge(1).await?;
    let data = call.org.data.lock();
    let only = field_list(q, &data, m, false)?;
    let record = id
        .parse::<u64>()
        .ok()
        .and_then(|n| data.store(m).records.get(&n))
        .ok_or_else(|| unknown_id(id))?;
    Ok(Json(json!({ "data": [data.record_json(m, record, only.as_deref())] })).into_response())
}

fn query_error(message: &str, details: Value) -> Reject {
    error(400, "INVALID_QUERY", message, details)
}

fn is_text(ty: &str) -> bool {
    matches!(ty, "text" | "textarea" | "email" | "phone" | "website")
}

/// Checks that each condition names a field of the module with an operator and values that suit its type.
fn check_conditions(expr: &Expr, data: &OrgData, m: Module) -> Result<(), Reject> {
    for c in expr.conditions() {
        let ty = if c.field == "id" {
            "id"
        } else {
            match data.field(m, &c.field) {
                Some(f) => f.data_type.as_str(),
                None => {
                    return Err(query_error(
                        &format!("invalid field {} in the criteria", c.field),
                        json!({ "api_name": c.field, "reason": "the field is not in the module" }),
                    ));
                }
            }
        };
        let ordered = matches!(
            c.op,
            Op::GreaterThan | Op::GreaterEqual | Op::LessThan | Op::LessEqual
        );
        let allowed = match ty {
            "integer" | "bigint" | "double" | "currency" | "percent" | "date" | "datetime" => {
                c.op != Op::StartsWith
            }
            "boolean" | "id" | "ownerlookup" | "lookup" | "multiselectpicklist" => {
                matches!(c.op, Op::Equals | Op::NotEqual | Op::In)
            }
            _ => !ordered,
        };
        if !allowed {
            return Err(query_error(
                &format!(
                    "the operator {:?} is not supported for the field {}",
                    c.op, c.field
                ),
                json!({ "api_name": c.field, "operator": format!("{:?}", c.op) }),
            ));
        }
        for v in &c.values {
            let ok = match ty {
                "integer" | "bigint" | "double" | "currency" | "percent" => {
                    v.trim().parse::<f64>().is_ok()
                }
                "datetime" => DateTime::parse_from_rfc3339(v.trim()).is_ok(),
                "boolean" => v == "true" || v == "false",
                _ => true,
            };
            if !ok {
                return Err(query_error(
                    &format!("the value {v} does not suit the field {}", c.field),
                    json!({ "api_name": c.field, "expected_data_type": ty }),
                ));
            }
        }
    }
    Ok(())
}

fn cmp_ok(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Equals | Op::In => ord == Equal,
        Op::NotEqual => ord != Equal,
        Op::GreaterThan => ord == Greater,
        Op::GreaterEqual => ord != Less,
        Op::LessThan => ord == Less,
        Op::LessEqual => ord != Greater,
        Op::StartsWith => false,
    }
}

fn test_condition(
    c: &Condition,
    def: Option<&FieldDef>,
    data: &OrgData,
    m: Module,
    r: &Record,
) -> bool {
    let ty = def.map_or("id", |f| f.data_type.as_str());
    let value = data.field_value(m, r, &c.field);
    let any = |f: &dyn Fn(&str) -> bool| c.values.iter().any(|v| f(v));
    match ty {
        "id" => {
            let id = r.id.to_string();
            if c.op == Op::NotEqual {
                !any(&|v| v.trim() == id)
            } else {
                any(&|v| v.trim() == id)
            }
        }
        "ownerlookup" | "lookup" => {
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if c.op == Op::NotEqual {
                !any(&|v| v.trim() == id)
            } else {
                any(&|v| v.trim() == id)
            }
        }
        "boolean" => {
            let b = value.as_bool().unwrap_or(false).to_string();
            if c.op == Op::NotEqual {
                !any(&|v| v == b)
            } else {
                any(&|v| v == b)
            }
        }
        "multiselectpicklist" => {
            let items: Vec<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_lowercase))
                .collect();
            let hit = any(&|v| items.contains(&v.to_lowercase()));
            if c.op == Op::NotEqual { !hit } else { hit }
        }
        "integer" | "bigint" | "double" | "currency" | "percent" => {
            let Some(n) = value.as_f64() else {
                return c.op == Op::NotEqual;
            };
            let hit = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|x| n.partial_cmp(&x))
                    .is_some_and(|o| cmp_ok(c.op, o))
            };
            if c.op == Op::NotEqual {
                c.values.iter().all(|v| hit(v))
            } else {
                any(&hit)
            }
        }
        "datetime" => {
            let Some(t) = value
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            else {
                return c.op == Op::NotEqual;
            };
            let hit = |v: &str| {
                DateTime::parse_from_rfc3339(v.trim())
                    .is_ok_and(|x| cmp_ok(c.op, t.timestamp().cmp(&x.timestamp())))
            };
            if c.op == Op::NotEqual {
                c.values.iter().all(|v| hit(v))
            } else {
                any(&hit)
            }
        }
        "date" => {
            let Some(d) = value.as_str() else {
                return c.op == Op::NotEqual;
            };
            let hit = |v: &str| cmp_ok(c.op, d.cmp(v.trim()));
            if c.op == Op::NotEqual {
                c.values.iter().all(|v| hit(v))
            } else {
                any(&hit)
            }
        }
        _ => {
            // Text and picklists, case-insensitively. `equals` on text fields is "contains", as v8 does.
            let s = value.as_str().unwrap_or("").to_lowercase();
            match c.op {
                Op::Equals if is_text(ty) => any(&|v| s.contains(&v.to_lowercase())),
                Op::Equals | Op::In => any(&|v| s == v.to_lowercase()),
                Op::NotEqual => !any(&|v| s == v.to_lowercase()),
                Op::StartsWith => any(&|v| s.starts_with(&v.to_lowercase())),
                _ => false,
            }
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

pub(crate) async fn search(
    State(state): State<AppState>,
    Path(module): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(search_inner(&state, &module, &q, &headers).await)
}

async fn search_inner(state: &AppState, module: &str, q: &Params, headers: &HeaderMap) -> Reply {
    let m = module_of(module)?;
    let call = begin(state, headers, Need::Module(m, "read")).await?;
    call.charge(1).await?;
    let given: Vec<&str> = ["criteria", "email", "phone", "word"]
        .into_iter()
        .filter(|k| q.contains_key(*k))
        .collect();
    match given.len() {
        0 => {
            return Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({ "param": "criteria|email|phone|word" }),
            ));
        }
        1 => {}
        _ => {
            return Err(invalid(
                "give exactly one of criteria, email, phone and word",
                json!({ "param": given.join("|") }),
            ));
        }
    }
    let per_page = number(q, "per_page", 200, 200)?;
    let page = number(q, "page", 1, usize::MAX)?;
    let skip = (page - 1).saturating_mul(per_page);
    if skip >= DISCRETE_LIMIT {
        return Err(error(
            400,
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            "Cannot fetch more than 2000 records with search",
            json!({ "param": "page", "limit": DISCRETE_LIMIT }),
        ));
    }
    let take = per_page.min(DISCRETE_LIMIT - skip);
    let converted = converted_param(q)?;
    let data = call.org.data.lock();
    let only = field_list(q, &data, m, false)?;
    let fields = data.fields(m);
    let text_fields: Vec<&FieldDef> = fields
        .iter()
        .filter(|f| is_text(&f.data_type) || f.data_type == "picklist")
        .collect();

    let mut matcher: Box<dyn FnMut(&Record) -> bool + '_> = match given[0] {
        "criteria" => {
            let expr = criteria::parse(&q["criteria"]).map_err(|e| match e {
                CriteriaError::Syntax(s) => {
                    query_error(&format!("invalid query formed: {s}"), json!({}))
                }
                CriteriaError::Operator(op) => query_error(
                    &format!("the operator {op} is not supported"),
                    json!({ "operator": op }),
                ),
                CriteriaError::TooMany(n) => error(
                    400,
                    "LIMIT_EXCEEDED",
                    &format!(
                        "at most {} conditions are allowed in criteria, got {n}",
                        criteria::MAX_CONDITIONS
                    ),
                    json!({ "param": "criteria", "limit": criteria::MAX_CONDITIONS }),
                ),
            })?;
            check_conditions(&expr, &data, m)?;
            let data = &*data;
            Box::new(move |r: &Record| {
                expr.eval(&mut |c: &Condition| {
                    test_condition(c, data.field(m, &c.field), data, m, r)
                })
            })
        }
        "email" => {
            let want = q["email"].trim().to_lowercase();
            let email_fields: Vec<&str> = fields
                .iter()
                .filter(|f| f.data_type == "email")
                .map(|f| f.api_name.as_str())
                .collect();
            Box::new(move |r: &Record| {
                email_fields.iter().any(|f| {
                    r.values
                        .get(*f)
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.trim().to_lowercase() == want)
                })
            })
        }
        "phone" => {
            let want = digits(&q["phone"]);
            let phone_fields: Vec<&str> = fields
                .iter()
                .filter(|f| f.data_type == "phone")
                .map(|f| f.api_name.as_str())
                .collect();
            Box::new(move |r: &Record| {
                !want.is_empty()
                    && phone_fields.iter().any(|f| {
                        r.values
                            .get(*f)
                            .and_then(Value::as_str)
                            .is_some_and(|p| digits(p).contains(&want))
                    })
            })
        }
        _ => {
            let want = q["word"].trim().to_lowercase();
            Box::new(move |r: &Record| {
                !want.is_empty()
                    && text_fields.iter().any(|f| {
                        r.values
                            .get(&f.api_name)
                            .and_then(Value::as_str)
                            .is_some_and(|s| s.to_lowercase().contains(&want))
                    })
            })
        }
    };
    let store = data.store(m);
    let mut hits = store
        .records
        .values()
        .filter(|r| shows(m, converted, r) && matcher(r));
    let rows: Vec<&Record> = hits.by_ref().skip(skip).take(take).collect();
    let more = skip + rows.len() < DISCRETE_LIMIT && hits.next().is_some();
    drop(hits);
    drop(matcher);
    if rows.is_empty() {
        return Ok(no_content(StatusCode::NO_CONTENT));
    }
    let data_rows: Vec<Value> = rows
        .iter()
        .map(|r| data.record_json(m, r, only.as_deref()))
        .collect();
    Ok(Json(json!({
        "data": data_rows,
        "info": { "per_page": per_page, "count": data_rows.len(), "page": page, "more_records": more },
    }))
    .into_response())
}

pub(crate) async fn deleted(
    State(state): State<AppState>,
    Path(module): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(deleted_inner(&state, &module, &q, &headers).await)
}

async fn deleted_inner(state: &AppState, module: &str, q: &Params, headers: &HeaderMap) -> Reply {
    let m = module_of(module)?;
    let call = begin(state, headers, Need::Module(m, "read")).await?;
    call.charge(2).await?;
    let kind = q.get("type").map(String::as_str).unwrap_or("all");
    if !matches!(kind, "all" | "recycle" | "permanent") {
        return Err(invalid(
            &format!("type must be all, recycle or permanent, got {kind}"),
            json!({ "param": "type", "supported_values": ["all", "recycle", "permanent"] }),
        ));
    }
    let ims = if_modified_since(headers)?;
    let per_page = number(q, "per_page", 200, 200)?;
    let page = number(q, "page", 1, usize::MAX)?;
    let data = call.org.data.lock();
    // Deleted records stay in the recycle bin: nothing is ever deleted permanently.
    let list: Vec<_> = if kind == "permanent" {
        Vec::new()
    } else {
        data.store(m)
            .deleted
            .iter()
            .rev()
            .filter(|d| ims.is_none_or(|t| d.deleted_time > t))
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page + 1)
            .collect()
    };
    if list.is_empty() {
        return Ok(no_content(StatusCode::NO_CONTENT));
    }
    let more = list.len() > per_page;
    let rows: Vec<Value> = list
        .iter()
        .take(per_page)
        .map(|d| data.deleted_json(d))
        .collect();
    Ok(Json(json!({
        "data": rows,
        "info": { "per_page": per_page, "count": rows.len(), "page": page, "more_records": more },
    }))
    .into_response())
}

pub(crate) async fn users(
    State(state): State<AppState>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(users_inner(&state, &q, &headers).await)
}

async fn users_inner(state: &AppState, q: &Params, headers: &HeaderMap) -> Reply {
    let call = begin(state, headers, Need::Users).await?;
    call.charge(1).await?;
    let kind = q.get("type").map(String::as_str).unwrap_or("AllUsers");
    let Some(keep) = user_filter(kind, call.user) else {
        return Err(invalid(
            &format!("type {kind} is not supported"),
            json!({ "param": "type", "supported_values": USER_TYPES }),
        ));
    };
    let data = call.org.data.lock();
    let users: Vec<Value> = data
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| keep(u))
        .map(|(i, u)| u.api_json(i))
        .collect();
    if users.is_empty() {
        return Ok(no_content(StatusCode::NO_CONTENT));
    }
    Ok(Json(json!({
        "users": users,
        "info": { "per_page": 200, "count": users.len(), "page": 1, "more_records": false },
    }))
    .into_response())
}

/// The `type` values Zoho documents for `GET /users`.
const USER_TYPES: [&str; 10] = [
    "AllUsers",
    "ActiveUsers",
    "DeactiveUsers",
    "ConfirmedUsers",
    "NotConfirmedUsers",
    "DeletedUsers",
    "ActiveConfirmedUsers",
    "AdminUsers",
    "ActiveConfirmedAdmins",
    "CurrentUser",
];

type UserFilter = Box<dyn Fn(&User) -> bool>;

/// Which users a `type` lists; `me` is the token's user. Every sandbox user has
/// confirmed their invitation and none is deleted, so `NotConfirmedUsers` and
/// `DeletedUsers` are always empty.
fn user_filter(kind: &str, me: u64) -> Option<UserFilter> {
    let admin = |u: &User| u.profile == "Administrator";
    let active = |u: &User| u.status == "active";
    Some(match kind {
        "AllUsers" | "ConfirmedUsers" => Box::new(|_| true),
        "ActiveUsers" | "ActiveConfirmedUsers" => Box::new(active),
        "DeactiveUsers" => Box::new(|u| u.status == "disabled"),
        "NotConfirmedUsers" | "DeletedUsers" => Box::new(|_| false),
        "AdminUsers" => Box::new(admin),
        "ActiveConfirmedAdmins" => Box::new(move |u| active(u) && admin(u)),
        "CurrentUser" => Box::new(move |u| u.id == me),
        _ => return None,
    })
}

pub(crate) async fn fields(
    State(state): State<AppState>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Response {
    done(fields_inner(&state, &q, &headers).await)
}

async fn fields_inner(state: &AppState, q: &Params, headers: &HeaderMap) -> Reply {
    let call = begin(state, headers, Need::Fields).await?;
    call.charge(1).await?;
    let Some(name) = q.get("module").filter(|s| !s.trim().is_empty()) else {
        return Err(error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            json!({ "param": "module" }),
        ));
    };
    let m = Module::from_api(name.trim()).ok_or_else(|| {
        error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({ "param": "module" }),
        )
    })?;
    let data = call.org.data.lock();
    let fields: Vec<Value> = data.fields(m).iter().map(FieldDef::api_json).collect();
    Ok(Json(json!({ "fields": fields })).into_response())
}
