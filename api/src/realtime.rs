//! The inbound endpoint of real time: `POST {INBOUND_PATH}/{token}`, one URL
//! per connector, called by its CRM with change notifications. Any API
//! process takes the call: the subscription is found by its token, the
//! connector's kit verifies the call (the vendor's signature, echoed token
//! or basic auth), and the records it names wait for a CRM_EVENT run on the
//! shared queue ([`crmsync_worker::realtime`]).
//!
//! The answer comes within [`ANSWER_WITHIN`] (under every vendor's timeout):
//! work still going then finishes in the background and the CRM reads 202.
//! Bodies are capped at [`MAX_INBOUND_BYTES`]. Like the API's errors, the
//! answers say nothing of why: 404 for an unknown URL, 401 for a call that
//! fails verification, 500 with a request id for anything else; causes go
//! to the log.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use crmsync_worker::crm::realtime::Inbound;
use crmsync_worker::realtime::{INBOUND_PATH, InboundError, Realtime, Received};

/// The largest notification body taken (256 KiB: vendors send ids, not records).
pub const MAX_INBOUND_BYTES: usize = 256 << 10;

/// How long a CRM waits for its answer at most (vendors give 5-10 s).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(4);

/// `POST {INBOUND_PATH}/{token}`.
pub(crate) fn router(realtime: Realtime) -> Router {
    Router::new()
        .route(
            &format!("{INBOUND_PATH}/{{token}}"),
            post(inbound).layer(DefaultBodyLimit::max(MAX_INBOUND_BYTES)),
        )
        .with_state(Arc::new(realtime))
}

async fn inbound(
    State(realtime): State<Arc<Realtime>>,
    Path(token): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect();
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", realtime.public_url.trim_end_matches('/'));
    // The work goes on if the answer cannot wait for it.
    let work = tokio::spawn(async move {
        let inbound = Inbound {
            headers: &headers,
            url: &url,
            method: "POST",
            body: &body,
        };
        realtime.receive(&token, &inbound, Utc::now()).await
    });
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(Ok(received))) => {
            if let Received::Queued { run_id, records } = &received {
                tracing::debug!(run = %run_id, records, "CRM notification queued");
            }
            StatusCode::OK.into_response()
        }
        Ok(Ok(Err(InboundError::NotFound))) => reply(StatusCode::NOT_FOUND, "NOT_FOUND", None),
        Ok(Ok(Err(InboundError::Refused(why)))) => {
            tracing::warn!(why, "inbound CRM notification refused");
            reply(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None)
        }
        Ok(Ok(Err(InboundError::Internal(cause)))) => internal(&cause),
        Ok(Err(join)) => internal(&join.to_string()),
        Err(_) => {
            tracing::info!("inbound CRM notification still being stored: answered 202");
            StatusCode::ACCEPTED.into_response()
        }
    }
}

fn internal(cause: &str) -> Response {
    let id = crmsync_entity::new_id();
    tracing::error!(request_id = %id, cause, "inbound CRM notification failed");
    reply(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", Some(&id))
}

fn reply(status: StatusCode, code: &str, request_id: Option<&str>) -> Response {
    let body = match request_id {
        Some(id) => serde_json::json!({ "error": code, "requestId": id }),
        None => serde_json::json!({ "error": code }),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
