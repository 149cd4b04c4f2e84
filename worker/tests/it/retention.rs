//! Bounded history (issue 26): the pruner deletes what is older than each
//! tenant's retention, in batches, and keeps run summaries, the first
//! rejected items of every run, all rejected items of each connector's
//! latest run, pending deliveries and each contact's latest consent event.
//! Times are explicit: rows are written as old as a case needs and the pass
//! is given its `now`.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{
    ConsentOrigin, DeliveryChannel, DeliveryStatus, ItemOutcome, SyncDirection, SyncMode,
    SyncRunStatus, SyncTrigger,
};
use crmsync_entity::models::{audit_log, consent_event, delivery, sync_item, sync_run};
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_worker::retention::{self, KEPT_REJECTED, PruneSettings, Pruned, Retention};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::json;

use crate::support::{App, eventually};

fn days_ago(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    now - chrono::Duration::days(days)
}

fn batch_of(rows: u64) -> PruneSettings {
    PruneSettings {
        batch: rows,
        interval: Duration::from_secs(60),
    }
}

/// A finished run of the app's connector, ended at `finished`, with `n`
/// items of each outcome recorded then; its leg counts say the same.
async fn finished_run<C>(
    app: &App<C>,
    mode: SyncMode,
    finished: DateTime<Utc>,
    items: &[(ItemOutcome, usize)],
) -> sync_run::Model {
    let mut run = sync_run::Model::queued(
        app.tenant.as_str(),
        &app.connector_id,
        SyncTrigger::Schedule,
        mode,
        crmsync_worker::jobs::new_task_id(),
        None,
    );
    run.status = SyncRunStatus::Partial;
    run.queued_at = finished - chrono::Duration::minutes(5);
    run.started_at = Some(finished - chrono::Duration::minutes(4));
    run.finished_at = Some(finished);
    for (outcome, n) in items {
        let n = *n as i64;
        match outcome {
            ItemOutcome::Created => run.to_crm_created += n,
            ItemOutcome::Unchanged => run.to_crm_unchanged += n,
            ItemOutcome::Rejected => run.to_crm_rejected += n,
            _ => run.to_crm_updated += n,
        }
    }
    let run = sync_run::ActiveModel::from(run)
        .insert(&app.db.db)
        .await
        .unwrap();
    add_items(app, &run, finished, items).await;
    run
}

async fn add_items<C>(
    app: &App<C>,
    run: &sync_run::Model,
    at: DateTime<Utc>,
    items: &[(ItemOutcome, usize)],
) {
    let mut rows = Vec::new();
    for (outcome, n) in items {
        for i in 0..*n {
            rows.push(sync_item::ActiveModel::from(sync_item::Model {
                id: crmsync_entity::new_id(),
                tenant_id: app.tenant.as_str().to_owned(),
                run_id: run.id.clone(),
                connector_id: app.connector_id.clone(),
                direction: SyncDirection::ToCrm,
                outcome: *outcome,
                email: Some(format!(
                    "{}-{i}@example.com",
                    outcome.as_str().to_lowercase()
                )),
                contact_id: None,
                crm_record_id: None,
                reason_code: (*outcome == ItemOutcome::Rejected).then(|| "MISSING_NAME".into()),
                field: None,
                message: None,
                changes: None,
                created_at: at,
            }));
        }
    }
    for chunk in rows.chunks(500) {
        sync_item::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&app.db.db)
            .await
            .unwrap();
    }
}

async fn items_of<C>(app: &App<C>, run: &sync_run::Model) -> Vec<sync_item::Model> {
    sync_item::Entity::for_tenant(&app.tenant)
        .filter(sync_item::Column::RunId.eq(&run.id))
        .all(&app.db.db)
        .await
        .unwrap()
}

async fn reread<C>(app: &App<C>, run: &sync_run::Model) -> sync_run::Model {
    sync_run::Entity::find_for_tenant(&app.tenant, &run.id)
        .one(&app.db.db)
        .await
        .unwrap()
        .unwrap()
}

fn rejected_ids(items: &[sync_item::Model]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|i| i.outcome == ItemOutcome::Rejected)
        .map(|i| i.id.clone())
        .collect()
}

/// The summary a dashboard shows: status, times, leg counts.
fn summary(run: &sync_run::Model) -> serde_json::Value {
    json!([
        run.status.as_str(),
        run.queued_at.timestamp_millis(),
        run.finished_at.map(|t| t.timestamp_millis()),
        run.to_crm_created,
        run.to_crm_unchanged,
        run.to_crm_rejected,
        run.to_crm_updated,
    ])
}

#[tokio::test]
async fn old_runs_lose_their_items_but_keep_summaries_and_first_rejected_items() {
    let app = App::start(0).await;
    let now = Utc::now();
    let older = finished_run(
        &app,
        SyncMode::Full,
        days_ago(now, 40),
        &[(ItemOutcome::Unchanged, 20), (ItemOutcome::Rejected, 15)],
    )
    .await;
    let dry = finished_run(
        &app,
        SyncMode::DryRun,
        days_ago(now, 38),
        &[(ItemOutcome::Created, 3), (ItemOutcome::Rejected, 12)],
    )
    .await;
    let latest = finished_run(
        &app,
        SyncMode::Incremental,
        days_ago(now, 35),
        &[(ItemOutcome::Created, 5), (ItemOutcome::Rejected, 12)],
    )
    .await;
    let older_rejected = rejected_ids(&items_of(&app, &older).await);
    let latest_rejected = rejected_ids(&items_of(&app, &latest).await);

    let pruned = retention::prune(&app.db.db, now, &batch_of(3))
        .await
        .unwrap();

    // The older run: its first rejected items only.
    let kept: BTreeSet<String> = rejected_ids(&items_of(&app, &older).await);
    let first: BTreeSet<String> = older_rejected.iter().take(KEPT_REJECTED).cloned().collect();
    assert_eq!(kept, first, "the older run keeps its first rejected items");
    assert_eq!(items_of(&app, &older).await.len(), KEPT_REJECTED);
    // A dry run is never the latest: its first rejected items only.
    let dry_items = items_of(&app, &dry).await;
    assert_eq!(dry_items.len(), KEPT_REJECTED);
    assert!(dry_items.iter().all(|i| i.outcome == ItemOutcome::Rejected));
    // The connector's latest run: every rejected item, to retry them.
    assert_eq!(
        rejected_ids(&items_of(&app, &latest).await),
        latest_rejected
    );
    assert_eq!(items_of(&app, &latest).await.len(), 12);
    // Summaries stay, marked.
    for run in [&older, &dry, &latest] {
        let after = reread(&app, run).await;
        assert_eq!(summary(&after), summary(run));
        assert!(after.items_pruned_at.is_some(), "{} is marked", run.id);
    }
    // Older: 20 unchanged and 5 rejected; dry: 3 created and 2 rejected;
    // latest: 5 created.
    let deleted = (20 + 5) + (3 + 2) + 5;
    assert_eq!(pruned.sync_items, deleted);
    assert_eq!(pruned.runs, 3);
    assert!(
        pruned.statements >= deleted.div_ceil(3),
        "batches of at most 3 rows: {pruned:?}"
    );

    // Nothing more to do at the same time.
    let again = retention::prune(&app.db.db, now, &batch_of(3))
        .await
        .unwrap();
    assert_eq!(again, Pruned::default());
}

#[tokio::test]
async fn a_newer_run_lets_the_previous_latest_runs_rejected_items_go() {
    let app = App::start(0).await;
    let now = Utc::now();
    let previous = finished_run(
        &app,
        SyncMode::Incremental,
        days_ago(now, 35),
        &[(ItemOutcome::Unchanged, 4), (ItemOutcome::Rejected, 14)],
    )
    .await;
    retention::prune(&app.db.db, now, &batch_of(5))
        .await
        .unwrap();
    assert_eq!(items_of(&app, &previous).await.len(), 14);
    let going = {
        let mut run = sync_run::Model::queued(
            app.tenant.as_str(),
            &app.connector_id,
            SyncTrigger::Manual,
            SyncMode::Incremental,
            crmsync_worker::jobs::new_task_id(),
            None,
        );
        run.status = SyncRunStatus::Running;
        run.queued_at = days_ago(now, 40);
        sync_run::ActiveModel::from(run)
            .insert(&app.db.db)
            .await
            .unwrap()
    };
    add_items(
        &app,
        &going,
        days_ago(now, 40),
        &[(ItemOutcome::Created, 7)],
    )
    .await;

    // A run still going (however old) is not a finished run: nothing moves.
    let pruned = retention::prune(&app.db.db, now, &batch_of(5))
        .await
        .unwrap();
    assert_eq!(pruned, Pruned::default());
    assert_eq!(items_of(&app, &going).await.len(), 7);

    // A newer run ends: the previous one keeps its first rejected items only.
    let newer = finished_run(
        &app,
        SyncMode::Incremental,
        days_ago(now, 1),
        &[(ItemOutcome::Created, 3), (ItemOutcome::Rejected, 2)],
    )
    .await;
    let pruned = retention::prune(&app.db.db, now, &batch_of(5))
        .await
        .unwrap();
    assert_eq!(pruned.sync_items, 14 - KEPT_REJECTED as u64);
    assert_eq!(items_of(&app, &previous).await.len(), KEPT_REJECTED);
    assert!(!reread(&app, &previous).await.all_rejected_kept);
    // The recent run is within the retention: untouched.
    assert_eq!(items_of(&app, &newer).await.len(), 5);
    assert!(reread(&app, &newer).await.items_pruned_at.is_none());
}

async fn add_delivery<C>(app: &App<C>, status: DeliveryStatus, at: DateTime<Utc>) -> String {
    let id = crmsync_entity::new_id();
    delivery::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(app.tenant.as_str().to_owned()),
        channel: Set(DeliveryChannel::Email),
        webhook_id: Set(None),
        recipients: Set(Some(json!(["ops@example.com"]))),
        event: Set("sync.finished".into()),
        run_id: Set(None),
        payload: Set("{}".into()),
        status: Set(status),
        attempts: Set(1),
        attempt_log: Set(json!([])),
        next_attempt_at: Set((status == DeliveryStatus::Pending).then_some(at)),
        claimed_by: Set(None),
        claim_expires_at: Set(None),
        created_at: Set(at),
        delivered_at: Set(None),
    }
    .insert(&app.db.db)
    .await
    .unwrap();
    id
}

async fn add_audit<C>(app: &App<C>, at: DateTime<Utc>) -> String {
    let id = crmsync_entity::new_id();
    audit_log::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(app.tenant.as_str().to_owned()),
        actor: Set("admin".into()),
        action: Set("connector.update".into()),
        target_type: Set("connector".into()),
        target_id: Set(app.connector_id.clone()),
        detail: Set(json!({})),
        at: Set(at),
    }
    .insert(&app.db.db)
    .await
    .unwrap();
    id
}

async fn add_consent<C>(
    app: &App<C>,
    contact_id: &str,
    opted_out: bool,
    at: DateTime<Utc>,
) -> String {
    let id = crmsync_entity::new_id();
    consent_event::ActiveModel::from(consent_event::Model {
        id: id.clone(),
        tenant_id: app.tenant.as_str().to_owned(),
        contact_id: contact_id.to_owned(),
        opted_out,
        origin: ConsentOrigin::Platform,
        connector_id: None,
        crm_kind: None,
        run_id: None,
        at,
    })
    .insert(&app.db.db)
    .await
    .unwrap();
    id
}

async fn ids<E>(app_db: &sea_orm::DatabaseConnection, tenant: &TenantId) -> BTreeSet<String>
where
    E: EntityTrait + TenantScoped,
{
    use sea_orm::QuerySelect;
    E::for_tenant(tenant)
        .select_only()
        .column(E::id_column())
        .into_tuple::<String>()
        .all(app_db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn deliveries_and_audit_rows_are_pruned_by_their_own_settings() {
    let app = App::start(0).await;
    let now = Utc::now();
    retention::set(
        &app.db.db,
        &app.tenant,
        Retention {
            sync_items_days: 30,
            deliveries_days: 7,
            audit_days: 90,
        },
    )
    .await
    .unwrap();
    // Items 20 days old are within their 30 days.
    let run = finished_run(
        &app,
        SyncMode::Full,
        days_ago(now, 20),
        &[(ItemOutcome::Unchanged, 4)],
    )
    .await;
    add_delivery(&app, DeliveryStatus::Delivered, days_ago(now, 10)).await;
    add_delivery(&app, DeliveryStatus::Failed, days_ago(now, 10)).await;
    let pending = add_delivery(&app, DeliveryStatus::Pending, days_ago(now, 10)).await;
    let recent = add_delivery(&app, DeliveryStatus::Delivered, days_ago(now, 2)).await;
    add_audit(&app, days_ago(now, 100)).await;
    let kept_audit = add_audit(&app, days_ago(now, 50)).await;
    let x = app.add_contact("x@example.com", None, None, 0).await;
    let y = app.add_contact("y@example.com", None, None, 0).await;
    add_consent(&app, &x.id, true, days_ago(now, 200)).await;
    let x_latest = add_consent(&app, &x.id, false, days_ago(now, 150)).await;
    let y_only = add_consent(&app, &y.id, true, days_ago(now, 100)).await;

    let pruned = retention::prune(&app.db.db, now, &batch_of(1))
        .await
        .unwrap();

    assert_eq!(
        ids::<delivery::Entity>(&app.db.db, &app.tenant).await,
        BTreeSet::from([pending, recent]),
        "a pending delivery is never deleted; a recent one is kept"
    );
    assert_eq!(
        ids::<audit_log::Entity>(&app.db.db, &app.tenant).await,
        BTreeSet::from([kept_audit])
    );
    assert_eq!(
        ids::<consent_event::Entity>(&app.db.db, &app.tenant).await,
        BTreeSet::from([x_latest, y_only]),
        "each contact's latest consent event stays"
    );
    assert_eq!(items_of(&app, &run).await.len(), 4);
    assert_eq!(
        (
            pruned.deliveries,
            pruned.audit_entries,
            pruned.consent_events,
            pruned.sync_items
        ),
        (2, 1, 1, 0)
    );
}

#[tokio::test]
async fn a_retention_out_of_range_is_refused_by_field() {
    let app = App::start(0).await;
    for (retention, field) in [
        (
            Retention {
                sync_items_days: 0,
                ..Retention::default()
            },
            "syncItemsDays",
        ),
        (
            Retention {
                deliveries_days: -1,
                ..Retention::default()
            },
            "deliveriesDays",
        ),
        (
            Retention {
                audit_days: retention::MAX_DAYS + 1,
                ..Retention::default()
            },
            "auditDays",
        ),
    ] {
        let e = retention::set(&app.db.db, &app.tenant, retention)
            .await
            .unwrap_err();
        match e {
            retention::SetError::Invalid(e) => assert_eq!(e.field, field),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn pruning_during_a_sync_leaves_the_sync_whole() {
    let app = App::start(300).await;
    let now = Utc::now();
    let old = finished_run(
        &app,
        SyncMode::Full,
        days_ago(now, 60),
        &[(ItemOutcome::Unchanged, 3000), (ItemOutcome::Rejected, 3)],
    )
    .await;
    let run = app.queued_run(SyncMode::Full, None).await;

    // The pruner works in batches of 20 for as long as the sync runs.
    let sync = app.execute(&run);
    let pruning = async {
        let mut total = Pruned::default();
        loop {
            let p = retention::prune(&app.db.db, now, &batch_of(20))
                .await
                .unwrap();
            total.sync_items += p.sync_items;
            if p == Pruned::default() {
                return total;
            }
        }
    };
    let (done, pruned) = tokio::join!(sync, pruning);

    // The sandbox's people include some a CRM rejects (no name, say).
    assert!(
        matches!(
            done.status,
            SyncRunStatus::Succeeded | SyncRunStatus::Partial
        ),
        "{:?}: {:?}",
        done.status,
        done.error
    );
    assert!(done.from_crm_created > 250, "{done:?}");
    let counted = done.from_crm_created
        + done.from_crm_updated
        + done.from_crm_unchanged
        + done.from_crm_rejected
        + done.to_crm_created
        + done.to_crm_updated
        + done.to_crm_unchanged
        + done.to_crm_rejected;
    let items = items_of(&app, &done).await.len() as u64;
    assert_eq!(items, counted as u64, "every item of the sync is kept");
    assert_eq!(app.contacts().await.len() as i64, done.from_crm_created);
    assert_eq!(pruned.sync_items, 3000);
    assert_eq!(items_of(&app, &old).await.len(), 3);
    let rows = sync_item::Entity::for_tenant(&app.tenant)
        .count(&app.db.db)
        .await
        .unwrap();
    assert_eq!(rows, items + 3);
}

#[tokio::test]
async fn one_process_prunes_at_a_time() {
    let app = App::start(0).await;
    let now = Utc::now();
    let old = finished_run(
        &app,
        SyncMode::Full,
        days_ago(now, 40),
        &[(ItemOutcome::Unchanged, 50)],
    )
    .await;
    let pruner = |holder: &str| retention::Pruner {
        db: app.db.db.clone(),
        holder: holder.to_owned(),
        lease: Duration::from_secs(30),
        settings: batch_of(10),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let a = tokio::spawn(pruner("a").run(shutdown(stopped.clone())));
    let b = tokio::spawn(pruner("b").run(shutdown(stopped.clone())));

    eventually(20, "the old items are pruned", || async {
        items_of(&app, &old).await.is_empty().then_some(())
    })
    .await;
    let holder = retention::pruner_holder(&app.db.db).await.unwrap();
    assert!(matches!(holder.as_deref(), Some("a" | "b")), "{holder:?}");
    stop.send(true).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(retention::pruner_holder(&app.db.db).await.unwrap(), None);
}
