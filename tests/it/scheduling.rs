//! The scheduler across processes (S3): two worker processes of the binary
//! on one PostgreSQL database; one of them schedules, each tick fires once,
//! and when the scheduling process is killed the other takes over.
//!
//! Like the scale-out tests, these run in the PostgreSQL pass of `.ci/run`
//! (or with `CI=true`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::time::Instant;

use crate::cluster::{Cluster, Process, sandbox};
use crate::scale_out::postgres;

/// The scheduled runs of the connector, in the order they were queued:
/// (queued at, status).
async fn scheduled_runs(cluster: &Cluster, connector: &str) -> Vec<(DateTime<Utc>, String)> {
    use sea_orm::{ConnectionTrait, Statement};
    let rows = cluster
        .db
        .db
        .query_all_raw(Statement::from_sql_and_values(
            cluster.db.db.get_database_backend(),
            "SELECT queued_at, status FROM sync_runs \
             WHERE connector_id = $1 AND trigger = 'SCHEDULE' ORDER BY queued_at",
            [connector.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "queued_at").unwrap(),
                r.try_get("", "status").unwrap(),
            )
        })
        .collect()
}

/// Waits (deadline `within`) until `n` scheduled runs have ended.
async fn ended(cluster: &Cluster, connector: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let runs = scheduled_runs(cluster, connector).await;
        let done = runs
            .iter()
            .filter(|(_, s)| s != "QUEUED" && s != "RUNNING")
            .count();
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {n} scheduled runs ended within {within:?}: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The scheduler lease's live holder, and which of `workers` it is.
async fn holder(cluster: &Cluster, workers: &[Process]) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(name) = crmsync_worker::scheduler::scheduler_holder(&cluster.db.db)
            .await
            .unwrap()
        {
            let which = workers
                .iter()
                .position(|w| name.contains(&format!("-{}-", w.pid())))
                .unwrap_or_else(|| panic!("the holder {name} is none of the workers"));
            return (name, which);
        }
        assert!(
            Instant::now() < deadline,
            "no process holds the scheduler lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every gap between two scheduled runs is at least the schedule's interval
/// (less a little for the time a fire takes): a tick fired twice would show
/// as two runs well under a second apart.
fn assert_fired_once_per_tick(runs: &[(DateTime<Utc>, String)], interval: Duration) {
    let least = chrono::Duration::from_std(interval).unwrap() - chrono::Duration::milliseconds(200);
    for pair in runs.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= least, "two fires {gap} apart: {runs:?}");
    }
}

#[tokio::test]
async fn two_scheduling_processes_fire_each_tick_once_and_one_takes_over_from_the_other() {
    let Some(db) = postgres().await else { return };
    let cluster = Cluster::new(db, None).await;
    let sandbox = sandbox(&cluster.http, 0).await;
    let api = cluster.api();
    let mut workers = vec![cluster.worker(), cluster.worker()];
    let (admin, connector) = cluster.tenant(&api, &sandbox, 5).await;
    let data = cluster
        .graphql(
            &api,
            &admin,
            "mutation($input: UpdateConnectorInput!) { updateConnector(input: $input) { connector { settings { schedule } } } }",
            json!({ "input": { "id": connector, "settings": { "schedule": "every 2s" } } }),
        )
        .await;
    assert_eq!(
        data["updateConnector"]["connector"]["settings"]["schedule"],
        "every 2s"
    );
    let interval = Duration::from_secs(2);

    ended(&cluster, &connector, 4, Duration::from_secs(60)).await;
    let runs = scheduled_runs(&cluster, &connector).await;
    assert_fired_once_per_tick(&runs, interval);
    let (name, which) = holder(&cluster, &workers).await;

    // The scheduling process dies: the other takes the lease once it lapses
    // (three 1 s heartbeats) and the schedule goes on.
    workers[which].kill();
    let killed_at = Utc::now();
    let before = runs.len();
    ended(&cluster, &connector, before + 3, Duration::from_secs(60)).await;
    let (successor, other) = holder(&cluster, &workers).await;
    assert_ne!(successor, name);
    assert_ne!(other, which);
    let runs = scheduled_runs(&cluster, &connector).await;
    assert!(
        runs.iter()
            .any(|(at, _)| *at > killed_at + chrono::Duration::seconds(1)),
        "{runs:?}"
    );
    assert_fired_once_per_tick(&runs, interval);
    // Everything exported once, whoever ran it.
    let persons = crate::cluster::persons(&cluster.http, &sandbox).await;
    assert_eq!(persons.len(), 5, "{persons:?}");
    assert!(
        persons.values().all(|names| names.len() == 1),
        "{persons:?}"
    );
}
