//! Fair slots across processes (issue 26): three connectors' runs share
//! two worker processes whose tenant may hold one slot at a time, with
//! slices of a millisecond, so the runs are handed back at every page and
//! taken by whichever worker has a slot. The worker holding a run is killed
//! (`kill -9`) after the runs have been handed back; a new worker comes. Every
//! run ends SUCCEEDED with every contact in its CRM once.
//!
//! PostgreSQL (and Redis for the second variant) as in `scale_out`.

use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::{Cluster, persons_of, sandbox};
use crate::scale_out::{postgres, redis};

#[tokio::test]
async fn runs_handed_back_between_slices_survive_a_killed_worker() {
    let Some(db) = postgres().await else { return };
    killed_between_slices(Cluster::new(db, None).await).await;
}

#[tokio::test]
async fn runs_handed_back_between_slices_survive_a_killed_worker_on_redis() {
    let Some(url) = redis() else { return };
    let Some(db) = postgres().await else { return };
    killed_between_slices(Cluster::new(db, Some(&url)).await).await;
}

async fn killed_between_slices(mut cluster: Cluster) {
    const CONTACTS: usize = 1200;
    cluster.set_env("CRMSYNC_WORKER_SLICE_MS", "1");
    cluster.set_env("CRMSYNC_WORKER_TENANT_SLOTS", "1");
    let sandbox = sandbox(&cluster.http, 5).await;
    let api = cluster.api();
    let mut workers = vec![cluster.worker_with(1), cluster.worker_with(1)];
    let admin = cluster.empty_tenant(&api).await;
    cluster.contacts(&api, &admin, CONTACTS).await;
    let mut connectors = Vec::new();
    for domain in ["fair0", "fair1", "fair2"] {
        connectors.push((
            domain,
            cluster
                .company_connector(&api, &admin, &sandbox, domain)
                .await,
        ));
    }
    let mut runs = Vec::new();
    for (_, connector) in &connectors {
        runs.push(cluster.start_sync(&api, &admin, connector).await);
    }

    // Once a run has been handed back and taken again, kill its holder.
    let deadline = Instant::now() + Duration::from_secs(120);
    let holder = 'found: loop {
        for run in &runs {
            let (status, holder) = cluster.run_row(run).await;
            if status == "RUNNING"
                && let Some(holder) = holder
                && cluster.run_slices(run).await >= 2
            {
                break 'found holder;
            }
        }
        assert!(Instant::now() < deadline, "no run was handed back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Holders are named `crmsync-{host}-{pid}-{suffix}/{execution}`.
    let worker = holder.split('/').next().unwrap();
    let pid: u32 = worker.rsplit('-').nth(1).unwrap().parse().unwrap();
    if let Some(index) = workers.iter().position(|w| w.pid() == pid) {
        workers.remove(index).kill();
    }
    workers.push(cluster.worker_with(1));

    for run in &runs {
        let status = cluster.final_status(run, Duration::from_secs(300)).await;
        assert_eq!(status, "SUCCEEDED", "run {run}");
        assert!(cluster.run_slices(run).await >= 1);
    }
    for (domain, _) in &connectors {
        let stored = persons_of(&cluster.http, &sandbox, domain).await;
        let duplicated: Vec<_> = stored.iter().filter(|(_, names)| names.len() > 1).collect();
        assert!(duplicated.is_empty(), "{domain}: duplicates {duplicated:?}");
        assert_eq!(stored.len(), CONTACTS, "{domain}: every contact once");
    }
}
