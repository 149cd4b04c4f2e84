//! Runs through the queue: start, one at a time, cancel, a worker picking jobs up.

use crmsync_entity::enums::{SyncMode, SyncRunStatus};
use crmsync_worker::events::EventBus;
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::runs::{RunError, cancel_sync};
use crmsync_worker::worker::run_worker;
use futures::StreamExt;
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;

use crate::support::App;

#[tokio::test]
async fn the_worker_picks_up_a_started_run_and_carries_it_out() {
    let app = App::start(20).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let mut events = app.bus.subscribe(app.tenant.as_str());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(queue.clone(), app.ctx.clone(), 1, async {
        let _ = stopped.await;
    }));
    let run = app.start_sync(&queue).await.unwrap();
    assert_eq!(run.status, SyncRunStatus::Queued);
    assert_eq!(run.phase, "queued");
    assert_eq!(run.task_id.len(), 26);

    let (seen, final_event) = crate::support::until_final(&mut events, &run.id).await;
    assert!(
        matches!(
            final_event.status,
            SyncRunStatus::Succeeded | SyncRunStatus::Partial
        ),
        "{final_event:?}"
    );
    assert!(seen.contains(&SyncRunStatus::Running));
    assert!(final_event.legs.from_crm.created > 0);
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_second_start_returns_the_run_already_queued() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let (a, b, c) = tokio::join!(
        app.start_sync(&queue),
        app.start_sync(&queue),
        app.start_sync(&queue)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.id, b.id);
    assert_eq!(b.id, c.id);
}

#[tokio::test]
async fn a_disabled_connector_cannot_start() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let mut connector: crmsync_entity::models::connector::ActiveModel =
        app.connector().await.into();
    connector.enabled = Set(false);
    sea_orm::ActiveModelTrait::update(connector, &app.db.db)
        .await
        .unwrap();
    let err = app.start_sync(&queue).await.unwrap_err();
    assert!(
        matches!(&err, RunError::Conflict(m) if m.contains("disabled")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once_and_never_runs() {
    let app = App::start(5).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let run = app.start_sync(&queue).await.unwrap();
    let cancelled = cancel_sync(&app.db.db, app.bus.as_ref(), &app.tenant, &run.id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, SyncRunStatus::Cancelled);
    app.crm.reset_requests().await;
    let after = app.execute(&cancelled).await;
    assert_eq!(after.status, SyncRunStatus::Cancelled);
    assert_eq!(
        app.crm.request_count("").await,
        0,
        "a cancelled run calls nobody"
    );
    let again = cancel_sync(&app.db.db, app.bus.as_ref(), &app.tenant, &run.id).await;
    assert!(matches!(again, Err(RunError::Conflict(_))));
}

#[tokio::test]
async fn a_running_run_stops_at_its_next_page_when_cancelled() {
    let app = App::start(1500).await;
    // Slow list pages leave time to ask for the cancel while a page is read.
    app.crm
        .fault(serde_json::json!({"endpoint": "GET /pipedrive/{company}/api/v2/persons", "kind": "latency", "fixed_ms": 400}))
        .await;
    let mut events = app.bus.subscribe(app.tenant.as_str());
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let running = app.execute(&run);
    let canceller = async {
        while let Some(event) = events.next().await {
            if event.run_id == run.id && event.phase == "import" && event.processed > 0 {
                let r = cancel_sync(&app.db.db, app.bus.as_ref(), &app.tenant, &run.id)
                    .await
                    .unwrap();
                assert!(r.cancel_requested);
                return;
            }
        }
    };
    let (ended, ()) = tokio::join!(running, canceller);
    assert_eq!(ended.status, SyncRunStatus::Cancelled);
    assert!(ended.processed < 1500, "stopped before the end");
}

#[tokio::test]
async fn retry_rejected_starts_a_run_for_the_rejected_contacts_only() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let nameless = app.add_contact("nameless@x.com", None, None, 1).await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.to_crm_rejected, 1);
    let retry = crmsync_worker::runs::retry_rejected(
        &app.db.db,
        &queue,
        app.bus.as_ref(),
        &app.tenant,
        &first.id,
    )
    .await
    .unwrap();
    assert_eq!(retry.retry_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(retry.status, SyncRunStatus::Queued);
    let done = app.execute(&retry).await;
    assert_eq!(done.processed, 1, "only the rejected contact");
    app.edit_contact(&nameless, |c| c.last_name = Set(Some("Named".into())))
        .await;
    let clean = app.sync(SyncMode::Incremental).await;
    assert_eq!(clean.status, SyncRunStatus::Succeeded, "{:?}", clean.error);
    let nothing = crmsync_worker::runs::retry_rejected(
        &app.db.db,
        &queue,
        app.bus.as_ref(),
        &app.tenant,
        &clean.id,
    )
    .await;
    assert!(matches!(nothing, Err(RunError::Conflict(_))), "{nothing:?}");
}

#[tokio::test]
async fn a_retry_run_moves_no_checkpoint_past_contacts_it_did_not_read() {
    use crmsync_entity::models::contact;
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let at = |minutes: i64| chrono::Utc::now() - chrono::Duration::minutes(minutes);
    let backdate = |c: contact::Model, when: chrono::DateTime<chrono::Utc>| {
        let db = app.db.db.clone();
        async move {
            let mut am = contact::ActiveModel::from(c);
            am.updated_at = Set(when);
            sea_orm::ActiveModelTrait::update(am, &db).await.unwrap()
        }
    };
    let nameless = app.add_contact("nameless@x.com", None, None, 1).await;
    let nameless = backdate(nameless, at(10)).await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.to_crm_rejected, 1);
    // Changed after that run: the next incremental run must export it.
    let late = app
        .add_contact("late@x.com", Some("Late"), Some("One"), 1)
        .await;
    backdate(late, at(5)).await;
    // The rejected contact changes again (still nameless), then is retried.
    app.edit_contact(&nameless, |c| c.behaviour_score = Set(2))
        .await;
    let retry = crmsync_worker::runs::retry_rejected(
        &app.db.db,
        &queue,
        app.bus.as_ref(),
        &app.tenant,
        &first.id,
    )
    .await
    .unwrap();
    let retried = app.execute(&retry).await;
    assert_eq!(retried.processed, 1, "only the rejected contact");
    let next = app.sync(SyncMode::Incremental).await;
    assert_eq!(next.to_crm_created, 1, "{next:?}");
    let emails: Vec<_> = app
        .crm
        .persons()
        .await
        .iter()
        .filter_map(crate::support::primary_email)
        .collect();
    assert_eq!(emails, vec!["late@x.com"]);
}

#[tokio::test]
async fn only_a_full_run_clears_the_full_resync_recommendation() {
    use sea_orm::ActiveModelTrait;
    let app = App::start(0).await;
    app.add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    let mut am = crmsync_entity::models::connector::ActiveModel::from(app.connector().await);
    am.full_resync_recommended = Set(true);
    am.update(&app.db.db).await.unwrap();
    for mode in [SyncMode::Incremental, SyncMode::DryRun] {
        let run = app.sync(mode).await;
        assert_eq!(run.status, SyncRunStatus::Succeeded, "{mode:?}");
        assert!(app.connector().await.full_resync_recommended, "{mode:?}");
    }
    let full = app.sync(SyncMode::Full).await;
    assert_eq!(full.status, SyncRunStatus::Succeeded);
    assert!(!app.connector().await.full_resync_recommended);
}

/// A RUNNING run whose lease has been free for `minutes`.
async fn running_unheld(app: &App, minutes: i64) -> crmsync_entity::models::sync_run::Model {
    use sea_orm::ActiveModelTrait;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let mut am = crmsync_entity::models::sync_run::ActiveModel::from(run);
    am.status = Set(SyncRunStatus::Running);
    am.lease_holder = Set(None);
    am.lease_expires_at = Set(Some(
        chrono::Utc::now() - chrono::Duration::minutes(minutes),
    ));
    am.update(&app.db.db).await.unwrap()
}

#[tokio::test]
async fn a_run_nobody_took_over_no_longer_blocks_its_connector() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    // Free for a minute: a takeover may still come; the run stands.
    let recent = running_unheld(&app, 1).await;
    assert_eq!(app.start_sync(&queue).await.unwrap().id, recent.id);

    // Free for eleven minutes: nobody will take it over.
    let mut am = crmsync_entity::models::sync_run::ActiveModel::from(recent.clone());
    am.lease_expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::minutes(11)));
    sea_orm::ActiveModelTrait::update(am, &app.db.db)
        .await
        .unwrap();
    let mut events = app.bus.subscribe(app.tenant.as_str());
    let new = app.start_sync(&queue).await.unwrap();
    assert_ne!(new.id, recent.id);
    assert_eq!(new.status, SyncRunStatus::Queued);
    let old = crmsync_entity::models::sync_run::Entity::find_by_id(&recent.id)
        .one(&app.db.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.status, SyncRunStatus::Failed);
    assert!(
        old.error
            .as_deref()
            .unwrap()
            .contains("no worker took it over"),
        "{:?}",
        old.error
    );
    let first = events.next().await.unwrap();
    assert_eq!(
        (first.run_id, first.status),
        (recent.id.clone(), SyncRunStatus::Failed)
    );
}

#[tokio::test]
async fn cancelling_a_run_nobody_took_over_ends_it_at_once() {
    let app = App::start(0).await;
    let run = running_unheld(&app, 11).await;
    let cancelled = cancel_sync(&app.db.db, app.bus.as_ref(), &app.tenant, &run.id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, SyncRunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
}

/// The SQLite queue's setup leaves the pool's connections as crmsync opens
/// them: a page cache of the default 2 MB (not 512 MB, which a million-
/// contact run filled) and commits synced as `synchronous = NORMAL` says.
#[tokio::test]
async fn the_sqlite_queue_leaves_the_connections_settings_alone() {
    let database = crmsync_entity::testing::TestDatabase::sqlite().await;
    JobQueue::connect(&database.db).await.unwrap();
    let pool = database.db.get_sqlite_connection_pool();
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    for connection in &mut held {
        let cache: i64 = sea_orm::sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        let synchronous: i64 = sea_orm::sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!((cache, synchronous), (-2000, 1), "cache_size, synchronous");
    }
}
