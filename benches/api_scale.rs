//! The API at a million contacts (issue 26): one tenant with N contacts and
//! R finished runs of history (N items each, 1% rejected), written straight
//! into a fresh database with multi-row inserts, then the dashboard's
//! queries timed through the real GraphQL HTTP API, one at a time:
//!
//! - `contacts(first: 50)` with a filter (`archived: true`, 1% of the
//!   contacts; a search term most contacts match; a search term one contact
//!   matches, which has to read every contact: LIKE '%term%' has no index);
//! - a run's items, 50 at a time, from a cursor deep in the run (random
//!   positions past the middle: keyset paging, no OFFSET);
//! - `rejectedContacts(first: 50)` of the tenant, of the latest run, and of
//!   a connector;
//! - a run's leg counts.
//!
//! For each it prints p50, p99 and max over `--iterations` requests, and the
//! query plan of every SQL statement the request ran (EXPLAIN QUERY PLAN on
//! SQLite, EXPLAIN on PostgreSQL), then the database size per contact and
//! per sync item. SQLite by default; PostgreSQL when
//! `CRMSYNC_TEST_POSTGRES_URL` is set (a fresh database on that server).
//!
//! ```sh
//! cargo bench --bench api_scale -- --contacts 1000000 --runs 3
//! CRMSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench --bench api_scale -- --contacts 1000000 --runs 3
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use crmsync_api::auth::{Authenticator, JwtKey, JwtSettings, mint_hs256};
use crmsync_api::rate_limit::{RateLimitSettings, RateLimits};
use crmsync_api::{ApiState, Introspection};
use crmsync_entity::enums::{
    ConnectorKind, ConnectorStatus, ItemOutcome, Lifecycle, Role, SyncDirection, SyncMode,
    SyncRunStatus, SyncTrigger,
};
use crmsync_entity::models::{connector, contact, sync_item, sync_run, tenant};
use crmsync_entity::testing::TestDatabase;
use crmsync_worker::credentials::CredentialsKey;
use crmsync_worker::events::InProcessBus;
use crmsync_worker::metrics::Metrics;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Set, Statement,
    TransactionTrait,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "api-scale-bench-secret-of-enough-length";

struct Args {
    contacts: usize,
    runs: usize,
    iterations: usize,
}

impl Args {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str, default: usize| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .map_or(default, |v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{name}: expected a number"))
                })
        };
        Self {
            contacts: value("--contacts", 1_000_000),
            runs: value("--runs", 3),
            iterations: value("--iterations", 200),
        }
    }
}

/// ULIDs in increasing order from a start time: `at` milliseconds plus a
/// counter in the random part, so ids sort as they were made.
struct Ids {
    ms: u64,
    n: u128,
}

impl Ids {
    fn from(at: DateTime<Utc>) -> Self {
        Self {
            ms: at.timestamp_millis() as u64,
            n: 0,
        }
    }

    fn next(&mut self) -> String {
        self.n += 1;
        let value: u128 = (u128::from(self.ms) << 80) | self.n;
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        (0..26)
            .rev()
            .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
            .collect()
    }
}

/// A timed query: its name, its document, its variables for request `i`.
type Case<'a> = (&'static str, &'static str, Box<dyn Fn(usize) -> Value + 'a>);

/// SQL statements the API ran while `capture` is on.
#[derive(Default)]
struct Captured {
    on: bool,
    statements: Vec<Statement>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let database = TestDatabase::new().await;
    let backend = if database.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "api_scale: {backend}, {} contacts, {} runs of {} items",
        args.contacts, args.runs, args.contacts
    );
    let empty = size_of(&database.db).await;

    let t = Instant::now();
    let seeded = seed(&database.db, &args).await;
    let after_contacts = seeded.size_after_contacts;
    let after_items = size_of(&database.db).await;
    println!("seeded in {:.0} s", t.elapsed().as_secs_f64());
    if database.is_postgres() {
        // Fresh statistics, as autovacuum gathers after a bulk load. SQLite
        // is left without (crmsync never runs ANALYZE on it).
        database.db.execute_unprepared("ANALYZE").await.unwrap();
    }
    let items = (args.contacts * args.runs) as f64;
    match (&after_contacts, &after_items, &empty) {
        (Size::Tables(c), Size::Tables(i), _) => {
            println!(
                "size: {:.0} bytes per contact (table and indexes), {:.0} bytes per sync item",
                *c as f64 / args.contacts as f64,
                *i as f64 / items
            );
        }
        (Size::File(c), Size::File(i), Size::File(e)) => {
            println!(
                "size: {:.0} bytes per contact (file growth), {:.0} bytes per sync item; file {:.0} MiB",
                (c - e) as f64 / args.contacts as f64,
                (i - c) as f64 / items,
                *i as f64 / 1024.0 / 1024.0
            );
        }
        _ => {}
    }

    let captured = Arc::new(Mutex::new(Captured::default()));
    let mut db = database.db.clone();
    {
        let captured = captured.clone();
        db.set_metric_callback(move |info| {
            let mut c = captured.lock().unwrap();
            if c.on {
                c.statements.push(info.statement.clone());
            }
        });
    }
    let url = serve(db).await;
    let token = mint_hs256(
        &SecretString::from(SECRET),
        "crmsync",
        "crmsync",
        "bench",
        Role::Admin,
        Some("bench"),
        Duration::from_secs(3600),
    );
    let http = reqwest::Client::new();
    let gql = |query: &'static str, variables: Value| {
        let http = http.clone();
        let url = url.clone();
        let token = token.clone();
        async move {
            let body: Value = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body.get("errors").is_none(), "{body}");
            body
        }
    };

    let latest = seeded.runs.last().unwrap().clone();
    let deep = |i: usize| {
        // Random-ish positions in the second half of the latest run.
        let n = seeded.latest_item_ids.len();
        let at = n / 2 + (i * 7919) % (n / 2).max(1);
        URL_SAFE_NO_PAD.encode(format!("c2:sync_items:{}", seeded.latest_item_ids[at]))
    };
    let rare = format!("person{}@", args.contacts / 2 + 1);

    let cases: Vec<Case<'_>> = vec![
        (
            "contacts(first: 50, archived: true)",
            "query { contacts(first: 50, archived: true) { edges { node { id email lastName } } pageInfo { endCursor hasNextPage } } }",
            Box::new(|_| json!({})),
        ),
        (
            "contacts(first: 50, search: common term)",
            "query($s: String) { contacts(first: 50, search: $s) { edges { node { id email lastName } } pageInfo { endCursor hasNextPage } } }",
            Box::new(|_| json!({ "s": "Bench" })),
        ),
        (
            "syncRun.items(first: 50, after: deep cursor)",
            "query($id: ID!, $after: String) { syncRun(id: $id) { items(first: 50, after: $after) { edges { node { id outcome email reasonCode } } pageInfo { endCursor hasNextPage } } } }",
            Box::new({
                let latest = latest.clone();
                move |i| json!({ "id": latest, "after": deep(i) })
            }),
        ),
        (
            "syncRun.items(first: 50, outcome: REJECTED)",
            "query($id: ID!) { syncRun(id: $id) { items(first: 50, outcome: REJECTED) { edges { node { id email reasonCode } } } } }",
            Box::new({
                let latest = latest.clone();
                move |_| json!({ "id": latest })
            }),
        ),
        (
            "rejectedContacts(first: 50)",
            "query { rejectedContacts(first: 50) { edges { node { id email reasonCode message } } pageInfo { endCursor } } }",
            Box::new(|_| json!({})),
        ),
        (
            "rejectedContacts(runId, first: 50)",
            "query($id: ID) { rejectedContacts(runId: $id, first: 50) { edges { node { id email reasonCode } } } }",
            Box::new({
                let latest = latest.clone();
                move |_| json!({ "id": latest })
            }),
        ),
        (
            "rejectedContacts(connectorId, first: 50)",
            "query($id: ID) { rejectedContacts(connectorId: $id, first: 50) { edges { node { id email reasonCode } } } }",
            Box::new({
                let c = seeded.connector.clone();
                move |_| json!({ "id": c })
            }),
        ),
        (
            "syncRun legs",
            "query($id: ID!) { syncRun(id: $id) { status startedAt finishedAt legs { direction created updated unchanged rejected conflicts } } }",
            Box::new({
                let latest = latest.clone();
                move |_| json!({ "id": latest })
            }),
        ),
        (
            "syncRuns(first: 10) with legs",
            "query { syncRuns(first: 10) { edges { node { id status legs { direction created unchanged rejected } } } } }",
            Box::new(|_| json!({})),
        ),
        (
            "contacts(first: 50, search: rare term) [full scan]",
            "query($s: String) { contacts(first: 50, search: $s) { edges { node { id email } } } }",
            Box::new(move |_| json!({ "s": rare })),
        ),
    ];

    println!();
    println!("| query | p50 | p99 | max |");
    println!("|---|---|---|---|");
    let mut plans = BTreeMap::new();
    for (name, query, vars) in &cases {
        // Warm up, and capture the statements of one request.
        captured.lock().unwrap().on = true;
        gql(query, vars(0)).await;
        {
            let mut c = captured.lock().unwrap();
            c.on = false;
            plans.insert(*name, std::mem::take(&mut c.statements));
        }
        let n = if name.contains("full scan") {
            args.iterations.min(20)
        } else {
            args.iterations
        };
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            gql(query, vars(i + 1)).await;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| `{name}` | {} | {} | {} |",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
    }

    println!();
    println!("Query plans (the statements of one request each):");
    for (name, statements) in plans {
        println!("\n## {name}");
        for stmt in statements {
            if !stmt.sql.trim_start().to_uppercase().starts_with("SELECT") {
                continue;
            }
            println!("  {}", stmt.sql);
            for line in explain(&database.db, &stmt).await {
                println!("    {line}");
            }
        }
    }
    drop_postgres(database).await;
}

/// Drops a PostgreSQL bench database (gigabytes at a million contacts).
async fn drop_postgres(database: TestDatabase) {
    if !database.is_postgres() {
        return;
    }
    let server = std::env::var(crmsync_entity::testing::POSTGRES_ENV).unwrap();
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    database.db.clone().close().await.ok();
    drop(database);
    let admin = crmsync_entity::db::connect(&server).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn explain(db: &DatabaseConnection, stmt: &Statement) -> Vec<String> {
    let backend = db.get_database_backend();
    let prefix = match backend {
        DbBackend::Sqlite => "EXPLAIN QUERY PLAN ",
        _ => "EXPLAIN ",
    };
    let explained = Statement {
        sql: format!("{prefix}{}", stmt.sql),
        values: stmt.values.clone(),
        db_backend: backend,
    };
    let rows = db.query_all_raw(explained).await.unwrap();
    rows.iter()
        .map(|row| match backend {
            DbBackend::Sqlite => row.try_get::<String>("", "detail").unwrap_or_default(),
            _ => row.try_get::<String>("", "QUERY PLAN").unwrap_or_default(),
        })
        .collect()
}

enum Size {
    /// The SQLite file's bytes.
    File(u64),
    /// PostgreSQL: bytes of the table of interest with its indexes.
    Tables(u64),
}

async fn size_of(db: &DatabaseConnection) -> Size {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()",
                ))
                .await
                .unwrap()
                .unwrap();
            Size::File(row.try_get::<i64>("", "n").unwrap() as u64)
        }
        _ => {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_total_relation_size('sync_items')::bigint AS n",
                ))
                .await
                .unwrap()
                .unwrap();
            Size::Tables(row.try_get::<i64>("", "n").unwrap() as u64)
        }
    }
}

async fn contacts_size(db: &DatabaseConnection) -> Size {
    match db.get_database_backend() {
        DbBackend::Sqlite => size_of(db).await,
        _ => {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_total_relation_size('contacts')::bigint AS n",
                ))
                .await
                .unwrap()
                .unwrap();
            Size::Tables(row.try_get::<i64>("", "n").unwrap() as u64)
        }
    }
}

struct Seeded {
    connector: String,
    runs: Vec<String>,
    latest_item_ids: Vec<String>,
    size_after_contacts: Size,
}

/// Rows per INSERT statement, and statements per transaction.
const ROWS: usize = 1000;
const STATEMENTS_PER_TXN: usize = 20;

async fn seed(db: &DatabaseConnection, args: &Args) -> Seeded {
    let now = Utc::now();
    let tenant_id = crmsync_entity::new_id();
    tenant::ActiveModel {
        id: Set(tenant_id.clone()),
        name: Set("Bench".into()),
        slug: Set("bench".into()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    let connector_id = crmsync_entity::new_id();
    connector::ActiveModel {
        id: Set(connector_id.clone()),
        tenant_id: Set(tenant_id.clone()),
        kind: Set(ConnectorKind::Pipedrive),
        name: Set("Bench".into()),
        status: Set(ConnectorStatus::Connected),
        status_message: Set(None),
        enabled: Set(true),
        settings: Set(json!({})),
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

    // Contacts: 1% archived.
    let mut ids = Ids::from(now - chrono::Duration::days(400));
    let mut contact_ids = Vec::with_capacity(args.contacts);
    let mut rows = Vec::with_capacity(ROWS);
    let mut batches = Vec::new();
    for i in 0..args.contacts {
        let id = ids.next();
        contact_ids.push(id.clone());
        rows.push(contact::ActiveModel::from(contact::Model {
            id,
            tenant_id: tenant_id.clone(),
            email: format!("person{i}@bench.example"),
            first_name: Some(format!("Bench{i}")),
            last_name: Some("Contact".into()),
            company: Some(format!("Company {}", i % 5000)),
            phone: None,
            job_title: None,
            source: Some("Website".into()),
            behaviour_score: (i % 100) as i32,
            state: Some("Prospect".into()),
            lifecycle: Lifecycle::Prospect,
            opted_out: false,
            owner_email: None,
            custom_fields: json!({}),
            created_at: now,
            updated_at: now,
            archived_at: (i % 100 == 7).then_some(now),
        }));
        if rows.len() == ROWS {
            batches.push(std::mem::take(&mut rows));
            if batches.len() == STATEMENTS_PER_TXN {
                insert_contacts(db, std::mem::take(&mut batches)).await;
            }
        }
    }
    batches.push(rows);
    insert_contacts(db, batches).await;
    let size_after_contacts = contacts_size(db).await;

    // Runs: each lists every contact; 1% rejected, the rest unchanged but
    // for a few created and updated.
    let mut runs = Vec::new();
    let mut latest_item_ids = Vec::new();
    for r in 0..args.runs {
        let started = now - chrono::Duration::days((args.runs - r) as i64);
        let mut run = sync_run::Model::queued(
            &tenant_id,
            &connector_id,
            SyncTrigger::Schedule,
            SyncMode::Full,
            crmsync_worker::jobs::new_task_id(),
            None,
        );
        run.id = Ids::from(started).next();
        run.status = SyncRunStatus::Partial;
        run.queued_at = started;
        run.started_at = Some(started);
        run.finished_at = Some(started + chrono::Duration::minutes(10));
        run.phase = "done".into();
        let outcome_of = |i: usize| match i % 100 {
            0 => ItemOutcome::Rejected,
            1 => ItemOutcome::Updated,
            2 if r == 0 => ItemOutcome::Created,
            _ => ItemOutcome::Unchanged,
        };
        // The run's row first (its items refer to it), with its counts.
        for i in 0..contact_ids.len() {
            match outcome_of(i) {
                ItemOutcome::Rejected => run.to_crm_rejected += 1,
                ItemOutcome::Updated => run.to_crm_updated += 1,
                ItemOutcome::Created => run.to_crm_created += 1,
                _ => run.to_crm_unchanged += 1,
            }
        }
        runs.push(run.id.clone());
        let run = sync_run::ActiveModel::from(run).insert(db).await.unwrap();
        let mut ids = Ids::from(started);
        let mut rows = Vec::with_capacity(ROWS);
        let mut batches = Vec::new();
        for (i, contact_id) in contact_ids.iter().enumerate() {
            let outcome = outcome_of(i);
            let id = ids.next();
            if r + 1 == args.runs {
                latest_item_ids.push(id.clone());
            }
            let rejected = outcome == ItemOutcome::Rejected;
            rows.push(sync_item::ActiveModel::from(sync_item::Model {
                id,
                tenant_id: tenant_id.clone(),
                run_id: run.id.clone(),
                connector_id: connector_id.clone(),
                direction: SyncDirection::ToCrm,
                outcome,
                email: Some(format!("person{i}@bench.example")),
                contact_id: Some(contact_id.clone()),
                crm_record_id: Some(format!("{}", 100_000 + i)),
                reason_code: rejected.then(|| "MISSING_NAME".into()),
                field: rejected.then(|| "name".into()),
                message: rejected.then(|| {
                    "Pipedrive requires a name: give the contact a first or last name".into()
                }),
                changes: None,
                created_at: started,
            }));
            if rows.len() == ROWS {
                batches.push(std::mem::take(&mut rows));
                if batches.len() == STATEMENTS_PER_TXN {
                    insert_items(db, std::mem::take(&mut batches)).await;
                }
            }
        }
        batches.push(rows);
        insert_items(db, batches).await;
        println!("run {} seeded", r + 1);
    }
    Seeded {
        connector: connector_id,
        runs,
        latest_item_ids,
        size_after_contacts,
    }
}

async fn insert_contacts(db: &DatabaseConnection, batches: Vec<Vec<contact::ActiveModel>>) {
    let txn = db.begin().await.unwrap();
    for rows in batches.into_iter().filter(|r| !r.is_empty()) {
        contact::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
}

async fn insert_items(db: &DatabaseConnection, batches: Vec<Vec<sync_item::ActiveModel>>) {
    let txn = db.begin().await.unwrap();
    for rows in batches.into_iter().filter(|r| !r.is_empty()) {
        sync_item::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
}

/// The real router on 127.0.0.1:0, rate limits off; returns its URL.
async fn serve(db: DatabaseConnection) -> String {
    let (key, _) = CredentialsKey::generate();
    let auth = Authenticator::new(JwtSettings {
        key: JwtKey::Hs256(SecretString::from(SECRET)),
        issuer: "crmsync".into(),
        audience: "crmsync".into(),
    })
    .unwrap();
    let state = ApiState {
        queue: crmsync_worker::jobs::JobQueue::connect(&db).await.unwrap(),
        db,
        bus: Arc::new(InProcessBus::default()),
        credentials_key: Arc::new(key),
        auth: Arc::new(auth),
        http: crmsync_worker::egress::Egress::new(true)
            .client(crmsync_worker::egress::HttpOptions::default())
            .unwrap(),
        public_url: "http://127.0.0.1".into(),
        shutdown: crmsync_api::Shutdown::never(),
        metrics: Metrics::new(),
        schedule_min_interval: crmsync_worker::settings::DEFAULT_MIN_INTERVAL,
        ws_max_subscriptions: crmsync_api::DEFAULT_WS_MAX_SUBSCRIPTIONS,
        rate_limits: Arc::new(RateLimits::new(RateLimitSettings::new(0, 0))),
        introspection: Introspection::default(),
        fields_cache: Default::default(),
        tenant_cap: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = crmsync_api::router(state);
    tokio::spawn(async move {
        crmsync_api::serve(listener, app, std::future::pending())
            .await
            .unwrap();
    });
    format!("http://{addr}/graphql")
}
