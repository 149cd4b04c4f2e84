//! The scheduler (S3): due connectors fire once, missed ticks give one
//! catch-up run, disabled ones never fire, one process holds the lease, and
//! the loop itself fires runs that a worker carries out.

use std::time::Duration;

use chrono::Utc;
use crmsync_entity::enums::{ConnectorStatus, SyncMode, SyncRunStatus, SyncTrigger};
use crmsync_entity::models::{connector, process_lease, sync_run};
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::scheduler::{self, Scheduler, hold, release, tick};
use crmsync_worker::settings::Schedule;
use crmsync_worker::worker::run_worker;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, EntityTrait};

use crate::support::App;

/// Sets the app's connector's schedule (stored as is: tests may go below the
/// API's one-minute floor) and its next planned time.
async fn plan(app: &App, schedule: &str, next: Option<chrono::DateTime<Utc>>) {
    let c = app.connector().await;
    let mut settings = c.settings.clone();
    settings["schedule"] = schedule.into();
    let mut am = connector::ActiveModel::from(c);
    am.settings = Set(settings);
    am.next_sync_at = Set(next);
    am.update(&app.db.db).await.unwrap();
}

#[tokio::test]
async fn a_due_connector_fires_once_and_missed_ticks_give_one_catch_up_run() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let now = Utc::now();
    // An hour of "every 1m" ticks missed (the scheduler was down).
    plan(&app, "every 1m", Some(now - chrono::Duration::hours(1))).await;

    let done = tick(&app.db.db, &queue, app.bus.as_ref(), now)
        .await
        .unwrap();
    assert_eq!(done.started.len(), 1, "{done:?}");
    let all = app.runs().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].trigger, SyncTrigger::Schedule);
    assert_eq!(all[0].mode, SyncMode::Incremental);
    assert_eq!(
        app.connector()
            .await
            .next_sync_at
            .map(|t| t.timestamp_millis()),
        Some((now + chrono::Duration::minutes(1)).timestamp_millis()),
        "the next time is planned from now, not from the missed ticks"
    );

    // The same instant again, and any time before the next: nothing.
    for at in [now, now + chrono::Duration::seconds(59)] {
        let again = tick(&app.db.db, &queue, app.bus.as_ref(), at)
            .await
            .unwrap();
        assert_eq!(again, scheduler::Tick::default(), "at {at}");
    }
    assert_eq!(app.runs().await.len(), 1);
}

#[tokio::test]
async fn a_connector_first_seen_is_planned_without_firing() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    plan(&app, "every 2h", None).await;
    let now = Utc::now();
    let done = tick(&app.db.db, &queue, app.bus.as_ref(), now)
        .await
        .unwrap();
    assert_eq!(done.planned, vec![app.connector_id.clone()]);
    assert!(done.started.is_empty());
    assert!(app.runs().await.is_empty());
    // At the connector's own point of its first two hours.
    let next = app.connector().await.next_sync_at.unwrap();
    assert!(
        next > now && next <= now + chrono::Duration::hours(2),
        "{next} within two hours of {now}"
    );
    assert_eq!(
        Some(next.timestamp_millis()),
        Schedule::parse("every 2h")
            .unwrap()
            .first_after(now, &app.connector_id)
            .map(|t| t.timestamp_millis())
    );
}

#[tokio::test]
async fn cron_schedules_fire_at_their_next_time() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let now = "2026-11-21T10:17:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    plan(
        &app,
        "0 */2 * * *",
        Some(now - chrono::Duration::minutes(1)),
    )
    .await;
    let done = tick(&app.db.db, &queue, app.bus.as_ref(), now)
        .await
        .unwrap();
    assert_eq!(done.started.len(), 1);
    assert_eq!(
        app.connector().await.next_sync_at,
        Some("2026-11-21T12:00:00Z".parse().unwrap())
    );
}

#[tokio::test]
async fn disabled_connectors_and_those_needing_credentials_never_fire() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let due = Utc::now() - chrono::Duration::minutes(5);
    plan(&app, "every 1m", Some(due)).await;
    for (enabled, status) in [
        (false, ConnectorStatus::Disabled),
        (true, ConnectorStatus::NeedsReauth),
    ] {
        let mut am = connector::ActiveModel::from(app.connector().await);
        am.enabled = Set(enabled);
        am.status = Set(status);
        am.update(&app.db.db).await.unwrap();
        let done = tick(&app.db.db, &queue, app.bus.as_ref(), Utc::now())
            .await
            .unwrap();
        assert_eq!(done, scheduler::Tick::default(), "{status}");
        assert_eq!(
            app.connector()
                .await
                .next_sync_at
                .map(|t| t.timestamp_millis()),
            Some(due.timestamp_millis()),
            "{status}: not moved"
        );
    }
    assert!(app.runs().await.is_empty());

    // Enabled again: the ticks it missed give one catch-up run.
    let mut am = connector::ActiveModel::from(app.connector().await);
    am.enabled = Set(true);
    am.status = Set(ConnectorStatus::Connected);
    am.update(&app.db.db).await.unwrap();
    let done = tick(&app.db.db, &queue, app.bus.as_ref(), Utc::now())
        .await
        .unwrap();
    assert_eq!(done.started.len(), 1);
}

#[tokio::test]
async fn two_schedulers_ticking_at_once_fire_a_tick_once() {
    // Two processes that both believe they hold the lease (clocks apart):
    // the conditional move of next_sync_at lets one of them fire.
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let now = Utc::now();
    plan(&app, "every 1m", Some(now - chrono::Duration::seconds(1))).await;
    let (a, b) = tokio::join!(
        tick(&app.db.db, &queue, app.bus.as_ref(), now),
        tick(&app.db.db, &queue, app.bus.as_ref(), now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.started.len() + b.started.len(), 1, "{a:?} {b:?}");
    assert!(a.skipped.is_empty() && b.skipped.is_empty(), "{a:?} {b:?}");
    assert_eq!(app.runs().await.len(), 1);
}

#[tokio::test]
async fn one_process_holds_the_scheduler_lease_until_it_lapses_or_is_released() {
    let app = App::start(0).await;
    let db = &app.db.db;
    let ttl = Duration::from_secs(30);
    assert!(hold(db, "scheduler", "a", ttl).await.unwrap());
    assert!(!hold(db, "scheduler", "b", ttl).await.unwrap());
    assert!(hold(db, "scheduler", "a", ttl).await.unwrap(), "renewed");
    assert_eq!(
        scheduler::scheduler_holder(db).await.unwrap().as_deref(),
        Some("a")
    );
    release(db, "scheduler", "a").await.unwrap();
    assert!(hold(db, "scheduler", "b", ttl).await.unwrap(), "released");
    assert!(!hold(db, "scheduler", "a", ttl).await.unwrap());

    // b dies: its lease lapses and a takes it.
    let mut lapsed = process_lease::ActiveModel::from(
        process_lease::Entity::find_by_id("scheduler".to_owned())
            .one(db)
            .await
            .unwrap()
            .unwrap(),
    );
    lapsed.expires_at = Set(Utc::now() - chrono::Duration::seconds(1));
    lapsed.update(db).await.unwrap();
    assert_eq!(scheduler::scheduler_holder(db).await.unwrap(), None);
    assert!(hold(db, "scheduler", "a", ttl).await.unwrap(), "lapsed");
}

#[tokio::test]
async fn a_schedule_of_every_second_fires_runs_that_a_worker_carries_out() {
    let app = App::start(0).await;
    app.add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    plan(&app, "every 1s", Some(Utc::now())).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let worker = tokio::spawn(run_worker(
        queue.clone(),
        app.ctx.clone(),
        2,
        until_stopped(),
    ));
    let scheduler = tokio::spawn(
        Scheduler {
            db: app.db.db.clone(),
            queue: queue.clone(),
            bus: app.bus.clone(),
            holder: "test-scheduler".into(),
            lease: Duration::from_secs(10),
        }
        .run(until_stopped()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let done: Vec<sync_run::Model> = app
            .runs()
            .await
            .into_iter()
            .filter(|r| r.status == SyncRunStatus::Succeeded)
            .collect();
        if done.len() >= 3 {
            break done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 scheduled runs did not succeed within 60 s: {:?}",
            app.runs().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
    scheduler.await.unwrap();
    assert!(done.iter().all(|r| r.trigger == SyncTrigger::Schedule));
    // The first exported the contact; the others found nothing to do.
    assert_eq!(app.crm.persons().await.len(), 1);
    // Stopping gave the lease up: another process takes over at once.
    assert_eq!(scheduler::scheduler_holder(&app.db.db).await.unwrap(), None);
}
