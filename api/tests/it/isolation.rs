//! Tenant isolation (T1): another tenant's ids are NOT_FOUND, for every query
//! and mutation that takes an id.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn another_tenants_ids_are_not_found_everywhere() {
    let app = TestApp::spawn().await;
    let db = &app.database.db;
    let connector = insert_connector(db, &app.tenant_id, "Sales").await;
    let run = insert_run(db, &app.tenant_id, &connector).await;
    let contact = app
        .admin_ok(
            "mutation { upsertContact(input: {email: \"x@acme.com\"}) { contact { id } } }",
            json!({}),
        )
        .await["upsertContact"]["contact"]["id"]
        .clone();
    let key = app
        .admin_ok(
            "mutation { createApiKey(input: {name: \"k\", role: VIEWER}) { apiKey { id } } }",
            json!({}),
        )
        .await["createApiKey"]["apiKey"]["id"]
        .clone();

    // The owner sees them all.
    let own = app
        .admin_ok(
            "query($c: ID!, $r: ID!, $p: ID!) { connector(id: $c) { id } syncRun(id: $r) { id } contact(id: $p) { id } rejectedContacts(runId: $r) { totalCount } }",
            json!({ "c": connector, "r": run, "p": contact }),
        )
        .await;
    assert_eq!(own["rejectedContacts"]["totalCount"], 1);

    let other = app.other_tenant_admin().await;
    let cases: Vec<(&str, Value)> = vec![
        (
            "query($id: ID!) { connector(id: $id) { id } }",
            json!({ "id": connector }),
        ),
        (
            "query($id: ID!) { syncRun(id: $id) { id } }",
            json!({ "id": run }),
        ),
        (
            "query($id: ID!) { contact(id: $id) { id } }",
            json!({ "id": contact }),
        ),
        (
            "query($id: ID!) { syncRuns(connectorId: $id) { totalCount } }",
            json!({ "id": connector }),
        ),
        (
            "query($id: ID!) { rejectedContacts(connectorId: $id) { totalCount } }",
            json!({ "id": connector }),
        ),
        (
            "query($id: ID!) { rejectedContacts(runId: $id) { totalCount } }",
            json!({ "id": run }),
        ),
        (
            "mutation($id: ID!) { updateConnector(input: {id: $id, name: \"x\"}) { connector { id } } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { deleteConnector(input: {id: $id}) { deletedId } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { testConnector(input: {id: $id}) { ok } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { setFieldMappings(input: {connectorId: $id, mappings: []}) { connector { id } } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { setSyncRules(input: {connectorId: $id, rules: []}) { connector { id } } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id } } }",
            json!({ "id": connector }),
        ),
        (
            "mutation($id: ID!) { cancelSync(input: {runId: $id}) { run { id } } }",
            json!({ "id": run }),
        ),
        (
            "mutation($id: ID!) { retryRejected(input: {runId: $id}) { run { id } } }",
            json!({ "id": run }),
        ),
        (
            "mutation($id: ID!) { archiveContact(input: {id: $id}) { contact { id } } }",
            json!({ "id": contact }),
        ),
        (
            "mutation($id: ID!) { unarchiveContact(input: {id: $id}) { contact { id } } }",
            json!({ "id": contact }),
        ),
        (
            "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } } }",
            json!({ "id": key }),
        ),
    ];
    for (query, vars) in cases {
        let body = app.gql(&other, query, vars).await;
        assert_eq!(code(&body), "NOT_FOUND", "{query}: {body}");
    }
    // Lists of the other tenant are empty.
    let body = app
        .gql(&other, "{ connectors { totalCount } syncRuns { totalCount } contacts { totalCount } rejectedContacts { totalCount } }", json!({}))
        .await;
    for list in ["connectors", "syncRuns", "contacts", "rejectedContacts"] {
        assert_eq!(body["data"][list]["totalCount"], 0, "{list}: {body}");
    }
    // And the owner's data is untouched.
    app.admin_ok(
        "query($c: ID!) { connector(id: $c) { name } }",
        json!({ "c": connector }),
    )
    .await;
}
