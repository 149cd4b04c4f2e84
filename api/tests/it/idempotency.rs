//! Idempotency keys (issue 20): the same key with the same input replays the
//! first result; with other input it is refused, naming the key; keys are
//! per tenant.

use serde_json::{Value, json};

use crate::helpers::*;

const START: &str = "mutation($id: ID!, $key: String) { startSync(input: {connectorId: $id, idempotencyKey: $key}) { run { id connector { id } } } }";

/// [`START`] with the default mode written out.
const START_INCREMENTAL: &str = "mutation($id: ID!, $key: String) { startSync(input: {connectorId: $id, idempotencyKey: $key, mode: INCREMENTAL}) { run { id connector { id } } } }";

async fn start(app: &TestApp, token: &str, connector: &str, key: &str) -> Value {
    app.gql(token, START, json!({ "id": connector, "key": key }))
        .await
}

/// Refused as VALIDATION at `input.idempotencyKey`, saying the input differs.
fn assert_key_reused(body: &Value) {
    assert_eq!(code(body), "VALIDATION", "{body}");
    let error = &body["errors"][0];
    assert_eq!(
        error["extensions"]["field"], "input.idempotencyKey",
        "{body}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("different input"),
        "{body}"
    );
}

#[tokio::test]
async fn the_same_key_and_input_return_the_first_run() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let connector = app.pipedrive_connector(&sandbox).await;
    let admin = app.token(crmsync_entity::enums::Role::Admin);

    let first = start(&app, &admin, &connector, "k1").await;
    // Written out in full this time: the same input as the default mode.
    let again = app
        .gql(
            &admin,
            START_INCREMENTAL,
            json!({ "id": connector, "key": "k1" }),
        )
        .await;

    let run = &first["data"]["startSync"]["run"]["id"];
    assert!(run.is_string(), "{first}");
    assert_eq!(&again["data"]["startSync"]["run"]["id"], run, "{again}");
}

#[tokio::test]
async fn a_start_sync_key_reused_on_another_connector_is_refused() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let first = app.pipedrive_connector(&sandbox).await;
    let second = app.pipedrive_connector(&sandbox).await;
    let admin = app.token(crmsync_entity::enums::Role::Admin);
    let started = start(&app, &admin, &first, "k1").await;
    assert!(started.get("errors").is_none(), "{started}");

    let reused = start(&app, &admin, &second, "k1").await;

    assert_key_reused(&reused);
}

#[tokio::test]
async fn a_create_connector_key_reused_with_another_name_is_refused() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let mut input = pipedrive_input(&sandbox);
    input["idempotencyKey"] = json!("create-1");
    app.admin_ok(CREATE_CONNECTOR, json!({ "input": input.clone() }))
        .await;
    input["name"] = json!("Another name");

    let reused = app
        .gql(
            &app.token(crmsync_entity::enums::Role::Admin),
            CREATE_CONNECTOR,
            json!({ "input": input }),
        )
        .await;

    assert_key_reused(&reused);
}

#[tokio::test]
async fn the_same_key_in_two_tenants_starts_two_runs() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let ours = app.pipedrive_connector(&sandbox).await;
    let other_admin = app.other_tenant_admin().await;
    let created = app
        .gql(
            &other_admin,
            CREATE_CONNECTOR,
            json!({ "input": pipedrive_input(&sandbox) }),
        )
        .await;
    let theirs = created["data"]["createConnector"]["connector"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();

    let a = start(
        &app,
        &app.token(crmsync_entity::enums::Role::Admin),
        &ours,
        "k1",
    )
    .await;
    let b = start(&app, &other_admin, &theirs, "k1").await;

    assert_eq!(
        a["data"]["startSync"]["run"]["connector"]["id"],
        ours.as_str(),
        "{a}"
    );
    assert_eq!(
        b["data"]["startSync"]["run"]["connector"]["id"],
        theirs.as_str(),
        "{b}"
    );
}
