//! The Salesforce admin API under `/admin/salesforce`: orgs and their
//! credentials, certificates for the JWT bearer flow, settings, the daily
//! limit and its usage, records as stored, users, custom fields, revocation,
//! session expiry, and lead conversion as a rep would do it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::convert_lead;
use super::model::{
    FieldSpec, LEAD_SOURCES, LEAD_STATUSES, Org, OrgData, Record, SObject, Settings, Val, render,
    to_val,
};
use super::oauth::decoding_key;
use super::{OrgSpec, UserSpec, create_org, describe};
use crate::admin::{AdminError, DeletedAt, parse_body};
use crate::seed::SeedSpec;
use crate::{AppState, Shared};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/orgs", get(list_orgs).post(add_org))
        .route("/orgs/{org}", get(get_org))
        .route("/orgs/{org}/certificates", post(add_certificate))
        .route("/orgs/{org}/settings", get(get_settings).put(put_settings))
        .route("/orgs/{org}/limits", get(get_limits).put(put_limits))
        .route("/orgs/{org}/usage", get(usage))
        .route(
            "/orgs/{org}/records/{sobject}",
            get(stored_records).post(put_records),
        )
        .route(
            "/orgs/{org}/records/{sobject}/{id}",
            axum::routing::delete(delete_record),
        )
        .route("/orgs/{org}/users", post(add_user_route))
        .route("/orgs/{org}/fields/{sobject}", post(add_field))
        .route("/orgs/{org}/revoke", post(revoke))
        .route("/orgs/{org}/sessions/expire", post(expire_sessions))
        .route("/leads/{id}/convert", post(convert))
}

fn org(state: &Shared, id: &str) -> Result<Arc<Org>, AdminError> {
    state
        .salesforce
        .org(id)
        .ok_or_else(|| AdminError::not_found(format!("org: no org {id}")))
}

fn record_object(name: &str) -> Result<SObject, AdminError> {
    SObject::parse(name)
        .filter(|o| o.writable())
        .ok_or_else(|| AdminError::not_found(format!("sobject: {name} is not Lead or Contact")))
}

async fn add_org(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: OrgSpec = parse_body(&body)?;
    let org = create_org(&state, spec).map_err(AdminError::bad_request)?;
    Ok((StatusCode::CREATED, Json(json!(describe(&state, &org)))))
}

async fn list_orgs(State(state): State<AppState>) -> Json<Value> {
    let orgs: Vec<Value> = state
        .salesforce
        .orgs()
        .iter()
        .map(|o| json!(describe(&state, o)))
        .collect();
    Json(json!({ "orgs": orgs }))
}

async fn get_org(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &id)?;
    Ok(Json(json!(describe(&state, &org))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Certificate {
    certificate: String,
}

async fn add_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let org = org(&state, &id)?;
    let cert: Certificate = parse_body(&body)?;
    decoding_key(&cert.certificate)
        .map_err(|e| AdminError::bad_request(format!("certificate: {e}")))?;
    state.salesforce.add_certificate(&org.id, &cert.certificate);
    let client_id = describe(&state, &org).client_id;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "org_id": org.id, "client_id": client_id })),
    ))
}

async fn get_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Settings>, AdminError> {
    let org = org(&state, &id)?;
    let settings = org.data.lock().settings.clone();
    Ok(Json(settings))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    duplicate_rule: Option<super::model::DuplicateRule>,
    session_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "explicit")]
    batch_size: Option<Option<usize>>,
}

/// Tells a given `null` (Some(None)) from an absent field (None).
fn explicit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
    Option::<usize>::deserialize(d).map(Some)
}

async fn put_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Settings>, AdminError> {
    let org = org(&state, &id)?;
    let change: SettingsChange = parse_body(&body)?;
    let mut data = org.data.lock();
    let mut settings = data.settings.clone();
    if let Some(rule) = change.duplicate_rule {
        settings.duplicate_rule = rule;
    }
    if let Some(secs) = change.session_timeout_secs {
        settings.session_timeout_secs = secs;
    }
    if let Some(batch) = change.batch_size {
        settings.batch_size = batch;
    }
    settings.validate().map_err(AdminError::bad_request)?;
    data.settings = settings.clone();
    Ok(Json(settings))
}

fn usage_json(state: &Shared, org: &Org) -> Value {
    let now = state.clock.now().timestamp_millis();
    let mut usage = org.usage.lock();
    let used = usage.used(now);
    json!({
        "daily_api_requests": usage.max,
        "used": used,
        "remaining": usage.max.saturating_sub(used),
    })
}

async fn get_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &id)?;
    Ok(Json(usage_json(&state, &org)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsChange {
    daily_api_requests: u64,
}

async fn put_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &id)?;
    let change: LimitsChange = parse_body(&body)?;
    if change.daily_api_requests == 0 {
        return Err(AdminError::bad_request(
            "daily_api_requests: must be at least 1",
        ));
    }
    org.usage.lock().max = change.daily_api_requests;
    Ok(Json(usage_json(&state, &org)))
}

async fn usage(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &id)?;
    Ok(Json(usage_json(&state, &org)))
}

fn stored_json(data: &OrgData, object: SObject, id: &str, record: &Record) -> Value {
    let table = data.table(object);
    let all: Vec<usize> = (0..table.schema.fields.len()).collect();
    render(
        object,
        &table.schema,
        id,
        record,
        &all,
        super::model::API_VERSION,
    )
}

async fn stored_records(
    State(state): State<AppState>,
    Path((id, sobject)): Path<(String, String)>,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &id)?;
    let object = record_object(&sobject)?;
    let data = org.data.lock();
    let records: Vec<Value> = data
        .table(object)
        .records
        .iter()
        .map(|(id, r)| stored_json(&data, object, id, r))
        .collect();
    Ok(Json(json!({ "records": records })))
}

/// Deletes a record as a user does in Salesforce's screens: to the recycle
/// bin now, listed by `sobjects/{T}/deleted` and `queryAll`.
async fn delete_record(
    State(state): State<AppState>,
    Path((org_id, sobject, id)): Path<(String, String, String)>,
    Query(when): Query<DeletedAt>,
) -> Result<Json<Value>, AdminError> {
    let org = org(&state, &org_id)?;
    let object = record_object(&sobject)?;
    let now = when.at(state.clock.now())?.timestamp_millis();
    if !org.data.lock().recycle(object, &id, now) {
        return Err(AdminError::not_found(format!(
            "id: no live {sobject} {id} in org {org_id} (18-character ids)"
        )));
    }
    Ok(Json(
        json!({ "id": id, "deletedDate": super::model::format_datetime(now) }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecords {
    records: Vec<Map<String, Value>>,
}

/// Stores records as given: any field, read-only ones and times included, no
/// write rules. Missing times are now; a deleted one (`IsDeleted` true) went
/// to the recycle bin at its SystemModstamp.
pub(crate) fn put_raw(
    data: &mut OrgData,
    object: SObject,
    raw: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, String> {
    // The schema is lent out while the record is built (no copy per record);
    // it goes back before the record is stored.
    let schema = std::mem::take(&mut data.table_mut(object).schema);
    let built = build_raw(data, object, &schema, raw, now_ms);
    data.table_mut(object).schema = schema;
    let (id, record) = built?;
    data.table_mut(object).put(&id, record);
    Ok(id)
}

fn build_raw(
    data: &mut OrgData,
    object: SObject,
    schema: &super::model::Schema,
    raw: &Map<String, Value>,
    now_ms: i64,
) -> Result<(String, Record), String> {
    let mut record = Record::default();
    let mut given_id = None;
    for (name, value) in raw {
        if name == "attributes" {
            continue;
        }
        let field = schema
            .field(name)
            .ok_or_else(|| format!("{name}: no such field on {}", object.name()))?;
        let val = to_val(field, value).map_err(|e| format!("{name}: {}", e.0))?;
        if field.name == "Id" {
            given_id = val.as_str().map(str::to_owned);
        }
        record.set(schema.at(&field.name), val);
    }
    let id = match given_id {
        Some(id) => {
            if SObject::of_id(&id) != Some(object) || id.len() != 18 {
                return Err(format!(
                    "Id: {id} is not an 18-character {} id",
                    object.name()
                ));
            }
            if data.table(object).records.contains_key(id.as_str()) {
                return Err(format!("Id: {id} is taken"));
            }
            id
        }
        None => data.new_id(object.key_prefix()),
    };
    record.set(schema.at("Id"), Val::Text(id.as_str().into()));
    let time = |r: &Record, f: &str| match r.get(schema.at(f)) {
        Val::Time(t) => Some(*t),
        _ => None,
    };
    let created = time(&record, "CreatedDate").unwrap_or(now_ms);
    let modified = time(&record, "LastModifiedDate").unwrap_or(created);
    let modstamp = time(&record, "SystemModstamp").unwrap_or(modified);
    record.set(schema.at("CreatedDate"), Val::Time(created));
    record.set(schema.at("LastModifiedDate"), Val::Time(modified));
    record.set(schema.at("SystemModstamp"), Val::Time(modstamp));
    for (i, field) in schema.fields.iter().enumerate() {
        if *record.get(i) == Val::Null
            && let Some(default) = &field.default_value
        {
            record.set(i, to_val(field, default).unwrap_or_default());
        }
    }
    for flag in ["IsDeleted", "IsConverted"] {
        if let Some(i) = schema.index(flag)
            && *record.get(i) == Val::Null
        {
            record.set(i, Val::Bool(false));
        }
    }
    if *record.get(schema.at("OwnerId")) == Val::Null
        && let Some(owner) = data.default_owner()
    {
        record.set(schema.at("OwnerId"), Val::Text(owner.into()));
    }
    if record.get(schema.at("IsDeleted")).is_true() {
        record.deleted_ms = Some(modstamp);
    }
    Ok((id, record))
}

async fn put_records(
    State(state): State<AppState>,
    Path((id, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let org = org(&state, &id)?;
    let object = record_object(&sobject)?;
    let raw: RawRecords = parse_body(&body)?;
    let now = state.clock.now().timestamp_millis();
    let mut data = org.data.lock();
    let mut stored = Vec::with_capacity(raw.records.len());
    for (i, record) in raw.records.iter().enumerate() {
        let id = put_raw(&mut data, object, record, now)
            .map_err(|e| AdminError::bad_request(format!("records[{i}].{e}")))?;
        stored.push(id);
    }
    let records: Vec<Value> = stored
        .iter()
        .filter_map(|id| {
            data.table(object)
                .records
                .get(id.as_str())
                .map(|r| stored_json(&data, object, id, r))
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "records": records }))))
}

/// Adds a user; its id, or what is wrong (naming the field).
pub(crate) fn add_user(data: &mut OrgData, spec: &UserSpec, now_ms: i64) -> Result<String, String> {
    if !super::model::valid_email(&spec.email) {
        return Err(format!("email: {:?} is not an e-mail address", spec.email));
    }
    if spec.last_name.trim().is_empty() {
        return Err("last_name: must not be empty".into());
    }
    let username = spec.username.clone().unwrap_or_else(|| spec.email.clone());
    if data.user_by_username(&username).is_some() {
        return Err(format!("username: {username} is taken"));
    }
    let id = data.new_id(SObject::User.key_prefix());
    let schema = data.table(SObject::User).schema.clone();
    let mut record = Record::default();
    let text = |s: &str| Val::Text(s.into());
    let name = match &spec.first_name {
        Some(first) => format!("{first} {}", spec.last_name),
        None => spec.last_name.clone(),
    };
    record.set(schema.at("Id"), text(&id));
    record.set(schema.at("Username"), text(&username));
    record.set(schema.at("Email"), text(&spec.email));
    record.set(schema.at("Name"), text(&name));
    if let Some(first) = &spec.first_name {
        record.set(schema.at("FirstName"), text(first));
    }
    record.set(schema.at("LastName"), text(&spec.last_name));
    record.set(schema.at("IsActive"), Val::Bool(spec.is_active));
    for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        record.set(schema.at(f), Val::Time(now_ms));
    }
    data.table_mut(SObject::User).put(&id, record);
    Ok(id)
}

async fn add_user_route(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let org = org(&state, &id)?;
    let spec: UserSpec = parse_body(&body)?;
    let now = state.clock.now().timestamp_millis();
    let mut data = org.data.lock();
    let user = add_user(&mut data, &spec, now).map_err(AdminError::bad_request)?;
    let record = data
        .table(SObject::User)
        .records
        .get(user.as_str())
        .cloned()
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(stored_json(&data, SObject::User, &user, &record)),
    ))
}

async fn add_field(
    State(state): State<AppState>,
    Path((id, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let org = org(&state, &id)?;
    let object = record_object(&sobject)?;
    let spec: FieldSpec = parse_body(&body)?;
    let field = spec.build().map_err(AdminError::bad_request)?;
    let mut data = org.data.lock();
    let table = data.table_mut(object);
    if table.schema.index(&field.name).is_some() {
        return Err(AdminError::conflict(format!(
            "name: {} already exists on {}",
            field.name,
            object.name()
        )));
    }
    let described = field.describe();
    table.schema.push(field);
    Ok((StatusCode::CREATED, Json(described)))
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let org = org(&state, &id)?;
    state.salesforce.revoke(&org.id);
    Ok(StatusCode::NO_CONTENT)
}

async fn expire_sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let org = org(&state, &id)?;
    state.salesforce.expire_sessions(&org.id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertRequest {
    contact_id: Option<String>,
}

async fn convert(
    State(state): State<AppState>,
    Path(lead_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let request: ConvertRequest = parse_body(&body)?;
    let (org, _) = super::org_of_record(&state, &lead_id)
        .filter(|(_, o)| *o == SObject::Lead)
        .ok_or_else(|| AdminError::not_found(format!("id: no lead {lead_id}")))?;
    let now = state.clock.now().timestamp_millis();
    let mut data = org.data.lock();
    if let Some(contact) = &request.contact_id
        && !data
            .table(SObject::Contact)
            .records
            .contains_key(contact.as_str())
    {
        return Err(AdminError::not_found(format!(
            "contact_id: no contact {contact} in the lead's org"
        )));
    }
    let (contact_id, account_id) =
        convert_lead(&mut data, &lead_id, request.contact_id.as_deref(), now)
            .map_err(AdminError::conflict)?;
    Ok(Json(
        json!({ "contact_id": contact_id, "account_id": account_id }),
    ))
}

/// Seeds an org with generated people as leads: some without e-mail, some
/// sharing an e-mail, some opted out, some carrying `Sync_To_Plezi__c` and a
/// `Plezi_URL__c`, and some converted (each with its contact and account).
pub(crate) fn seed(data: &mut OrgData, spec: &SeedSpec, now_ms: i64) -> Vec<String> {
    let people = crate::seed::generate(spec);
    let owners: Vec<String> = {
        let users = data.table(SObject::User);
        let active = users.schema.at("IsActive");
        users
            .records
            .iter()
            .filter(|(_, r)| r.get(active).is_true())
            .map(|(id, _)| id.to_string())
            .collect()
    };
    let mut ids = Vec::with_capacity(people.len());
    for person in people {
        let created = now_ms - person.created_secs_ago * 1000;
        let modified = now_ms - person.modified_secs_ago * 1000;
        let mut raw = Map::new();
        raw.insert("FirstName".into(), json!(person.first_name));
        raw.insert(
            "LastName".into(),
            json!(person.last_name.clone().unwrap_or_else(|| "Unknown".into())),
        );
        raw.insert(
            "Company".into(),
            json!(
                person
                    .company
                    .clone()
                    .unwrap_or_else(|| "[not provided]".into())
            ),
        );
        raw.insert(
            "Email".into(),
            json!(person.email.as_ref().map(|e| e.trim().to_owned())),
        );
        raw.insert("Phone".into(), json!(person.phone));
        raw.insert("Title".into(), json!(person.job_title));
        raw.insert(
            "LeadSource".into(),
            json!(LEAD_SOURCES[person.index % LEAD_SOURCES.len()]),
        );
        raw.insert(
            "Status".into(),
            json!(LEAD_STATUSES[if person.index % 5 == 4 { 1 } else { 0 }]),
        );
        raw.insert("HasOptedOutOfEmail".into(), json!(person.opted_out));
        raw.insert("Sync_To_Plezi__c".into(), json!(person.sync_flag));
        if person.sync_flag {
            raw.insert(
                "Plezi_URL__c".into(),
                json!(format!(
                    "https://app.plezi.co/contacts/{}",
                    person.index + 1
                )),
            );
        }
        if !owners.is_empty() {
            raw.insert("OwnerId".into(), json!(owners[person.index % owners.len()]));
        }
        raw.insert(
            "CreatedDate".into(),
            json!(super::model::format_datetime(created)),
        );
        raw.insert(
            "LastModifiedDate".into(),
            json!(super::model::format_datetime(modified)),
        );
        let Ok(id) = put_raw(data, SObject::Lead, &raw, now_ms) else {
            continue;
        };
        if person.converted {
            let _ = convert_lead(data, &id, None, modified);
        }
        ids.push(id);
    }
    ids
}
