//! Scale-out (issue 5): API processes and worker processes of the real binary
//! on one PostgreSQL database and one queue (apalis on PostgreSQL, or on Redis),
//! against the sandbox Pipedrive over HTTP.
//!
//! These tests need the machine's PostgreSQL: they run in the PostgreSQL pass
//! of `.ci/run` (`CRMSYNC_TEST_POSTGRES_URL` set), or on its default address
//! when `CI=true`; otherwise they say so and return. The Redis variants need
//! `CRMSYNC_TEST_REDIS_URL` as well (set by `.ci/run`). A service that does
//! not answer fails the test.

use std::time::Duration;

use crmsync_entity::testing::TestDatabase;
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, Subscription, email, persons, sandbox};

/// The cluster's database: in the PostgreSQL pass (`CRMSYNC_TEST_POSTGRES_URL`),
/// or on the machine's PostgreSQL when `CI=true` (where a missing service is a
/// failure, never a skip); otherwise `None`, with a note.
pub(crate) async fn postgres() -> Option<TestDatabase> {
    let db = if std::env::var(crmsync_entity::testing::POSTGRES_ENV).is_ok() {
        TestDatabase::new().await
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        TestDatabase::postgres("postgres://postgres@127.0.0.1:5432/postgres").await
    } else {
        eprintln!(
            "scale-out tests run in the PostgreSQL pass (CRMSYNC_TEST_POSTGRES_URL) or with CI=true"
        );
        return None;
    };
    assert!(db.is_postgres());
    Some(db)
}

/// The Redis URL for the Redis variants: `CRMSYNC_TEST_REDIS_URL`, or the
/// machine's Redis when `CI=true`; otherwise `None`, with a note.
pub(crate) fn redis() -> Option<String> {
    match std::env::var("CRMSYNC_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            Some("redis://127.0.0.1:6379".into())
        }
        _ => {
            eprintln!(
                "the Redis variants run when CRMSYNC_TEST_REDIS_URL is set (.ci/run sets it)"
            );
            None
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
    let mut api2 = cluster.api();
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

    // SIGTERM: API 2 closes its open subscriptions with 1001 (going away) and exits.
    let mut events = Subscription::open(
        &api2,
        &admin,
        "subscription { syncEvents { runId } }",
        json!({}),
    )
    .await;
    api2.terminate(Duration::from_secs(20)).await;
    assert_eq!(
        events.next_or_close(Duration::from_secs(5)).await,
        Err(Some(1001))
    );
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

/// The worker running the sync is stopped three times while it writes 600
/// persons: twice with `kill -9`, then with SIGTERM (it hands the run back at
/// its next page and exits); contacts change in between. Another worker takes
/// the run over each time; it ends SUCCEEDED, every contact is in the CRM
/// once, and after the next run every change is there.
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
        // Holders are named `crmsync-{host}-{pid}-{suffix}/{execution}`.
        let worker = holder.split('/').next().unwrap();
        let pid: u32 = worker.rsplit('-').nth(1).unwrap().parse().unwrap();
        let index = workers
            .iter()
            .position(|w| w.pid() == pid)
            .unwrap_or_else(|| panic!("the holder {holder} is one of our workers"));
        let mut stopped = workers.remove(index);
        if kill < 2 {
            stopped.kill();
        } else {
            // It finishes the pages whose writes started (up to 500 paced
            // writes: about 5 s here, more on a loaded machine); its log says
            // every 10 s what it still waits for.
            stopped.terminate(Duration::from_secs(120)).await;
            assert!(
                stopped.logged("the run is handed back for another worker"),
                "the worker stopped by SIGTERM says it handed its run back"
            );
        }
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
