//! The operations endpoints: `/readyz` says which dependency fails, `/metrics`
//! shows what the API and its worker did, and the worker-only server serves
//! the same endpoints on a port of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use crmsync_api::ops::{self, Ops};
use crmsync_worker::metrics::Scrape;
use serde_json::{Value, json};

use crate::helpers::*;

fn base(app: &TestApp) -> String {
    app.url.trim_end_matches("/graphql").to_owned()
}

async fn get(url: &str) -> (reqwest::StatusCode, String, String) {
    let reply = reqwest::get(url).await.unwrap();
    let status = reply.status();
    let content_type = reply
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, reply.text().await.unwrap())
}

async fn scrape(app: &TestApp) -> Scrape {
    let (status, content_type, body) = get(&format!("{}/metrics", base(app))).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    Scrape::parse(&body)
}

#[tokio::test]
async fn readyz_is_200_when_the_database_and_the_queue_answer() {
    let app = TestApp::spawn().await;

    let (status, _, body) = get(&format!("{}/readyz", base(&app))).await;

    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ready"})
    );
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_does_not_answer() {
    let app = TestApp::spawn().await;
    // The queue shares the database's pool, so it fails with it.
    app.state.db.clone().close().await.unwrap();

    let (status, _, body) = get(&format!("{}/readyz", base(&app))).await;

    assert_eq!(status, 503);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "unavailable", "failed": ["database", "queue"]})
    );
    // The process is still alive.
    let (status, _, body) = get(&format!("{}/healthz", base(&app))).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn graphql_latency_is_counted_by_operation_type() {
    let app = TestApp::spawn().await;
    let token = app.token(crmsync_entity::enums::Role::Admin);
    for _ in 0..3 {
        app.gql(&token, "{ connectors { totalCount } }", json!({}))
            .await;
    }
    let body = app
        .gql(
            &token,
            "mutation { createApiKey(input: {name: \"ci\", role: VIEWER}) { secret } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    app.gql(&token, "{ not even graphql", json!({})).await;
    // Two operations in one document: the one named runs and is labelled.
    let (_, _, body) = app.post(
        Some(&token),
        json!({"query": "query A { connectors { totalCount } } mutation B { createApiKey(input: {name: \"b\", role: VIEWER}) { secret } }", "operationName": "B"}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let scrape = scrape(&app).await;

    let count = |operation| {
        scrape.value(
            "crmsync_graphql_request_duration_seconds_count",
            &[("operation", operation)],
        )
    };
    assert_eq!(count("query"), Some(3.0));
    assert_eq!(count("mutation"), Some(2.0));
    assert_eq!(count("invalid"), Some(1.0));
    assert_eq!(count("subscription"), None);
}

#[tokio::test]
async fn metrics_after_a_sync_show_its_items_calls_and_status() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    // Creating the connector tests the connection: those calls count too.
    let id = app.pipedrive_connector(&sandbox).await;
    let data = app
        .admin_ok(
            "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id } } }",
            json!({ "id": id }),
        )
        .await;
    let run_id = data["startSync"]["run"]["id"].as_str().unwrap().to_owned();
    let run = wait_final(&app, &run_id).await;
    let status = run["status"].as_str().unwrap();

    // The worker observes a run's duration just after storing its end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let scrape = scrape(&app).await;
        let durations = scrape.value(
            "crmsync_sync_run_duration_seconds_count",
            &[("status", status)],
        );
        if durations == Some(1.0) || tokio::time::Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Items by direction and outcome: the run's legs.
    for leg in run["legs"].as_array().unwrap() {
        let direction = leg["direction"].as_str().unwrap();
        for (field, outcome) in [
            ("created", "CREATED"),
            ("updated", "UPDATED"),
            ("unchanged", "UNCHANGED"),
            ("rejected", "REJECTED"),
            ("conflicts", "CONFLICT"),
            ("deleted", "DELETED"),
        ] {
            let expected = leg[field].as_f64().unwrap();
            let counted = scrape
                .value(
                    "crmsync_sync_items_total",
                    &[("direction", direction), ("outcome", outcome)],
                )
                .unwrap_or(0.0);
            assert_eq!(counted, expected, "{direction} {outcome}");
        }
    }
    assert!(
        scrape.sum("crmsync_sync_items_total", &[("direction", "FROM_CRM")]) >= 30.0,
        "the seeded people came in"
    );

    // CRM calls: the sandbox's own counts, endpoint by endpoint.
    let reply: Value = reqwest::get(format!(
        "{}/requests?system=pipedrive",
        sandbox.description().admin_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for row in reply["requests"].as_array().unwrap() {
        let endpoint = row["endpoint"]
            .as_str()
            .unwrap()
            .replace("/pipedrive/{company}", "");
        let status = row["status"].as_u64().unwrap().to_string();
        *expected.entry((endpoint, status)).or_default() += row["count"].as_f64().unwrap();
    }
    let counted: BTreeMap<(String, String), f64> = scrape
        .matching("crmsync_crm_requests_total", &[("crm", "pipedrive")])
        .into_iter()
        .map(|(labels, v)| {
            let get = |k: &str| labels.iter().find(|(lk, _)| lk == k).unwrap().1.clone();
            ((get("endpoint"), get("status")), v)
        })
        .collect();
    assert_eq!(counted, expected);
    assert!(counted.contains_key(&("GET /api/v1/personFields".to_owned(), "200".to_owned())));
    assert!(counted.contains_key(&("GET /api/v2/persons".to_owned(), "200".to_owned())));

    // Runs by status, read from the database.
    assert_eq!(
        scrape.value("crmsync_sync_runs", &[("status", status)]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("crmsync_sync_runs", &[("status", "QUEUED")]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(
            "crmsync_sync_run_duration_seconds_count",
            &[("status", status)]
        ),
        Some(1.0)
    );
    assert_eq!(scrape.value("crmsync_queue_pending_jobs", &[]), Some(0.0));
}

#[tokio::test]
async fn a_worker_only_process_serves_health_readiness_and_metrics_on_its_own_port() {
    let app = TestApp::spawn().await;
    let ops = Ops {
        db: app.state.db.clone(),
        queue: app.state.queue.clone(),
        metrics: app.state.metrics.clone(),
    };

    let addr = ops::spawn("127.0.0.1:0".parse().unwrap(), ops)
        .await
        .unwrap();

    assert_ne!(addr.port(), 0);
    let url = format!("http://{addr}");
    assert_eq!(get(&format!("{url}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{url}/readyz")).await.0, 200);
    let (status, _, body) = get(&format!("{url}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        Scrape::parse(&body).value("crmsync_sync_runs", &[("status", "RUNNING")]),
        Some(0.0)
    );
    // Only the operations endpoints: no GraphQL here.
    assert_eq!(get(&format!("{url}/graphql")).await.0, 404);
}

async fn wait_final(app: &TestApp, run: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let data = app
            .admin_ok(
                "query($id: ID!) { syncRun(id: $id) { status legs { direction created updated unchanged rejected conflicts deleted } } }",
                json!({ "id": run }),
            )
            .await;
        let status = data["syncRun"]["status"].as_str().unwrap().to_owned();
        if !matches!(status.as_str(), "QUEUED" | "RUNNING") {
            return data["syncRun"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run} still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
