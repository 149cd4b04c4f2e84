//! The token endpoint (refresh and JWT bearer grants), sessions and the identity URL.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use super::{Sf, V, assert_error, token};
use crate::common::TestSandbox;

const PRIVATE_KEY: &str = include_str!("../../fixtures/test-only-jwt-private-key.pem");
const CERTIFICATE: &str = include_str!("../../fixtures/test-only-jwt-certificate.pem");
const PUBLIC_KEY: &str = include_str!("../../fixtures/test-only-jwt-public-key.pem");

fn assertion(iss: &str, sub: &str, aud: &str, exp: i64) -> String {
    let claims = json!({ "iss": iss, "sub": sub, "aud": aud, "exp": exp });
    let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

fn in_a_minute() -> i64 {
    chrono::Utc::now().timestamp() + 60
}

async fn jwt(sb: &TestSandbox, assertion: &str) -> super::Reply {
    token(
        sb,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ],
    )
    .await
}

#[tokio::test]
async fn the_refresh_grant_answers_a_session_and_no_new_refresh_token() {
    let sb = TestSandbox::start().await;
    let d = &sb.desc().salesforce;
    let r = token(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["instance_url"], sb.sandbox.base_url());
    assert_eq!(r.body["token_type"], "Bearer");
    assert!(
        r.body["access_token"]
            .as_str()
            .unwrap()
            .starts_with(&d.org_id[..15])
    );
    assert!(
        r.body["issued_at"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit())
    );
    assert!(r.body["id"].as_str().unwrap().starts_with(&format!(
        "{}/id/{}/005",
        sb.sandbox.base_url(),
        d.org_id
    )));
    assert!(!r.body["signature"].as_str().unwrap().is_empty());
    assert!(r.body["scope"].is_string());
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
}

#[tokio::test]
async fn refresh_grant_errors_name_the_client_the_secret_or_the_grant() {
    let sb = TestSandbox::start().await;
    let d = &sb.desc().salesforce;
    let cases = [
        (
            ("nope", d.client_secret.as_str(), d.refresh_token.as_str()),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            (d.client_id.as_str(), "wrong", d.refresh_token.as_str()),
            "invalid_client",
            "invalid client credentials",
        ),
        (
            (
                d.client_id.as_str(),
                d.client_secret.as_str(),
                "5Aep861bogus",
            ),
            "invalid_grant",
            "expired access/refresh token",
        ),
    ];
    for ((id, secret, refresh), error, description) in cases {
        let r = token(
            &sb,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", id),
                ("client_secret", secret),
                ("refresh_token", refresh),
            ],
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(
            r.body,
            json!({ "error": error, "error_description": description })
        );
    }
    let r = token(&sb, &[("grant_type", "password")]).await;
    assert_eq!(r.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn a_call_without_a_valid_session_is_401_invalid_session_id() {
    let sb = TestSandbox::start().await;
    let r = sb
        .http
        .get(sb.url(&format!("{V}/limits")))
        .bearer_auth("00Dbogus!AQxyz")
        .send()
        .await
        .unwrap();
    let r = crate::hubspot::reply(r).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
}

#[tokio::test]
async fn a_session_expires_after_the_orgs_timeout_without_calls() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (status, _) = sf
        .admin_put("/settings", json!({ "session_timeout_secs": 60 }))
        .await;
    assert_eq!(status, 200);
    sb.admin_post("/admin/clock", json!({ "advance_secs": 30 }))
        .await;
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
    // The call above renewed the session: 30 more seconds do not end it.
    sb.admin_post("/admin/clock", json!({ "advance_secs": 30 }))
        .await;
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
    sb.admin_post("/admin/clock", json!({ "advance_secs": 61 }))
        .await;
    assert_error(
        &sf.get(&format!("{V}/limits")).await,
        401,
        "INVALID_SESSION_ID",
    );
}

#[tokio::test]
async fn expired_sessions_are_refused_and_the_refresh_token_still_works() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (status, _) = sb
        .admin_post(&sf.admin("/sessions/expire"), json!({}))
        .await;
    assert_eq!(status, 204);
    assert_error(
        &sf.get(&format!("{V}/sobjects")).await,
        401,
        "INVALID_SESSION_ID",
    );
    let r = token(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &sf.client_id),
            ("client_secret", &sf.client_secret),
            ("refresh_token", &sf.refresh_token),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_revoked_org_refuses_its_sessions_refresh_tokens_and_jwts() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sb.admin_post(
        &sf.admin("/certificates"),
        json!({ "certificate": CERTIFICATE }),
    )
    .await;
    let (status, _) = sb.admin_post(&sf.admin("/revoke"), json!({})).await;
    assert_eq!(status, 204);
    assert_error(
        &sf.get(&format!("{V}/limits")).await,
        401,
        "INVALID_SESSION_ID",
    );
    let r = token(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &sf.client_id),
            ("client_secret", &sf.client_secret),
            ("refresh_token", &sf.refresh_token),
        ],
    )
    .await;
    assert_eq!(r.body["error"], "invalid_grant");
    let r = jwt(
        &sb,
        &assertion(
            &sf.client_id,
            &sf.username,
            sb.sandbox.base_url(),
            in_a_minute(),
        ),
    )
    .await;
    assert_eq!(r.body["error"], "invalid_grant", "{}", r.body);
}

#[tokio::test]
async fn the_jwt_bearer_flow_accepts_an_assertion_signed_for_a_registered_certificate() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (status, body) = sb
        .admin_post(
            &sf.admin("/certificates"),
            json!({ "certificate": CERTIFICATE }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let r = jwt(
        &sb,
        &assertion(
            &sf.client_id,
            &sf.username,
            sb.sandbox.base_url(),
            in_a_minute(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["instance_url"], sb.sandbox.base_url());
    assert!(r.body.get("refresh_token").is_none());
    let token = r.body["access_token"].as_str().unwrap();
    let r = sb
        .http
        .get(sb.url(&format!("{V}/limits")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_public_key_registers_as_well_as_a_certificate() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (status, body) = sb
        .admin_post(
            &sf.admin("/certificates"),
            json!({ "certificate": PUBLIC_KEY }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let r = jwt(
        &sb,
        &assertion(
            &sf.client_id,
            &sf.username,
            sb.sandbox.base_url(),
            in_a_minute(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, body) = sb
        .admin_post(
            &sf.admin("/certificates"),
            json!({ "certificate": "not a pem" }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("certificate:"),
        "{body}"
    );
}

#[tokio::test]
async fn jwt_assertions_are_checked_for_issuer_audience_subject_expiry_and_signature() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let base = sb.sandbox.base_url().to_owned();
    // No certificate registered yet: nothing verifies the signature.
    let r = jwt(
        &sb,
        &assertion(&sf.client_id, &sf.username, &base, in_a_minute()),
    )
    .await;
    assert_eq!(
        r.body,
        json!({ "error": "invalid_grant", "error_description": "invalid assertion" })
    );
    sb.admin_post(
        &sf.admin("/certificates"),
        json!({ "certificate": CERTIFICATE }),
    )
    .await;
    let cases = [
        (
            assertion("3MVG9unknown", &sf.username, &base, in_a_minute()),
            "invalid_client_id",
        ),
        (
            assertion(
                &sf.client_id,
                &sf.username,
                "https://login.salesforce.com",
                in_a_minute(),
            ),
            "invalid_grant",
        ),
        (
            assertion(&sf.client_id, "nobody@example.com", &base, in_a_minute()),
            "invalid_grant",
        ),
        (
            assertion(
                &sf.client_id,
                &sf.username,
                &base,
                chrono::Utc::now().timestamp() - 10,
            ),
            "invalid_grant",
        ),
        ("not.a.jwt".to_owned(), "invalid_grant"),
    ];
    for (assertion, error) in cases {
        let r = jwt(&sb, &assertion).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"], error, "{}", r.body);
    }
    let r = jwt(
        &sb,
        &assertion(
            &sf.client_id,
            &sf.username,
            "https://login.salesforce.com",
            in_a_minute(),
        ),
    )
    .await;
    assert_eq!(r.body["error_description"], "audience is invalid");
    // Expiry runs on the sandbox clock.
    sb.admin_post("/admin/clock", json!({ "advance_secs": 120 }))
        .await;
    let r = jwt(
        &sb,
        &assertion(&sf.client_id, &sf.username, &base, in_a_minute()),
    )
    .await;
    assert_eq!(r.body["error"], "invalid_grant");
}

#[tokio::test]
async fn the_identity_url_describes_the_sessions_user() {
    let sb = TestSandbox::start().await;
    let d = &sb.desc().salesforce;
    let r = token(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    let id = r.body["id"].as_str().unwrap();
    let access = r.body["access_token"].as_str().unwrap();
    let me = crate::hubspot::reply(sb.http.get(id).bearer_auth(access).send().await.unwrap()).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["username"], d.username.as_str());
    assert_eq!(me.body["organization_id"], d.org_id.as_str());
    let other =
        crate::hubspot::reply(sb.http.get(id).bearer_auth("bogus").send().await.unwrap()).await;
    assert_eq!(other.status, 403);
}
