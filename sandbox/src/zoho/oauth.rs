//! The accounts server's token endpoint: `authorization_code` and `refresh_token` grants.
//! Errors come back as Zoho sends them: HTTP 200 with `{"error": "..."}`, except the
//! access-token throttle (HTTP 400). Also the revoke endpoint, which answers an unknown
//! token with HTTP 400.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AccessToken, RefreshToken};
use crate::AppState;
use crate::server::TenantLabel;

const THROTTLE_WINDOW_MS: i64 = 600_000;

/// Decodes `application/x-www-form-urlencoded` pairs.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn oauth_error(error: &str, org: Option<String>) -> Response {
    let mut response = Json(json!({ "error": error })).into_response();
    if let Some(org) = org {
        response.extensions_mut().insert(TenantLabel(org));
    }
    response
}

pub(crate) async fn token(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let mut params: HashMap<String, String> = parse_form(query.as_deref().unwrap_or(""))
        .into_iter()
        .collect();
    params.extend(parse_form(&String::from_utf8_lossy(&body)));
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let now_ms = state.clock.now().timestamp_millis();
    let zoho = &state.zoho;

    let Some(client) = zoho.registry.read().clients.get(get("client_id")).cloned() else {
        return oauth_error("invalid_client", None);
    };
    let org_label = Some(client.org_id.clone());
    let Some(org) = zoho.org(&client.org_id) else {
        return oauth_error("invalid_client", None);
    };
    org.usage.lock().token_calls += 1;
    if client.secret != get("client_secret") {
        return oauth_error("invalid_client_secret", org_label);
    }
    let limits = org.limits.lock().clone();
    let expires_ms = now_ms + limits.access_token_ttl_secs as i64 * 1000;
    let access = format!("1000.{}.{}", zoho.hex(32), zoho.hex(32));
    let api_domain = format!("{}/zoho/api", state.base_url);

    let mut registry = zoho.registry.write();
    let reply = match get("grant_type") {
        "authorization_code" => {
            let code = get("code");
            let valid = registry
                .grant_codes
                .get(code)
                .is_some_and(|g| g.client_id == get("client_id") && g.expires_ms > now_ms);
            // A code is spent by any attempt to use it, as Zoho does; an expired one too.
            let grant = registry.grant_codes.remove(code);
            let Some(grant) = grant.filter(|_| valid) else {
                return oauth_error("invalid_code", org_label);
            };
            let refresh = format!("1000.{}.{}", zoho.hex(32), zoho.hex(32));
            registry.refresh_tokens.insert(
                refresh.clone(),
                RefreshToken {
                    client_id: grant.client_id.clone(),
                    org_id: grant.org_id.clone(),
                    user_id: grant.user_id,
                    scope: grant.scope.clone(),
                    issued_ms: [now_ms].into(),
                },
            );
            registry.access_tokens.insert(
                access.clone(),
                AccessToken {
                    org_id: grant.org_id,
                    user_id: grant.user_id,
                    scope: grant.scope.clone(),
                    expires_ms,
                    refresh_token: refresh.clone(),
                },
            );
            json!({
                "access_token": access,
                "refresh_token": refresh,
                "scope": grant.scope,
                "api_domain": api_domain,
                "token_type": "Bearer",
                "expires_in": limits.access_token_ttl_secs,
            })
        }
        "refresh_token" => {
            let Some(refresh) = registry
                .refresh_tokens
                .get_mut(get("refresh_token"))
                .filter(|r| r.client_id == get("client_id"))
            else {
                return oauth_error("invalid_code", org_label);
            };
            while refresh
                .issued_ms
                .front()
                .is_some_and(|t| *t <= now_ms - THROTTLE_WINDOW_MS)
            {
                refresh.issued_ms.pop_front();
            }
            if refresh.issued_ms.len() >= limits.token_throttle {
                let mut response = (
                    axum::http::StatusCode::BAD_REQUEST,
                    Json(json!({
                        "error": "Access Denied",
                        "error_description": "You have made too many requests continuously. Please try again after some time.",
                        "status": "failure",
                    })),
                )
                    .into_response();
                response.extensions_mut().insert(TenantLabel(client.org_id));
                return response;
            }
            refresh.issued_ms.push_back(now_ms);
            let token = AccessToken {
                org_id: refresh.org_id.clone(),
                user_id: refresh.user_id,
                scope: refresh.scope.clone(),
                expires_ms,
                refresh_token: get("refresh_token").to_owned(),
            };
            let scope = token.scope.clone();
            registry.access_tokens.insert(access.clone(), token);
            json!({
                "access_token": access,
                "scope": scope,
                "api_domain": api_domain,
                "token_type": "Bearer",
                "expires_in": limits.access_token_ttl_secs,
            })
        }
        _ => return oauth_error("unsupported_grant_type", org_label),
    };
    drop(registry);
    let mut response = Json::<Value>(reply).into_response();
    response.extensions_mut().insert(TenantLabel(client.org_id));
    response
}

/// `POST /oauth/v2/token/revoke?token=...`: revokes a refresh token, with every access
/// token minted from it, or one access token. Zoho documents `{"status":"success"}` and
/// HTTP 400 for a token it does not know (the 400 body is our choice).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let mut params: HashMap<String, String> = parse_form(query.as_deref().unwrap_or(""))
        .into_iter()
        .collect();
    params.extend(parse_form(&String::from_utf8_lossy(&body)));
    let token = params.get("token").map(String::as_str).unwrap_or("");
    let mut registry = state.zoho.registry.write();
    let org = if let Some(refresh) = registry.refresh_tokens.remove(token) {
        registry
            .access_tokens
            .retain(|_, a| a.refresh_token != token);
        Some(refresh.org_id)
    } else {
        registry.access_tokens.remove(token).map(|a| a.org_id)
    };
    drop(registry);
    let Some(org) = org else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_token", "status": "failure" })),
        )
            .into_response();
    };
    let mut response = Json(json!({ "status": "success" })).into_response();
    response.extensions_mut().insert(TenantLabel(org));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_decoded() {
        let pairs = parse_form("a=1%2E2&b=x+y&c=%zz&d");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1.2".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "%zz".into()),
                ("d".into(), String::new())
            ]
        );
    }
}
