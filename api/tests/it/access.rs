//! Authentication and roles (T2).

use std::time::Duration;

use base64::Engine;
use crmsync_entity::enums::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

const VIEWER_Q: &str = "{ viewer { subject role tenant { slug } } }";

fn claims(exp_offset: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({ "sub": "u", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + exp_offset, "role": "admin" })
}

fn sign(alg: Algorithm, secret: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn refused(app: &TestApp, token: &str) {
    refused_saying(app, token, "").await;
}

/// Refused with 401, UNAUTHENTICATED and a message containing `why`.
async fn refused_saying(app: &TestApp, token: &str, why: &str) {
    let (status, _, body) = app.post(Some(token), json!({ "query": VIEWER_Q })).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{body}");
}

/// The seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Accepted: the viewer query answers with the token's role.
async fn accepted(app: &TestApp, token: &str) {
    let body = app.gql(token, VIEWER_Q, json!({})).await;
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN", "{body}");
}

#[tokio::test]
async fn a_valid_token_names_subject_role_and_tenant() {
    let app = TestApp::spawn().await;
    let data = app.gql(&app.token(Role::Viewer), VIEWER_Q, json!({})).await;
    assert_eq!(data["data"]["viewer"]["role"], "VIEWER");
    assert_eq!(data["data"]["viewer"]["tenant"]["slug"], app.slug.as_str());
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(-120);
    c["tenant"] = json!(app.slug);
    refused(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    refused(&app, &sign(Algorithm::HS256, "another-secret", &c)).await;
}

#[tokio::test]
async fn another_algorithm_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    refused(&app, &sign(Algorithm::HS384, SECRET, &c)).await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(c.to_string())
    );
    refused(&app, &token).await;
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["aud"] = json!("someone-else");
    refused(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["iss"] = json!("someone-else");
    refused(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
}

#[tokio::test]
async fn a_token_not_valid_before_a_future_nbf_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(7200);
    c["tenant"] = json!(app.slug);
    c["nbf"] = json!(now() + 3600);
    refused_saying(&app, &sign(Algorithm::HS256, SECRET, &c), "nbf").await;
}

#[tokio::test]
async fn an_nbf_within_the_leeway_is_accepted() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["nbf"] = json!(now() + 10);
    accepted(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(7200);
    c["tenant"] = json!(app.slug);
    c["iat"] = json!(now() + 3600);
    refused_saying(&app, &sign(Algorithm::HS256, SECRET, &c), "iat").await;
}

#[tokio::test]
async fn an_audience_array_holding_ours_is_accepted() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["aud"] = json!(["another-api", AUDIENCE]);
    accepted(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
}

#[tokio::test]
async fn an_audience_array_without_ours_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["aud"] = json!(["another-api", "a-third-api"]);
    refused_saying(&app, &sign(Algorithm::HS256, SECRET, &c), "audience").await;
}

#[tokio::test]
async fn a_missing_subject_is_refused() {
    let app = TestApp::spawn().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c.as_object_mut().unwrap().remove("sub");
    refused(&app, &sign(Algorithm::HS256, SECRET, &c)).await;
}

#[tokio::test]
async fn an_unknown_tenant_is_refused() {
    let app = TestApp::spawn().await;
    refused(
        &app,
        &token_for(Role::Admin, Some("no-such-tenant"), Duration::from_secs(60)),
    )
    .await;
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app.post(None, json!({ "query": VIEWER_Q })).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn a_viewer_calling_a_mutation_is_forbidden() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Viewer),
            "mutation { upsertContact(input: {email: \"a@b.com\"}) { contact { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn operator_only_operations_refuse_tenant_roles_and_operators_create_tenants() {
    let app = TestApp::spawn().await;
    let create = "mutation($s: String!) { createTenant(input: {name: \"New\", slug: $s}) { tenant { slug } } }";
    let body = app
        .gql(&app.token(Role::Admin), create, json!({ "s": slug() }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            &app.token(Role::Admin),
            "{ tenants { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    let s = slug();
    let body = app.gql(&app.operator(), create, json!({ "s": s })).await;
    assert_eq!(
        body["data"]["createTenant"]["tenant"]["slug"],
        s.as_str(),
        "{body}"
    );
    let body = app.gql(&app.operator(), create, json!({ "s": s })).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let body = app
        .gql(
            &app.operator(),
            "{ tenants(first: 1) { totalCount edges { cursor } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert!(
        body["data"]["tenants"]["totalCount"].as_i64().unwrap() >= 2,
        "{body}"
    );
    assert_eq!(body["data"]["tenants"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn operators_have_no_tenant_data() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(&app.operator(), "{ connectors { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

const CREATE_KEY: &str = "mutation($role: Role!) { createApiKey(input: {name: \"partner\", role: $role}) { apiKey { id role } secret } }";

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let app = TestApp::spawn().await;
    let data = app.admin_ok(CREATE_KEY, json!({ "role": "ADMIN" })).await;
    let secret = data["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let id = data["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("csk_"));

    let body = app.gql(&secret, VIEWER_Q, json!({})).await;
    assert_eq!(
        body["data"]["viewer"]["subject"],
        format!("apikey:{id}"),
        "{body}"
    );
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN");

    app.admin_ok(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } } }",
        json!({ "id": id }),
    )
    .await;
    refused(&app, &secret).await;
    refused(&app, &format!("{}x", &secret[..secret.len() - 1])).await;
}

#[tokio::test]
async fn a_viewer_api_key_cannot_mutate_and_keys_are_never_operators() {
    let app = TestApp::spawn().await;
    let data = app.admin_ok(CREATE_KEY, json!({ "role": "VIEWER" })).await;
    let secret = data["createApiKey"]["secret"].as_str().unwrap();
    let body = app
        .gql(
            secret,
            "mutation { upsertContact(input: {email: \"a@b.com\"}) { contact { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            &app.token(Role::Admin),
            CREATE_KEY,
            json!({ "role": "OPERATOR" }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.role");
}

#[tokio::test]
async fn configuration_changes_are_in_the_audit_log_for_admins_only() {
    let app = TestApp::spawn().await;
    let data = app.admin_ok(CREATE_KEY, json!({ "role": "VIEWER" })).await;
    let id = data["createApiKey"]["apiKey"]["id"].as_str().unwrap();
    let data = app
        .admin_ok(
            "{ auditLog { totalCount edges { node { actor action targetType targetId at } } } }",
            json!({}),
        )
        .await;
    let entry = &data["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["action"], "api_key.create");
    assert_eq!(entry["actor"], "user-1");
    assert_eq!(entry["targetId"], id);
    let body = app
        .gql(
            &app.token(Role::Viewer),
            "{ auditLog { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

const RS256_PRIVATE: &str = include_str!("../fixtures/rs256-test-private.pem");
const RS256_PUBLIC: &str = include_str!("../fixtures/rs256-test-public.pem");

fn sign_rs256(private_pem: &str, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn rs256_app() -> TestApp {
    TestApp::spawn_with_key(crmsync_api::auth::JwtKey::Rs256PublicPem(
        RS256_PUBLIC.to_owned(),
    ))
    .await
}

#[tokio::test]
async fn an_rs256_token_signed_with_the_private_key_is_accepted() {
    let app = rs256_app().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    let data = app
        .gql(&sign_rs256(RS256_PRIVATE, &c), VIEWER_Q, json!({}))
        .await;
    assert_eq!(data["data"]["viewer"]["role"], "ADMIN", "{data}");
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_rs256_public_key_is_refused() {
    // The classic algorithm-confusion attack: the public key used as an HMAC secret.
    let app = rs256_app().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    refused(&app, &sign(Algorithm::HS256, RS256_PUBLIC, &c)).await;
}

#[tokio::test]
async fn an_rs256_token_from_another_key_pair_is_refused() {
    let app = rs256_app().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    refused(
        &app,
        &sign_rs256(include_str!("../fixtures/rs256-other-private.pem"), &c),
    )
    .await;
}

#[tokio::test]
async fn an_rs256_token_with_a_future_nbf_or_iat_is_refused() {
    let app = rs256_app().await;
    let mut c = claims(7200);
    c["tenant"] = json!(app.slug);
    c["nbf"] = json!(now() + 3600);
    refused_saying(&app, &sign_rs256(RS256_PRIVATE, &c), "nbf").await;
    let mut c = claims(7200);
    c["tenant"] = json!(app.slug);
    c["iat"] = json!(now() + 3600);
    refused_saying(&app, &sign_rs256(RS256_PRIVATE, &c), "iat").await;
}

#[tokio::test]
async fn an_rs256_audience_array_holding_ours_is_accepted() {
    let app = rs256_app().await;
    let mut c = claims(600);
    c["tenant"] = json!(app.slug);
    c["aud"] = json!([AUDIENCE, "another-api"]);
    accepted(&app, &sign_rs256(RS256_PRIVATE, &c)).await;
}
