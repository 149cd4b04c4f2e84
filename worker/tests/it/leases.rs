//! Run leases (issue 5): a run executes in one place. A worker handed a run
//! whose holder keeps renewing its lease waits for it (and writes nothing),
//! takes over one whose lease lapsed (its worker died) or was released (its
//! worker shut down and handed it back) without writing anything twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{SyncMode, SyncRunStatus};
use crmsync_entity::models::{crm_link, sync_run};
use crmsync_worker::context::WorkerContext;
use crmsync_worker::events::{EventBus, EventStream, SyncEvent};
use crmsync_worker::jobs::SyncJob;
use crmsync_worker::sync::{PAGE_SIZE, SyncError, run_sync};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::json;

use crate::support::App;

fn job(app: &App, run: &sync_run::Model) -> SyncJob {
    SyncJob {
        tenant_id: app.tenant.as_str().to_owned(),
        run_id: run.id.clone(),
        connector_id: app.connector_id.clone(),
    }
}

/// Marks the run RUNNING under another worker's lease, lapsing in `ms`.
async fn held_by(app: &App, run: &sync_run::Model, holder: &str, ms: i64) -> sync_run::Model {
    let mut am = sync_run::ActiveModel::from(run.clone());
    am.status = Set(SyncRunStatus::Running);
    am.started_at = Set(Some(Utc::now()));
    am.lease_holder = Set(Some(holder.to_owned()));
    am.lease_expires_at = Set(Some(Utc::now() + chrono::Duration::milliseconds(ms)));
    am.update(&app.db.db).await.unwrap()
}

async fn row(app: &App, run: &sync_run::Model) -> sync_run::Model {
    sync_run::Entity::find_by_id(&run.id)
        .one(&app.db.db)
        .await
        .unwrap()
        .unwrap()
}

/// Links stored: one per CRM record the runs wrote.
async fn links(app: &App) -> usize {
    crm_link::Entity::for_tenant(&app.tenant)
        .count(&app.db.db)
        .await
        .unwrap() as usize
}

async fn add_contacts(app: &App, n: usize) {
    // Thousands of person writes: a plan allowing more calls per 2 s window
    // than the default 80, so that they do not take a minute.
    app.crm.set_limits(json!({"burst_limit": 1000})).await;
    for i in 0..n {
        let email = format!("lease{i}@example.com");
        app.add_contact(&email, Some("Lea"), Some(&format!("Se{i}")), 50)
            .await;
    }
}

/// Keeps renewing another worker's lease on the run for `renewals` x 100 ms,
/// then ends it as that worker would: SUCCEEDED, or handed back.
fn live_holder(
    app: &App,
    run: &sync_run::Model,
    renewals: u32,
    hand_back: bool,
) -> tokio::task::JoinHandle<()> {
    let db = app.db.db.clone();
    let run = run.clone();
    tokio::spawn(async move {
        for _ in 0..renewals {
            let mut am = sync_run::ActiveModel::from(run.clone());
            am.lease_expires_at = Set(Some(Utc::now() + chrono::Duration::milliseconds(400)));
            am.update(&db).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut am = sync_run::ActiveModel::from(run.clone());
        am.lease_holder = Set(None);
        am.lease_expires_at = Set(None);
        if !hand_back {
            am.status = Set(SyncRunStatus::Succeeded);
            am.phase = Set("done".into());
        }
        am.update(&db).await.unwrap();
    })
}

#[tokio::test]
async fn a_run_executing_elsewhere_is_waited_for_and_not_run_twice() {
    let app = App::start(0).await;
    add_contacts(&app, 5).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let run = held_by(&app, &run, "alive-elsewhere", 400).await;
    let holder = live_holder(&app, &run, 10, false);

    let seen = run_sync(&app.ctx, &job(&app, &run)).await.unwrap();
    holder.await.unwrap();

    assert_eq!(seen.status, SyncRunStatus::Succeeded, "the holder's end");
    assert!(
        app.crm.persons().await.is_empty(),
        "nothing was written here"
    );
}

#[tokio::test]
async fn a_run_handed_back_while_waited_for_is_taken_over() {
    let app = App::start(0).await;
    add_contacts(&app, 5).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let run = held_by(&app, &run, "shutting-down", 400).await;
    let holder = live_holder(&app, &run, 5, true);

    let done = run_sync(&app.ctx, &job(&app, &run)).await.unwrap();
    holder.await.unwrap();

    assert_eq!(done.status, SyncRunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.to_crm_created, 5);
    assert_eq!(app.crm.persons().await.len(), 5);
}

#[tokio::test]
async fn a_run_whose_holder_died_is_taken_over_once_its_lease_lapses() {
    let app = App::start(0).await;
    add_contacts(&app, 30).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let run = held_by(&app, &run, "dead-worker", 300).await;

    let done = run_sync(&app.ctx, &job(&app, &run)).await.unwrap();

    assert_eq!(done.status, SyncRunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.to_crm_created, 30);
    assert_eq!(done.lease_holder, None, "released at the end");
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(app.crm.persons().await.len(), 30);
}

/// The test's bus: runs `then` inside the publish of the run's first export
/// page's progress, so the holder's next step starts after it, however fast
/// its pages go. Pages one to three have been read and their writes started
/// by then.
struct OnFirstExportPage {
    inner: Arc<dyn EventBus>,
    then: Box<dyn Fn() + Send + Sync>,
    done: AtomicBool,
}

impl OnFirstExportPage {
    fn then(app: &App, then: impl Fn() + Send + Sync + 'static) -> Arc<dyn EventBus> {
        Arc::new(Self {
            inner: app.bus.clone(),
            then: Box::new(then),
            done: AtomicBool::new(false),
        })
    }
}

impl std::fmt::Debug for OnFirstExportPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnFirstExportPage")
    }
}

impl EventBus for OnFirstExportPage {
    fn publish(&self, event: SyncEvent) {
        if event.phase == "export" && event.processed > 0 && !self.done.swap(true, Ordering::SeqCst)
        {
            (self.then)();
        }
        self.inner.publish(event);
    }

    fn subscribe(&self, tenant_id: &str) -> EventStream {
        self.inner.subscribe(tenant_id)
    }
}

#[tokio::test]
async fn a_worker_shutting_down_hands_its_run_back_and_another_finishes_it() {
    // Five export pages of 500: the first, the two whose writes queue behind
    // it, and two that worker A must leave to worker B.
    const CONTACTS: usize = 2500;
    let app = App::start(0).await;
    add_contacts(&app, CONTACTS).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;

    // Worker A is told to shut down once its first export page is applied.
    let mut a = app.ctx.clone();
    a.options.holder = "worker-a".into();
    a.options.draining = Arc::new(AtomicBool::new(false));
    let draining = a.options.draining.clone();
    a.bus = OnFirstExportPage::then(&app, move || draining.store(true, Ordering::Relaxed));
    let handed = run_sync(&a, &job(&app, &run)).await;
    assert!(matches!(handed, Err(SyncError::HandedBack)), "{handed:?}");
    let back = row(&app, &run).await;
    assert_eq!(back.status, SyncRunStatus::Running);
    assert_eq!(
        back.lease_holder, None,
        "handed back: no holder to wait for"
    );
    assert_eq!(back.phase, "handed back");
    let written = app.crm.persons().await.len();
    assert!(
        written > 0 && written < CONTACTS,
        "{written} persons before the hand-back"
    );
    // Pages go in a pipeline: the pages whose writes had started when the
    // worker was told to stop are recorded, and no later page is written.
    // The drain stops the reads at once: no page after the three read.
    assert_eq!(written, 3 * PAGE_SIZE as usize, "pages one to three");
    assert_eq!(links(&app).await, written, "every person written is linked");

    // Worker B gets the job again and goes on from the checkpoint.
    let b = WorkerContext {
        options: crmsync_worker::sync::SyncOptions {
            holder: "worker-b".into(),
            ..app.ctx.options.clone()
        },
        ..app.ctx.clone()
    };
    let done = run_sync(&b, &job(&app, &run)).await.unwrap();
    assert_eq!(done.status, SyncRunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        done.to_crm_created as usize, CONTACTS,
        "the counts include worker A's pages"
    );
    let persons = app.crm.persons().await;
    assert_eq!(persons.len(), CONTACTS, "every contact once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ended_elsewhere_stops_its_holder_which_keeps_that_end() {
    // Six export pages of 500. The holder learns of the end at its next
    // progress, after page two: the four pages read by then (page four read
    // after page one's progress) are recorded; five and six are never read.
    const CONTACTS: usize = 3000;
    let app = App::start(0).await;
    add_contacts(&app, CONTACTS).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let mut ctx = app.ctx.clone();
    // Ended elsewhere once the first export page is applied, as `startSync`
    // ends a run it takes for abandoned; committed before the holder goes on
    // (a multi-threaded runtime: the other thread applies the page meanwhile).
    let (db, id) = (app.db.db.clone(), run.id.clone());
    ctx.bus = OnFirstExportPage::then(&app, move || {
        let end = sync_run::Entity::update_many()
            .col_expr(sync_run::Column::Status, Expr::value(SyncRunStatus::Failed))
            .col_expr(sync_run::Column::Error, Expr::value("ended elsewhere"))
            .col_expr(sync_run::Column::FinishedAt, Expr::value(Utc::now()))
            .filter(sync_run::Column::Id.eq(&id))
            .exec(&db);
        let ended = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(end));
        assert_eq!(ended.unwrap().rows_affected, 1);
    });

    let done = run_sync(&ctx, &job(&app, &run)).await.unwrap();

    assert_eq!(done.status, SyncRunStatus::Failed);
    assert_eq!(
        done.error.as_deref(),
        Some("ended elsewhere"),
        "kept, not overwritten"
    );
    let written = app.crm.persons().await.len();
    assert_eq!(
        written,
        4 * PAGE_SIZE as usize,
        "pages one to four, no later page"
    );
    assert_eq!(links(&app).await, written, "every person written is linked");
}

#[tokio::test]
async fn a_workers_runs_are_those_its_executions_hold_and_no_others() {
    let app = App::start(0).await;
    let mut runs = Vec::new();
    for holder in [
        "crmsync-host-7-ab/01J1",
        "crmsync-host-7-ab/01J2",
        "crmsync-host-7-abc/01J3",
        "crmsync_host-7-ab/01J4",
    ] {
        let run = app.queued_run(SyncMode::Incremental, None).await;
        runs.push(held_by(&app, &run, holder, 60_000).await.id);
    }
    app.queued_run(SyncMode::Incremental, None).await;

    let held: std::collections::BTreeSet<String> =
        sync_run::held_by(&app.db.db, "crmsync-host-7-ab")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
    assert_eq!(held, runs[..2].iter().cloned().collect());
    let none = sync_run::held_by(&app.db.db, "crmsync-host-7")
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}
