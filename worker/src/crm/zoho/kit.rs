//! Zoho CRM as a kind: its description, and how a self-client and a grant
//! code become stored credentials.

use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use secrecy::{ExposeSecret, SecretString};

use super::{SCOPE, ZohoClient, accounts_url, exchange_grant_code};
use crate::credentials::Credentials;
use crate::crm::kit::{
    ConnectEnv, ConnectError, Connected, CredentialField, CredentialsForm, CrmKit, DefaultMapping,
    Deletions, Description, Limits, ModuleFlow, prove,
};
use crate::crm::{ClientOptions, CrmClient, CrmError};
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// Zoho's data centres, as `dataCenter` takes them.
pub const DATA_CENTERS: &[&str] = &["com", "eu", "in", "com.au", "jp", "com.cn", "ca", "sa"];

/// Zoho editions and their concurrent-call limits per org (S11).
pub const EDITIONS: &[(&str, u32)] = &[
    ("FREE", 5),
    ("STANDARD", 10),
    ("PROFESSIONAL", 15),
    ("ENTERPRISE", 20),
    ("ULTIMATE", 25),
];

/// The tag of stored Zoho credentials.
pub const TAG: &str = "zoho";

static DESCRIPTION: Description = Description {
    kind: ConnectorKind::ZohoCrm,
    display_name: "Zoho CRM",
    tag: TAG,
    credentials_input: "zoho",
    credential_fields: &[
        CredentialField::text("clientId"),
        CredentialField::secret("clientSecret"),
        CredentialField::text("dataCenter"),
        CredentialField::text("orgId").optional(),
        CredentialField::secret("grantCode"),
    ],
    credentials_needed: "a ZOHO_CRM connector needs its self-client's id and secret, its data centre and a fresh grant code",
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
        DefaultMapping::both("first_name", &["First_Name"]),
        DefaultMapping::both("last_name", &["Last_Name"]),
        DefaultMapping::both("phone", &["Phone"]),
        DefaultMapping::both("company", &["Company"]),
        DefaultMapping::both("job_title", &["Designation", "Title"]),
        DefaultMapping::both("opted_out", &["Email_Opt_Out"]),
        DefaultMapping::both("owner_email", &["Owner"]),
        DefaultMapping::to_crm("platform_url", &["plezi_url"]),
        DefaultMapping::to_crm("source", &["source"]),
        DefaultMapping::to_crm("behaviour_score", &["score"]),
        DefaultMapping::to_crm("state", &["status"]),
    ],
    limits: Limits {
        editions: EDITIONS,
        workflows: true,
        pacing: "concurrent calls per org by edition, and a daily credit budget",
        per_second: None,
    },
    converts_leads: true,
    deletions: Deletions::DeletedFeed,
    fields_settings: "Zoho (Setup > Modules and Fields)",
};

/// Zoho CRM's kit.
#[derive(Debug)]
pub struct Kit;

#[async_trait::async_trait]
impl CrmKit for Kit {
    fn describe(&self) -> &'static Description {
        &DESCRIPTION
    }

    /// Checks the form before the grant code is spent, exchanges the code for
    /// a refresh token (Zoho's refusals name the form field at fault), then
    /// reads the Leads fields with it, which proves the grant's scope.
    /// `base_url` replaces the accounts server.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        let console = "copy it from the Self Client in the Zoho API console";
        let client_id = form
            .require("clientId", console)?
            .expose_secret()
            .trim()
            .to_owned();
        let client_secret = form.require("clientSecret", console)?.clone();
        let data_center = form
            .text("dataCenter")
            .unwrap_or_default()
            .trim_start_matches('.')
            .to_ascii_lowercase();
        if !DATA_CENTERS.contains(&data_center.as_str()) {
            return Err(ConnectError::invalid(
                "dataCenter",
                format!(
                    "must be one of {}: the end of the Zoho accounts address you sign in at (accounts.zoho.eu is eu)",
                    DATA_CENTERS.join(", ")
                ),
            ));
        }
        let org_id = match form.names().any(|n| n == "orgId") {
            false => None,
            true => {
                let org = form.text("orgId").unwrap_or_default();
                if org.is_empty() || org.len() > 30 || !org.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ConnectError::invalid(
                        "orgId",
                        "must be the org's numeric id (Zoho CRM: Setup > Company Details), or left out",
                    ));
                }
                Some(org.to_owned())
            }
        };
        let grant_code = form.require(
            "grantCode",
            &format!(
                "make one in the Zoho API console (Self Client > Generate Code) with scope {SCOPE}"
            ),
        )?;
        let accounts = env
            .base_url
            .or_else(|| accounts_url(&data_center))
            .ok_or_else(|| CrmError::Protocol(format!("no accounts server for {data_center}")))?;
        let grant = exchange_grant_code(
            env.http,
            accounts,
            &client_id,
            client_secret.expose_secret(),
            grant_code.expose_secret(),
        )
        .await
        .map_err(|e| match e {
            CrmError::Rejected {
                field: Some(field),
                message,
                ..
            } if matches!(field.as_str(), "grantCode" | "clientId" | "clientSecret") => {
                ConnectError::invalid(&field, message)
            }
            CrmError::Rejected { message, .. } => ConnectError::Invalid {
                field: None,
                message,
            },
            other => ConnectError::Crm(other),
        })?;
        let credentials = Credentials::new(TAG)
            .with("clientId", SecretString::from(client_id))
            .with("clientSecret", client_secret)
            .with("dataCenter", SecretString::from(data_center))
            .with_optional("orgId", org_id.map(SecretString::from))
            .with("refreshToken", grant.refresh_token);
        prove(self, credentials, env, "grantCode", |_| {
            format!(
                "Zoho exchanged the grant code but refused to read the Leads fields with it: make a new grant code with scope {SCOPE}"
            )
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
            ZohoClient::new(credentials, base_url, http)?
                .with_options(options)
                .with_metrics(metrics.clone()),
        ))
    }

    fn notifications(&self) -> Option<&'static dyn crate::crm::realtime::Notifications> {
        Some(&super::realtime::ZohoNotifications)
    }

    fn refused_credentials(&self) -> String {
        format!(
            "Zoho refused the connector's grant: the refresh token was revoked, the self-client deleted or its secret changed, or the grant lacks a scope. Make a new grant code in the Zoho API console (Self Client > Generate Code, scope {SCOPE}) and update the connector with it"
        )
    }
}

/// Zoho credentials from their parts, as [`Kit::connect`] stores them (for
/// tests and tools that hold a refresh token already).
pub fn credentials(
    client_id: &str,
    client_secret: &str,
    data_center: &str,
    org_id: Option<&str>,
    refresh_token: SecretString,
) -> Credentials {
    Credentials::new(TAG)
        .with("clientId", SecretString::from(client_id.to_owned()))
        .with("clientSecret", SecretString::from(client_secret.to_owned()))
        .with("dataCenter", SecretString::from(data_center.to_owned()))
        .with_optional("orgId", org_id.map(|o| SecretString::from(o.to_owned())))
        .with("refreshToken", refresh_token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::FieldType;
    use crate::platform::{self, tests};

    #[test]
    fn the_defaults_pass_the_mapping_rules() {
        let defaults = platform::default_mappings(&DESCRIPTION, &tests::leads_fields());
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
                "platform_url",
                "source",
                "behaviour_score",
                "state"
            ]
        );
        let validated =
            platform::validate_mappings(&tests::as_inputs(&defaults), &tests::leads_fields())
                .unwrap();
        assert_eq!(validated, defaults);
    }

    #[test]
    fn defaults_leave_out_fields_of_the_right_name_and_the_wrong_type() {
        let mut fields = tests::leads_fields();
        for f in &mut fields {
            match f.api_name.as_str() {
                "plezi_url" => f.field_type = FieldType::Integer,
                "Designation" => f.field_type = FieldType::MultiPicklist,
                "score" => f.read_only = true,
                _ => {}
            }
        }
        let defaults = platform::default_mappings(&DESCRIPTION, &fields);
        let names: Vec<_> = defaults.iter().map(|m| m.platform_field.as_str()).collect();
        for left_out in ["platform_url", "job_title", "behaviour_score"] {
            assert!(!names.contains(&left_out), "{left_out} in {names:?}");
        }
        assert!(platform::validate_mappings(&tests::as_inputs(&defaults), &fields).is_ok());
    }
}
