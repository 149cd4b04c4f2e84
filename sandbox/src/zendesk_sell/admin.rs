//! `/admin/zendesk_sell/...`: create accounts, store and read records as
//! given, read and set the rate limits and settings, revoke and mint tokens.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{self, Account, Data, Record, Resource};
use super::{AccountSpec, ZendeskSellState, create_account, describe};
use crate::AppState;
use crate::admin::{AdminError, DeletedAt, parse_body};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(create))
        .route("/accounts/{id}", get(show))
        .route(
            "/accounts/{id}/records/{resource}",
            get(records).post(put_records),
        )
        .route(
            "/accounts/{id}/records/{resource}/{record}",
            delete(delete_record),
        )
        .route("/accounts/{id}/usage", get(usage))
        .route("/accounts/{id}/limits", patch(set_limits))
        .route("/accounts/{id}/settings", patch(set_settings))
        .route("/accounts/{id}/revoke", post(revoke))
        .route("/accounts/{id}/tokens", post(mint))
}

fn account(state: &AppState, id: u64) -> Result<std::sync::Arc<Account>, AdminError> {
    state
        .zendesk_sell
        .account(id)
        .ok_or_else(|| AdminError::not_found(format!("id: no Zendesk Sell account {id}")))
}

fn resource(raw: &str) -> Result<Resource, AdminError> {
    Resource::parse(raw).ok_or_else(|| {
        AdminError::bad_request(format!("resource: must be leads or contacts, got {raw}"))
    })
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, AdminError> {
    let spec: AccountSpec = parse_body(&body)?;
    let (account, token) = create_account(&state, spec).map_err(AdminError::bad_request)?;
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &account, &token)),
    )
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, AdminError> {
    let account = account(&state, id)?;
    let data = account.data.lock();
    Ok(Json(json!({
        "id": account.id,
        "name": account.name,
        "limits": account.limits.lock().config,
        "settings": data.settings,
        "users": data.users.iter().map(model::User::render).collect::<Vec<_>>(),
    })))
}

/// Live records as the API renders them; for leads, the converted ones too.
async fn records(
    State(state): State<AppState>,
    Path((id, raw)): Path<(u64, String)>,
) -> Result<Json<Value>, AdminError> {
    let resource = resource(&raw)?;
    let account = account(&state, id)?;
    let data = account.data.lock();
    let live: Vec<Value> = data
        .table(resource)
        .records
        .values()
        .map(|r| r.render(resource))
        .collect();
    let mut out = json!({ "records": live });
    if resource == Resource::Lead {
        out["converted"] = data
            .converted
            .values()
            .map(|r| r.render(resource))
            .collect();
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRecords {
    records: Vec<Map<String, Value>>,
}

/// Stores records as given: `created_at`, `updated_at` and `creator_id` may be
/// set; the rest is checked as the API checks it.
async fn put_records(
    State(state): State<AppState>,
    Path((id, raw)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let resource = resource(&raw)?;
    let account = account(&state, id)?;
    let put: PutRecords = parse_body(&body)?;
    let now = model::to_second(state.clock.now().timestamp_millis());
    let mut data = account.data.lock();
    let admin_user = data.users.first().map_or(0, |u| u.id);
    let mut made = Vec::new();
    for (i, mut attrs) in put.records.into_iter().enumerate() {
        let mut time = |key: &str| -> Result<Option<i64>, AdminError> {
            match attrs.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(model::parse_time)
                    .map(|t| Some(model::to_second(t)))
                    .ok_or_else(|| {
                        AdminError::bad_request(format!(
                            "records[{i}].{key}: must be an RFC 3339 time"
                        ))
                    }),
            }
        };
        let created = time("created_at")?;
        let updated = time("updated_at")?;
        let creator = match attrs.remove("creator_id") {
            None => admin_user,
            Some(v) => v.as_u64().ok_or_else(|| {
                AdminError::bad_request(format!("records[{i}].creator_id: must be a user id"))
            })?,
        };
        let reject = |e: model::Invalid| {
            AdminError::bad_request(format!("records[{i}].{}: {}", e.field, e.details))
        };
        data.check_attrs(resource, &attrs).map_err(reject)?;
        model::check_required(resource, &attrs).map_err(reject)?;
        attrs.entry("owner_id").or_insert(json!(admin_user));
        let updated = updated.or(created).unwrap_or(now);
        let record = Record {
            id: state.zendesk_sell.next_id(),
            creator_id: creator,
            created_ms: created.unwrap_or(updated).min(updated),
            updated_ms: updated,
            attrs,
        };
        made.push(record.render(resource));
        data.table_mut(resource).records.insert(record.id, record);
    }
    Ok((StatusCode::CREATED, Json(json!({ "records": made }))).into_response())
}

/// Deletes a record as a rep would in Sell's screens (no trace is kept
/// outside the Sync API, which the sandbox does not emulate, so a backdated
/// deletion, `?deleted_at=`, is checked like on the other CRMs and changes
/// nothing).
async fn delete_record(
    State(state): State<AppState>,
    Path((id, raw, record)): Path<(u64, String, u64)>,
    Query(when): Query<DeletedAt>,
) -> Result<StatusCode, AdminError> {
    when.at(state.clock.now())?;
    let resource = resource(&raw)?;
    let account = account(&state, id)?;
    let mut data = account.data.lock();
    data.table_mut(resource)
        .records
        .remove(&record)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| {
            AdminError::not_found(format!("record: no {} {record}", resource.type_name()))
        })
}

async fn usage(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, AdminError> {
    let account = account(&state, id)?;
    let now = state.clock.now().timestamp_millis();
    let mut limits = account.limits.lock();
    Ok(Json(json!({
        "used": limits.used(now),
        "hourly": limits.config.hourly,
        "per_second": limits.config.per_second,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitPatch {
    hourly: Option<u64>,
    per_second: Option<u64>,
    /// Forget the requests counted so far.
    #[serde(default)]
    reset: bool,
}

async fn set_limits(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let account = account(&state, id)?;
    let patch: LimitPatch = parse_body(&body)?;
    let mut limits = account.limits.lock();
    let mut config = limits.config;
    config.hourly = patch.hourly.unwrap_or(config.hourly);
    config.per_second = patch.per_second.unwrap_or(config.per_second);
    config.validate().map_err(AdminError::bad_request)?;
    limits.config = config;
    if patch.reset {
        limits.reset();
    }
    Ok(Json(json!(config)))
}

async fn set_settings(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let account = account(&state, id)?;
    let mut data = account.data.lock();
    let mut current = serde_json::to_value(&data.settings).unwrap_or_default();
    let patch: Map<String, Value> = parse_body(&body)?;
    for (k, v) in patch {
        current[k] = v;
    }
    data.settings = serde_json::from_value(current)
        .map_err(|e| AdminError::bad_request(format!("settings: {e}")))?;
    Ok(Json(json!(data.settings)))
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, AdminError> {
    account(&state, id)?;
    state.zendesk_sell.revoke(id);
    Ok(StatusCode::NO_CONTENT)
}

/// A new token of the account's first user.
async fn mint(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Response, AdminError> {
    let account = account(&state, id)?;
    let user = account.data.lock().users.first().map_or(0, |u| u.id);
    let token = state
        .zendesk_sell
        .mint_token(state.config.seed ^ 0x70_6B, id, user);
    Ok((
        StatusCode::CREATED,
        Json(describe(&state, &account, &token)),
    )
        .into_response())
}

/// Seeds generated people: leads, and the converted ones as person contacts.
pub(crate) fn seed(
    zs: &ZendeskSellState,
    data: &mut Data,
    spec: &crate::seed::SeedSpec,
    now_ms: i64,
) {
    let owners: Vec<u64> = data
        .users
        .iter()
        .filter(|u| u.status == "active")
        .map(|u| u.id)
        .collect();
    for p in crate::seed::generate(spec) {
        if p.last_name.is_none() && p.company.is_none() {
            continue;
        }
        let resource = if p.converted {
            Resource::Contact
        } else {
            Resource::Lead
        };
        let mut attrs = Map::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v {
                attrs.insert(k.into(), json!(v));
            }
        };
        put("first_name", p.first_name.as_ref());
        put("last_name", p.last_name.as_ref());
        put("email", p.email.as_ref());
        put("phone", p.phone.as_ref());
        put("mobile", p.mobile.as_ref());
        put("title", p.job_title.as_ref());
        if resource == Resource::Lead {
            put("organization_name", p.company.as_ref());
            attrs.insert("status".into(), json!("New"));
        }
        attrs.insert("industry".into(), json!(p.industry));
        attrs.insert(
            "address".into(),
            json!({ "line1": null, "city": p.city, "postal_code": null, "state": null, "country": p.country }),
        );
        if let Some(owner) = owners.get(p.index % owners.len().max(1)) {
            attrs.insert("owner_id".into(), json!(owner));
        }
        let mut custom = Map::new();
        let fields = data.fields(resource);
        let has = |name: &str| fields.iter().any(|f| f.name == name);
        if has("sync_to_plezi") {
            custom.insert("sync_to_plezi".into(), json!(p.sync_flag));
        }
        if has("score") {
            custom.insert("score".into(), json!(p.score));
        }
        if has("source") {
            custom.insert("source".into(), json!(p.source));
        }
        if has("status") {
            let status = if p.converted { "Client" } else { "Prospect" };
            custom.insert("status".into(), json!(status));
        }
        attrs.insert("custom_fields".into(), Value::Object(custom));
        if resource == Resource::Contact {
            let name = p.full_name().unwrap_or_default();
            attrs.insert("name".into(), json!(name));
        }
        if model::check_required(resource, &attrs).is_err() {
            continue;
        }
        let created = model::to_second(now_ms - p.created_secs_ago * 1000);
        let updated = model::to_second(now_ms - p.modified_secs_ago * 1000).max(created);
        let record = Record {
            id: zs.next_id(),
            creator_id: data.users.first().map_or(0, |u| u.id),
            created_ms: created,
            updated_ms: updated,
            attrs,
        };
        data.table_mut(resource).records.insert(record.id, record);
    }
}
