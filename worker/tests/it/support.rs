//! Shared test setup: a sandbox, its admin API, clients.

#![allow(dead_code)]

use std::time::Duration;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_worker::credentials::Credentials;
use crmsync_worker::crm::RetryPolicy;
use crmsync_worker::crm::pipedrive::PipedriveClient;
use crmsync_worker::crm::zoho::{self, ZohoClient};
use crmsync_worker::egress::{Egress, HttpClient, HttpOptions};
use secrecy::SecretString;
use serde_json::{Value, json};

/// The statuses of `run_id`'s events, in order, up to its final event (within
/// a minute), and that final event.
pub async fn until_final(
    events: &mut crmsync_worker::events::EventStream,
    run_id: &str,
) -> (
    Vec<crmsync_entity::enums::SyncRunStatus>,
    crmsync_worker::events::SyncEvent,
) {
    use futures::StreamExt;
    let mut seen = Vec::new();
    let last = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if event.run_id != run_id {
                continue;
            }
            seen.push(event.status);
            if event.status.is_final() {
                return event;
            }
        }
        panic!("the bus closed");
    })
    .await
    .expect("the run ends within a minute");
    (seen, last)
}

/// The CRM clients' HTTP client in tests: the sandbox listens on 127.0.0.1,
/// so local targets are allowed (`CRMSYNC_ALLOW_LOCAL_TARGETS=true`).
pub fn crm_http() -> HttpClient {
    Egress::new(true)
        .client(HttpOptions::default())
        .expect("the HTTP client builds")
}

/// A sandbox with `people` seeded persons in company `sandbox`.
pub struct Crm {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

impl Crm {
    pub async fn start(people: usize) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        Self {
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    pub fn base_url(&self) -> String {
        self.sandbox.description().pipedrive.base_url.clone()
    }

    pub fn domain(&self) -> String {
        self.sandbox.description().pipedrive.company_domain.clone()
    }

    pub fn field_key(&self, name: &str) -> String {
        self.sandbox.description().pipedrive.field_keys[name].clone()
    }

    pub fn credentials(&self) -> Credentials {
        crmsync_worker::crm::pipedrive::kit::credentials(
            SecretString::from(self.sandbox.description().pipedrive.api_token.clone()),
            &self.domain(),
        )
    }

    /// A client with short backoff delays.
    pub fn client(&self) -> PipedriveClient {
        PipedriveClient::new(&self.credentials(), Some(&self.base_url()), crm_http())
            .expect("client")
            .with_retry_policy(fast_retries())
    }

    fn admin(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.description().admin_url)
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let reply = self.http.get(self.admin(path)).send().await.unwrap();
        assert!(
            reply.status().is_success(),
            "GET {path}: {}",
            reply.status()
        );
        reply.json().await.unwrap()
    }

    pub async fn admin_send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let reply = self
            .http
            .request(method, self.admin(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        self.admin_send(reqwest::Method::POST, path, body).await
    }

    /// Stores persons as given.
    pub async fn add_persons(&self, persons: Value) -> Value {
        self.admin_post(
            &format!("/pipedrive/companies/{}/persons", self.domain()),
            json!({ "persons": persons }),
        )
        .await
    }

    /// Every stored person, deleted included.
    pub async fn persons(&self) -> Vec<Value> {
        let reply = self
            .admin_get(&format!("/pipedrive/companies/{}/persons", self.domain()))
            .await;
        reply
            .get("persons")
            .and_then(Value::as_array)
            .cloned()
            .or_else(|| reply.as_array().cloned())
            .expect("a list of persons")
    }

    pub async fn set_limits(&self, limits: Value) {
        self.admin_send(
            reqwest::Method::PATCH,
            &format!("/pipedrive/companies/{}/limits", self.domain()),
            limits,
        )
        .await;
    }

    pub async fn fault(&self, rule: Value) {
        let mut rule = rule;
        rule["system"] = json!("pipedrive");
        self.admin_post("/faults", rule).await;
    }

    /// Requests counted by the sandbox, filtered by query string (`status=429`).
    pub async fn request_count(&self, filter: &str) -> u64 {
        let reply = self
            .admin_get(&format!("/requests?system=pipedrive&{filter}"))
            .await;
        reply["total"].as_u64().expect("a total")
    }

    pub async fn reset_requests(&self) {
        self.http
            .delete(self.admin("/requests"))
            .send()
            .await
            .unwrap();
    }
}

/// A fault rule answering every call of `system` to `endpoint` (`METHOD
/// /route/template`, as the sandbox counts it) with a 503; its id.
pub fn always_unavailable(
    sandbox: &Sandbox,
    system: crmsync_sandbox::System,
    endpoint: &str,
) -> u64 {
    use crmsync_sandbox::faults::{FaultKind, FaultRule};
    sandbox
        .state()
        .faults
        .add(FaultRule {
            id: 0,
            system: Some(system),
            tenant: None,
            endpoint: Some(endpoint.to_owned()),
            kind: FaultKind::Error { status: 503 },
            rate: 1.0,
            count: None,
            hits: 0,
        })
        .id
}

/// How many requests the fault rule `id` hit.
pub fn fault_hits(sandbox: &Sandbox, id: u64) -> u64 {
    sandbox
        .state()
        .faults
        .list()
        .iter()
        .find(|r| r.id == id)
        .map_or(0, |r| r.hits)
}

pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        ..RetryPolicy::default()
    }
}

/// The primary e-mail of a stored person.
pub fn primary_email(person: &Value) -> Option<String> {
    person["emails"]
        .as_array()?
        .iter()
        .find(|e| e["primary"] == json!(true))
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

/// A sandbox Zoho org and the refresh token its grant code was exchanged for.
pub struct Zoho {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub refresh_token: SecretString,
}

impl Zoho {
    pub async fn start(people: usize) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        let http = reqwest::Client::new();
        let d = sandbox.description().zoho.clone();
        let grant = zoho::exchange_grant_code(
            &crm_http(),
            &d.accounts_url,
            &d.client_id,
            &d.client_secret,
            &d.grant_code,
        )
        .await
        .expect("the startup grant code is exchanged");
        let zoho = Self {
            sandbox,
            http,
            refresh_token: grant.refresh_token,
        };
        // Generous limits: these tests are about tokens and batches, not 429s.
        zoho.set_limits(json!({"concurrency": 200, "heavy_concurrency": 200}))
            .await;
        zoho
    }

    pub fn org(&self) -> String {
        self.sandbox.description().zoho.org_id.clone()
    }

    /// The self-client's credentials with the exchanged refresh token.
    pub fn credentials(&self) -> Credentials {
        let d = &self.sandbox.description().zoho;
        zoho::kit::credentials(
            &d.client_id,
            &d.client_secret,
            "com",
            Some(&d.org_id),
            self.refresh_token.clone(),
        )
    }

    /// The accounts server: a connector's base URL.
    pub fn accounts_url(&self) -> String {
        self.sandbox.description().zoho.accounts_url.clone()
    }

    pub fn client(&self) -> ZohoClient {
        ZohoClient::new(&self.credentials(), Some(&self.accounts_url()), crm_http())
            .expect("client")
            .with_retry_policy(fast_retries())
    }

    /// The org's limits, changed (absent keys are kept).
    pub async fn set_limits(&self, limits: Value) {
        self.admin(
            reqwest::Method::PATCH,
            &format!("/zoho/orgs/{}/limits", self.org()),
            limits,
        )
        .await;
    }

    /// The org's usage: credits, in-flight calls, token calls.
    pub async fn usage(&self) -> Value {
        self.admin(
            reqwest::Method::GET,
            &format!("/zoho/orgs/{}/usage", self.org()),
            Value::Null,
        )
        .await
    }

    /// Every record of a module as stored, converted leads included.
    pub async fn stored(&self, module: &str) -> Vec<Value> {
        let reply = self
            .admin(
                reqwest::Method::GET,
                &format!("/zoho/orgs/{}/records/{module}", self.org()),
                Value::Null,
            )
            .await;
        reply["records"]
            .as_array()
            .cloned()
            .or_else(|| reply.as_array().cloned())
            .expect("records")
    }

    /// API calls answered with this status.
    pub async fn calls_with_status(&self, status: u16) -> u64 {
        self.count_requests(|r| r["status"].as_u64() == Some(u64::from(status)))
            .await
    }

    /// Zoho requests the sandbox counted, of the rows `keep` keeps.
    pub async fn count_requests(&self, keep: impl Fn(&Value) -> bool) -> u64 {
        let reply = self
            .admin(reqwest::Method::GET, "/requests?system=zoho", Value::Null)
            .await;
        reply["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|r| keep(r))
            .map(|r| r["count"].as_u64().unwrap_or(1))
            .sum()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.sandbox.description().admin_url);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    pub async fn token_calls(&self) -> u64 {
        self.usage().await["token_calls"]
            .as_u64()
            .expect("token_calls")
    }

    pub async fn advance_clock(&self, secs: u64) {
        self.admin(
            reqwest::Method::POST,
            "/clock",
            json!({ "advance_secs": secs }),
        )
        .await;
    }

    /// API calls whose endpoint contains `part`.
    pub async fn calls(&self, part: &str) -> u64 {
        self.count_requests(|r| r["endpoint"].as_str().is_some_and(|e| e.contains(part)))
            .await
    }

    pub async fn stored_leads(&self) -> Vec<Value> {
        self.stored("Leads").await
    }
}

pub use app::{App, PLATFORM_URL, insert_connector, insert_tenant};

/// Polls `check` every 50 ms until it gives a value, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

mod app {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use crmsync_entity::enums::{
        ConnectorKind, ConnectorStatus, CrmModule, Lifecycle, SyncMode, SyncTrigger,
    };
    use crmsync_entity::models::{connector, contact, field_mapping, sync_item, sync_run, tenant};
    use crmsync_entity::testing::TestDatabase;
    use crmsync_entity::{TenantId, TenantScoped};
    use crmsync_worker::context::WorkerContext;
    use crmsync_worker::credentials::{Credentials, CredentialsKey};
    use crmsync_worker::crm::{CrmClient, CrmField};
    use crmsync_worker::events::InProcessBus;
    use crmsync_worker::jobs::SyncJob;
    use crmsync_worker::metrics::Metrics;
    use crmsync_worker::platform::default_mappings;
    use crmsync_worker::settings::ConnectorSettings;
    use crmsync_worker::sync::SyncOptions;
    use sea_orm::ActiveValue::Set;
    use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder};
    use serde_json::json;

    use super::Crm;

    pub const PLATFORM_URL: &str = "https://app.platform.test";

    /// A tenant with a connector on a sandbox CRM (`C`: the test's handle on
    /// it; Pipedrive by default), and a database.
    pub struct App<C = Crm> {
        pub crm: C,
        pub db: TestDatabase,
        pub ctx: WorkerContext,
        pub bus: Arc<InProcessBus>,
        pub tenant: TenantId,
        pub connector_id: String,
    }

    /// A tenant row.
    pub async fn insert_tenant(db: &sea_orm::DatabaseConnection, tenant_id: &str) {
        tenant::ActiveModel::from(tenant::Model {
            id: tenant_id.to_owned(),
            name: "Acme".into(),
            slug: format!("acme-{}", tenant_id.to_lowercase()),
            created_at: Utc::now(),
            retention_sync_items_days: 30,
            retention_deliveries_days: 30,
            retention_audit_days: 365,
        })
        .insert(db)
        .await
        .unwrap();
    }

    /// A connector of the tenant on a CRM (`kind`, its credentials, its base
    /// URL), with the default mappings for the CRM's `fields`; its id.
    pub async fn insert_connector(
        db: &sea_orm::DatabaseConnection,
        key: &CredentialsKey,
        tenant_id: &str,
        (kind, credentials, base_url): (ConnectorKind, Credentials, &str),
        fields: &[CrmField],
        settings: impl FnOnce(&mut ConnectorSettings),
    ) -> String {
        let now = Utc::now();
        let connector_id = crmsync_entity::new_id();
        let mut s = ConnectorSettings::defaults_for(
            crmsync_worker::crm::registry::describe(kind).expect("an available kind"),
        );
        settings(&mut s);
        connector::ActiveModel::from(connector::Model {
            id: connector_id.clone(),
            tenant_id: tenant_id.to_owned(),
            kind,
            name: kind.as_str().into(),
            status: ConnectorStatus::Connected,
            status_message: None,
            enabled: true,
            settings: serde_json::to_value(&s).unwrap(),
            credentials: Some(key.seal(tenant_id, &connector_id, &credentials)),
            credentials_set: json!(credentials.names_set()),
            base_url: Some(base_url.to_owned()),
            full_resync_recommended: false,
            next_sync_at: None,
            created_at: now,
            updated_at: now,
        })
        .insert(db)
        .await
        .unwrap();
        for (i, m) in default_mappings(
            crmsync_worker::crm::registry::describe(kind).expect("an available kind"),
            fields,
        )
        .into_iter()
        .enumerate()
        {
            field_mapping::ActiveModel::from(field_mapping::Model {
                id: crmsync_entity::new_id(),
                tenant_id: tenant_id.to_owned(),
                connector_id: connector_id.clone(),
                position: i as i32,
                platform_field: m.platform_field,
                crm_field: m.crm_field,
                direction: m.direction,
                enabled: m.enabled,
                locked: m.locked,
            })
            .insert(db)
            .await
            .unwrap();
        }
        connector_id
    }

    impl App {
        pub async fn start(people: usize) -> Self {
            Self::with(people, |_| {}).await
        }

        pub async fn with(people: usize, settings: impl FnOnce(&mut ConnectorSettings)) -> Self {
            let crm = Crm::start(people).await;
            let credentials = crm.credentials();
            Self::build(crm, credentials, settings).await
        }

        pub async fn build(
            crm: Crm,
            credentials: Credentials,
            settings: impl FnOnce(&mut ConnectorSettings),
        ) -> Self {
            let fields = crm.client().fields(CrmModule::Persons).await.unwrap();
            let base_url = crm.base_url();
            App::assemble(
                crm,
                ConnectorKind::Pipedrive,
                credentials,
                &base_url,
                &fields,
                settings,
            )
            .await
        }

        pub async fn writes(&self) -> u64 {
            self.crm
                .request_count("endpoint=POST%20/pipedrive/{company}/api/v2/persons")
                .await
                + self
                    .crm
                    .request_count("endpoint=PATCH%20/pipedrive/{company}/api/v2/persons/{id}")
                    .await
        }
    }

    impl<C> App<C> {
        /// A tenant, a connector of `kind` with these credentials at
        /// `base_url`, and the default mappings for the CRM's `fields`.
        pub async fn assemble(
            crm: C,
            kind: ConnectorKind,
            credentials: Credentials,
            base_url: &str,
            fields: &[CrmField],
            settings: impl FnOnce(&mut ConnectorSettings),
        ) -> Self {
            let db = TestDatabase::new().await;
            let key = Arc::new(CredentialsKey::generate().0);
            let tenant_id = crmsync_entity::new_id();
            insert_tenant(&db.db, &tenant_id).await;
            let connector_id = insert_connector(
                &db.db,
                &key,
                &tenant_id,
                (kind, credentials, base_url),
                fields,
                settings,
            )
            .await;
            let bus = Arc::new(InProcessBus::default());
            let ctx = WorkerContext {
                db: db.db.clone(),
                bus: bus.clone(),
                credentials_key: key,
                http: super::crm_http(),
                options: SyncOptions::new(PLATFORM_URL),
                metrics: Metrics::new(),
            };
            Self {
                crm,
                db,
                ctx,
                bus,
                tenant: TenantId::new(tenant_id),
                connector_id,
            }
        }

        /// A manual incremental `startSync` of the connector, on `queue`.
        pub async fn start_sync(
            &self,
            queue: &crmsync_worker::jobs::JobQueue,
        ) -> Result<sync_run::Model, crmsync_worker::runs::RunError> {
            crmsync_worker::runs::start_sync(
                &self.db.db,
                queue,
                self.bus.as_ref(),
                &self.tenant,
                &self.connector_id,
                SyncTrigger::Manual,
                SyncMode::Incremental,
            )
            .await
        }

        /// Inserts a QUEUED run and carries it out in this task (no queue).
        pub async fn sync(&self, mode: SyncMode) -> sync_run::Model {
            let run = self.queued_run(mode, None).await;
            self.execute(&run).await
        }

        pub async fn execute(&self, run: &sync_run::Model) -> sync_run::Model {
            let job = SyncJob {
                tenant_id: self.tenant.as_str().to_owned(),
                run_id: run.id.clone(),
                connector_id: self.connector_id.clone(),
            };
            tokio::time::timeout(
                Duration::from_secs(120),
                crmsync_worker::sync::run_sync(&self.ctx, &job),
            )
            .await
            .expect("the run ends")
            .expect("the run is carried out")
        }

        pub async fn queued_run(
            &self,
            mode: SyncMode,
            retry_of: Option<String>,
        ) -> sync_run::Model {
            sync_run::ActiveModel::from(sync_run::Model::queued(
                self.tenant.as_str(),
                &self.connector_id,
                SyncTrigger::Manual,
                mode,
                crmsync_worker::jobs::new_task_id(),
                retry_of,
            ))
            .insert(&self.db.db)
            .await
            .unwrap()
        }

        pub async fn add_contact(
            &self,
            email: &str,
            first: Option<&str>,
            last: Option<&str>,
            score: i32,
        ) -> contact::Model {
            let now = Utc::now();
            contact::ActiveModel::from(contact::Model {
                id: crmsync_entity::new_id(),
                tenant_id: self.tenant.as_str().to_owned(),
                email: email.to_owned(),
                first_name: first.map(str::to_owned),
                last_name: last.map(str::to_owned),
                company: None,
                phone: None,
                job_title: None,
                source: None,
                behaviour_score: score,
                state: None,
                lifecycle: Lifecycle::Prospect,
                opted_out: false,
                owner_email: None,
                custom_fields: json!({}),
                created_at: now,
                updated_at: now,
                archived_at: None,
            })
            .insert(&self.db.db)
            .await
            .unwrap()
        }

        /// Changes a contact as the platform would (bumping `updated_at`).
        pub async fn edit_contact(
            &self,
            contact: &contact::Model,
            edit: impl FnOnce(&mut contact::ActiveModel),
        ) -> contact::Model {
            let mut am = contact::ActiveModel::from(contact.clone());
            edit(&mut am);
            am.updated_at = Set(Utc::now());
            am.update(&self.db.db).await.unwrap()
        }

        pub async fn contacts(&self) -> Vec<contact::Model> {
            contact::Entity::for_tenant(&self.tenant)
                .all(&self.db.db)
                .await
                .unwrap()
        }

        pub async fn contact(&self, email: &str) -> Option<contact::Model> {
            contact::Entity::for_tenant(&self.tenant)
                .filter(contact::Column::Email.eq(email))
                .one(&self.db.db)
                .await
                .unwrap()
        }

        pub async fn items(&self, run: &sync_run::Model) -> Vec<sync_item::Model> {
            sync_item::Entity::for_tenant(&self.tenant)
                .filter(sync_item::Column::RunId.eq(&run.id))
                .all(&self.db.db)
                .await
                .unwrap()
        }

        /// The connector's runs, in the order they were queued.
        pub async fn runs(&self) -> Vec<sync_run::Model> {
            sync_run::Entity::for_tenant(&self.tenant)
                .filter(sync_run::Column::ConnectorId.eq(&self.connector_id))
                .order_by_asc(sync_run::Column::QueuedAt)
                .all(&self.db.db)
                .await
                .unwrap()
        }

        pub async fn connector(&self) -> connector::Model {
            connector::Entity::find_for_tenant(&self.tenant, &self.connector_id)
                .one(&self.db.db)
                .await
                .unwrap()
                .unwrap()
        }
    }
}
