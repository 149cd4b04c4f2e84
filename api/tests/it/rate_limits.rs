//! Rate limits (issue 20): failed authentications per client address and
//! requests per tenant, answered 429 RATE_LIMITED with `Retry-After`, and
//! lifted once the wait is over. The apps here run with small limits.

use std::time::Duration;

use crmsync_api::Introspection;
use crmsync_api::rate_limit::RateLimitSettings;
use crmsync_entity::enums::Role;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::ws::{connect, send};

const VIEWER_Q: &str = "{ viewer { subject } }";

/// Failures: one a second, three at once; no tenant limit.
fn failure_limit() -> RateLimitSettings {
    RateLimitSettings {
        tenant_per_sec: 0,
        tenant_burst: 0,
        auth_failures_per_min: 60,
        auth_failures_burst: 3,
    }
}

/// Tenants: one request a second, three at once; no failure limit.
fn tenant_limit() -> RateLimitSettings {
    RateLimitSettings {
        tenant_per_sec: 1,
        tenant_burst: 3,
        auth_failures_per_min: 0,
        auth_failures_burst: 0,
    }
}

async fn viewer(
    app: &TestApp,
    token: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    app.post(Some(token), json!({ "query": VIEWER_Q })).await
}

/// Asserts a 429 RATE_LIMITED naming `variable`; returns `Retry-After`.
fn assert_rate_limited(
    (status, headers, body): &(reqwest::StatusCode, reqwest::header::HeaderMap, Value),
    variable: &str,
) -> u64 {
    assert_eq!(status.as_u16(), 429, "{body}");
    assert_eq!(code(body), "RATE_LIMITED", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(variable), "{body}");
    let retry_after: u64 = headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    retry_after
}

/// Polls `viewer` with `token` until it answers 200, within `within`.
async fn until_served(app: &TestApp, token: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, _, body) = viewer(app, token).await;
        if status == 200 {
            assert!(body.get("errors").is_none(), "{body}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn failed_authentications_past_the_limit_get_429_with_retry_after_then_recover() {
    let app = TestApp::spawn_with_policy(failure_limit(), Introspection::default()).await;
    for _ in 0..3 {
        let (status, _, body) = viewer(&app, "not-a-token").await;
        assert_eq!(status, 401, "{body}");
    }

    let refused = viewer(&app, "not-a-token").await;
    let wait = assert_rate_limited(&refused, "CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN");

    until_served(
        &app,
        &app.token(Role::Viewer),
        Duration::from_secs(wait + 3),
    )
    .await;
}

#[tokio::test]
async fn a_right_token_is_refused_while_its_address_is_over_the_failure_limit() {
    let app = TestApp::spawn_with_policy(failure_limit(), Introspection::default()).await;
    for _ in 0..4 {
        viewer(&app, "not-a-token").await;
    }

    let refused = viewer(&app, &app.token(Role::Viewer)).await;

    assert_rate_limited(&refused, "CRMSYNC_RATE_LIMIT_AUTH_FAILURES_PER_MIN");
}

#[tokio::test]
async fn a_tenant_past_its_request_rate_gets_429_with_retry_after_then_recovers() {
    let app = TestApp::spawn_with_policy(tenant_limit(), Introspection::default()).await;
    let token = app.token(Role::Viewer);
    for _ in 0..3 {
        let (status, _, body) = viewer(&app, &token).await;
        assert_eq!(status, 200, "{body}");
    }

    let refused = viewer(&app, &token).await;
    let wait = assert_rate_limited(&refused, "CRMSYNC_RATE_LIMIT_TENANT_PER_SEC");

    until_served(&app, &token, Duration::from_secs(wait + 3)).await;
}

#[tokio::test]
async fn one_tenant_past_its_rate_leaves_other_tenants_served() {
    let app = TestApp::spawn_with_policy(tenant_limit(), Introspection::default()).await;
    let token = app.token(Role::Viewer);
    for _ in 0..4 {
        viewer(&app, &token).await;
    }
    assert_eq!(viewer(&app, &token).await.0, 429);

    let (status, _, body) = viewer(&app, &app.other_tenant_admin().await).await;

    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn default_limits_serve_a_burst_of_a_few_hundred_requests() {
    let app =
        TestApp::spawn_with_policy(RateLimitSettings::default(), Introspection::default()).await;
    let token = app.token(Role::Viewer);
    for _ in 0..250 {
        let (status, _, body) = viewer(&app, &token).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The close frame's code and reason after a `connection_init` with `token`.
async fn refused_init(app: &TestApp, token: &str) -> (u16, String) {
    let mut socket = connect(app).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer to connection_init");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Text(t))) => panic!("init accepted: {t}"),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn failed_connection_inits_count_against_the_address() {
    let app = TestApp::spawn_with_policy(failure_limit(), Introspection::default()).await;
    for _ in 0..3 {
        let (_, reason) = refused_init(&app, "not-a-token").await;
        assert!(!reason.contains("too many"), "{reason}");
    }

    let (code, reason) = refused_init(&app, "not-a-token").await;

    assert_eq!(code, 4403);
    assert!(
        reason.contains("too many failed authentications"),
        "{reason}"
    );
}

#[tokio::test]
async fn connection_inits_count_against_the_tenant_rate() {
    let app = TestApp::spawn_with_policy(tenant_limit(), Introspection::default()).await;
    let token = app.token(Role::Viewer);
    for _ in 0..3 {
        let mut socket = connect(&app).await;
        let ack = crate::ws::init(&mut socket, &token).await.unwrap();
        assert_eq!(ack["type"], "connection_ack");
    }

    let (code, reason) = refused_init(&app, &token).await;

    assert_eq!(code, 4403);
    assert!(
        reason.contains("CRMSYNC_RATE_LIMIT_TENANT_PER_SEC"),
        "{reason}"
    );
}
