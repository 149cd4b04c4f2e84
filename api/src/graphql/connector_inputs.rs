//! What the API knows of each CRM kind by name: the kind enum as GraphQL
//! shows it, and the credential input of each kind on `createConnector` and
//! `updateConnector`. Everything else about a kind (validation, grant
//! exchange, wording) is its kit's (`crmsync_worker::crm::registry`).

use async_graphql::{Enum, ID, InputObject};
use crmsync_worker::crm::kit::CredentialsForm;

use super::inputs::ConnectorSettingsInput;
use crate::connectors::SentCredentials;

/// The CRM behind a connector.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
#[graphql(remote = "crmsync_entity::enums::ConnectorKind")]
pub(crate) enum ConnectorKind {
    /// Zoho CRM (API v8): LEADS both ways, CONTACTS into the platform (leads
    /// converted in Zoho become contacts). Editions (crmEdition) FREE,
    /// STANDARD, PROFESSIONAL, ENTERPRISE, ULTIMATE set 5, 10, 15, 20 or 25
    /// calls at once (STANDARD's when unset); runWorkflows runs Zoho's
    /// workflow rules on our writes.
    #[graphql(name = "ZOHO_CRM")]
    ZohoCrm,
    /// Pipedrive (API v2): PERSONS both ways; a person's name is one field.
    #[graphql(name = "PIPEDRIVE")]
    Pipedrive,
    /// HubSpot (CRM API v3): CONTACTS both ways, through a private app's
    /// access token or an OAuth app's refresh token; lifecycle stage
    /// "customer" is the platform's CLIENT and never moves backwards in HubSpot.
    #[graphql(name = "HUBSPOT")]
    Hubspot,
    /// Salesforce (REST API v62.0): LEADS both ways, CONTACTS into the
    /// platform (leads converted in Salesforce become contacts), through a
    /// connected app's refresh token or its JWT bearer flow. Salesforce's API
    /// cannot convert leads: a contact that becomes CLIENT is reported for
    /// sales to convert its lead in Salesforce. Leads need a Company: the
    /// defaultCompany setting fills it in for contacts that have none.
    #[graphql(name = "SALESFORCE")]
    Salesforce,
    /// Zendesk Sell (API v2): LEADS both ways, CONTACTS into the platform
    /// (leads converted in Sell become contacts), through a personal access
    /// token. A contact that becomes CLIENT has its lead converted. Calls
    /// are paced to 10 a second per token; maxRequestsPerSecond sets an
    /// account's raised limit.
    #[graphql(name = "ZENDESK_SELL")]
    ZendeskSell,
    /// SAP Sales Cloud (C4C, OData v2): LEADS both ways, CONTACTS (leads
    /// converted in C4C become contacts) and CUSTOMERS (individual
    /// customers) into the platform, as a technical user (user name and
    /// password) of the tenant whose address is the connector's baseUrl.
    /// C4C's API cannot convert leads: a contact that becomes CLIENT is
    /// reported for sales to convert its lead in C4C. Leads need a
    /// Company: the defaultCompany setting fills it in.
    #[graphql(name = "SAP_C4C")]
    SapC4c,
}

/// Zoho CRM credentials: a self-client of the Zoho API console and a grant code
/// made there with scope ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ.
#[derive(InputObject)]
pub(crate) struct ZohoCredentialsInput {
    /// Client id of the self-client.
    pub(crate) client_id: String,
    /// Client secret of the self-client (stored encrypted, never shown again).
    pub(crate) client_secret: String,
    /// Where the Zoho account lives: com, eu, in, com.au, jp, com.cn, ca or sa.
    pub(crate) data_center: String,
    /// The org's numeric id (Setup > Company Details), kept for reference.
    pub(crate) org_id: Option<String>,
    /// Self-client grant code; exchanged at once for a refresh token, then discarded.
    pub(crate) grant_code: String,
}

impl From<ZohoCredentialsInput> for SentCredentials {
    fn from(i: ZohoCredentialsInput) -> Self {
        Self::new(
            crmsync_entity::enums::ConnectorKind::ZohoCrm,
            CredentialsForm::new()
                .with("clientId", Some(i.client_id))
                .with("clientSecret", Some(i.client_secret))
                .with("dataCenter", Some(i.data_center))
                .with("orgId", i.org_id)
                .with("grantCode", Some(i.grant_code)),
        )
    }
}

/// Pipedrive credentials.
#[derive(InputObject)]
pub(crate) struct PipedriveCredentialsInput {
    /// The API token (stored encrypted, never shown again).
    pub(crate) api_token: String,
    /// The company's subdomain: "acme" for acme.pipedrive.com.
    pub(crate) company_domain: String,
}

impl From<PipedriveCredentialsInput> for SentCredentials {
    fn from(i: PipedriveCredentialsInput) -> Self {
        Self::new(
            crmsync_entity::enums::ConnectorKind::Pipedrive,
            CredentialsForm::new()
                .with("apiToken", Some(i.api_token))
                .with("companyDomain", Some(i.company_domain)),
        )
    }
}

/// HubSpot credentials: a private app's access token, or an OAuth app's
/// client id, client secret and refresh token (one or the other). The app
/// needs the scopes crm.objects.contacts.read, crm.objects.contacts.write,
/// crm.schemas.contacts.read and crm.objects.owners.read.
#[derive(InputObject)]
pub(crate) struct HubspotCredentialsInput {
    /// A private app's access token (stored encrypted, never shown again).
    pub(crate) access_token: Option<String>,
    /// The OAuth app's client id.
    pub(crate) client_id: Option<String>,
    /// The OAuth app's client secret (stored encrypted, never shown again).
    pub(crate) client_secret: Option<String>,
    /// A refresh token the portal granted the OAuth app (stored encrypted).
    pub(crate) refresh_token: Option<String>,
    /// The OAuth app's id, for real time (its webhooks); with `developerApiKey`.
    pub(crate) app_id: Option<String>,
    /// The API key of the developer account that owns the OAuth app, for
    /// real time: it manages the app's webhooks (stored encrypted).
    pub(crate) developer_api_key: Option<String>,
}

impl From<HubspotCredentialsInput> for SentCredentials {
    fn from(i: HubspotCredentialsInput) -> Self {
        Self::new(
            crmsync_entity::enums::ConnectorKind::Hubspot,
            CredentialsForm::new()
                .with("accessToken", i.access_token)
                .with("clientId", i.client_id)
                .with("clientSecret", i.client_secret)
                .with("refreshToken", i.refresh_token)
                .with("appId", i.app_id)
                .with("developerApiKey", i.developer_api_key),
        )
    }
}

/// The Salesforce org a connected app signs in to when no base URL is given.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub(crate) enum SalesforceEnvironment {
    /// A production or developer org: login.salesforce.com.
    Production,
    /// A Salesforce sandbox org: test.salesforce.com.
    Sandbox,
}

/// Salesforce credentials: a connected app's consumer key (clientId) with
/// either its consumer secret and a refresh token from its OAuth flow, or,
/// for the JWT bearer flow, the username of a pre-authorised user and the
/// private key whose certificate is uploaded to the app. The app needs the
/// OAuth scopes api and refresh_token (offline_access).
#[derive(InputObject)]
pub(crate) struct SalesforceCredentialsInput {
    /// The connected app's consumer key.
    pub(crate) client_id: String,
    /// The connected app's consumer secret (stored encrypted, never shown again).
    pub(crate) client_secret: Option<String>,
    /// A refresh token the org granted the app (stored encrypted).
    pub(crate) refresh_token: Option<String>,
    /// JWT bearer flow: the Salesforce username the app acts as.
    pub(crate) username: Option<String>,
    /// JWT bearer flow: the PEM private key whose certificate is uploaded to
    /// the connected app (stored encrypted, never shown again).
    pub(crate) private_key_pem: Option<String>,
    /// Where to sign in when the connector has no baseUrl (default PRODUCTION).
    pub(crate) environment: Option<SalesforceEnvironment>,
}

impl From<SalesforceCredentialsInput> for SentCredentials {
    fn from(i: SalesforceCredentialsInput) -> Self {
        let environment = i.environment.map(|e| match e {
            SalesforceEnvironment::Production => "PRODUCTION",
            SalesforceEnvironment::Sandbox => "SANDBOX",
        });
        Self::new(
            crmsync_entity::enums::ConnectorKind::Salesforce,
            CredentialsForm::new()
                .with("clientId", Some(i.client_id))
                .with("clientSecret", i.client_secret)
                .with("refreshToken", i.refresh_token)
                .with("username", i.username)
                .with("privateKeyPem", i.private_key_pem)
                .with("environment", environment),
        )
    }
}

/// Zendesk Sell credentials: a personal access token (Settings >
/// Integrations > OAuth > Access Tokens).
#[derive(InputObject)]
pub(crate) struct ZendeskSellCredentialsInput {
    /// The access token (stored encrypted, never shown again).
    pub(crate) access_token: String,
}

impl From<ZendeskSellCredentialsInput> for SentCredentials {
    fn from(i: ZendeskSellCredentialsInput) -> Self {
        Self::new(
            crmsync_entity::enums::ConnectorKind::ZendeskSell,
            CredentialsForm::new().with("accessToken", Some(i.access_token)),
        )
    }
}

/// SAP C4C credentials: a technical user of the tenant (basic authentication).
#[derive(InputObject)]
#[graphql(name = "SapC4cCredentialsInput")]
pub(crate) struct SapC4cCredentialsInput {
    /// The user name.
    pub(crate) username: String,
    /// The user's password (stored encrypted, never shown again).
    pub(crate) password: String,
}

impl From<SapC4cCredentialsInput> for SentCredentials {
    fn from(i: SapC4cCredentialsInput) -> Self {
        Self::new(
            crmsync_entity::enums::ConnectorKind::SapC4c,
            CredentialsForm::new()
                .with("username", Some(i.username))
                .with("password", Some(i.password)),
        )
    }
}

/// The credential inputs of every kind, as an input carries them.
struct Sent {
    zoho: Option<ZohoCredentialsInput>,
    pipedrive: Option<PipedriveCredentialsInput>,
    hubspot: Option<HubspotCredentialsInput>,
    salesforce: Option<SalesforceCredentialsInput>,
    zendesk_sell: Option<ZendeskSellCredentialsInput>,
    sap_c4c: Option<SapC4cCredentialsInput>,
}

/// The credentials sent on an input, of whichever kinds were filled in.
fn sent(inputs: Sent) -> Vec<SentCredentials> {
    let Sent {
        zoho,
        pipedrive,
        hubspot,
        salesforce,
        zendesk_sell,
        sap_c4c,
    } = inputs;
    [
        zoho.map(SentCredentials::from),
        pipedrive.map(SentCredentials::from),
        hubspot.map(SentCredentials::from),
        salesforce.map(SentCredentials::from),
        zendesk_sell.map(SentCredentials::from),
        sap_c4c.map(SentCredentials::from),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A new connector.
#[derive(InputObject)]
pub(crate) struct CreateConnectorInput {
    /// Which CRM.
    pub(crate) kind: ConnectorKind,
    /// Display name.
    pub(crate) name: String,
    /// Zoho credentials, for ZOHO_CRM.
    pub(crate) zoho: Option<ZohoCredentialsInput>,
    /// Pipedrive credentials, for PIPEDRIVE.
    pub(crate) pipedrive: Option<PipedriveCredentialsInput>,
    /// HubSpot credentials, for HUBSPOT.
    pub(crate) hubspot: Option<HubspotCredentialsInput>,
    /// Salesforce credentials, for SALESFORCE.
    pub(crate) salesforce: Option<SalesforceCredentialsInput>,
    /// Zendesk Sell credentials, for ZENDESK_SELL.
    pub(crate) zendesk_sell: Option<ZendeskSellCredentialsInput>,
    /// SAP C4C credentials, for SAP_C4C.
    #[graphql(name = "sapC4c")]
    pub(crate) sap_c4c: Option<SapC4cCredentialsInput>,
    /// Settings (defaults for what is left out).
    pub(crate) settings: Option<ConnectorSettingsInput>,
    /// Base URL override (sandbox CRMs, proxies): Pipedrive's or HubSpot's API root,
    /// or Zoho's accounts server or Salesforce's login URL (their token replies
    /// name the API server). SAP C4C's tenant address (required):
    /// https://my123456.crm.ondemand.com.
    pub(crate) base_url: Option<String>,
    /// Replays within 24 h return the first result instead of creating twice.
    pub(crate) idempotency_key: Option<String>,
}

impl CreateConnectorInput {
    /// The credentials sent, taken out of the input.
    pub(crate) fn take_credentials(&mut self) -> Vec<SentCredentials> {
        sent(Sent {
            zoho: self.zoho.take(),
            pipedrive: self.pipedrive.take(),
            hubspot: self.hubspot.take(),
            salesforce: self.salesforce.take(),
            zendesk_sell: self.zendesk_sell.take(),
            sap_c4c: self.sap_c4c.take(),
        })
    }
}

/// Changes to a connector.
#[derive(InputObject)]
pub(crate) struct UpdateConnectorInput {
    /// The connector.
    pub(crate) id: ID,
    /// New name.
    pub(crate) name: Option<String>,
    /// Sync on or off.
    pub(crate) enabled: Option<bool>,
    /// Settings changes (left-out settings are kept).
    pub(crate) settings: Option<ConnectorSettingsInput>,
    /// New Zoho credentials: a fresh grant code re-authorises the connector.
    pub(crate) zoho: Option<ZohoCredentialsInput>,
    /// New Pipedrive credentials.
    pub(crate) pipedrive: Option<PipedriveCredentialsInput>,
    /// New HubSpot credentials: a new token, or a new OAuth grant, re-authorises the connector.
    pub(crate) hubspot: Option<HubspotCredentialsInput>,
    /// New Salesforce credentials: a new refresh token or key re-authorises the connector.
    pub(crate) salesforce: Option<SalesforceCredentialsInput>,
    /// New Zendesk Sell credentials: a new access token re-authorises the connector.
    pub(crate) zendesk_sell: Option<ZendeskSellCredentialsInput>,
    /// New SAP C4C credentials: a new password re-authorises the connector.
    #[graphql(name = "sapC4c")]
    pub(crate) sap_c4c: Option<SapC4cCredentialsInput>,
    /// A new base-URL override (where the CRM's API, or Zoho's accounts server,
    /// is reached); an empty string removes the override. Another URL is another
    /// CRM account as far as crmsync can tell: the connector forgets its links and
    /// checkpoints, and its next run matches records to contacts by e-mail afresh.
    pub(crate) base_url: Option<String>,
}

impl UpdateConnectorInput {
    /// The credentials sent, taken out of the input.
    pub(crate) fn take_credentials(&mut self) -> Vec<SentCredentials> {
        sent(Sent {
            zoho: self.zoho.take(),
            pipedrive: self.pipedrive.take(),
            hubspot: self.hubspot.take(),
            salesforce: self.salesforce.take(),
            zendesk_sell: self.zendesk_sell.take(),
            sap_c4c: self.sap_c4c.take(),
        })
    }
}
