//! `crmsync serve --demo`: sandbox CRMs in-process, a demo tenant with realistic
//! (and awkward) contacts, and a Pipedrive, a Zoho CRM, a HubSpot, a Salesforce, a
//! Zendesk Sell and a SAP C4C connector on the sandbox, all created through the
//! public GraphQL API, as a partner's script would.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use crmsync_entity::enums::Role;
use crmsync_sandbox::seed::{self, SeedSpec};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::config::Config;

const TENANT_SLUG: &str = "demo";
const CONNECTOR_NAME: &str = "Sandbox Pipedrive";
const ZOHO_CONNECTOR_NAME: &str = "Sandbox Zoho CRM";
const HUBSPOT_CONNECTOR_NAME: &str = "Sandbox HubSpot";
const SALESFORCE_CONNECTOR_NAME: &str = "Sandbox Salesforce";
const ZENDESK_SELL_CONNECTOR_NAME: &str = "Sandbox Zendesk Sell";
const SAP_C4C_CONNECTOR_NAME: &str = "Sandbox SAP C4C";
/// Platform contact states; "Nurturing" is in no CRM picklist, on purpose.
const STATES: &[&str] = &["Prospect", "Client", "Prospect", "Nurturing"];

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    /// Runs one GraphQL operation; GraphQL errors come back as `Err` with their text.
    async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let reply: Value = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .context("calling the API")?
            .json()
            .await
            .context("reading the API's reply")?;
        if let Some(errors) = reply.get("errors").filter(|e| !e.is_null()) {
            bail!("{errors}");
        }
        Ok(reply["data"].clone())
    }
}

/// Starts the sandbox and fills the demo tenant; returns the sandbox, which must
/// live as long as the server.
pub async fn setup(config: &Config, addr: SocketAddr) -> anyhow::Result<Sandbox> {
    let sandbox = Sandbox::start(SandboxConfig {
        people: 300,
        ..SandboxConfig::default()
    })
    .await
    .context("starting the sandbox CRMs")?;
    let secret = config
        .jwt_secret
        .as_ref()
        .context("CRMSYNC_JWT_SECRET: the demo mints tokens with the HS256 secret")?;
    let mint = |role: Role, tenant: Option<&str>| {
        crmsync_api::auth::mint_hs256(
            secret,
            &config.jwt_issuer,
            &config.jwt_audience,
            "demo",
            role,
            tenant,
            Duration::from_secs(24 * 3600),
        )
    };
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/graphql");
    let operator = Client {
        http: http.clone(),
        url: url.clone(),
        token: mint(Role::Operator, None),
    };
    let created = operator
        .graphql(
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } } }",
            json!({ "input": { "name": "Demo Company", "slug": TENANT_SLUG } }),
        )
        .await;
    // A restart finds the tenant of a previous start and keeps what is in it.
    let first_start = match created {
        Ok(_) => true,
        Err(error) if error.to_string().contains("CONFLICT") => false,
        Err(error) => return Err(error.context("creating the demo tenant")),
    };
    let admin_token = mint(Role::Admin, Some(TENANT_SLUG));
    let admin = Client {
        http,
        url: url.clone(),
        token: admin_token.clone(),
    };

    if first_start {
        seed_contacts(&admin).await?;
    }
    let contacts = contact_count(&admin).await?;
    let previous = previous_connectors(&admin).await?;
    let connector = connect_pipedrive(&admin, &previous, &sandbox).await?;
    let zoho = connect_zoho(&admin, &previous, &sandbox).await?;
    let hubspot = connect_hubspot(&admin, &previous, &sandbox).await?;
    let salesforce = connect_salesforce(&admin, &previous, &sandbox).await?;
    let zendesk_sell = connect_zendesk_sell(&admin, &previous, &sandbox).await?;
    let sap_c4c = connect_sap_c4c(&admin, &previous, &sandbox).await?;

    // A closed stdout (a script that read what it needed) must not stop the server.
    let summary = format!(
        "\ncrmsync demo is ready\n  GraphiQL:     http://{addr}/graphql  (set the header Authorization: Bearer <token>)\n  Admin token:  {admin_token}\n  Tenant:       {TENANT_SLUG} ({contacts} contacts)\n  Connector:    {CONNECTOR_NAME} ({connector}) on the sandbox Pipedrive, 300 seeded persons\n  Connector:    {ZOHO_CONNECTOR_NAME} ({zoho}) on the sandbox Zoho CRM, leads and contacts of 300 seeded people\n  Connector:    {HUBSPOT_CONNECTOR_NAME} ({hubspot}) on the sandbox HubSpot (OAuth app), 300 seeded contacts\n  Connector:    {SALESFORCE_CONNECTOR_NAME} ({salesforce}) on the sandbox Salesforce, leads and contacts of 300 seeded people\n  Connector:    {ZENDESK_SELL_CONNECTOR_NAME} ({zendesk_sell}) on the sandbox Zendesk Sell, leads and contacts of 300 seeded people\n  Connector:    {SAP_C4C_CONNECTOR_NAME} ({sap_c4c}) on the sandbox SAP C4C (technical user), its seeded leads\n  Sandbox:      {} (admin API; see sandbox/README.md)\n  Try:          mutation {{ startSync(input: {{connectorId: \"{connector}\", mode: FULL}}) {{ run {{ id status }} }} }}\n\n",
        sandbox.description().admin_url
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(summary.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(sandbox)
}

/// About 200 platform contacts, with the awkward ones: no name, duplicates
/// (upserted onto the same contact), states no CRM picklist holds.
async fn seed_contacts(admin: &Client) -> anyhow::Result<()> {
    let people = seed::generate(&SeedSpec {
        seed: 7,
        people: 220,
        missing_name: 0.05,
        missing_email: 0.0,
        ..SeedSpec::default()
    });
    let mut upserted = 0;
    for person in &people {
        let Some(email) = &person.email else { continue };
        let input = json!({
            "email": email,
            "firstName": person.first_name,
            "lastName": person.last_name,
            "company": person.company,
            "phone": person.phone,
            "jobTitle": person.job_title,
            "source": person.source,
            "behaviourScore": person.score,
            "state": STATES[person.index % STATES.len()],
            "lifecycle": if person.converted { "CLIENT" } else { "PROSPECT" },
            "optedOut": person.opted_out,
        });
        admin
            .graphql("mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id } } }", json!({ "input": input }))
            .await
            .with_context(|| format!("creating the demo contact {email}"))?;
        upserted += 1;
    }
    tracing::debug!(upserted, "demo contacts");
    Ok(())
}

/// The contacts the demo tenant holds (duplicate e-mails were upserted onto one).
async fn contact_count(admin: &Client) -> anyhow::Result<u64> {
    let count = admin
        .graphql("{ contacts(first: 1) { totalCount } }", json!({}))
        .await?;
    count["contacts"]["totalCount"]
        .as_u64()
        .context("no contact count in the reply")
}

/// The ids of the demo connectors a previous start made, by name.
async fn previous_connectors(admin: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let existing = admin
        .graphql(
            "{ connectors(first: 100) { edges { node { id name } } } }",
            json!({}),
        )
        .await?;
    Ok(existing["connectors"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| {
            Some((
                edge["node"]["name"].as_str()?.to_owned(),
                edge["node"]["id"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Creates the demo connector named `name`, or, when a previous start made it,
/// points it at this start's sandbox (new URL and credentials) and keeps its id,
/// mappings and history.
async fn create_or_reconnect(
    admin: &Client,
    previous: &[(String, String)],
    name: &str,
    create: Value,
    reconnect: Value,
) -> anyhow::Result<String> {
    let (query, input, path) = match previous.iter().find(|(n, _)| n == name) {
        Some((_, id)) => {
            let mut input = reconnect;
            input["id"] = json!(id);
            (
                "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { id } } }",
                input,
                "updateConnector",
            )
        }
        None => {
            let mut input = create;
            input["name"] = json!(name);
            (
                "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
                input,
                "createConnector",
            )
        }
    };
    let reply = admin
        .graphql(query, json!({ "input": input }))
        .await
        .with_context(|| format!("setting up the demo connector \"{name}\""))?;
    reply[path]["connector"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("no connector id in the reply")
}

/// The demo Pipedrive connector.
async fn connect_pipedrive(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let pipedrive = &sandbox.description().pipedrive;
    let filter_key = pipedrive
        .field_keys
        .get("sync_to_plezi")
        .context("the sandbox has no sync_to_plezi field")?;
    let credentials =
        json!({ "apiToken": pipedrive.api_token, "companyDomain": pipedrive.company_domain });
    create_or_reconnect(
        admin,
        previous,
        CONNECTOR_NAME,
        json!({
            "kind": "PIPEDRIVE",
            "pipedrive": credentials,
            "baseUrl": pipedrive.base_url,
            "settings": { "filterField": filter_key, "filterValue": "yes", "minScoreToExport": 40 },
        }),
        json!({ "pipedrive": credentials, "baseUrl": pipedrive.base_url }),
    )
    .await
}

/// The demo Zoho CRM connector: the sandbox's self-client and its fresh grant
/// code, exchanged by `createConnector` (or `updateConnector`); leads both ways,
/// contacts one way.
async fn connect_zoho(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let zoho = &sandbox.description().zoho;
    let credentials = json!({
        "clientId": zoho.client_id,
        "clientSecret": zoho.client_secret,
        "dataCenter": "com",
        "orgId": zoho.org_id,
        "grantCode": zoho.grant_code,
    });
    create_or_reconnect(
        admin,
        previous,
        ZOHO_CONNECTOR_NAME,
        json!({
            "kind": "ZOHO_CRM",
            "zoho": credentials,
            "baseUrl": zoho.accounts_url,
            "settings": {
                "importModules": ["LEADS", "CONTACTS"],
                "filterField": "sync_to_plezi",
                "filterValue": "yes",
                "minScoreToExport": 40,
            },
        }),
        json!({ "zoho": credentials, "baseUrl": zoho.accounts_url }),
    )
    .await
}

/// The demo HubSpot connector, through the sandbox portal's OAuth app: its
/// refresh token is exchanged by `createConnector` (or `updateConnector`) and
/// kept; access tokens are refreshed as they expire.
async fn connect_hubspot(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let hubspot = &sandbox.description().hubspot;
    let credentials = json!({
        "clientId": hubspot.client_id,
        "clientSecret": hubspot.client_secret,
        "refreshToken": hubspot.refresh_token,
    });
    create_or_reconnect(
        admin,
        previous,
        HUBSPOT_CONNECTOR_NAME,
        json!({
            "kind": "HUBSPOT",
            "hubspot": credentials,
            "baseUrl": hubspot.base_url,
            "settings": { "minScoreToExport": 40 },
        }),
        json!({ "hubspot": credentials, "baseUrl": hubspot.base_url }),
    )
    .await
}

/// The demo Salesforce connector, through the sandbox org's connected app and
/// its refresh token; leads both ways, contacts one way, and a default
/// company for contacts that have none.
async fn connect_salesforce(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let salesforce = &sandbox.description().salesforce;
    let credentials = json!({
        "clientId": salesforce.client_id,
        "clientSecret": salesforce.client_secret,
        "refreshToken": salesforce.refresh_token,
    });
    create_or_reconnect(
        admin,
        previous,
        SALESFORCE_CONNECTOR_NAME,
        json!({
            "kind": "SALESFORCE",
            "salesforce": credentials,
            "baseUrl": salesforce.login_url,
            "settings": {
                "importModules": ["LEADS", "CONTACTS"],
                "minScoreToExport": 40,
                "defaultCompany": "Unknown company",
            },
        }),
        json!({ "salesforce": credentials, "baseUrl": salesforce.login_url }),
    )
    .await
}

/// The demo Zendesk Sell connector, through the sandbox account's personal
/// access token; leads both ways, contacts one way.
async fn connect_zendesk_sell(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let sell = &sandbox.description().zendesk_sell;
    let credentials = json!({ "accessToken": sell.access_token });
    create_or_reconnect(
        admin,
        previous,
        ZENDESK_SELL_CONNECTOR_NAME,
        json!({
            "kind": "ZENDESK_SELL",
            "zendeskSell": credentials,
            "baseUrl": sell.base_url,
            "settings": {
                "importModules": ["LEADS", "CONTACTS"],
                "minScoreToExport": 40,
            },
        }),
        json!({ "zendeskSell": credentials, "baseUrl": sell.base_url }),
    )
    .await
}

/// The demo SAP C4C connector, as the sandbox tenant's technical user; leads
/// both ways (with a company for those that have none), contacts one way.
async fn connect_sap_c4c(
    admin: &Client,
    previous: &[(String, String)],
    sandbox: &Sandbox,
) -> anyhow::Result<String> {
    let c4c = &sandbox.description().sap_c4c;
    let credentials = json!({ "username": c4c.username, "password": c4c.password });
    create_or_reconnect(
        admin,
        previous,
        SAP_C4C_CONNECTOR_NAME,
        json!({
            "kind": "SAP_C4C",
            "sapC4c": credentials,
            "baseUrl": c4c.base_url,
            "settings": {
                "importModules": ["LEADS", "CONTACTS"],
                "minScoreToExport": 40,
                "defaultCompany": "Unknown company",
            },
        }),
        json!({ "sapC4c": credentials, "baseUrl": c4c.base_url }),
    )
    .await
}
