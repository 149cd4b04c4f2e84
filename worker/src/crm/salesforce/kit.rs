//! Salesforce as a kind: its description, and how a connected app's refresh
//! token, or a username and private key (JWT bearer flow), become stored
//! credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::{ExposeSecret, SecretString};

use super::{SalesforceClient, login_url, signing_key};
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::realtime::ChangePoll;
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// The tag of stored Salesforce credentials.
pub const TAG: &str = "salesforce";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::Salesforce,
    display_name: "Salesforce",
    tag: TAG,
    credentials_input: "salesforce",
    credential_fields: &[
        CredentialField::text("clientId"),
        CredentialField::secret("clientSecret").of("refreshToken"),
        CredentialField::secret("refreshToken").of("refreshToken"),
        CredentialField::text("username").of("jwtBearer"),
        CredentialField::secret("privateKeyPem").of("jwtBearer"),
        CredentialField::text("environment").optional(),
    ],
    credentials_needed: "a SALESFORCE connector needs its connected app's client id, and either the app's client secret and a refresh token, or a username and the private key whose certificate the app holds (JWT bearer flow)",
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
        DefaultMapping::both("email", &["Email"]),
        DefaultMapping::both("first_name", &["FirstName"]),
        DefaultMapping::both("last_name", &["LastName"]),
        DefaultMapping::both("phone", &["Phone"]),
        DefaultMapping::both("company", &["Company"]),
        DefaultMapping::both("job_title", &["Title"]),
        DefaultMapping::both("opted_out", &["HasOptedOutOfEmail"]),
        DefaultMapping::both("owner_email", &["OwnerId"]),
        DefaultMapping::to_crm("platform_url", &["Plezi_URL__c"]),
    ],
    limits: Limits {
        editions: &[],
        workflows: false,
        pacing: "the org's daily API request budget, read from every reply's Sforce-Limit-Info: a spent budget ends the run PARTIAL and the next resumes",
        per_second: None,
    },
    converts_leads: true,
    deletions: Deletions::DeletedFeed,
    fields_settings: "Salesforce (Setup > Object Manager > Lead > Fields & Relationships)",
};

/// Salesforce's kit.
#[derive(Debug)]
pub struct Kit;

/// Where a person finds a form field's value.
fn why(field: &str) -> String {
    match field {
        "clientId" => "copy the connected app's Consumer Key (Setup > App Manager > the app > View > Manage Consumer Details)",
        "clientSecret" => "copy the connected app's Consumer Secret (Setup > App Manager > the app > View > Manage Consumer Details), or give username and privateKeyPem for the JWT bearer flow",
        "refreshToken" => "authorise the connected app once (scopes api and refresh_token) and paste the refresh token it gave",
        "username" => "the Salesforce username the JWT bearer flow signs in as (its profile pre-authorised on the connected app)",
        "privateKeyPem" => "paste the RSA private key (PEM) whose certificate is uploaded to the connected app (Use digital signatures)",
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
            why: "Salesforce pushes changes through Change Data Capture (a streaming client held open) or Outbound Messages (set up in Setup by an admin), not through webhooks a connector can register: crmsync asks Salesforce what changed every minute",
        })
    }

    /// Checks the form (the client id, and either the refresh-token fields
    /// or the JWT bearer ones; the environment; the key's PEM), then reads
    /// the Lead fields with it, which proves it.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        DESCRIPTION.check_form(&form, why)?;
        let environment = form.text("environment").map(str::to_ascii_uppercase);
        login_url(environment.as_deref()).map_err(|e| ConnectError::invalid("environment", e))?;
        let value = |name: &str| form.secret(name).cloned().unwrap_or_default();
        let client_id = SecretString::from(form.text("clientId").unwrap_or_default().to_owned());
        let (credentials, field) = match form.secret("refreshToken") {
            Some(refresh_token) => (
                refresh_credentials(
                    client_id,
                    value("clientSecret"),
                    refresh_token.clone(),
                    environment.as_deref(),
                ),
                "refreshToken",
            ),
            None => {
                let pem = value("privateKeyPem");
                signing_key(pem.expose_secret())
                    .map_err(|e| ConnectError::invalid("privateKeyPem", e))?;
                let username = form.text("username").unwrap_or_default().to_owned();
                (
                    jwt_credentials(client_id, &username, pem, environment.as_deref()),
                    "privateKeyPem",
                )
            }
        };
        prove(self, credentials, env, field, |message| {
            format!("Salesforce refused it: {message}")
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
            SalesforceClient::new(credentials, base_url, http)?
                .with_options(options)
                .with_metrics(metrics.clone()),
        ))
    }

    fn refused_credentials(&self) -> String {
        "Salesforce refused the connector's credentials: the refresh token was revoked or expired, the connected app's secret changed, or (JWT bearer flow) the app's certificate was replaced or the user is no longer pre-authorised. Authorise the connected app again and update the connector with the new refresh token, or upload the certificate of the connector's private key to the app again".into()
    }
}

/// Credentials of a connected app's refresh token.
pub fn refresh_credentials(
    client_id: SecretString,
    client_secret: SecretString,
    refresh_token: SecretString,
    environment: Option<&str>,
) -> Credentials {
    Credentials::new(TAG)
        .with("clientId", client_id)
        .with("clientSecret", client_secret)
        .with("refreshToken", refresh_token)
        .with_optional(
            "environment",
            environment.map(|e| SecretString::from(e.to_owned())),
        )
}

/// Credentials of the JWT bearer flow: a username and the private key
/// whose certificate the connected app holds.
pub fn jwt_credentials(
    client_id: SecretString,
    username: &str,
    private_key_pem: SecretString,
    environment: Option<&str>,
) -> Credentials {
    Credentials::new(TAG)
        .with("clientId", client_id)
        .with("username", SecretString::from(username.to_owned()))
        .with("privateKeyPem", private_key_pem)
        .with_optional(
            "environment",
            environment.map(|e| SecretString::from(e.to_owned())),
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
            label: name.into(),
            field_type,
            mandatory: false,
            read_only: false,
            custom: false,
            options: None,
        }
    }

    #[test]
    fn the_defaults_map_salesforces_lead_fields_and_pass_the_rules() {
        let fields = vec![
            field("Email", FieldType::Email),
            field("FirstName", FieldType::Text),
            field("LastName", FieldType::Text),
            field("Phone", FieldType::Phone),
            field("Company", FieldType::Text),
            field("Title", FieldType::Text),
            field("HasOptedOutOfEmail", FieldType::Boolean),
            field("OwnerId", FieldType::User),
            CrmField {
                custom: true,
                ..field("Plezi_URL__c", FieldType::Url)
            },
        ];
        let defaults = platform::default_mappings(&DESCRIPTION, &fields);
        let names: Vec<_> = defaults.iter().map(|m| m.platform_field.as_str()).collect();
        assert_eq!(
            names,
            [
                "email",
                "first_name",
                "last_name",
                "phone",
                "company",
                "job_title",
                "opted_out",
                "owner_email",
                "platform_url"
            ]
        );
    }

    async fn refused_field(form: CredentialsForm) -> Option<String> {
        let http = crate::egress::Egress::new(true)
            .client(crate::egress::HttpOptions::default())
            .unwrap();
        let metrics = Metrics::new();
        let env = ConnectEnv {
            http: &http,
            base_url: Some("http://127.0.0.1:9"),
            metrics: &metrics,
        };
        match Kit.connect(form, env).await {
            Err(ConnectError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_form_needs_the_client_id_and_one_whole_way_of_signing_in() {
        let id = || CredentialsForm::new().with("clientId", Some("c"));
        assert_eq!(
            refused_field(CredentialsForm::new()).await.as_deref(),
            Some("clientId")
        );
        assert_eq!(refused_field(id()).await.as_deref(), Some("clientSecret"));
        assert_eq!(
            refused_field(id().with("username", Some("u")))
                .await
                .as_deref(),
            Some("privateKeyPem")
        );
        assert_eq!(
            refused_field(
                id().with("username", Some("u"))
                    .with("privateKeyPem", Some("not a key"))
            )
            .await
            .as_deref(),
            Some("privateKeyPem"),
            "a key that is no PEM is refused before any call"
        );
        assert_eq!(
            refused_field(
                id().with("clientSecret", Some("s"))
                    .with("refreshToken", Some("r"))
                    .with("environment", Some("staging"))
            )
            .await
            .as_deref(),
            Some("environment")
        );
        assert_eq!(
            refused_field(
                id().with("clientSecret", Some("s"))
                    .with("username", Some("u"))
            )
            .await
            .as_deref(),
            Some("username"),
            "two ways at once"
        );
    }
}
