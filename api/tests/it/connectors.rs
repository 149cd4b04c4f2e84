//! Connectors: settings and credentials validation, before any CRM call
//! (Zoho connectors against the sandbox are in `zoho.rs`).

use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;

fn input(settings: Value) -> Value {
    json!({
        "kind": "PIPEDRIVE",
        "name": "Sales",
        "pipedrive": { "apiToken": "t", "companyDomain": "acme" },
        "baseUrl": "http://127.0.0.1:9",
        "settings": settings,
    })
}

async fn invalid(app: &TestApp, input: Value, expected_field: &str) {
    let body = app
        .gql(
            &app.token(Role::Admin),
            CREATE_CONNECTOR,
            json!({ "input": input }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), expected_field, "{body}");
}

#[tokio::test]
async fn a_negative_minimum_score_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "minScoreToExport": -5 })),
        "input.settings.minScoreToExport",
    )
    .await;
}

#[tokio::test]
async fn concurrency_and_edition_settings_are_checked_for_the_crm() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "maxConcurrentCalls": 0 })),
        "input.settings.maxConcurrentCalls",
    )
    .await;
    invalid(
        &app,
        input(json!({ "maxConcurrentCalls": -3 })),
        "input.settings.maxConcurrentCalls",
    )
    .await;
    // Editions and workflow rules are Zoho's; this connector is Pipedrive.
    invalid(
        &app,
        input(json!({ "crmEdition": "ENTERPRISE" })),
        "input.settings.crmEdition",
    )
    .await;
    invalid(
        &app,
        input(json!({ "runWorkflows": true })),
        "input.settings.runWorkflows",
    )
    .await;
}

#[tokio::test]
async fn a_bad_schedule_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "schedule": "every 10s" })),
        "input.settings.schedule",
    )
    .await;
    invalid(
        &app,
        input(json!({ "schedule": "sometimes" })),
        "input.settings.schedule",
    )
    .await;
    // Cron with seconds: every second is below the one-minute floor.
    invalid(
        &app,
        input(json!({ "schedule": "* * * * * *" })),
        "input.settings.schedule",
    )
    .await;
}

#[tokio::test]
async fn a_new_schedule_is_planned_afresh_and_other_changes_keep_the_plan() {
    use crmsync_entity::models::connector;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = TestApp::spawn().await;
    let id = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let planned = chrono::Utc::now() + chrono::Duration::hours(2);
    connector::Entity::update_many()
        .col_expr(connector::Column::NextSyncAt, Expr::value(planned))
        .filter(connector::Column::Id.eq(&id))
        .exec(&app.database.db)
        .await
        .unwrap();
    let update = "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { nextSyncAt settings { schedule } } } }";
    let data = app
        .admin_ok(
            update,
            json!({ "input": { "id": id, "settings": { "minScoreToExport": 5 } } }),
        )
        .await;
    let kept = data["updateConnector"]["connector"]["nextSyncAt"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    assert_eq!(kept.timestamp(), planned.timestamp());
    let data = app
        .admin_ok(
            update,
            json!({ "input": { "id": id, "settings": { "schedule": " 0 */6 * * * " } } }),
        )
        .await;
    let c = &data["updateConnector"]["connector"];
    assert_eq!(c["settings"]["schedule"], "0 */6 * * *", "trimmed");
    assert_eq!(
        c["nextSyncAt"],
        Value::Null,
        "planned again by the scheduler"
    );
}

#[tokio::test]
async fn a_bad_notification_email_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "notifyEmails": ["ok@acme.com", "nope"] })),
        "input.settings.notifyEmails[1]",
    )
    .await;
}

#[tokio::test]
async fn a_module_the_crm_lacks_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "importModules": ["LEADS"] })),
        "input.settings.importModules[0]",
    )
    .await;
}

#[tokio::test]
async fn a_filter_field_without_value_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "filterField": "sync_to_plezi" })),
        "input.settings.filterValue",
    )
    .await;
}

#[tokio::test]
async fn a_bad_default_owner_is_refused() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        input(json!({ "defaultOwnerEmail": "boss" })),
        "input.settings.defaultOwnerEmail",
    )
    .await;
}

#[tokio::test]
async fn bad_credentials_and_urls_are_refused_before_any_call() {
    let app = TestApp::spawn().await;
    let mut i = input(json!({}));
    i["pipedrive"]["apiToken"] = json!(" ");
    invalid(&app, i, "input.pipedrive.apiToken").await;
    let mut i = input(json!({}));
    i["pipedrive"]["companyDomain"] = json!("acme.pipedrive.com/x");
    invalid(&app, i, "input.pipedrive.companyDomain").await;
    let mut i = input(json!({}));
    i["baseUrl"] = json!("not a url");
    invalid(&app, i, "input.baseUrl").await;
    let mut i = input(json!({}));
    i["name"] = json!("   ");
    invalid(&app, i, "input.name").await;
    let mut i = input(json!({}));
    i.as_object_mut().unwrap().remove("pipedrive");
    invalid(&app, i, "input.pipedrive").await;
}

#[tokio::test]
async fn settings_updates_are_validated_and_kept() {
    let app = TestApp::spawn().await;
    let id = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let update = "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { enabled status settings { minScoreToExport schedule filterField filterValue } } } }";
    let body = app
        .gql(
            &app.token(Role::Admin),
            update,
            json!({ "input": { "id": id, "settings": { "minScoreToExport": -1 } } }),
        )
        .await;
    assert_eq!(field(&body), "input.settings.minScoreToExport", "{body}");
    let data = app
        .admin_ok(update, json!({ "input": { "id": id, "enabled": false, "settings": { "minScoreToExport": 30, "filterField": "sync_to_plezi", "filterValue": "yes" } } }))
        .await;
    let c = &data["updateConnector"]["connector"];
    assert_eq!(c["enabled"], false);
    assert_eq!(c["status"], "DISABLED");
    assert_eq!(c["settings"]["minScoreToExport"], 30);
    assert_eq!(c["settings"]["schedule"], "every 2h", "left out: kept");
    let data = app
        .admin_ok(update, json!({ "input": { "id": id, "settings": { "filterField": null, "filterValue": null } } }))
        .await;
    assert_eq!(
        data["updateConnector"]["connector"]["settings"]["filterField"],
        Value::Null
    );
    let body = app
        .gql(&app.token(Role::Admin), update, json!({ "input": { "id": id, "zoho": { "clientId": "i", "clientSecret": "s", "dataCenter": "eu", "grantCode": "g" } } }))
        .await;
    assert_eq!(field(&body), "input.zoho", "{body}");
}

#[tokio::test]
async fn a_default_company_is_trimmed_kept_and_cleared_and_never_blank() {
    let app = TestApp::spawn().await;
    let id = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let update = "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { settings { defaultCompany } } } }";
    let company =
        |data: &Value| data["updateConnector"]["connector"]["settings"]["defaultCompany"].clone();
    let data = app
        .admin_ok(
            update,
            json!({ "input": { "id": id, "settings": { "defaultCompany": "  Acme Corp  " } } }),
        )
        .await;
    assert_eq!(company(&data), "Acme Corp");
    for bad in ["   ", &"x".repeat(256)] {
        let body = app
            .gql(
                &app.token(Role::Admin),
                update,
                json!({ "input": { "id": id, "settings": { "defaultCompany": bad } } }),
            )
            .await;
        assert_eq!(field(&body), "input.settings.defaultCompany", "{body}");
    }
    let data = app
        .admin_ok(
            update,
            json!({ "input": { "id": id, "settings": { "minScoreToExport": 3 } } }),
        )
        .await;
    assert_eq!(company(&data), "Acme Corp", "left out: kept");
    let data = app
        .admin_ok(
            update,
            json!({ "input": { "id": id, "settings": { "defaultCompany": null } } }),
        )
        .await;
    assert_eq!(company(&data), Value::Null);
}

#[tokio::test]
async fn crm_kinds_describe_each_kind_and_match_the_credential_inputs() {
    let app = TestApp::spawn().await;
    let data = app
        .admin_ok(
            "{ crmKinds { kind displayName joinedName convertsLeads runsWorkflows credentialsInput
                 modules { module toCrm importedByDefault } editions { name maxConcurrentCalls }
                 credentialFields { name secret required alternative } }
               create: __type(name: \"CreateConnectorInput\") { inputFields { name type { name } } }
               update: __type(name: \"UpdateConnectorInput\") { inputFields { name type { name } } } }",
            json!({}),
        )
        .await;
    let kinds = data["crmKinds"].as_array().expect("a list");
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "HUBSPOT",
            "PIPEDRIVE",
            "SALESFORCE",
            "SAP_C4C",
            "ZENDESK_SELL",
            "ZOHO_CRM"
        ],
        "the six CRMs"
    );
    for kind in kinds {
        let modules = kind["modules"].as_array().unwrap();
        assert_eq!(
            modules.iter().filter(|m| m["toCrm"] == true).count(),
            1,
            "one module flows to the CRM: {kind}"
        );
        // The kit's credential input is a field of both connector inputs, and
        // its fields are the kit's credential fields.
        for input in ["create", "update"] {
            let field = data[input]["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == kind["credentialsInput"])
                .unwrap_or_else(|| panic!("{input} has no {}", kind["credentialsInput"]));
            let type_name = field["type"]["name"].as_str().unwrap();
            let fields = app
                .admin_ok(
                    "query($t: String!) { __type(name: $t) { inputFields { name } } }",
                    json!({ "t": type_name }),
                )
                .await;
            let mut input_fields: Vec<&str> = fields["__type"]["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap())
                .collect();
            let mut kit_fields: Vec<&str> = kind["credentialFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap())
                .collect();
            input_fields.sort_unstable();
            kit_fields.sort_unstable();
            assert_eq!(input_fields, kit_fields, "{type_name}");
        }
    }
    let zoho = kinds.iter().find(|k| k["kind"] == "ZOHO_CRM").unwrap();
    assert_eq!(zoho["convertsLeads"], true);
    assert!(
        zoho["editions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "ENTERPRISE" && e["maxConcurrentCalls"] == 20)
    );
    let pipedrive = kinds.iter().find(|k| k["kind"] == "PIPEDRIVE").unwrap();
    assert_eq!(pipedrive["joinedName"], true);
    assert_eq!(pipedrive["editions"], json!([]));
    // Two ways to connect: a dashboard draws one form per alternative.
    let hubspot = kinds.iter().find(|k| k["kind"] == "HUBSPOT").unwrap();
    let alternatives: Vec<(&str, &str)> = hubspot["credentialFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["alternative"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        alternatives,
        [
            ("accessToken", "privateApp"),
            ("clientId", "oauthApp"),
            ("clientSecret", "oauthApp"),
            ("refreshToken", "oauthApp"),
            ("appId", "oauthApp"),
            ("developerApiKey", "oauthApp")
        ]
    );
}
