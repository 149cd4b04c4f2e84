//! Salesforce connectors against the sandbox Salesforce: a connected app's
//! refresh token or its JWT bearer flow (one way or the other, named field
//! by field when the form is wrong), the environment, live lead fields, the
//! default mappings, and NEEDS_REAUTH once the org revokes the app.

use crmsync_entity::enums::Role;
use crmsync_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::helpers::*;

const TEST: &str = "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }";
const STATUS: &str = "query($id: ID!) { connector(id: $id) { status statusMessage } }";
const FIELDS: &str = "query($id: ID!) { connector(id: $id) { crmFields(module: LEADS) { apiName type readOnly mandatory custom options } } }";
/// A test-only key pair: the certificate is registered with the sandbox org.
const PRIVATE_KEY: &str =
    include_str!("../../../sandbox/tests/fixtures/test-only-jwt-private-key.pem");
const CERTIFICATE: &str =
    include_str!("../../../sandbox/tests/fixtures/test-only-jwt-certificate.pem");

fn input(sandbox: &Sandbox, credentials: Value) -> Value {
    json!({
        "kind": "SALESFORCE",
        "name": "Salesforce",
        "baseUrl": sandbox.description().salesforce.login_url,
        "salesforce": credentials,
    })
}

fn refresh_form(sandbox: &Sandbox) -> Value {
    let sf = &sandbox.description().salesforce;
    json!({
        "clientId": sf.client_id,
        "clientSecret": sf.client_secret,
        "refreshToken": sf.refresh_token,
    })
}

/// An admin call on the sandbox Salesforce's default org that must succeed.
async fn org_admin(sandbox: &Sandbox, path: &str, body: Value) -> Value {
    let org = &sandbox.description().salesforce.org_id;
    sandbox_admin(sandbox, &format!("/salesforce/orgs/{org}{path}"), body).await
}

async fn create(app: &TestApp, input: Value) -> Value {
    app.gql(
        &app.token(Role::Admin),
        CREATE_CONNECTOR,
        json!({ "input": input }),
    )
    .await
}

#[tokio::test]
async fn a_refresh_token_connects_with_lead_fields_and_default_mappings() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let form = refresh_form(&sandbox);
    let body = create(&app, input(&sandbox, form.clone())).await;
    for secret in ["clientSecret", "refreshToken"] {
        let value = form[secret].as_str().unwrap();
        assert!(!body.to_string().contains(value), "{secret} leaked: {body}");
    }
    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(
        connector["credentialsSet"],
        json!(["clientId", "clientSecret", "refreshToken"])
    );
    let mappings = connector["mappings"].as_array().unwrap();
    let mapped = |crm: &str| mappings.iter().find(|m| m["crmField"] == crm);
    for crm in [
        "Email",
        "FirstName",
        "LastName",
        "Company",
        "HasOptedOutOfEmail",
        "OwnerId",
    ] {
        assert!(mapped(crm).is_some(), "{crm} is mapped by default: {body}");
    }
    assert_eq!(
        mapped("Plezi_URL__c").map(|m| &m["direction"]),
        Some(&json!("TO_CRM")),
        "the seeded custom field takes the platform link: {body}"
    );

    let id = connector["id"].as_str().unwrap();
    let fields = app.admin_ok(FIELDS, json!({ "id": id })).await;
    let fields = fields["connector"]["crmFields"].as_array().unwrap();
    let crm_field = |name: &str| {
        fields
            .iter()
            .find(|f| f["apiName"] == name)
            .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
    };
    assert_eq!(crm_field("Email")["type"], "EMAIL");
    assert_eq!(crm_field("OwnerId")["type"], "USER");
    assert_eq!(crm_field("HasOptedOutOfEmail")["type"], "BOOLEAN");
    assert_eq!(crm_field("Plezi_URL__c")["custom"], true);
    assert_eq!(crm_field("SystemModstamp")["readOnly"], true);
    assert_eq!(crm_field("LastName")["mandatory"], true);
    assert_eq!(crm_field("Company")["mandatory"], true);
    let status = crm_field("Status");
    assert_eq!(status["type"], "PICKLIST");
    assert!(
        status["options"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("Open - Not Contacted"))),
        "{status}"
    );

    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], true, "{check}");

    let mut refused = form;
    refused["refreshToken"] = json!("5Aep861-not-a-refresh-token");
    let body = create(&app, input(&sandbox, refused)).await;
    assert_eq!(field(&body), "input.salesforce.refreshToken", "{body}");
}

#[tokio::test]
async fn the_jwt_bearer_flow_connects_with_the_apps_certificate_only() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let sf = &sandbox.description().salesforce;
    let form = json!({
        "clientId": sf.client_id,
        "username": sf.username,
        "privateKeyPem": PRIVATE_KEY,
    });
    // The app has no certificate yet: the key is refused, by name.
    let body = create(&app, input(&sandbox, form.clone())).await;
    assert_eq!(field(&body), "input.salesforce.privateKeyPem", "{body}");

    org_admin(
        &sandbox,
        "/certificates",
        json!({ "certificate": CERTIFICATE }),
    )
    .await;
    let body = create(&app, input(&sandbox, form.clone())).await;
    assert!(
        !body.to_string().contains("PRIVATE KEY"),
        "the key leaked: {body}"
    );
    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(
        connector["credentialsSet"],
        json!(["clientId", "privateKeyPem", "username"])
    );

    let mut garbled = form;
    garbled["privateKeyPem"] =
        json!("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----");
    let body = create(&app, input(&sandbox, garbled)).await;
    assert_eq!(field(&body), "input.salesforce.privateKeyPem", "{body}");
}

#[tokio::test]
async fn a_form_of_neither_way_or_of_both_or_a_bad_environment_names_the_field() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let sf = &sandbox.description().salesforce;
    let cases = [
        (
            json!({ "clientId": sf.client_id }),
            "input.salesforce.clientSecret",
        ),
        (
            json!({ "clientId": sf.client_id, "clientSecret": sf.client_secret }),
            "input.salesforce.refreshToken",
        ),
        (
            json!({ "clientId": sf.client_id, "username": sf.username }),
            "input.salesforce.privateKeyPem",
        ),
        (
            json!({ "clientId": sf.client_id, "clientSecret": sf.client_secret,
                    "refreshToken": sf.refresh_token, "username": sf.username }),
            "input.salesforce.username",
        ),
        (
            json!({ "clientId": " ", "clientSecret": sf.client_secret, "refreshToken": sf.refresh_token }),
            "input.salesforce.clientId",
        ),
    ];
    for (credentials, expected) in cases {
        let body = create(&app, input(&sandbox, credentials.clone())).await;
        assert_eq!(field(&body), expected, "{credentials}: {body}");
    }
    // The environment is an enum: anything else is refused before any call.
    let mut bad = input(&sandbox, refresh_form(&sandbox));
    bad["salesforce"]["environment"] = json!("STAGING");
    let body = create(&app, bad).await;
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("STAGING"), "names the value: {body}");
    let count = app
        .admin_ok("{ connectors(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(count["connectors"]["totalCount"], 0, "nothing was created");

    // SANDBOX with the sandbox's URL as override still connects.
    let mut sandboxed = input(&sandbox, refresh_form(&sandbox));
    sandboxed["salesforce"]["environment"] = json!("SANDBOX");
    let body = create(&app, sandboxed).await;
    assert_eq!(
        body["data"]["createConnector"]["connector"]["status"], "CONNECTED",
        "{body}"
    );
}

#[tokio::test]
async fn a_revoked_app_turns_the_connector_needs_reauth() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let body = create(&app, input(&sandbox, refresh_form(&sandbox))).await;
    let id = body["data"]["createConnector"]["connector"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();

    org_admin(&sandbox, "/revoke", json!({})).await;
    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], false, "{check}");
    let status = app.admin_ok(STATUS, json!({ "id": id })).await;
    assert_eq!(status["connector"]["status"], "NEEDS_REAUTH", "{status}");
    let message = status["connector"]["statusMessage"].as_str().unwrap();
    assert!(message.contains("refresh token"), "{message}");
}
