//! STUB: replaced by the pipedrive implementation.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::{AppState, Shared};

/// In-memory state.
#[derive(Debug, Default)]
pub struct PipedriveState {}

/// Printed at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipedriveDescription { pub base_url: String, pub api_token: String, pub company_domain: String, }

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}

pub(crate) fn admin_router() -> Router<AppState> {
    Router::new()
}

pub(crate) fn tenant_of(_state: &Shared, _request: &Request) -> Option<String> {
    None
}

pub(crate) fn fault_response(_state: &Shared, status: u16) -> Response {
    axum::http::StatusCode::from_u16(status).unwrap_or_default().into_response()
}

pub(crate) fn bootstrap(_state: &Shared) -> PipedriveDescription {
    PipedriveDescription::default()
}
