//! CRM deletions (S12) through GraphQL, against the sandbox Pipedrive: the
//! settings `syncDeletions` and `recreateDeleted` (off by default), a person
//! deleted in Pipedrive found by the next run (a DELETED item, the leg's
//! `deleted` count, the contact archived with `syncDeletions`), and the
//! contact not recreated.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::sync_flow::wait_final;

const SETTINGS: &str =
    "query($id: ID!) { connector(id: $id) { settings { syncDeletions recreateDeleted } } }";
const UPDATE: &str = "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { settings { syncDeletions recreateDeleted } } } }";
const START: &str = "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id } } }";
const RUN: &str = "query($id: ID!) { syncRun(id: $id) { status legs { direction deleted } items(first: 20, outcome: DELETED) { edges { node { direction outcome crmRecordId reasonCode contact { email archived } } } } } }";

async fn sync(app: &TestApp, connector: &str) -> Value {
    let data = app.admin_ok(START, json!({ "id": connector })).await;
    let run = data["startSync"]["run"]["id"].as_str().unwrap().to_owned();
    let done = wait_final(app, &run).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    app.admin_ok(RUN, json!({ "id": run })).await["syncRun"].clone()
}

fn person_id(persons: &[Value], email: &str) -> Option<u64> {
    persons
        .iter()
        .filter(|p| p["is_deleted"] != json!(true))
        .find(|p| {
            p["emails"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["value"] == email)
        })
        .and_then(|p| p["id"].as_u64())
}

#[tokio::test]
async fn deletion_settings_are_off_by_default_and_can_be_set() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let data = app.admin_ok(SETTINGS, json!({ "id": id })).await;
    assert_eq!(
        data["connector"]["settings"],
        json!({ "syncDeletions": false, "recreateDeleted": false })
    );
    let input = json!({ "id": id, "settings": { "syncDeletions": true, "recreateDeleted": true } });
    let data = app.admin_ok(UPDATE, json!({ "input": input })).await;
    assert_eq!(
        data["updateConnector"]["connector"]["settings"],
        json!({ "syncDeletions": true, "recreateDeleted": true })
    );
    let input = json!({ "id": id, "settings": { "recreateDeleted": false } });
    let data = app.admin_ok(UPDATE, json!({ "input": input })).await;
    assert_eq!(
        data["updateConnector"]["connector"]["settings"],
        json!({ "syncDeletions": true, "recreateDeleted": false }),
        "a setting left out keeps its value"
    );
}

#[tokio::test]
async fn a_person_deleted_in_pipedrive_archives_its_contact_with_sync_deletions() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    let input = json!({ "id": id, "settings": { "syncDeletions": true } });
    app.admin_ok(UPDATE, json!({ "input": input })).await;
    for email in ["gone@acme.com", "kept@acme.com"] {
        app.admin_ok(
            "mutation($e: String!) { upsertContact(input: {email: $e, firstName: \"A\", lastName: \"B\", behaviourScore: 50}) { contact { id } } }",
            json!({ "e": email }),
        )
        .await;
    }
    sync(&app, &id).await;
    let person = person_id(&sandbox_persons(&sandbox).await, "gone@acme.com").expect("exported");
    // Deleted in Pipedrive, through its API, as a person's app would.
    let pd = &sandbox.description().pipedrive;
    let deleted = reqwest::Client::new()
        .delete(format!("{}/api/v2/persons/{person}", pd.base_url))
        .header("x-api-token", &pd.api_token)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());

    let run = sync(&app, &id).await;

    assert_eq!(
        run["legs"],
        json!([{ "direction": "TO_CRM", "deleted": 0 }, { "direction": "FROM_CRM", "deleted": 1 }])
    );
    let items = run["items"]["edges"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{run}");
    let item = &items[0]["node"];
    assert_eq!(item["direction"], "FROM_CRM");
    assert_eq!(item["outcome"], "DELETED");
    assert_eq!(item["crmRecordId"], person.to_string());
    assert_eq!(item["reasonCode"], "DELETED_IN_CRM");
    assert_eq!(
        item["contact"],
        json!({ "email": "gone@acme.com", "archived": true })
    );
    let kept = app
        .admin_ok(
            "query { contact(email: \"kept@acme.com\") { archived } }",
            json!({}),
        )
        .await;
    assert_eq!(kept["contact"]["archived"], false);
    // Not recreated: Pipedrive holds the other person only.
    let persons = sandbox_persons(&sandbox).await;
    assert!(person_id(&persons, "gone@acme.com").is_none());
    assert!(person_id(&persons, "kept@acme.com").is_some());
}
