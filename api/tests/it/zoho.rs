//! Zoho CRM connectors against the sandbox Zoho: a grant code exchanged at
//! once for a refresh token (never stored, never shown), Zoho's refusals on the
//! input field at fault, live fields of Leads and Contacts, connection tests
//! that name what is missing, and re-authorisation after a revoked grant.

use crmsync_entity::enums::{ConnectorStatus, Role};
use crmsync_entity::models::connector;
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_sandbox::Sandbox;
use crmsync_worker::credentials::Credentials;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::*;

const UPDATE: &str = "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { id status statusMessage credentialsSet settings { importModules filterField filterValue } } } }";
const TEST: &str = "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }";
const STATUS: &str = "query($id: ID!) { connector(id: $id) { status statusMessage } }";
const SET: &str = "mutation($input: SetFieldMappingsInput!) { setFieldMappings(input: $input) { connector { mappings { platformField crmField direction } } } }";

/// One Zoho org of the sandbox, reached through its self-client.
pub(crate) struct Org {
    accounts_url: String,
    admin_url: String,
    pub(crate) org_id: String,
    client_id: String,
    client_secret: String,
    mint_url: String,
    http: reqwest::Client,
}

impl Org {
    /// The org the sandbox starts with (seeded, default custom fields).
    pub(crate) fn default_of(sandbox: &Sandbox) -> Self {
        let z = &sandbox.description().zoho;
        Self {
            accounts_url: z.accounts_url.clone(),
            admin_url: sandbox.description().admin_url.clone(),
            org_id: z.org_id.clone(),
            client_id: z.client_id.clone(),
            client_secret: z.client_secret.clone(),
            mint_url: z.mint_grant_code_url.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// A new org created through the sandbox admin API (`POST /admin/zoho/orgs`).
    async fn create(sandbox: &Sandbox, spec: Value) -> Self {
        let admin_url = sandbox.description().admin_url.clone();
        let http = reqwest::Client::new();
        let reply = http
            .post(format!("{admin_url}/zoho/orgs"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        let org: Value = reply.json().await.unwrap();
        let text = |k: &str| org[k].as_str().unwrap().to_owned();
        Self {
            accounts_url: text("accounts_url"),
            admin_url,
            org_id: text("org_id"),
            client_id: text("client_id"),
            client_secret: text("client_secret"),
            mint_url: text("mint_grant_code_url"),
            http,
        }
    }

    /// A fresh grant code, as the Zoho API console's Self Client would make it.
    async fn grant_code(&self) -> String {
        let reply: Value = self
            .http
            .post(&self.mint_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["code"].as_str().unwrap().to_owned()
    }

    /// A grant code with this scope, from the sandbox's admin API.
    pub(crate) async fn grant_code_with_scope(&self, scope: &str) -> String {
        let reply = self
            .admin(
                reqwest::Method::POST,
                &format!("/zoho/orgs/{}/grant-codes", self.org_id),
                json!({ "scope": scope }),
            )
            .await;
        reply["code"].as_str().unwrap().to_owned()
    }

    /// The createConnector input for this org with a grant code.
    pub(crate) fn input_with(&self, grant_code: &str) -> Value {
        self.input(grant_code)
    }

    /// The `zoho` credentials input.
    fn credentials(&self, grant_code: &str) -> Value {
        json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "dataCenter": "eu",
            "orgId": self.org_id,
            "grantCode": grant_code,
        })
    }

    /// The createConnector input for this org, the sandbox as accounts server.
    fn input(&self, grant_code: &str) -> Value {
        json!({
            "kind": "ZOHO_CRM",
            "name": "Zoho",
            "zoho": self.credentials(grant_code),
            "baseUrl": self.accounts_url,
        })
    }

    /// Calls the sandbox admin API.
    pub(crate) async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let reply = self
            .http
            .request(method, format!("{}{path}", self.admin_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap()
    }
}

/// Creates a Zoho connector with a fresh code; returns its id.
pub(crate) async fn zoho_connector(app: &TestApp, org: &Org) -> String {
    let code = org.grant_code().await;
    let data = app
        .admin_ok(CREATE_CONNECTOR, json!({ "input": org.input(&code) }))
        .await;
    data["createConnector"]["connector"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The credentials the API stored for a connector, decrypted.
async fn stored_credentials(app: &TestApp, id: &str) -> Credentials {
    let tenant = TenantId::new(app.tenant_id.clone());
    let row = connector::Entity::find_for_tenant(&tenant, id)
        .one(&app.database.db)
        .await
        .unwrap()
        .unwrap();
    app.state
        .credentials_key
        .open(&app.tenant_id, id, row.credentials.as_deref().unwrap())
        .unwrap()
}

async fn create_error(app: &TestApp, input: Value) -> Value {
    let body = app
        .gql(
            &app.token(Role::Admin),
            CREATE_CONNECTOR,
            json!({ "input": input }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    body
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap()
}

#[tokio::test]
async fn a_fresh_grant_code_makes_a_connected_connector_that_shows_no_secret() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let code = org.grant_code().await;

    let data = app
        .admin_ok(CREATE_CONNECTOR, json!({ "input": org.input(&code) }))
        .await;

    let c = &data["createConnector"]["connector"];
    assert_eq!(c["kind"], "ZOHO_CRM");
    assert_eq!(c["status"], "CONNECTED");
    assert_eq!(
        c["credentialsSet"],
        json!([
            "clientId",
            "clientSecret",
            "dataCenter",
            "orgId",
            "refreshToken"
        ])
    );
    assert_eq!(c["settings"]["importModules"], json!(["LEADS"]));
    let mapped: Vec<(&str, &str, bool)> = c["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platformField"].as_str().unwrap(),
                m["crmField"].as_str().unwrap(),
                m["locked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &mapped[..3],
        [
            ("email", "Email", true),
            ("first_name", "First_Name", true),
            ("last_name", "Last_Name", true)
        ]
    );
    assert!(mapped.contains(&("platform_url", "plezi_url", false)));

    let id = c["id"].as_str().unwrap();
    let stored = stored_credentials(&app, id).await;
    assert_eq!(stored.tag(), "zoho", "Zoho credentials");
    let refresh_token = stored
        .secret("refreshToken")
        .expect("a refresh token")
        .clone();
    let org_id = stored.text("orgId").map(str::to_owned);
    let data_center = stored.text("dataCenter").unwrap_or_default().to_owned();
    let refresh_token = refresh_token.expose_secret().to_owned();
    assert!(
        refresh_token.starts_with("1000."),
        "a refresh token is kept"
    );
    assert_ne!(refresh_token, code, "never the grant code");
    assert_eq!(
        (org_id.as_deref(), data_center.as_str()),
        (Some(org.org_id.as_str()), "eu")
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
    let shown = format!("{data}{audit}");
    for secret in [&org.client_secret, &refresh_token, &code] {
        assert!(!shown.contains(secret.as_str()), "a secret leaked: {shown}");
    }
}

#[tokio::test]
async fn a_replayed_create_returns_the_first_connector_without_spending_another_code() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let mut input = org.input(&org.grant_code().await);
    input["idempotencyKey"] = json!("zoho-1");

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
}

#[tokio::test]
async fn a_used_grant_code_is_refused_on_grant_code_with_how_to_make_a_new_one() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let code = org.grant_code().await;
    app.admin_ok(CREATE_CONNECTOR, json!({ "input": org.input(&code) }))
        .await;

    let body = create_error(&app, org.input(&code)).await;

    assert_eq!(field(&body), "input.zoho.grantCode", "{body}");
    let text = message(&body);
    assert!(text.contains("used") && text.contains("expired"), "{text}");
    assert!(text.contains("Self Client > Generate Code"), "{text}");
    assert!(!body.to_string().contains(&org.client_secret));
    let n = app
        .admin_ok("{ connectors { totalCount } }", json!({}))
        .await;
    assert_eq!(n["connectors"]["totalCount"], 1);
}

#[tokio::test]
async fn an_expired_grant_code_is_refused_on_grant_code() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let limits = format!("/zoho/orgs/{}/limits", org.org_id);
    org.admin(
        reqwest::Method::PATCH,
        &limits,
        json!({ "grant_code_ttl_secs": 60 }),
    )
    .await;
    let code = org.grant_code().await;
    org.admin(
        reqwest::Method::POST,
        "/clock",
        json!({ "advance_secs": 61 }),
    )
    .await;

    let body = create_error(&app, org.input(&code)).await;

    assert_eq!(field(&body), "input.zoho.grantCode", "{body}");
    assert!(message(&body).contains("expired"), "{body}");
    assert!(message(&body).contains("Generate Code"), "{body}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_on_client_secret() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let mut input = org.input(&org.grant_code().await);
    input["zoho"]["clientSecret"] = json!("not-the-secret");

    let body = create_error(&app, input).await;

    assert_eq!(field(&body), "input.zoho.clientSecret", "{body}");
    assert!(!body.to_string().contains("not-the-secret"), "{body}");
}

#[tokio::test]
async fn malformed_zoho_credentials_are_refused_before_the_code_is_spent() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let code = org.grant_code().await;
    let with = |key: &str, value: Value| {
        let mut input = org.input(&code);
        input["zoho"][key] = value;
        input
    };

    let body = create_error(&app, with("dataCenter", json!("us"))).await;
    assert_eq!(field(&body), "input.zoho.dataCenter");
    assert!(
        message(&body).contains("com, eu, in, com.au, jp, com.cn, ca, sa"),
        "{body}"
    );
    for (key, value, at) in [
        ("clientId", json!(" "), "input.zoho.clientId"),
        ("clientSecret", json!(""), "input.zoho.clientSecret"),
        ("grantCode", json!(" "), "input.zoho.grantCode"),
        ("orgId", json!("acme"), "input.zoho.orgId"),
    ] {
        let body = create_error(&app, with(key, value)).await;
        assert_eq!(field(&body), at, "{body}");
    }
    let mut bad_settings = org.input(&code);
    bad_settings["settings"] = json!({ "importModules": ["PERSONS"] });
    let body = create_error(&app, bad_settings).await;
    assert_eq!(field(&body), "input.settings.importModules[0]", "{body}");

    // None of those reached Zoho: the code still works.
    let data = app
        .admin_ok(CREATE_CONNECTOR, json!({ "input": org.input(&code) }))
        .await;
    assert_eq!(data["createConnector"]["connector"]["status"], "CONNECTED");
}

#[tokio::test]
async fn credentials_of_the_other_crm_are_refused_by_name() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let pd = json!({ "apiToken": "t", "companyDomain": "acme" });

    let mut zoho_with_pipedrive = org.input("unused");
    zoho_with_pipedrive["pipedrive"] = pd.clone();
    let body = create_error(&app, zoho_with_pipedrive).await;
    assert_eq!(field(&body), "input.pipedrive", "{body}");

    let mut zoho_without_zoho = org.input("unused");
    zoho_without_zoho.as_object_mut().unwrap().remove("zoho");
    let body = create_error(&app, zoho_without_zoho).await;
    assert_eq!(field(&body), "input.zoho", "{body}");

    let mut pipedrive_with_zoho = pipedrive_input(&sandbox);
    pipedrive_with_zoho["zoho"] = org.credentials("unused");
    let body = create_error(&app, pipedrive_with_zoho).await;
    assert_eq!(field(&body), "input.zoho", "{body}");

    let id = zoho_connector(&app, &org).await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            UPDATE,
            json!({ "input": { "id": id, "pipedrive": pd } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.pipedrive", "{body}");
}

#[tokio::test]
async fn crm_fields_come_live_for_leads_and_contacts_with_picklist_options() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = zoho_connector(&app, &Org::default_of(&sandbox)).await;

    let data = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { leads: crmFields(module: LEADS) { apiName type readOnly options } contacts: crmFields(module: CONTACTS) { apiName type options } } }",
            json!({ "id": id }),
        )
        .await;

    let by_name = |list: &str, name: &str| {
        data["connector"][list]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["apiName"] == name)
            .cloned()
    };
    let industry = by_name("leads", "Industry").expect("Leads have Industry");
    assert_eq!(industry["type"], "PICKLIST");
    let options = industry["options"].as_array().unwrap();
    assert!(options.contains(&json!("Software / SaaS")), "{industry}");
    assert!(!options.contains(&json!("-None-")), "{industry}");
    assert_eq!(by_name("leads", "plezi_url").unwrap()["type"], "URL");
    assert_eq!(by_name("leads", "Full_Name").unwrap()["readOnly"], true);
    let source = by_name("contacts", "Lead_Source").expect("Contacts have Lead_Source");
    assert!(
        source["options"]
            .as_array()
            .unwrap()
            .contains(&json!("Web-Form")),
        "{source}"
    );
    assert_eq!(
        by_name("contacts", "Account_Name").unwrap()["type"],
        "LOOKUP"
    );
    assert!(by_name("contacts", "Company").is_none());

    let body = app
        .gql(
            &app.token(Role::Admin),
            "query($id: ID!) { connector(id: $id) { crmFields(module: PERSONS) { apiName } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(field(&body), "module", "{body}");
}

#[tokio::test]
async fn test_connector_reads_leads_and_contacts_when_both_are_imported() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = zoho_connector(&app, &Org::default_of(&sandbox)).await;
    app.admin_ok(
        UPDATE,
        json!({ "input": { "id": id, "settings": {
            "importModules": ["LEADS", "CONTACTS"],
            "filterField": "sync_to_plezi",
            "filterValue": "yes",
        } } }),
    )
    .await;

    let test = app.admin_ok(TEST, json!({ "id": id })).await;

    assert_eq!(test["testConnector"]["ok"], true, "{test}");
    let text = test["testConnector"]["message"].as_str().unwrap();
    assert!(text.contains("Leads and Contacts"), "{text}");
}

#[tokio::test]
async fn test_connector_names_a_missing_filter_field_and_records_the_error() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = zoho_connector(&app, &Org::default_of(&sandbox)).await;
    app.admin_ok(
        UPDATE,
        json!({ "input": { "id": id, "settings": { "filterField": "Sync_Me", "filterValue": "yes" } } }),
    )
    .await;

    let test = app.admin_ok(TEST, json!({ "id": id })).await;

    assert_eq!(test["testConnector"]["ok"], false, "{test}");
    let text = test["testConnector"]["message"].as_str().unwrap();
    assert!(text.contains("Leads have no field \"Sync_Me\""), "{text}");
    assert!(text.contains("Setup > Modules and Fields"), "{text}");
    let status = app.admin_ok(STATUS, json!({ "id": id })).await;
    assert_eq!(status["connector"]["status"], "ERROR");
    assert_eq!(status["connector"]["statusMessage"], json!(text));
}

#[tokio::test]
async fn test_connector_names_a_missing_platform_link_field() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = zoho_connector(&app, &Org::default_of(&sandbox)).await;
    // Re-pointed at an org whose Leads have no plezi_url: the platform_url
    // mapping made for the first org has nowhere to go.
    let bare = Org::create(
        &sandbox,
        json!({ "custom_fields": [{ "api_name": "sync_to_plezi", "data_type": "text" }] }),
    )
    .await;
    let code = bare.grant_code().await;
    app.admin_ok(
        UPDATE,
        json!({ "input": { "id": id, "zoho": bare.credentials(&code) } }),
    )
    .await;

    let test = app.admin_ok(TEST, json!({ "id": id })).await;

    assert_eq!(test["testConnector"]["ok"], false, "{test}");
    let text = test["testConnector"]["message"].as_str().unwrap();
    assert!(
        text.contains("Leads have no field \"plezi_url\" for the link back to the platform"),
        "{text}"
    );
    assert!(text.contains("URL or text field"), "{text}");
    assert!(text.contains("remove the platform_url mapping"), "{text}");
}

#[tokio::test]
async fn a_revoked_grant_needs_reauth_until_a_new_grant_code_is_given() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::default_of(&sandbox);
    let id = zoho_connector(&app, &org).await;
    let stored = stored_credentials(&app, &id).await;
    let refresh_token = stored
        .secret("refreshToken")
        .expect("a refresh token")
        .clone();
    // What a Zoho admin's "Revoke" does, through Zoho's documented endpoint.
    let revoked = org
        .http
        .post(format!("{}/oauth/v2/token/revoke", org.accounts_url))
        .query(&[("token", refresh_token.expose_secret())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let test = app.admin_ok(TEST, json!({ "id": id })).await;

    assert_eq!(test["testConnector"]["ok"], false, "{test}");
    let text = test["testConnector"]["message"].as_str().unwrap();
    assert!(text.contains("revoked"), "{text}");
    assert!(text.contains("grant code"), "{text}");
    assert!(!text.contains("API token"), "{text}");
    let status = app.admin_ok(STATUS, json!({ "id": id })).await;
    assert_eq!(
        status["connector"]["status"],
        ConnectorStatus::NeedsReauth.as_str()
    );

    let code = org.grant_code().await;
    let updated = app
        .admin_ok(
            UPDATE,
            json!({ "input": { "id": id, "zoho": org.credentials(&code) } }),
        )
        .await;
    let c = &updated["updateConnector"]["connector"];
    assert_eq!(c["status"], "CONNECTED", "{updated}");
    assert_eq!(c["statusMessage"], Value::Null);
    let test = app.admin_ok(TEST, json!({ "id": id })).await;
    assert_eq!(test["testConnector"]["ok"], true, "{test}");
}

#[tokio::test]
async fn set_field_mappings_refuses_a_multi_select_read_into_a_single_value_field() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let org = Org::create(
        &sandbox,
        json!({ "custom_fields": [
            { "api_name": "plezi_url", "data_type": "website" },
            { "api_name": "Interests", "data_type": "multiselectpicklist", "modules": ["Leads"],
              "pick_list_values": [
                  { "display_value": "Pricing", "actual_value": "Pricing" },
                  { "display_value": "Webinars", "actual_value": "Webinars" }
              ] }
        ] }),
    )
    .await;
    let id = zoho_connector(&app, &org).await;
    let row = |platform: &str, crm: &str, direction: &str| json!({ "platformField": platform, "crmField": crm, "direction": direction, "enabled": true });
    let mut rows = vec![
        row("email", "Email", "BOTH"),
        row("first_name", "First_Name", "BOTH"),
        row("last_name", "Last_Name", "BOTH"),
    ];
    rows.push(row("company", "Interests", "FROM_CRM"));

    let body = app
        .gql(
            &app.token(Role::Admin),
            SET,
            json!({ "input": { "connectorId": id, "mappings": rows } }),
        )
        .await;

    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.mappings[3].direction", "{body}");
    assert!(message(&body).contains("several values"), "{body}");
    rows[3] = row("custom.interests", "Interests", "FROM_CRM");
    let data = app
        .admin_ok(
            SET,
            json!({ "input": { "connectorId": id, "mappings": rows } }),
        )
        .await;
    assert_eq!(
        data["setFieldMappings"]["connector"]["mappings"][3]["crmField"],
        "Interests"
    );
}
