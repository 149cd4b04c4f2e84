//! The worker's side of a CRM kind, in the shape of
//! `crmsync_worker::crm::registry::kit(kind)`: how a connect form becomes
//! credentials and a client, and what the CRM's modules are. Until the
//! registry lands this shim builds it from today's code; at the merge it is
//! replaced by the registry and the suite calls that instead. Everything
//! kind-specific on the worker's side of the suite is here.

use std::collections::BTreeMap;
use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule};
use crmsync_worker::credentials::Credentials;
use crmsync_worker::crm::{ClientOptions, CrmClient, CrmError, CrmField, zoho};
use crmsync_worker::egress::HttpClient;
use crmsync_worker::metrics::Metrics;
use secrecy::{ExposeSecret, SecretString};

/// A connect form: the GraphQL credential input's field names and values.
pub type CredentialsForm = BTreeMap<String, SecretString>;

/// What connecting needs from the caller.
pub struct ConnectEnv<'a> {
    /// The CRM clients' HTTP client.
    pub http: &'a HttpClient,
    /// The CRM's address when it is not the vendor's (sandboxes, proxies).
    pub base_url: Option<&'a str>,
    /// Where the clients count their calls.
    pub metrics: &'a Metrics,
}

/// Credentials a form was exchanged for, and the fields they can read.
pub struct Connected {
    /// What the connector stores, sealed.
    pub credentials: Credentials,
    /// The fields of the module contacts are written to.
    pub fields: Vec<CrmField>,
}

/// Why a form could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A field is missing or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The form field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The CRM refused the form or failed.
    #[error(transparent)]
    Crm(#[from] CrmError),
}

/// One CRM kind, as the registry describes it.
#[async_trait::async_trait]
pub trait CrmKit: Send + Sync {
    /// Exchanges a connect form for credentials (a grant code for a refresh
    /// token, a token checked by reading the fields).
    async fn connect(
        &self,
        form: CredentialsForm,
        env: &ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError>;

    /// A client for stored credentials.
    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError>;

    /// True when the CRM converts leads into contacts (S10).
    fn converts_leads(&self) -> bool;

    /// The module platform contacts are written to.
    fn export_module(&self) -> CrmModule;

    /// Every module records can be imported from.
    fn import_modules(&self) -> Vec<CrmModule>;
}

/// The kit of a kind; `None` for a kind without one.
pub fn kit(kind: ConnectorKind) -> Option<&'static dyn CrmKit> {
    match kind {
        ConnectorKind::ZohoCrm => Some(&ZohoKit),
        ConnectorKind::Pipedrive => Some(&PipedriveKit),
        _ => None,
    }
}

fn field(form: &CredentialsForm, name: &'static str) -> Result<String, ConnectError> {
    form.get(name)
        .map(|v| v.expose_secret().trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(ConnectError::Invalid {
            field: name,
            message: "is required".into(),
        })
}

fn client(
    credentials: &Credentials,
    base_url: Option<&str>,
    http: HttpClient,
    options: &ClientOptions,
    metrics: &Metrics,
) -> Result<Arc<dyn CrmClient>, CrmError> {
    crmsync_worker::crm::client_with(credentials, base_url, http, options, metrics)
}

struct ZohoKit;

#[async_trait::async_trait]
impl CrmKit for ZohoKit {
    async fn connect(
        &self,
        form: CredentialsForm,
        env: &ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        let data_center = field(&form, "dataCenter")?;
        let accounts_url = match env.base_url {
            Some(url) => url.to_owned(),
            None => zoho::accounts_url(&data_center)
                .ok_or(ConnectError::Invalid {
                    field: "dataCenter",
                    message: format!("no Zoho data centre {data_center:?}"),
                })?
                .to_owned(),
        };
        let client_id = field(&form, "clientId")?;
        let client_secret = field(&form, "clientSecret")?;
        let grant = zoho::exchange_grant_code(
            env.http,
            &accounts_url,
            &client_id,
            &client_secret,
            &field(&form, "grantCode")?,
        )
        .await?;
        let credentials = Credentials::Zoho {
            client_id,
            client_secret: SecretString::from(client_secret),
            data_center,
            org_id: field(&form, "orgId").ok(),
            refresh_token: grant.refresh_token,
        };
        let fields = self
            .client(
                &credentials,
                env.base_url,
                env.http.clone(),
                &ClientOptions::default(),
                env.metrics,
            )?
            .fields(self.export_module())
            .await?;
        Ok(Connected {
            credentials,
            fields,
        })
    }

    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError> {
        client(credentials, base_url, http, options, metrics)
    }

    fn converts_leads(&self) -> bool {
        true
    }

    fn export_module(&self) -> CrmModule {
        CrmModule::Leads
    }

    fn import_modules(&self) -> Vec<CrmModule> {
        vec![CrmModule::Leads, CrmModule::Contacts]
    }
}

struct PipedriveKit;

#[async_trait::async_trait]
impl CrmKit for PipedriveKit {
    async fn connect(
        &self,
        form: CredentialsForm,
        env: &ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError> {
        let credentials = Credentials::Pipedrive {
            api_token: SecretString::from(field(&form, "apiToken")?),
            company_domain: field(&form, "companyDomain")?,
        };
        let fields = self
            .client(
                &credentials,
                env.base_url,
                env.http.clone(),
                &ClientOptions::default(),
                env.metrics,
            )?
            .fields(self.export_module())
            .await?;
        Ok(Connected {
            credentials,
            fields,
        })
    }

    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError> {
        client(credentials, base_url, http, options, metrics)
    }

    fn converts_leads(&self) -> bool {
        false
    }

    fn export_module(&self) -> CrmModule {
        CrmModule::Persons
    }

    fn import_modules(&self) -> Vec<CrmModule> {
        vec![CrmModule::Persons]
    }
}
