//! The conformance suite: one set of cases, run against every CRM kind on its
//! sandbox, through the engine and the kind's `CrmClient`, over HTTP.
//!
//! A kind gets the suite with one line at the end of this file:
//! `conformance!(name: <ConnectorKind variant>, <its sandbox kit>);`. The line
//! expands to one `#[tokio::test]` per case, so the cases of every kind run in
//! parallel within the test binary. Each kind has one sandbox, started on its
//! own runtime the first time a case needs it and shared by its cases; each
//! case provisions its own account (org, company) on it, so the cases share
//! no CRM data, fault rule or request count.
//!
//! What differs between kinds comes from the two kits, never from a case: the
//! sandbox's (`crmsync_sandbox::kit::SandboxCrm`: accounts, stored records,
//! page and batch sizes, limits) and the worker's (`CrmKit`: connecting
//! and clients, modules, conversion).

mod cases;

use std::sync::Arc;

use crmsync_entity::TenantScoped;
use crmsync_entity::enums::ConnectorKind;
use crmsync_entity::models::field_mapping;
use crmsync_sandbox::kit::{Account, Person, Picklist, SandboxCrm, Stored};
use crmsync_sandbox::{AppState, Sandbox, SandboxConfig};
use crmsync_worker::credentials::Credentials;
use crmsync_worker::crm::kit::{ConnectEnv, ConnectError, Connected, CredentialsForm};
use crmsync_worker::crm::{ClientOptions, CrmClient, CrmError, CrmKit, registry};
use crmsync_worker::metrics::Metrics;
use crmsync_worker::settings::ConnectorSettings;
use sea_orm::{ColumnTrait, QueryFilter};
use secrecy::SecretString;

use crate::support::{App, crm_http};

/// The picklist field the import filter reads, with its options.
pub const FILTER_FIELD: &str = "conformance_sync";
/// The picklist field contacts' sources are checked against.
pub const TIER_FIELD: &str = "conformance_tier";
/// The options of [`TIER_FIELD`].
pub const TIERS: [&str; 2] = ["Gold", "Silver"];

/// A kind's sandbox, started on a runtime of its own: each `#[tokio::test]`
/// has its own runtime, which ends with its test.
pub struct Running {
    state: AppState,
}

impl Running {
    /// Starts a sandbox with no seeded people and keeps it serving for the
    /// rest of the process.
    pub fn start() -> Self {
        let (started, state) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the sandbox's runtime builds");
            runtime.block_on(async move {
                let sandbox = Sandbox::start(SandboxConfig {
                    people: 0,
                    ..SandboxConfig::default()
                })
                .await
                .expect("the sandbox starts");
                started
                    .send(sandbox.state().clone())
                    .expect("the suite waits for its sandbox");
                std::future::pending::<()>().await;
            });
        });
        Self {
            state: state.recv().expect("the sandbox starts"),
        }
    }
}

/// One case's view of a kind: the kind, both kits and the kind's sandbox.
pub struct Suite<K> {
    /// The connector kind.
    pub kind: ConnectorKind,
    /// The sandbox's kit.
    pub kit: K,
    /// The worker's kit.
    pub worker: &'static dyn CrmKit,
    /// The kind's running sandbox.
    pub state: AppState,
}

impl<K: SandboxCrm + Default> Suite<K> {
    /// The suite for `kind` on the sandbox `running`.
    pub fn new(kind: ConnectorKind, running: &Running) -> Self {
        Self {
            kind,
            kit: K::default(),
            worker: registry::kit(kind).expect("every kind the suite runs on has a kit"),
            state: running.state.clone(),
        }
    }

    /// A fresh account on the sandbox, connected with its connect form, and a
    /// tenant with a connector to it (default mappings, `settings` changed).
    pub async fn app(self, settings: impl FnOnce(&mut ConnectorSettings)) -> App<Crm<K>> {
        let picklists = [
            Picklist {
                name: FILTER_FIELD.into(),
                options: vec!["yes".into(), "no".into()],
            },
            Picklist {
                name: TIER_FIELD.into(),
                options: TIERS.map(str::to_owned).to_vec(),
            },
        ];
        let account = self
            .kit
            .provision(&self.state, &picklists)
            .await
            .expect("the kit provisions an account");
        let connected = self
            .connect(&account)
            .await
            .expect("the account's connect form connects");
        let base_url = account.base_url.clone();
        let crm = Crm {
            kit: self.kit,
            worker: self.worker,
            state: self.state,
            account,
            credentials: connected.credentials.clone(),
        };
        // Platform contacts have no company: CRMs that require one (a
        // lead's company) take the connector's default, as a real
        // connector would be set up; the others ignore it.
        let settings = |s: &mut ConnectorSettings| {
            s.default_company = Some("Conformance Inc.".into());
            settings(s);
        };
        App::assemble(
            crm,
            self.kind,
            connected.credentials,
            &base_url,
            &connected.fields,
            settings,
        )
        .await
    }

    async fn connect(&self, account: &Account) -> Result<Connected, ConnectError> {
        connect(self.worker, account).await
    }
}

/// Connects with the account's connect form, as the API would.
async fn connect(worker: &dyn CrmKit, account: &Account) -> Result<Connected, ConnectError> {
    let form = account
        .connect_form
        .iter()
        .fold(CredentialsForm::new(), |form, (name, value)| {
            form.with_secret(name, SecretString::from(value.clone()))
        });
    let http = crm_http();
    let metrics = Metrics::new();
    let env = ConnectEnv {
        http: &http,
        base_url: Some(&account.base_url),
        metrics: &metrics,
    };
    worker.connect(form, env).await
}

/// A connector's CRM account: the sandbox's and the worker's handles on it.
pub struct Crm<K> {
    /// The sandbox's kit.
    pub kit: K,
    /// The worker's kit.
    pub worker: &'static dyn CrmKit,
    /// The running sandbox.
    pub state: AppState,
    /// The account.
    pub account: Account,
    /// The credentials its connect form was exchanged for.
    pub credentials: Credentials,
}

impl<K: SandboxCrm> Crm<K> {
    /// A new client of the account, as a run makes one.
    pub fn client(&self) -> Arc<dyn CrmClient> {
        self.worker
            .client(
                &self.credentials,
                Some(&self.account.base_url),
                crm_http(),
                &ClientOptions::default(),
                &Metrics::new(),
            )
            .expect("a client for the connected credentials")
    }

    /// Converts a lead as the CRM's users would, and names the contact it
    /// became: through the client where the CRM's API converts leads, else
    /// (the client refuses: the CRM's API has no conversion) as a sales rep
    /// does in the CRM, through the sandbox kit.
    pub async fn convert(&self, lead_id: &str) -> String {
        match self.client().convert_lead(lead_id).await {
            Ok(conversion) => conversion.contact_id,
            Err(CrmError::Rejected { .. }) => self
                .kit
                .convert_lead(&self.state, &self.account, lead_id)
                .await
                .unwrap_or_else(|e| panic!("the lead {lead_id} is not converted: {e}")),
            Err(e) => panic!("the lead {lead_id} is not converted: {e:?}"),
        }
    }

    /// Connects with the account's connect form again.
    pub async fn connect_again(&self) -> Result<Connected, ConnectError> {
        connect(self.worker, &self.account).await
    }

    /// Stores people as given; their ids.
    pub async fn put(&self, people: &[Person]) -> Vec<String> {
        self.kit
            .put_people(&self.state, &self.account, people)
            .await
            .expect("the kit stores people")
    }

    /// The live records of the module contacts are written to.
    pub async fn stored(&self) -> Vec<Stored> {
        self.kit
            .stored(&self.state, &self.account)
            .await
            .expect("the kit reads the stored records")
    }

    /// The stored records with this e-mail (any case).
    pub async fn stored_with(&self, email: &str) -> Vec<Stored> {
        self.stored()
            .await
            .into_iter()
            .filter(|r| {
                r.email
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
            })
            .collect()
    }

    /// Requests the sandbox counted that create or change records.
    pub fn writes(&self) -> u64 {
        self.account
            .calls_to(&self.state, self.kit.write_endpoints())
    }
}

/// The CRM field a platform field is mapped to.
pub async fn crm_field<C>(app: &App<C>, platform_field: &str) -> String {
    mapping(app, platform_field)
        .await
        .unwrap_or_else(|| panic!("{platform_field} is mapped by default"))
        .crm_field
}

/// The mapping row of a platform field, if any.
pub async fn mapping<C>(app: &App<C>, platform_field: &str) -> Option<field_mapping::Model> {
    field_mapping::Entity::for_tenant(&app.tenant)
        .filter(field_mapping::Column::ConnectorId.eq(&app.connector_id))
        .filter(field_mapping::Column::PlatformField.eq(platform_field))
        .one(&app.db.db)
        .await
        .unwrap()
}

/// The cases of the suite, for one kind: one `#[tokio::test]` each.
macro_rules! conformance {
    ($name:ident: $kind:ident, $sandbox:ty) => {
        mod $name {
            static SANDBOX: std::sync::OnceLock<crate::conformance::Running> =
                std::sync::OnceLock::new();

            fn suite() -> crate::conformance::Suite<$sandbox> {
                crate::conformance::Suite::new(
                    crmsync_entity::enums::ConnectorKind::$kind,
                    SANDBOX.get_or_init(crate::conformance::Running::start),
                )
            }

            conformance!(
                @cases
                connects_with_its_form_and_a_revoked_credential_is_unauthorized,
                lists_a_picklist_field_with_its_options,
                imports_what_the_filter_selects_and_skips_a_record_without_email,
                imports_past_the_crms_page_size,
                a_second_run_imports_only_what_changed_and_loses_no_record_at_the_boundary,
                exports_in_the_largest_batches_and_rejects_a_bad_record_alone,
                an_exported_contact_does_not_come_back_as_a_change,
                a_field_changed_on_both_sides_takes_the_newer_side_and_is_recorded,
                a_converted_record_is_never_overwritten,
                a_value_outside_a_picklist_is_refused_before_sending,
                rate_limits_and_server_errors_are_backed_off,
                a_write_whose_reply_is_lost_is_not_duplicated,
                a_spent_daily_limit_ends_the_run_partial_and_the_next_resumes,
                an_archived_contact_is_neither_exported_nor_brought_back,
                an_opt_out_syncs_both_ways_and_is_recorded,
                a_record_deleted_in_the_crm_loses_its_link_and_is_not_recreated,
                a_deletion_archives_with_sync_deletions_only_after_a_complete_listing,
                a_full_run_finds_a_deletion_the_feed_no_longer_lists,
                a_look_for_changes_names_each_change_in_the_crm_once
            );
        }
    };
    (@cases $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::conformance::cases::$case(suite()).await;
            }
        )*
    };
}

conformance!(zoho: ZohoCrm, crmsync_sandbox::zoho::SandboxKind);
conformance!(pipedrive: Pipedrive, crmsync_sandbox::pipedrive::SandboxKind);
conformance!(hubspot: Hubspot, crmsync_sandbox::hubspot::SandboxKind);
conformance!(salesforce: Salesforce, crmsync_sandbox::salesforce::SandboxKind);
conformance!(zendesk_sell: ZendeskSell, crmsync_sandbox::zendesk_sell::SandboxKind);
conformance!(sap_c4c: SapC4c, crmsync_sandbox::sap_c4c::SandboxKind);
