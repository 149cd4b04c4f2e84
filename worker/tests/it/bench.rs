//! A full two-way sync of N contacts and N persons against the sandbox, for
//! BENCHMARKS.md. Ignored by default:
//!
//! ```sh
//! CRMSYNC_BENCH_N=10000 cargo test --release -p crmsync-worker --test it bench -- --ignored --nocapture
//! CRMSYNC_BENCH_N=2000 CRMSYNC_BENCH_BURST=80 cargo test --release -p crmsync-worker --test it bench -- --ignored --nocapture
//! ```

use std::time::Instant;

use crmsync_entity::enums::{Lifecycle, SyncMode};
use crmsync_entity::models::contact;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::support::App;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_full_two_way_sync() {
    let n = env("CRMSYNC_BENCH_N", 2000);
    let burst = env("CRMSYNC_BENCH_BURST", 0);
    let app = App::start(n as usize).await;
    let limits = if burst == 0 {
        json!({"burst_limit": 1_000_000, "daily_budget": 1_000_000_000u64, "search_limit": 1_000_000, "abuse_threshold": 0})
    } else {
        json!({"burst_limit": burst, "daily_budget": 1_000_000_000u64})
    };
    app.crm.set_limits(limits).await;
    let now = chrono::Utc::now();
    let tenant = app.tenant.as_str().to_owned();
    let rows: Vec<contact::ActiveModel> = (0..n)
        .map(|i| {
            contact::ActiveModel::from(contact::Model {
                id: crmsync_entity::new_id(),
                tenant_id: tenant.clone(),
                email: format!("platform{i}@bench.test"),
                first_name: Some(format!("First{i}")),
                last_name: Some(format!("Last {i}")),
                company: None,
                phone: None,
                job_title: None,
                source: None,
                behaviour_score: (i % 100) as i32,
                state: None,
                lifecycle: Lifecycle::Prospect,
                opted_out: false,
                owner_email: None,
                custom_fields: json!({}),
                created_at: now,
                updated_at: now,
            })
        })
        .collect();
    for chunk in rows.chunks(500) {
        contact::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&app.db.db)
            .await
            .unwrap();
    }
    app.crm.reset_requests().await;

    let start = Instant::now();
    let run = app.sync(SyncMode::Full).await;
    let secs = start.elapsed().as_secs_f64();

    let requests = app.crm.admin_get("/requests?system=pipedrive").await;
    let total = requests["total"].as_u64().unwrap_or(0);
    let limited = app.crm.request_count("status=429").await;
    let touched = run.from_crm_created
        + run.from_crm_updated
        + run.from_crm_unchanged
        + run.to_crm_created
        + run.to_crm_updated
        + run.to_crm_unchanged;
    println!("status {} in {secs:.2} s; {} items", run.status, touched);
    println!(
        "from CRM: {} created, {} updated, {} rejected; to CRM: {} created, {} updated, {} rejected",
        run.from_crm_created,
        run.from_crm_updated,
        run.from_crm_rejected,
        run.to_crm_created,
        run.to_crm_updated,
        run.to_crm_rejected
    );
    println!(
        "{total} CRM calls ({:.1}/s, {:.2} per contact), {limited} answered 429 ({:.2}%)",
        total as f64 / secs,
        total as f64 / (2 * n) as f64,
        100.0 * limited as f64 / total.max(1) as f64
    );
    println!("{:.0} contacts/s end to end", (2 * n) as f64 / secs);
    if let Some(rows) = requests["requests"].as_array() {
        for row in rows {
            println!("  {row}");
        }
    }
    println!("peak RSS {:.0} MB", peak_rss_mb());
}
