//! Pipedrive as a kind: its description, and how an API token becomes
//! stored credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::SecretString;

use super::PipedriveClient;
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// The tag of stored Pipedrive credentials.
pub const TAG: &str = "pipedrive";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::Pipedrive,
    display_name: "Pipedrive",
    tag: TAG,
    credentials_input: "pipedrive",
    credential_fields: &[
        CredentialField::secret("apiToken"),
        CredentialField::text("companyDomain"),
    ],
    credentials_needed: "a PIPEDRIVE connector needs its API token and company domain",
    modules: &[ModuleFlow {
        module: CrmModule::Persons,
        to_crm: true,
        imported_by_default: true,
    }],
    joined_name: true,
    default_mappings: &[
        DefaultMapping::both("email", &["email"]),
        DefaultMapping::both("first_name", &["first_name"]),
        DefaultMapping::both("last_name", &["last_name"]),
        DefaultMapping::both("phone", &["phone"]),
        DefaultMapping::both("owner_email", &["owner_id"]),
        DefaultMapping::to_crm("platform_url", &["plezi_url"]),
        DefaultMapping::to_crm("source", &["source"]),
        DefaultMapping::to_crm("behaviour_score", &["score"]),
        DefaultMapping::to_crm("state", &["status"]),
    ],
    limits: Limits {
        editions: &[],
        workflows: false,
        pacing: "a rolling window under the token's burst limit (learned from its rate-limit headers), a lower one for search, and a daily token budget",
        per_second: None,
    },
    converts_leads: false,
    deletions: Deletions::ChangeFeed,
    fields_settings: "Pipedrive (Company settings > Data fields > Person)",
};

/// Pipedrive's kit.
#[derive(Debug)]
pub struct Kit;

#[async_trait::async_trait]
impl CrmKit for Kit {
    fn describe(&self) -> &'static Description {
        &DESCRIPTION
    }

    /// Checks the form, then reads the person fields with the token, which
    /// proves it.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        let api_token = form
            .require(
                "apiToken",
                "copy it from Settings > Personal preferences > API in Pipedrive",
            )?
            .clone();
        let domain = form.text("companyDomain").unwrap_or_default();
        if domain.len() > 63
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            || domain.is_empty()
        {
            return Err(ConnectError::invalid(
                "companyDomain",
                "must be the company's subdomain, e.g. \"acme\" for acme.pipedrive.com",
            ));
        }
        prove(
            self,
            credentials(api_token, domain),
            env,
            "apiToken",
            |_| "Pipedrive refused this API token for this company".to_owned(),
        )
        .await
    }

    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        _options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError> {
        Ok(Arc::new(
            PipedriveClient::new(credentials, base_url, http)?.with_metrics(metrics.clone()),
        ))
    }

    fn notifications(&self) -> Option<&'static dyn crate::crm::realtime::Notifications> {
        Some(&super::realtime::PipedriveNotifications)
    }

    fn refused_credentials(&self) -> String {
        "Pipedrive refused the API token: copy a valid one from Settings > Personal preferences > API in Pipedrive, check the company domain, and update the connector with them".to_owned()
    }
}

/// Pipedrive credentials from their parts, as [`Kit::connect`] stores them.
pub fn credentials(api_token: SecretString, company_domain: &str) -> Credentials {
    Credentials::new(TAG).with("apiToken", api_token).with(
        "companyDomain",
        SecretString::from(company_domain.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CrmField, FieldType};
    use crate::platform::{self, tests};
    use crmsync_entity::enums::MappingDirection;

    #[test]
    fn defaults_map_what_the_crm_has_and_lock_the_mandatory_fields() {
        let mut crm_fields = tests::fields();
        crm_fields.push(CrmField {
            label: "plezi_url".into(),
            ..tests::crm("0123456789abcdef0123456789abcdef01234567", FieldType::Text)
        });
        let defaults = platform::default_mappings(&DESCRIPTION, &crm_fields);
        let names: Vec<_> = defaults.iter().map(|m| m.platform_field.as_str()).collect();
        assert_eq!(
            names,
            [
                "email",
                "first_name",
                "last_name",
                "platform_url",
                "behaviour_score"
            ]
        );
        assert!(defaults[..3].iter().all(|m| m.locked));
        assert_eq!(
            defaults[3].crm_field,
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(defaults[3].direction, MappingDirection::ToCrm);
    }
}
