//! Zendesk Sell as a kind: its description, and how a personal access token
//! becomes stored credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::SecretString;

use super::ZendeskSellClient;
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::realtime::ChangePoll;
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// The tag of stored Zendesk Sell credentials.
pub const TAG: &str = "zendesk_sell";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::ZendeskSell,
    display_name: "Zendesk Sell",
    tag: TAG,
    credentials_input: "zendeskSell",
    credential_fields: &[CredentialField::secret("accessToken")],
    credentials_needed: "a ZENDESK_SELL connector needs a personal access token",
    modules: &[
        ModuleFlow {
            module: CrmModule::Leads,
            to_crm: true,
            imported_by_default: true,
        },
        ModuleFlow {
            module: CrmModule::Contacts,
            to_crm: false,
            imported_by_default: false,
        },
    ],
    joined_name: false,
    default_mappings: &[
        DefaultMapping::both("email", &["email"]),
        DefaultMapping::both("first_name", &["first_name"]),
        DefaultMapping::both("last_name", &["last_name"]),
        DefaultMapping::both("phone", &["phone"]),
        DefaultMapping::both("owner_email", &["owner_id"]),
        DefaultMapping::to_crm("platform_url", &["custom_fields.plezi_url"]),
        DefaultMapping::to_crm("source", &["custom_fields.source"]),
        DefaultMapping::to_crm("behaviour_score", &["custom_fields.score"]),
        DefaultMapping::to_crm("state", &["custom_fields.status"]),
    ],
    limits: Limits {
        editions: &[],
        workflows: false,
        pacing: "10 calls per second per token, kept by the client (Sell sends no rate-limit headers), within 36,000 an hour",
        per_second: Some(super::PER_SECOND),
    },
    converts_leads: true,
    deletions: Deletions::Reconcile,
    fields_settings: "Zendesk Sell (Settings > Customize > Fields > Leads)",
};

/// Zendesk Sell's kit.
#[derive(Debug)]
pub struct Kit;

#[async_trait::async_trait]
impl CrmKit for Kit {
    fn describe(&self) -> &'static Description {
        &DESCRIPTION
    }

    fn change_poll(&self) -> Option<ChangePoll> {
        Some(ChangePoll {
            every: std::time::Duration::from_secs(60),
            why: "Zendesk Sell has no webhooks for leads and contacts (its Firehose and Sync APIs are read by polling too): crmsync asks Sell what changed every minute",
        })
    }

    /// Checks the form, then reads the lead fields with the token, which proves it.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        let token = form
            .require(
                "accessToken",
                "create one in Zendesk Sell under Settings > Integrations > OAuth > Access Tokens",
            )?
            .clone();
        prove(self, credentials(token), env, "accessToken", |_| {
            "Zendesk Sell refused this access token".to_owned()
        })
        .await
    }

    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError> {
        Ok(Arc::new(
            ZendeskSellClient::new(credentials, base_url, http)?
                .with_options(options)
                .with_metrics(metrics.clone()),
        ))
    }

    fn refused_credentials(&self) -> String {
        "Zendesk Sell refused the access token: create a new one under Settings > Integrations > OAuth > Access Tokens and update the connector with it".to_owned()
    }
}

/// Zendesk Sell credentials, as [`Kit::connect`] stores them.
pub fn credentials(access_token: SecretString) -> Credentials {
    Credentials::new(TAG).with("accessToken", access_token)
}
