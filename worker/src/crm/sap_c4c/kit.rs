//! SAP Sales Cloud (C4C) as a kind: its description, and how a technical
//! user's name and password become stored credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::{ExposeSecret, SecretString};

use super::SapC4cClient;
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::realtime::ChangePoll;
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// The tag of stored SAP C4C credentials.
pub const TAG: &str = "sap_c4c";

/// What a connector lacking its tenant's address is told.
pub(crate) const BASE_URL_NEEDED: &str = "a SAP_C4C connector needs its tenant's address as baseUrl, e.g. https://my123456.crm.ondemand.com";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::SapC4c,
    display_name: "SAP C4C",
    tag: TAG,
    credentials_input: "sapC4c",
    credential_fields: &[
        CredentialField::text("username"),
        CredentialField::secret("password"),
    ],
    credentials_needed: "a SAP_C4C connector needs the user name and password of a technical user of the tenant (and the tenant's address as baseUrl)",
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
        ModuleFlow {
            module: CrmModule::Customers,
            to_crm: false,
            imported_by_default: false,
        },
    ],
    joined_name: false,
    default_mappings: &[
        DefaultMapping::both("email", &["ContactEMail"]),
        DefaultMapping::both("first_name", &["ContactFirstName"]),
        DefaultMapping::both("last_name", &["ContactLastName"]),
        DefaultMapping::both("phone", &["ContactPhone"]),
        DefaultMapping::both("company", &["Company"]),
        DefaultMapping::both("opted_out", &["EmailOptOut_KUT"]),
        DefaultMapping::both("owner_email", &["OwnerPartyID"]),
        DefaultMapping::to_crm("platform_url", &["PleziURL_KUT"]),
    ],
    limits: Limits {
        editions: &[],
        workflows: false,
        pacing: "a few $batch calls in flight; the tenant's fair-use cap, when C4C says it is reached for today, ends the run PARTIAL and the next resumes",
        per_second: None,
    },
    converts_leads: true,
    deletions: Deletions::Reconcile,
    fields_settings: "SAP C4C (Adapt > Edit Master Layout > the lead's Add Fields, as a key user)",
};

/// SAP C4C's kit.
#[derive(Debug)]
pub struct Kit;

/// Where a person finds a form field's value.
fn why(field: &str) -> String {
    match field {
        "username" => "the user name of the tenant's technical user (Administrator > General Settings > Communication Arrangements, or a business user with access to leads)",
        "password" => "that user's password",
        _ => "give it",
    }
    .to_owned()
}

#[async_trait::async_trait]
impl CrmKit for Kit {
    fn describe(&self) -> &'static Description {
        &DESCRIPTION
    }

    fn change_poll(&self) -> Option<ChangePoll> {
        Some(ChangePoll {
            every: std::time::Duration::from_secs(60),
            why: "SAP C4C's event notifications are set up in its administration screens, not through the OData API a connector uses: crmsync asks C4C what changed every minute",
        })
    }

    /// Checks the form and the tenant's address, then reads the lead
    /// properties with the user, which proves it.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        DESCRIPTION.check_form(&form, why)?;
        if env.base_url.is_none_or(|b| b.trim().is_empty()) {
            return Err(ConnectError::invalid("baseUrl", BASE_URL_NEEDED));
        }
        let username = form.text("username").unwrap_or_default();
        let password = form.secret("password").cloned().unwrap_or_default();
        prove(
            self,
            credentials(username, password),
            env,
            "password",
            |message| format!("SAP C4C refused this user name and password: {message}"),
        )
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
            SapC4cClient::new(credentials, base_url, http)?
                .with_options(options)
                .with_metrics(metrics.clone()),
        ))
    }

    fn refused_credentials(&self) -> String {
        "SAP C4C refused the technical user's name and password: the password was changed or expired, or the user was locked. Set a new password for the user in SAP C4C and update the connector with it".into()
    }
}

/// Credentials of a technical user.
pub fn credentials(username: &str, password: SecretString) -> Credentials {
    Credentials::new(TAG)
        .with("username", SecretString::from(username.trim().to_owned()))
        .with(
            "password",
            SecretString::from(password.expose_secret().to_owned()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CrmField, FieldType};
    use crate::platform;

    fn field(name: &str, field_type: FieldType) -> CrmField {
        CrmField {
            api_name: name.into(),
            label: name.trim_end_matches("_KUT").into(),
            field_type,
            mandatory: false,
            read_only: false,
            custom: name.ends_with("_KUT"),
            options: None,
        }
    }

    #[test]
    fn the_defaults_map_c4cs_lead_properties() {
        let fields = vec![
            field("Name", FieldType::Text),
            field("ContactEMail", FieldType::Email),
            field("ContactFirstName", FieldType::Text),
            field("ContactLastName", FieldType::Text),
            field("ContactPhone", FieldType::Phone),
            field("Company", FieldType::Text),
            field("EmailOptOut_KUT", FieldType::Boolean),
            field("OwnerPartyID", FieldType::User),
            field("PleziURL_KUT", FieldType::Text),
        ];
        let defaults = platform::default_mappings(&DESCRIPTION, &fields);
        let names: Vec<_> = defaults.iter().map(|m| m.crm_field.as_str()).collect();
        assert_eq!(
            names,
            [
                "ContactEMail",
                "ContactFirstName",
                "ContactLastName",
                "ContactPhone",
                "Company",
                "EmailOptOut_KUT",
                "OwnerPartyID",
                "PleziURL_KUT"
            ]
        );
    }

    async fn refused_field(form: CredentialsForm, base_url: Option<&str>) -> Option<String> {
        let http = crate::egress::Egress::new(true)
            .client(crate::egress::HttpOptions::default())
            .unwrap();
        let metrics = Metrics::new();
        let env = ConnectEnv {
            http: &http,
            base_url,
            metrics: &metrics,
        };
        match Kit.connect(form, env).await {
            Err(ConnectError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_form_needs_the_user_its_password_and_the_tenants_address() {
        let local = Some("http://127.0.0.1:9");
        assert_eq!(
            refused_field(CredentialsForm::new(), local)
                .await
                .as_deref(),
            Some("username")
        );
        let user = || CredentialsForm::new().with("username", Some("TECH_USER"));
        assert_eq!(
            refused_field(user(), local).await.as_deref(),
            Some("password")
        );
        assert_eq!(
            refused_field(user().with("password", Some("p")), None)
                .await
                .as_deref(),
            Some("baseUrl")
        );
    }
}
