//! Fair slots (issue 26): a run gives its slot back after its slice when
//! another run waits, and not when alone, and goes on from its checkpoint
//! without losing or writing twice a contact; the next slot goes to the
//! tenant served longest ago, and a tenant at its cap waits while another
//! tenant's run starts; FORM runs have a lane of their own. Slices are a
//! millisecond here, so a slice is over at every page. The queue tests run
//! on the database's queue and, with `CRMSYNC_TEST_REDIS_URL`, on Redis.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use crmsync_entity::enums::{
    ConnectorKind, CrmModule, ItemOutcome, Lifecycle, SyncDirection, SyncMode, SyncRunStatus,
    SyncTrigger,
};
use crmsync_entity::models::{contact, sync_item, sync_run, tenant_slot};
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_worker::crm::CrmClient;
use crmsync_worker::jobs::{JobQueue, Lane, QueueSettings, SyncJob, new_task_id};
use crmsync_worker::slots;
use crmsync_worker::sync::{SyncError, Take, run_slice};
use crmsync_worker::worker::{run_worker, take_slot};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{App, Crm, eventually, insert_connector, insert_tenant, primary_email};

const SLICE: Duration = Duration::from_millis(1);

/// A connector on a sandbox CRM of its own: another tenant's, or
/// `tenant`'s second one.
struct Other {
    tenant: TenantId,
    connector_id: String,
    crm: Crm,
}

async fn other(app: &App, tenant: Option<&TenantId>) -> Other {
    let crm = Crm::start(0).await;
    let tenant = match tenant {
        Some(t) => t.clone(),
        None => {
            let id = crmsync_entity::new_id();
            insert_tenant(&app.db.db, &id).await;
            TenantId::new(id)
        }
    };
    let fields = crm.client().fields(CrmModule::Persons).await.unwrap();
    let connector_id = insert_connector(
        &app.db.db,
        app.ctx.credentials_key.as_ref(),
        tenant.as_str(),
        (ConnectorKind::Pipedrive, crm.credentials(), &crm.base_url()),
        &fields,
        |_| {},
    )
    .await;
    Other {
        tenant,
        connector_id,
        crm,
    }
}

/// `n` contacts of the tenant, to be exported, in batches.
async fn add_contacts(app: &App, tenant: &TenantId, prefix: &str, n: usize) {
    let now = Utc::now();
    let rows: Vec<contact::ActiveModel> = (0..n)
        .map(|i| {
            contact::ActiveModel::from(contact::Model {
                id: crmsync_entity::new_id(),
                tenant_id: tenant.as_str().to_owned(),
                email: format!("{prefix}{i}@example.com"),
                first_name: Some("Sam".into()),
                last_name: Some(format!("Slice{i}")),
                company: None,
                phone: None,
                job_title: None,
                source: None,
                behaviour_score: 50,
                state: None,
                lifecycle: Lifecycle::Prospect,
                opted_out: false,
                owner_email: None,
                custom_fields: json!({}),
                created_at: now,
                updated_at: now,
                archived_at: None,
            })
        })
        .collect();
    for chunk in rows.chunks(200) {
        contact::Entity::insert_many(chunk.to_vec())
            .exec(&app.db.db)
            .await
            .unwrap();
    }
}

async fn queued(app: &App, other: &Other, trigger: SyncTrigger) -> sync_run::Model {
    sync_run::ActiveModel::from(sync_run::Model::queued(
        other.tenant.as_str(),
        &other.connector_id,
        trigger,
        SyncMode::Incremental,
        new_task_id(),
        None,
    ))
    .insert(&app.db.db)
    .await
    .unwrap()
}

async fn row(app: &App, run: &sync_run::Model) -> sync_run::Model {
    sync_run::Entity::find_for_tenant(&TenantId::new(run.tenant_id.clone()), &run.id)
        .one(&app.db.db)
        .await
        .unwrap()
        .unwrap()
}

/// Marks the run RUNNING under another worker's live lease (`ms` long).
async fn held_elsewhere(app: &App, run: &sync_run::Model, ms: i64) -> sync_run::Model {
    let mut am = sync_run::ActiveModel::from(run.clone());
    am.status = Set(SyncRunStatus::Running);
    am.started_at = Set(Some(Utc::now()));
    am.lease_holder = Set(Some("elsewhere/1".into()));
    am.lease_expires_at = Set(Some(Utc::now() + chrono::Duration::milliseconds(ms)));
    am.update(&app.db.db).await.unwrap()
}

/// Waits until every run named is final; returns them as stored.
async fn all_final(app: &App, runs: &[&sync_run::Model]) -> Vec<sync_run::Model> {
    eventually(120, "every run ends", || async {
        let mut rows = Vec::new();
        for run in runs {
            rows.push(row(app, run).await);
        }
        rows.iter().all(|r| r.status.is_final()).then_some(rows)
    })
    .await
}

/// Every e-mail the CRM holds, once each: returns how many.
async fn each_once(crm: &Crm) -> usize {
    let emails: Vec<String> = crm
        .persons()
        .await
        .iter()
        .filter_map(primary_email)
        .collect();
    let distinct: HashSet<&String> = emails.iter().collect();
    assert_eq!(distinct.len(), emails.len(), "a contact written twice");
    emails.len()
}

/// The run's TO_CRM CREATED items: one per contact.
async fn created_once(app: &App, run: &sync_run::Model) -> usize {
    let items = sync_item::Entity::for_tenant(&TenantId::new(run.tenant_id.clone()))
        .filter(sync_item::Column::RunId.eq(&run.id))
        .filter(sync_item::Column::Direction.eq(SyncDirection::ToCrm))
        .filter(sync_item::Column::Outcome.eq(ItemOutcome::Created))
        .all(&app.db.db)
        .await
        .unwrap();
    let contacts: HashSet<_> = items.iter().map(|i| i.contact_id.clone()).collect();
    assert_eq!(contacts.len(), items.len(), "a contact created twice");
    items.len()
}

async fn big_app(contacts: usize) -> App {
    let mut app = App::start(0).await;
    // Thousands of person writes: more calls per 2 s window than the default.
    app.crm.set_limits(json!({"burst_limit": 1000})).await;
    add_contacts(&app, &app.tenant.clone(), "big", contacts).await;
    app.ctx.options.slots.slice = Some(SLICE);
    app
}

#[tokio::test]
async fn a_run_alone_keeps_its_slot_however_short_its_slice() {
    let app = big_app(1200).await;

    let done = app.sync(SyncMode::Full).await;

    assert_eq!(done.status, SyncRunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.slices, 1, "never handed back");
    assert_eq!(done.to_crm_created, 1200);
    assert_eq!(each_once(&app.crm).await, 1200);
}

#[tokio::test]
async fn a_run_gives_its_slot_back_when_another_waits_and_goes_on_from_its_checkpoint() {
    let app = big_app(2500).await;
    let b = other(&app, None).await;
    add_contacts(&app, &b.tenant, "b", 3).await;
    let a_run = app.queued_run(SyncMode::Full, None).await;
    let b_run = queued(&app, &b, SyncTrigger::Manual).await;

    let first = run_slice(&app.ctx, &SyncJob::of(&a_run), Take::Wait).await;

    assert!(matches!(first, Err(SyncError::Yielded)), "{first:?}");
    let back = row(&app, &a_run).await;
    assert_eq!(
        back.status,
        SyncRunStatus::Queued,
        "behind the run that waited"
    );
    assert_eq!(back.slices, 1);
    assert_eq!(back.lease_holder, None);
    assert!(back.queued_at > a_run.queued_at, "queued again");
    assert!(back.started_at.is_some());
    let written = each_once(&app.crm).await;
    assert!(written > 0 && written < 2500, "part of it: {written}");

    // The run that waited takes the slot (with no slice: it would hand the
    // slot back to the first after its page otherwise).
    let mut unsliced = app.ctx.clone();
    unsliced.options.slots.slice = None;
    let b_done = run_slice(&unsliced, &SyncJob::of(&b_run), Take::Wait)
        .await
        .unwrap();
    assert_eq!(
        b_done.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        b_done.error
    );

    // Alone now, the first goes on from its checkpoint to its end.
    let a_done = run_slice(&app.ctx, &SyncJob::of(&a_run), Take::Wait)
        .await
        .unwrap();
    assert_eq!(
        a_done.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        a_done.error
    );
    assert_eq!(a_done.slices, 2);
    assert_eq!(a_done.to_crm_created, 2500, "counts carried across slices");
    assert_eq!(each_once(&app.crm).await, 2500, "no contact lost");
    assert_eq!(created_once(&app, &a_done).await, 2500);
    assert_eq!(each_once(&b.crm).await, 3);
}

#[tokio::test]
async fn a_queued_run_of_a_tenant_at_its_cap_counts_behind_the_others() {
    let app = App::start(0).await;
    let x = Other {
        tenant: app.tenant.clone(),
        connector_id: app.connector_id.clone(),
        crm: Crm::start(0).await,
    };
    let x2 = other(&app, Some(&app.tenant)).await;
    let y = other(&app, None).await;
    // X holds a slot with one run and waits with another; Y, served a
    // moment ago, waits too. X has had no slot handed out yet, so it comes
    // first unless its cap holds it back.
    let x_running = queued(&app, &x, SyncTrigger::Manual).await;
    held_elsewhere(&app, &x_running, 60_000).await;
    queued(&app, &x2, SyncTrigger::Manual).await;
    queued(&app, &y, SyncTrigger::Manual).await;
    tenant_slot::take(&app.db.db, y.tenant.as_str(), Utc::now())
        .await
        .unwrap();
    let position = async |who: &Other, cap: Option<usize>| {
        slots::queue_position(&app.db.db, &who.tenant, &who.connector_id, cap)
            .await
            .unwrap()
    };

    assert_eq!(position(&x2, None).await, Some(1), "no cap known");
    assert_eq!(position(&y, None).await, Some(2));
    assert_eq!(position(&x2, Some(1)).await, Some(2), "X at its cap");
    assert_eq!(position(&y, Some(1)).await, Some(1));
    assert_eq!(position(&x2, Some(2)).await, Some(1), "X under its cap");
}

#[tokio::test]
async fn the_next_slot_goes_to_the_tenant_served_longest_ago() {
    let app = App::start(0).await;
    let x2 = other(&app, Some(&app.tenant)).await;
    let y = other(&app, None).await;
    let x_run = queued(&app, &x2, SyncTrigger::Manual).await;
    let y_run = queued(&app, &y, SyncTrigger::Manual).await;
    // Tenant X took a slot a moment ago; Y has had none.
    tenant_slot::take(&app.db.db, app.tenant.as_str(), Utc::now())
        .await
        .unwrap();

    let order: Vec<String> = slots::fairest(&app.db.db, Lane::Main, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(order, vec![y_run.id.clone(), x_run.id.clone()]);
    let position = |tenant: TenantId, connector: String| {
        let db = app.db.db.clone();
        async move {
            slots::queue_position(&db, &tenant, &connector, None)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        position(x2.tenant.clone(), x2.connector_id.clone()).await,
        Some(2)
    );
    assert_eq!(
        position(y.tenant.clone(), y.connector_id.clone()).await,
        Some(1)
    );
    assert_eq!(
        position(app.tenant.clone(), app.connector_id.clone()).await,
        None,
        "no run queued"
    );

    // A token naming X's run takes Y's, queued after it.
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    take_slot(&app.ctx, &queue, Lane::Main, &SyncJob::of(&x_run))
        .await
        .unwrap();

    assert_eq!(row(&app, &y_run).await.status, SyncRunStatus::Succeeded);
    assert_eq!(row(&app, &x_run).await.status, SyncRunStatus::Queued);
}

#[tokio::test]
async fn a_worker_shutting_down_takes_no_run_and_gives_its_token_back() {
    // A run waits (one just handed back by this worker's own slice, say);
    // a token comes to the worker once it is told to stop.
    let app = App::start(0).await;
    let y = other(&app, None).await;
    let run = queued(&app, &y, SyncTrigger::Manual).await;
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    let mut stopping = app.ctx.clone();
    stopping.options.draining = std::sync::Arc::new(true.into());

    take_slot(&stopping, &queue, Lane::Main, &SyncJob::of(&run))
        .await
        .unwrap();

    let after = row(&app, &run).await;
    assert_eq!(after.status, SyncRunStatus::Queued, "not taken");
    assert_eq!(after.slices, 0, "no slice started");
    assert_eq!(after.lease_holder, None);
    assert_eq!(
        queue.pending_jobs().await.unwrap(),
        Some(1),
        "the token is back on the queue for a worker that goes on"
    );
    // And a run_slice of it on a worker shutting down starts nothing either.
    let slice = run_slice(&stopping, &SyncJob::of(&run), Take::Wait).await;
    assert!(matches!(slice, Err(SyncError::HandedBack)), "{slice:?}");
    assert_eq!(row(&app, &run).await.slices, 0);
}

#[tokio::test]
async fn a_tenant_at_its_cap_waits_while_another_tenants_run_starts() {
    let app = App::start(0).await;
    let x2 = other(&app, Some(&app.tenant)).await;
    let y = other(&app, None).await;
    // Tenant X's first connector runs on another worker: X is at its cap of one.
    let x1_run = app.queued_run(SyncMode::Incremental, None).await;
    let x1_run = held_elsewhere(&app, &x1_run, 600_000).await;
    let x2_run = queued(&app, &x2, SyncTrigger::Manual).await;
    let y_run = queued(&app, &y, SyncTrigger::Manual).await;
    let mut ctx = app.ctx.clone();
    ctx.options.slots.tenant_cap = Some(1);
    let queue = JobQueue::connect(&app.db.db).await.unwrap();

    take_slot(&ctx, &queue, Lane::Main, &SyncJob::of(&x2_run))
        .await
        .unwrap();

    assert_eq!(row(&app, &y_run).await.status, SyncRunStatus::Succeeded);
    let waiting = row(&app, &x2_run).await;
    assert_eq!(waiting.status, SyncRunStatus::Queued, "X at its cap waits");
    assert_eq!(waiting.slices, 0);

    // X's first run ends: the next token takes X's second.
    let mut am = sync_run::ActiveModel::from(x1_run);
    am.status = Set(SyncRunStatus::Succeeded);
    am.lease_holder = Set(None);
    am.lease_expires_at = Set(None);
    am.update(&app.db.db).await.unwrap();
    take_slot(&ctx, &queue, Lane::Main, &SyncJob::of(&x2_run))
        .await
        .unwrap();
    assert_eq!(row(&app, &x2_run).await.status, SyncRunStatus::Succeeded);
}

/// The Redis queue of the test's own, when Redis is configured.
fn redis_settings() -> Option<QueueSettings> {
    let url = crate::bus::redis_url()?;
    Some(QueueSettings {
        redis_url: Some(SecretString::from(url)),
        heartbeat: Duration::from_secs(1),
        queue: format!("crmsync-test-{}", crmsync_entity::new_id().to_lowercase()),
    })
}

/// Two runs on one slot through the queue: the large one is handed back
/// after its slices while the small one waits, both end, every contact
/// once.
async fn slices_through_the_queue(settings: QueueSettings) {
    let app = big_app(2500).await;
    let b = other(&app, None).await;
    add_contacts(&app, &b.tenant, "b", 3).await;
    let queue = JobQueue::connect_with(&app.db.db, &settings).await.unwrap();
    let a_run = app.start_sync(&queue).await.unwrap();
    let b_run = crmsync_worker::runs::start_sync(
        &app.db.db,
        &queue,
        app.bus.as_ref(),
        &b.tenant,
        &b.connector_id,
        SyncTrigger::Manual,
        SyncMode::Incremental,
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(queue.clone(), app.ctx.clone(), 1, async {
        let _ = stopped.await;
    }));

    let done = all_final(&app, &[&a_run, &b_run]).await;

    let (a, b_done) = (&done[0], &done[1]);
    assert_eq!(a.status, SyncRunStatus::Succeeded, "{:?}", a.error);
    assert_eq!(
        b_done.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        b_done.error
    );
    assert!(a.slices >= 2, "handed back for the waiting run: {a:?}");
    assert!(
        b_done.started_at < a.finished_at,
        "the small run did not wait for the large one's end"
    );
    assert_eq!(a.to_crm_created, 2500);
    assert_eq!(each_once(&app.crm).await, 2500);
    assert_eq!(created_once(&app, a).await, 2500);
    assert_eq!(each_once(&b.crm).await, 3);
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn runs_share_one_slot_through_the_database_queue() {
    slices_through_the_queue(QueueSettings::default()).await;
}

#[tokio::test]
async fn runs_share_one_slot_through_the_redis_queue() {
    let Some(settings) = redis_settings() else {
        return;
    };
    slices_through_the_queue(settings).await;
}

/// The main lane's only slot is taken (its token waits on a run another
/// worker holds); a form submission still reaches the CRM through the FORM
/// lane.
async fn a_form_run_passes_a_full_main_lane(settings: QueueSettings) {
    let mut app = App::start(0).await;
    // The waiting token looks again every third of a lease: a short one lets
    // the worker stop promptly at the end.
    app.ctx.options.lease = Duration::from_secs(3);
    let held = app.queued_run(SyncMode::Full, None).await;
    let held = held_elsewhere(&app, &held, 3_600_000).await;
    let queue = JobQueue::connect_with(&app.db.db, &settings).await.unwrap();
    queue
        .enqueue_in(Lane::Main, &SyncJob::of(&held), &new_task_id())
        .await
        .unwrap();
    let f = other(&app, None).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(run_worker(queue.clone(), app.ctx.clone(), 1, async {
        let _ = stopped.await;
    }));
    // The token has left the queue: the main lane's one slot holds it.
    eventually(30, "the token is taken", || async {
        (queue.pending_jobs().await.unwrap() == Some(0)).then_some(())
    })
    .await;
    add_contacts(&app, &f.tenant, "form", 1).await;
    let contact = contact::Entity::for_tenant(&f.tenant)
        .one(&app.db.db)
        .await
        .unwrap()
        .unwrap();

    let runs = crmsync_worker::runs::push_contact(
        &app.db.db,
        &queue,
        app.bus.as_ref(),
        &f.tenant,
        &contact,
    )
    .await
    .unwrap();

    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, SyncTrigger::Form);
    let done = all_final(&app, &[&runs[0]]).await;
    assert_eq!(
        done[0].status,
        SyncRunStatus::Succeeded,
        "{:?}",
        done[0].error
    );
    assert_eq!(each_once(&f.crm).await, 1);
    let still = row(&app, &held).await;
    assert_eq!(
        still.status,
        SyncRunStatus::Running,
        "the main slot stayed taken"
    );
    let _ = stop.send(());
    worker.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_form_run_passes_a_full_main_lane_on_the_database_queue() {
    a_form_run_passes_a_full_main_lane(QueueSettings::default()).await;
}

#[tokio::test]
async fn a_form_run_passes_a_full_main_lane_on_the_redis_queue() {
    let Some(settings) = redis_settings() else {
        return;
    };
    a_form_run_passes_a_full_main_lane(settings).await;
}

/// A worker died holding a run that had taken another run's token: the
/// token that comes back names the other run, and nothing hands one on for
/// the tenant. The scheduling process gives the lapsed run a token once, and
/// a QUEUED run that waited five minutes with no slot held (its job lost)
/// one too; a run whose tenant holds a slot waits for the hand-on.
#[tokio::test]
async fn a_run_no_token_reaches_gets_one_from_the_scheduling_process() {
    let app = App::start(0).await;
    let lost = other(&app, None).await;
    let holding = other(&app, None).await;
    let holding2 = other(&app, Some(&holding.tenant)).await;
    // The dead worker's run: its lease lapsed ten seconds ago.
    let dead = app.queued_run(SyncMode::Incremental, None).await;
    let dead = held_elsewhere(&app, &dead, -10_000).await;
    // A run queued six minutes ago whose token is gone.
    let mut old = sync_run::ActiveModel::from(queued(&app, &lost, SyncTrigger::Manual).await);
    old.queued_at = Set(Utc::now() - chrono::Duration::minutes(6));
    let old = old.update(&app.db.db).await.unwrap();
    // A tenant whose other run holds a slot: its waiting run is not stranded.
    held_elsewhere(
        &app,
        &queued(&app, &holding, SyncTrigger::Manual).await,
        600_000,
    )
    .await;
    let mut waits = sync_run::ActiveModel::from(queued(&app, &holding2, SyncTrigger::Manual).await);
    waits.queued_at = Set(Utc::now() - chrono::Duration::minutes(6));
    waits.update(&app.db.db).await.unwrap();
    let mut stranded = slots::Stranded::default();

    let due = stranded.sweep(&app.db.db, Utc::now()).await.unwrap();

    assert!(due.iter().all(|(lane, _)| *lane == Lane::Main));
    let mut ids: Vec<_> = due.iter().map(|(_, run)| run.id.clone()).collect();
    ids.sort();
    let mut want = vec![dead.id.clone(), old.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        stranded
            .sweep(&app.db.db, Utc::now())
            .await
            .unwrap()
            .is_empty(),
        "one token each, not one a tick"
    );

    // The token taken runs the dead worker's run to its end.
    let queue = JobQueue::connect(&app.db.db).await.unwrap();
    take_slot(&app.ctx, &queue, Lane::Main, &SyncJob::of(&dead))
        .await
        .unwrap();
    let taken = row(&app, &dead).await;
    let taken_old = row(&app, &old).await;
    assert!(
        taken.status == SyncRunStatus::Succeeded || taken_old.status == SyncRunStatus::Succeeded,
        "a stranded run was taken: {taken:?} {taken_old:?}"
    );
}
