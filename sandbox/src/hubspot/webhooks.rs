//! Webhooks API v3 of an app: `/webhooks/v3/{appId}/settings` (GET, PUT,
//! DELETE) and `/webhooks/v3/{appId}/subscriptions` (GET, POST, `/{id}`
//! GET, PATCH, DELETE, `/batch/update`), authorised by the developer
//! account's API key (`?hapikey=`), and the deliveries of the contact
//! changes made in the portals that installed the app: batches of up to
//! 100 events, signed with `X-HubSpot-Signature-v3`, handed to the
//! CRM-neutral notifier ([`crate::notify`]) with HubSpot's retry policy.
//! See `sandbox/docs/hubspot.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

use super::model::{Portal, iso};
use super::{ApiError, App, json_response};
use crate::admin::AdminError;
use crate::notify::{Outbound, PrepareAttempt, RetryPolicy};
use crate::{AppState, Shared, System};

/// `changeSource` of changes made through the API.
pub(crate) const CHANGE_SOURCE_API: &str = "INTEGRATION";
/// `changeSource` of changes made through the admin API (people in HubSpot's screens).
pub(crate) const CHANGE_SOURCE_UI: &str = "CRM_UI";
/// Events one delivery carries at most.
pub const MAX_EVENTS_PER_DELIVERY: usize = 100;
/// Subscriptions one app may have.
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// The event types the API takes; only contacts' fire in the sandbox.
const EVENT_TYPES: &[&str] = &[
    "contact.creation",
    "contact.deletion",
    "contact.propertyChange",
    "contact.privacyDeletion",
    "contact.merge",
    "contact.associationChange",
    "contact.restore",
    "company.creation",
    "company.deletion",
    "company.propertyChange",
    "deal.creation",
    "deal.deletion",
    "deal.propertyChange",
    "ticket.creation",
    "ticket.deletion",
    "ticket.propertyChange",
];

/// An app's webhook settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Where deliveries go.
    pub target_url: String,
    /// Deliveries in flight at once (kept, not enforced).
    pub max_concurrent_requests: u64,
    /// Epoch ms.
    pub created_ms: i64,
    /// Epoch ms.
    pub updated_ms: i64,
}

/// One subscription of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: u64,
    /// `contact.creation`, ...
    pub event_type: String,
    /// The property of a `*.propertyChange` subscription.
    pub property_name: Option<String>,
    /// False while paused: nothing is delivered for it.
    pub active: bool,
    /// Epoch ms.
    pub created_ms: i64,
    /// Epoch ms.
    pub updated_ms: i64,
}

/// An app's webhook settings and subscriptions.
#[derive(Debug, Clone, Default)]
pub struct AppWebhooks {
    /// None until `PUT .../settings`.
    pub settings: Option<WebhookSettings>,
    /// In creation order.
    pub subscriptions: Vec<Subscription>,
}

/// A contact change, as recorded while an installed app has subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEvent {
    id: u64,
    kind: EventKind,
    at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EventKind {
    Created,
    Changed {
        property: String,
        value: Option<String>,
    },
    Deleted,
}

impl ContactEvent {
    /// A contact created.
    pub fn created(id: u64, at_ms: i64) -> Self {
        Self {
            id,
            kind: EventKind::Created,
            at_ms,
        }
    }

    /// A property of a contact changed (`None`: cleared).
    pub fn changed(id: u64, property: &str, value: Option<String>, at_ms: i64) -> Self {
        Self {
            id,
            kind: EventKind::Changed {
                property: property.to_owned(),
                value,
            },
            at_ms,
        }
    }

    /// A contact archived (deleted).
    pub fn deleted(id: u64, at_ms: i64) -> Self {
        Self {
            id,
            kind: EventKind::Deleted,
            at_ms,
        }
    }

    fn fires(&self, s: &Subscription) -> bool {
        s.active
            && match &self.kind {
                EventKind::Created => s.event_type == "contact.creation",
                EventKind::Deleted => s.event_type == "contact.deletion",
                EventKind::Changed { property, .. } => {
                    s.event_type == "contact.propertyChange"
                        && s.property_name.as_deref() == Some(property.as_str())
                }
            }
    }
}

/// HubSpot's retry policy as its webhooks guide documents it: an answer
/// within 5 seconds, else up to 10 retries spread over the next 24 hours
/// (the spacing is HubSpot's to choose; the sandbox's is below). A portal's
/// `webhook_retry_ms` setting replaces every wait.
pub fn retry_policy(every_ms: Option<u64>) -> RetryPolicy {
    let delays = match every_ms {
        Some(ms) => vec![chrono::Duration::milliseconds(ms as i64); 10],
        None => [1, 2, 5, 10, 30, 60, 120, 240, 480, 480]
            .into_iter()
            .map(chrono::Duration::minutes)
            .collect(),
    };
    RetryPolicy {
        timeout: std::time::Duration::from_secs(5),
        delays,
    }
}

/// The v3 signature: base64 HMAC-SHA256, keyed with the app's client
/// secret, of method, URL, body and timestamp (epoch ms).
pub fn signature_v3(secret: &str, method: &str, url: &str, body: &str, timestamp: &str) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(method.as_bytes());
    mac.update(url.as_bytes());
    mac.update(body.as_bytes());
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Sets every event's `attemptNumber` (0 for the first attempt) and signs
/// the attempt at its own time.
#[derive(Debug)]
struct Signer {
    secret: String,
}

impl PrepareAttempt for Signer {
    fn prepare(
        &self,
        body: &Value,
        attempt: u32,
        url: &str,
        now: DateTime<Utc>,
    ) -> (String, Vec<(String, String)>) {
        let mut body = body.clone();
        for event in body.as_array_mut().into_iter().flatten() {
            event["attemptNumber"] = json!(attempt.saturating_sub(1));
        }
        let text = body.to_string();
        let timestamp = now.timestamp_millis().to_string();
        let signature = signature_v3(&self.secret, "POST", url, &text, &timestamp);
        (
            text,
            vec![
                ("x-hubspot-signature-v3".to_owned(), signature),
                ("x-hubspot-signature-version".to_owned(), "v3".to_owned()),
                ("x-hubspot-request-timestamp".to_owned(), timestamp),
            ],
        )
    }
}

static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

/// Hands the portal's recorded contact changes to the notifier: one event
/// per change and matching active subscription of the installed app,
/// batched by 100. `source` is the events' `changeSource`.
pub(crate) fn flush(state: &Shared, portal: &Portal, source: &str) {
    let (events, retry_ms) = {
        let mut data = portal.data.lock();
        if data.events.is_empty() {
            return;
        }
        (
            std::mem::take(&mut data.events),
            data.settings.webhook_retry_ms,
        )
    };
    let Some((_, app)) = state.hubspot.app_details(portal.id) else {
        return;
    };
    let (target, subscriptions) = {
        let hooks = state.hubspot.webhooks.lock();
        let Some(hooks) = hooks.get(&app.app_id) else {
            return;
        };
        let Some(settings) = &hooks.settings else {
            return;
        };
        (settings.target_url.clone(), hooks.subscriptions.clone())
    };
    let mut out: Vec<Value> = Vec::new();
    for event in &events {
        for s in subscriptions.iter().filter(|s| event.fires(s)) {
            let mut e = json!({
                "eventId": NEXT_EVENT.fetch_add(1, Ordering::Relaxed),
                "subscriptionId": s.id,
                "portalId": portal.id,
                "appId": app.app_id,
                "occurredAt": event.at_ms,
                "subscriptionType": s.event_type,
                "attemptNumber": 0,
                "objectId": event.id,
                "changeSource": source,
            });
            match &event.kind {
                EventKind::Changed { property, value } => {
                    e["propertyName"] = json!(property);
                    e["propertyValue"] = json!(value.clone().unwrap_or_default());
                }
                EventKind::Created => e["changeFlag"] = json!("NEW"),
                EventKind::Deleted => e["changeFlag"] = json!("DELETED"),
            }
            if source == CHANGE_SOURCE_API {
                e["sourceId"] = json!(app.app_id.to_string());
            }
            out.push(e);
        }
    }
    let now = state.clock.now();
    for chunk in out.chunks(MAX_EVENTS_PER_DELIVERY) {
        state.notify.send(
            Outbound {
                system: System::Hubspot,
                tenant: portal.id.to_string(),
                subscription: app.app_id.to_string(),
                url: target.clone(),
                headers: vec![(
                    "user-agent".to_owned(),
                    "HubSpot Connect 2.0 (http://dev.hubspot.com/)".to_owned(),
                )],
                body: Value::Array(chunk.to_vec()),
                attempt_at: None,
                policy: retry_policy(retry_ms),
                prepare: Some(Arc::new(Signer {
                    secret: app.secret.clone(),
                })),
            },
            now,
        );
    }
}

/// Turns recording on or off in the app's portal: on while the app has a
/// target URL and an active subscription.
fn update_notifying(state: &Shared, app: &App) {
    let on = state
        .hubspot
        .webhooks
        .lock()
        .get(&app.app_id)
        .is_some_and(|h| h.settings.is_some() && h.subscriptions.iter().any(|s| s.active));
    if let Some(portal) = state.hubspot.portal(app.portal) {
        let mut data = portal.data.lock();
        data.notifying = on;
        if !on {
            data.events.clear();
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/v3/{appId}/settings",
            get(get_settings).put(put_settings).delete(delete_settings),
        )
        .route(
            "/webhooks/v3/{appId}/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/webhooks/v3/{appId}/subscriptions/batch/update",
            post(batch_update),
        )
        .route(
            "/webhooks/v3/{appId}/subscriptions/{subscriptionId}",
            get(get_subscription)
                .patch(patch_subscription)
                .delete(delete_subscription),
        )
}

const BAD_KEY: &str = "The API key provided is invalid. View or manage your API key here: https://app.hubspot.com/l/api-key/";

/// The app of a webhooks call, authorised by its developer API key.
fn authorise(
    state: &Shared,
    app_id: &str,
    query: &HashMap<String, String>,
) -> Result<App, ApiError> {
    let Some(key) = query.get("hapikey").filter(|k| !k.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("INVALID_AUTHENTICATION"),
            super::AUTH_MESSAGE,
        ));
    };
    let known = state
        .hubspot
        .apps
        .read()
        .values()
        .any(|a| a.developer_api_key == *key);
    if !known {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Some("INVALID_AUTHENTICATION"),
            BAD_KEY,
        ));
    }
    app_id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.hubspot.app_by_id(id))
        .filter(|a| a.developer_api_key == *key)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                Some("FORBIDDEN"),
                format!("The developer account of this API key does not own app {app_id}"),
            )
        })
}

fn settings_json(s: &WebhookSettings) -> Value {
    json!({
        "targetUrl": s.target_url,
        "throttling": { "maxConcurrentRequests": s.max_concurrent_requests, "period": "SECONDLY" },
        "createdAt": iso(s.created_ms),
        "updatedAt": iso(s.updated_ms),
    })
}

fn subscription_json(s: &Subscription) -> Value {
    let mut v = json!({
        "id": s.id.to_string(),
        "eventType": s.event_type,
        "active": s.active,
        "createdAt": iso(s.created_ms),
        "updatedAt": iso(s.updated_ms),
    });
    if let Some(p) = &s.property_name {
        v["propertyName"] = json!(p);
    }
    v
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    super::parse_json(body)
}

type Reply = Result<Response, ApiError>;

async fn get_settings(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let hooks = state.hubspot.webhooks.lock();
    let settings = hooks
        .get(&app.app_id)
        .and_then(|h| h.settings.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                Some("OBJECT_NOT_FOUND"),
                format!("No webhook settings for app {app_id}"),
            )
        })?;
    Ok(json_response(StatusCode::OK, &settings_json(&settings)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsInput {
    target_url: Option<String>,
    throttling: Option<Throttling>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    max_concurrent_requests: Option<i64>,
}

async fn put_settings(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let input: SettingsInput = parse(&body)?;
    let url = input
        .target_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::validation("targetUrl is required"))?;
    let valid = reqwest::Url::parse(&url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !valid {
        return Err(ApiError::validation(format!(
            "targetUrl must be a full, valid URL: {url}"
        )));
    }
    let max = match input.throttling.and_then(|t| t.max_concurrent_requests) {
        None => 10,
        Some(n) if (5..=100).contains(&n) => n as u64,
        Some(n) => {
            return Err(ApiError::validation(format!(
                "throttling.maxConcurrentRequests must be between 5 and 100, got {n}"
            )));
        }
    };
    let now = state.clock.now().timestamp_millis();
    let settings = {
        let mut hooks = state.hubspot.webhooks.lock();
        let hooks = hooks.entry(app.app_id).or_default();
        let created_ms = hooks.settings.as_ref().map_or(now, |s| s.created_ms);
        let settings = WebhookSettings {
            target_url: url,
            max_concurrent_requests: max,
            created_ms,
            updated_ms: now,
        };
        hooks.settings = Some(settings.clone());
        settings
    };
    update_notifying(&state, &app);
    Ok(json_response(StatusCode::OK, &settings_json(&settings)))
}

async fn delete_settings(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    if let Some(h) = state.hubspot.webhooks.lock().get_mut(&app.app_id) {
        h.settings = None;
    }
    update_notifying(&state, &app);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_subscriptions(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let results: Vec<Value> = state
        .hubspot
        .webhooks
        .lock()
        .get(&app.app_id)
        .map(|h| h.subscriptions.iter().map(subscription_json).collect())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "results": results }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionInput {
    event_type: Option<String>,
    property_name: Option<String>,
    active: Option<bool>,
    #[allow(dead_code)]
    object_type_id: Option<String>,
}

static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

async fn create_subscription(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let input: SubscriptionInput = parse(&body)?;
    let event_type = input
        .event_type
        .ok_or_else(|| ApiError::validation("eventType is required"))?;
    if !EVENT_TYPES.contains(&event_type.as_str()) {
        return Err(ApiError::validation(format!(
            "eventType {event_type} is not one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let property_name = input
        .property_name
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let property_change = event_type.ends_with(".propertyChange");
    if property_change != property_name.is_some() {
        return Err(ApiError::validation(if property_change {
            format!("propertyName is required for {event_type}")
        } else {
            format!("propertyName is only taken by propertyChange subscriptions, not {event_type}")
        }));
    }
    let now = state.clock.now().timestamp_millis();
    let created = {
        let mut hooks = state.hubspot.webhooks.lock();
        let hooks = hooks.entry(app.app_id).or_default();
        if hooks
            .subscriptions
            .iter()
            .any(|s| s.event_type == event_type && s.property_name == property_name)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                Some("CONFLICT"),
                format!(
                    "A subscription for {event_type}{} already exists",
                    property_name
                        .as_deref()
                        .map(|p| format!(" of {p}"))
                        .unwrap_or_default()
                ),
            ));
        }
        if hooks.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::validation(format!(
                "An app may have at most {MAX_SUBSCRIPTIONS} subscriptions"
            )));
        }
        let s = Subscription {
            id: 100_000 + NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed),
            event_type,
            property_name,
            // HubSpot creates subscriptions paused unless told otherwise.
            active: input.active.unwrap_or(false),
            created_ms: now,
            updated_ms: now,
        };
        hooks.subscriptions.push(s.clone());
        s
    };
    update_notifying(&state, &app);
    Ok(json_response(
        StatusCode::CREATED,
        &subscription_json(&created),
    ))
}

fn subscription_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Some("OBJECT_NOT_FOUND"),
        format!("Subscription {id} not found"),
    )
}

async fn get_subscription(
    State(state): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let hooks = state.hubspot.webhooks.lock();
    let found = hooks
        .get(&app.app_id)
        .and_then(|h| h.subscriptions.iter().find(|s| s.id.to_string() == id))
        .ok_or_else(|| subscription_not_found(&id))?;
    Ok(json_response(StatusCode::OK, &subscription_json(found)))
}

#[derive(Debug, Deserialize)]
struct ActiveInput {
    active: Option<bool>,
}

/// Sets a subscription's `active`; the subscription after, or None.
fn set_active(state: &Shared, app: &App, id: &str, active: bool) -> Option<Subscription> {
    let now = state.clock.now().timestamp_millis();
    let changed = {
        let mut hooks = state.hubspot.webhooks.lock();
        let s = hooks
            .get_mut(&app.app_id)?
            .subscriptions
            .iter_mut()
            .find(|s| s.id.to_string() == id)?;
        s.active = active;
        s.updated_ms = now;
        s.clone()
    };
    update_notifying(state, app);
    Some(changed)
}

async fn patch_subscription(
    State(state): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let input: ActiveInput = parse(&body)?;
    let active = input
        .active
        .ok_or_else(|| ApiError::validation("active is required"))?;
    let s = set_active(&state, &app, &id, active).ok_or_else(|| subscription_not_found(&id))?;
    Ok(json_response(StatusCode::OK, &subscription_json(&s)))
}

/// Removes a subscription (the API, or the admin API standing for a person
/// in the developer account); false when there is none.
fn remove(state: &Shared, app: &App, id: &str) -> bool {
    let removed = state
        .hubspot
        .webhooks
        .lock()
        .get_mut(&app.app_id)
        .is_some_and(|h| {
            let before = h.subscriptions.len();
            h.subscriptions.retain(|s| s.id.to_string() != id);
            h.subscriptions.len() < before
        });
    update_notifying(state, app);
    removed
}

async fn delete_subscription(
    State(state): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    if !remove(&state, &app, &id) {
        return Err(subscription_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct BatchInput {
    inputs: Vec<BatchItem>,
}

#[derive(Debug, Deserialize)]
struct BatchItem {
    id: Value,
    active: bool,
}

async fn batch_update(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Reply {
    let app = authorise(&state, &app_id, &query)?;
    let input: BatchInput = parse(&body)?;
    let started = iso(state.clock.now().timestamp_millis());
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for item in input.inputs {
        let id = match &item.id {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        match set_active(&state, &app, &id, item.active) {
            Some(s) => results.push(subscription_json(&s)),
            None => errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!("Subscription {id} not found"),
                "context": { "id": [id] },
            })),
        }
    }
    let completed = iso(state.clock.now().timestamp_millis());
    let mut reply = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": completed,
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        reply["errors"] = json!(errors);
        reply["numErrors"] = json!(reply["errors"].as_array().map_or(0, Vec::len));
        StatusCode::MULTI_STATUS
    };
    Ok(json_response(status, &reply))
}

/// `/admin/hubspot/apps/{appId}/webhooks` (settings and subscriptions as
/// stored), `DELETE .../subscriptions/{id}` and `POST
/// .../subscriptions/{id}/pause`: what a person does in the developer
/// account.
pub(crate) fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/apps/{appId}/webhooks", get(admin_webhooks))
        .route(
            "/apps/{appId}/subscriptions/{id}",
            axum::routing::delete(admin_delete),
        )
        .route("/apps/{appId}/subscriptions/{id}/pause", post(admin_pause))
}

fn admin_app(state: &Shared, app_id: &str) -> Result<App, AdminError> {
    app_id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.hubspot.app_by_id(id))
        .ok_or_else(|| AdminError::not_found(format!("appId: no app {app_id}")))
}

async fn admin_webhooks(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let app = admin_app(&state, &app_id)?;
    let hooks = state
        .hubspot
        .webhooks
        .lock()
        .get(&app.app_id)
        .cloned()
        .unwrap_or_default();
    let subscriptions: Vec<Value> = hooks.subscriptions.iter().map(subscription_json).collect();
    let by_type: BTreeMap<String, usize> =
        hooks
            .subscriptions
            .iter()
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.event_type.clone()).or_default() += 1;
                m
            });
    Ok(Json(json!({
        "app_id": app.app_id,
        "portal_id": app.portal,
        "settings": hooks.settings.as_ref().map(settings_json),
        "subscriptions": subscriptions,
        "counts": by_type,
    })))
}

async fn admin_delete(
    State(state): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let app = admin_app(&state, &app_id)?;
    if !remove(&state, &app, &id) {
        return Err(AdminError::not_found(format!("id: no subscription {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_pause(
    State(state): State<AppState>,
    Path((app_id, id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let app = admin_app(&state, &app_id)?;
    set_active(&state, &app, &id, false)
        .ok_or_else(|| AdminError::not_found(format!("id: no subscription {id}")))?;
    Ok(StatusCode::NO_CONTENT)
}
