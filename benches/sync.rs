//! Benchmark of a full two-way sync against the sandbox Pipedrive: N platform
//! contacts to export and N CRM persons to import (disjoint e-mails, so both
//! legs create N records). Reports wall time, CRM calls by endpoint, calls per
//! contact, 429s and the peak memory of this process (the sandbox runs in a
//! child process, so its memory is not counted).
//!
//! ```sh
//! cargo bench --bench sync -- --people 10000            # limits off
//! cargo bench --bench sync -- --people 2000 --limits    # sandbox burst limit 80 per 2 s
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
use crmsync_entity::{TenantId, new_id};
use crmsync_worker::credentials::{Credentials, CredentialsKey};
use crmsync_worker::events::{EventBus, InProcessBus};
use crmsync_worker::jobs::{JobQueue, WorkerContext};
use crmsync_worker::settings::ConnectorSettings;
use crmsync_worker::sync::SyncOptions;
use futures::StreamExt;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use secrecy::SecretString;
use serde_json::{Value, json};

struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let people: usize = args
        .iter()
        .position(|a| a == "--people")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let limits = args.iter().any(|a| a == "--limits");

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
    let _sandbox = Sandbox(child);
    let d: Value = serde_json::from_str(&line).unwrap();
    let admin = d["admin_url"].as_str().unwrap().to_owned();
    let pd = &d["pipedrive"];
    let company = pd["company_domain"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let admin_call = |method: reqwest::Method, path: String, body: Value| {
        let http = http.clone();
        async move {
            let resp = http.request(method, path).json(&body).send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        }
    };
    if !limits {
        admin_call(
            reqwest::Method::PATCH,
            format!("{admin}/pipedrive/companies/{company}/limits"),
            json!({"burst_limit": 1_000_000_000_u64, "daily_budget": 1_000_000_000_000_u64, "abuse_threshold": 0}),
        )
        .await;
    }
    admin_call(
        reqwest::Method::POST,
        format!("{admin}/pipedrive/companies/{company}/seed"),
        json!({"seed": 11, "people": people, "filter": 1.0, "missing_email": 0.0, "duplicate_email": 0.0}),
    )
    .await;

    // The platform side: a fresh SQLite database with N contacts.
    let dir = std::env::temp_dir().join(format!("crmsync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let db = crmsync_entity::db::connect(&url).await.unwrap();
    crmsync_entity::db::migrate(&db).await.unwrap();
    let tenant_id = new_id();
    tenant::ActiveModel {
        id: Set(tenant_id.clone()),
        name: Set("Bench".into()),
        slug: Set("bench".into()),
        created_at: Set(Utc::now()),
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
        });
        contact::Entity::insert_many(rows).exec(&db).await.unwrap();
    }

    let (key, _) = CredentialsKey::generate();
    let key = Arc::new(key);
    let connector_id = new_id();
    let credentials = Credentials::Pipedrive {
        api_token: SecretString::from(pd["api_token"].as_str().unwrap().to_owned()),
        company_domain: company.clone(),
    };
    let base_url = pd["base_url"].as_str().unwrap().to_owned();
    let client =
        crmsync_worker::crm::client_for(&credentials, Some(&base_url), http.clone()).unwrap();
    let fields = client.fields(CrmModule::Persons).await.unwrap();
    let mut settings = ConnectorSettings::defaults_for(ConnectorKind::Pipedrive);
    settings.filter_field = None;
    connector::ActiveModel {
        id: Set(connector_id.clone()),
        tenant_id: Set(tenant_id.clone()),
        kind: Set(ConnectorKind::Pipedrive),
        name: Set("Bench".into()),
        status: Set(ConnectorStatus::Connected),
        status_message: Set(None),
        enabled: Set(true),
        settings: Set(serde_json::to_value(&settings).unwrap()),
        credentials: Set(Some(key.seal(&tenant_id, &connector_id, &credentials))),
        credentials_set: Set(json!(credentials.names_set())),
        base_url: Set(Some(base_url)),
        full_resync_recommended: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&db)
    .await
    .unwrap();
    for (position, m) in
        crmsync_worker::platform::default_mappings(ConnectorKind::Pipedrive, &fields)
            .into_iter()
            .enumerate()
    {
        field_mapping::ActiveModel {
            id: Set(new_id()),
            tenant_id: Set(tenant_id.clone()),
            connector_id: Set(connector_id.clone()),
            position: Set(position as i32),
            platform_field: Set(m.platform_field),
            crm_field: Set(m.crm_field),
            direction: Set(m.direction),
            enabled: Set(m.enabled),
            locked: Set(m.locked),
        }
        .insert(&db)
        .await
        .unwrap();
    }

    let queue = JobQueue::connect(&db).await.unwrap();
    let bus = Arc::new(InProcessBus::default());
    let context = WorkerContext {
        db: db.clone(),
        bus: bus.clone(),
        credentials_key: key,
        http: http.clone(),
        options: SyncOptions {
            platform_url: "http://bench.example".into(),
        },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(crmsync_worker::jobs::run_worker(
        queue.clone(),
        context,
        async move {
            let _ = stopped.await;
        },
    ));
    http.delete(format!("{admin}/requests"))
        .send()
        .await
        .unwrap();

    let mut events = bus.subscribe(&tenant_id);
    let started = Instant::now();
    let tenant = TenantId::new(tenant_id.clone());
    let run = crmsync_worker::runs::start_sync(
        &db,
        &queue,
        bus.as_ref(),
        &tenant,
        &connector_id,
        SyncTrigger::Api,
        SyncMode::Full,
    )
    .await
    .unwrap();
    let last = loop {
        let event = tokio::time::timeout(Duration::from_secs(3600), events.next())
            .await
            .expect("progress")
            .expect("event");
        if event.run_id == run.id && event.status.is_final() {
            break event;
        }
    };
    let wall = started.elapsed();
    let _ = stop.send(());
    let _ = worker.await;

    let counts: Value = http
        .get(format!("{admin}/requests?system=pipedrive"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = counts["total"].as_u64().unwrap();
    let throttled: u64 = counts["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    println!(
        "Two-way sync benchmark: {people} platform contacts and {people} Pipedrive persons, sandbox limits {}.",
        if limits {
            "on (burst 80 per 2 s)"
        } else {
            "off"
        }
    );
    println!("\n| figure | value |\n| --- | ---: |");
    println!("| final status | {:?} |", last.status);
    println!(
        "| created in Pipedrive / in the platform | {} / {} |",
        last.legs.to_crm.created, last.legs.from_crm.created
    );
    println!(
        "| rejected (to / from) | {} / {} |",
        last.legs.to_crm.rejected, last.legs.from_crm.rejected
    );
    println!("| wall time | {:.1} s |", wall.as_secs_f64());
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
    println!("| peak RSS of crmsync | {:.0} MiB |", peak_rss_mib());
    println!("\n| endpoint | status | calls |\n| --- | ---: | ---: |");
    for r in counts["requests"].as_array().unwrap() {
        println!(
            "| `{}` | {} | {} |",
            r["endpoint"].as_str().unwrap(),
            r["status"],
            r["count"]
        );
    }
    assert_eq!(
        last.status,
        SyncRunStatus::Succeeded,
        "the benchmark run must succeed"
    );
    let _ = std::fs::remove_dir_all(dir);
}
