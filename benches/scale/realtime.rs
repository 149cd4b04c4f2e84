//! Real time from the CRM (issue 27): one API process (the inbound URL,
//! `CRMSYNC_PUBLIC_URL`) and one worker process on PostgreSQL, the sandbox
//! CRM with `--latency-ms` on every API call, and a connector whose
//! subscription the worker keeps. The tenant's `--bulk` contacts are first
//! exported to the CRM by a FULL sync; once every run has ended and the CRM
//! has nothing left to deliver, two measurements:
//!
//! 1. Single edits: `--edits` records renamed one at a time through the
//!    CRM's API, spread evenly over `--spread-secs`. For each, the time from
//!    the CRM's answer to the edit (the change is stored then) to the first
//!    moment the platform's contact holds the new name, read from the
//!    database every 20 ms: p50, p99, max.
//! 2. A bulk edit: every one of the `--bulk` records renamed, as fast as the
//!    CRM's API takes it (Pipedrive: a PATCH per person, 16 at once; Zoho: a
//!    PUT of 100 leads per call, 4 at once). The CRM_EVENT runs it caused,
//!    the CRM read calls (the record reads by id: Pipedrive's
//!    `GET /api/v2/persons?ids=`, Zoho's `GET /{Module}?ids=`) against
//!    `ceil(bulk / 100)`, and the time from the first edit until every
//!    contact holds its new name.
//!
//! ```sh
//! CRMSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench --bench scale -- --realtime --crm pipedrive --latency-ms 50
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_entity::testing::TestDatabase;
use futures::StreamExt;
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::sync::Mutex;

use super::{insert_contacts, ms, number_arg, percentile, text_arg};
use crate::cluster::{Cluster, Process};
use crmsync_sandbox::{Sandbox, SandboxConfig};

/// Records one read-by-ids call takes, on both CRMs.
const IDS_PER_READ: usize = 100;

struct Args {
    crm: String,
    edits: usize,
    spread: Duration,
    bulk: usize,
}

impl Args {
    fn parse() -> Self {
        let crm = text_arg("--crm").unwrap_or_else(|| "pipedrive".into());
        assert!(
            crm == "pipedrive" || crm == "zoho",
            "--crm: pipedrive or zoho"
        );
        Self {
            crm,
            edits: number_arg("--edits", 500),
            spread: Duration::from_secs(number_arg("--spread-secs", 60) as u64),
            bulk: number_arg("--bulk", 5000),
        }
    }
}

/// The CRM side: where its records are, and how a person edits them.
enum Crm {
    Pipedrive {
        base_url: String,
        token: String,
        domain: String,
    },
    Zoho {
        api_domain: String,
        access_token: String,
        org: String,
    },
}

impl Crm {
    /// Renames records (CRM id, new last name) in one call where the CRM
    /// takes several (Zoho), else one call each.
    async fn rename(&self, http: &reqwest::Client, records: &[(String, String)]) {
        match self {
            Crm::Pipedrive {
                base_url, token, ..
            } => {
                for (id, last) in records {
                    let reply = http
                        .patch(format!("{base_url}/api/v2/persons/{id}"))
                        .header("x-api-token", token)
                        .json(&json!({ "name": format!("Person {last}") }))
                        .send()
                        .await
                        .unwrap();
                    assert!(reply.status().is_success(), "{}", reply.status());
                }
            }
            Crm::Zoho {
                api_domain,
                access_token,
                ..
            } => {
                let data: Vec<Value> = records
                    .iter()
                    .map(|(id, last)| json!({ "id": id, "Last_Name": last }))
                    .collect();
                let reply = http
                    .put(format!("{api_domain}/crm/v8/Leads"))
                    .header("authorization", format!("Zoho-oauthtoken {access_token}"))
                    .json(&json!({ "data": data }))
                    .send()
                    .await
                    .unwrap();
                assert!(reply.status().is_success(), "{}", reply.status());
            }
        }
    }

    /// Records renamed per call in the bulk edit, and calls at once.
    fn bulk_shape(&self) -> (usize, usize) {
        match self {
            Crm::Pipedrive { .. } => (1, 16),
            Crm::Zoho { .. } => (100, 4),
        }
    }

    /// The CRM's record ids by e-mail, as the sandbox stores them.
    async fn ids(&self, http: &reqwest::Client, sandbox: &Sandbox) -> HashMap<String, String> {
        let admin = &sandbox.description().admin_url;
        let (url, email_of): (String, fn(&Value) -> Option<String>) = match self {
            Crm::Pipedrive { domain, .. } => (
                format!("{admin}/pipedrive/companies/{domain}/persons"),
                |p| p["emails"][0]["value"].as_str().map(str::to_lowercase),
            ),
            Crm::Zoho { org, .. } => (format!("{admin}/zoho/orgs/{org}/records/Leads"), |r| {
                r["Email"].as_str().map(str::to_lowercase)
            }),
        };
        let stored: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let rows = stored["persons"]
            .as_array()
            .or_else(|| stored["records"].as_array())
            .expect("the sandbox lists the records");
        rows.iter()
            .filter_map(|r| {
                let id = match &r["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((email_of(r)?, id))
            })
            .collect()
    }

    /// The CRM's read-by-ids calls so far.
    async fn reads(&self, http: &reqwest::Client, sandbox: &Sandbox) -> u64 {
        let admin = &sandbox.description().admin_url;
        let (system, endpoint) = match self {
            Crm::Pipedrive { .. } => ("pipedrive", "/api/v2/persons"),
            Crm::Zoho { .. } => ("zoho", "/zoho/api/crm/v8/{module}"),
        };
        let counted: Value = http
            .get(format!("{admin}/requests?system={system}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        counted["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["endpoint"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("GET ") && e.ends_with(endpoint))
            })
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum()
    }
}

/// A port free now, for the API process to listen on and be called at.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn admin(
    http: &reqwest::Client,
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    body: Value,
) -> Value {
    let reply = http
        .request(method, format!("{}{path}", sandbox.description().admin_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let text = reply.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The connector on the CRM, and the CRM side of the benchmark.
async fn connector(
    cluster: &Cluster,
    api: &Process,
    admin_token: &str,
    sandbox: &Sandbox,
    crm: &str,
) -> (String, Crm) {
    let http = &cluster.http;
    match crm {
        "pipedrive" => {
            let company = admin(
                http,
                sandbox,
                Method::POST,
                "/pipedrive/companies",
                json!({
                    "domain": "realtime",
                    "burst_limit": 1_000_000_000_u64,
                    "daily_budget": 1_000_000_000_000_u64,
                    "abuse_threshold": 0,
                }),
            )
            .await;
            let base_url = company["base_url"].as_str().unwrap().to_owned();
            let token = company["api_token"].as_str().unwrap().to_owned();
            let id = cluster
                .connector(api, admin_token, &base_url, &token, "realtime")
                .await;
            (
                id,
                Crm::Pipedrive {
                    base_url,
                    token,
                    domain: "realtime".into(),
                },
            )
        }
        _ => {
            let z = sandbox.description().zoho.clone();
            admin(
                http,
                sandbox,
                Method::PATCH,
                &format!("/zoho/orgs/{}/limits", z.org_id),
                json!({ "concurrency": 100, "heavy_concurrency": 100, "daily_credits": 1_000_000_000_u64 }),
            )
            .await;
            let created = cluster
                .graphql(
                    api,
                    admin_token,
                    "mutation($input: CreateConnectorInput!) { createConnector(input: $input) { connector { id } } }",
                    json!({ "input": {
                        "kind": "ZOHO_CRM",
                        "name": "Zoho",
                        "zoho": {
                            "clientId": z.client_id, "clientSecret": z.client_secret,
                            "dataCenter": "eu", "orgId": z.org_id, "grantCode": z.grant_code,
                        },
                        "baseUrl": z.accounts_url,
                        "settings": { "minScoreToExport": 0 },
                    }}),
                )
                .await;
            let id = created["createConnector"]["connector"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"))
                .to_owned();
            // A token of our own for the edits, as a person's script would get one.
            let code: Value = http
                .post(&z.mint_grant_code_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let grant: Value = http
                .post(format!("{}/oauth/v2/token", z.accounts_url))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", &z.client_id),
                    ("client_secret", &z.client_secret),
                    ("code", code["code"].as_str().unwrap()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                id,
                Crm::Zoho {
                    api_domain: grant["api_domain"].as_str().unwrap().to_owned(),
                    access_token: grant["access_token"].as_str().unwrap().to_owned(),
                    org: z.org_id.clone(),
                },
            )
        }
    }
}

/// Runs of the connector still QUEUED or RUNNING.
async fn busy_runs(cluster: &Cluster, connector: &str) -> i64 {
    let db = &cluster.db.db;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM sync_runs WHERE connector_id = $1 AND status IN ('QUEUED', 'RUNNING')",
            [connector.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Waits until the CRM has nothing left to deliver and no run is going, twice
/// in a row a second apart.
async fn settle(cluster: &Cluster, sandbox: &Sandbox, connector: &str) {
    let mut quiet = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while quiet < 2 {
        assert!(Instant::now() < deadline, "never settled");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pending = admin(
            &cluster.http,
            sandbox,
            Method::GET,
            "/notify/deliveries",
            Value::Null,
        )
        .await["pending"]
            .as_u64()
            .unwrap_or(0);
        if pending == 0 && busy_runs(cluster, connector).await == 0 {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}

/// The connector's real-time state.
async fn realtime_state(
    cluster: &Cluster,
    api: &Process,
    admin_token: &str,
    connector: &str,
) -> Value {
    cluster
        .graphql(
            api,
            admin_token,
            "query($id: ID!) { connector(id: $id) { realtime { state message } } }",
            json!({ "id": connector }),
        )
        .await["connector"]["realtime"]
        .clone()
}

/// When each (e-mail, last name) was first seen in the platform: a task
/// reading the tenant's renamed contacts every 20 ms.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<(String, String), Instant>>>);

impl Seen {
    fn watch(&self, cluster: &Cluster, tenant_id: &str) -> tokio::task::JoinHandle<()> {
        let seen = self.clone();
        let db = cluster.db.db.clone();
        let tenant_id = tenant_id.to_owned();
        tokio::spawn(async move {
            loop {
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        db.get_database_backend(),
                        "SELECT email, last_name FROM contacts WHERE tenant_id = $1 AND last_name <> 'Original'",
                        [tenant_id.as_str().into()],
                    ))
                    .await
                    .unwrap();
                let now = Instant::now();
                {
                    let mut seen = seen.0.lock().unwrap();
                    for row in rows {
                        let email: String = row.try_get("", "email").unwrap();
                        let last: Option<String> = row.try_get("", "last_name").unwrap();
                        seen.entry((email, last.unwrap_or_default())).or_insert(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn at(&self, email: &str, last: &str) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .get(&(email.to_owned(), last.to_owned()))
            .copied()
    }
}

/// Waits until every (e-mail, last name) has been seen; the last moment.
async fn all_seen(seen: &Seen, wanted: &[(String, String)], within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    loop {
        let times: Vec<Option<Instant>> = wanted.iter().map(|(e, l)| seen.at(e, l)).collect();
        if times.iter().all(Option::is_some) {
            return times.into_iter().flatten().max();
        }
        if Instant::now() > deadline {
            let missing = times.iter().filter(|t| t.is_none()).count();
            println!("{missing} of {} never reached the platform", wanted.len());
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CRM_EVENT runs of the connector queued since `since` (a database time).
async fn crm_event_runs(
    cluster: &Cluster,
    connector: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> (i64, i64) {
    let db = &cluster.db.db;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(from_crm_updated), 0) AS BIGINT) AS updated FROM sync_runs \
             WHERE connector_id = $1 AND trigger = 'CRM_EVENT' AND queued_at >= $2",
            [connector.into(), since.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "n").unwrap(),
        row.try_get("", "updated").unwrap(),
    )
}

pub(crate) async fn main(latency_ms: u64) {
    let args = Args::parse();
    println!(
        "Real time ({}): 1 API + 1 worker process on PostgreSQL, {latency_ms} ms per CRM API call; {} single edits over {} s, then a bulk edit of {} records.",
        args.crm,
        args.edits,
        args.spread.as_secs(),
        args.bulk
    );
    assert!(args.edits <= args.bulk, "--edits: at most --bulk");
    let database = TestDatabase::new().await;
    crate::fresh_statistics(&database).await;
    let mut cluster = Cluster::new(database, None).await;
    let port = free_port();
    cluster.set_env("CRMSYNC_BIND", &format!("127.0.0.1:{port}"));
    cluster.set_env("CRMSYNC_PUBLIC_URL", &format!("http://127.0.0.1:{port}"));
    let http = cluster.http.clone();
    let sandbox = Sandbox::start(SandboxConfig {
        people: 0,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = cluster.api();
    let _worker = cluster.worker_with(4);
    let admin_token = cluster.empty_tenant(&api).await;
    let tenant_id: String = {
        let db = &cluster.db.db;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT id FROM tenants WHERE slug = 'scale'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "id").unwrap()
    };
    insert_contacts(&cluster, &tenant_id, args.bulk, |i| {
        format!("rt{i}@rt.example")
    })
    .await;
    let (connector, crm) = connector(&cluster, &api, &admin_token, &sandbox, &args.crm).await;
    let system = match crm {
        Crm::Pipedrive { .. } => "pipedrive",
        Crm::Zoho { .. } => "zoho",
    };
    admin(
        &http,
        &sandbox,
        Method::POST,
        "/faults",
        json!({ "kind": "latency", "system": system, "fixed_ms": latency_ms }),
    )
    .await;

    // The records in the CRM, every run ended, the subscription active.
    let run = cluster.start_sync(&api, &admin_token, &connector).await;
    let status = cluster.final_status(&run, Duration::from_secs(3600)).await;
    assert_eq!(status, "SUCCEEDED", "the first sync");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = realtime_state(&cluster, &api, &admin_token, &connector).await;
        if state["state"] == "ACTIVE" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "real time never became active: {state}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settle(&cluster, &sandbox, &connector).await;
    let ids = crm.ids(&http, &sandbox).await;
    assert_eq!(ids.len(), args.bulk, "every contact in the CRM");
    let seen = Seen::default();
    let watcher = seen.watch(&cluster, &tenant_id);

    // 1. Single edits, spread evenly.
    let gap = args.spread / args.edits.max(1) as u32;
    let mut ticks = tokio::time::interval(gap);
    let crm = Arc::new(crm);
    let mut edits = Vec::new();
    for k in 0..args.edits {
        ticks.tick().await;
        let email = format!("rt{k}@rt.example");
        let last = format!("Single{k}");
        let id = ids[&email].clone();
        let crm = crm.clone();
        let http = http.clone();
        edits.push(tokio::spawn(async move {
            crm.rename(&http, &[(id, last.clone())]).await;
            (email, last, Instant::now())
        }));
    }
    let mut done = Vec::new();
    for edit in edits {
        done.push(edit.await.unwrap());
    }
    let wanted: Vec<(String, String)> = done
        .iter()
        .map(|(e, l, _)| (e.clone(), l.clone()))
        .collect();
    all_seen(&seen, &wanted, Duration::from_secs(120)).await;
    let mut latencies: Vec<Duration> = done
        .iter()
        .filter_map(|(e, l, at)| Some(seen.at(e, l)?.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    println!(
        "single edits: CRM edit to platform contact p50 {} ms, p99 {} ms, max {} ms over {} edits",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    settle(&cluster, &sandbox, &connector).await;

    // 2. A bulk edit of every record.
    let reads_before = crm.reads(&http, &sandbox).await;
    let since = chrono::Utc::now();
    let (per_call, at_once) = crm.bulk_shape();
    let renames: Vec<(String, String, String)> = (0..args.bulk)
        .map(|i| {
            let email = format!("rt{i}@rt.example");
            (ids[&email].clone(), format!("Bulk{i}"), email)
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(renames.chunks(per_call))
        .map(|chunk| {
            let crm = crm.clone();
            let http = http.clone();
            let records: Vec<(String, String)> = chunk
                .iter()
                .map(|(id, last, _)| (id.clone(), last.clone()))
                .collect();
            async move { crm.rename(&http, &records).await }
        })
        .buffer_unordered(at_once)
        .collect::<Vec<_>>()
        .await;
    let edited = started.elapsed();
    let wanted: Vec<(String, String)> = renames
        .iter()
        .map(|(_, l, e)| (e.clone(), l.clone()))
        .collect();
    let last = all_seen(&seen, &wanted, Duration::from_secs(600)).await;
    settle(&cluster, &sandbox, &connector).await;
    let reads = crm.reads(&http, &sandbox).await - reads_before;
    let (runs, updated) = crm_event_runs(&cluster, &connector, since).await;
    let minimal = args.bulk.div_ceil(IDS_PER_READ);
    println!(
        "bulk edit of {}: edited in the CRM in {:.1} s; all in the platform {} after the first edit; {runs} CRM_EVENT runs updating {updated} contacts; {reads} read calls = {:.2} x ceil({} / {IDS_PER_READ}) = {minimal}",
        args.bulk,
        edited.as_secs_f64(),
        last.map_or("never".to_owned(), |at| format!(
            "{:.1} s",
            at.duration_since(started).as_secs_f64()
        )),
        reads as f64 / minimal as f64,
        args.bulk,
    );
    watcher.abort();
}
