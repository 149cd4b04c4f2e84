//! Webhooks (v1 API, webhooks v2 deliveries): `GET`/`POST /api/v1/webhooks`,
//! `DELETE /api/v1/webhooks/{id}`, and the deliveries of person changes
//! made through the API or the admin API, handed to the CRM-neutral
//! notifier ([`crate::notify`]) with Pipedrive's payload shape, headers,
//! basic auth and retry policy. See `sandbox/docs/pipedrive.md`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::api::query_of;
use super::limits::Op;
use super::model::{self, Company, Person, Render};
use super::{ApiError, json_response, serve};
use crate::notify::{Outbound, RetryPolicy};
use crate::{AppState, Shared, System};

/// Most webhooks one user may have.
pub const MAX_PER_USER: usize = 40;
/// Actions a webhook takes (v2).
const ACTIONS: &[&str] = &["create", "change", "delete", "*"];
/// Objects a webhook takes; the sandbox emulates persons only, so others
/// are accepted and never fire.
const OBJECTS: &[&str] = &[
    "activity",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "*",
];

/// A webhook as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Id, per company.
    pub id: u64,
    /// The company.
    pub company_id: u64,
    /// Who created it.
    pub owner_id: u64,
    /// Whose permissions deliveries follow.
    pub user_id: u64,
    /// `create`, `change`, `delete` or `*`.
    pub event_action: String,
    /// `person`, ... or `*`.
    pub event_object: String,
    /// Where deliveries go.
    pub subscription_url: String,
    /// `1.0` or `2.0` (the sandbox delivers the v2 shape for both).
    pub version: String,
    /// 1 while it delivers.
    pub is_active: u8,
    /// When it was made (`YYYY-MM-DD HH:MM:SS`).
    pub add_time: String,
    /// Basic-auth user sent with each delivery.
    pub http_auth_user: Option<String>,
    /// Basic-auth password sent with each delivery.
    pub http_auth_password: Option<String>,
    /// `general`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A person change made while the company had a webhook.
#[derive(Debug, Clone)]
pub struct PersonEvent {
    /// The person before (none: created).
    pub previous: Option<Arc<Person>>,
    /// The person after.
    pub current: Arc<Person>,
}

/// Pipedrive's retry policy as its webhook guide documents it: an answer
/// within 10 seconds, else three more attempts after 3, 30 and 150 seconds
/// (uncertain for v2; a sandbox constant).
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        timeout: std::time::Duration::from_secs(10),
        delays: vec![
            chrono::Duration::seconds(3),
            chrono::Duration::seconds(30),
            chrono::Duration::seconds(150),
        ],
    }
}

fn v1_ok(status: StatusCode, data: Value) -> Response {
    json_response(
        status,
        &json!({ "status": "ok", "success": true, "data": data }),
    )
}

/// `GET /api/v1/webhooks`.
pub async fn list_webhooks(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let data = ctx.company.data.lock();
        Ok(v1_ok(StatusCode::OK, json!(data.webhooks)))
    })
}

/// `POST /api/v1/webhooks`.
pub async fn create_webhook(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let input: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("Request body must be a JSON object"))?;
        let text = |name: &str| input.get(name).and_then(Value::as_str).map(str::trim);
        let url = text("subscription_url")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::bad_request("subscription_url is required"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ApiError::bad_request(
                "subscription_url must be a full, valid URL",
            ));
        }
        let action = text("event_action")
            .ok_or_else(|| ApiError::bad_request("event_action is required"))?;
        if !ACTIONS.contains(&action) {
            return Err(ApiError::bad_request(format!(
                "event_action must be one of {}",
                ACTIONS.join(", ")
            )));
        }
        let object = text("event_object")
            .ok_or_else(|| ApiError::bad_request("event_object is required"))?;
        if !OBJECTS.contains(&object) {
            return Err(ApiError::bad_request(format!(
                "event_object must be one of {}",
                OBJECTS.join(", ")
            )));
        }
        let version = text("version").unwrap_or("1.0");
        if !matches!(version, "1.0" | "2.0") {
            return Err(ApiError::bad_request("version must be 1.0 or 2.0"));
        }
        let user_id = match input.get("user_id") {
            None | Some(Value::Null) => ctx.user_id,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| ApiError::bad_request("user_id must be an integer"))?,
        };
        let mut data = ctx.company.data.lock();
        if data.user(user_id).is_none() {
            return Err(ApiError::bad_request(format!("User {user_id} not found")));
        }
        let mine = data.webhooks.iter().filter(|w| w.owner_id == ctx.user_id);
        if mine.count() >= MAX_PER_USER {
            return Err(ApiError::bad_request(format!(
                "The maximum number of webhooks per user ({MAX_PER_USER}) has been reached"
            )));
        }
        data.next_webhook_id = data.next_webhook_id.max(1);
        let webhook = Webhook {
            id: data.next_webhook_id,
            company_id: ctx.company.id,
            owner_id: ctx.user_id,
            user_id,
            event_action: action.to_owned(),
            event_object: object.to_owned(),
            subscription_url: url.to_owned(),
            version: version.to_owned(),
            is_active: 1,
            add_time: model::v1_time(ctx.now),
            http_auth_user: text("http_auth_user").map(str::to_owned),
            http_auth_password: text("http_auth_password").map(str::to_owned),
            kind: "general".into(),
        };
        data.next_webhook_id += 1;
        data.webhooks.push(webhook.clone());
        Ok(v1_ok(StatusCode::CREATED, json!(webhook)))
    })
}

/// `DELETE /api/v1/webhooks/{id}`.
pub async fn delete_webhook(
    State(state): State<AppState>,
    Path((company, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let id: u64 = id
            .parse()
            .map_err(|_| ApiError::bad_request("id must be an integer"))?;
        if !remove(&ctx.company, id) {
            return Err(ApiError::not_found("Webhook not found"));
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({ "status": "ok", "success": true }),
        ))
    })
}

/// Removes a webhook (the API, or the admin API standing for a person in
/// Pipedrive's settings); false when there is none.
pub(crate) fn remove(company: &Company, id: u64) -> bool {
    let mut data = company.data.lock();
    let before = data.webhooks.len();
    data.webhooks.retain(|w| w.id != id);
    data.webhooks.len() < before
}

/// Hands the company's person changes to the notifier, one delivery per
/// change and matching webhook. `source` is the `change_source` (`api` for
/// the API, `app` for the admin API, which stands for people in the app).
pub(crate) fn flush(state: &Shared, company: &Company, source: &str) {
    let (events, webhooks, fields) = {
        let mut data = company.data.lock();
        if data.events.is_empty() {
            return;
        }
        (
            std::mem::take(&mut data.events),
            data.webhooks.clone(),
            data.fields.clone(),
        )
    };
    let now = state.clock.now();
    let render = Render {
        company_domain: &company.domain,
        ..Render::default()
    };
    for event in events {
        let Some(action) = action_of(&event) else {
            continue;
        };
        let current = model::person_v2(&event.current, &fields, &render);
        let previous = event
            .previous
            .as_ref()
            .map(|p| model::person_v2(p, &fields, &render));
        let (data, previous) = match action {
            "create" => (current, Value::Null),
            "delete" => (Value::Null, previous.unwrap_or(Value::Null)),
            _ => {
                let changed = changed_fields(previous.as_ref(), &current);
                (current, changed)
            }
        };
        for webhook in webhooks.iter().filter(|w| fires(w, action)) {
            let delivery = format!("{:016x}-{}", rand::random::<u64>(), event.current.id);
            let body = json!({
                "data": data,
                "previous": previous,
                "meta": {
                    "action": action,
                    "company_id": company.id.to_string(),
                    "correlation_id": format!("{:032x}", rand::random::<u128>()),
                    "entity_id": event.current.id.to_string(),
                    "entity": "person",
                    "id": delivery,
                    "is_bulk_edit": false,
                    "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "type": "general",
                    "user_id": webhook.user_id.to_string(),
                    "version": "2.0",
                    "webhook_id": webhook.id.to_string(),
                    "webhook_owner_id": webhook.owner_id.to_string(),
                    "change_source": source,
                    "permitted_user_ids": [webhook.user_id.to_string()],
                    "attempt": 1,
                    "host": format!("{}.pipedrive.com", company.domain),
                },
            });
            let mut headers = vec![("user-agent".to_owned(), "Pipedrive Webhooks".to_owned())];
            if let Some(user) = &webhook.http_auth_user {
                let password = webhook.http_auth_password.clone().unwrap_or_default();
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("authorization".to_owned(), format!("Basic {encoded}")));
            }
            state.notify.send(
                Outbound {
                    system: System::Pipedrive,
                    tenant: company.domain.clone(),
                    subscription: webhook.id.to_string(),
                    url: webhook.subscription_url.clone(),
                    headers,
                    body,
                    attempt_at: Some("/meta/attempt"),
                    policy: retry_policy(),
                    prepare: None,
                },
                now,
            );
        }
    }
}

/// `create`, `change` or `delete`; none for a change to a person already deleted.
fn action_of(event: &PersonEvent) -> Option<&'static str> {
    match (&event.previous, event.current.is_deleted) {
        (None, false) => Some("create"),
        (None, true) => None,
        (Some(before), true) if before.is_deleted => None,
        (Some(_), true) => Some("delete"),
        (Some(_), false) => Some("change"),
    }
}

fn fires(webhook: &Webhook, action: &str) -> bool {
    webhook.is_active == 1
        && matches!(webhook.event_object.as_str(), "person" | "*")
        && (webhook.event_action == "*" || webhook.event_action == action)
}

/// The previous values of the fields that changed (custom fields by key).
fn changed_fields(previous: Option<&Value>, current: &Value) -> Value {
    let (Some(Value::Object(before)), Value::Object(after)) = (previous, current) else {
        return Value::Null;
    };
    let mut changed = Map::new();
    for (key, old) in before {
        let new = after.get(key).unwrap_or(&Value::Null);
        if old == new || key == "update_time" {
            continue;
        }
        if let (Value::Object(old_fields), Value::Object(new_fields)) = (old, new) {
            let fields: Map<String, Value> = old_fields
                .iter()
                .filter(|(k, v)| new_fields.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            changed.insert(key.clone(), Value::Object(fields));
        } else {
            changed.insert(key.clone(), old.clone());
        }
    }
    Value::Object(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_holds_only_what_changed() {
        let before = json!({ "name": "A", "emails": [], "custom_fields": { "k": 1, "j": 2 }, "update_time": "x" });
        let after = json!({ "name": "B", "emails": [], "custom_fields": { "k": 1, "j": 3 }, "update_time": "y" });
        assert_eq!(
            changed_fields(Some(&before), &after),
            json!({ "name": "A", "custom_fields": { "j": 2 } })
        );
    }
}
