//! A crmsync deployment of real processes for tests and benchmarks: API
//! processes (`serve --no-worker`) and worker processes of the binary on one
//! PostgreSQL database (and optionally Redis), the sandbox Pipedrive, and
//! clients for GraphQL and graphql-transport-ws subscriptions.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmsync_entity::enums::Role;
use crmsync_entity::testing::TestDatabase;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use futures::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Statement};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) const ISSUER: &str = "crmsync";
pub(crate) const AUDIENCE: &str = "crmsync";
/// The workers' queue heartbeat in these tests: a killed worker's job comes
/// back after three missed beats, and a run's lease lapses as soon.
pub(crate) const HEARTBEAT_SECS: &str = "1";

/// One process of the binary, killed (SIGKILL) when dropped.
pub(crate) struct Process {
    child: Child,
    /// The GraphQL URL, for API processes.
    pub(crate) graphql: Option<String>,
    /// The last lines the process logged, for the message of a failure.
    log: Tail,
}

/// The last [`Tail::LINES`] lines of a process's log.
#[derive(Clone, Default)]
pub(crate) struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    const LINES: usize = 60;

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap();
        if lines.len() == Self::LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap();
        lines.iter().map(|l| format!("  | {l}\n")).collect()
    }
}

impl Process {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True when one of the last lines the process logged contains `text`.
    pub(crate) fn logged(&self, text: &str) -> bool {
        self.log.0.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// `kill -9`, and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (what an orchestrator sends), then waits up to `within` for a
    /// clean exit; panics if the process is still there or failed.
    pub(crate) async fn terminate(&mut self, within: Duration) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let sent_at = Instant::now();
        let deadline = sent_at + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                eprintln!(
                    "process {} stopped {:?} after SIGTERM",
                    self.pid(),
                    sent_at.elapsed()
                );
                assert!(
                    status.success(),
                    "exit after SIGTERM: {status}; its log ended:\n{}",
                    self.log.text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after SIGTERM; its log so far ended:\n{}",
                self.log.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A deployment: the settings every process shares.
pub(crate) struct Cluster {
    env: Vec<(String, String)>,
    dir: std::path::PathBuf,
    jwt_secret: String,
    /// The database, for reading what the processes stored.
    pub(crate) db: TestDatabase,
    pub(crate) http: reqwest::Client,
    /// This test's turn to run processes ([`turn`]).
    _turn: Turn,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    pub(crate) async fn new(db: TestDatabase, redis: Option<&str>) -> Self {
        let turn = turn();
        let dir = std::env::temp_dir().join(format!("crmsync-scale-{}", crmsync_entity::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwt_secret = crmsync_entity::new_id() + &crmsync_entity::new_id();
        let (_, key) = crmsync_worker::credentials::CredentialsKey::generate();
        let mut env = vec![
            ("CRMSYNC_DATABASE_URL".into(), db.url.clone()),
            ("CRMSYNC_DATA_DIR".into(), dir.display().to_string()),
            ("CRMSYNC_BIND".into(), "127.0.0.1:0".into()),
            ("CRMSYNC_WORKER_BIND".into(), "127.0.0.1:0".into()),
            ("CRMSYNC_JWT_SECRET".into(), jwt_secret.clone()),
            (
                "CRMSYNC_CREDENTIALS_KEY".into(),
                secrecy::ExposeSecret::expose_secret(&key).to_owned(),
            ),
            ("CRMSYNC_QUEUE_HEARTBEAT_SECS".into(), HEARTBEAT_SECS.into()),
            // Schedules of a second or two, for the scheduling tests.
            ("CRMSYNC_SCHEDULE_MIN_INTERVAL_SECS".into(), "1".into()),
            ("CRMSYNC_LOG".into(), "info".into()),
            // The sandbox CRMs listen on 127.0.0.1.
            ("CRMSYNC_ALLOW_LOCAL_TARGETS".into(), "true".into()),
            // The scale benchmark drives one tenant with hundreds of clients,
            // far past any real client's pace: no tenant rate limit.
            ("CRMSYNC_RATE_LIMIT_TENANT_PER_SEC".into(), "0".into()),
        ];
        if let Some(url) = redis {
            env.push(("CRMSYNC_QUEUE_URL".into(), url.to_owned()));
            // Tests share one Redis server: each cluster has its own queue.
            env.push((
                "CRMSYNC_QUEUE_NAME".into(),
                format!("crmsync-test-{}", crmsync_entity::new_id()),
            ));
        }
        Self {
            env,
            dir,
            jwt_secret,
            db,
            http: reqwest::Client::new(),
            _turn: turn,
        }
    }

    /// Sets a variable for the processes started from now on.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// A Pipedrive company of its own on the sandbox, limits off, and a
    /// connector of the tenant exporting to it; returns the connector id.
    pub(crate) async fn company_connector(
        &self,
        api: &Process,
        admin: &str,
        sandbox: &Sandbox,
        domain: &str,
    ) -> String {
        let admin_url = &sandbox.description().admin_url;
        let company: Value = self
            .http
            .post(format!("{admin_url}/pipedrive/companies"))
            .json(&json!({
                "domain": domain,
                "burst_limit": 1_000_000_000_u64,
                "daily_budget": 1_000_000_000_000_u64,
                "abuse_threshold": 0,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.connector(
            api,
            admin,
            company["base_url"].as_str().unwrap(),
            company["api_token"].as_str().unwrap(),
            domain,
        )
        .await
    }

    /// The run's slices so far.
    pub(crate) async fn run_slices(&self, run_id: &str) -> i32 {
        let row = self
            .db
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.db.get_database_backend(),
                "SELECT slices FROM sync_runs WHERE id = $1",
                [run_id.into()],
            ))
            .await
            .unwrap()
            .expect("the run exists");
        row.try_get("", "slices").unwrap()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// `crmsync serve --no-worker`, once it listens.
    pub(crate) fn api(&self) -> Process {
        let mut child = self.command(&["serve", "--no-worker"]).spawn().unwrap();
        let log = Tail::default();
        let line = logged(&mut child, "crmsync is serving", &log);
        let at = line.find("graphql=").expect("the address is logged") + "graphql=".len();
        let url = line[at..].split_whitespace().next().unwrap();
        Process {
            child,
            graphql: Some(url.trim_matches('"').to_owned()),
            log,
        }
    }

    /// `crmsync worker --concurrency 2`, once it has started.
    pub(crate) fn worker(&self) -> Process {
        self.worker_with(2)
    }

    /// `crmsync worker --concurrency N`, once it has started.
    pub(crate) fn worker_with(&self, concurrency: usize) -> Process {
        let concurrency = concurrency.to_string();
        let mut child = self
            .command(&["worker", "--concurrency", &concurrency])
            .spawn()
            .unwrap();
        let log = Tail::default();
        logged(&mut child, "worker started", &log);
        Process {
            child,
            graphql: None,
            log,
        }
    }

    pub(crate) fn token(&self, role: Role, tenant: Option<&str>) -> String {
        crmsync_api::auth::mint_hs256(
            &SecretString::from(self.jwt_secret.clone()),
            ISSUER,
            AUDIENCE,
            "scale-out-test",
            role,
            tenant,
            Duration::from_secs(3600),
        )
    }

    pub(crate) async fn graphql(
        &self,
        api: &Process,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Value {
        graphql(
            &self.http,
            api.graphql.as_deref().unwrap(),
            token,
            query,
            variables,
        )
        .await
    }

    /// A tenant with `n` contacts and a Pipedrive connector on the sandbox;
    /// returns the admin token and the connector id.
    pub(crate) async fn tenant(
        &self,
        api: &Process,
        sandbox: &Sandbox,
        n: usize,
    ) -> (String, String) {
        let admin = self.empty_tenant(api).await;
        self.contacts(api, &admin, n).await;
        let pipedrive = &sandbox.description().pipedrive;
        let connector = self
            .connector(
                api,
                &admin,
                &pipedrive.base_url,
                &pipedrive.api_token,
                &pipedrive.company_domain,
            )
            .await;
        (admin, connector)
    }

    /// The tenant `scale`; returns its admin token.
    pub(crate) async fn empty_tenant(&self, api: &Process) -> String {
        let operator = self.token(Role::Operator, None);
        self.graphql(
            api,
            &operator,
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } } }",
            json!({ "input": { "name": "Scale Co", "slug": "scale" } }),
        )
        .await;
        self.token(Role::Admin, Some("scale"))
    }

    /// Contacts 0..n (eight requests at a time).
    pub(crate) async fn contacts(&self, api: &Process, admin: &str, n: usize) {
        futures::stream::iter(0..n)
            .map(|i| self.upsert(api, admin, i, "Original"))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
    }

    /// A Pipedrive connector exporting every contact; returns its id.
    pub(crate) async fn connector(
        &self,
        api: &Process,
        admin: &str,
        base_url: &str,
        api_token: &str,
        domain: &str,
    ) -> String {
        let created = self
            .graphql(
                api,
                admin,
                "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
                json!({ "input": {
                    "kind": "PIPEDRIVE",
                    "name": format!("Pipedrive {domain}"),
                    "pipedrive": { "apiToken": api_token, "companyDomain": domain },
                    "baseUrl": base_url,
                    "settings": { "minScoreToExport": 0 },
                }}),
            )
            .await;
        created["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates or renames contact `i`.
    pub(crate) async fn upsert(&self, api: &Process, admin: &str, i: usize, last_name: &str) {
        self.graphql(
            api,
            admin,
            "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id } } }",
            json!({ "input": {
                "email": email(i),
                "firstName": format!("Person{i}"),
                "lastName": last_name,
                "behaviourScore": 50,
            }}),
        )
        .await;
    }

    pub(crate) async fn start_sync(&self, api: &Process, admin: &str, connector: &str) -> String {
        let started = self
            .graphql(
                api,
                admin,
                "mutation($input: StartSyncInput!) { startSync(input: $input) { run { id } } }",
                json!({ "input": { "connectorId": connector, "mode": "INCREMENTAL" } }),
            )
            .await;
        started["startSync"]["run"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The run's row: status and lease holder.
    pub(crate) async fn run_row(&self, run_id: &str) -> (String, Option<String>) {
        let row = self
            .db
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.db.get_database_backend(),
                "SELECT status, lease_holder FROM sync_runs WHERE id = $1",
                [run_id.into()],
            ))
            .await
            .unwrap()
            .expect("the run exists");
        (
            row.try_get("", "status").unwrap(),
            row.try_get("", "lease_holder").unwrap(),
        )
    }

    /// Waits (deadline `within`) until the run is final; returns its status.
    pub(crate) async fn final_status(&self, run_id: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            let (status, _) = self.run_row(run_id).await;
            if ["SUCCEEDED", "PARTIAL", "FAILED", "CANCELLED"].contains(&status.as_str()) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} still {status} after {within:?}"
            );
        }
    }
}

/// Waits (30 s at most) for the process to log a line containing `text`,
/// and returns it; the rest of its log is drained in the background, so it
/// never blocks on a full pipe, and its last lines kept in `tail`.
pub(crate) fn logged(child: &mut Child, text: &str, tail: &Tail) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tail = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            tail.push(line.clone());
            // Nobody listens any more: keep draining.
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => continue,
            Err(e) => panic!("the process did not log \"{text}\" in 30 s ({e})"),
        }
    }
}

/// One GraphQL operation; panics on any error in the reply; returns `data`.
pub(crate) async fn graphql(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Value {
    let reply: Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply.get("errors").is_none_or(Value::is_null), "{reply}");
    reply["data"].clone()
}

pub(crate) fn email(i: usize) -> String {
    format!("person{i}@scale.example")
}

/// The sandbox, with every Pipedrive write slowed by `latency_ms`.
pub(crate) async fn sandbox(http: &reqwest::Client, latency_ms: u64) -> Sandbox {
    let sandbox = Sandbox::start(SandboxConfig {
        people: 0,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let admin = &sandbox.description().admin_url;
    let rule = json!({ "system": "pipedrive", "kind": "latency", "fixed_ms": latency_ms });
    let reply = http
        .post(format!("{admin}/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert!(
        reply.status().is_success(),
        "{}",
        reply.text().await.unwrap()
    );
    sandbox
}

/// The sandbox Pipedrive's live persons: e-mail -> last names stored under it.
pub(crate) async fn persons(
    http: &reqwest::Client,
    sandbox: &Sandbox,
) -> HashMap<String, Vec<String>> {
    persons_of(
        http,
        sandbox,
        &sandbox.description().pipedrive.company_domain,
    )
    .await
}

/// The live persons of one sandbox Pipedrive company: e-mail -> last names.
pub(crate) async fn persons_of(
    http: &reqwest::Client,
    sandbox: &Sandbox,
    domain: &str,
) -> HashMap<String, Vec<String>> {
    let url = format!(
        "{}/pipedrive/companies/{domain}/persons",
        sandbox.description().admin_url
    );
    let stored: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    let mut by_email: HashMap<String, Vec<String>> = HashMap::new();
    for person in stored["persons"].as_array().unwrap() {
        if person["delete_time"].is_string() {
            continue;
        }
        for e in person["emails"].as_array().into_iter().flatten() {
            by_email
                .entry(e["value"].as_str().unwrap().to_lowercase())
                .or_default()
                .push(person["last_name"].as_str().unwrap_or_default().to_owned());
        }
    }
    by_email
}

/// A graphql-transport-ws subscription on `api`.
pub(crate) struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    pub(crate) async fn open(api: &Process, token: &str, query: &str, variables: Value) -> Self {
        let url = api.graphql.as_deref().unwrap().replace("http://", "ws://") + "/ws";
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut subscription = Self { socket };
        subscription
            .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        let ack = subscription.next(Duration::from_secs(10)).await;
        assert_eq!(
            ack.as_ref().map(|a| &a["type"]),
            Some(&json!("connection_ack"))
        );
        subscription
            .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
        subscription
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next message, or `None` when the socket closed.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Value> {
        self.next_or_close(within).await.ok()
    }

    /// The next message, or the close code (`None`: closed without one).
    pub(crate) async fn next_or_close(&mut self, within: Duration) -> Result<Value, Option<u16>> {
        loop {
            match timeout(within, self.socket.next())
                .await
                .expect("no message before the deadline")
            {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Err(_)) | None => return Err(None),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A turn to run processes of the binary. Libtest may run many tests at once
/// (`RUST_TEST_THREADS`, set in `.cargo/config.toml`: the other test binaries
/// mostly wait on I/O); the tests here that start servers, workers and
/// browsers take turns, as many at once as the machine has cores, so that
/// their processes start and stop in the times they allow.
pub(crate) fn turn() -> Turn {
    let (lock, freed) = &TURNS;
    let most = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut taken = freed
        .wait_while(lock.lock().unwrap_or_else(|e| e.into_inner()), |taken| {
            *taken >= most
        })
        .unwrap_or_else(|e| e.into_inner());
    *taken += 1;
    Turn(())
}

static TURNS: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Held for a test's run; the next test waiting goes on when it is dropped.
pub(crate) struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        let (lock, freed) = &TURNS;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}
