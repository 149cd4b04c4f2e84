//! Form submissions (S3): the submitted contact alone goes to the CRM in a
//! FORM run, bursts share one run, submissions made while a run goes on get
//! a FORM run after it, and the export filter (S5) applies.

use std::time::Duration;

use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{ItemOutcome, SyncDirection, SyncMode, SyncRunStatus, SyncTrigger};
use crmsync_entity::models::{pending_push, sync_checkpoint, sync_run};
use crmsync_worker::jobs::JobQueue;
use crmsync_worker::runs::push_contact;
use crmsync_worker::worker::run_worker;
use sea_orm::PaginatorTrait;

use crate::support::{App, primary_email};

/// Waits until `n` runs of the app's connector have ended and no run is
/// queued or going (a FORM run may follow one that ends).
async fn settled(app: &App, n: usize) -> Vec<sync_run::Model> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let all = app.runs().await;
        if all.len() >= n && all.iter().all(|r| r.status.is_final()) {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs did not settle: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker on the app's queue until the test ends.
fn worker(app: &App, queue: &JobQueue) {
    tokio::spawn(run_worker(
        queue.clone(),
        app.ctx.clone(),
        2,
        std::future::pending::<()>(),
    ));
}

async fn emails_in_crm(app: &App) -> Vec<String> {
    let mut emails: Vec<String> = app
        .crm
        .persons()
        .await
        .iter()
        .filter_map(primary_email)
        .collect();
    emails.sort();
    emails
}

#[tokio::test]
async fn a_submitted_contact_alone_goes_to_the_crm_and_moves_no_checkpoint() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    // Another contact changed on the platform, not submitted: the next
    // scheduled run exports it, the FORM run does not.
    app.add_contact("other@acme.test", Some("Other"), Some("One"), 10)
        .await;
    let ada = app
        .add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    worker(&app, &queue);
    let started = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &ada)
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].trigger, SyncTrigger::Form);

    let all = settled(&app, 1).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].status, SyncRunStatus::Succeeded, "{:?}", all[0]);
    assert_eq!(emails_in_crm(&app).await, vec!["ada@acme.test"]);
    let items = app.items(&all[0]).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].direction, SyncDirection::ToCrm);
    assert_eq!(items[0].outcome, ItemOutcome::Created);
    assert_eq!(items[0].contact_id.as_deref(), Some(ada.id.as_str()));
    // No checkpoint: the FORM run read only its contact.
    let checkpoints = sync_checkpoint::Entity::for_tenant(&app.tenant)
        .count(&app.db.db)
        .await
        .unwrap();
    assert_eq!(checkpoints, 0);
    // Its submission is done.
    let pending = pending_push::Entity::for_tenant(&app.tenant)
        .count(&app.db.db)
        .await
        .unwrap();
    assert_eq!(pending, 0);

    // The next incremental run exports the other contact.
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded);
    assert_eq!(
        emails_in_crm(&app).await,
        vec!["ada@acme.test", "other@acme.test"]
    );
}

#[tokio::test]
async fn a_burst_of_submissions_goes_in_one_small_run() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    worker(&app, &queue);
    let mut contacts = Vec::new();
    for i in 0..10 {
        contacts.push(
            app.add_contact(&format!("p{i}@acme.test"), Some("P"), Some("Q"), 10)
                .await,
        );
    }
    let pushes = contacts
        .iter()
        .map(|c| push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, c));
    for started in futures::future::join_all(pushes).await {
        assert_eq!(started.unwrap().len(), 1);
    }
    let all = settled(&app, 1).await;
    assert_eq!(all.len(), 1, "one FORM run for the burst: {all:?}");
    assert_eq!(all[0].trigger, SyncTrigger::Form);
    assert_eq!(all[0].to_crm_created, 10, "{:?}", all[0]);
    assert_eq!(emails_in_crm(&app).await.len(), 10);
}

#[tokio::test]
async fn a_submission_during_a_run_gets_a_form_run_after_it() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let ada = app
        .add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    // A manual run is queued (no worker yet): the submission waits for it.
    let manual = app.start_sync(&queue).await.unwrap();
    let joined = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &ada)
        .await
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(
        joined[0].id, manual.id,
        "the run already queued is returned"
    );
    worker(&app, &queue);
    let all = settled(&app, 2).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].id, manual.id);
    assert_eq!(all[0].to_crm_created, 1, "the manual run exported Ada");
    assert_eq!(all[1].trigger, SyncTrigger::Form);
    assert_eq!(all[1].status, SyncRunStatus::Succeeded);
    let items = app.items(&all[1]).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0].outcome,
        ItemOutcome::Unchanged,
        "no echo: already written"
    );
    assert_eq!(emails_in_crm(&app).await, vec!["ada@acme.test"]);
}

#[tokio::test]
async fn a_whole_run_requested_while_a_form_run_waits_takes_it_over() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let ada = app
        .add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    app.add_contact("bob@acme.test", Some("Bob"), Some("Ross"), 10)
        .await;
    let form = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &ada)
        .await
        .unwrap();
    let manual = app.start_sync(&queue).await.unwrap();
    assert_eq!(manual.id, form[0].id, "one run at a time (R4)");
    assert_eq!(manual.trigger, SyncTrigger::Manual);
    worker(&app, &queue);
    let all = settled(&app, 2).await;
    assert_eq!(all[0].trigger, SyncTrigger::Manual);
    assert_eq!(all[0].to_crm_created, 2, "{:?}", all[0]);
    // The submission still gets its FORM run, which finds Ada written.
    assert_eq!(all[1].trigger, SyncTrigger::Form);
    assert_eq!(all[1].to_crm_unchanged, 1, "{:?}", all[1]);
    assert_eq!(
        emails_in_crm(&app).await,
        vec!["ada@acme.test", "bob@acme.test"]
    );
}

#[tokio::test]
async fn contacts_below_the_export_filter_are_not_pushed() {
    let app = App::with(0, |s| s.min_score_to_export = 50).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let low = app
        .add_contact("low@acme.test", Some("Low"), Some("Score"), 49)
        .await;
    let started = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &low)
        .await
        .unwrap();
    assert!(started.is_empty());
    assert!(app.runs().await.is_empty());
    let high = app
        .add_contact("high@acme.test", Some("High"), Some("Score"), 50)
        .await;
    let started = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &high)
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
}

#[tokio::test]
async fn an_archived_contacts_submission_starts_no_run() {
    let app = App::start(0).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let ada = app
        .add_contact("ada@acme.test", Some("Ada"), Some("Lovelace"), 10)
        .await;
    let ada = app
        .edit_contact(&ada, |c| {
            c.archived_at = sea_orm::ActiveValue::Set(Some(chrono::Utc::now()));
        })
        .await;

    let started = push_contact(&app.db.db, &queue, app.bus.as_ref(), &app.tenant, &ada)
        .await
        .unwrap();

    assert!(started.is_empty(), "{started:?}");
    assert!(app.runs().await.is_empty());
    assert_eq!(
        pending_push::Entity::for_tenant(&app.tenant)
            .count(&app.db.db)
            .await
            .unwrap(),
        0
    );
}
