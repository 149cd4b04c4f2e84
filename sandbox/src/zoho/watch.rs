//! The Notification API: `POST`/`PATCH`/`PUT`/`GET`/`DELETE
//! /crm/v8/actions/watch`, channels that expire, and the notifications of
//! record changes (through the API or the admin API) handed to the
//! CRM-neutral notifier ([`crate::notify`]) in Zoho's shape. Needs the
//! `ZohoCRM.notifications.ALL` scope (else 401 OAUTH_SCOPE_MISMATCH). See
//! `sandbox/docs/zoho.md`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::auth::{Need, begin};
use super::org::Module;
use super::{Reject, error};
use crate::notify::{Outbound, RetryPolicy};
use crate::{AppState, Shared, System};

/// The longest a channel may last (Zoho documents one day; a sandbox constant).
pub const MAX_EXPIRY: chrono::Duration = chrono::Duration::hours(24);
/// Most ids in one notification.
const IDS_PER_NOTIFICATION: usize = 100;

/// A notification channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// The subscriber's id of it (a long, kept as digits).
    pub channel_id: String,
    /// `Leads.all`, `Contacts.edit`, ...
    pub events: Vec<String>,
    /// Where notifications go.
    pub notify_url: String,
    /// Echoed in every notification.
    pub token: Option<String>,
    /// When it ends.
    pub channel_expiry: DateTime<Utc>,
}

impl Channel {
    fn wants(&self, module: Module, operation: &str) -> bool {
        let op = match operation {
            "insert" => "create",
            "update" => "edit",
            other => other,
        };
        self.events.iter().any(|e| {
            e.split_once('.').is_some_and(|(m, what)| {
                m.eq_ignore_ascii_case(module.name()) && (what == "all" || what == op)
            })
        })
    }
}

fn invalid(message: &str, details: Value) -> Reject {
    error(400, "INVALID_DATA", message, details)
}

/// The channels of `body`'s `watch` array, checked.
fn channels(body: &Value, now: DateTime<Utc>) -> Result<Vec<Channel>, Reject> {
    let items = body["watch"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            error(
                400,
                "REQUIRED_PARAM_MISSING",
                "watch is missing",
                json!({ "param": "watch" }),
            )
        })?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = |f: &str| json!({ "api_name": f, "json_path": format!("$.watch[{i}].{f}") });
        let channel_id = match &item["channel_id"] {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
            _ => return Err(invalid("invalid data", path("channel_id"))),
        };
        let events: Vec<String> = item["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let known = |e: &String| {
            e.split_once('.').is_some_and(|(m, what)| {
                Module::from_api(m).is_some()
                    && matches!(what, "all" | "create" | "edit" | "delete")
            })
        };
        if events.is_empty() || !events.iter().all(known) {
            return Err(invalid("invalid data", path("events")));
        }
        let notify_url = item["notify_url"]
            .as_str()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| invalid("invalid data", path("notify_url")))?
            .to_owned();
        let token = match &item["token"] {
            Value::Null => None,
            Value::String(t) if t.len() <= 50 => Some(t.clone()),
            _ => return Err(invalid("invalid data", path("token"))),
        };
        let channel_expiry = match &item["channel_expiry"] {
            Value::Null => now + chrono::Duration::hours(1),
            Value::String(t) => DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .filter(|t| *t > now && *t <= now + MAX_EXPIRY)
                .ok_or_else(|| invalid("invalid data", path("channel_expiry")))?,
            _ => return Err(invalid("invalid data", path("channel_expiry"))),
        };
        out.push(Channel {
            channel_id,
            events,
            notify_url,
            token,
            channel_expiry,
        });
    }
    Ok(out)
}

fn success(channels: &[Channel], message: &str, base: &str) -> Value {
    json!({ "watch": channels.iter().map(|c| json!({
        "code": "SUCCESS",
        "details": { "events": c.events.iter().map(|e| {
            let module = e.split_once('.').map_or("", |(m, _)| m);
            json!({
                "channel_expiry": c.channel_expiry.to_rfc3339(),
                "resource_uri": format!("{base}/crm/v8/{module}"),
                "resource_name": module,
                "channel_id": c.channel_id,
            })
        }).collect::<Vec<_>>() },
        "message": message,
        "status": "success",
    })).collect::<Vec<_>>() })
}

/// `POST` (subscribe, replacing a channel of the same id) and `PUT`.
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write(&state, &headers, &body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `PATCH`: changes existing channels (a new expiry renews one).
pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write(&state, &headers, &body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn write(
    state: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    existing: bool,
) -> Result<Response, Reject> {
    let call = begin(state, headers, Need::Notifications).await?;
    call.charge(1).await?;
    let now = state.clock.now();
    let body: Value =
        serde_json::from_slice(body).map_err(|_| invalid("body is not JSON", json!({})))?;
    let new = channels(&body, now)?;
    let mut held = call.org.channels.lock();
    held.retain(|c| c.channel_expiry > now);
    for (i, channel) in new.iter().enumerate() {
        let at = held.iter().position(|c| c.channel_id == channel.channel_id);
        match (at, existing) {
            (None, true) => {
                return Err(invalid(
                    "the given channel id is not subscribed",
                    json!({ "api_name": "channel_id", "json_path": format!("$.watch[{i}].channel_id") }),
                ));
            }
            (Some(at), _) => held[at] = channel.clone(),
            (None, false) => held.push(channel.clone()),
        }
    }
    let message = if existing {
        "Successfully updated the subscribe details"
    } else {
        "Successfully subscribed for actions-watch of the given module"
    };
    Ok((
        StatusCode::OK,
        Json(success(&new, message, &state.base_url)),
    )
        .into_response())
}

/// `GET`: the org's live channels (204 when none).
pub(crate) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let inner = async {
        let call = begin(&state, &headers, Need::Notifications).await?;
        call.charge(1).await?;
        let now = state.clock.now();
        let held = call.org.channels.lock();
        let live: Vec<&Channel> = held.iter().filter(|c| c.channel_expiry > now).collect();
        if live.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let watch: Vec<Value> = live
            .iter()
            .map(|c| {
                json!({ "channel_id": c.channel_id, "events": c.events, "notify_url": c.notify_url,
                        "channel_expiry": c.channel_expiry.to_rfc3339(), "token": c.token })
            })
            .collect();
        Ok::<_, Reject>((StatusCode::OK, Json(json!({ "watch": watch }))).into_response())
    };
    inner.await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Ids {
    channel_ids: Option<String>,
}

/// `DELETE ?channel_ids=1,2`: stops channels (unknown ones are no error).
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(ids): Query<Ids>,
) -> Response {
    let inner = async {
        let call = begin(&state, &headers, Need::Notifications).await?;
        call.charge(1).await?;
        let ids: Vec<String> = ids
            .channel_ids
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            return Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                "channel_ids is missing",
                json!({ "param": "channel_ids" }),
            ));
        }
        let mut held = call.org.channels.lock();
        let gone: Vec<Channel> = held
            .iter()
            .filter(|c| ids.contains(&c.channel_id))
            .cloned()
            .collect();
        held.retain(|c| !ids.contains(&c.channel_id));
        Ok::<_, Reject>(
            (
                StatusCode::OK,
                Json(success(&gone, "Successfully unsubscribed", &state.base_url)),
            )
                .into_response(),
        )
    };
    inner.await.unwrap_or_else(IntoResponse::into_response)
}

/// Zoho's retry policy, as far as known: it is not documented; the sandbox
/// tries twice more, a minute and five minutes later.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        delays: vec![chrono::Duration::minutes(1), chrono::Duration::minutes(5)],
    }
}

/// Hands every org's record changes to the notifier, every 50 ms, until
/// `shutdown`.
pub(crate) async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    loop {
        for org in state.zoho.orgs() {
            flush(&state, &org);
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn flush(state: &Shared, org: &super::Org) {
    let now = state.clock.now();
    let changes: Vec<(Module, u64, &'static str)> = {
        let mut data = org.data.lock();
        let mut out = Vec::new();
        for m in [Module::Leads, Module::Contacts] {
            for (id, op) in std::mem::take(&mut data.store_mut(m).changes) {
                out.push((m, id, op));
            }
        }
        out
    };
    if changes.is_empty() {
        return;
    }
    let channels: Vec<Channel> = org
        .channels
        .lock()
        .iter()
        .filter(|c| c.channel_expiry > now)
        .cloned()
        .collect();
    for channel in &channels {
        for m in [Module::Leads, Module::Contacts] {
            for op in ["insert", "update", "delete"] {
                if !channel.wants(m, op) {
                    continue;
                }
                let ids: Vec<String> = changes
                    .iter()
                    .filter(|(cm, _, cop)| *cm == m && *cop == op)
                    .map(|(_, id, _)| id.to_string())
                    .collect();
                for chunk in ids.chunks(IDS_PER_NOTIFICATION) {
                    let body = json!({
                        "server_time": now.timestamp_millis(),
                        "query_params": {},
                        "module": m.name(),
                        "resource_uri": format!("{}/zoho/api/crm/v8/{}", state.base_url, m.name()),
                        "ids": chunk,
                        "affected_fields": [],
                        "operation": op,
                        "channel_id": channel.channel_id,
                        "token": channel.token,
                    });
                    state.notify.send(
                        Outbound {
                            system: System::Zoho,
                            tenant: org.id.clone(),
                            subscription: channel.channel_id.clone(),
                            url: channel.notify_url.clone(),
                            headers: Vec::new(),
                            body,
                            attempt_at: None,
                            policy: retry_policy(),
                            prepare: None,
                        },
                        now,
                    );
                }
            }
        }
    }
}
