//! The job queue on Redis (`CRMSYNC_QUEUE_URL`): a started run is picked up by
//! a worker and its progress reaches another process's subscriber. Each test
//! has a queue name of its own, so tests share one Redis without meeting.

use std::sync::Arc;
use std::time::Duration;

use crmsync_entity::enums::{SyncMode, SyncRunStatus, SyncTrigger};
use crmsync_worker::events::{EventBus, RedisBus};
use crmsync_worker::jobs::{JobQueue, QueueSettings};
use crmsync_worker::runs::start_sync;
use crmsync_worker::worker::run_worker;
use secrecy::SecretString;

use crate::bus::redis_url;
use crate::support::App;

/// A queue of the test's own on Redis, with a one-second heartbeat.
fn settings(url: &str) -> QueueSettings {
    QueueSettings {
        redis_url: Some(SecretString::from(url.to_owned())),
        heartbeat: Duration::from_secs(1),
        queue: format!("crmsync-test-{}", crmsync_entity::new_id().to_lowercase()),
    }
}

/// Removes the test queue's keys (they all start with the queue's name).
async fn drop_queue(url: &str, queue: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_run_on_the_redis_queue_is_carried_out_and_streams_to_another_process() {
    let Some(url) = redis_url() else {
        return;
    };
    let mut app = App::start(20).await;
    let settings = settings(&url);
    let queue = JobQueue::connect_with(&app.db.db, &settings)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} (CRMSYNC_TEST_REDIS_URL): {e}"));
    assert_eq!(queue.backend(), "redis");
    queue.ping().await.expect("Redis answers");
    // The worker publishes on its process's bus; the subscriber is on another.
    let worker_bus: Arc<dyn EventBus> = Arc::new(RedisBus::connect(&url).await.unwrap());
    let api_bus = RedisBus::connect(&url).await.unwrap();
    app.ctx.bus = worker_bus.clone();
    let mut events = api_bus.subscribe(app.tenant.as_str());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(queue.clone(), app.ctx.clone(), 1, async {
        let _ = stopped.await;
    }));

    let run = start_sync(
        &app.db.db,
        &queue,
        worker_bus.as_ref(),
        &app.tenant,
        &app.connector_id,
        SyncTrigger::Manual,
        SyncMode::Incremental,
    )
    .await
    .unwrap();

    let (seen, last) = crate::support::until_final(&mut events, &run.id).await;
    assert!(
        matches!(
            last.status,
            SyncRunStatus::Succeeded | SyncRunStatus::Partial
        ),
        "{last:?}"
    );
    assert_eq!(
        seen.first(),
        Some(&SyncRunStatus::Queued),
        "the QUEUED event crossed too"
    );
    assert!(seen.contains(&SyncRunStatus::Running));
    assert!(last.legs.from_crm.created > 0);
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
    drop_queue(&url, &settings.queue).await;
}

#[tokio::test]
async fn ping_answers_on_every_backend_and_an_unreachable_redis_is_refused() {
    let app = App::start(0).await;
    let in_database = JobQueue::connect(&app.db.db).await.unwrap();
    in_database.ping().await.expect("the database answers");
    let Some(url) = redis_url() else {
        return;
    };
    let on_redis = JobQueue::connect_with(&app.db.db, &settings(&url))
        .await
        .unwrap();
    on_redis.ping().await.expect("Redis answers");
    // Nothing listens on port 1: every connection attempt is refused.
    let nowhere = JobQueue::connect_with(&app.db.db, &settings("redis://127.0.0.1:1")).await;
    assert!(nowhere.is_err());
}
