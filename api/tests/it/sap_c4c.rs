//! SAP C4C connectors against the sandbox C4C: a technical user's name and
//! password with the tenant's address as baseUrl, live lead properties and
//! code lists, the default mappings, and a refused password named.

use crmsync_entity::enums::Role;
use crmsync_sandbox::Sandbox;
use serde_json::{Value, json};

use crate::helpers::*;

const TEST: &str = "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }";
const FIELDS: &str = "query($id: ID!) { connector(id: $id) { crmFields(module: LEADS) { apiName type readOnly mandatory custom options } } }";

fn input(sandbox: &Sandbox, password: &str, base_url: Option<&str>) -> Value {
    let c4c = &sandbox.description().sap_c4c;
    json!({
        "kind": "SAP_C4C",
        "name": "C4C",
        "baseUrl": base_url,
        "sapC4c": { "username": c4c.username, "password": password },
    })
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
async fn a_technical_user_connects_with_lead_fields_and_default_mappings() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let c4c = sandbox.description().sap_c4c.clone();

    let body = create(&app, input(&sandbox, &c4c.password, Some(&c4c.base_url))).await;

    assert!(!body.to_string().contains(&c4c.password), "leaked: {body}");
    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(connector["credentialsSet"], json!(["password", "username"]));
    let mappings = connector["mappings"].as_array().unwrap();
    let mapped = |crm: &str| mappings.iter().find(|m| m["crmField"] == crm);
    for crm in [
        "ContactEMail",
        "ContactFirstName",
        "ContactLastName",
        "Company",
        "EmailOptOut_KUT",
    ] {
        assert!(mapped(crm).is_some(), "{crm} is mapped by default: {body}");
    }
    assert_eq!(
        mapped("PleziURL_KUT").map(|m| &m["direction"]),
        Some(&json!("TO_CRM")),
        "{body}"
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
    assert_eq!(crm_field("ContactEMail")["type"], "EMAIL");
    assert_eq!(crm_field("EntityLastChangedOn")["readOnly"], true);
    assert_eq!(crm_field("Name")["mandatory"], true);
    assert_eq!(crm_field("PleziURL_KUT")["custom"], true);
    let level = crm_field("QualificationLevelCode");
    assert_eq!(level["type"], "PICKLIST");
    assert!(
        level["options"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("Hot"))),
        "{level}"
    );
    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], true, "{check}");
}

#[tokio::test]
async fn a_wrong_password_or_a_missing_address_is_refused_by_name() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let base = sandbox.description().sap_c4c.base_url.clone();

    let body = create(&app, input(&sandbox, "not-the-password", Some(&base))).await;
    assert_eq!(field(&body), "input.sapC4c.password", "{body}");

    let password = sandbox.description().sap_c4c.password.clone();
    let body = create(&app, input(&sandbox, &password, None)).await;
    assert!(field(&body).ends_with("baseUrl"), "{body}");
}

#[tokio::test]
async fn individual_customers_are_a_module_read_into_the_platform() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn_with_egress(local_targets()).await;
    let c4c = sandbox.description().sap_c4c.clone();
    let mut input = input(&sandbox, &c4c.password, Some(&c4c.base_url));
    input["settings"] = json!({ "importModules": ["LEADS", "CUSTOMERS"] });

    let body = create(&app, input).await;

    let connector = &body["data"]["createConnector"]["connector"];
    assert_eq!(connector["status"], "CONNECTED", "{body}");
    assert_eq!(
        connector["settings"]["importModules"],
        json!(["LEADS", "CUSTOMERS"]),
        "{body}"
    );
    let id = connector["id"].as_str().unwrap();
    let kinds = app
        .admin_ok("{ crmKinds { kind modules { module toCrm } } }", json!({}))
        .await;
    let c4c_kind = kinds["crmKinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "SAP_C4C")
        .cloned()
        .unwrap();
    assert!(
        c4c_kind["modules"]
            .as_array()
            .unwrap()
            .contains(&json!({ "module": "CUSTOMERS", "toCrm": false })),
        "{c4c_kind}"
    );
    let fields = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { crmFields(module: CUSTOMERS) { apiName type } } }",
            json!({ "id": id }),
        )
        .await;
    let fields = fields["connector"]["crmFields"].as_array().unwrap();
    let type_of = |name: &str| {
        fields
            .iter()
            .find(|f| f["apiName"] == name)
            .map(|f| f["type"].clone())
    };
    // Customers read under the lead's names, so one mapping serves both.
    assert_eq!(type_of("ContactEMail"), Some(json!("EMAIL")), "{fields:?}");
    assert_eq!(type_of("OwnerPartyID"), Some(json!("USER")), "{fields:?}");
    let check = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(check["testConnector"]["ok"], true, "{check}");
    assert!(
        check["testConnector"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("individual customers")),
        "{check}"
    );
}
