//! A test app: the real router on 127.0.0.1:0 with a fresh database and a fresh
//! tenant, plus the sandbox Pipedrive on port 0 when a test needs a CRM.

// Not every module uses every helper.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crmsync_api::auth::{Authenticator, JwtKey, JwtSettings, mint_hs256};
use crmsync_api::rate_limit::{RateLimitSettings, RateLimits};
use crmsync_api::{ApiState, Introspection, router};
use crmsync_entity::enums::Role;
use crmsync_entity::testing::TestDatabase;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_worker::credentials::CredentialsKey;
use crmsync_worker::egress::{Egress, HttpOptions};
use crmsync_worker::events::InProcessBus;
use crmsync_worker::metrics::Metrics;
use secrecy::SecretString;
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-of-enough-length";
pub const ISSUER: &str = "crmsync-test";
pub const AUDIENCE: &str = "crmsync-api";

/// A running API with one tenant.
pub struct TestApp {
    pub url: String,
    pub ws_url: String,
    pub database: TestDatabase,
    pub state: ApiState,
    pub slug: String,
    pub tenant_id: String,
    pub client: reqwest::Client,
    /// SQL statements run through the API's connection.
    pub statements: Arc<AtomicUsize>,
    pub bus: Arc<InProcessBus>,
}

/// The outbound rule of tests whose CRMs and receivers are on 127.0.0.1
/// (`CRMSYNC_ALLOW_LOCAL_TARGETS=true`).
pub fn local_targets() -> Egress {
    Egress::new(true)
}

/// A fresh slug.
pub fn slug() -> String {
    format!("t-{}", crmsync_entity::new_id().to_lowercase())
}

pub async fn queue_for(db: &sea_orm::DatabaseConnection) -> crmsync_worker::jobs::JobQueue {
    crmsync_worker::jobs::JobQueue::connect(db).await.unwrap()
}

impl TestApp {
    /// Starts the app with a fresh database and tenant (HS256 tokens).
    pub async fn spawn() -> Self {
        Self::spawn_with_key(JwtKey::Hs256(SecretString::from(SECRET))).await
    }

    /// Starts the app validating tokens with `key`.
    pub async fn spawn_with_key(key: JwtKey) -> Self {
        Self::spawn_configured(key, local_targets(), |_| {}).await
    }

    /// Starts the app (HS256 tokens) with settings changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut ApiState)) -> Self {
        Self::spawn_configured(
            JwtKey::Hs256(SecretString::from(SECRET)),
            local_targets(),
            configure,
        )
        .await
    }

    /// Starts the app with these rate limits and introspection setting.
    pub async fn spawn_with_policy(
        limits: RateLimitSettings,
        introspection: Introspection,
    ) -> Self {
        Self::spawn_with(move |state| {
            state.rate_limits = Arc::new(RateLimits::new(limits));
            state.introspection = introspection;
        })
        .await
    }

    /// Starts the app calling out under `egress` (the other constructors
    /// allow local targets: the sandbox CRMs listen on 127.0.0.1).
    pub async fn spawn_with_egress(egress: Egress) -> Self {
        Self::spawn_configured(JwtKey::Hs256(SecretString::from(SECRET)), egress, |_| {}).await
    }

    async fn spawn_configured(
        key: JwtKey,
        egress: Egress,
        configure: impl FnOnce(&mut ApiState),
    ) -> Self {
        let jwt_key = key;
        let database = TestDatabase::new().await;
        let statements = Arc::new(AtomicUsize::new(0));
        let mut db = database.db.clone();
        let counter = statements.clone();
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let bus = Arc::new(InProcessBus::default());
        let (key, _) = CredentialsKey::generate();
        let auth = Authenticator::new(JwtSettings {
            key: jwt_key,
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        })
        .unwrap();
        // Bound first: the public URL (where sandbox CRMs deliver change
        // notifications) is this app's own address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut state = ApiState {
            queue: queue_for(&db).await,
            db,
            bus: bus.clone(),
            credentials_key: Arc::new(key),
            auth: Arc::new(auth),
            http: egress.client(HttpOptions::default()).unwrap(),
            public_url: format!("http://{addr}"),
            shutdown: crmsync_api::Shutdown::never(),
            metrics: Metrics::new(),
            schedule_min_interval: crmsync_worker::settings::DEFAULT_MIN_INTERVAL,
            ws_max_subscriptions: crmsync_api::DEFAULT_WS_MAX_SUBSCRIPTIONS,
            rate_limits: Arc::new(RateLimits::new(RateLimitSettings::default())),
            introspection: Introspection::default(),
            fields_cache: Default::default(),
            tenant_cap: None,
        };
        configure(&mut state);
        let app = router(state.clone());
        tokio::spawn(async move {
            crmsync_api::serve(listener, app, std::future::pending())
                .await
                .unwrap();
        });
        let slug = slug();
        let tenant =
            crmsync_api::tenants::create_tenant(&database.db, "Acme", &slug, Default::default())
                .await
                .unwrap();
        Self {
            url: format!("http://{addr}/graphql"),
            ws_url: format!("ws://{addr}/graphql/ws"),
            database,
            state,
            slug,
            tenant_id: tenant.id,
            client: reqwest::Client::new(),
            statements,
            bus,
        }
    }

    /// Runs the in-process worker on this app's queue until the test ends.
    pub fn start_worker(&self) {
        self.start_worker_with(self.state.http.clone());
    }

    /// Runs the in-process worker calling the CRMs through `http`.
    pub fn start_worker_with(&self, http: crmsync_worker::egress::HttpClient) {
        let ctx = crmsync_worker::context::WorkerContext {
            db: self.state.db.clone(),
            bus: self.state.bus.clone(),
            credentials_key: self.state.credentials_key.clone(),
            http,
            options: crmsync_worker::sync::SyncOptions::new("http://127.0.0.1/app"),
            metrics: self.state.metrics.clone(),
        };
        let queue = self.state.queue.clone();
        tokio::spawn(async move {
            crmsync_worker::worker::run_worker(queue, ctx, 4, std::future::pending::<()>())
                .await
                .unwrap();
        });
    }

    /// A token for this app's tenant.
    pub fn token(&self, role: Role) -> String {
        token_for(role, Some(&self.slug), Duration::from_secs(600))
    }

    /// An operator token.
    pub fn operator(&self) -> String {
        token_for(Role::Operator, None, Duration::from_secs(600))
    }

    /// Creates another tenant and returns an ADMIN token for it.
    pub async fn other_tenant_admin(&self) -> String {
        let slug = slug();
        crmsync_api::tenants::create_tenant(&self.database.db, "Globex", &slug, Default::default())
            .await
            .unwrap();
        token_for(Role::Admin, Some(&slug), Duration::from_secs(600))
    }

    /// POSTs a query; returns the status, the headers and the body.
    pub async fn post(
        &self,
        token: Option<&str>,
        body: Value,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.post(&self.url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Runs a query with a token; returns the body.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.post(
            Some(token),
            json!({ "query": query, "variables": variables }),
        )
        .await
        .2
    }

    /// Runs a query as the tenant's ADMIN and expects no error.
    pub async fn admin_ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(&self.token(Role::Admin), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Creates a Pipedrive connector on the sandbox; returns its id.
    pub async fn pipedrive_connector(&self, sandbox: &Sandbox) -> String {
        let data = self
            .admin_ok(
                CREATE_CONNECTOR,
                json!({ "input": pipedrive_input(sandbox) }),
            )
            .await;
        data["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub const CREATE_CONNECTOR: &str = "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id name kind status credentialsSet settings { importModules minScoreToExport schedule } mappings { platformField crmField direction enabled locked } } } }";

/// The createConnector input for the sandbox's default company.
pub fn pipedrive_input(sandbox: &Sandbox) -> Value {
    let pd = &sandbox.description().pipedrive;
    json!({
        "kind": "PIPEDRIVE",
        "name": "Sales",
        "pipedrive": { "apiToken": pd.api_token, "companyDomain": pd.company_domain },
        "baseUrl": pd.base_url,
    })
}

/// A sandbox with the default seed.
pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        people: 40,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// A POST to the sandbox's admin API (`path` below `/admin`) that must
/// succeed; its JSON reply (null when it has none).
pub async fn sandbox_admin(sandbox: &Sandbox, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.description().admin_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap_or(Value::Null)
}

/// A sandbox with no seeded people (the awkward ones, without e-mail or
/// name, would make runs PARTIAL).
pub async fn empty_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        people: 0,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// The persons the sandbox Pipedrive holds, read through its admin API.
pub async fn sandbox_persons(sandbox: &Sandbox) -> Vec<Value> {
    let url = format!(
        "{}/pipedrive/companies/{}/persons",
        sandbox.description().admin_url,
        sandbox.description().pipedrive.company_domain
    );
    let stored: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    stored["persons"]
        .as_array()
        .unwrap_or_else(|| panic!("no persons in {stored}"))
        .clone()
}

/// How many requests the sandbox counted for `system` (`pipedrive`, `zoho`).
pub async fn sandbox_requests(sandbox: &Sandbox, system: &str) -> u64 {
    let url = format!(
        "{}/requests?system={system}",
        sandbox.description().admin_url
    );
    let counts: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    counts["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total in {counts}"))
}

/// An HS256 token with the test key.
pub fn token_for(role: Role, tenant: Option<&str>, ttl: Duration) -> String {
    mint_hs256(
        &SecretString::from(SECRET),
        ISSUER,
        AUDIENCE,
        "user-1",
        role,
        tenant,
        ttl,
    )
}

/// The first error's `extensions.code`.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// The first error's `extensions.field`.
pub fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
}

/// Inserts a Pipedrive connector row directly (no CRM call); returns its id.
pub async fn insert_connector(
    db: &sea_orm::DatabaseConnection,
    tenant_id: &str,
    name: &str,
) -> String {
    use crmsync_entity::enums::{ConnectorKind, ConnectorStatus, MappingDirection};
    use crmsync_entity::models::{connector, field_mapping};
    use sea_orm::{ActiveModelTrait, Set};
    let id = crmsync_entity::new_id();
    let now = chrono::Utc::now();
    connector::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        kind: Set(ConnectorKind::Pipedrive),
        name: Set(name.to_owned()),
        status: Set(ConnectorStatus::Connected),
        status_message: Set(None),
        enabled: Set(true),
        settings: Set(serde_json::to_value(
            crmsync_worker::settings::ConnectorSettings::defaults_for(
                crmsync_worker::crm::registry::describe(ConnectorKind::Pipedrive).unwrap(),
            ),
        )
        .unwrap()),
        credentials: Set(None),
        credentials_set: Set(json!([])),
        base_url: Set(None),
        full_resync_recommended: Set(false),
        next_sync_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    for (i, f) in ["email", "first_name", "last_name"].iter().enumerate() {
        field_mapping::ActiveModel {
            id: Set(crmsync_entity::new_id()),
            tenant_id: Set(tenant_id.to_owned()),
            connector_id: Set(id.clone()),
            position: Set(i as i32),
            platform_field: Set((*f).to_owned()),
            crm_field: Set((*f).to_owned()),
            direction: Set(MappingDirection::Both),
            enabled: Set(true),
            locked: Set(true),
        }
        .insert(db)
        .await
        .unwrap();
    }
    id
}

/// Inserts a finished run with one rejected item; returns the run id.
pub async fn insert_run(
    db: &sea_orm::DatabaseConnection,
    tenant_id: &str,
    connector_id: &str,
) -> String {
    use crmsync_entity::enums::{ItemOutcome, SyncDirection, SyncMode, SyncRunStatus, SyncTrigger};
    use crmsync_entity::models::{sync_item, sync_run};
    use sea_orm::{ActiveModelTrait, Set};
    let id = crmsync_entity::new_id();
    let now = chrono::Utc::now();
    sync_run::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        connector_id: Set(connector_id.to_owned()),
        trigger: Set(SyncTrigger::Manual),
        mode: Set(SyncMode::Incremental),
        status: Set(SyncRunStatus::Partial),
        error: Set(None),
        task_id: Set(crmsync_entity::new_id()),
        phase: Set("done".into()),
        processed: Set(3),
        cancel_requested: Set(false),
        retry_of: Set(None),
        queued_at: Set(now),
        started_at: Set(Some(now)),
        finished_at: Set(Some(now)),
        to_crm_created: Set(1),
        to_crm_updated: Set(0),
        to_crm_unchanged: Set(1),
        to_crm_rejected: Set(0),
        to_crm_conflicts: Set(0),
        from_crm_created: Set(0),
        from_crm_updated: Set(0),
        from_crm_unchanged: Set(0),
        from_crm_rejected: Set(1),
        from_crm_conflicts: Set(0),
        lease_holder: Set(None),
        lease_expires_at: Set(None),
        mappings: Set(None),
        rules: Set(None),
        // The columns added since take their defaults.
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    sync_item::ActiveModel {
        id: Set(crmsync_entity::new_id()),
        tenant_id: Set(tenant_id.to_owned()),
        run_id: Set(id.clone()),
        connector_id: Set(connector_id.to_owned()),
        direction: Set(SyncDirection::FromCrm),
        outcome: Set(ItemOutcome::Rejected),
        email: Set(None),
        contact_id: Set(None),
        crm_record_id: Set(Some("17".into())),
        reason_code: Set(Some("MISSING_EMAIL".into())),
        field: Set(Some("email".into())),
        message: Set(Some("the person has no e-mail address".into())),
        changes: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    id
}
