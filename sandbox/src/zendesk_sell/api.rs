//! The API handlers: leads and contacts (list, get, create, update, delete,
//! upsert), custom field definitions, users and lead conversions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::model::{self, Conversion, Data, Record, Resource};
use super::{ApiError, Ctx, json_response, serve};
use crate::AppState;

type Q = Query<Vec<(String, String)>>;

/// `per_page` when none is given, and the most it may be.
pub const DEFAULT_PER_PAGE: usize = 25;
/// The largest `per_page`.
pub const MAX_PER_PAGE: usize = 100;

fn one(type_name: &str, data: Value) -> Value {
    json!({ "data": data, "meta": { "type": type_name } })
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body, "")
}

/// A collection: items in envelopes, `meta.count` and the page links.
fn collection(type_name: &str, items: Vec<Value>, links: Value) -> Value {
    let count = items.len();
    let items: Vec<Value> = items.into_iter().map(|d| one(type_name, d)).collect();
    json!({ "items": items, "meta": { "type": "collection", "count": count, "links": links } })
}

/// The last value of a query parameter.
fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `page` and `per_page`, checked (400 `invalid_param`).
fn paging(query: &[(String, String)]) -> Result<(usize, usize), ApiError> {
    let page = match param(query, "page") {
        None => 1,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ApiError::invalid_param("page", "page must be a number from 1"))?,
    };
    let per_page = match param(query, "per_page") {
        None => DEFAULT_PER_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=MAX_PER_PAGE).contains(p))
            .ok_or_else(|| {
                ApiError::invalid_param("per_page", "per_page must be between 1 and 100")
            })?,
    };
    Ok((page, per_page))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The page links of a listing at `url`: self, first, prev and next pages.
fn links(url: &str, query: &[(String, String)], page: usize, more: bool) -> Value {
    let at = |p: usize| {
        let mut pairs: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        pairs.insert(0, format!("page={p}"));
        format!("{url}?{}", pairs.join("&"))
    };
    let mut links = json!({ "self": at(page), "first_page": at(1) });
    if page > 1 {
        links["prev_page"] = json!(at(page - 1));
    }
    if more {
        links["next_page"] = json!(at(page + 1));
    }
    links
}

/// One filter of a listing or an upsert.
enum Filter {
    Ids(Vec<u64>),
    Attr(String, String),
    Custom(String, String),
    Address(String, String),
}

impl Filter {
    fn matches(&self, record: &Record) -> bool {
        let same = |v: Option<&Value>, want: &str| match v {
            Some(Value::String(s)) => s.trim().eq_ignore_ascii_case(want.trim()),
            Some(Value::Number(n)) => n.to_string() == want,
            Some(Value::Bool(b)) => b.to_string() == want,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
            _ => false,
        };
        match self {
            Filter::Ids(ids) => ids.contains(&record.id),
            Filter::Attr(key, want) if key == "creator_id" => {
                record.creator_id.to_string() == *want
            }
            Filter::Attr(key, want) if key == "is_organization" => {
                let org = record.attrs.get(key) == Some(&json!(true));
                org.to_string() == *want
            }
            Filter::Attr(key, want) => same(record.attrs.get(key), want),
            Filter::Custom(name, want) => same(
                record.attrs.get("custom_fields").and_then(|c| c.get(name)),
                want,
            ),
            Filter::Address(key, want) => {
                same(record.attrs.get("address").and_then(|a| a.get(key)), want)
            }
        }
    }
}

/// The filters in a query; `paged` says which other parameters are allowed.
fn filters(
    resource: Resource,
    query: &[(String, String)],
    strict: bool,
    paged: bool,
) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in query {
        if let Some(name) = key
            .strip_prefix("custom_fields[")
            .and_then(|k| k.strip_suffix(']'))
        {
            out.push(Filter::Custom(name.to_owned(), value.clone()));
        } else if let Some(name) = key
            .strip_prefix("address[")
            .and_then(|k| k.strip_suffix(']'))
        {
            out.push(Filter::Address(name.to_owned(), value.clone()));
        } else if key == "ids" {
            let ids: Result<Vec<u64>, _> = value.split(',').map(|s| s.trim().parse()).collect();
            let ids = ids.map_err(|_| {
                ApiError::invalid_param("ids", "ids must be a comma-separated list of ids")
            })?;
            out.push(Filter::Ids(ids));
        } else if resource.filters().contains(&key.as_str()) {
            out.push(Filter::Attr(key.clone(), value.clone()));
        } else if paged && matches!(key.as_str(), "page" | "per_page" | "sort_by") {
        } else if strict {
            return Err(ApiError::invalid_param(
                key,
                format!(
                    "{key} is not a known parameter of /v2/{}",
                    resource.plural()
                ),
            ));
        }
    }
    Ok(out)
}

/// `sort_by=attr[:asc|:desc]`, checked; ties are broken by id, ascending.
fn sort(
    resource: Resource,
    records: &mut [&Record],
    sort_by: Option<&str>,
) -> Result<(), ApiError> {
    let Some(sort_by) = sort_by else {
        return Ok(());
    };
    let (key, order) = sort_by.split_once(':').unwrap_or((sort_by, "asc"));
    if !resource.sortable().contains(&key) || !matches!(order, "asc" | "desc") {
        return Err(ApiError::invalid_param(
            "sort_by",
            format!(
                "sort_by must be one of {} with an optional :asc or :desc",
                resource.sortable().join(", ")
            ),
        ));
    }
    let text = |r: &Record| r.text(key).unwrap_or_default().to_lowercase();
    records.sort_by(|a, b| {
        let by = match key {
            "id" => a.id.cmp(&b.id),
            "created_at" => a.created_ms.cmp(&b.created_ms),
            "updated_at" => a.updated_ms.cmp(&b.updated_ms),
            _ => text(a).cmp(&text(b)),
        };
        let by = if order == "desc" { by.reverse() } else { by };
        by.then(a.id.cmp(&b.id))
    });
    Ok(())
}

/// The records a listing sees: the live ones, and converted leads when the
/// account shows them.
fn visible(data: &Data, resource: Resource) -> Vec<&Record> {
    let mut records: Vec<&Record> = data.table(resource).records.values().collect();
    if resource == Resource::Lead && data.settings.converted_leads_visible {
        records.extend(data.converted.values());
        records.sort_by_key(|r| r.id);
    }
    records
}

fn collection_url(state: &AppState, resource: Resource) -> String {
    format!("{}/zendesk_sell/v2/{}", state.base_url, resource.plural())
}

/// `GET /v2/{leads,contacts}`.
pub(crate) async fn list(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    let url = collection_url(&state, resource);
    serve(&state, &headers, |ctx| {
        let data = ctx.account.data.lock();
        let (page, per_page) = paging(&query)?;
        let filters = filters(resource, &query, data.settings.strict_params, true)?;
        let mut records: Vec<&Record> = visible(&data, resource)
            .into_iter()
            .filter(|r| filters.iter().all(|f| f.matches(r)))
            .collect();
        sort(resource, &mut records, param(&query, "sort_by"))?;
        let start = (page - 1).saturating_mul(per_page);
        let items: Vec<Value> = records
            .iter()
            .skip(start)
            .take(per_page)
            .map(|r| r.render(resource))
            .collect();
        let more = records.len() > start.saturating_add(per_page);
        Ok(ok(&collection(
            resource.type_name(),
            items,
            links(&url, &query, page, more),
        )))
    })
}

fn parse_id(raw: &str, resource: Resource) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no {} with id {raw}", resource.type_name())))
}

/// `GET /v2/{leads,contacts}/{id}`.
pub(crate) async fn get_one(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(&state, &headers, |ctx| {
        let id = parse_id(&id, resource)?;
        let data = ctx.account.data.lock();
        let record = visible(&data, resource)
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| {
                ApiError::not_found(format!("no {} with id {id}", resource.type_name()))
            })?;
        Ok(ok(&one(resource.type_name(), record.render(resource))))
    })
}

/// The `data` object of a request body (400 for anything else).
fn body_data(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "Invalid JSON",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    match value.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_envelope",
            "Invalid envelope",
            "the body must be an object with a `data` object",
        )),
    }
}

/// Creates a record from checked attributes; its rendering.
fn insert(
    ctx: &Ctx,
    data: &mut Data,
    resource: Resource,
    mut attrs: Map<String, Value>,
) -> Result<Value, ApiError> {
    data.check_attrs(resource, &attrs)
        .map_err(|e| ApiError::invalid(resource, e))?;
    model::check_required(resource, &attrs).map_err(|e| ApiError::invalid(resource, e))?;
    attrs.entry("owner_id").or_insert(json!(ctx.user));
    if resource == Resource::Lead {
        attrs.entry("status").or_insert(json!("New"));
    } else {
        fill_person_name(&mut attrs);
    }
    let now = model::to_second(ctx.now_ms);
    let record = Record {
        id: super::next_id_of(ctx),
        creator_id: ctx.user,
        created_ms: now,
        updated_ms: now,
        attrs,
    };
    let rendered = record.render(resource);
    data.table_mut(resource).records.insert(record.id, record);
    Ok(rendered)
}

/// A person contact's `name` is its first and last names.
fn fill_person_name(attrs: &mut Map<String, Value>) {
    if attrs.get("is_organization") == Some(&json!(true)) {
        return;
    }
    let part = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let name = format!("{} {}", part("first_name"), part("last_name"));
    attrs.insert("name".into(), json!(name.trim()));
}

/// Changes a record with checked attributes; its rendering.
fn change(
    ctx: &Ctx,
    data: &mut Data,
    resource: Resource,
    id: u64,
    attrs: &Map<String, Value>,
) -> Result<Value, ApiError> {
    if resource == Resource::Lead && data.converted.contains_key(&id) {
        return Err(if data.settings.converted_leads_visible {
            ApiError::invalid(
                resource,
                model::Invalid {
                    code: "invalid",
                    field: "id".into(),
                    details: format!("lead {id} was converted and can no longer be changed"),
                },
            )
        } else {
            ApiError::not_found(format!("no lead with id {id}"))
        });
    }
    data.check_attrs(resource, attrs)
        .map_err(|e| ApiError::invalid(resource, e))?;
    let record =
        data.table(resource).records.get(&id).ok_or_else(|| {
            ApiError::not_found(format!("no {} with id {id}", resource.type_name()))
        })?;
    let mut merged = record.attrs.clone();
    model::merge(&mut merged, attrs);
    model::check_required(resource, &merged).map_err(|e| ApiError::invalid(resource, e))?;
    if resource == Resource::Contact {
        fill_person_name(&mut merged);
    }
    let now = model::to_second(ctx.now_ms);
    let record = data
        .table_mut(resource)
        .records
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("no {} with id {id}", resource.type_name())))?;
    record.attrs = merged;
    record.updated_ms = now.max(record.updated_ms);
    Ok(record.render(resource))
}

/// `POST /v2/{leads,contacts}`.
pub(crate) async fn create(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, |ctx| {
        let attrs = body_data(&body)?;
        let mut data = ctx.account.data.lock();
        let rendered = insert(ctx, &mut data, resource, attrs)?;
        Ok(ok(&one(resource.type_name(), rendered)))
    })
}

/// `PUT /v2/{leads,contacts}/{id}`: a partial update.
pub(crate) async fn update(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    serve(&state, &headers, |ctx| {
        let id = parse_id(&id, resource)?;
        let attrs = body_data(&body)?;
        let mut data = ctx.account.data.lock();
        let rendered = change(ctx, &mut data, resource, id, &attrs)?;
        Ok(ok(&one(resource.type_name(), rendered)))
    })
}

/// `DELETE /v2/{leads,contacts}/{id}`: 204.
pub(crate) async fn delete(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(&state, &headers, |ctx| {
        let id = parse_id(&id, resource)?;
        let mut data = ctx.account.data.lock();
        data.table_mut(resource)
            .records
            .remove(&id)
            .ok_or_else(|| {
                ApiError::not_found(format!("no {} with id {id}", resource.type_name()))
            })?;
        Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(axum::body::Body::empty())
            .unwrap_or_default())
    })
}

/// `POST /v2/{leads,contacts}/upsert?<filters>`: updates the one record the
/// filters match, creates one when none does, 409 when several do.
pub(crate) async fn upsert(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
    body: Bytes,
) -> Response {
    serve(&state, &headers, |ctx| {
        let attrs = body_data(&body)?;
        let mut data = ctx.account.data.lock();
        let filters = filters(resource, &query, true, false)?;
        if filters.is_empty() {
            return Err(ApiError::invalid_param(
                "filters",
                "an upsert needs at least one filter in the query",
            ));
        }
        let matched: Vec<u64> = data
            .table(resource)
            .records
            .values()
            .filter(|r| filters.iter().all(|f| f.matches(r)))
            .map(|r| r.id)
            .collect();
        let rendered = match matched.as_slice() {
            [] => insert(ctx, &mut data, resource, attrs)?,
            [id] => change(ctx, &mut data, resource, *id, &attrs)?,
            several => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "Conflict",
                    format!(
                        "{} {} match the filters: make them unique",
                        several.len(),
                        resource.plural()
                    ),
                ));
            }
        };
        Ok(ok(&one(resource.type_name(), rendered)))
    })
}

/// `GET /v2/{lead,contact}/custom_fields`.
pub(crate) async fn custom_fields(
    resource: Resource,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let url = format!(
        "{}/zendesk_sell/v2/{}/custom_fields",
        state.base_url,
        resource.type_name()
    );
    serve(&state, &headers, |ctx| {
        let data = ctx.account.data.lock();
        let at = data
            .users
            .first()
            .map(|u| model::format_time(u.created_ms))
            .unwrap_or_default();
        let items = data
            .fields(resource)
            .iter()
            .map(|f| f.render(resource, &at))
            .collect();
        Ok(ok(&collection(
            "custom_field",
            items,
            json!({ "self": url }),
        )))
    })
}

/// `GET /v2/users`: filters `ids`, `name`, `email`, `status`, `role`.
pub(crate) async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    let url = format!("{}/zendesk_sell/v2/users", state.base_url);
    serve(&state, &headers, |ctx| {
        let (page, per_page) = paging(&query)?;
        let data = ctx.account.data.lock();
        let mut users: Vec<&model::User> = data.users.iter().collect();
        for (key, value) in &query {
            match key.as_str() {
                "page" | "per_page" | "sort_by" => {}
                "ids" => {
                    let ids: Vec<u64> = value
                        .split(',')
                        .filter_map(|s| s.trim().parse().ok())
                        .collect();
                    users.retain(|u| ids.contains(&u.id));
                }
                "name" => users.retain(|u| u.name.eq_ignore_ascii_case(value.trim())),
                "email" => users.retain(|u| u.email.eq_ignore_ascii_case(value.trim())),
                "status" => users.retain(|u| u.status == *value),
                "role" => users.retain(|u| u.role == *value),
                other if data.settings.strict_params => {
                    return Err(ApiError::invalid_param(
                        other,
                        format!("{other} is not a known parameter of /v2/users"),
                    ));
                }
                _ => {}
            }
        }
        let start = (page - 1).saturating_mul(per_page);
        let more = users.len() > start.saturating_add(per_page);
        let items = users
            .iter()
            .skip(start)
            .take(per_page)
            .map(|u| u.render())
            .collect();
        Ok(ok(&collection(
            "user",
            items,
            links(&url, &query, page, more),
        )))
    })
}

/// `GET /v2/users/self`: the token's user.
pub(crate) async fn user_self(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, &headers, |ctx| {
        let data = ctx.account.data.lock();
        let user = data
            .users
            .iter()
            .find(|u| u.id == ctx.user)
            .ok_or_else(|| ApiError::not_found("the token's user is gone"))?;
        Ok(ok(&one("user", user.render())))
    })
}

/// `GET /v2/users/{id}`.
pub(crate) async fn user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(&state, &headers, |ctx| {
        let data = ctx.account.data.lock();
        let user = id
            .parse::<u64>()
            .ok()
            .and_then(|id| data.users.iter().find(|u| u.id == id))
            .ok_or_else(|| ApiError::not_found(format!("no user with id {id}")))?;
        Ok(ok(&one("user", user.render())))
    })
}

/// `GET /v2/lead_conversions`.
pub(crate) async fn conversions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    let url = format!("{}/zendesk_sell/v2/lead_conversions", state.base_url);
    serve(&state, &headers, |ctx| {
        let (page, per_page) = paging(&query)?;
        let data = ctx.account.data.lock();
        let lead = param(&query, "lead_id").and_then(|v| v.parse::<u64>().ok());
        let all: Vec<&Conversion> = data
            .conversions
            .iter()
            .filter(|c| lead.is_none_or(|l| c.lead_id == l))
            .collect();
        let start = (page - 1).saturating_mul(per_page);
        let more = all.len() > start.saturating_add(per_page);
        let items = all
            .iter()
            .skip(start)
            .take(per_page)
            .map(|c| c.render())
            .collect();
        Ok(ok(&collection(
            "lead_conversion",
            items,
            links(&url, &query, page, more),
        )))
    })
}

/// `POST /v2/lead_conversions` `{"data": {"lead_id", "owner_id"?}}`: the lead
/// becomes a person contact (and an organization contact when it names one,
/// reusing an organization of that name), and leaves the leads.
pub(crate) async fn convert(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, |ctx| {
        let attrs = body_data(&body)?;
        let invalid = |field: &str, code: &'static str, details: String| {
            let mut e = ApiError::invalid(
                Resource::Lead,
                model::Invalid {
                    code,
                    field: field.into(),
                    details,
                },
            );
            e.resource = Some("lead_conversion");
            e
        };
        if let Some(bad) = attrs
            .keys()
            .find(|k| !matches!(k.as_str(), "lead_id" | "owner_id" | "create_deal"))
        {
            return Err(invalid(
                bad,
                "unknown_attribute",
                format!("unknown attribute {bad} for lead_conversion"),
            ));
        }
        if attrs.get("create_deal") == Some(&json!(true)) {
            return Err(invalid(
                "create_deal",
                "invalid",
                "the sandbox does not emulate deals: create_deal must be false".into(),
            ));
        }
        let lead_id = attrs
            .get("lead_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("lead_id", "blank", "lead_id must be a lead id".into()))?;
        let mut data = ctx.account.data.lock();
        let owner = match attrs.get("owner_id") {
            Some(v) => {
                let id = v
                    .as_u64()
                    .filter(|id| data.users.iter().any(|u| u.id == *id));
                Some(id.ok_or_else(|| {
                    invalid(
                        "owner_id",
                        "invalid",
                        format!("owner_id {v} is not a user of this account"),
                    )
                })?)
            }
            None => None,
        };
        let lead = data.leads.records.remove(&lead_id).ok_or_else(|| {
            invalid(
                "lead_id",
                "invalid",
                format!("no lead with id {lead_id} to convert"),
            )
        })?;
        let conversion = convert_lead(ctx, &mut data, &lead, owner);
        data.converted.insert(lead.id, lead);
        data.conversions.push(conversion.clone());
        Ok(ok(&one("lead_conversion", conversion.render())))
    })
}

/// What a conversion makes of a lead: the contacts, and the conversion record.
pub(crate) fn convert_lead(
    ctx: &Ctx,
    data: &mut Data,
    lead: &Record,
    owner: Option<u64>,
) -> Conversion {
    const COPIED: &[&str] = &[
        "first_name",
        "last_name",
        "email",
        "phone",
        "mobile",
        "fax",
        "title",
        "description",
        "industry",
        "website",
        "twitter",
        "facebook",
        "linkedin",
        "skype",
        "address",
        "tags",
        "owner_id",
    ];
    let now = model::to_second(ctx.now_ms);
    let owner = owner
        .map(|o| json!(o))
        .or_else(|| lead.attrs.get("owner_id").cloned());
    let organization_id = lead
        .text("organization_name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let existing = data.contacts.records.values().find(|c| {
                c.attrs.get("is_organization") == Some(&json!(true))
                    && c.text("name").is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
            match existing {
                Some(org) => org.id,
                None => {
                    let mut attrs = Map::new();
                    attrs.insert("is_organization".into(), json!(true));
                    attrs.insert("name".into(), json!(name));
                    if let Some(owner) = &owner {
                        attrs.insert("owner_id".into(), owner.clone());
                    }
                    let id = super::next_id_of(ctx);
                    data.contacts.records.insert(
                        id,
                        Record {
                            id,
                            creator_id: ctx.user,
                            created_ms: now,
                            updated_ms: now,
                            attrs,
                        },
                    );
                    id
                }
            }
        });
    let mut attrs: Map<String, Value> = COPIED
        .iter()
        .filter_map(|k| lead.attrs.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    if let Some(owner) = owner {
        attrs.insert("owner_id".into(), owner);
    }
    if let Some(Value::Object(custom)) = lead.attrs.get("custom_fields") {
        // A lead's custom field carries over to the contact field of the same name when it fits.
        let kept: Map<String, Value> = custom
            .iter()
            .filter(|(name, value)| {
                let one = json!({ "custom_fields": { name.as_str(): value } });
                one.as_object()
                    .is_some_and(|o| data.check_attrs(Resource::Contact, o).is_ok())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attrs.insert("custom_fields".into(), Value::Object(kept));
    }
    if let Some(org) = organization_id {
        attrs.insert("contact_id".into(), json!(org));
    }
    if model::check_required(Resource::Contact, &attrs).is_err() {
        // A lead with only an organization name: the person takes it as last name.
        let last = lead
            .text("organization_name")
            .unwrap_or("Unknown")
            .to_owned();
        attrs.insert("last_name".into(), json!(last));
    }
    fill_person_name(&mut attrs);
    let individual_id = super::next_id_of(ctx);
    data.contacts.records.insert(
        individual_id,
        Record {
            id: individual_id,
            creator_id: ctx.user,
            created_ms: now,
            updated_ms: now,
            attrs,
        },
    );
    Conversion {
        id: super::next_id_of(ctx),
        lead_id: lead.id,
        individual_id,
        organization_id,
        creator_id: ctx.user,
        created_ms: now,
    }
}

/// Any other method on a known path.
pub(crate) async fn method_not_allowed(State(state): State<AppState>) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this resource does not answer this method",
    )
    .render(&state.zendesk_sell.request_id())
}

/// Any other path.
pub(crate) async fn unknown_path(State(state): State<AppState>) -> Response {
    ApiError::not_found("no such resource in the sandbox's API v2")
        .render(&state.zendesk_sell.request_id())
}
