//! Scale-out benchmark (issue 5): one API process and 1, then 2, worker
//! processes of the real binary on one PostgreSQL database, the sandbox
//! Pipedrive with a latency on every call, and C connectors (one Pipedrive
//! company each, limits off) exporting the tenant's N contacts.
//!
//! For each worker count it reports:
//! - throughput: C x N contacts written / wall time from the first `startSync`
//!   to the last run's end (and the ratio 2 workers / 1 worker);
//! - GraphQL latency of `syncRuns(first: 50)` (p50, p99) under `--clients`
//!   concurrent clients, each sending its next query when the previous one is
//!   answered, for as long as the syncs run;
//! - progress delay across processes: for every event a `syncEvents`
//!   subscriber on the API process receives, its arrival time minus the time
//!   the worker process published it (one machine, one clock): p50, p99, max.
//!
//! Needs the machine's PostgreSQL (`CRMSYNC_TEST_POSTGRES_URL`, as in
//! `.ci/run`'s second pass); a fresh database per worker count.
//!
//! ```sh
//! CRMSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench --bench scale -- --connectors 20 --contacts 5000 --latency-ms 20 --clients 200
//! ```
//!
//! `--fairness` measures fair slots instead (issue 26; `fairness.rs`): one
//! worker process with `--concurrency` slots; a large tenant's FULL sync
//! alone, then two large tenants' FULL syncs of `--large` contacts each with
//! `--small-tenants` tenants of `--small` contacts on a one-minute schedule
//! and a form submission per second spread over them:
//!
//! ```sh
//! CRMSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench --bench scale -- --fairness --large 200000 --small-tenants 50 --small 200 --latency-ms 20
//! ```

//! `--realtime` measures real time from the CRM instead (issue 27;
//! `realtime.rs`): single CRM edits to the platform contact, and a bulk
//! edit's runs and read calls, on `--crm pipedrive` or `--crm zoho`:
//!
//! ```sh
//! CRMSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench --bench scale -- --realtime --crm zoho --latency-ms 50
//! ```

#[path = "../tests/it/cluster.rs"]
mod cluster;
#[path = "scale/fairness.rs"]
mod fairness;
#[path = "scale/realtime.rs"]
mod realtime;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crmsync_entity::testing::{POSTGRES_ENV, TestDatabase};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Subscription, graphql, persons_of, sandbox};

struct Args {
    connectors: usize,
    contacts: usize,
    latency_ms: u64,
    clients: usize,
    concurrency: usize,
}

impl Args {
    fn parse() -> Self {
        Self {
            connectors: number_arg("--connectors", 20),
            contacts: number_arg("--contacts", 5000),
            latency_ms: number_arg("--latency-ms", 20) as u64,
            clients: number_arg("--clients", 200),
            concurrency: number_arg("--concurrency", 4),
        }
    }
}

/// The value given after `name` on the command line, if any.
fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number given after `name` on the command line, or `default`.
fn number_arg(name: &str, default: usize) -> usize {
    text_arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: expected a number"))
    })
}

/// `n` contacts of the tenant (e-mail `email(i)`), written to the database
/// directly, a thousand a statement: the API would take longer than the
/// benchmark.
async fn insert_contacts(
    cluster: &Cluster,
    tenant_id: &str,
    n: usize,
    email: impl Fn(usize) -> String,
) {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &cluster.db.db;
    for start in (0..n).step_by(1000) {
        let rows: Vec<String> = (start..(start + 1000).min(n))
            .map(|i| {
                format!(
                    "('{}', '{tenant_id}', '{}', 'Person{i}', 'Original', 50, 'PROSPECT', false, '{{}}', now(), now())",
                    crmsync_entity::new_id(),
                    email(i)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO contacts (id, tenant_id, email, first_name, last_name, behaviour_score, lifecycle, opted_out, custom_fields, created_at, updated_at) VALUES {}",
            rows.join(",")
        );
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
    }
}

/// What one worker count measured.
struct Measured {
    workers: usize,
    wall: Duration,
    written: usize,
    graphql: Vec<Duration>,
    delays: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if std::env::var(POSTGRES_ENV).is_err() {
        eprintln!("set {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
        std::process::exit(2);
    }
    if std::env::args().any(|a| a == "--fairness") {
        fairness::main(args.latency_ms, args.concurrency).await;
        return;
    }
    if std::env::args().any(|a| a == "--realtime") {
        realtime::main(args.latency_ms).await;
        return;
    }
    println!(
        "Scale-out: {} connectors x {} contacts, {} ms latency per Pipedrive call, {} GraphQL clients, worker concurrency {}.",
        args.connectors, args.contacts, args.latency_ms, args.clients, args.concurrency
    );
    let mut results = Vec::new();
    for workers in [1, 2] {
        let measured = run(&args, workers).await;
        let mut graphql = measured.graphql.clone();
        graphql.sort();
        let mut delays = measured.delays.clone();
        delays.sort();
        println!(
            "{} worker(s): {} contacts written in {:.1} s = {:.0} contacts/s; GraphQL syncRuns(first: 50) p50 {} ms, p99 {} ms over {} queries; progress delay p50 {} ms, p99 {} ms, max {} ms over {} events",
            measured.workers,
            measured.written,
            measured.wall.as_secs_f64(),
            measured.written as f64 / measured.wall.as_secs_f64(),
            ms(percentile(&graphql, 50.0)),
            ms(percentile(&graphql, 99.0)),
            graphql.len(),
            ms(percentile(&delays, 50.0)),
            ms(percentile(&delays, 99.0)),
            ms(delays.last().copied().unwrap_or_default()),
            delays.len(),
        );
        results.push(measured);
    }
    let rate = |m: &Measured| m.written as f64 / m.wall.as_secs_f64();
    println!(
        "throughput ratio, 2 workers / 1 worker: {:.2}",
        rate(&results[1]) / rate(&results[0])
    );
}

async fn run(args: &Args, workers: usize) -> Measured {
    let database = TestDatabase::new().await;
    fresh_statistics(&database).await;
    let cluster = Cluster::new(database, None).await;
    let sandbox = sandbox(&cluster.http, args.latency_ms).await;
    let api = cluster.api();
    let _workers: Vec<_> = (0..workers)
        .map(|_| cluster.worker_with(args.concurrency))
        .collect();
    let admin = cluster.empty_tenant(&api).await;
    cluster.contacts(&api, &admin, args.contacts).await;
    let admin_url = &sandbox.description().admin_url;
    let mut connectors = Vec::new();
    let mut domains = Vec::new();
    for i in 0..args.connectors {
        let domain = format!("bench{i}");
        let company: Value = cluster
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
        let id = cluster
            .connector(
                &api,
                &admin,
                company["base_url"].as_str().unwrap(),
                company["api_token"].as_str().unwrap(),
                &domain,
            )
            .await;
        connectors.push(id);
        domains.push(domain);
    }

    // Progress events as the API process delivers them.
    let mut events = Subscription::open(
        &api,
        &admin,
        "subscription { syncEvents { runId status at } }",
        json!({}),
    )
    .await;
    let runs_total = connectors.len();
    let delays = tokio::spawn(async move {
        let mut delays = Vec::new();
        let mut finished = std::collections::HashSet::new();
        while finished.len() < runs_total {
            let Some(message) = events.next(Duration::from_secs(600)).await else {
                break;
            };
            let event = &message["payload"]["data"]["syncEvents"];
            let Some(at) = event["at"].as_str() else {
                continue;
            };
            let at: DateTime<Utc> = at.parse().unwrap();
            delays.push((Utc::now() - at).to_std().unwrap_or_default());
            if ["SUCCEEDED", "PARTIAL", "FAILED", "CANCELLED"]
                .contains(&event["status"].as_str().unwrap_or_default())
            {
                finished.insert(event["runId"].as_str().unwrap().to_owned());
            }
        }
        delays
    });

    // GraphQL clients, for as long as the syncs run.
    let running = Arc::new(AtomicBool::new(true));
    let url = api.graphql.clone().unwrap();
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let http = cluster.http.clone();
            let url = url.clone();
            let token = admin.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    graphql(
                        &http,
                        &url,
                        &token,
                        "{ syncRuns(first: 50) { edges { node { id status processed } } } }",
                        json!({}),
                    )
                    .await;
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();

    let started = Instant::now();
    let run_ids: Vec<String> = futures::stream::iter(&connectors)
        .then(|c| cluster.start_sync(&api, &admin, c))
        .collect()
        .await;
    for id in &run_ids {
        let status = cluster.final_status(id, Duration::from_secs(3600)).await;
        assert_eq!(status, "SUCCEEDED", "run {id}");
    }
    let wall = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let mut graphql = Vec::new();
    for client in clients {
        graphql.extend(client.await.unwrap());
    }
    let delays = delays.await.unwrap();
    let mut written = 0;
    for domain in &domains {
        let stored = persons_of(&cluster.http, &sandbox, domain).await;
        assert_eq!(stored.len(), args.contacts, "company {domain}");
        written += stored.len();
    }
    Measured {
        workers,
        wall,
        written,
        graphql,
        delays,
    }
}

/// PostgreSQL's autovacuum is off on the development machine: the bench's
/// database is analyzed every 30 s, as autovacuum would (its tables grow
/// during a run, and stale statistics make per-page lookups read whole tables).
pub(crate) async fn fresh_statistics(database: &TestDatabase) {
    if database
        .analyze_as_autovacuum_would(Duration::from_secs(30))
        .await
        .is_some()
    {
        println!(
            "PostgreSQL's autovacuum is off: the bench runs ANALYZE every 30 s, as autovacuum would"
        );
    }
}
