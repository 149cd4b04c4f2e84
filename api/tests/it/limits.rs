//! Limits: GET runs queries only, 1 MiB bodies, no batches, depth and complexity.

use crmsync_entity::enums::Role;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_mutation_over_get_is_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(&app.url)
        .bearer_auth(app.token(Role::Admin))
        .query(&[(
            "query",
            "mutation { upsertContact(input: {email: \"a@b.com\"}) { contact { id } } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let count = app.admin_ok("{ contacts { totalCount } }", json!({})).await;
    assert_eq!(count["contacts"]["totalCount"], 0, "nothing was written");
}

#[tokio::test]
async fn a_query_over_get_runs_and_a_bare_get_serves_graphiql() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(&app.url)
        .bearer_auth(app.token(Role::Admin))
        .query(&[("query", "{ viewer { role } }")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "ADMIN");
    let page = app
        .client
        .get(&app.url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.to_lowercase().contains("graphiql"));
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(1 << 20);
    let (status, _, _) = app
        .post(
            Some(&app.token(Role::Admin)),
            json!({ "query": format!("{{ viewer {{ role }} }} # {big}") }),
        )
        .await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn a_batch_is_refused() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app
        .post(
            Some(&app.token(Role::Admin)),
            json!([{ "query": "{ viewer { role } }" }, { "query": "{ viewer { role } }" }]),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
}

#[tokio::test]
async fn a_query_too_deep_is_refused() {
    let app = TestApp::spawn().await;
    let nested = "connector { lastRun { ".repeat(8) + "id" + &" } }".repeat(8);
    let query = format!("{{ syncRuns {{ edges {{ node {{ {nested} }} }} }} }}");
    let query = query.as_str();
    let body = app.gql(&app.token(Role::Admin), query, json!({})).await;
    let message = body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(message.contains("nested too deep"), "{body}");
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn a_query_too_complex_is_refused() {
    let app = TestApp::spawn().await;
    let fields: String = (0..600)
        .map(|i| format!("a{i}: platformFields {{ name }} "))
        .collect();
    let body = app
        .gql(
            &app.token(Role::Admin),
            &format!("{{ {fields} }}"),
            json!({}),
        )
        .await;
    let message = body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(message.contains("complex"), "{body}");
}
