//! Previewing a mapping change with a dry run (issue 6): `startSync` with
//! proposed mappings, through the worker to the items' field changes, and the
//! refusals that keep it honest.

use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sync_flow::wait_final;

const START: &str = "mutation($input: StartSyncInput!) { startSync(input: $input) { run { id mode proposedMappings { platformField crmField direction enabled locked } } } }";

const CONNECTOR: &str = "query($id: ID!) { connector(id: $id) { fullResyncRecommended mappings { platformField crmField direction enabled } } }";

const CHANGES: &str = "query($id: ID!) { syncRun(id: $id) { proposedMappings { platformField crmField direction } items(direction: TO_CRM) { edges { node { email outcome changes { platformField crmField direction from to conflict } } } } } }";

/// The connector's mappings as setFieldMappings and startSync take them.
async fn mappings(app: &TestApp, connector: &str) -> Vec<Value> {
    let data = app.admin_ok(CONNECTOR, json!({ "id": connector })).await;
    data["connector"]["mappings"].as_array().unwrap().clone()
}

async fn start(app: &TestApp, input: Value) -> Value {
    app.gql(&app.token(Role::Admin), START, json!({ "input": input }))
        .await
}

async fn runs(app: &TestApp, connector: &str) -> u64 {
    let data = app
        .admin_ok(
            "query($id: ID!) { syncRuns(connectorId: $id) { totalCount } }",
            json!({ "id": connector }),
        )
        .await;
    data["syncRuns"]["totalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn a_dry_run_previews_a_new_mapping_and_leaves_the_connector_as_it_was() {
    let sandbox = empty_sandbox().await;
    // A field the default mappings leave alone: a job title in Pipedrive.
    let pd = &sandbox.description().pipedrive;
    let field: Value = reqwest::Client::new()
        .post(format!(
            "{}/pipedrive/companies/{}/fields",
            sandbox.description().admin_url,
            pd.company_domain
        ))
        .json(&json!({ "name": "Job title", "field_type": "varchar" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_title_key = field["key"].as_str().unwrap().to_owned();
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    app.admin_ok(
        "mutation { upsertContact(input: {email: \"ada@acme.com\", firstName: \"Ada\", lastName: \"Lovelace\", jobTitle: \"CTO\", behaviourScore: 80}) { contact { id } } }",
        json!({}),
    )
    .await;
    let first = start(&app, json!({ "connectorId": id })).await;
    assert_eq!(
        first["data"]["startSync"]["run"]["proposedMappings"],
        Value::Null
    );
    let first = first["data"]["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&app, &first).await["status"], "SUCCEEDED");
    // A saved mapping change leaves a full resync recommended; a preview
    // must neither answer that nor change the mappings.
    let current = mappings(&app, &id).await;
    app.admin_ok(
        "mutation($input: SetFieldMappingsInput!) { setFieldMappings(input: $input) { connector { id } } }",
        json!({ "input": { "connectorId": id, "mappings": current } }),
    )
    .await;
    let before = app.admin_ok(CONNECTOR, json!({ "id": id })).await;
    assert_eq!(before["connector"]["fullResyncRecommended"], true);

    let mut proposed = current.clone();
    proposed.push(json!({ "platformField": "job_title", "crmField": job_title_key, "direction": "TO_CRM", "enabled": true }));
    let body = start(
        &app,
        json!({ "connectorId": id, "mode": "DRY_RUN", "mappings": proposed }),
    )
    .await;
    let run = &body["data"]["startSync"]["run"];
    assert_eq!(run["mode"], "DRY_RUN", "{body}");
    let preview = run["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_final(&app, &preview).await["status"], "SUCCEEDED");

    let data = app.admin_ok(CHANGES, json!({ "id": preview })).await;
    let shown = &data["syncRun"]["proposedMappings"];
    assert_eq!(shown.as_array().unwrap().len(), proposed.len());
    assert_eq!(shown[proposed.len() - 1]["platformField"], "job_title");
    // The preview read every contact (as the full resync a mapping change
    // calls for), not only those changed since the last run.
    let edges = data["syncRun"]["items"]["edges"].as_array().unwrap();
    let ada = edges
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["email"] == "ada@acme.com")
        .unwrap_or_else(|| panic!("no item for ada: {data}"));
    assert_eq!(ada["outcome"], "UPDATED");
    assert_eq!(
        ada["changes"],
        json!([{ "platformField": "job_title", "crmField": job_title_key, "direction": "TO_CRM", "from": null, "to": "CTO", "conflict": false }])
    );

    let after = app.admin_ok(CONNECTOR, json!({ "id": id })).await;
    assert_eq!(
        after, before,
        "the connector's mappings and recommendation are as they were"
    );
    let persons = sandbox_persons(&sandbox).await;
    assert!(
        persons.iter().all(|p| p["custom_fields"]
            .get(&job_title_key)
            .is_none_or(Value::is_null)),
        "nothing written to the CRM: {persons:?}"
    );
}

#[tokio::test]
async fn proposed_mappings_are_refused_without_a_dry_run() {
    let app = TestApp::spawn().await;
    let id = insert_connector(&app.state.db, &app.tenant_id, "Sales").await;
    let rows = json!([{ "platformField": "email", "crmField": "email", "direction": "BOTH", "enabled": true }]);
    for mode in [json!("FULL"), json!("INCREMENTAL"), Value::Null] {
        let mut input = json!({ "connectorId": id, "mappings": rows });
        if !mode.is_null() {
            input["mode"] = mode;
        }
        let body = start(&app, input).await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), "input.mappings");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("DRY_RUN"),
            "{body}"
        );
    }
    assert_eq!(runs(&app, &id).await, 0);
}

#[tokio::test]
async fn invalid_proposed_mappings_are_refused_as_set_field_mappings_refuses_them() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mandatory = || {
        vec![
            json!({ "platformField": "email", "crmField": "email", "direction": "BOTH", "enabled": true }),
            json!({ "platformField": "first_name", "crmField": "first_name", "direction": "BOTH", "enabled": true }),
            json!({ "platformField": "last_name", "crmField": "last_name", "direction": "BOTH", "enabled": true }),
        ]
    };
    let cases = [
        (
            json!({ "platformField": "company", "crmField": "no_such_field", "direction": "TO_CRM", "enabled": true }),
            "input.mappings[3].crmField",
        ),
        (
            json!({ "platformField": "behaviour_score", "crmField": "phone", "direction": "FROM_CRM", "enabled": true }),
            "input.mappings[3].direction",
        ),
    ];
    for (row, expected) in cases {
        let mut rows = mandatory();
        rows.push(row);
        let body = start(
            &app,
            json!({ "connectorId": id, "mode": "DRY_RUN", "mappings": rows }),
        )
        .await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), expected, "{body}");
    }
    let mut rows = mandatory();
    rows.remove(0);
    let body = start(
        &app,
        json!({ "connectorId": id, "mode": "DRY_RUN", "mappings": rows }),
    )
    .await;
    assert_eq!(field(&body), "input.mappings", "{body}");
    assert_eq!(runs(&app, &id).await, 0, "no run for a refused preview");
}

#[tokio::test]
async fn a_preview_never_joins_a_run_already_queued() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    // No worker: the first run stays QUEUED.
    let id = app.pipedrive_connector(&sandbox).await;
    let queued = start(&app, json!({ "connectorId": id })).await;
    assert!(queued.get("errors").is_none(), "{queued}");
    let current = mappings(&app, &id).await;
    let body = start(
        &app,
        json!({ "connectorId": id, "mode": "DRY_RUN", "mappings": current }),
    )
    .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(runs(&app, &id).await, 1);
}

#[tokio::test]
async fn a_dry_runs_rejections_are_listed_by_that_run_only_and_cannot_be_retried() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let connector = app.pipedrive_connector(&sandbox).await;
    // Pipedrive needs a name: this contact is rejected (MISSING_NAME).
    app.admin_ok(
        "mutation { upsertContact(input: {email: \"nameless@acme.com\", behaviourScore: 10}) { contact { id } } }",
        json!({}),
    )
    .await;
    let rejected = |run: Option<&str>| {
        let app = &app;
        let connector = connector.clone();
        let run = run.map(str::to_owned);
        async move {
            let data = app
                .admin_ok(
                    "query($c: ID, $r: ID) { rejectedContacts(connectorId: $c, runId: $r) { totalCount } }",
                    json!({ "c": connector, "r": run }),
                )
                .await;
            data["rejectedContacts"]["totalCount"].as_u64().unwrap()
        }
    };
    let dry = start(&app, json!({ "connectorId": connector, "mode": "DRY_RUN" })).await;
    let dry = dry["data"]["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&app, &dry).await["status"], "PARTIAL");
    assert_eq!(rejected(Some(&dry)).await, 1, "listed by its run");
    assert_eq!(rejected(None).await, 0, "not a contact left behind");
    let retry = app
        .gql(
            &app.token(Role::Admin),
            "mutation($id: ID!) { retryRejected(input: {runId: $id}) { run { id } } }",
            json!({ "id": dry }),
        )
        .await;
    assert_eq!(code(&retry), "CONFLICT", "{retry}");

    let real = start(&app, json!({ "connectorId": connector })).await;
    let real = real["data"]["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&app, &real).await["status"], "PARTIAL");
    assert_eq!(rejected(None).await, 1, "the real run's rejection");
}
