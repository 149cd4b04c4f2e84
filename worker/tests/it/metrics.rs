//! Metrics a run records, read back from a scrape: items by outcome, CRM
//! calls (checked against the sandbox's own request counts), run latency,
//! runs by status from the database, and the queue's depth.

use std::collections::BTreeMap;

use crmsync_entity::enums::{CrmModule, SyncMode, SyncRunStatus};
use crmsync_worker::crm::CrmClient;
use crmsync_worker::jobs::{JobQueue, SyncJob};
use crmsync_worker::metrics::Scrape;
use serde_json::{Value, json};

use crate::support::{App, Zoho};

async fn scrape<C>(app: &App<C>) -> Scrape {
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    Scrape::parse(
        &app.ctx
            .metrics
            .render(&app.db.db, queue.depth().await)
            .await,
    )
}

/// The sandbox's request counts as `(endpoint, status) -> count`.
fn sandbox_counts(reply: &Value) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for row in reply["requests"].as_array().expect("requests") {
        let status = match row["status"].as_u64().unwrap() {
            0 => "error".to_owned(),
            s => s.to_string(),
        };
        *out.entry((row["endpoint"].as_str().unwrap().to_owned(), status))
            .or_default() += row["count"].as_f64().unwrap_or(1.0);
    }
    out
}

fn label(labels: &[(String, String)], key: &str) -> String {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no label {key} in {labels:?}"))
}

/// Our CRM request counts for one CRM as `(endpoint, status) -> count`.
fn our_counts(scrape: &Scrape, crm: &str) -> BTreeMap<(String, String), f64> {
    scrape
        .matching("crmsync_crm_requests_total", &[("crm", crm)])
        .into_iter()
        .map(|(l, v)| ((label(&l, "endpoint"), label(&l, "status")), v))
        .collect()
}

#[tokio::test]
async fn a_pipedrive_run_counts_its_items_and_every_crm_call_it_made() {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([
            {"id": 1, "name": "Ann One", "first_name": "Ann", "last_name": "One",
             "emails": [{"value": "ann@acme.fr", "primary": true, "label": "work"}]},
            {"id": 2, "name": "Bob Two", "first_name": "Bob", "last_name": "Two",
             "emails": [{"value": "bob@acme.fr", "primary": true, "label": "work"}]},
            {"id": 3, "name": "No Mail", "first_name": "No", "last_name": "Mail", "emails": []},
        ]))
        .await;
    app.add_contact("carol@x.com", Some("Carol"), Some("Three"), 30)
        .await;
    // The set-up's own calls (reading fields) are not the run's.
    app.crm.reset_requests().await;
    // One listing page is dropped once: a transport failure, retried.
    app.crm
        .fault(json!({"endpoint": "GET /pipedrive/{company}/api/v2/persons", "kind": "drop", "count": 1}))
        .await;

    let run = app.sync(SyncMode::Full).await;
    let items = app.items(&run).await;
    let scrape = scrape(&app).await;

    // Items: exactly the rows the run recorded, by direction and outcome.
    assert!(!items.is_empty());
    let mut recorded: BTreeMap<(String, String), f64> = BTreeMap::new();
    for item in &items {
        *recorded
            .entry((
                item.direction.as_str().to_owned(),
                item.outcome.as_str().to_owned(),
            ))
            .or_default() += 1.0;
    }
    let counted: BTreeMap<(String, String), f64> = scrape
        .matching("crmsync_sync_items_total", &[])
        .into_iter()
        .map(|(l, v)| ((label(&l, "direction"), label(&l, "outcome")), v))
        .collect();
    assert_eq!(counted, recorded);
    assert_eq!(
        scrape.value(
            "crmsync_sync_items_total",
            &[("direction", "FROM_CRM"), ("outcome", "CREATED")]
        ),
        Some(run.from_crm_created as f64)
    );
    assert_eq!(
        scrape.value(
            "crmsync_sync_items_total",
            &[("direction", "TO_CRM"), ("outcome", "CREATED")]
        ),
        Some(1.0)
    );

    // CRM calls: the sandbox's counts, endpoint by endpoint and status by
    // status (its templates carry the company; ours do not).
    let sandbox = sandbox_counts(&app.crm.admin_get("/requests?system=pipedrive").await);
    let ours: BTreeMap<(String, String), f64> = our_counts(&scrape, "pipedrive")
        .into_iter()
        .map(|((endpoint, status), v)| {
            let (method, path) = endpoint.split_once(' ').unwrap();
            (
                (format!("{method} /pipedrive/{{company}}{path}"), status),
                v,
            )
        })
        .collect();
    assert_eq!(ours, sandbox);
    assert_eq!(
        scrape.value(
            "crmsync_crm_requests_total",
            &[
                ("crm", "pipedrive"),
                ("endpoint", "GET /api/v2/persons"),
                ("status", "error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.sum(
            "crmsync_crm_requests_total",
            &[("crm", "pipedrive"), ("endpoint", "POST /api/v2/persons")]
        ),
        1.0,
        "one create"
    );
    let calls: f64 = sandbox.values().sum();
    assert_eq!(
        scrape.sum(
            "crmsync_crm_request_duration_seconds_count",
            &[("crm", "pipedrive")]
        ),
        calls
    );

    // The run: one queue wait, one duration under its final status, and the
    // database's count of runs by status.
    assert_eq!(
        scrape.value("crmsync_sync_run_queue_wait_seconds_count", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "crmsync_sync_run_duration_seconds_count",
            &[("status", run.status.as_str())]
        ),
        Some(1.0)
    );
    for status in [
        "QUEUED",
        "RUNNING",
        "SUCCEEDED",
        "PARTIAL",
        "FAILED",
        "CANCELLED",
    ] {
        let expected = if status == run.status.as_str() {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            scrape.value("crmsync_sync_runs", &[("status", status)]),
            Some(expected),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_zoho_run_counts_its_token_refresh_and_api_calls() {
    let zoho = Zoho::start(0).await;
    let fields = zoho.client().fields(CrmModule::Leads).await.unwrap();
    let credentials = zoho.credentials();
    let base_url = zoho.accounts_url();
    let app = App::assemble(
        zoho,
        crmsync_entity::enums::ConnectorKind::ZohoCrm,
        credentials,
        &base_url,
        &fields,
        |_| {},
    )
    .await;
    app.add_contact("dora@x.com", Some("Dora"), Some("Four"), 50)
        .await;
    // The token the set-up cached expires: the run refreshes it, once.
    app.crm.advance_clock(7200).await;
    let tokens_before = app.crm.token_calls().await;
    app.crm
        .admin(reqwest::Method::DELETE, "/requests", Value::Null)
        .await;

    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let scrape = scrape(&app).await;

    let tokens = app.crm.token_calls().await - tokens_before;
    assert_eq!(tokens, 1);
    assert_eq!(
        scrape.value(
            "crmsync_crm_requests_total",
            &[
                ("crm", "zoho"),
                ("endpoint", "POST /oauth/v2/token"),
                ("status", "200")
            ]
        ),
        Some(tokens as f64)
    );
    // Every API call the sandbox answered, by status.
    let sandbox = sandbox_counts(
        &app.crm
            .admin(reqwest::Method::GET, "/requests?system=zoho", Value::Null)
            .await,
    );
    let mut sandbox_api: BTreeMap<String, f64> = BTreeMap::new();
    for ((endpoint, status), n) in &sandbox {
        if !endpoint.contains("/oauth/") {
            *sandbox_api.entry(status.clone()).or_default() += n;
        }
    }
    let mut ours_api: BTreeMap<String, f64> = BTreeMap::new();
    for ((endpoint, status), n) in our_counts(&scrape, "zoho") {
        // Route templates: no record ids.
        assert!(
            !endpoint
                .split('/')
                .any(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            "{endpoint}"
        );
        if !endpoint.contains("/oauth/") {
            *ours_api.entry(status).or_default() += n;
        }
    }
    assert_eq!(ours_api, sandbox_api);
    assert_eq!(
        scrape.sum(
            "crmsync_crm_requests_total",
            &[("crm", "zoho"), ("endpoint", "POST /crm/v8/Leads/upsert")]
        ),
        1.0,
        "one upsert of the one contact"
    );
}

#[tokio::test]
async fn the_queue_depth_is_the_jobs_waiting_for_a_worker() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    assert_eq!(queue.pending_jobs().await.unwrap(), Some(0));
    for _ in 0..3 {
        let run = app.queued_run(SyncMode::Incremental, None).await;
        queue
            .enqueue(&SyncJob {
                tenant_id: app.tenant.as_str().to_owned(),
                run_id: run.id.clone(),
                connector_id: app.connector_id.clone(),
            })
            .await
            .unwrap();
    }

    let scrape = scrape(&app).await;

    assert_eq!(queue.pending_jobs().await.unwrap(), Some(3));
    assert_eq!(scrape.value("crmsync_queue_pending_jobs", &[]), Some(3.0));
    assert_eq!(
        scrape.value("crmsync_sync_runs", &[("status", "QUEUED")]),
        Some(3.0)
    );
    queue.ping().await.unwrap();
}
