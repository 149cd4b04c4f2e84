//! The HubSpot admin API under `/admin/hubspot`: portals, tokens, properties,
//! seeding, contacts as stored, limits, settings, usage and revocation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::limits::LimitConfig;
use super::model::{Contact, Portal, PortalData, Property, Settings};
use super::{ACCESS_TOKEN_SECS, CreateError, PortalSpec, create_portal, describe};
use crate::admin::{AdminError, DeletedAt, parse_body};
use crate::seed::SeedSpec;
use crate::{AppState, Shared};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/portals", get(list_portals).post(add_portal))
        .route("/portals/{portal}", get(get_portal))
        .route("/portals/{portal}/tokens", post(mint_token))
        .route("/portals/{portal}/tokens/scopes", put(set_scopes))
        .route("/portals/{portal}/properties", post(add_property))
        .route("/portals/{portal}/seed", post(seed_contacts))
        .route(
            "/portals/{portal}/contacts",
            get(stored_contacts).post(put_contacts),
        )
        .route(
            "/portals/{portal}/contacts/{id}",
            axum::routing::delete(archive_contact),
        )
        .route(
            "/portals/{portal}/limits",
            get(get_limits).patch(patch_limits),
        )
        .route(
            "/portals/{portal}/limits/exhaust-daily",
            post(exhaust_daily),
        )
        .route(
            "/portals/{portal}/settings",
            get(get_settings).patch(patch_settings),
        )
        .route("/portals/{portal}/usage", get(usage))
        .route("/portals/{portal}/revoke", post(revoke))
        .merge(super::webhooks::admin_router())
}

fn portal(state: &Shared, id: &str) -> Result<Arc<Portal>, AdminError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| state.hubspot.portal(id))
        .ok_or_else(|| AdminError::not_found(format!("portal: no portal {id}")))
}

fn portal_json(state: &Shared, portal: &Portal) -> Value {
    let description = describe(state, portal);
    let (private, refresh) = state.hubspot.tokens_of(portal.id);
    let data = portal.data.lock();
    let limits = portal.usage.lock().config.clone();
    let mut value = json!(description);
    value["name"] = json!(portal.name);
    value["private_tokens"] = json!(private);
    value["refresh_tokens"] = json!(refresh);
    value["properties"] = json!(
        data.properties
            .iter()
            .filter(|p| !p.hubspot_defined)
            .collect::<Vec<_>>()
    );
    value["owner_list"] = json!(data.owners);
    value["limits"] = json!(limits);
    value["settings"] = json!(data.settings);
    value["contact_count"] = json!(
        data.contacts
            .values()
            .filter(|c| c.archived_ms.is_none())
            .count()
    );
    value
}

async fn add_portal(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: PortalSpec = parse_body(&body)?;
    match create_portal(&state, spec) {
        Ok(portal) => Ok((StatusCode::CREATED, Json(portal_json(&state, &portal)))),
        Err(CreateError::Invalid(message)) => Err(AdminError::bad_request(message)),
        Err(CreateError::Taken(message)) => Err(AdminError::conflict(message)),
    }
}

async fn list_portals(State(state): State<AppState>) -> Json<Value> {
    let portals: Vec<Value> = state
        .hubspot
        .portals()
        .iter()
        .map(|p| portal_json(&state, p))
        .collect();
    Json(json!({ "portals": portals }))
}

async fn get_portal(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    Ok(Json(portal_json(&state, &portal)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// `private` (default), `oauth` (an access token) or `refresh`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Lifetime of an `oauth` access token, seconds (default 1800).
    #[serde(default)]
    expires_in: Option<i64>,
}

async fn mint_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let request: TokenRequest = parse_body(&body)?;
    let portal = portal(&state, &id)?;
    let scopes = request
        .scopes
        .unwrap_or_else(|| super::ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    let hs = &state.hubspot;
    let seed = state.config.seed;
    let (client_id, _) = hs.app_of(portal.id).unwrap_or_default();
    let reply = match request.kind.as_deref().unwrap_or("private") {
        "private" => {
            json!({ "kind": "private", "token": hs.mint_private(seed, portal.id, scopes) })
        }
        "refresh" => json!({
            "kind": "refresh",
            "token": hs.mint_refresh(seed, portal.id, &client_id, scopes),
            "client_id": client_id,
        }),
        "oauth" => {
            let secs = request.expires_in.unwrap_or(ACCESS_TOKEN_SECS);
            let expires = state.clock.now().timestamp_millis() + secs * 1000;
            json!({
                "kind": "oauth",
                "token": hs.mint_access(seed, portal.id, &client_id, scopes, expires),
                "expires_in": secs,
            })
        }
        other => {
            return Err(AdminError::bad_request(format!(
                "kind: must be private, oauth or refresh, got {other:?}"
            )));
        }
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopesRequest {
    token: String,
    scopes: Vec<String>,
}

/// Replaces a token's scopes, to make calls answer MISSING_SCOPES.
async fn set_scopes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let request: ScopesRequest = parse_body(&body)?;
    let portal = portal(&state, &id)?;
    if !state
        .hubspot
        .set_scopes(portal.id, &request.token, &request.scopes)
    {
        return Err(AdminError::not_found(format!(
            "token: not a token of portal {}",
            portal.id
        )));
    }
    Ok(Json(json!({ "scopes": request.scopes })))
}

async fn add_property(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let mut property: Property = parse_body(&body)?;
    property.validate().map_err(AdminError::bad_request)?;
    let portal = portal(&state, &id)?;
    let mut data = portal.data.lock();
    if data.property(&property.name).is_some() {
        return Err(AdminError::conflict(format!(
            "name: {} already exists",
            property.name
        )));
    }
    property.created_ms = state.clock.now().timestamp_millis();
    let rendered = property.render(&data.owners);
    data.properties.push(property);
    Ok((StatusCode::CREATED, Json(rendered)))
}

/// Seeds generated people as contacts: HubSpot keeps e-mails unique, so a person
/// whose e-mail is taken is stored without one.
pub(crate) fn seed(data: &mut PortalData, spec: &SeedSpec, now_ms: i64) -> Vec<u64> {
    let people = crate::seed::generate(spec);
    let owners: Vec<u64> = data
        .owners
        .iter()
        .filter(|o| !o.archived)
        .map(|o| o.id)
        .collect();
    let mut ids = Vec::with_capacity(people.len());
    for p in people {
        let mut props = BTreeMap::new();
        let mut set = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                props.insert(k.to_owned(), v);
            }
        };
        let email = p
            .email
            .as_ref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| data.by_email(e).is_none());
        set("email", email.clone());
        set("firstname", p.first_name.clone());
        set("lastname", p.last_name.clone());
        set("phone", p.phone.clone());
        set("mobilephone", p.mobile.clone());
        set("company", p.company.clone());
        set("jobtitle", p.job_title.clone());
        set("city", Some(p.city.clone()));
        set("country", Some(p.country.clone()));
        set(
            "hs_additional_emails",
            p.secondary_email
                .as_ref()
                .filter(|_| email.is_some())
                .map(|e| e.trim().to_lowercase())
                .filter(|e| data.by_email(e).is_none()),
        );
        let stage = if p.converted {
            "customer"
        } else {
            ["subscriber", "lead", "marketingqualifiedlead"][p.index % 3]
        };
        set("lifecyclestage", Some(stage.into()));
        set("hs_email_optout", Some(p.opted_out.to_string()));
        if let Some(owner) = owners.get(p.index % owners.len().max(1)) {
            set("hubspot_owner_id", Some(owner.to_string()));
        }
        let has = |name: &str| data.property(name).is_some();
        if has("sector") {
            // Sometimes a value the enumeration does not hold (an option removed since).
            set("sector", Some(p.industry.clone()));
        }
        if has("source") {
            set("source", Some(p.source.clone()));
        }
        if has("score") {
            set("score", Some(p.score.to_string()));
        }
        if has("sync_to_plezi") {
            set("sync_to_plezi", Some(p.sync_flag.to_string()));
        }
        if has("plezi_url") && p.index % 4 == 0 {
            set(
                "plezi_url",
                Some(format!(
                    "https://app.plezi.example/contacts/{}",
                    p.index + 1
                )),
            );
        }
        let contact = Contact {
            id: 0,
            props,
            created_ms: now_ms - p.created_secs_ago * 1000,
            updated_ms: now_ms - p.modified_secs_ago * 1000,
            archived_ms: None,
        };
        if let Ok(id) = data.put(contact) {
            ids.push(id);
        }
    }
    ids
}

async fn seed_contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let spec: SeedSpec = parse_body(&body)?;
    spec.validate().map_err(AdminError::bad_request)?;
    let portal = portal(&state, &id)?;
    let now = state.clock.now().timestamp_millis();
    let ids = seed(&mut portal.data.lock(), &spec, now);
    super::webhooks::flush(&state, &portal, super::webhooks::CHANGE_SOURCE_UI);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "created": ids.len(),
            "first_id": ids.first().map(u64::to_string),
            "last_id": ids.last().map(u64::to_string),
        })),
    ))
}

fn stored_json(data: &PortalData, c: &Contact) -> Value {
    let mut v = data.render(c, &[]);
    let mut props = serde_json::Map::new();
    for (k, val) in &c.props {
        props.insert(k.clone(), json!(val));
    }
    for name in ["createdate", "lastmodifieddate", "hs_object_id"] {
        props.insert(name.into(), json!(data.value_of(c, name)));
    }
    v["properties"] = Value::Object(props);
    v
}

async fn stored_contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    let data = portal.data.lock();
    let contacts: Vec<Value> = data
        .contacts
        .values()
        .map(|c| stored_json(&data, c))
        .collect();
    Ok(Json(json!({ "contacts": contacts })))
}

/// A contact as stored, for `POST .../contacts`: values are kept as given
/// (unknown enumeration values included); e-mails must stay unique.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredContact {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    archived: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredContacts {
    contacts: Vec<StoredContact>,
}

/// Deletes a contact as a user does in HubSpot's screens: archived now,
/// listed by `GET /crm/v3/objects/contacts?archived=true`.
async fn archive_contact(
    State(state): State<AppState>,
    Path((portal_id, id)): Path<(String, String)>,
    Query(when): Query<DeletedAt>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &portal_id)?;
    let now = when.at(state.clock.now())?.timestamp_millis();
    let archived = id
        .parse::<u64>()
        .is_ok_and(|n| portal.data.lock().archive(n, now));
    if !archived {
        return Err(AdminError::not_found(format!(
            "id: no live contact {id} in portal {portal_id}"
        )));
    }
    super::webhooks::flush(&state, &portal, super::webhooks::CHANGE_SOURCE_UI);
    Ok(Json(
        json!({ "id": id, "archivedAt": super::model::iso(now) }),
    ))
}

async fn put_contacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let request: StoredContacts = parse_body(&body)?;
    let portal = portal(&state, &id)?;
    let now = state.clock.now().timestamp_millis();
    let mut data = portal.data.lock();
    let mut stored = Vec::with_capacity(request.contacts.len());
    for (i, input) in request.contacts.into_iter().enumerate() {
        let id = match &input.id {
            None => 0,
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    AdminError::bad_request(format!("contacts[{i}].id: must be a positive number"))
                })?,
        };
        let mut props = BTreeMap::new();
        for (k, v) in input.properties {
            if matches!(
                k.as_str(),
                "createdate" | "lastmodifieddate" | "hs_object_id"
            ) {
                continue;
            }
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            if k == "email" {
                props.insert(k, text.trim().to_lowercase());
            } else {
                props.insert(k, text);
            }
        }
        let created_ms = input.created_at.map_or(now, |t| t.timestamp_millis());
        let updated_ms = input
            .updated_at
            .map_or(created_ms.max(now), |t| t.timestamp_millis());
        let contact = Contact {
            id,
            props,
            created_ms,
            updated_ms,
            archived_ms: input.archived.then_some(updated_ms),
        };
        let id = data
            .put(contact)
            .map_err(|e| AdminError::conflict(format!("contacts[{i}].{e}")))?;
        stored.push(stored_json(&data, &data.contacts[&id]));
    }
    drop(data);
    super::webhooks::flush(&state, &portal, super::webhooks::CHANGE_SOURCE_UI);
    Ok((StatusCode::CREATED, Json(json!({ "contacts": stored }))))
}

async fn get_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    let limits = portal.usage.lock().config.clone();
    Ok(Json(json!(limits)))
}

/// Optional changes to a portal's limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitPatch {
    #[serde(alias = "ten_second_limit")]
    ten_secondly: Option<u32>,
    oauth_ten_secondly: Option<u32>,
    #[serde(alias = "daily_limit")]
    daily: Option<u64>,
    search_per_second: Option<u32>,
    // Settings may be patched here too (see `SettingsPatch`).
    lifecycle_backward: Option<String>,
    batch_errors: Option<String>,
    email_optout_read_only: Option<bool>,
}

async fn patch_limits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let patch: LimitPatch = parse_body(&body)?;
    let portal = portal(&state, &id)?;
    let settings = apply_settings(
        &portal,
        SettingsPatch {
            lifecycle_backward: patch.lifecycle_backward,
            batch_errors: patch.batch_errors,
            email_optout_read_only: patch.email_optout_read_only,
            search_ties: None,
            webhook_retry_ms: None,
        },
    )?;
    let mut usage = portal.usage.lock();
    let mut config: LimitConfig = usage.config.clone();
    if let Some(v) = patch.ten_secondly {
        config.ten_secondly = v;
    }
    if let Some(v) = patch.oauth_ten_secondly {
        config.oauth_ten_secondly = v;
    }
    if let Some(v) = patch.daily {
        config.daily = v;
    }
    if let Some(v) = patch.search_per_second {
        config.search_per_second = v;
    }
    config.validate().map_err(AdminError::bad_request)?;
    usage.config = config.clone();
    drop(usage);
    if let Some(settings) = settings {
        portal.data.lock().settings = settings;
    }
    let mut reply = json!(config);
    reply["settings"] = json!(portal.data.lock().settings);
    Ok(Json(reply))
}

async fn get_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    let settings = portal.data.lock().settings.clone();
    Ok(Json(json!(settings)))
}

/// Optional changes to a portal's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    lifecycle_backward: Option<String>,
    batch_errors: Option<String>,
    email_optout_read_only: Option<bool>,
    search_ties: Option<String>,
    webhook_retry_ms: Option<u64>,
}

async fn patch_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let patch: SettingsPatch = parse_body(&body)?;
    let portal = portal(&state, &id)?;
    if let Some(settings) = apply_settings(&portal, patch)? {
        portal.data.lock().settings = settings;
    }
    let settings = portal.data.lock().settings.clone();
    Ok(Json(json!(settings)))
}

/// The portal's settings with the patch applied and checked; None when the patch is empty.
fn apply_settings(portal: &Portal, patch: SettingsPatch) -> Result<Option<Settings>, AdminError> {
    if patch.lifecycle_backward.is_none()
        && patch.batch_errors.is_none()
        && patch.email_optout_read_only.is_none()
        && patch.search_ties.is_none()
        && patch.webhook_retry_ms.is_none()
    {
        return Ok(None);
    }
    let mut settings: Settings = portal.data.lock().settings.clone();
    if let Some(v) = patch.lifecycle_backward {
        settings.lifecycle_backward = v;
    }
    if let Some(v) = patch.batch_errors {
        settings.batch_errors = v;
    }
    if let Some(v) = patch.email_optout_read_only {
        settings.email_optout_read_only = v;
    }
    if let Some(v) = patch.search_ties {
        settings.search_ties = v;
    }
    if let Some(v) = patch.webhook_retry_ms {
        settings.webhook_retry_ms = Some(v);
    }
    settings.validate().map_err(AdminError::bad_request)?;
    Ok(Some(settings))
}

async fn exhaust_daily(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    portal
        .usage
        .lock()
        .exhaust_daily(state.clock.now().timestamp_millis());
    Ok(Json(usage_json(&state, &portal)))
}

async fn usage(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let portal = portal(&state, &id)?;
    Ok(Json(usage_json(&state, &portal)))
}

fn usage_json(state: &Shared, portal: &Portal) -> Value {
    let now = state.clock.now().timestamp_millis();
    let mut usage = portal.usage.lock();
    let used = usage.daily_used_at(now);
    let daily = usage.config.daily;
    json!({
        "daily": daily,
        "daily_used": used,
        "daily_remaining": daily.saturating_sub(used),
        "ten_secondly": usage.config.ten_secondly,
        "window_used": usage.window_used(now),
    })
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let portal = portal(&state, &id)?;
    state.hubspot.revoke(portal.id);
    Ok(StatusCode::NO_CONTENT)
}
