//! `crmsync serve --demo`: sandbox CRMs in-process, a demo tenant with realistic
//! (and awkward) contacts, and a Pipedrive and a Zoho CRM connector on the
//! sandbox, all created through the public GraphQL API, as a partner's script
//! would.

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
    if let Err(error) = created
        && !error.to_string().contains("CONFLICT")
    {
        return Err(error.context("creating the demo tenant"));
    }
    let admin_token = mint(Role::Admin, Some(TENANT_SLUG));
    let admin = Client {
        http,
        url: url.clone(),
        token: admin_token.clone(),
    };

    let contacts = seed_contacts(&admin).await?;
    remove_previous_connectors(&admin).await?;
    let connector = connect_pipedrive(&admin, &sandbox).await?;
    let zoho = connect_zoho(&admin, &sandbox).await?;

    // A closed stdout (a script that read what it needed) must not stop the server.
    let summary = format!(
        "\ncrmsync demo is ready\n  GraphiQL:     http://{addr}/graphql  (set the header Authorization: Bearer <token>)\n  Admin token:  {admin_token}\n  Tenant:       {TENANT_SLUG} ({contacts} contacts)\n  Connector:    {CONNECTOR_NAME} ({connector}) on the sandbox Pipedrive, 300 seeded persons\n  Connector:    {ZOHO_CONNECTOR_NAME} ({zoho}) on the sandbox Zoho CRM, leads and contacts of 300 seeded people\n  Sandbox:      {} (admin API; see sandbox/README.md)\n  Try:          mutation {{ startSync(input: {{connectorId: \"{connector}\", mode: FULL}}) {{ run {{ id status }} }} }}\n\n",
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
async fn seed_contacts(admin: &Client) -> anyhow::Result<usize> {
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
    // Duplicate e-mails were upserted onto one contact: report what is stored.
    let count = admin
        .graphql("{ contacts(first: 1) { totalCount } }", json!({}))
        .await?;
    let stored = count["contacts"]["totalCount"]
        .as_u64()
        .context("no contact count in the reply")?;
    tracing::debug!(upserted, stored, "demo contacts");
    Ok(stored as usize)
}

/// Removes the demo connectors of a previous start (the sandbox is new at
/// every start, so their credentials are dead).
async fn remove_previous_connectors(admin: &Client) -> anyhow::Result<()> {
    let existing = admin
        .graphql(
            "{ connectors(first: 100) { edges { node { id name } } } }",
            json!({}),
        )
        .await?;
    for edge in existing["connectors"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if edge["node"]["name"] == CONNECTOR_NAME || edge["node"]["name"] == ZOHO_CONNECTOR_NAME {
            admin
                .graphql(
                    "mutation($id: ID!) { deleteConnector(input: {id: $id}) { deletedId } }",
                    json!({ "id": edge["node"]["id"] }),
                )
                .await
                .context("replacing the previous demo connector")?;
        }
    }
    Ok(())
}

/// The demo Pipedrive connector.
async fn connect_pipedrive(admin: &Client, sandbox: &Sandbox) -> anyhow::Result<String> {
    let pipedrive = &sandbox.description().pipedrive;
    let filter_key = pipedrive
        .field_keys
        .get("sync_to_plezi")
        .context("the sandbox has no sync_to_plezi field")?;
    let created = admin
        .graphql(
            "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
            json!({ "input": {
                "kind": "PIPEDRIVE",
                "name": CONNECTOR_NAME,
                "pipedrive": { "apiToken": pipedrive.api_token, "companyDomain": pipedrive.company_domain },
                "baseUrl": pipedrive.base_url,
                "settings": { "filterField": filter_key, "filterValue": "yes", "minScoreToExport": 40 },
            }}),
        )
        .await
        .context("creating the demo Pipedrive connector")?;
    created["createConnector"]["connector"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("no connector id in the reply")
}

/// The demo Zoho CRM connector: the sandbox's self-client and its fresh grant
/// code, exchanged by `createConnector`; leads both ways, contacts one way.
async fn connect_zoho(admin: &Client, sandbox: &Sandbox) -> anyhow::Result<String> {
    let zoho = &sandbox.description().zoho;
    let created = admin
        .graphql(
            "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
            json!({ "input": {
                "kind": "ZOHO_CRM",
                "name": ZOHO_CONNECTOR_NAME,
                "zoho": {
                    "clientId": zoho.client_id,
                    "clientSecret": zoho.client_secret,
                    "dataCenter": "com",
                    "orgId": zoho.org_id,
                    "grantCode": zoho.grant_code,
                },
                "baseUrl": zoho.accounts_url,
                "settings": {
                    "importModules": ["LEADS", "CONTACTS"],
                    "filterField": "sync_to_plezi",
                    "filterValue": "yes",
                    "minScoreToExport": 40,
                },
            }}),
        )
        .await
        .context("creating the demo Zoho CRM connector")?;
    created["createConnector"]["connector"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("no connector id in the reply")
}
