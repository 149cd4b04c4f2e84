//! HubSpot connectors against the sandbox HubSpot: a private app's token or an
//! OAuth app's refresh token (one way or the other, named field by field when
//! the form is wrong), live contact properties, `testConnector`'s words for a
//! missing scope, and NEEDS_REAUTH once the portal revokes the app.

use crmsync_entity::enums::Role;
use crmsync_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::helpers::*;

const TEST: &str = "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }";
const STATUS: &str = "query($id: ID!) { connector(id: $id) { status statusMessage } }";
const FIELDS: &str = "query($id: ID!) { connector(id: $id) { crmFields(module: CONTACTS) { apiName type readOnly custom options } } }";

fn input(sandbox: &Sandbox, credentials: Value) -> Value {
    json!({
        "kind": "HUBSPOT",
        "name": "HubSpot",
        "baseUrl": sandbox.description().hubspot.base_url,
        "hubspot": credentials,
    })
}

/// An admin call on the sandbox HubSpot's default portal that must succeed.
async fn portal_admin(sandbox: &Sandbox, path: &str, body: Value) -> Value {
    let portal = sandbox.description().hubspot.portal_id;
    sandbox_admin(sandbox, &format!("/hubspot/portals/{portal}{path}"), body).await
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
async fn a_private_app_token_connects_and_is_never_shown() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let token = sandbox.description().hubspot.access_token.clone();
    let body = create(&app, input(&sandbox, json!({ "accessToken": token }))).await;
    assert!(
        !body.to_string().contains(&token),
        "the token leaked: {body}"
    );
    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(connector["credentialsSet"], json!(["accessToken"]));
    let mappings = connector["mappings"].as_array().unwrap();
    let mapped = |crm: &str| mappings.iter().find(|m| m["crmField"] == crm);
    for crm in ["email", "firstname", "lastname", "lifecyclestage"] {
        assert!(mapped(crm).is_some(), "{crm} is mapped by default: {body}");
    }
    assert_eq!(
        mapped("plezi_url").map(|m| &m["direction"]),
        Some(&json!("TO_CRM")),
        "the seeded custom property takes the platform link: {body}"
    );

    let id = connector["id"].as_str().unwrap();
    let fields = app.admin_ok(FIELDS, json!({ "id": id })).await;
    let fields = fields["connector"]["crmFields"].as_array().unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["apiName"] == name)
            .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
    };
    assert_eq!(field("email")["type"], "EMAIL");
    assert_eq!(field("hubspot_owner_id")["type"], "USER");
    assert_eq!(field("hs_email_optout")["type"], "BOOLEAN");
    assert_eq!(field("plezi_url")["custom"], true);
    assert_eq!(field("lastmodifieddate")["readOnly"], true);
    // The lifecycle stage reads as the platform's lifecycle (S10).
    let stages = field("lifecyclestage");
    assert_eq!(stages["type"], "PICKLIST");
    assert_eq!(stages["options"], json!(["PROSPECT", "CLIENT"]), "{stages}");

    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], true, "{check}");
}

#[tokio::test]
async fn an_oauth_app_connects_through_its_refresh_token() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let hs = &sandbox.description().hubspot;
    let oauth = json!({
        "clientId": hs.client_id,
        "clientSecret": hs.client_secret,
        "refreshToken": hs.refresh_token,
    });
    let body = create(&app, input(&sandbox, oauth.clone())).await;
    assert!(
        !body.to_string().contains(&hs.refresh_token),
        "the refresh token leaked: {body}"
    );
    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(
        connector["credentialsSet"],
        json!(["clientId", "clientSecret", "refreshToken"])
    );

    let mut refused = oauth;
    refused["refreshToken"] = json!("not-a-refresh-token");
    let body = create(&app, input(&sandbox, refused)).await;
    assert_eq!(field(&body), "input.hubspot.refreshToken", "{body}");
}

#[tokio::test]
async fn a_form_of_neither_way_or_of_both_names_the_field() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let hs = &sandbox.description().hubspot;
    let cases = [
        (json!({}), "input.hubspot.accessToken"),
        (
            json!({ "clientId": hs.client_id }),
            "input.hubspot.clientSecret",
        ),
        (
            json!({ "clientId": hs.client_id, "clientSecret": hs.client_secret }),
            "input.hubspot.refreshToken",
        ),
        (
            json!({ "accessToken": hs.access_token, "refreshToken": hs.refresh_token }),
            "input.hubspot.refreshToken",
        ),
    ];
    for (credentials, expected) in cases {
        let body = create(&app, input(&sandbox, credentials.clone())).await;
        assert_eq!(field(&body), expected, "{credentials}: {body}");
    }
    let count = app
        .admin_ok("{ connectors(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(count["connectors"]["totalCount"], 0, "nothing was created");
}

#[tokio::test]
async fn test_connector_words_a_missing_scope_and_a_revoked_app_needs_reauth() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    // A private app that may read contacts and their properties, not write them.
    let minted = portal_admin(
        &sandbox,
        "/tokens",
        json!({ "kind": "private", "scopes": ["crm.objects.contacts.read", "crm.schemas.contacts.read", "crm.objects.owners.read"] }),
    )
    .await;
    let read_only = minted["token"].as_str().unwrap();
    let body = create(&app, input(&sandbox, json!({ "accessToken": read_only }))).await;
    let id = body["data"]["createConnector"]["connector"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], false, "{check}");
    let message = check["testConnector"]["message"].as_str().unwrap();
    assert!(
        message.contains("crm.objects.contacts.write"),
        "names the scope: {message}"
    );

    let full = sandbox.description().hubspot.access_token.clone();
    let body = create(&app, input(&sandbox, json!({ "accessToken": full }))).await;
    let id = body["data"]["createConnector"]["connector"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    portal_admin(&sandbox, "/revoke", json!({})).await;
    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], false, "{check}");
    let status = app.admin_ok(STATUS, json!({ "id": id })).await;
    assert_eq!(status["connector"]["status"], "NEEDS_REAUTH", "{status}");
    let words = status["connector"]["statusMessage"].as_str().unwrap();
    assert!(
        words.contains("Private Apps"),
        "says where to fix it: {words}"
    );
}
