//! Salesforce's OAuth token endpoint (`POST /services/oauth2/token`: the
//! refresh token and JWT bearer grants) and the identity URL (`/id/{org}/{user}`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::model::SObject;
use super::{ApiError, SCOPES, Session, bearer, json_response, user_record};
use crate::hubspot::oauth::parse_form;
use crate::server::TenantLabel;
use crate::{AppState, Shared};

/// The JWT bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

fn labelled(mut response: Response, org: &str) -> Response {
    response
        .extensions_mut()
        .insert(TenantLabel(org.to_owned()));
    response
}

/// `POST /services/oauth2/token`, form-encoded: `grant_type=refresh_token`
/// (`client_id`, `client_secret`, `refresh_token`) or the JWT bearer grant (`assertion`).
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
        Some("refresh_token") => refresh_grant(
            &state,
            get("client_id"),
            get("client_secret"),
            get("refresh_token"),
        ),
        Some(JWT_BEARER) => jwt_grant(&state, get("assertion")),
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

fn refresh_grant(
    state: &Shared,
    client_id: Option<&str>,
    secret: Option<&str>,
    refresh_token: Option<&str>,
) -> Response {
    let sf = &state.salesforce;
    let Some((client_id, app)) = client_id.and_then(|id| sf.app(id).map(|a| (id, a))) else {
        return oauth_error("invalid_client_id", "client identifier invalid");
    };
    if secret != Some(app.secret.as_str()) {
        return labelled(
            oauth_error("invalid_client", "invalid client credentials"),
            &app.org,
        );
    }
    let refresh = refresh_token
        .and_then(|t| sf.refresh(t))
        .filter(|r| r.client_id == client_id);
    let Some(refresh) = refresh else {
        return labelled(
            oauth_error("invalid_grant", "expired access/refresh token"),
            &app.org,
        );
    };
    labelled(
        session_reply(state, &refresh.org, &refresh.user, &app.secret),
        &app.org,
    )
}

/// The claims the sandbox reads from an assertion.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
}

fn jwt_grant(state: &Shared, assertion: Option<&str>) -> Response {
    let invalid = || oauth_error("invalid_grant", "invalid assertion");
    let Some(assertion) = assertion else {
        return invalid();
    };
    // The issuer says whose certificates to verify with; read it before verifying.
    let Some(unverified) = unverified_claims(assertion) else {
        return invalid();
    };
    let sf = &state.salesforce;
    let Some(app) = unverified.iss.as_deref().and_then(|iss| sf.app(iss)) else {
        return oauth_error("invalid_client_id", "client identifier invalid");
    };
    let org = app.org.clone();
    let verified = app
        .certificates
        .iter()
        .filter_map(|pem| decoding_key(pem).ok())
        .find_map(|key| {
            let mut validation = Validation::new(Algorithm::RS256);
            // Expiry runs on the sandbox clock, and the audience is checked below.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<Claims>(assertion, &key, &validation).ok()
        });
    let Some(claims) = verified.map(|d| d.claims) else {
        return labelled(invalid(), &org);
    };
    let login = state.base_url.trim_end_matches('/');
    let audience_ok = match &claims.aud {
        Some(Value::String(aud)) => aud.trim_end_matches('/') == login,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.trim_end_matches('/') == login)),
        _ => false,
    };
    if !audience_ok {
        return labelled(oauth_error("invalid_grant", "audience is invalid"), &org);
    }
    let now_secs = state.clock.now().timestamp();
    if claims.exp.is_none_or(|exp| exp <= now_secs) {
        return labelled(
            oauth_error("invalid_grant", "expired authorization code"),
            &org,
        );
    }
    let Some(the_org) = sf.org(&org) else {
        return invalid();
    };
    let user = claims
        .sub
        .as_deref()
        .and_then(|sub| the_org.data.lock().user_by_username(sub));
    let Some(user) = user else {
        return labelled(
            oauth_error("invalid_grant", "user hasn't approved this consumer"),
            &org,
        );
    };
    if app.revoked {
        return labelled(
            oauth_error("invalid_grant", "user hasn't approved this consumer"),
            &org,
        );
    }
    labelled(session_reply(state, &org, &user, &app.secret), &org)
}

fn unverified_claims(assertion: &str) -> Option<Claims> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A verifying key from a PEM `CERTIFICATE` (X.509) or `PUBLIC KEY`; the
/// error says what is wrong with it.
pub(crate) fn decoding_key(pem: &str) -> Result<DecodingKey, String> {
    if pem.contains("-----BEGIN CERTIFICATE-----") {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        let key = rsa_key_of_certificate(&der)
            .ok_or("not an X.509 certificate with an RSA public key")?;
        return Ok(DecodingKey::from_rsa_der(key));
    }
    if pem.contains("PUBLIC KEY-----") {
        return DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string());
    }
    Err("expected a PEM CERTIFICATE or PUBLIC KEY".into())
}

/// One DER element: tag, contents, and what follows it.
fn der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *buf.first()?;
    let first = *buf.get(1)?;
    let (len, start) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | *buf.get(2 + k)? as usize;
        }
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((tag, buf.get(start..end)?, buf.get(end..)?))
}

/// The PKCS#1 RSA public key inside a certificate's subjectPublicKeyInfo.
fn rsa_key_of_certificate(cert: &[u8]) -> Option<&[u8]> {
    let (_, certificate, _) = der(cert)?;
    let (_, tbs, _) = der(certificate)?;
    // version [0] (optional), serial, signature algorithm, issuer, validity, subject.
    let (tag, _, mut rest) = der(tbs)?;
    let skip = if tag == 0xA0 { 5 } else { 4 };
    for _ in 0..skip {
        rest = der(rest)?.2;
    }
    let (_, spki, _) = der(rest)?;
    let (_, algorithm, after) = der(spki)?;
    // rsaEncryption, 1.2.840.113549.1.1.1.
    let (_, oid, _) = der(algorithm)?;
    if oid != [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] {
        return None;
    }
    let (tag, bits, _) = der(after)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
}

fn session_reply(state: &Shared, org: &str, user: &str, secret: &str) -> Response {
    let now_ms = state.clock.now().timestamp_millis();
    let access_token = state
        .salesforce
        .mint_session(state.config.seed, org, user, now_ms);
    let id = format!("{}/id/{org}/{user}", state.base_url);
    let issued_at = now_ms.to_string();
    let signature = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|mut mac| {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "instance_url": state.base_url,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": SCOPES,
        }),
    )
}

/// `GET /id/{org}/{user}`: the identity of the session's user.
pub(crate) async fn identity(
    State(state): State<AppState>,
    Path((org_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let session: Option<std::sync::Arc<Session>> =
        bearer(&headers).and_then(|t| state.salesforce.session(&t));
    let Some(session) = session.filter(|s| s.org == org_id) else {
        return json_response(StatusCode::FORBIDDEN, &json!("Bad_OAuth_Token"));
    };
    let Some(org) = state.salesforce.org(&org_id) else {
        return ApiError::not_found().into_response();
    };
    let data = org.data.lock();
    let Some(user) = user_record(&data, &user_id) else {
        return ApiError::not_found().into_response();
    };
    let text = |f: &str| super::text_of(&data, SObject::User, &user, f);
    let base = &state.base_url;
    let v = "{version}";
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("{base}/id/{org_id}/{user_id}"),
            "asserted_user": session.user == user_id,
            "user_id": user_id,
            "organization_id": org_id,
            "username": text("Username"),
            "nick_name": text("Username").split('@').next().unwrap_or_default(),
            "display_name": text("Name"),
            "email": text("Email"),
            "first_name": text("FirstName"),
            "last_name": text("LastName"),
            "active": data.table(SObject::User).value(&user, "IsActive").is_true(),
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": format!("{base}/services/data/v{v}/"),
                "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
                "query": format!("{base}/services/data/v{v}/query/"),
                "limits": format!("{base}/services/data/v{v}/limits/"),
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_that_is_neither_certificate_nor_key_is_refused() {
        assert!(decoding_key("hello").is_err());
        assert!(
            decoding_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err()
        );
    }
}
