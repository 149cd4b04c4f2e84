//! The SAP C4C admin API under `/admin/sap_c4c`: tenants and their technical
//! user, settings, usage, records as stored, revocation, and lead conversion
//! as a sales rep would do it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{Kind, ORIGIN_TYPES, Set, Settings, TenantData};
use super::{Tenant, TenantSpec, create_tenant, describe};
use crate::admin::{AdminError, DeletedAt, parse_body};
use crate::seed::SeedSpec;
use crate::{AppState, Shared};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/tenants", post(add_tenant))
        .route("/tenants/{tenant}", get(get_tenant))
        .route(
            "/tenants/{tenant}/settings",
            get(get_settings).put(put_settings),
        )
        .route("/tenants/{tenant}/usage", get(usage))
        .route(
            "/tenants/{tenant}/records/{set}",
            get(stored_records).post(put_records),
        )
        .route(
            "/tenants/{tenant}/records/{set}/{id}",
            axum::routing::delete(delete_record),
        )
        .route("/tenants/{tenant}/revoke", post(revoke))
        .route("/leads/{id}/convert", post(convert))
}

fn tenant(state: &Shared, id: &str) -> Result<Arc<Tenant>, AdminError> {
    state
        .sap_c4c
        .tenant(id)
        .ok_or_else(|| AdminError::not_found(format!("tenant: no tenant {id}")))
}

fn set_of(name: &str) -> Result<Set, AdminError> {
    Set::parse(name).ok_or_else(|| {
        AdminError::not_found(format!(
            "set: {name} is not LeadCollection, IndividualCustomerCollection, ContactCollection, CorporateAccountCollection or EmployeeCollection"
        ))
    })
}

async fn add_tenant(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: TenantSpec = parse_body(&body)?;
    let tenant = create_tenant(&state, spec).map_err(AdminError::bad_request)?;
    Ok((StatusCode::CREATED, Json(json!(describe(&state, &tenant)))))
}

async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let tenant = tenant(&state, &id)?;
    Ok(Json(json!(describe(&state, &tenant))))
}

async fn get_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Settings>, AdminError> {
    Ok(Json(tenant(&state, &id)?.data.lock().settings.clone()))
}

async fn put_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Settings>, AdminError> {
    let tenant = tenant(&state, &id)?;
    let settings: Settings = parse_body(&body)?;
    settings.validate().map_err(AdminError::bad_request)?;
    tenant.data.lock().settings = settings.clone();
    Ok(Json(settings))
}

async fn usage(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let tenant = tenant(&state, &id)?;
    let data = tenant.data.lock();
    let now_ms = state.clock.now().timestamp_millis();
    Ok(Json(json!({
        "used": data.used_today(now_ms),
        "daily_requests": data.settings.daily_requests,
    })))
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let tenant = tenant(&state, &id)?;
    state.sap_c4c.revoke(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// A record as stored: every value, times in RFC 3339.
fn stored_json(
    data: &TenantData,
    set: Set,
    values: &std::collections::BTreeMap<String, Value>,
) -> Value {
    let table = data.table(set);
    let mut out = Map::new();
    for (name, value) in values {
        let value = match table.prop(name).map(|p| &p.kind) {
            Some(Kind::Time) => json!(
                DateTime::<Utc>::from_timestamp_millis(value.as_i64().unwrap_or_default())
                    .unwrap_or_default()
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            _ => value.clone(),
        };
        out.insert(name.clone(), value);
    }
    Value::Object(out)
}

async fn stored_records(
    State(state): State<AppState>,
    Path((id, set)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let tenant = tenant(&state, &id)?;
    let set = set_of(&set)?;
    let data = tenant.data.lock();
    let records: Vec<Value> = data
        .table(set)
        .records
        .values()
        .map(|r| stored_json(&data, set, &r.values))
        .collect();
    Ok(Json(json!({ "records": records })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRecords {
    records: Vec<Map<String, Value>>,
}

/// Stores records as given: read-only properties (times included, as RFC 3339
/// or `/Date(ms)/`) may be set, the rest is checked as the API checks it.
async fn put_records(
    State(state): State<AppState>,
    Path((id, set)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let tenant = tenant(&state, &id)?;
    let set = set_of(&set)?;
    let spec: PutRecords = parse_body(&body)?;
    let now_ms = state.clock.now().timestamp_millis();
    let mut data = tenant.data.lock();
    let mut stored = Vec::new();
    for (i, record) in spec.records.iter().enumerate() {
        let object_id = data
            .create(set, record, now_ms, true)
            .map_err(|e| AdminError::bad_request(format!("records[{i}]: {}", e.message)))?;
        let values = data.table(set).records[&object_id].values.clone();
        stored.push(stored_json(&data, set, &values));
    }
    Ok((StatusCode::CREATED, Json(json!({ "records": stored }))))
}

/// Deletes a record as a user would in C4C's screens (no trace is kept: the
/// OData v2 API offers no deleted-records feed, so a backdated deletion,
/// `?deleted_at=`, is checked like on the other CRMs and changes nothing).
async fn delete_record(
    State(state): State<AppState>,
    Path((id, set, object_id)): Path<(String, String, String)>,
    Query(when): Query<DeletedAt>,
) -> Result<StatusCode, AdminError> {
    when.at(state.clock.now())?;
    let tenant = tenant(&state, &id)?;
    let set = set_of(&set)?;
    match tenant.data.lock().table_mut(set).records.remove(&object_id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(AdminError::not_found(format!("id: no record {object_id}"))),
    }
}

/// A rep's conversion of a lead (by ObjectID) into an account and a contact.
async fn convert(
    State(state): State<AppState>,
    Path(lead): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let tenants: Vec<Arc<Tenant>> = state.sap_c4c.tenants.read().values().cloned().collect();
    let now_ms = state.clock.now().timestamp_millis();
    for tenant in tenants {
        let mut data = tenant.data.lock();
        if !data.table(Set::Lead).records.contains_key(&lead) {
            continue;
        }
        let (contact_object, contact_id) = data
            .convert_lead(&lead, now_ms)
            .map_err(|e| AdminError::conflict(format!("id: {}", e.message)))?;
        let account_id = data.table(Set::Lead).records[&lead]
            .text("AccountPartyID")
            .to_owned();
        return Ok(Json(json!({
            "contact_id": contact_object,
            "contact_number": contact_id,
            "account_id": account_id,
            "tenant": tenant.id,
        })));
    }
    Err(AdminError::not_found(format!("id: no lead {lead}")))
}

/// Seeds leads from generated people (the converted share is converted).
pub(crate) fn seed(data: &mut TenantData, spec: &SeedSpec, now_ms: i64) {
    let owners = data.active_owners();
    for person in crate::seed::generate(spec) {
        let changed = now_ms - person.modified_secs_ago * 1000;
        let created = now_ms - person.created_secs_ago * 1000;
        let company = person.company.clone().unwrap_or_else(|| {
            format!(
                "{} (private)",
                person.last_name.as_deref().unwrap_or("Unknown")
            )
        });
        let qualification = match person.score {
            70.. => "1",
            40..=69 => "2",
            _ => "3",
        };
        let origin = ORIGIN_TYPES
            .iter()
            .find(|(_, d)| *d == person.lead_source)
            .map_or("003", |(c, _)| c);
        let mut lead = Map::new();
        let name = person.full_name().unwrap_or_else(|| company.clone());
        lead.insert("Name".into(), json!(name));
        lead.insert("Company".into(), json!(company));
        for (key, value) in [
            ("ContactFirstName", &person.first_name),
            ("ContactLastName", &person.last_name),
            ("ContactEMail", &person.email),
            ("ContactPhone", &person.phone),
            ("ContactMobile", &person.mobile),
        ] {
            if let Some(v) = value {
                lead.insert(key.into(), json!(v));
            }
        }
        if !owners.is_empty() {
            lead.insert(
                "OwnerPartyID".into(),
                json!(owners[person.index % owners.len()]),
            );
        }
        lead.insert("QualificationLevelCode".into(), json!(qualification));
        lead.insert("OriginTypeCode".into(), json!(origin));
        lead.insert("SyncToPlezi_KUT".into(), json!(person.sync_flag));
        lead.insert("EmailOptOut_KUT".into(), json!(person.opted_out));
        lead.insert("CreationOn".into(), json!(created.min(changed)));
        lead.insert("EntityLastChangedOn".into(), json!(changed));
        match data.create(Set::Lead, &lead, now_ms, true) {
            Ok(id) if person.converted => {
                let _ = data.convert_lead(&id, changed);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(message = %error.message, "a seeded C4C lead was refused"),
        }
    }
}
