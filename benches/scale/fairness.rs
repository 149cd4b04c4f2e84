//! Fair slots under load (issue 26): one API process and one worker process
//! (`--concurrency` slots) on PostgreSQL, the sandbox Pipedrive with a
//! latency on every call, one Pipedrive company per connector.
//!
//! 1. Alone: a large tenant's FULL sync of `--large` contacts, nothing else.
//! 2. Mixed: two large tenants start FULL syncs of `--large` contacts each;
//!    then `--small-tenants` tenants with `--small` contacts each get a
//!    one-minute schedule, and a form submission (a new contact) goes to
//!    one of them every second, until both large runs end.
//!
//! It reports the small scheduled runs' queue wait (started - queued) p50 and
//! p99, form-to-CRM (the submission to the commit of the page that wrote its
//! contact to the CRM) p50 and p99, the large runs' throughput against the
//! run alone, and checks that every company holds every contact once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crmsync_entity::enums::Role;
use crmsync_entity::testing::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use super::{insert_contacts, ms, number_arg, percentile};
use crate::cluster::{Cluster, Process, persons_of, sandbox};

struct Args {
    large: usize,
    small_tenants: usize,
    small: usize,
}

impl Args {
    fn parse() -> Self {
        Self {
            large: number_arg("--large", 200_000),
            small_tenants: number_arg("--small-tenants", 50),
            small: number_arg("--small", 200),
        }
    }
}

/// A tenant of that slug: its id and an admin token.
async fn tenant(cluster: &Cluster, api: &Process, slug: &str) -> (String, String) {
    let operator = cluster.token(Role::Operator, None);
    let created = cluster
        .graphql(
            api,
            &operator,
            "mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } } }",
            json!({ "input": { "name": slug, "slug": slug } }),
        )
        .await;
    let id = created["createTenant"]["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, cluster.token(Role::Admin, Some(slug)))
}

/// `n` contacts of the tenant, `{prefix}{i}@fair.example`.
async fn contacts(cluster: &Cluster, tenant_id: &str, prefix: &str, n: usize) {
    insert_contacts(cluster, tenant_id, n, |i| {
        format!("{prefix}{i}@fair.example")
    })
    .await;
}

async fn start_full(cluster: &Cluster, api: &Process, admin: &str, connector: &str) -> String {
    let started = cluster
        .graphql(
            api,
            admin,
            "mutation($input: StartSyncInput!) { startSync(input: $input) { run { id } } }",
            json!({ "input": { "connectorId": connector, "mode": "FULL" } }),
        )
        .await;
    started["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Seconds between two timestamps of a query's row.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// The run's start and end.
async fn times(cluster: &Cluster, run: &str) -> (DateTime<Utc>, DateTime<Utc>, i32) {
    let db = &cluster.db.db;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT started_at, finished_at, slices FROM sync_runs WHERE id = $1",
            [run.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "started_at").unwrap(),
        row.try_get("", "finished_at").unwrap(),
        row.try_get("", "slices").unwrap(),
    )
}

pub(crate) async fn main(latency_ms: u64, concurrency: usize) {
    let args = Args::parse();
    println!(
        "Fairness: 1 worker x {concurrency} slots on PostgreSQL, {latency_ms} ms per Pipedrive call; 2 large tenants x {} contacts (FULL), {} small tenants x {} contacts every minute, 1 form submission per second.",
        args.large, args.small_tenants, args.small
    );
    let database = TestDatabase::new().await;
    crate::fresh_statistics(&database).await;
    let cluster = Cluster::new(database, None).await;
    let sandbox = sandbox(&cluster.http, latency_ms).await;
    let api = cluster.api();
    let _worker = cluster.worker_with(concurrency);

    // 1. A large run alone.
    let (alone_id, alone_admin) = tenant(&cluster, &api, "alone").await;
    contacts(&cluster, &alone_id, "alone", args.large).await;
    let connector = cluster
        .company_connector(&api, &alone_admin, &sandbox, "alone")
        .await;
    let run = start_full(&cluster, &api, &alone_admin, &connector).await;
    let status = cluster.final_status(&run, Duration::from_secs(7200)).await;
    assert_eq!(status, "SUCCEEDED");
    let (from, to, _) = times(&cluster, &run).await;
    let alone = args.large as f64 / secs(from, to).as_secs_f64();
    println!(
        "alone: {} contacts in {:.1} s = {alone:.0} contacts/s",
        args.large,
        secs(from, to).as_secs_f64()
    );

    // 2. Mixed: the large tenants, then the small ones and the forms.
    let mut large = Vec::new();
    for i in 0..2 {
        let slug = format!("large{i}");
        let (id, admin) = tenant(&cluster, &api, &slug).await;
        contacts(&cluster, &id, &slug, args.large).await;
        let connector = cluster
            .company_connector(&api, &admin, &sandbox, &slug)
            .await;
        large.push((slug, admin, connector));
    }
    let mut small = Vec::new();
    for i in 0..args.small_tenants {
        let slug = format!("small{i}");
        let (id, admin) = tenant(&cluster, &api, &slug).await;
        contacts(&cluster, &id, &slug, args.small).await;
        let connector = cluster
            .company_connector(&api, &admin, &sandbox, &slug)
            .await;
        small.push((slug, id, admin, connector));
    }
    let mixed_from = Utc::now();
    let mut large_runs = Vec::new();
    for (_, admin, connector) in &large {
        large_runs.push(start_full(&cluster, &api, admin, connector).await);
    }
    for (_, _, admin, connector) in &small {
        cluster
            .graphql(
                &api,
                admin,
                "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { id } } }",
                json!({ "input": { "id": connector, "settings": { "schedule": "every 1m" } } }),
            )
            .await;
    }
    // A form submission per second, round the small tenants, until the large
    // runs end.
    let mut forms: Vec<(String, String, DateTime<Utc>)> = Vec::new();
    let mut per_tenant: HashMap<String, usize> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut k = 0;
    loop {
        tick.tick().await;
        let mut ended = 0;
        for run in &large_runs {
            let (status, _) = cluster.run_row(run).await;
            if ["SUCCEEDED", "PARTIAL", "FAILED", "CANCELLED"].contains(&status.as_str()) {
                assert_eq!(status, "SUCCEEDED", "large run {run}");
                ended += 1;
            }
        }
        if ended == large_runs.len() {
            break;
        }
        let (slug, id, admin, _) = &small[k % small.len()];
        let email = format!("form{k}@{slug}.fair.example");
        let sent = Utc::now();
        cluster
            .graphql(
                &api,
                admin,
                "mutation($input: SubmitFormInput!) { submitForm(input: $input) { contact { id } } }",
                json!({ "input": { "form": "bench", "contact": {
                    "email": email, "firstName": "Form", "lastName": format!("Sent{k}"), "behaviourScore": 50,
                }}}),
            )
            .await;
        forms.push((id.clone(), email, sent));
        *per_tenant.entry(slug.clone()).or_default() += 1;
        k += 1;
    }
    let mixed_to = Utc::now();
    // The last forms' runs end.
    let settle = Instant::now();
    let db = &cluster.db.db;
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM sync_runs WHERE trigger = 'FORM' AND status IN ('QUEUED', 'RUNNING')",
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if n == 0 || settle.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every small connector's schedule has fired once (its contacts exported).
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(DISTINCT connector_id) AS n FROM sync_runs WHERE trigger = 'SCHEDULE' AND status = 'SUCCEEDED'",
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if n as usize >= small.len() || settle.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The small scheduled runs' first wait for a slot, while the large runs went.
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT queued_at, started_at FROM sync_runs WHERE trigger = 'SCHEDULE' \
             AND started_at IS NOT NULL AND slices <= 1 AND queued_at >= $1 AND queued_at <= $2",
            [mixed_from.into(), mixed_to.into()],
        ))
        .await
        .unwrap();
    let mut waits: Vec<Duration> = rows
        .iter()
        .map(|r| {
            secs(
                r.try_get("", "queued_at").unwrap(),
                r.try_get("", "started_at").unwrap(),
            )
        })
        .collect();
    waits.sort();
    // Form to CRM: the first page that wrote the contact to the CRM.
    let mut latencies = Vec::new();
    let mut missing = 0;
    for (tenant_id, email, sent) in &forms {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT MIN(created_at) AS at FROM sync_items WHERE tenant_id = $1 AND email = $2 \
                 AND direction = 'TO_CRM' AND outcome IN ('CREATED', 'UPDATED')",
                [tenant_id.as_str().into(), email.as_str().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        match row.try_get::<Option<DateTime<Utc>>>("", "at").unwrap() {
            Some(at) => latencies.push(secs(*sent, at)),
            None => missing += 1,
        }
    }
    latencies.sort();
    let mut ratios = Vec::new();
    for run in &large_runs {
        let (from, to, slices) = times(&cluster, run).await;
        let rate = args.large as f64 / secs(from, to).as_secs_f64();
        println!(
            "large run: {rate:.0} contacts/s over {:.1} s in {slices} slices = {:.2} x alone",
            secs(from, to).as_secs_f64(),
            rate / alone
        );
        ratios.push(rate / alone);
    }
    println!(
        "small runs' queue wait: p50 {} ms, p99 {} ms, max {} ms over {} scheduled runs",
        ms(percentile(&waits, 50.0)),
        ms(percentile(&waits, 99.0)),
        ms(waits.last().copied().unwrap_or_default()),
        waits.len()
    );
    println!(
        "form to CRM: p50 {} ms, p99 {} ms, max {} ms over {} submissions ({missing} not in the CRM)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    // Every contact once in every company.
    let mut companies = vec![("alone".to_owned(), args.large)];
    companies.extend(large.iter().map(|(slug, ..)| (slug.clone(), args.large)));
    companies.extend(small.iter().map(|(slug, ..)| {
        (
            slug.clone(),
            args.small + per_tenant.get(slug).copied().unwrap_or(0),
        )
    }));
    let mut wrong = Vec::new();
    for (domain, expected) in &companies {
        let stored = persons_of(&cluster.http, &sandbox, domain).await;
        let twice = stored.values().filter(|names| names.len() > 1).count();
        if stored.len() != *expected || twice > 0 {
            wrong.push(format!(
                "{domain}: {} of {expected}, {twice} twice",
                stored.len()
            ));
        }
    }
    if wrong.is_empty() {
        println!(
            "exactly once: every contact in its CRM once ({} companies)",
            companies.len()
        );
    } else {
        println!("NOT exactly once: {}", wrong.join("; "));
    }
}
