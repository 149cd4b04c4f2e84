//! The admin API shared by both CRMs: the description, the clock, fault rules and
//! request counts. Each CRM adds its own admin routes under `/admin/zoho` and
//! `/admin/pipedrive`. No authentication: the sandbox is a local test tool and
//! binds to 127.0.0.1 by default.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultRule;
use crate::{AppState, System, hubspot, pipedrive, salesforce, sap_c4c, zendesk_sell, zoho};

/// An admin API error: `{"error": "<field>: <reason>"}` with 400, 404 or 409.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, naming the field where there is one.
    pub message: String,
}

impl AdminError {
    /// 400 with a message that names the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 for an unknown org, company, client, record or rule.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 409 for a name already taken.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The query of the admin routes that delete a record: `deleted_at`
/// (RFC 3339, not after the sandbox's now) backdates the deletion, as for a
/// record deleted longer ago than the CRM's deleted-records feed reaches.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedAt {
    /// When the record was deleted; now when absent.
    pub deleted_at: Option<String>,
}

impl DeletedAt {
    /// The deletion's time: `deleted_at`, or `now`.
    pub fn at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, AdminError> {
        let Some(raw) = &self.deleted_at else {
            return Ok(now);
        };
        let at = chrono::DateTime::parse_from_rfc3339(raw)
            .map_err(|_| {
                AdminError::bad_request(format!("deleted_at: {raw} is not an RFC 3339 time"))
            })?
            .to_utc();
        if at > now {
            return Err(AdminError::bad_request(format!(
                "deleted_at: {raw} is after the sandbox's now ({})",
                now.to_rfc3339()
            )));
        }
        Ok(at)
    }
}

/// Parses an admin request body, turning serde's message into a 400 that names the field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| AdminError::bad_request(format!("body: {e}")))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/clock", get(get_clock).post(set_clock))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route("/requests", get(requests).delete(reset_requests))
        .nest("/zoho", zoho::admin_router())
        .nest("/pipedrive", pipedrive::admin_router())
        .nest("/hubspot", hubspot::admin_router())
        .nest("/salesforce", salesforce::admin_router())
        .nest("/sap_c4c", sap_c4c::admin_router())
        .nest("/zendesk_sell", zendesk_sell::admin_router())
        .nest("/notify", crate::notify::admin_router())
}

async fn index(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "description": state.description.get(),
        "endpoints": [
            "GET /admin/clock", "POST /admin/clock",
            "GET /admin/faults", "POST /admin/faults", "DELETE /admin/faults", "DELETE /admin/faults/{id}",
            "GET /admin/requests", "DELETE /admin/requests",
            "/admin/zoho/...", "/admin/pipedrive/...", "/admin/hubspot/...", "/admin/salesforce/...", "/admin/sap_c4c/...", "/admin/zendesk_sell/... (see sandbox/README.md)",
        ],
    }))
}

async fn get_clock(State(state): State<AppState>) -> Json<Value> {
    clock_json(&state)
}

fn clock_json(state: &AppState) -> Json<Value> {
    Json(json!({
        "now": state.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "offset_ms": state.clock.offset_ms(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    set: Option<DateTime<Utc>>,
    advance_secs: Option<f64>,
}

async fn set_clock(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    let change: ClockChange = parse_body(&body)?;
    match (change.set, change.advance_secs) {
        (Some(at), None) => state.clock.set(at),
        (None, Some(secs)) if secs.is_finite() => {
            state
                .clock
                .advance(Duration::milliseconds((secs * 1000.0).round() as i64));
        }
        (None, Some(_)) => {
            return Err(AdminError::bad_request(
                "advance_secs: must be a finite number",
            ));
        }
        _ => {
            return Err(AdminError::bad_request(
                "body: give exactly one of `set` (RFC 3339) or `advance_secs`",
            ));
        }
    }
    Ok(clock_json(&state))
}

async fn list_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "faults": state.faults.list() }))
}

async fn add_fault(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<FaultRule>), AdminError> {
    let rule: FaultRule = parse_body(&body)?;
    rule.validate().map_err(AdminError::bad_request)?;
    Ok((StatusCode::CREATED, Json(state.faults.add(rule))))
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, AdminError> {
    if state.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::not_found(format!("id: no fault rule {id}")))
    }
}

#[derive(Debug, Deserialize)]
struct RequestFilter {
    system: Option<System>,
    tenant: Option<String>,
    endpoint: Option<String>,
    status: Option<u16>,
}

async fn requests(
    State(state): State<AppState>,
    Query(filter): Query<RequestFilter>,
) -> Json<Value> {
    let rows: Vec<_> = state
        .metrics
        .snapshot()
        .into_iter()
        .filter(|r| filter.system.is_none_or(|s| s == r.system))
        .filter(|r| {
            filter
                .tenant
                .as_ref()
                .is_none_or(|t| r.tenant.as_ref() == Some(t))
        })
        .filter(|r| filter.endpoint.as_ref().is_none_or(|e| &r.endpoint == e))
        .filter(|r| filter.status.is_none_or(|s| s == r.status))
        .collect();
    let total: u64 = rows.iter().map(|r| r.count).sum();
    Json(json!({ "total": total, "requests": rows }))
}

async fn reset_requests(State(state): State<AppState>) -> StatusCode {
    state.metrics.reset();
    StatusCode::NO_CONTENT
}
