//! HubSpot as a kind: its description, and how a private app's token or an
//! OAuth app's refresh token becomes stored credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::SecretString;

use super::{HubspotClient, SCOPES};
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// The tag of stored HubSpot credentials.
pub const TAG: &str = "hubspot";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::Hubspot,
    display_name: "HubSpot",
    tag: TAG,
    credentials_input: "hubspot",
    credential_fields: &[
        CredentialField::secret("accessToken").of("privateApp"),
        CredentialField::text("clientId").of("oauthApp"),
        CredentialField::secret("clientSecret").of("oauthApp"),
        CredentialField::secret("refreshToken").of("oauthApp"),
        CredentialField::text("appId").of("oauthApp").optional(),
        CredentialField::secret("developerApiKey")
            .of("oauthApp")
            .optional(),
    ],
    credentials_needed: "a HUBSPOT connector needs a private app's access token, or an OAuth app's client id, client secret and refresh token",
    modules: &[ModuleFlow {
        module: CrmModule::Contacts,
        to_crm: true,
        imported_by_default: true,
    }],
    joined_name: false,
    default_mappings: &[
        DefaultMapping::both("email", &["email"]),
        DefaultMapping::both("first_name", &["firstname"]),
        DefaultMapping::both("last_name", &["lastname"]),
        DefaultMapping::both("phone", &["phone"]),
        DefaultMapping::both("company", &["company"]),
        DefaultMapping::both("job_title", &["jobtitle"]),
        DefaultMapping::both("opted_out", &["hs_email_optout"]),
        DefaultMapping::both("owner_email", &["hubspot_owner_id"]),
        DefaultMapping::both("lifecycle", &["lifecyclestage"]),
        DefaultMapping::to_crm("platform_url", &["plezi_url"]),
        DefaultMapping::to_crm("source", &["source"]),
        DefaultMapping::to_crm("behaviour_score", &["score"]),
        DefaultMapping::to_crm("state", &["status"]),
    ],
    limits: Limits {
        editions: &[],
        workflows: false,
        pacing: "a rolling 10-second window under the account's limit (learned from its rate-limit headers), 5 searches a second, and a daily budget",
        per_second: None,
    },
    converts_leads: false,
    deletions: Deletions::ArchivedListing,
    fields_settings: "HubSpot (Settings > Data Management > Properties > Contact properties)",
};

/// HubSpot's kit.
#[derive(Debug)]
pub struct Kit;

#[async_trait::async_trait]
impl CrmKit for Kit {
    fn describe(&self) -> &'static Description {
        &DESCRIPTION
    }

    /// Checks the form (a private app's token, or all three of an OAuth
    /// app's fields), then reads the contact properties with it, which
    /// proves it (and, for an OAuth app, exchanges the refresh token once).
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        DESCRIPTION.check_form(&form, |field| match field {
            "accessToken" => "copy a private app's access token from HubSpot (Settings > Integrations > Private Apps), or give an OAuth app's clientId, clientSecret and refreshToken".to_owned(),
            "appId" | "developerApiKey" => "real time needs both the OAuth app's id and its developer account's API key".to_owned(),
            _ => "an OAuth app needs its client id, client secret and a refresh token from its install".to_owned(),
        })?;
        let value = |name: &str| form.secret(name).cloned().unwrap_or_default();
        let credentials = match form.secret("accessToken") {
            Some(token) => private_app_credentials(token.clone()),
            None => with_webhook_app(
                oauth_credentials(
                    value("clientId"),
                    value("clientSecret"),
                    value("refreshToken"),
                ),
                form.secret("appId").cloned(),
                form.secret("developerApiKey").cloned(),
            ),
        };
        // Real time needs the app's id and the developer key together.
        match (form.secret("appId"), form.secret("developerApiKey")) {
            (Some(_), None) => {
                return Err(ConnectError::invalid(
                    "developerApiKey",
                    "give the developer account's API key with the app id (HubSpot developer account > Apps > API key), or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConnectError::invalid(
                    "appId",
                    "give the OAuth app's id (the app's page in the developer account) with the developer API key, or neither",
                ));
            }
            _ => {}
        }
        let field = if credentials.secret("accessToken").is_none() {
            "refreshToken"
        } else {
            "accessToken"
        };
        prove(self, credentials, env, field, |message| {
            format!("HubSpot refused it: {message}; the token needs the scopes {SCOPES}")
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
            HubspotClient::new(credentials, base_url, http)?
                .with_options(options)
                .with_metrics(metrics.clone()),
        ))
    }

    fn notifications(&self) -> Option<&'static dyn crate::crm::realtime::Notifications> {
        Some(&super::realtime::HubspotNotifications)
    }

    fn refused_credentials(&self) -> String {
        format!(
            "HubSpot refused the connector's token: the private app's token was rotated or the app deleted, or the OAuth app was uninstalled. Copy a new access token (Settings > Integrations > Private Apps, scopes {SCOPES}) or install the OAuth app again, and update the connector with it"
        )
    }
}

/// Credentials of a private app's access token.
pub fn private_app_credentials(access_token: SecretString) -> Credentials {
    Credentials::new(TAG).with("accessToken", access_token)
}

/// Credentials of an OAuth app's refresh token.
pub fn oauth_credentials(
    client_id: SecretString,
    client_secret: SecretString,
    refresh_token: SecretString,
) -> Credentials {
    Credentials::new(TAG)
        .with("clientId", client_id)
        .with("clientSecret", client_secret)
        .with("refreshToken", refresh_token)
}

/// OAuth credentials with the app whose webhooks real time manages, when
/// both its id and the developer account's API key are given.
pub fn with_webhook_app(
    credentials: Credentials,
    app_id: Option<SecretString>,
    developer_api_key: Option<SecretString>,
) -> Credentials {
    match (app_id, developer_api_key) {
        (Some(id), Some(key)) => credentials.with("appId", id).with("developerApiKey", key),
        _ => credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CrmField, FieldType, PicklistOption};
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
    fn the_defaults_map_hubspots_usual_properties_and_pass_the_rules() {
        let mut stage = field("lifecyclestage", FieldType::Picklist);
        stage.options = Some(vec![PicklistOption {
            id: "customer".into(),
            label: "Customer".into(),
        }]);
        let fields = vec![
            field("email", FieldType::Email),
            field("firstname", FieldType::Text),
            field("lastname", FieldType::Text),
            field("phone", FieldType::Phone),
            field("hs_email_optout", FieldType::Boolean),
            field("hubspot_owner_id", FieldType::User),
            stage,
            CrmField {
                custom: true,
                ..field("plezi_url", FieldType::Text)
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
                "opted_out",
                "owner_email",
                "lifecycle",
                "platform_url"
            ]
        );
    }

    #[tokio::test]
    async fn a_form_needs_a_token_or_the_whole_oauth_app() {
        let http = crate::egress::Egress::new(true)
            .client(crate::egress::HttpOptions::default())
            .unwrap();
        let metrics = Metrics::new();
        let env = ConnectEnv {
            http: &http,
            base_url: Some("http://127.0.0.1:9"),
            metrics: &metrics,
        };
        let none = Kit.connect(CredentialsForm::new(), env).await.unwrap_err();
        assert!(
            matches!(&none, ConnectError::Invalid { field: Some(f), .. } if f == "accessToken")
        );
        let partial = CredentialsForm::new()
            .with("clientId", Some("c"))
            .with("refreshToken", Some("r"));
        let error = Kit.connect(partial, env).await.unwrap_err();
        assert!(
            matches!(&error, ConnectError::Invalid { field: Some(f), .. } if f == "clientSecret"),
            "{error:?}"
        );
        let oauth = || {
            CredentialsForm::new()
                .with("clientId", Some("c"))
                .with("clientSecret", Some("s"))
                .with("refreshToken", Some("r"))
        };
        let no_key = Kit
            .connect(oauth().with("appId", Some("123")), env)
            .await
            .unwrap_err();
        assert!(
            matches!(&no_key, ConnectError::Invalid { field: Some(f), .. } if f == "developerApiKey"),
            "{no_key:?}"
        );
        let no_app = Kit
            .connect(oauth().with("developerApiKey", Some("k")), env)
            .await
            .unwrap_err();
        assert!(
            matches!(&no_app, ConnectError::Invalid { field: Some(f), .. } if f == "appId"),
            "{no_app:?}"
        );
    }

    #[test]
    fn the_webhook_app_is_kept_only_with_both_its_id_and_key() {
        let base = || {
            oauth_credentials(
                SecretString::from("c"),
                SecretString::from("s"),
                SecretString::from("r"),
            )
        };
        let both = with_webhook_app(
            base(),
            Some(SecretString::from("123")),
            Some(SecretString::from("k")),
        );
        assert!(both.secret("appId").is_some() && both.secret("developerApiKey").is_some());
        let half = with_webhook_app(base(), Some(SecretString::from("123")), None);
        assert!(half.secret("appId").is_none());
    }
}
