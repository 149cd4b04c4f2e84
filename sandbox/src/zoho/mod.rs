//! STUB: replaced by the zoho implementation.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::{AppState, Shared};

/// In-memory state.
#[derive(Debug, Default)]
pub struct ZohoState {}

/// Printed at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZohoDescription { pub accounts_url: String, pub api_domain: String, pub client_id: String, pub client_secret: String, pub grant_code: String, pub mint_grant_code_url: String, pub org_id: String, }

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

pub(crate) fn bootstrap(_state: &Shared) -> ZohoDescription {
    ZohoDescription::default()
}
