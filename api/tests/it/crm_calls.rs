//! What one request may cost the CRM: fields that call it are capped per
//! request (refused before any call when the document asks for too many),
//! and `crmFields` comes from a short per-connector cache. The sandbox's
//! request counts tell what reached the CRM.

use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;

/// `n` aliases of `field` in one document.
fn aliases(n: usize, field: &str) -> String {
    (0..n).map(|i| format!("a{i}: {field} ")).collect()
}

fn messages(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn three_hundred_aliased_crm_fields_are_refused_before_any_crm_call() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let before = sandbox_requests(&sandbox, "pipedrive").await;

    let query = format!(
        "query($id: ID!) {{ connector(id: $id) {{ {} }} }}",
        aliases(300, "crmFields(module: PERSONS) { apiName }")
    );
    let body = app
        .gql(&app.token(Role::Admin), &query, json!({ "id": id }))
        .await;

    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    let message = &messages(&body)[0];
    assert!(message.contains("crmFields"), "{message}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, before);
}

#[tokio::test]
async fn a_hundred_aliased_test_connector_are_refused_before_any_crm_call() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let before = sandbox_requests(&sandbox, "pipedrive").await;

    let query = format!(
        "mutation($id: ID!) {{ {} }}",
        aliases(100, "testConnector(input: {id: $id}) { ok }")
    );
    let body = app
        .gql(&app.token(Role::Admin), &query, json!({ "id": id }))
        .await;

    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(messages(&body)[0].contains("testConnector"), "{body}");
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, before);
}

const FIELDS: &str =
    "query($id: ID!) { connector(id: $id) { crmFields(module: PERSONS) { apiName } } }";

/// What one read of a fresh connector's fields costs the sandbox in requests.
async fn one_read(app: &TestApp, sandbox: &crmsync_sandbox::Sandbox) -> u64 {
    let id = app.pipedrive_connector(sandbox).await;
    let before = sandbox_requests(sandbox, "pipedrive").await;
    app.admin_ok(FIELDS, json!({ "id": id })).await;
    let cost = sandbox_requests(sandbox, "pipedrive").await - before;
    assert!(cost > 0, "a cold read calls the CRM");
    cost
}

#[tokio::test]
async fn crm_fields_asked_in_aliases_and_again_in_another_request_make_one_field_read() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let one = one_read(&app, &sandbox).await;
    let id = app.pipedrive_connector(&sandbox).await;
    let before = sandbox_requests(&sandbox, "pipedrive").await;
    let query = format!(
        "query($id: ID!) {{ connector(id: $id) {{ {} }} }}",
        aliases(5, "crmFields(module: PERSONS) { apiName }")
    );

    let first = app.admin_ok(&query, json!({ "id": id })).await;
    let again = app.admin_ok(&query, json!({ "id": id })).await;

    assert_eq!(first, again);
    assert!(
        first["connector"]["a4"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["apiName"] == "email")),
        "{first}"
    );
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, before + one);
}

#[tokio::test]
async fn new_credentials_make_crm_fields_ask_the_crm_again() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let before = sandbox_requests(&sandbox, "pipedrive").await;
    app.admin_ok(FIELDS, json!({ "id": id })).await;
    let one = sandbox_requests(&sandbox, "pipedrive").await - before;
    let pd = &sandbox.description().pipedrive;
    app.admin_ok(
        "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { id } } }",
        json!({ "input": { "id": id, "pipedrive": { "apiToken": pd.api_token, "companyDomain": pd.company_domain } } }),
    )
    .await;
    let after_update = sandbox_requests(&sandbox, "pipedrive").await;

    app.admin_ok(FIELDS, json!({ "id": id })).await;

    assert_eq!(
        sandbox_requests(&sandbox, "pipedrive").await,
        after_update + one,
        "the fields are read again after new credentials"
    );
}

#[tokio::test]
async fn crm_fields_past_the_cap_in_a_list_are_refused_without_calling_the_crm() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let one = one_read(&app, &sandbox).await;
    for _ in 0..6 {
        app.pipedrive_connector(&sandbox).await;
    }
    let before = sandbox_requests(&sandbox, "pipedrive").await;

    let body = app
        .gql(
            &app.token(Role::Admin),
            "{ connectors(first: 10) { nodes { crmFields(module: PERSONS) { apiName } } } }",
            json!({}),
        )
        .await;

    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(messages(&body)[0].contains("crmFields"), "{body}");
    let calls = sandbox_requests(&sandbox, "pipedrive").await - before;
    // The first connector's fields are cached; at most five of the six
    // others are read.
    assert!(calls <= 5 * one, "{calls} calls, {one} per read");
}
