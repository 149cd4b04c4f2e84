//! Benchmarks of FULL syncs against the sandbox CRMs, through the real job
//! queue and worker, on SQLite (or, with `--postgres`, on a fresh database
//! of the server `CRMSYNC_TEST_POSTGRES_URL` names, local by default). The sandbox runs in a child process (`crmsync sandbox`),
//! so the peak memory reported is this process's alone; CRM calls are the
//! sandbox's own request counts.
//!
//! - Pipedrive (the default): a two-way sync of N platform contacts to export
//!   and N CRM persons to import (disjoint e-mails, so both legs create N
//!   records). Reports wall time, CRM calls by endpoint, calls per contact,
//!   429s and peak memory.
//! - Zoho CRM (`--crm zoho`), one scenario at a time (a two-way sync of N
//!   platform contacts and N leads when neither `--export` nor `--import`
//!   is given). Each reports 429s, the
//!   org's calls in flight (its usage, sampled every 5 ms), the time of each
//!   leg's pages, the CPU time of crmsync and of the sandbox during the run,
//!   and peak memory. `--concurrency` (default 10) sets the connector's
//!   `max_concurrent_calls` and the org's `concurrency` and
//!   `heavy_concurrency`; `--latency-ms` injects that delay on every Zoho API
//!   POST, served while the call holds its concurrency slot.
//!   - `--export`: N platform contacts and an empty org. Reports the upsert
//!     calls against ceil(N/100) and the wall time against the bound
//!     upserts x latency / concurrency.
//!   - `--import`: N plain leads (with e-mails, none converted) and no
//!     platform contacts. Reports the read calls by endpoint against
//!     N/200 + 2, the write-back upserts and the contacts created.
//! - HubSpot (`--crm hubspot`): a two-way sync like Pipedrive's, against the
//!   sandbox portal at its default limits (a Professional private app: 190
//!   requests per 10 s). Reports the batch writes of each direction against
//!   ceil(N/100), the share of the 10-second limit used, 429s, search calls
//!   and peak memory.
//! - Salesforce (`--crm salesforce`): a two-way sync of N platform contacts
//!   and N leads (disjoint e-mails) against a fresh sandbox org. Reports the
//!   sObject Collections calls of each direction against ceil(N/200), the
//!   query calls against ceil(N/2000), the org's API usage and peak memory.
//!
//! - Zendesk Sell (`--crm zendesk_sell`): a two-way sync of N platform
//!   contacts and N leads (disjoint e-mails) on a fresh sandbox account.
//!   Sell writes one record a call, so the run is bound by the account's
//!   rate limit: `--per-second` and `--hourly` set the account's limits
//!   (Sell's: 10 and 36,000); a raised per-second limit is given to the
//!   connector as its `maxRequestsPerSecond`, and `--concurrency` sets its
//!   writes in flight. Reports creates and updates against N, list pages
//!   against ceil(N/100), the share of the per-second limit used, and 429s.
//! - SAP C4C (`--crm sap_c4c`): a two-way sync of N platform contacts and N
//!   leads (disjoint e-mails) on a fresh sandbox tenant. Reports the
//!   `$batch` calls against 2 x ceil(N/1000) (1,000 single-record
//!   changesets a batch), the reads against ceil(N/1000) list pages plus the
//!   catalog's fixed reads, throughput and 429s.
//!
//! ```sh
//! cargo bench --bench sync -- --people 10000            # limits off
//! cargo bench --bench sync -- --people 2000 --limits    # sandbox burst limit 80 per 2 s
//! cargo bench --bench sync -- --crm zoho --export --people 100000 --latency-ms 50 --concurrency 10
//! cargo bench --bench sync -- --crm zoho --import --people 100000
//! cargo bench --bench sync -- --crm zoho --people 1000000           # two-way
//! cargo bench --bench sync -- --people 1000000 --postgres           # any mode on PostgreSQL
//! cargo bench --bench sync -- --crm hubspot --people 100000
//! cargo bench --bench sync -- --crm salesforce --people 100000
//! cargo bench --bench sync -- --crm zendesk_sell --people 1000
//! cargo bench --bench sync -- --crm zendesk_sell --people 100000 --per-second 200 --hourly 1000000000 --concurrency 16
//! cargo bench --bench sync -- --crm sap_c4c --people 100000
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crmsync_entity::enums::{
    ConnectorKind, ConnectorStatus, CrmModule, Lifecycle, SyncMode, SyncRunStatus, SyncTrigger,
};
use crmsync_entity::models::{connector, contact, field_mapping, tenant};
use crmsync_entity::testing::{POSTGRES_ENV, TestDatabase};
use crmsync_entity::{TenantId, new_id};
use crmsync_worker::context::WorkerContext;
use crmsync_worker::credentials::{Credentials, CredentialsKey};
use crmsync_worker::events::{EventBus, InProcessBus, SyncEvent};
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::metrics::Metrics;
use crmsync_worker::platform::Mapping;
use crmsync_worker::settings::ConnectorSettings;
use crmsync_worker::sync::SyncOptions;
use futures::StreamExt;
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use secrecy::SecretString;
use serde_json::{Value, json};

/// The binary's allocator, so the sync in this process allocates as `crmsync` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let sandbox = Sandbox::start();
    let http = reqwest::Client::new();
    match args.crm.as_str() {
        "pipedrive" => pipedrive(&args, &http, &sandbox).await,
        "zoho" if args.export && args.import => {
            panic!("--crm zoho takes one of --export and --import, or neither for both legs")
        }
        "zoho" => zoho(&args, &http, &sandbox).await,
        "hubspot" => hubspot(&args, &http, &sandbox).await,
        "salesforce" => salesforce(&args, &http, &sandbox).await,
        "zendesk_sell" => zendesk_sell(&args, &http, &sandbox).await,
        "sap_c4c" => sap_c4c(&args, &http, &sandbox).await,
        other => panic!(
            "--crm: pipedrive, zoho, hubspot, salesforce, zendesk_sell or sap_c4c, got {other}"
        ),
    }
    println!(
        "sandbox peak RSS (its records held in memory): {:.0} MiB",
        sandbox.peak_rss_mib()
    );
}

/// The command line. `cargo bench` adds arguments of its own (`--bench`),
/// so unknown ones are ignored.
struct Args {
    crm: String,
    people: usize,
    limits: bool,
    export: bool,
    import: bool,
    latency_ms: u64,
    concurrency: u32,
    /// The platform's database on the PostgreSQL server of
    /// `CRMSYNC_TEST_POSTGRES_URL` (a fresh database), not SQLite.
    postgres: bool,
    /// The account's requests per second and per hour (Zendesk Sell).
    per_second: Option<u64>,
    hourly: Option<u64>,
    /// Calls in flight, when given (`--concurrency` with a default of its own).
    concurrency_given: bool,
}

impl Args {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .map(|i| args.get(i + 1).cloned().unwrap_or_default())
        };
        let number = |name: &str, default: u64| {
            value(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}: a whole number, got {v:?}"))
            })
        };
        let flag = |name: &str| args.iter().any(|a| a == name);
        Self {
            crm: value("--crm").unwrap_or_else(|| "pipedrive".into()),
            people: number("--people", 10_000) as usize,
            limits: flag("--limits"),
            export: flag("--export"),
            import: flag("--import"),
            latency_ms: number("--latency-ms", 0),
            concurrency: number("--concurrency", 10) as u32,
            postgres: flag("--postgres"),
            per_second: value("--per-second").map(|_| number("--per-second", 0)),
            hourly: value("--hourly").map(|_| number("--hourly", 0)),
            concurrency_given: value("--concurrency").is_some(),
        }
    }
}

/// The CRM clients' HTTP client: the sandbox is on 127.0.0.1, so local
/// targets are allowed (`CRMSYNC_ALLOW_LOCAL_TARGETS=true`).
fn crm_http() -> crmsync_worker::egress::HttpClient {
    crmsync_worker::egress::Egress::new(true)
        .client(crmsync_worker::egress::HttpOptions::default())
        .expect("the HTTP client builds")
}

/// The sandbox CRMs in a child process, killed on drop.
struct Sandbox {
    child: Child,
    pid: String,
    description: Value,
    admin: String,
}

impl Sandbox {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
            .args(["sandbox", "--bind", "127.0.0.1:0", "--people", "0"])
            .env("CRMSYNC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("crmsync sandbox starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let description: Value = serde_json::from_str(&line).unwrap();
        let admin = description["admin_url"].as_str().unwrap().to_owned();
        Self {
            pid: child.id().to_string(),
            child,
            description,
            admin,
        }
    }

    /// An admin call that must succeed; its JSON reply (`Null` when empty).
    async fn admin(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        body: Value,
    ) -> Value {
        let resp = http
            .request(method, format!("{}{path}", self.admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        let ok = resp.status().is_success();
        let text = resp.text().await.unwrap();
        assert!(ok, "{path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A seed call (`POST .../seed`), timed: what seeding takes is printed.
    async fn seed(&self, http: &reqwest::Client, path: &str, body: Value) -> Value {
        let people = body["people"].as_u64().unwrap_or_default();
        let started = std::time::Instant::now();
        let reply = self.admin(http, Method::POST, path, body).await;
        println!(
            "sandbox seed of {people} people: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        reply
    }

    /// The sandbox process's peak resident memory, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        vm_hwm_mib(&status)
    }

    /// The sandbox's request counts for one CRM since they were last reset.
    async fn requests(&self, http: &reqwest::Client, system: &str) -> Requests {
        let counts = self
            .admin(
                http,
                Method::GET,
                &format!("/requests?system={system}"),
                Value::Null,
            )
            .await;
        Requests {
            total: counts["total"].as_u64().unwrap(),
            rows: counts["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["endpoint"].as_str().unwrap().to_owned(),
                        r["status"].as_u64().unwrap(),
                        r["count"].as_u64().unwrap(),
                    )
                })
                .collect(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Request counts: endpoint (`METHOD /route`), status, count.
struct Requests {
    total: u64,
    rows: Vec<(String, u64, u64)>,
}

impl Requests {
    /// Calls to endpoints `pick` accepts, whatever their status.
    fn calls(&self, pick: impl Fn(&str) -> bool) -> u64 {
        self.rows
            .iter()
            .filter(|(e, _, _)| pick(e))
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Replies with status 429.
    fn throttled(&self) -> u64 {
        self.rows
            .iter()
            .filter(|(_, s, _)| *s == 429)
            .map(|(_, _, n)| n)
            .sum()
    }

    fn print_table(&self) {
        println!("\n| endpoint | status | calls |\n| --- | ---: | ---: |");
        for (endpoint, status, count) in &self.rows {
            println!("| `{endpoint}` | {status} | {count} |");
        }
    }
}

/// Zoho API calls of this method whose route ends with `suffix`.
fn zoho_api(method: &str, suffix: &'static str) -> impl Fn(&str) -> bool {
    let prefix = format!("{method} /zoho/api/crm/v8/");
    move |e: &str| e.starts_with(&prefix) && e.ends_with(suffix)
}

/// CPU time (user and system) a process has used so far, from
/// `/proc/{pid}/stat` (`self` for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks
    // of 1/100 s (USER_HZ on Linux).
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

fn peak_rss_mib() -> f64 {
    vm_hwm_mib(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// `VmHWM` (peak resident memory) of a `/proc/<pid>/status`, in MiB.
fn vm_hwm_mib(status: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The platform side: a fresh database (SQLite, or PostgreSQL with
/// `--postgres`), one tenant, N contacts.
struct Platform {
    db: DatabaseConnection,
    tenant_id: String,
    key: Arc<CredentialsKey>,
    /// Holds the database: a SQLite directory is removed with it, a
    /// PostgreSQL database dropped by [`Platform::drop_postgres`].
    database: TestDatabase,
}

impl Platform {
    async fn with_contacts(args: &Args, people: usize) -> Self {
        let database = if args.postgres {
            let server = std::env::var(POSTGRES_ENV)
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            TestDatabase::postgres(&server).await
        } else {
            TestDatabase::sqlite().await
        };
        // PostgreSQL's autovacuum is off on the development machine: the
        // tables are analyzed every 30 s, as autovacuum would.
        if database
            .analyze_as_autovacuum_would(std::time::Duration::from_secs(30))
            .await
            .is_some()
        {
            println!(
                "PostgreSQL's autovacuum is off: the bench runs ANALYZE every 30 s, as autovacuum would"
            );
        }
        let db = database.db.clone();
        let tenant_id = new_id();
        tenant::ActiveModel {
            id: Set(tenant_id.clone()),
            name: Set("Bench".into()),
            slug: Set("bench".into()),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        let now = Utc::now();
        for chunk in (0..people).collect::<Vec<_>>().chunks(1000) {
            let rows = chunk.iter().map(|i| contact::ActiveModel {
                id: Set(new_id()),
                tenant_id: Set(tenant_id.clone()),
                email: Set(format!("platform{i}@bench.example")),
                first_name: Set(Some(format!("Bench{i}"))),
                last_name: Set(Some("Contact".into())),
                company: Set(None),
                phone: Set(None),
                job_title: Set(None),
                source: Set(Some("Website".into())),
                behaviour_score: Set(50),
                state: Set(Some("Prospect".into())),
                lifecycle: Set(Lifecycle::Prospect),
                opted_out: Set(false),
                owner_email: Set(None),
                custom_fields: Set(json!({})),
                created_at: Set(now),
                updated_at: Set(now),
                archived_at: Set(None),
            });
            contact::Entity::insert_many(rows).exec(&db).await.unwrap();
        }
        let (key, _) = CredentialsKey::generate();
        Self {
            db,
            tenant_id,
            key: Arc::new(key),
            database,
        }
    }

    /// The last rows of every table (peak memory, the calls by endpoint);
    /// then the database goes, and the run must have succeeded.
    async fn end(self, counts: &Requests, status: SyncRunStatus) {
        println!("| peak RSS of crmsync | {:.0} MiB |", peak_rss_mib());
        counts.print_table();
        self.remove().await;
        assert_eq!(
            status,
            SyncRunStatus::Succeeded,
            "the benchmark run must succeed"
        );
    }

    /// Drops a PostgreSQL database (a SQLite one goes with its directory).
    async fn remove(self) {
        if !self.database.is_postgres() {
            return;
        }
        let url = self.database.url.clone();
        let name = url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let server = std::env::var(POSTGRES_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        drop(self);
        let admin = crmsync_entity::db::connect(&server).await.unwrap();
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }

    /// Which database the platform is on, for the report.
    fn database(&self) -> &'static str {
        if self.database.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    /// A connector of `kind` as a new one starts: the CRM's default settings
    /// (no filter, then `tweak`) and the default mappings for the fields of
    /// the module contacts are written to, read with `credentials`.
    async fn default_connector(
        &self,
        kind: ConnectorKind,
        credentials: &Credentials,
        base_url: &str,
        tweak: impl FnOnce(&mut ConnectorSettings),
    ) -> String {
        let kit = crmsync_worker::crm::registry::describe(kind).unwrap();
        let client = crmsync_worker::crm::client_for(
            credentials,
            Some(base_url),
            crm_http(),
            &Metrics::new(),
        )
        .unwrap();
        let fields = client.fields(kit.export_module()).await.unwrap();
        let mut settings = ConnectorSettings::defaults_for(kit);
        settings.filter_field = None;
        tweak(&mut settings);
        let mappings = crmsync_worker::platform::default_mappings(kit, &fields);
        self.connector(kind, credentials, base_url, &settings, mappings)
            .await
    }

    /// A connected connector with these credentials, settings and mappings.
    async fn connector(
        &self,
        kind: ConnectorKind,
        credentials: &Credentials,
        base_url: &str,
        settings: &ConnectorSettings,
        mappings: Vec<Mapping>,
    ) -> String {
        let connector_id = new_id();
        let now = Utc::now();
        connector::ActiveModel {
            id: Set(connector_id.clone()),
            tenant_id: Set(self.tenant_id.clone()),
            kind: Set(kind),
            name: Set("Bench".into()),
            status: Set(ConnectorStatus::Connected),
            status_message: Set(None),
            enabled: Set(true),
            settings: Set(serde_json::to_value(settings).unwrap()),
            credentials: Set(Some(self.key.seal(
                &self.tenant_id,
                &connector_id,
                credentials,
            ))),
            credentials_set: Set(json!(credentials.names_set())),
            base_url: Set(Some(base_url.to_owned())),
            full_resync_recommended: Set(false),
            next_sync_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .unwrap();
        for (position, m) in mappings.into_iter().enumerate() {
            field_mapping::ActiveModel {
                id: Set(new_id()),
                tenant_id: Set(self.tenant_id.clone()),
                connector_id: Set(connector_id.clone()),
                position: Set(position as i32),
                platform_field: Set(m.platform_field),
                crm_field: Set(m.crm_field),
                direction: Set(m.direction),
                enabled: Set(m.enabled),
                locked: Set(m.locked),
            }
            .insert(&self.db)
            .await
            .unwrap();
        }
        connector_id
    }

    /// One FULL sync of the connector through the job queue and a worker,
    /// with the sandbox's request counts reset just before it starts.
    async fn full_sync(
        &self,
        http: &reqwest::Client,
        sandbox: &Sandbox,
        connector_id: &str,
    ) -> Finished {
        let queue = JobQueue::connect(&self.db).await.unwrap();
        let bus = Arc::new(InProcessBus::default());
        let context = WorkerContext {
            db: self.db.clone(),
            bus: bus.clone(),
            credentials_key: self.key.clone(),
            http: crm_http(),
            options: SyncOptions::new("http://bench.example"),
            metrics: Metrics::new(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(crmsync_worker::worker::run_worker(
            queue.clone(),
            context,
            1,
            async move {
                let _ = stopped.await;
            },
        ));
        sandbox
            .admin(http, Method::DELETE, "/requests", Value::Null)
            .await;

        let mut events = bus.subscribe(&self.tenant_id);
        let started = Instant::now();
        let tenant = TenantId::new(self.tenant_id.clone());
        let run = crmsync_worker::runs::start_sync(
            &self.db,
            &queue,
            bus.as_ref(),
            &tenant,
            connector_id,
            SyncTrigger::Api,
            SyncMode::Full,
        )
        .await
        .unwrap();
        let mut pages = Vec::new();
        let mut previous: Option<(Instant, String)> = None;
        let last = loop {
            let event = tokio::time::timeout(Duration::from_secs(3600), events.next())
                .await
                .expect("progress")
                .expect("event");
            if event.run_id != run.id {
                continue;
            }
            if event.status.is_final() {
                break event;
            }
            // A leg publishes once as it starts, then once after each page.
            let now = Instant::now();
            if let Some((at, phase)) = &previous
                && *phase == event.phase
            {
                pages.push((event.phase.clone(), now - *at));
            }
            previous = Some((now, event.phase));
        };
        let wall = started.elapsed();
        let _ = stop.send(());
        let _ = worker.await;
        Finished { last, wall, pages }
    }
}

/// How a FULL sync ended.
struct Finished {
    /// The run's final event.
    last: SyncEvent,
    /// From the run's start to its final event.
    wall: Duration,
    /// Each page's time (from one progress event of a leg to the next), by leg
    /// (`import`, `export`), in order.
    pages: Vec<(String, Duration)>,
}

impl Finished {
    /// The first rows of a two-way benchmark's table: the run's status, what
    /// each leg created and rejected, the wall time.
    fn print_head(&self, crm: &str) {
        let (last, wall) = (&self.last, self.wall);
        println!("\n| figure | value |\n| --- | ---: |");
        println!("| final status | {:?} |", last.status);
        println!(
            "| created in {crm} / in the platform | {} / {} |",
            last.legs.to_crm.created, last.legs.from_crm.created
        );
        println!(
            "| rejected (to / from) | {} / {} |",
            last.legs.to_crm.rejected, last.legs.from_crm.rejected
        );
        println!("| wall time | {:.1} s |", wall.as_secs_f64());
    }

    /// How many pages the leg had, their total time and the mean time of
    /// its first and last ten.
    fn pace(&self, leg: &str) -> (usize, Duration, Duration, Duration) {
        let times: Vec<Duration> = self
            .pages
            .iter()
            .filter(|(phase, _)| phase == leg)
            .map(|(_, t)| *t)
            .collect();
        let mean = |ts: &[Duration]| ts.iter().sum::<Duration>() / ts.len().max(1) as u32;
        let ten = times.len().min(10);
        (
            times.len(),
            times.iter().sum(),
            mean(&times[..ten]),
            mean(&times[times.len() - ten..]),
        )
    }
}

/// N platform contacts and N Pipedrive persons, both legs.
async fn pipedrive(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let pd = &sandbox.description["pipedrive"];
    let company = pd["company_domain"].as_str().unwrap().to_owned();
    if !args.limits {
        sandbox
            .admin(
                http,
                Method::PATCH,
                &format!("/pipedrive/companies/{company}/limits"),
                json!({"burst_limit": 1_000_000_000_u64, "daily_budget": 1_000_000_000_000_u64, "abuse_threshold": 0}),
            )
            .await;
    }
    sandbox
        .seed(http, &format!("/pipedrive/companies/{company}/seed"),
            json!({"seed": 11, "people": people, "filter": 1.0, "missing_email": 0.0, "duplicate_email": 0.0}),
        )
        .await;

    let platform = Platform::with_contacts(args, people).await;
    let credentials = crmsync_worker::crm::pipedrive::kit::credentials(
        SecretString::from(pd["api_token"].as_str().unwrap().to_owned()),
        &company,
    );
    let base_url = pd["base_url"].as_str().unwrap().to_owned();
    let connector_id = platform
        .default_connector(ConnectorKind::Pipedrive, &credentials, &base_url, |_| {})
        .await;

    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let (last, wall) = (&finished.last, finished.wall);
    let counts = sandbox.requests(http, "pipedrive").await;
    let total = counts.total;
    let throttled = counts.throttled();
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} Pipedrive persons, sandbox limits {}, {}.",
        if args.limits {
            "on (burst 80 per 2 s)"
        } else {
            "off"
        },
        platform.database()
    );
    finished.print_head("Pipedrive");
    println!(
        "| contacts per second (both legs) | {:.0} |",
        (2 * people) as f64 / wall.as_secs_f64()
    );
    println!("| CRM calls | {total} |");
    println!(
        "| calls per contact | {:.3} |",
        total as f64 / (2 * people) as f64
    );
    println!(
        "| achieved request rate | {:.1} /s |",
        total as f64 / wall.as_secs_f64()
    );
    println!(
        "| 429 replies | {throttled} ({:.2} %) |",
        100.0 * throttled as f64 / total.max(1) as f64
    );
    platform.end(&counts, last.status).await;
}

/// One FULL sync against the sandbox Zoho with one side empty: N platform
/// contacts exported to an empty org, or N leads imported into an empty
/// platform.
async fn zoho(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let z = &sandbox.description["zoho"];
    let org = z["org_id"].as_str().unwrap().to_owned();
    let accounts_url = z["accounts_url"].as_str().unwrap().to_owned();
    let client_id = z["client_id"].as_str().unwrap().to_owned();
    let client_secret = z["client_secret"].as_str().unwrap().to_owned();
    let concurrency = args.concurrency as usize;
    sandbox
        .admin(
            http,
            Method::PATCH,
            &format!("/zoho/orgs/{org}/limits"),
            json!({"concurrency": concurrency, "heavy_concurrency": concurrency}),
        )
        .await;
    if !args.export {
        // Plain leads: no conversions, no missing or shared e-mails, no values
        // outside the picklists. The seed makes every seventh person a Contact,
        // which the default settings do not import: enough people for N leads.
        let spec_people = (people..).find(|p| p - p / 7 >= people).unwrap();
        let seeded = sandbox
            .seed(
                http,
                &format!("/zoho/orgs/{org}/seed"),
                json!({"seed": 11, "people": spec_people, "converted": 0.0, "missing_email": 0.0,
                       "duplicate_email": 0.0, "unknown_picklist": 0.0}),
            )
            .await;
        assert_eq!(seeded["leads"], people, "seeded {seeded}");
    }
    if args.latency_ms > 0 {
        sandbox
            .admin(
                http,
                Method::POST,
                "/faults",
                json!({"kind": "latency", "system": "zoho", "endpoint": "POST /zoho/api/*",
                       "fixed_ms": args.latency_ms}),
            )
            .await;
    }

    let platform = Platform::with_contacts(args, if args.import { 0 } else { people }).await;
    let grant = crmsync_worker::crm::zoho::exchange_grant_code(
        &crm_http(),
        &accounts_url,
        &client_id,
        &client_secret,
        z["grant_code"].as_str().unwrap(),
    )
    .await
    .unwrap();
    let credentials = crmsync_worker::crm::zoho::kit::credentials(
        &client_id,
        &client_secret,
        "com",
        Some(&org),
        grant.refresh_token,
    );
    let client = crmsync_worker::crm::client_for(
        &credentials,
        Some(&accounts_url),
        crm_http(),
        &Metrics::new(),
    )
    .unwrap();
    let fields = client.fields(CrmModule::Leads).await.unwrap();
    let mut settings = ConnectorSettings::defaults_for(
        crmsync_worker::crm::registry::describe(ConnectorKind::ZohoCrm).unwrap(),
    );
    settings.max_concurrent_calls = Some(args.concurrency);
    let mappings = crmsync_worker::platform::default_mappings(
        crmsync_worker::crm::registry::describe(ConnectorKind::ZohoCrm).unwrap(),
        &fields,
    );
    let connector_id = platform
        .connector(
            ConnectorKind::ZohoCrm,
            &credentials,
            &accounts_url,
            &settings,
            mappings,
        )
        .await;

    let (stop_sampling, sampling_stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_in_flight(
        http.clone(),
        format!("{}/zoho/orgs/{org}/usage", sandbox.admin),
        sampling_stopped,
    ));
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&sandbox.pid));
    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let cpu = (
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&sandbox.pid) - cpu_before.1,
    );
    let (last, wall) = (&finished.last, finished.wall);
    let _ = stop_sampling.send(());
    let in_flight = sampler.await.unwrap();
    let counts = sandbox.requests(http, "zoho").await;
    let usage = sandbox
        .admin(
            http,
            Method::GET,
            &format!("/zoho/orgs/{org}/usage"),
            Value::Null,
        )
        .await;

    let upserts = counts.calls(zoho_api("POST", "/upsert"));
    let reads = counts.calls(zoho_api("GET", ""));
    let secs = wall.as_secs_f64();
    let latency = if args.latency_ms > 0 {
        format!("{} ms latency on API POSTs", args.latency_ms)
    } else {
        "no injected latency".into()
    };
    let database = platform.database();
    if args.export {
        println!(
            "Zoho export benchmark: {people} platform contacts to an empty org, {latency}, concurrency {concurrency}, {database}."
        );
    } else if args.import {
        println!(
            "Zoho import benchmark: {people} leads to an empty platform, {latency}, concurrency {concurrency}, {database}."
        );
    } else {
        println!(
            "Zoho two-way benchmark: {people} platform contacts and {people} leads (disjoint e-mails), {latency}, concurrency {concurrency}, {database}."
        );
    }
    println!("\n| figure | value |\n| --- | ---: |");
    println!("| final status | {:?} |", last.status);
    println!(
        "| rejected (to / from) | {} / {} |",
        last.legs.to_crm.rejected, last.legs.from_crm.rejected
    );
    println!("| wall time of the run | {secs:.2} s |");
    let moved = if args.export || args.import {
        people
    } else {
        2 * people
    };
    println!(
        "| contacts per second (both legs) | {:.0} |",
        moved as f64 / secs.max(f64::EPSILON)
    );
    if !args.import {
        let expected = people.div_ceil(100) as u64;
        let bound = upserts as f64 * args.latency_ms as f64 / 1000.0 / concurrency as f64;
        println!("| created in Zoho | {} |", last.legs.to_crm.created);
        if args.export {
            println!("| upsert calls (target ceil(N/100) = {expected}) | **{upserts}** |");
        }
        if bound > 0.0 {
            println!(
                "| bound: upserts x latency / concurrency | {bound:.2} s (target: wall at most {:.2} s) |",
                1.2 * bound
            );
            println!(
                "| wall / bound (target at most 1.2) | **{:.2}** |",
                secs / bound
            );
        }
    }
    if !args.export {
        println!(
            "| contacts created in the platform | {} |",
            last.legs.from_crm.created
        );
        println!(
            "| read calls (target at most N/200 + 2 = {}) | **{reads}** |",
            people / 200 + 2
        );
        println!(
            "| of which list pages / settings/fields / users / by id | {} / {} / {} / {} |",
            counts.calls(|e| e == "GET /zoho/api/crm/v8/{module}"),
            counts.calls(zoho_api("GET", "/settings/fields")),
            counts.calls(zoho_api("GET", "/users")),
            counts.calls(|e| e == "GET /zoho/api/crm/v8/{module}/{id}"),
        );
        if args.import {
            println!("| upsert calls (write-backs) | {upserts} |");
        } else {
            println!(
                "| upsert calls (exports and write-backs; target 2 x ceil(N/100) = {}) | **{upserts}** |",
                2 * people.div_ceil(100)
            );
        }
    }
    println!("| CRM calls during the run | {} |", counts.total);
    println!(
        "| token calls (the org's, since the sandbox started) | {} |",
        usage["token_calls"]
    );
    println!("| 429 replies | {} |", counts.throttled());
    println!(
        "| time with at least one call in flight | {:.2} s ({:.0} %) |",
        in_flight.busy_share() * secs,
        100.0 * in_flight.busy_share()
    );
    println!(
        "| calls in flight: mean while busy / max | {:.1} / {} |",
        in_flight.mean_while_busy(),
        in_flight.max
    );
    for leg in ["import", "export"] {
        let (pages, total, first, last_pages) = finished.pace(leg);
        println!(
            "| {leg} leg: pages, their time, mean of the first / last ten | {pages}, {:.2} s, {:.0} / {:.0} ms |",
            total.as_secs_f64(),
            first.as_secs_f64() * 1000.0,
            last_pages.as_secs_f64() * 1000.0
        );
    }
    println!(
        "| CPU time during the run: crmsync / sandbox | {:.2} s / {:.2} s |",
        cpu.0, cpu.1
    );
    platform.end(&counts, last.status).await;
}

/// Samples of the Zoho org's calls in flight (the sandbox counts a call from
/// the moment it takes its concurrency slot, injected latency included).
#[derive(Debug, Default)]
struct InFlight {
    samples: u64,
    busy: u64,
    sum: u64,
    max: u64,
}

impl InFlight {
    /// Share of samples with at least one call in flight.
    fn busy_share(&self) -> f64 {
        self.busy as f64 / self.samples.max(1) as f64
    }

    /// Calls in flight on average when there was at least one.
    fn mean_while_busy(&self) -> f64 {
        self.sum as f64 / self.busy.max(1) as f64
    }
}

/// Reads the org's usage every 5 ms until `stop` fires.
async fn sample_in_flight(
    http: reqwest::Client,
    url: String,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> InFlight {
    let mut out = InFlight::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return out,
            _ = tick.tick() => {}
        }
        let Ok(resp) = http.get(&url).send().await else {
            continue;
        };
        let Ok(usage) = resp.json::<Value>().await else {
            continue;
        };
        let n = usage["in_flight"].as_u64().unwrap_or(0);
        out.samples += 1;
        out.sum += n;
        out.max = out.max.max(n);
        if n > 0 {
            out.busy += 1;
        }
    }
}

/// N platform contacts and N HubSpot contacts (disjoint e-mails), both legs,
/// at the sandbox portal's default limits.
async fn hubspot(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let hs = &sandbox.description["hubspot"];
    let portal = hs["portal_id"].as_u64().unwrap();
    sandbox
        .seed(
            http,
            &format!("/hubspot/portals/{portal}/seed"),
            json!({"seed": 11, "people": people, "missing_email": 0.0, "duplicate_email": 0.0}),
        )
        .await;
    let limits = sandbox
        .admin(
            http,
            Method::GET,
            &format!("/hubspot/portals/{portal}/limits"),
            Value::Null,
        )
        .await;

    let platform = Platform::with_contacts(args, people).await;
    let credentials = crmsync_worker::crm::hubspot::kit::private_app_credentials(
        SecretString::from(hs["access_token"].as_str().unwrap().to_owned()),
    );
    let base_url = hs["base_url"].as_str().unwrap().to_owned();
    let connector_id = platform
        .default_connector(ConnectorKind::Hubspot, &credentials, &base_url, |_| {})
        .await;

    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let (export_pages, export_time, _, _) = finished.pace("export");
    let (last, wall) = (&finished.last, finished.wall);
    let counts = sandbox.requests(http, "hubspot").await;
    let total = counts.total;
    let throttled = counts.throttled();
    let calls = |suffix: &'static str| {
        counts.calls(move |e| {
            e.starts_with("POST /hubspot/crm/v3/objects/contacts/") && e.ends_with(suffix)
        })
    };
    let searches = calls("/search");
    let limit = limits["ten_secondly"].as_u64().unwrap_or(190);
    let batches = people.div_ceil(100) as u64;
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} HubSpot contacts, the sandbox portal's default limits ({limit} per 10 s)."
    );
    finished.print_head("HubSpot");
    println!(
        "| batch upserts / ceil(N/100) | {} / {batches} = {:.3} |",
        calls("/batch/upsert"),
        calls("/batch/upsert") as f64 / batches as f64
    );
    println!(
        "| batch updates / ceil(N/100) | {} / {batches} = {:.3} |",
        calls("/batch/update"),
        calls("/batch/update") as f64 / batches as f64
    );
    println!("| search calls | {searches} |");
    println!("| CRM calls | {total} |");
    let rate = (total - searches) as f64 / wall.as_secs_f64();
    println!(
        "| request rate, share of the 10-second limit | {rate:.1}/s, {:.1} % |",
        100.0 * rate / (limit as f64 / 10.0)
    );
    let export_rate = calls("/batch/upsert") as f64 / export_time.as_secs_f64();
    println!(
        "| export leg: {export_pages} pages in {:.1} s, upserts {export_rate:.1}/s, share of the limit | {:.1} % |",
        export_time.as_secs_f64(),
        100.0 * export_rate / (limit as f64 / 10.0)
    );
    println!(
        "| 429 replies | {throttled} ({:.2} %) |",
        100.0 * throttled as f64 / total.max(1) as f64
    );
    platform.end(&counts, last.status).await;
}

/// N platform contacts and N leads (disjoint e-mails), both legs, on a fresh
/// sandbox org whose daily request limit is not in the way.
async fn salesforce(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let org = sandbox
        .admin(
            http,
            Method::POST,
            "/salesforce/orgs",
            json!({
                "name": "Bench",
                "daily_api_requests": 1_000_000,
                "seed": {"seed": 11, "people": people, "missing_email": 0.0,
                         "duplicate_email": 0.0, "converted": 0.0},
            }),
        )
        .await;
    let org_id = org["org_id"].as_str().unwrap().to_owned();
    let secret = |key: &str| SecretString::from(org[key].as_str().unwrap().to_owned());
    let credentials = crmsync_worker::crm::salesforce::kit::refresh_credentials(
        secret("client_id"),
        secret("client_secret"),
        secret("refresh_token"),
        None,
    );
    let base_url = org["login_url"].as_str().unwrap().to_owned();

    let platform = Platform::with_contacts(args, people).await;
    let connector_id = platform
        .default_connector(ConnectorKind::Salesforce, &credentials, &base_url, |s| {
            s.default_company = Some("Bench Co".into());
        })
        .await;

    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let last = &finished.last;
    let usage = sandbox
        .admin(
            http,
            Method::GET,
            &format!("/salesforce/orgs/{org_id}/usage"),
            Value::Null,
        )
        .await;
    let counts = sandbox.requests(http, "salesforce").await;
    let writes = |method: &'static str| {
        counts.calls(move |e| e.starts_with(method) && e.ends_with("/composite/sobjects"))
    };
    let (creates, updates) = (writes("POST "), writes("PATCH "));
    let queries = counts.calls(|e| e.starts_with("GET ") && e.contains("/query"));
    let batches = people.div_ceil(200) as u64;
    let pages = people.div_ceil(2000) as u64;
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} Salesforce leads, a fresh sandbox org."
    );
    finished.print_head("Salesforce");
    println!(
        "| collection creates / ceil(N/200) | {creates} / {batches} = {:.3} |",
        creates as f64 / batches as f64
    );
    println!(
        "| collection updates / ceil(N/200) | {updates} / {batches} = {:.3} |",
        updates as f64 / batches as f64
    );
    println!(
        "| query calls (query + next pages) / ceil(N/2000) | {queries} / {pages} = {:.3} |",
        queries as f64 / pages as f64
    );
    println!("| CRM calls | {} |", counts.total);
    println!("| API usage of the org (Sforce-Limit-Info) | {usage} |");
    platform.end(&counts, last.status).await;
}

/// N platform contacts and N leads (disjoint e-mails), both legs, on a fresh
/// sandbox Sell account with the limits the command line gives.
async fn zendesk_sell(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let per_second = args.per_second.unwrap_or(10);
    let hourly = args.hourly.unwrap_or(36_000);
    let account = sandbox
        .admin(
            http,
            Method::POST,
            "/zendesk_sell/accounts",
            json!({
                "name": "Bench",
                "limits": {"per_second": per_second, "hourly": hourly},
                "seed": {"seed": 11, "people": people, "missing_email": 0.0,
                         "duplicate_email": 0.0, "converted": 0.0},
            }),
        )
        .await;
    let credentials = crmsync_worker::crm::zendesk_sell::kit::credentials(SecretString::from(
        account["access_token"].as_str().unwrap().to_owned(),
    ));
    let base_url = account["base_url"].as_str().unwrap().to_owned();

    let platform = Platform::with_contacts(args, people).await;
    let connector_id = platform
        .default_connector(ConnectorKind::ZendeskSell, &credentials, &base_url, |s| {
            if per_second != 10 {
                s.max_requests_per_second = Some(per_second as u32);
            }
            if args.concurrency_given {
                s.max_concurrent_calls = Some(args.concurrency);
            }
        })
        .await;

    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let (export_pages, export_time, _, _) = finished.pace("export");
    let (last, wall) = (&finished.last, finished.wall);
    let counts = sandbox.requests(http, "zendesk_sell").await;
    let total = counts.total;
    let throttled = counts.throttled();
    let creates = counts.calls(|e| e == "POST /zendesk_sell/v2/leads");
    let updates = counts.calls(|e| e == "PUT /zendesk_sell/v2/leads/{id}");
    let pages = counts.calls(|e| e == "GET /zendesk_sell/v2/leads");
    // Creates, write-backs and pages count every reply, 429s included.
    let other = total - creates - updates - pages;
    let minimal_pages = people.div_ceil(100) as u64;
    let minimal = 2 * people as u64 + minimal_pages;
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} Zendesk Sell leads, a fresh sandbox account at {per_second} requests/s and {hourly}/h."
    );
    finished.print_head("Zendesk Sell");
    println!(
        "| creates (POST) / N | {creates} / {people} = {:.3} |",
        creates as f64 / people as f64
    );
    println!(
        "| write-backs (PUT) / N | {updates} / {people} = {:.3} |",
        updates as f64 / people as f64
    );
    println!(
        "| lead list pages / ceil(N/100) | {pages} / {minimal_pages} = {:.3} |",
        pages as f64 / minimal_pages as f64
    );
    println!("| other calls (users, fields, lookups) | {other} |");
    println!(
        "| calls answered / minimal (2N + ceil(N/100)) | {} / {minimal} = {:.4} |",
        total - throttled,
        (total - throttled) as f64 / minimal as f64
    );
    let rate = (total - throttled) as f64 / wall.as_secs_f64();
    println!(
        "| whole run: request rate, share of {per_second}/s | {rate:.2}/s, {:.1} % |",
        100.0 * rate / per_second as f64
    );
    let export_rate = creates as f64 / export_time.as_secs_f64();
    println!(
        "| export leg: {export_pages} pages in {:.1} s, creates {export_rate:.2}/s, share | {:.1} % |",
        export_time.as_secs_f64(),
        100.0 * export_rate / per_second as f64
    );
    println!(
        "| 429 replies | {throttled} ({:.2} %) |",
        100.0 * throttled as f64 / total.max(1) as f64
    );
    platform.end(&counts, last.status).await;
}

/// N platform contacts and N leads (disjoint e-mails), both legs, on a fresh
/// sandbox C4C tenant at its default settings.
async fn sap_c4c(args: &Args, http: &reqwest::Client, sandbox: &Sandbox) {
    let people = args.people;
    let tenant = sandbox
        .admin(
            http,
            Method::POST,
            "/sap_c4c/tenants",
            json!({
                "seed": {"seed": 11, "people": people, "missing_email": 0.0,
                         "duplicate_email": 0.0, "converted": 0.0},
            }),
        )
        .await;
    let text = |key: &str| tenant[key].as_str().unwrap().to_owned();
    let credentials = crmsync_worker::crm::sap_c4c::kit::credentials(
        &text("username"),
        SecretString::from(text("password")),
    );
    let base_url = text("base_url");
    let settings = sandbox
        .admin(
            http,
            Method::GET,
            &format!("/sap_c4c/tenants/{}/settings", text("tenant")),
            Value::Null,
        )
        .await;

    let platform = Platform::with_contacts(args, people).await;
    let connector_id = platform
        .default_connector(ConnectorKind::SapC4c, &credentials, &base_url, |s| {
            s.default_company = Some("Bench Co".into());
            if args.concurrency_given {
                s.max_concurrent_calls = Some(args.concurrency);
            }
        })
        .await;

    let finished = platform.full_sync(http, sandbox, &connector_id).await;
    let (last, wall) = (&finished.last, finished.wall);
    let counts = sandbox.requests(http, "sap_c4c").await;
    let total = counts.total;
    let throttled = counts.throttled();
    let root = "/sap/c4c/odata/v1/c4codataapi";
    let batches = counts.calls(|e| e == format!("POST {root}/$batch"));
    let reads = counts.calls(|e| e == format!("GET {root}/{{resource}}"));
    let minimal_batches = 2 * people.div_ceil(1000) as u64;
    let minimal_pages = people.div_ceil(1000) as u64;
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} SAP C4C leads, a fresh sandbox tenant ({settings})."
    );
    finished.print_head("SAP C4C");
    println!(
        "| $batch calls / 2 x ceil(N/1000) | {batches} / {minimal_batches} = {:.3} |",
        batches as f64 / minimal_batches as f64
    );
    println!(
        "| entity set reads (list pages, code lists, employees) / ceil(N/1000) | {reads} / {minimal_pages} |"
    );
    println!(
        "| CRM calls / minimal (pages + batches) | {total} / {} = {:.3} |",
        minimal_pages + minimal_batches,
        total as f64 / (minimal_pages + minimal_batches) as f64
    );
    println!(
        "| records written per second (both legs) | {:.0} |",
        (2 * people) as f64 / wall.as_secs_f64()
    );
    println!(
        "| request rate | {:.1}/s |",
        total as f64 / wall.as_secs_f64()
    );
    println!(
        "| 429 replies | {throttled} ({:.2} %) |",
        100.0 * throttled as f64 / total.max(1) as f64
    );
    platform.end(&counts, last.status).await;
}
