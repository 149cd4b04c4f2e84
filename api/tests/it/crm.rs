//! Connectors against the sandbox Pipedrive: creation with sealed credentials
//! and default mappings, live CRM fields, connection tests, and every mapping
//! rule (needs the worker's Pipedrive client).

use crmsync_entity::enums::Role;
use crmsync_entity::models::connector;
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::Set;
use serde_json::{Value, json};

use crate::helpers::*;

const SET: &str = "mutation($input: SetFieldMappingsInput!) { setFieldMappings(input: $input) { connector { fullResyncRecommended mappings { platformField crmField direction enabled locked } } } }";

fn mandatory() -> Vec<Value> {
    vec![
        json!({ "platformField": "email", "crmField": "email", "direction": "BOTH", "enabled": true }),
        json!({ "platformField": "first_name", "crmField": "first_name", "direction": "BOTH", "enabled": true }),
        json!({ "platformField": "last_name", "crmField": "last_name", "direction": "BOTH", "enabled": true }),
    ]
}

async fn refused(app: &TestApp, connector: &str, rows: Vec<Value>, expected_field: &str) {
    let body = app
        .gql(
            &app.token(Role::Admin),
            SET,
            json!({ "input": { "connectorId": connector, "mappings": rows } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), expected_field, "{body}");
}

#[tokio::test]
async fn a_pipedrive_connector_is_created_with_default_locked_mappings_and_no_secrets() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let data = app
        .admin_ok(
            CREATE_CONNECTOR,
            json!({ "input": pipedrive_input(&sandbox) }),
        )
        .await;
    let c = &data["createConnector"]["connector"];
    assert_eq!(c["status"], "CONNECTED");
    assert_eq!(c["credentialsSet"], json!(["apiToken", "companyDomain"]));
    assert_eq!(c["settings"]["importModules"], json!(["PERSONS"]));
    let locked: Vec<_> = c["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["locked"] == true)
        .map(|m| m["platformField"].as_str().unwrap())
        .collect();
    assert_eq!(locked, ["email", "first_name", "last_name"]);
    let token = &sandbox.description().pipedrive.api_token;
    assert!(
        !data.to_string().contains(token.as_str()),
        "the token leaked"
    );
    let audit = app
        .admin_ok(
            "{ auditLog { edges { node { action detail } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        audit["auditLog"]["edges"][0]["node"]["action"],
        "connector.create"
    );
    assert!(!audit.to_string().contains(token.as_str()));
}

#[tokio::test]
async fn a_replayed_idempotency_key_returns_the_first_connector() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let mut input = pipedrive_input(&sandbox);
    input["idempotencyKey"] = json!("create-1");
    let a = app
        .admin_ok(CREATE_CONNECTOR, json!({ "input": input.clone() }))
        .await;
    let b = app
        .admin_ok(CREATE_CONNECTOR, json!({ "input": input }))
        .await;
    assert_eq!(
        a["createConnector"]["connector"]["id"],
        b["createConnector"]["connector"]["id"]
    );
    let n = app
        .admin_ok("{ connectors { totalCount } }", json!({}))
        .await;
    assert_eq!(n["connectors"]["totalCount"], 1);
}

#[tokio::test]
async fn a_refused_api_token_names_the_field() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let mut input = pipedrive_input(&sandbox);
    input["pipedrive"]["apiToken"] = json!("wrong-token");
    let body = app
        .gql(
            &app.token(Role::Admin),
            CREATE_CONNECTOR,
            json!({ "input": input }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.pipedrive.apiToken");
}

#[tokio::test]
async fn crm_fields_and_connection_tests_come_live_from_the_crm() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let data = app
        .admin_ok("query($id: ID!) { connector(id: $id) { crmFields(module: PERSONS) { apiName label type options } } }", json!({ "id": id }))
        .await;
    let fields = data["connector"]["crmFields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["apiName"] == "email"));
    let test = app
        .admin_ok(
            "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(test["testConnector"]["ok"], true, "{test}");
}

#[tokio::test]
async fn a_refused_api_token_fails_the_connection_test_and_needs_reauth() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    // The token was revoked in Pipedrive since the connector was made.
    let tenant = TenantId::new(app.tenant_id.clone());
    let row = connector::Entity::find_for_tenant(&tenant, &id)
        .one(&app.database.db)
        .await
        .unwrap()
        .unwrap();
    let revoked = crmsync_worker::crm::pipedrive::kit::credentials(
        "0".repeat(40).into(),
        &sandbox.description().pipedrive.company_domain,
    );
    let mut row = connector::ActiveModel::from(row);
    row.credentials = Set(Some(app.state.credentials_key.seal(
        &app.tenant_id,
        &id,
        &revoked,
    )));
    row.update(&app.database.db).await.unwrap();

    let test = app
        .admin_ok(
            "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }",
            json!({ "id": id }),
        )
        .await;

    assert_eq!(test["testConnector"]["ok"], false, "{test}");
    let text = test["testConnector"]["message"].as_str().unwrap();
    assert!(text.contains("API token"), "{text}");
    assert!(
        text.contains("Settings > Personal preferences > API"),
        "{text}"
    );
    let status = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { status statusMessage } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(status["connector"]["status"], "NEEDS_REAUTH", "{status}");
    assert_eq!(status["connector"]["statusMessage"], json!(text));
}

#[tokio::test]
async fn valid_mappings_replace_the_list_and_recommend_a_full_resync() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.push(json!({ "platformField": "phone", "crmField": "phone", "direction": "TO_CRM", "enabled": false }));
    let data = app
        .admin_ok(
            SET,
            json!({ "input": { "connectorId": id, "mappings": rows } }),
        )
        .await;
    let c = &data["setFieldMappings"]["connector"];
    assert_eq!(c["fullResyncRecommended"], true);
    assert_eq!(c["mappings"].as_array().unwrap().len(), 4);
    assert_eq!(c["mappings"][3]["enabled"], false);
}

#[tokio::test]
async fn an_unknown_platform_field_is_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.push(json!({ "platformField": "shoe_size", "crmField": "phone", "direction": "TO_CRM", "enabled": true }));
    refused(&app, &id, rows, "input.mappings[3].platformField").await;
}

#[tokio::test]
async fn a_crm_field_absent_from_crm_fields_is_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.push(json!({ "platformField": "company", "crmField": "no_such_field", "direction": "TO_CRM", "enabled": true }));
    refused(&app, &id, rows, "input.mappings[3].crmField").await;
}

#[tokio::test]
async fn from_crm_on_a_computed_field_is_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.push(json!({ "platformField": "behaviour_score", "crmField": "phone", "direction": "FROM_CRM", "enabled": true }));
    refused(&app, &id, rows, "input.mappings[3].direction").await;
}

#[tokio::test]
async fn removing_a_locked_mapping_is_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.remove(1);
    refused(&app, &id, rows, "input.mappings").await;
}

#[tokio::test]
async fn disabling_a_locked_mapping_is_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows[2]["enabled"] = json!(false);
    refused(&app, &id, rows, "input.mappings[2].enabled").await;
}

#[tokio::test]
async fn incompatible_types_are_refused() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;
    let mut rows = mandatory();
    rows.push(json!({ "platformField": "opted_out", "crmField": "phone", "direction": "TO_CRM", "enabled": true }));
    refused(&app, &id, rows, "input.mappings[3].crmField").await;
}
