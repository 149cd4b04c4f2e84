//! What a CRM kind is, for everything outside its folder. Each CRM folder
//! (`crm/<kind>/kit.rs`) describes its CRM once with a [`Description`] and
//! implements [`CrmKit`] for the steps only it can take (turning a credential
//! form into working credentials, building its client). The engine, the
//! mapping rules, the API and the binary ask the kit found through
//! [`super::registry`]; none of them matches on the kind.

use std::collections::BTreeMap;
use std::sync::Arc;

use crmsync_entity::enums::{ConnectorKind, CrmModule, MappingDirection};
use secrecy::{ExposeSecret, SecretString};

use super::{ClientOptions, CrmClient, CrmError, CrmField};
use crate::credentials::Credentials;
use crate::egress::HttpClient;
use crate::metrics::Metrics;

/// Everything about a CRM kind that is data, not behaviour.
#[derive(Debug)]
pub struct Description {
    /// The kind it describes.
    pub kind: ConnectorKind,
    /// The CRM's name as people write it: `Acme CRM`.
    pub display_name: &'static str,
    /// A short lower-case tag: the `crm` label of metrics and the tag of
    /// stored credentials. Never changes once credentials are stored with it.
    pub tag: &'static str,
    /// The field of `createConnector`'s and `updateConnector`'s input that
    /// carries this CRM's credentials (`input.<credentials_input>`).
    pub credentials_input: &'static str,
    /// The fields of that input.
    pub credential_fields: &'static [CredentialField],
    /// What a connector of this kind needs when its credentials are missing,
    /// in words a person can act on.
    pub credentials_needed: &'static str,
    /// The modules that hold people, and which way each flows. Exactly one
    /// module flows to the CRM: platform contacts are written there.
    pub modules: &'static [ModuleFlow],
    /// True when the CRM keeps a person's name in one field (F5): first and
    /// last names travel together as one value.
    pub joined_name: bool,
    /// Mappings a new connector starts with, where the CRM has such fields.
    pub default_mappings: &'static [DefaultMapping],
    /// How hard the account may be driven, and what a connector may set about it.
    pub limits: Limits,
    /// True when the CRM converts records of one module into another (leads
    /// into contacts, S10): converted records are owned by sales, and the
    /// engine asks the client's `convert_lead` to convert a client's lead.
    /// A CRM whose API cannot convert answers that call with a
    /// rejection saying who converts the lead and where.
    pub converts_leads: bool,
    /// How records deleted in the CRM are found.
    pub deletions: Deletions,
    /// Where in the CRM a person creates or changes fields, for messages:
    /// `Settings > Data fields`.
    pub fields_settings: &'static str,
}

/// A field of a CRM's credential form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialField {
    /// The name in the GraphQL input and in the form (`apiToken`).
    pub name: &'static str,
    /// True for secrets (tokens, client secrets, grant codes).
    pub secret: bool,
    /// False for fields that may be left out. A field of an alternative is
    /// required when a form takes that alternative.
    pub required: bool,
    /// The way of connecting the field belongs to, when a CRM offers several
    /// (`privateApp`, `oauthApp`): a form fills the fields of exactly one.
    /// `None`: a field of every form.
    pub alternative: Option<&'static str>,
}

/// A module and which way its records flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleFlow {
    /// The module.
    pub module: CrmModule,
    /// True for the module platform contacts are written to (both ways);
    /// false for a module read into the platform only (owned by sales).
    pub to_crm: bool,
    /// Imported by a new connector unless its settings say otherwise.
    pub imported_by_default: bool,
}

/// A default mapping: the platform field, the CRM fields it goes to (by api
/// name or label, case-insensitively, the first one the CRM has), and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultMapping {
    /// The platform field.
    pub platform_field: &'static str,
    /// Candidate CRM fields, in order of preference.
    pub crm_fields: &'static [&'static str],
    /// Which way values flow.
    pub direction: MappingDirection,
}

/// A CRM's limits and the connector settings that tune them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The account's editions (the `crmEdition` setting) and how many calls
    /// each lets run at once; empty when the CRM has no such setting.
    pub editions: &'static [(&'static str, u32)],
    /// True when the CRM can run its workflow rules on our writes (the
    /// `runWorkflows` setting).
    pub workflows: bool,
    /// What paces calls besides the concurrency limit, in words (`crmKinds`
    /// shows it): `a rolling window under the token's burst limit`.
    pub pacing: &'static str,
    /// The requests per second the client keeps to, for a CRM that
    /// documents such a limit and sends no headers to learn it from; a
    /// connector whose account has a raised limit sets its own
    /// (`maxRequestsPerSecond`). `None`: not paced per second.
    pub per_second: Option<u32>,
}

impl DefaultMapping {
    /// A mapping both ways.
    pub const fn both(platform_field: &'static str, crm_fields: &'static [&'static str]) -> Self {
        Self {
            platform_field,
            crm_fields,
            direction: MappingDirection::Both,
        }
    }

    /// A mapping from the platform to the CRM only (a computed field).
    pub const fn to_crm(platform_field: &'static str, crm_fields: &'static [&'static str]) -> Self {
        Self {
            platform_field,
            crm_fields,
            direction: MappingDirection::ToCrm,
        }
    }
}

impl CredentialField {
    /// A required field that is not secret (an id, a domain).
    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            secret: false,
            required: true,
            alternative: None,
        }
    }

    /// A required secret (a token, a client secret, a grant code).
    pub const fn secret(name: &'static str) -> Self {
        Self {
            name,
            secret: true,
            required: true,
            alternative: None,
        }
    }

    /// The field, left out when a person has no value for it.
    pub const fn optional(self) -> Self {
        Self {
            required: false,
            ..self
        }
    }

    /// The field, one of the way of connecting named `alternative`.
    pub const fn of(self, alternative: &'static str) -> Self {
        Self {
            alternative: Some(alternative),
            ..self
        }
    }

    /// True when every form must carry the field (it belongs to no alternative).
    pub const fn always_required(&self) -> bool {
        self.required && self.alternative.is_none()
    }
}

/// How a CRM's deletions are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletions {
    /// The CRM lists deleted records since a time (a deleted-records API).
    DeletedFeed,
    /// The CRM's listing returns deleted (archived) records when asked.
    ArchivedListing,
    /// The CRM's change feed marks deleted records.
    ChangeFeed,
    /// No feed: a FULL run compares its links with the ids the listing returned.
    Reconcile,
}

impl Description {
    /// The module platform contacts are written to.
    pub fn export_module(&self) -> CrmModule {
        self.modules
            .iter()
            .find(|m| m.to_crm)
            .map(|m| m.module)
            .expect("a CRM kind writes to one module")
    }

    /// The modules a new connector imports.
    pub fn default_import_modules(&self) -> Vec<CrmModule> {
        self.modules
            .iter()
            .filter(|m| m.imported_by_default)
            .map(|m| m.module)
            .collect()
    }

    /// True when `module` is one of this CRM's modules.
    pub fn has_module(&self, module: CrmModule) -> bool {
        self.modules.iter().any(|m| m.module == module)
    }

    /// True for a module read into the platform only (owned by sales).
    pub fn one_way(&self, module: CrmModule) -> bool {
        self.modules.iter().any(|m| m.module == module && !m.to_crm)
    }

    /// Checks that a form fills the fields every form needs and, where the
    /// CRM offers several ways of connecting, one of them (the first one a
    /// field is filled of) with all its required fields. `why` says, per
    /// field, where a person finds its value.
    pub fn check_form(
        &self,
        form: &CredentialsForm,
        why: impl Fn(&str) -> String,
    ) -> Result<(), ConnectError> {
        let filled = |f: &CredentialField| form.secret(f.name).is_some();
        for f in self
            .credential_fields
            .iter()
            .filter(|f| f.always_required())
        {
            form.require(f.name, &why(f.name))?;
        }
        let mut alternatives: Vec<&str> = Vec::new();
        for f in self.credential_fields {
            if let Some(a) = f.alternative
                && !alternatives.contains(&a)
            {
                alternatives.push(a);
            }
        }
        let Some(first) = alternatives.first() else {
            return Ok(());
        };
        let chosen = self
            .credential_fields
            .iter()
            .find(|f| f.alternative.is_some() && filled(f))
            .and_then(|f| f.alternative)
            .unwrap_or(first);
        // A form of two ways at once is refused rather than half ignored.
        if let Some(other) = self
            .credential_fields
            .iter()
            .find(|f| f.alternative.is_some_and(|a| a != chosen) && filled(f))
        {
            return Err(ConnectError::invalid(
                other.name,
                format!(
                    "give either {} or {}, not fields of both",
                    self.alternative_fields(Some(chosen)),
                    self.alternative_fields(other.alternative)
                ),
            ));
        }
        for f in self
            .credential_fields
            .iter()
            .filter(|f| f.alternative == Some(chosen) && f.required)
        {
            form.require(f.name, &why(f.name))?;
        }
        Ok(())
    }

    /// The names of an alternative's fields, for messages: `clientId, clientSecret`.
    fn alternative_fields(&self, alternative: Option<&str>) -> String {
        self.credential_fields
            .iter()
            .filter(|f| f.alternative == alternative)
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The names of the modules, for messages: `LEADS, CONTACTS`.
    pub fn module_names(&self) -> String {
        self.modules
            .iter()
            .map(|m| m.module.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A credential form as a person filled it in: field name -> value, every
/// value kept as a secret. Built by the API from its input type.
#[derive(Default)]
pub struct CredentialsForm {
    values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for CredentialsForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsForm")
            .field("fields", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialsForm {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// The form with `name` set, unless `value` is `None`.
    pub fn with(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
        if let Some(value) = value {
            self.values
                .insert(name.to_owned(), SecretString::from(value.into()));
        }
        self
    }

    /// The form with the secret `name` set.
    pub fn with_secret(mut self, name: &str, value: SecretString) -> Self {
        self.values.insert(name.to_owned(), value);
        self
    }

    /// The value of `name`, trimmed; `None` when missing or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.expose_secret().trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as sent, when it is not blank.
    pub fn secret(&self, name: &str) -> Option<&SecretString> {
        self.values
            .get(name)
            .filter(|v| !v.expose_secret().trim().is_empty())
    }

    /// The value of `name`, or an error naming the field and `why`.
    pub fn require(&self, name: &str, why: &str) -> Result<&SecretString, ConnectError> {
        self.secret(name)
            .ok_or_else(|| ConnectError::invalid(name, format!("must not be empty: {why}")))
    }

    /// The names filled in.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// The last step of every kit's `connect`: reads the export module's fields
/// with `credentials`, which proves them. Credentials the CRM refuses are
/// an invalid `field`, in the words `refused` makes of the CRM's message.
pub async fn prove(
    kit: &dyn CrmKit,
    credentials: Credentials,
    env: ConnectEnv<'_>,
    field: &str,
    refused: impl FnOnce(&str) -> String + Send,
) -> Result<Connected, ConnectError> {
    let client = kit.client(
        &credentials,
        env.base_url,
        env.http.clone(),
        &ClientOptions::default(),
        env.metrics,
    )?;
    match client.fields(kit.describe().export_module()).await {
        Ok(fields) => Ok(Connected {
            credentials,
            fields,
        }),
        Err(CrmError::Unauthorized(message)) => {
            Err(ConnectError::invalid(field, refused(&message)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Where a connect step runs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectEnv<'a> {
    /// The outbound HTTP client.
    pub http: &'a HttpClient,
    /// The connector's base-URL override (sandbox CRMs, proxies).
    pub base_url: Option<&'a str>,
    /// Where the CRM calls are counted.
    pub metrics: &'a Metrics,
}

/// Credentials that work, and the fields of the module contacts are written
/// to (read with them, which proves them and gives the default mappings).
#[derive(Debug)]
pub struct Connected {
    /// What is sealed and stored.
    pub credentials: Credentials,
    /// The export module's fields.
    pub fields: Vec<CrmField>,
}

/// Why a credential form did not connect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    /// A person must change what they sent: `field` names the form's field
    /// at fault (`None`: the form as a whole).
    #[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Invalid {
        /// The form's field, when one is at fault.
        field: Option<String>,
        /// What to do, in the CRM's own terms.
        message: String,
    },
    /// The CRM could not be asked (unavailable, rate limited, ...).
    #[error(transparent)]
    Crm(#[from] CrmError),
}

impl ConnectError {
    /// A fault in the form's field `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// A CRM kind: its description and the steps only its folder can take.
#[async_trait::async_trait]
pub trait CrmKit: Send + Sync + std::fmt::Debug + 'static {
    /// The CRM's description.
    fn describe(&self) -> &'static Description;

    /// Checks a credential form (everything a person can fix is checked
    /// before a single-use grant is spent), exchanges what needs exchanging,
    /// and reads the export module's fields with the result.
    async fn connect(
        &self,
        form: CredentialsForm,
        env: ConnectEnv<'_>,
    ) -> Result<Connected, ConnectError>;

    /// The client for stored credentials; `base_url` overrides the CRM's address.
    fn client(
        &self,
        credentials: &Credentials,
        base_url: Option<&str>,
        http: HttpClient,
        options: &ClientOptions,
        metrics: &Metrics,
    ) -> Result<Arc<dyn CrmClient>, CrmError>;

    /// What a connection test says when the CRM refuses the stored
    /// credentials: how to make new ones, in the terms of the CRM's console.
    fn refused_credentials(&self) -> String;

    /// How inbound change notifications of this CRM are verified and read
    /// (real time); `None` where the CRM offers none usable by our app.
    fn notifications(&self) -> Option<&'static dyn super::realtime::Notifications> {
        None
    }

    /// Real time by looking for changes, for a CRM without notifications
    /// usable by our app (`notifications` is `None`); `None`: real time is
    /// unsupported and the CRM is polled on the schedule only.
    fn change_poll(&self) -> Option<super::realtime::ChangePoll> {
        None
    }
}

/// The stored credential named `name`, or the error a client reports when
/// credentials of its CRM lack it (they were sealed by another version or
/// another CRM).
pub fn stored<'a>(
    credentials: &'a Credentials,
    kit: &Description,
    name: &str,
) -> Result<&'a SecretString, CrmError> {
    if credentials.tag() != kit.tag {
        return Err(CrmError::Protocol(format!(
            "{} client given credentials of another CRM ({})",
            kit.display_name,
            credentials.tag()
        )));
    }
    credentials.secret(name).ok_or_else(|| {
        CrmError::Unauthorized(format!(
            "the stored {} credentials lack {name}: update the connector's credentials",
            kit.display_name
        ))
    })
}

/// Some kind, for tests of a description made up for the test: which one
/// does not matter to them.
#[cfg(test)]
pub(crate) fn any_kind() -> ConnectorKind {
    use sea_orm::Iterable;
    ConnectorKind::iter().next().expect("the enum has values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_keeps_values_as_secrets_and_names_a_missing_field() {
        let form = CredentialsForm::new()
            .with("token", Some(" tok-1 "))
            .with("blank", Some("  "))
            .with("absent", None::<String>);
        assert_eq!(form.text("token"), Some("tok-1"));
        assert_eq!(form.text("blank"), None);
        assert!(form.secret("blank").is_none());
        assert_eq!(form.names().collect::<Vec<_>>(), ["blank", "token"]);
        assert!(!format!("{form:?}").contains("tok-1"));
        let error = form
            .require("blank", "copy it from the console")
            .unwrap_err();
        assert_eq!(
            error,
            ConnectError::invalid("blank", "must not be empty: copy it from the console")
        );
        assert_eq!(
            error.to_string(),
            "blank: must not be empty: copy it from the console"
        );
    }

    fn two_modules() -> Description {
        Description {
            kind: any_kind(),
            display_name: "Two Modules",
            tag: "two",
            credentials_input: "two",
            credential_fields: &[],
            credentials_needed: "",
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
            default_mappings: &[],
            limits: Limits {
                editions: &[],
                workflows: false,
                pacing: "",
                per_second: None,
            },
            converts_leads: true,
            deletions: Deletions::DeletedFeed,
            fields_settings: "",
        }
    }

    #[test]
    fn a_description_answers_which_module_flows_which_way() {
        assert_eq!(two_modules().export_module(), CrmModule::Leads);
        assert_eq!(two_modules().default_import_modules(), [CrmModule::Leads]);
        assert!(two_modules().one_way(CrmModule::Contacts));
        assert!(!two_modules().one_way(CrmModule::Leads));
        assert!(!two_modules().has_module(CrmModule::Persons));
        assert_eq!(two_modules().module_names(), "LEADS, CONTACTS");
    }

    #[test]
    fn a_form_fills_the_common_fields_and_one_alternative_whole() {
        static FIELDS: [CredentialField; 4] = [
            CredentialField::text("region"),
            CredentialField::secret("token").of("app"),
            CredentialField::text("clientId").of("oauth"),
            CredentialField::secret("secret").of("oauth"),
        ];
        let mut d = two_modules();
        d.credential_fields = &FIELDS;
        let why = |f: &str| format!("give {f}");
        let field_of = |form: CredentialsForm| match d.check_form(&form, why) {
            Ok(()) => None,
            Err(ConnectError::Invalid { field, .. }) => field,
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(field_of(CredentialsForm::new()).as_deref(), Some("region"));
        let region = || CredentialsForm::new().with("region", Some("eu"));
        assert_eq!(field_of(region()).as_deref(), Some("token"));
        assert_eq!(field_of(region().with("token", Some("t"))), None);
        assert_eq!(
            field_of(region().with("clientId", Some("c"))).as_deref(),
            Some("secret")
        );
        assert_eq!(
            field_of(
                region()
                    .with("clientId", Some("c"))
                    .with("secret", Some("s"))
            ),
            None
        );
        assert_eq!(
            field_of(region().with("token", Some("t")).with("secret", Some("s"))).as_deref(),
            Some("secret"),
            "two ways at once"
        );
        assert!(!d.credential_fields[1].always_required());
        assert!(d.credential_fields[0].always_required());
    }

    #[test]
    fn stored_credentials_of_another_crm_or_lacking_a_value_are_refused() {
        let mine = Credentials::new("two").with("token", SecretString::from("t".to_owned()));
        assert_eq!(
            stored(&mine, &two_modules(), "token")
                .unwrap()
                .expose_secret(),
            "t"
        );
        assert!(matches!(
            stored(&mine, &two_modules(), "secret"),
            Err(CrmError::Unauthorized(_))
        ));
        let other = Credentials::new("other");
        assert!(matches!(
            stored(&other, &two_modules(), "token"),
            Err(CrmError::Protocol(_))
        ));
    }
}
