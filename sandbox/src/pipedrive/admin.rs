//! The Pipedrive admin API under `/admin/pipedrive`: companies, tokens, fields,
//! seeding, persons as stored, limits and usage.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{self, Company, Contact, FieldSpec, Person, Render};
use super::{CompanySpec, CreateError, LimitPatch, create_company, describe};
use crate::admin::{AdminError, DeletedAt, parse_body};
use crate::seed::SeedSpec;
use crate::{AppState, Shared};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/companies", get(list_companies).post(add_company))
        .route("/companies/{domain}", get(get_company))
        .route("/companies/{domain}/tokens", post(mint_token))
        .route("/companies/{domain}/fields", post(add_field))
        .route("/companies/{domain}/seed", post(seed_persons))
        .route(
            "/companies/{domain}/persons",
            get(stored_persons).post(put_persons),
        )
        .route(
            "/companies/{domain}/persons/{id}",
            axum::routing::delete(delete_person),
        )
        .route(
            "/companies/{domain}/limits",
            get(get_limits).patch(patch_limits),
        )
        .route(
            "/companies/{domain}/limits/exhaust-daily",
            post(exhaust_daily),
        )
        .route("/companies/{domain}/usage", get(usage))
        .route("/companies/{domain}/webhooks", get(stored_webhooks))
        .route(
            "/companies/{domain}/webhooks/{id}",
            axum::routing::delete(remove_webhook),
        )
}

fn company(state: &Shared, domain: &str) -> Result<Arc<Company>, AdminError> {
    state
        .pipedrive
        .company(domain)
        .ok_or_else(|| AdminError::not_found(format!("domain: no company {domain}")))
}

fn company_json(state: &Shared, company: &Company) -> Value {
    let tokens = state.pipedrive.tokens_of(company.id);
    let first = tokens.first().map(|(t, _)| t.clone()).unwrap_or_default();
    let description = describe(state, company, &first);
    let data = company.data.lock();
    let limits = company.usage.lock().config.clone();
    json!({
        "id": company.id,
        "domain": company.domain,
        "name": company.name,
        "base_url": description.base_url,
        "api_token": first,
        "user_id": description.user_id,
        "tokens": tokens.iter().map(|(t, u)| json!({ "token": t, "user_id": u })).collect::<Vec<_>>(),
        "users": data.users,
        "field_keys": description.field_keys,
        "custom_fields": data.fields,
        "limits": limits,
        "person_count": data.live_ids.len(),
    })
}

async fn add_company(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: CompanySpec = parse_body(&body)?;
    match create_company(&state, spec) {
        Ok((company, _)) => Ok((StatusCode::CREATED, Json(company_json(&state, &company)))),
        Err(CreateError::Invalid(message)) => Err(AdminError::bad_request(message)),
        Err(CreateError::Taken(message)) => Err(AdminError::conflict(message)),
    }
}

async fn list_companies(State(state): State<AppState>) -> Json<Value> {
    let companies: Vec<Value> = state
        .pipedrive
        .companies()
        .iter()
        .map(|c| company_json(&state, c))
        .collect();
    Json(json!({ "companies": companies }))
}

async fn get_company(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    Ok(Json(company_json(&state, &company)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user_id: Option<u64>,
}

async fn mint_token(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let request: TokenRequest = parse_body(&body)?;
    let company = company(&state, &domain)?;
    let user_id = {
        let data = company.data.lock();
        match request.user_id {
            Some(id) if data.user(id).is_some() => id,
            Some(id) => {
                return Err(AdminError::bad_request(format!(
                    "user_id: no user {id} in company {domain}"
                )));
            }
            None => data
                .users
                .iter()
                .find(|u| u.active_flag)
                .map_or(0, |u| u.id),
        }
    };
    let token = state
        .pipedrive
        .mint_token(state.config.seed, &company, user_id);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "user_id": user_id, "company_domain": company.domain })),
    ))
}

async fn add_field(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: FieldSpec = parse_body(&body)?;
    let company = company(&state, &domain)?;
    let mut data = company.data.lock();
    let mut rng = model::company_rng(state.config.seed, company.id, 0xF1E1D + data.next_field_id);
    let field = data
        .add_field(&mut rng, &spec)
        .map_err(AdminError::bad_request)?;
    Ok((StatusCode::CREATED, Json(json!(field))))
}

async fn seed_persons(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: SeedSpec = parse_body(&body)?;
    spec.validate().map_err(AdminError::bad_request)?;
    let company = company(&state, &domain)?;
    let now = state.clock.now().timestamp();
    let ids = company.data.lock().seed(&spec, now);
    super::webhooks::flush(&state, &company, "app");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "created": ids.len(),
            "skipped_without_name": spec.people - ids.len(),
            "first_id": ids.first(),
            "last_id": ids.last(),
        })),
    ))
}

fn stored_json(p: &Person, fields: &[model::CustomField]) -> Value {
    let mut v = model::person_v2(p, fields, &Render::default());
    v["custom_fields"] = json!(p.custom_fields);
    v["marketing_status"] = json!(p.marketing_status);
    v["delete_time"] = json!(p.delete_time.map(model::rfc3339));
    v
}

async fn stored_persons(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    let data = company.data.lock();
    let mut ids: Vec<u64> = data.persons.keys().copied().collect();
    ids.sort_unstable();
    let persons: Vec<Value> = ids
        .iter()
        .filter_map(|id| data.persons.get(id))
        .map(|p| stored_json(p, &data.fields))
        .collect();
    Ok(Json(json!({ "persons": persons })))
}

/// A person as stored, for `POST .../persons`: the shape is checked, the values are not.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPerson {
    #[serde(default)]
    id: Option<u64>,
    name: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    owner_id: Option<u64>,
    #[serde(default)]
    emails: Vec<Contact>,
    #[serde(default)]
    phones: Vec<Contact>,
    #[serde(default)]
    visible_to: Option<u64>,
    #[serde(default)]
    label_ids: Vec<u64>,
    #[serde(default)]
    marketing_status: Option<String>,
    #[serde(default)]
    job_title: Option<String>,
    #[serde(default)]
    birthday: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    im: Vec<Contact>,
    #[serde(default)]
    postal_address: Option<model::PostalAddress>,
    #[serde(default)]
    custom_fields: BTreeMap<String, Value>,
    #[serde(default)]
    add_time: Option<DateTime<Utc>>,
    #[serde(default)]
    update_time: Option<DateTime<Utc>>,
    #[serde(default)]
    is_deleted: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPersons {
    persons: Vec<StoredPerson>,
}

async fn put_persons(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let request: StoredPersons = parse_body(&body)?;
    let company = company(&state, &domain)?;
    let now = state.clock.now().timestamp();
    let mut data = company.data.lock();
    let default_owner = data
        .users
        .iter()
        .find(|u| u.active_flag)
        .map_or(0, |u| u.id);
    let mut stored = Vec::with_capacity(request.persons.len());
    for input in request.persons {
        let id = input.id.unwrap_or(data.next_person_id);
        if id == 0 {
            return Err(AdminError::bad_request("id: must be positive"));
        }
        let add_time = input.add_time.map_or(now, |t| t.timestamp());
        let update_time = input
            .update_time
            .map_or(add_time.max(now), |t| t.timestamp());
        let (first, last) = super::validate::split_name(&input.name);
        let person = Person {
            id,
            first_name: input.first_name.or(first),
            last_name: input.last_name.or(last),
            name: input.name,
            owner_id: input.owner_id.unwrap_or(default_owner),
            org_id: None,
            add_time,
            update_time,
            emails: input.emails,
            phones: input.phones,
            is_deleted: input.is_deleted,
            delete_time: input.is_deleted.then_some(update_time),
            visible_to: input.visible_to.unwrap_or(3),
            label_ids: input.label_ids,
            marketing_status: input
                .marketing_status
                .unwrap_or_else(|| "no_consent".into()),
            details: model::Details {
                job_title: input.job_title,
                birthday: input.birthday,
                notes: input.notes,
                im: input.im,
                postal_address: input.postal_address,
            },
            custom_fields: input.custom_fields,
        };
        stored.push(stored_json(&person, &data.fields));
        data.put(person);
    }
    drop(data);
    super::webhooks::flush(&state, &company, "app");
    Ok((StatusCode::CREATED, Json(json!({ "persons": stored }))))
}

/// Deletes a person as a user does in Pipedrive's screens: marked deleted
/// now, listed by recents (`active_flag: false`) and readable by id for 30 days.
async fn delete_person(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    Query(when): Query<DeletedAt>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    let now = when.at(state.clock.now())?.timestamp();
    let deleted = id
        .parse::<u64>()
        .is_ok_and(|n| company.data.lock().delete_person(n, now));
    if !deleted {
        return Err(AdminError::not_found(format!(
            "id: no live person {id} in company {domain}"
        )));
    }
    super::webhooks::flush(&state, &company, "app");
    Ok(Json(
        json!({ "id": id, "delete_time": model::rfc3339(now) }),
    ))
}

async fn get_limits(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    let limits = company.usage.lock().config.clone();
    Ok(Json(json!(limits)))
}

async fn patch_limits(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let patch: LimitPatch = parse_body(&body)?;
    let company = company(&state, &domain)?;
    let mut usage = company.usage.lock();
    let mut config = usage.config.clone();
    patch.apply(&mut config);
    config.validate().map_err(AdminError::bad_request)?;
    usage.config = config.clone();
    Ok(Json(json!(config)))
}

async fn exhaust_daily(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    company
        .usage
        .lock()
        .exhaust_daily(state.clock.now().timestamp_millis());
    Ok(Json(usage_json(&state, &company)))
}

async fn usage(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    Ok(Json(usage_json(&state, &company)))
}

fn usage_json(state: &Shared, company: &Company) -> Value {
    let now = state.clock.now().timestamp_millis();
    let mut usage = company.usage.lock();
    let used = usage.daily_used(now);
    let budget = usage.config.daily_budget;
    json!({
        "daily_budget": budget,
        "daily_used": used,
        "daily_left": budget.saturating_sub(used),
        "burst_limit": usage.config.burst_limit,
        "tokens": usage.report(now),
    })
}

/// The company's webhooks as stored (passwords included: a test tool).
async fn stored_webhooks(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let company = company(&state, &domain)?;
    let webhooks = company.data.lock().webhooks.clone();
    Ok(Json(json!({ "webhooks": webhooks })))
}

/// Deletes a webhook as a person does in Pipedrive's settings (or as
/// Pipedrive does after failed deliveries): the subscriber is not told.
async fn remove_webhook(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, u64)>,
) -> Result<StatusCode, AdminError> {
    let company = company(&state, &domain)?;
    if !super::webhooks::remove(&company, id) {
        return Err(AdminError::not_found(format!(
            "id: no webhook {id} in company {domain}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
