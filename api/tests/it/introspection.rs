//! Introspection and requests without credentials (issue 20): without a
//! token a request is refused 401 (as with a bad one), unless it is
//! introspection and `CRMSYNC_INTROSPECTION` is `always`.

use crmsync_api::Introspection;
use crmsync_api::rate_limit::RateLimitSettings;
use crmsync_entity::enums::Role;
use serde_json::json;

use crate::helpers::*;

const SCHEMA_Q: &str = "{ __schema { queryType { name } } }";

async fn app(introspection: Introspection) -> TestApp {
    TestApp::spawn_with_policy(RateLimitSettings::default(), introspection).await
}

/// Refused 401 UNAUTHENTICATED with `WWW-Authenticate: Bearer …`.
fn assert_unauthenticated(
    (status, headers, body): &(
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        serde_json::Value,
    ),
) {
    assert_eq!(status.as_u16(), 401, "{body}");
    assert_eq!(code(body), "UNAUTHENTICATED", "{body}");
    let challenge = headers
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[tokio::test]
async fn a_request_without_a_token_is_401_like_a_bad_token() {
    let app = app(Introspection::default()).await;

    let missing = app
        .post(None, json!({ "query": "{ viewer { subject } }" }))
        .await;
    let bad = app
        .post(
            Some("not-a-token"),
            json!({ "query": "{ viewer { subject } }" }),
        )
        .await;

    assert_unauthenticated(&missing);
    assert_unauthenticated(&bad);
}

#[tokio::test]
async fn a_query_over_get_without_a_token_is_401() {
    let app = app(Introspection::default()).await;

    let response = app
        .client
        .get(format!(
            "{}?query=%7B%20viewer%20%7B%20subject%20%7D%20%7D",
            app.url
        ))
        .send()
        .await
        .unwrap();

    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap();
    assert_unauthenticated(&(status, headers, body));
}

#[tokio::test]
async fn introspection_without_a_token_is_refused_by_default() {
    let app = app(Introspection::default()).await;

    let response = app.post(None, json!({ "query": SCHEMA_Q })).await;

    assert_unauthenticated(&response);
}

#[tokio::test]
async fn introspection_with_a_token_answers_by_default() {
    let app = app(Introspection::default()).await;

    let body = app.gql(&app.token(Role::Viewer), SCHEMA_Q, json!({})).await;

    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
}

#[tokio::test]
async fn introspection_without_a_token_answers_when_always_open() {
    let app = app(Introspection::Always).await;

    let (status, _, body) = app
        .post(
            None,
            json!({ "query": "query Docs { ...Types } fragment Types on Query { __schema { queryType { name } } __typename }", "operationName": "Docs" }),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
}

#[tokio::test]
async fn with_introspection_open_other_fields_still_need_a_token() {
    let app = app(Introspection::Always).await;

    let response = app
        .post(
            None,
            json!({ "query": "{ __typename viewer { subject } }" }),
        )
        .await;

    assert_unauthenticated(&response);
}
