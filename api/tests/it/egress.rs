//! The outbound rule for CRMs (`CRMSYNC_ALLOW_LOCAL_TARGETS` off): a
//! connector's base URL on a local address is refused when it is given and
//! at every call the worker makes, before anything reaches the CRM. (Webhooks
//! are in `webhooks`; with the setting on, every other test here talks to
//! the sandbox on 127.0.0.1.)

use crmsync_entity::enums::Role;
use crmsync_worker::egress::{Egress, HttpOptions};
use serde_json::json;

use crate::helpers::*;
use crate::sync_flow::wait_final;

#[tokio::test]
async fn a_connector_base_url_on_a_local_address_is_refused_when_local_targets_are_off() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn_with_egress(Egress::new(false)).await;

    let body = app
        .gql(
            &app.token(Role::Admin),
            CREATE_CONNECTOR,
            json!({ "input": pipedrive_input(&sandbox) }),
        )
        .await;

    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.baseUrl", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("CRMSYNC_ALLOW_LOCAL_TARGETS"), "{message}");
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, 0);
}

#[tokio::test]
async fn a_sync_to_a_stored_local_base_url_fails_naming_the_variable_when_local_targets_are_off() {
    // The connector was made while the setting was on; it is off for the worker.
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let before = sandbox_requests(&sandbox, "pipedrive").await;
    app.start_worker_with(Egress::new(false).client(HttpOptions::default()).unwrap());

    let started = app
        .admin_ok(
            "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id } } }",
            json!({ "id": id }),
        )
        .await;
    let run = started["startSync"]["run"]["id"].as_str().unwrap();
    let done = wait_final(&app, run).await;

    assert_eq!(done["status"], "FAILED", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("CRMSYNC_ALLOW_LOCAL_TARGETS"), "{done}");
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, before);
}
