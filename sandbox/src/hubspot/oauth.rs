//! HubSpot's OAuth token endpoint (`POST /oauth/v1/token`, refresh grant) and
//! token information (`GET /oauth/v1/access-tokens/{token}`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ACCESS_TOKEN_SECS, correlation_id, json_response};
use crate::AppState;
use crate::server::TenantLabel;

/// Decodes an `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn oauth_error(status: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "status": status,
            "message": message,
            "correlationId": correlation_id(),
        }),
    )
}

/// `POST /oauth/v1/token` with `grant_type=refresh_token`, `client_id`,
/// `client_secret` and `refresh_token`, form-encoded.
pub(crate) async fn token(State(state): State<AppState>, body: Bytes) -> Response {
    let form = parse_form(&String::from_utf8_lossy(&body));
    let get = |key: &str| {
        form.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    match get("grant_type") {
        Some("refresh_token") => {}
        Some("authorization_code") => {
            return oauth_error(
                "BAD_AUTH_CODE",
                "missing or unknown auth code (the sandbox issues refresh tokens through its admin API)",
            );
        }
        Some(_) | None => {
            return oauth_error(
                "BAD_GRANT_TYPE",
                "missing or unsupported grant_type; use refresh_token",
            );
        }
    }
    let hs = &state.hubspot;
    let Some(client_id) = get("client_id") else {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    };
    let Some(app) = hs.apps.read().get(client_id).cloned() else {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    };
    if get("client_secret") != Some(app.secret.as_str()) {
        return oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    let Some(refresh) = get("refresh_token") else {
        return oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    };
    let Some(grant) = hs.refresh_tokens.read().get(refresh).cloned() else {
        return oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    };
    if grant.client_id != client_id {
        return oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let expires = state.clock.now().timestamp_millis() + ACCESS_TOKEN_SECS * 1000;
    let access = hs.mint_access(
        state.config.seed,
        grant.portal,
        client_id,
        grant.scopes.clone(),
        expires,
    );
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": ACCESS_TOKEN_SECS,
        }),
    );
    response
        .extensions_mut()
        .insert(TenantLabel(grant.portal.to_string()));
    response
}

/// `GET /oauth/v1/access-tokens/{token}`: who the token belongs to.
pub(crate) async fn access_token_info(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let now = state.clock.now().timestamp_millis();
    match state.hubspot.token(&token) {
        Some(info) if info.oauth && info.expires_ms.is_some_and(|e| e > now) => {
            let expires_in = (info.expires_ms.unwrap_or(now) - now) / 1000;
            json_response(
                StatusCode::OK,
                &json!({
                    "token": token,
                    "user": "sandbox@hubspot.example",
                    "hub_domain": format!("portal{}.example", info.portal),
                    "scopes": info.scopes,
                    "hub_id": info.portal,
                    "app_id": 1,
                    "expires_in": expires_in,
                    "user_id": 1,
                    "token_type": "access",
                }),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "status": "error",
                "message": "The OAuth token used to make this call expired or is unknown.",
                "correlationId": correlation_id(),
                "category": "EXPIRED_AUTHENTICATION",
            }),
        )
        .into_response(),
    }
}
