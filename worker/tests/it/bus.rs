//! The cross-process event buses: two buses on one server stand for two
//! processes. PostgreSQL runs when `CRMSYNC_TEST_POSTGRES_URL` is set (two pools
//! on one fresh test database); Redis when `CRMSYNC_TEST_REDIS_URL` is set, or
//! at `redis://127.0.0.1:6379` when `CI=true` (then a missing Redis fails).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crmsync_entity::enums::SyncRunStatus;
use crmsync_entity::testing::TestDatabase;
use crmsync_worker::events::{EventBus, EventStream, Legs, PgBus, RedisBus, SyncEvent};
use futures::StreamExt;
use sea_orm::ConnectionTrait;

/// The longest any one event may take to arrive: a deadline, not a pause.
const DEADLINE: Duration = Duration::from_secs(10);

/// The Redis server for tests, or `None` (the test is skipped) outside CI
/// when none is configured.
pub fn redis_url() -> Option<String> {
    match std::env::var("CRMSYNC_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            Some("redis://127.0.0.1:6379".into())
        }
        _ => {
            eprintln!("skipped: set CRMSYNC_TEST_REDIS_URL (or CI=true) to run the Redis tests");
            None
        }
    }
}

/// Two PostgreSQL buses on one database, each on its own pool, or `None` on SQLite.
async fn pg_buses() -> Option<(TestDatabase, Vec<sea_orm::DatabaseConnection>, PgBus, PgBus)> {
    let db = TestDatabase::new().await;
    if !db.is_postgres() {
        eprintln!("skipped: set CRMSYNC_TEST_POSTGRES_URL to run the PostgreSQL bus tests");
        return None;
    }
    let other = crmsync_entity::db::connect(&db.url).await.unwrap();
    let a = PgBus::connect(db.db.get_postgres_connection_pool())
        .await
        .unwrap();
    let b = PgBus::connect(other.get_postgres_connection_pool())
        .await
        .unwrap();
    Some((db, vec![other], a, b))
}

async fn redis_buses() -> Option<(RedisBus, RedisBus)> {
    let url = redis_url()?;
    let connect = || async {
        RedisBus::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("Redis at {url} (CRMSYNC_TEST_REDIS_URL): {e}"))
    };
    Some((connect().await, connect().await))
}

/// A tenant id no other test uses (every Redis test shares one channel).
fn tenant() -> String {
    crmsync_entity::new_id()
}

fn event(tenant: &str, run: &str, processed: i64) -> SyncEvent {
    SyncEvent {
        tenant_id: tenant.into(),
        run_id: run.into(),
        connector_id: "c".into(),
        status: SyncRunStatus::Running,
        phase: "import".into(),
        processed,
        legs: Legs::default(),
        at: Utc::now(),
    }
}

async fn next(stream: &mut EventStream) -> SyncEvent {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("an event within the deadline")
        .expect("the stream stays open")
}

/// A's event reaches B's subscriber of its tenant, and B's subscriber of
/// another tenant sees only its own (a marker sent after it comes first).
async fn crosses_to_the_tenant_only(a: &dyn EventBus, b: &dyn EventBus) {
    let (acme, globex) = (tenant(), tenant());
    let mut acme_on_b = b.subscribe(&acme);
    let mut globex_on_b = b.subscribe(&globex);

    a.publish(event(&acme, "acme-run", 1));
    a.publish(event(&globex, "globex-marker", 1));

    assert_eq!(next(&mut acme_on_b).await.run_id, "acme-run");
    assert_eq!(next(&mut globex_on_b).await.run_id, "globex-marker");
}

/// A's own subscriber gets A's event once: B answers with a marker only after
/// it has seen the event, so A's echo (if it were delivered) would come first.
async fn reaches_a_local_subscriber_exactly_once(a: &dyn EventBus, b: &dyn EventBus) {
    let acme = tenant();
    let mut acme_on_a = a.subscribe(&acme);
    let mut acme_on_b = b.subscribe(&acme);

    a.publish(event(&acme, "from-a", 1));
    assert_eq!(next(&mut acme_on_b).await.run_id, "from-a");
    b.publish(event(&acme, "marker-from-b", 2));

    assert_eq!(next(&mut acme_on_a).await.run_id, "from-a");
    assert_eq!(next(&mut acme_on_a).await.run_id, "marker-from-b");
}

/// A burst arrives whole and in order; prints the delay (run with --nocapture).
async fn carries_a_burst_in_order(transport: &str, a: &dyn EventBus, b: &dyn EventBus) {
    let acme = tenant();
    let mut acme_on_b = b.subscribe(&acme);
    let count = 500;
    for i in 0..count {
        a.publish(event(&acme, "burst", i));
    }
    let mut delays = Vec::with_capacity(count as usize);
    for i in 0..count {
        let received = next(&mut acme_on_b).await;
        assert_eq!(received.processed, i, "in order, none lost");
        delays.push((Utc::now() - received.at).num_microseconds().unwrap());
    }
    delays.sort_unstable();
    let pct = |p: usize| delays[(delays.len() * p / 100).min(delays.len() - 1)] as f64 / 1000.0;
    eprintln!(
        "{transport} bus, {count} events in one burst: delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(50),
        pct(99),
        pct(100)
    );
}

#[tokio::test]
async fn pg_an_event_crosses_processes_to_its_tenant_only() {
    let Some((_db, _pools, a, b)) = pg_buses().await else {
        return;
    };
    crosses_to_the_tenant_only(&a, &b).await;
}

#[tokio::test]
async fn pg_a_local_subscriber_gets_its_process_event_exactly_once() {
    let Some((_db, _pools, a, b)) = pg_buses().await else {
        return;
    };
    reaches_a_local_subscriber_exactly_once(&a, &b).await;
}

#[tokio::test]
async fn pg_a_burst_crosses_whole_and_in_order() {
    let Some((_db, _pools, a, b)) = pg_buses().await else {
        return;
    };
    carries_a_burst_in_order("PostgreSQL", &a, &b).await;
}

#[tokio::test]
async fn pg_a_listener_whose_connection_is_killed_listens_again() {
    let Some((db, _pools, a, b)) = pg_buses().await else {
        return;
    };
    let acme = tenant();
    let mut acme_on_b = b.subscribe(&acme);
    // Both buses' LISTEN connections (the senders' last statement is pg_notify).
    let killed = db
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap();
    assert_eq!(killed.len(), 2, "two listeners");

    // Events sent before the listener is back are lost: send until one arrives.
    let arrived = tokio::time::timeout(DEADLINE, async {
        let mut sent = 0;
        loop {
            a.publish(event(&acme, "after-kill", sent));
            sent += 1;
            if let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(100), acme_on_b.next()).await
            {
                return event;
            }
        }
    })
    .await
    .expect("the listener is back within the deadline");
    assert_eq!(arrived.run_id, "after-kill");
}

#[tokio::test]
async fn pg_is_chosen_for_a_postgres_database_without_redis() {
    let Some((db, _pools, _a, b)) = pg_buses().await else {
        return;
    };
    let chosen: Arc<dyn EventBus> = crmsync_worker::events::connect(&db.db, None).await.unwrap();
    assert!(format!("{chosen:?}").starts_with("PgBus"), "{chosen:?}");
    crosses_to_the_tenant_only(chosen.as_ref(), &b).await;
}

#[tokio::test]
async fn redis_an_event_crosses_processes_to_its_tenant_only() {
    let Some((a, b)) = redis_buses().await else {
        return;
    };
    crosses_to_the_tenant_only(&a, &b).await;
}

#[tokio::test]
async fn redis_a_local_subscriber_gets_its_process_event_exactly_once() {
    let Some((a, b)) = redis_buses().await else {
        return;
    };
    reaches_a_local_subscriber_exactly_once(&a, &b).await;
}

#[tokio::test]
async fn redis_a_burst_crosses_whole_and_in_order() {
    let Some((a, b)) = redis_buses().await else {
        return;
    };
    carries_a_burst_in_order("Redis", &a, &b).await;
}

#[tokio::test]
async fn the_embedded_default_keeps_events_in_process() {
    let db = TestDatabase::new().await;
    if db.is_postgres() {
        return;
    }
    let embedded = crmsync_worker::events::connect(&db.db, None).await.unwrap();
    assert!(
        format!("{embedded:?}").starts_with("InProcessBus"),
        "{embedded:?}"
    );
}

#[tokio::test]
async fn redis_is_chosen_when_a_queue_url_is_given() {
    let Some(url) = redis_url() else {
        return;
    };
    let db = TestDatabase::new().await;
    let chosen = crmsync_worker::events::connect(&db.db, Some(&url.clone().into()))
        .await
        .unwrap();
    assert!(format!("{chosen:?}").starts_with("RedisBus"), "{chosen:?}");
    let other = RedisBus::connect(&url).await.unwrap();
    crosses_to_the_tenant_only(chosen.as_ref(), &other).await;
}
