//! Scale-out (issue 5): API processes and worker processes of the real binary
//! on one PostgreSQL database and one queue (apalis on PostgreSQL, or on Redis),
//! against the sandbox Pipedrive over HTTP.
//!
//! These tests need the machine's PostgreSQL: they run in the PostgreSQL pass
//! of `.ci/run` (`CRMSYNC_TEST_POSTGRES_URL` set) and say so and return in the
//! SQLite pass. The Redis variants need `CRMSYNC_TEST_REDIS_URL` as well (set by
//! `.ci/run`); when a variable is set, a service that does not answer fails
//! the test.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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

const ISSUER: &str = "crmsync";
const AUDIENCE: &str = "crmsync";
/// The workers' queue heartbeat in these tests: a killed worker's job comes
/// back after three missed beats, and a run's lease lapses as soon.
const HEARTBEAT_SECS: &str = "1";

/// One process of the binary, killed (SIGKILL) when dropped.
struct Process {
    child: Child,
    /// The GraphQL URL, for API processes.
    graphql: Option<String>,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A deployment: the settings every process shares.
struct Cluster {
    env: Vec<(String, String)>,
    dir: std::path::PathBuf,
    jwt_secret: String,
    /// The database, for reading what the processes stored.
    db: TestDatabase,
    http: reqwest::Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster's database, or `None` (with a note) outside the PostgreSQL pass.
async fn postgres() -> Option<TestDatabase> {
    if std::env::var(crmsync_entity::testing::POSTGRES_ENV).is_err() {
        eprintln!("scale-out tests run in the PostgreSQL pass (CRMSYNC_TEST_POSTGRES_URL)");
        return None;
    }
    let db = TestDatabase::new().await;
    assert!(db.is_postgres());
    Some(db)
}

/// The Redis URL for the Redis variants, or `None` (with a note).
fn redis() -> Option<String> {
    match std::env::var("CRMSYNC_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "the Redis variant runs when CRMSYNC_TEST_REDIS_URL is set (.ci/run sets it)"
            );
            None
        }
    }
}

impl Cluster {
    async fn new(db: TestDatabase, redis: Option<&str>) -> Self {
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
            ("CRMSYNC_LOG".into(), "info".into()),
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
        }
    }

    fn command(&self, args: &[&str]) -> Command {
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
    fn api(&self) -> Process {
        let mut child = self.command(&["serve", "--no-worker"]).spawn().unwrap();
        let line = logged(&mut child, "crmsync is serving");
        let at = line.find("graphql=").expect("the address is logged") + "graphql=".len();
        let url = line[at..].split_whitespace().next().unwrap();
        Process {
            child,
            graphql: Some(url.trim_matches('"').to_owned()),
        }
    }

    /// `crmsync worker --concurrency 2`, once it has started.
    fn worker(&self) -> Process {
        let mut child = self
            .command(&["worker", "--concurrency", "2"])
            .spawn()
            .unwrap();
        logged(&mut child, "worker started");
        Process {
            child,
            graphql: None,
        }
    }

    fn token(&self, role: Role, tenant: Option<&str>) -> String {
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

    async fn graphql(&self, api: &Process, token: &str, query: &str, variables: Value) -> Value {
        let reply: Value = self
            .http
            .post(api.graphql.as_deref().unwrap())
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

    /// A tenant with `n` contacts and a Pipedrive connector on the sandbox;
    /// returns the admin token and the connector id.
    async fn tenant(&self, api: &Process, sandbox: &Sandbox, n: usize) -> (String, String) {
        let operator = self.token(Role::Operator, None);
        self.graphql(
            api,
            &operator,
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } } }",
            json!({ "input": { "name": "Scale Co", "slug": "scale" } }),
        )
        .await;
        let admin = self.token(Role::Admin, Some("scale"));
        futures::stream::iter(0..n)
            .map(|i| self.upsert(api, &admin, i, "Original"))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let pipedrive = &sandbox.description().pipedrive;
        let created = self
            .graphql(
                api,
                &admin,
                "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
                json!({ "input": {
                    "kind": "PIPEDRIVE",
                    "name": "Sandbox Pipedrive",
                    "pipedrive": { "apiToken": pipedrive.api_token, "companyDomain": pipedrive.company_domain },
                    "baseUrl": pipedrive.base_url,
                    "settings": { "minScoreToExport": 0 },
                }}),
            )
            .await;
        let connector = created["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (admin, connector)
    }

    /// Creates or renames contact `i`.
    async fn upsert(&self, api: &Process, admin: &str, i: usize, last_name: &str) {
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

    async fn start_sync(&self, api: &Process, admin: &str, connector: &str) -> String {
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
    async fn run_row(&self, run_id: &str) -> (String, Option<String>) {
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
    async fn final_status(&self, run_id: &str, within: Duration) -> String {
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
/// never blocks on a full pipe.
fn logged(child: &mut Child, text: &str) -> String {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
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

fn email(i: usize) -> String {
    format!("person{i}@scale.example")
}

/// The sandbox, with every Pipedrive write slowed by `latency_ms`.
async fn sandbox(http: &reqwest::Client, latency_ms: u64) -> Sandbox {
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
async fn persons(http: &reqwest::Client, sandbox: &Sandbox) -> HashMap<String, Vec<String>> {
    let description = sandbox.description();
    let url = format!(
        "{}/pipedrive/companies/{}/persons",
        description.admin_url, description.pipedrive.company_domain
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
struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    async fn open(api: &Process, token: &str, query: &str, variables: Value) -> Self {
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

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// The next message, or `None` when the socket closed.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            match timeout(within, self.socket.next())
                .await
                .expect("no message before the deadline")
            {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }
}

#[tokio::test]
async fn a_run_started_on_one_api_runs_on_a_worker_and_streams_to_another_api() {
    let Some(db) = postgres().await else { return };
    cluster_streams_progress_across_processes(Cluster::new(db, None).await).await;
}

#[tokio::test]
async fn the_same_across_processes_with_the_queue_and_events_on_redis() {
    let Some(url) = redis() else { return };
    let Some(db) = postgres().await else { return };
    cluster_streams_progress_across_processes(Cluster::new(db, Some(&url)).await).await;
}

async fn cluster_streams_progress_across_processes(cluster: Cluster) {
    let sandbox = sandbox(&cluster.http, 5).await;
    let api1 = cluster.api();
    let api2 = cluster.api();
    let _workers = [cluster.worker(), cluster.worker()];
    let (admin, connector) = cluster.tenant(&api1, &sandbox, 600).await;

    let run_id = cluster.start_sync(&api1, &admin, &connector).await;
    let mut progress = Subscription::open(
        &api2,
        &admin,
        "subscription($id: ID!) { syncProgress(runId: $id) { runId status phase processed } }",
        json!({ "id": run_id }),
    )
    .await;
    let mut running = Vec::new();
    let mut last = None;
    while let Some(message) = progress.next(Duration::from_secs(120)).await {
        match message["type"].as_str() {
            Some("next") => {
                let event = message["payload"]["data"]["syncProgress"].clone();
                assert_eq!(event["runId"], json!(run_id));
                if event["status"] == "RUNNING" {
                    running.push(event["processed"].as_i64().unwrap());
                }
                last = Some(event);
            }
            Some("complete") => break,
            other => panic!("unexpected message {other:?}: {message}"),
        }
    }
    // Events published by the worker process reached API 2's subscriber: more
    // than the one state a subscription starts from.
    running.dedup();
    assert!(
        running.len() >= 2,
        "progress of the run as it worked, seen on API 2: {running:?}"
    );
    let last = last.expect("a final event");
    assert_eq!(last["status"], "SUCCEEDED", "{last}");
    assert_eq!(cluster.run_row(&run_id).await, ("SUCCEEDED".into(), None));
    let stored = persons(&cluster.http, &sandbox).await;
    assert_eq!(stored.len(), 600);
}

#[tokio::test]
async fn killing_workers_mid_run_loses_nothing_and_duplicates_nothing() {
    let Some(db) = postgres().await else { return };
    workers_killed_mid_run(Cluster::new(db, None).await).await;
}

#[tokio::test]
async fn killing_workers_mid_run_with_the_queue_on_redis() {
    let Some(url) = redis() else { return };
    let Some(db) = postgres().await else { return };
    workers_killed_mid_run(Cluster::new(db, Some(&url)).await).await;
}

/// Workers are killed (`kill -9`) three times while one run writes 600
/// persons; contacts change in between. Another worker takes the run over each
/// time; it ends SUCCEEDED, every contact is in the CRM once, and after the
/// next run every change is there.
async fn workers_killed_mid_run(cluster: Cluster) {
    const CONTACTS: usize = 600;
    let sandbox = sandbox(&cluster.http, 20).await;
    let api = cluster.api();
    let mut workers = vec![cluster.worker(), cluster.worker()];
    let (admin, connector) = cluster.tenant(&api, &sandbox, CONTACTS).await;

    let run_id = cluster.start_sync(&api, &admin, &connector).await;
    let mut renamed = Vec::new();
    for (kill, threshold) in [80, 250, 420].into_iter().enumerate() {
        // Wait for the CRM to have that many persons, then kill the holder.
        let deadline = Instant::now() + Duration::from_secs(120);
        let holder = loop {
            let written = persons(&cluster.http, &sandbox).await.len();
            let (status, holder) = cluster.run_row(&run_id).await;
            assert!(
                status == "QUEUED" || status == "RUNNING",
                "the run ended ({status}) before kill {kill}"
            );
            if written >= threshold
                && let Some(holder) = holder
            {
                break holder;
            }
            assert!(Instant::now() < deadline, "{written} persons written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Holders are named `crmsync-{host}-{pid}-{suffix}`.
        let pid: u32 = holder.rsplit('-').nth(1).unwrap().parse().unwrap();
        let index = workers
            .iter()
            .position(|w| w.pid() == pid)
            .unwrap_or_else(|| panic!("the holder {holder} is one of our workers"));
        workers.remove(index).kill();
        workers.push(cluster.worker());
        // A contact already written and one not yet written change meanwhile.
        for i in [kill, CONTACTS - 1 - kill] {
            let name = format!("Renamed{kill}");
            cluster.upsert(&api, &admin, i, &name).await;
            renamed.push((i, name));
        }
    }
    let status = cluster
        .final_status(&run_id, Duration::from_secs(180))
        .await;
    assert_eq!(status, "SUCCEEDED");
    assert_eq!(
        cluster.run_row(&run_id).await.1,
        None,
        "the lease is released"
    );

    // The changes made while the run worked reach the CRM by the next run.
    let next = cluster.start_sync(&api, &admin, &connector).await;
    assert_eq!(
        cluster.final_status(&next, Duration::from_secs(120)).await,
        "SUCCEEDED"
    );
    let stored = persons(&cluster.http, &sandbox).await;
    let duplicated: Vec<_> = stored.iter().filter(|(_, names)| names.len() > 1).collect();
    assert!(duplicated.is_empty(), "duplicates: {duplicated:?}");
    assert_eq!(stored.len(), CONTACTS, "every contact once");
    for (i, name) in renamed {
        assert_eq!(stored[&email(i)], vec![name.clone()], "contact {i}");
    }
    for i in 0..CONTACTS {
        let names = &stored[&email(i)];
        assert!(
            names[0] == "Original" || names[0].starts_with("Renamed"),
            "{names:?}"
        );
    }
}
