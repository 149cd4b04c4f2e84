//! Starting, cancelling and retrying runs.
//!
//! **Invariant:** one run at a time per connector (R4). The check for a run
//! already QUEUED or RUNNING and the insert of a new one happen in one write
//! transaction that holds the connector: IMMEDIATE on SQLite (one writer at a
//! time), `SELECT ... FOR UPDATE` on the connector row on PostgreSQL.
//!
//! **Invariant:** a job is enqueued only after its run row is committed, so a
//! worker never picks up a job whose run it cannot read.
//!
//! A RUNNING run whose lease has been free for [`ABANDONED_AFTER`] (its worker
//! died or handed it back, and no worker took it over: its job is gone, e.g.
//! a Redis queue restarted without persistence, or its deliveries ran out) no
//! longer blocks its connector: the next `startSync` ends it FAILED and starts
//! anew (from the checkpoints), and `cancelSync` cancels it at once.

use chrono::Utc;
use crmsync_entity::enums::{ConnectorStatus, ItemOutcome, SyncMode, SyncRunStatus, SyncTrigger};
use crmsync_entity::models::{connector, contact, crm_notice, pending_push, sync_item, sync_run};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use crate::events::{EventBus, SyncEvent};
use crate::jobs::{JobQueue, Lane, QueueError, SyncJob, new_task_id};
use crate::platform::Mapping;
use crate::settings::ConnectorSettings;
use crate::sync::{End, ending};
use crate::sync_rules::SyncRule;

/// Why a run could not be started, cancelled or retried.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such connector or run for this tenant.
    #[error("not found")]
    NotFound,
    /// The request cannot apply now (e.g. a disabled connector, a final run).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How long a RUNNING run's lease may stay free before the run is taken for
/// abandoned (a dead worker's run is normally taken over within about a
/// minute and a half with the default heartbeat).
pub const ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// True for a RUNNING run nobody has held for [`ABANDONED_AFTER`].
fn abandoned(run: &sync_run::Model, now: chrono::DateTime<Utc>) -> bool {
    run.status == SyncRunStatus::Running
        && run
            .lease_expires_at
            .is_some_and(|free| free < now - ABANDONED_AFTER)
}

/// Ends an abandoned run (see [`abandoned`]) as `how` says, if it still is
/// one, with its notifications (R5; [`crate::notify::wake`] once `db`
/// commits); true when it did.
async fn end_abandoned(
    db: &impl sea_orm::ConnectionTrait,
    tenant: &TenantId,
    run: &sync_run::Model,
    how: End<'_>,
) -> Result<bool, sea_orm::DbErr> {
    let now = Utc::now();
    let end = ending(how);
    let ended = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, Expr::value(end.status))
        .col_expr(sync_run::Column::Phase, Expr::value("done"))
        .col_expr(sync_run::Column::Error, Expr::value(end.message))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(now))
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Id.eq(&run.id))
        .filter(sync_run::Column::Status.eq(SyncRunStatus::Running))
        .filter(sync_run::Column::LeaseExpiresAt.lt(now - ABANDONED_AFTER))
        .exec(db)
        .await?;
    if ended.rows_affected == 1 {
        crate::notify::run_ended(db, tenant, &run.id).await?;
    }
    Ok(ended.rows_affected == 1)
}

/// Creates a QUEUED run and enqueues its job, or returns the connector's run
/// already queued or running (one at a time per connector, R4).
pub async fn start_sync(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    connector_id: &str,
    trigger: SyncTrigger,
    mode: SyncMode,
) -> Result<sync_run::Model, RunError> {
    match create_run(
        db,
        queue,
        bus,
        tenant,
        connector_id,
        NewRun::new(trigger, mode),
    )
    .await?
    {
        Created::New(run) | Created::Existing(run) => Ok(run),
    }
}

/// What a dry run previews instead of its connector's own: mappings, sync
/// rules, or both (validated by the caller as a change of them is).
#[derive(Debug, Clone, Copy, Default)]
pub struct Proposed<'a> {
    /// Proposed mappings.
    pub mappings: Option<&'a [Mapping]>,
    /// Proposed sync rules (S13).
    pub rules: Option<&'a [SyncRule]>,
}

/// Creates a DRY_RUN that uses the `proposed` mappings and rules instead of
/// the connector's (a preview of a change), and enqueues it. Nothing about
/// the connector changes. A run already queued or running for the connector
/// is not joined (it does not use them): that is a conflict.
pub async fn preview(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    connector_id: &str,
    trigger: SyncTrigger,
    proposed: Proposed<'_>,
) -> Result<sync_run::Model, RunError> {
    let json = |v: serde_json::Result<serde_json::Value>| v.expect("proposals serialise");
    match create_run(
        db,
        queue,
        bus,
        tenant,
        connector_id,
        NewRun {
            mappings: proposed.mappings.map(|m| json(serde_json::to_value(m))),
            rules: proposed.rules.map(|r| json(serde_json::to_value(r))),
            ..NewRun::new(trigger, SyncMode::DryRun)
        },
    )
    .await?
    {
        Created::New(run) => Ok(run),
        Created::Existing(run) => Err(RunError::Conflict(format!(
            "run {} is already {} for this connector: preview the change once it has ended",
            run.id, run.status
        ))),
    }
}

/// Cancels a run: a QUEUED run at once, a RUNNING one at its next page.
pub async fn cancel_sync(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    tenant: &TenantId,
    run_id: &str,
) -> Result<sync_run::Model, RunError> {
    let find = || sync_run::Entity::find_for_tenant(tenant, run_id).one(db);
    let run = find().await?.ok_or(RunError::NotFound)?;
    if run.status.is_final() {
        return Err(RunError::Conflict(format!(
            "the run already ended ({}): nothing to cancel",
            run.status
        )));
    }
    let now = Utc::now();
    // A run ended here is ended with its notifications, in one transaction.
    let txn = crate::sync::begin_write(db).await?;
    if abandoned(&run, now) && end_abandoned(&txn, tenant, &run, End::Cancelled).await? {
        txn.commit().await?;
        crate::notify::wake();
        let run = find().await?.ok_or(RunError::NotFound)?;
        bus.publish(SyncEvent::of_run(&run));
        return Ok(run);
    }
    // Conditional updates: a worker may be starting the run at this moment.
    let end = ending(End::Cancelled);
    let cancelled = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, Expr::value(end.status))
        .col_expr(sync_run::Column::Phase, Expr::value("done"))
        .col_expr(sync_run::Column::Error, Expr::value(end.message))
        .col_expr(sync_run::Column::CancelRequested, Expr::value(true))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(now))
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::Status.eq(SyncRunStatus::Queued))
        .exec(&txn)
        .await?;
    let ended = cancelled.rows_affected == 1;
    if ended {
        crate::notify::run_ended(&txn, tenant, run_id).await?;
    } else {
        // A RUNNING run ends at its next page, where its worker notifies.
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::CancelRequested, Expr::value(true))
            .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_run::Column::Id.eq(run_id))
            .filter(sync_run::Column::Status.eq(SyncRunStatus::Running))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    if ended {
        crate::notify::wake();
    }
    let run = find().await?.ok_or(RunError::NotFound)?;
    bus.publish(SyncEvent::of_run(&run));
    Ok(run)
}

/// A new run that retries only the rejected contacts of `run_id`.
pub async fn retry_rejected(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    run_id: &str,
) -> Result<sync_run::Model, RunError> {
    let original = sync_run::Entity::find_for_tenant(tenant, run_id)
        .one(db)
        .await?
        .ok_or(RunError::NotFound)?;
    if !original.status.is_final() {
        return Err(RunError::Conflict(
            "the run is still going: retry its rejected contacts once it has ended".into(),
        ));
    }
    if original.mode == SyncMode::DryRun {
        return Err(RunError::Conflict(
            "the run was a dry run: it wrote nothing, so nothing is to be retried; start a sync instead"
                .into(),
        ));
    }
    let rejected = sync_item::Entity::for_tenant(tenant)
        .filter(sync_item::Column::RunId.eq(run_id))
        .filter(sync_item::Column::Outcome.eq(ItemOutcome::Rejected))
        .count(db)
        .await?;
    if rejected == 0 {
        return Err(RunError::Conflict(
            "the run rejected no contacts: there is nothing to retry".into(),
        ));
    }
    match create_run(
        db,
        queue,
        bus,
        tenant,
        &original.connector_id,
        NewRun {
            retry_of: Some(run_id.to_owned()),
            ..NewRun::new(SyncTrigger::Manual, SyncMode::Incremental)
        },
    )
    .await?
    {
        Created::New(run) => Ok(run),
        Created::Existing(run) => Err(RunError::Conflict(format!(
            "run {} is already {} for this connector: retry once it has ended",
            run.id, run.status
        ))),
    }
}

enum Created {
    New(sync_run::Model),
    Existing(sync_run::Model),
}

/// True for the runs that take a burst of waiting work (form submissions,
/// CRM notifications) rather than read everything changed.
fn gathers(trigger: SyncTrigger) -> bool {
    matches!(trigger, SyncTrigger::Form | SyncTrigger::CrmEvent)
}

/// A request for a whole run (schedule, manual, API) that finds a FORM or
/// CRM_EVENT run still QUEUED takes it over: the run becomes the one
/// requested, which reads every changed contact and record, the submitted
/// and notified ones included. The submissions and notices stay pending, so
/// a FORM or CRM_EVENT run after it still takes them (and finds them
/// unchanged if the wider run did).
async fn widen_form_run(
    txn: &sea_orm::DatabaseTransaction,
    tenant: &TenantId,
    run: sync_run::Model,
    trigger: SyncTrigger,
    mode: SyncMode,
) -> Result<sync_run::Model, sea_orm::DbErr> {
    if !gathers(run.trigger) || run.status != SyncRunStatus::Queued || gathers(trigger) {
        return Ok(run);
    }
    let widened = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Trigger, Expr::value(trigger))
        .col_expr(sync_run::Column::Mode, Expr::value(mode))
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Id.eq(&run.id))
        .filter(sync_run::Column::Status.eq(SyncRunStatus::Queued))
        .exec(txn)
        .await?;
    if widened.rows_affected == 0 {
        return Ok(run);
    }
    Ok(sync_run::Model {
        trigger,
        mode,
        ..run
    })
}

/// What a new run is: its trigger and mode, the run whose rejections it
/// retries, and the mappings and rules it previews (a DRY_RUN).
struct NewRun {
    trigger: SyncTrigger,
    mode: SyncMode,
    retry_of: Option<String>,
    mappings: Option<serde_json::Value>,
    rules: Option<serde_json::Value>,
}

impl NewRun {
    fn new(trigger: SyncTrigger, mode: SyncMode) -> Self {
        Self {
            trigger,
            mode,
            retry_of: None,
            mappings: None,
            rules: None,
        }
    }
}

async fn create_run(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    connector_id: &str,
    new: NewRun,
) -> Result<Created, RunError> {
    let NewRun {
        trigger,
        mode,
        retry_of,
        mappings,
        rules,
    } = new;
    let txn = crate::sync::begin_write(db).await?;
    let connector = connector::Entity::find_for_tenant(tenant, connector_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(RunError::NotFound)?;
    if !connector.enabled || connector.status == ConnectorStatus::Disabled {
        return Err(RunError::Conflict(format!(
            "the connector \"{}\" is disabled: enable it before syncing",
            connector.name
        )));
    }
    // A failed token refresh stops the connector's syncs until a person
    // reconnects it (C4).
    if connector.status == ConnectorStatus::NeedsReauth {
        return Err(RunError::Conflict(format!(
            "the connector \"{}\" needs new credentials ({}): update them with updateConnector, then sync",
            connector.name,
            connector
                .status_message
                .as_deref()
                .unwrap_or("the CRM refused the stored ones")
        )));
    }
    let active = sync_run::Entity::for_tenant(tenant)
        .filter(sync_run::Column::ConnectorId.eq(connector_id))
        .filter(sync_run::Column::Status.is_in([SyncRunStatus::Queued, SyncRunStatus::Running]))
        .one(&txn)
        .await?;
    let mut ended = None;
    if let Some(run) = active {
        if !abandoned(&run, Utc::now()) {
            // A whole run takes a waiting FORM run's place; a retry or a
            // preview of other mappings is a run of its own (refused).
            let was = run.trigger;
            let run = if mappings.is_none() && rules.is_none() && retry_of.is_none() {
                widen_form_run(&txn, tenant, run, trigger, mode).await?
            } else {
                run
            };
            txn.commit().await?;
            if Lane::of(was) != Lane::of(run.trigger) {
                // Widened: its token waits in the FORM lane, which no longer
                // takes it; the main lane gets one.
                queue
                    .enqueue_in(Lane::of(run.trigger), &SyncJob::of(&run), &new_task_id())
                    .await?;
            }
            return Ok(Created::Existing(run));
        }
        if !end_abandoned(&txn, tenant, &run, End::Abandoned).await? {
            txn.commit().await?;
            return Ok(Created::Existing(run));
        }
        ended = Some(run.id);
    }
    let mut run = sync_run::Model::queued(
        tenant.as_str(),
        connector_id,
        trigger,
        mode,
        new_task_id(),
        retry_of,
    );
    run.mappings = mappings;
    run.rules = rules;
    let run = sync_run::ActiveModel::from(run).insert(&txn).await?;
    txn.commit().await?;
    if ended.is_some() {
        crate::notify::wake();
    }
    if let Some(id) = ended
        && let Some(failed) = sync_run::Entity::find_for_tenant(tenant, &id)
            .one(db)
            .await?
    {
        bus.publish(SyncEvent::of_run(&failed));
    }

    let job = SyncJob::of(&run);
    if let Err(e) = queue
        .enqueue_in(Lane::of(run.trigger), &job, &run.task_id)
        .await
    {
        let end = ending(End::NotQueued);
        let mut am = sync_run::ActiveModel::from(run);
        am.status = sea_orm::ActiveValue::Set(end.status);
        am.phase = sea_orm::ActiveValue::Set("done".into());
        am.error = sea_orm::ActiveValue::Set(end.message);
        am.finished_at = sea_orm::ActiveValue::Set(Some(Utc::now()));
        let txn = crate::sync::begin_write(db).await?;
        let failed = am.update(&txn).await?;
        crate::notify::run_ended(&txn, tenant, &failed.id).await?;
        txn.commit().await?;
        crate::notify::wake();
        bus.publish(SyncEvent::of_run(&failed));
        return Err(e.into());
    }
    bus.publish(SyncEvent::of_run(&run));
    Ok(Created::New(run))
}

/// After a form submission (S3): queues `contact` for every enabled connector
/// of the tenant whose export filter it passes (S5) and starts a FORM run of
/// each, or leaves it to the run already queued or going, which hands it to
/// a FORM run when it ends ([`after_run`]). Returns the runs that will push it.
pub async fn push_contact(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    contact: &contact::Model,
) -> Result<Vec<sync_run::Model>, RunError> {
    // An archived contact is never exported (issue 24): nothing to push.
    if contact.archived_at.is_some() {
        return Ok(Vec::new());
    }
    let connectors = connector::Entity::for_tenant(tenant)
        .filter(connector::Column::Enabled.eq(true))
        .all(db)
        .await?;
    let mut runs = Vec::new();
    for c in connectors {
        let Ok(settings) = serde_json::from_value::<ConnectorSettings>(c.settings.clone()) else {
            tracing::warn!(connector = %c.id, "form push: the connector's settings are unreadable");
            continue;
        };
        if contact.behaviour_score < settings.min_score_to_export {
            continue;
        }
        if matches!(
            c.status,
            ConnectorStatus::Disabled | ConnectorStatus::NeedsReauth
        ) {
            tracing::info!(connector = %c.id, status = %c.status, "form push: the connector cannot sync now; the contact goes with its next run");
            continue;
        }
        pending_push::ActiveModel::from(pending_push::Model {
            id: crmsync_entity::new_id(),
            tenant_id: tenant.as_str().to_owned(),
            connector_id: c.id.clone(),
            contact_id: contact.id.clone(),
            run_id: None,
            submitted_at: Utc::now(),
        })
        .insert(db)
        .await?;
        match create_run(
            db,
            queue,
            bus,
            tenant,
            &c.id,
            NewRun::new(SyncTrigger::Form, SyncMode::Incremental),
        )
        .await
        {
            Ok(Created::New(run) | Created::Existing(run)) => runs.push(run),
            // Disabled or needing credentials since it was read: the
            // submission waits for the connector's next run.
            Err(RunError::Conflict(why)) => {
                tracing::info!(connector = %c.id, why, "form push: no run started");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(runs)
}

/// After a CRM's change notification (real time): stores the records it
/// names for the connector and starts a CRM_EVENT run, or leaves them to the
/// run already queued or going, which hands them to a CRM_EVENT run when it
/// ends ([`after_run`]). Returns the run that will read them, if one could
/// start (a disabled connector's notices wait for nothing: polling finds the
/// changes once it is enabled again).
pub async fn notify_records(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    tenant: &TenantId,
    connector_id: &str,
    notice: &crate::crm::realtime::Notice,
) -> Result<Option<sync_run::Model>, RunError> {
    let now = Utc::now();
    let rows: Vec<crm_notice::ActiveModel> = notice
        .changed
        .iter()
        .map(|r| (r, false))
        .chain(notice.deleted.iter().map(|r| (r, true)))
        .map(|((module, id), deleted)| {
            crm_notice::ActiveModel::from(crm_notice::Model {
                id: crmsync_entity::new_id(),
                tenant_id: tenant.as_str().to_owned(),
                connector_id: connector_id.to_owned(),
                module: *module,
                crm_record_id: id.clone(),
                deleted,
                received_at: now,
                run_id: None,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    for chunk in rows.chunks(500) {
        crm_notice::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    match create_run(
        db,
        queue,
        bus,
        tenant,
        connector_id,
        NewRun::new(SyncTrigger::CrmEvent, SyncMode::Incremental),
    )
    .await
    {
        Ok(Created::New(run) | Created::Existing(run)) => Ok(Some(run)),
        Err(RunError::Conflict(why)) => {
            tracing::info!(connector = %connector_id, why, "CRM notification: no run started");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// After a run ends: its pushes and notices are done (a failed push is not
/// lost: the contact changed since the export checkpoint, so the next run
/// exports it; a notified record changed since the import checkpoint
/// likewise); submissions that came while it ran start a FORM run of their
/// own, else notifications a CRM_EVENT run. A FORM or CRM_EVENT run
/// cancelled before it started drops the submissions or notices it would
/// have taken (the next run still reads those contacts and records).
pub async fn after_run(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    run: &sync_run::Model,
) -> Result<Option<sync_run::Model>, RunError> {
    if !run.status.is_final() {
        return Ok(None);
    }
    let tenant = TenantId::new(run.tenant_id.clone());
    pending_push::Entity::delete_many()
        .filter(pending_push::Column::TenantId.eq(tenant.as_str()))
        .filter(pending_push::Column::RunId.eq(&run.id))
        .exec(db)
        .await?;
    crm_notice::Entity::delete_many()
        .filter(crm_notice::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_notice::Column::RunId.eq(&run.id))
        .exec(db)
        .await?;
    let until = run.finished_at.unwrap_or_else(Utc::now);
    if run.trigger == SyncTrigger::Form && run.status == SyncRunStatus::Cancelled {
        pending_push::Entity::delete_many()
            .filter(pending_push::Column::TenantId.eq(tenant.as_str()))
            .filter(pending_push::Column::ConnectorId.eq(&run.connector_id))
            .filter(pending_push::Column::RunId.is_null())
            .filter(pending_push::Column::SubmittedAt.lte(until))
            .exec(db)
            .await?;
    }
    if run.trigger == SyncTrigger::CrmEvent && run.status == SyncRunStatus::Cancelled {
        crm_notice::Entity::delete_many()
            .filter(crm_notice::Column::TenantId.eq(tenant.as_str()))
            .filter(crm_notice::Column::ConnectorId.eq(&run.connector_id))
            .filter(crm_notice::Column::RunId.is_null())
            .filter(crm_notice::Column::ReceivedAt.lte(until))
            .exec(db)
            .await?;
    }
    let pushes = pending_push::Entity::for_tenant(&tenant)
        .filter(pending_push::Column::ConnectorId.eq(&run.connector_id))
        .filter(pending_push::Column::RunId.is_null())
        .count(db)
        .await?;
    let trigger = if pushes > 0 {
        SyncTrigger::Form
    } else {
        let notices = crm_notice::Entity::for_tenant(&tenant)
            .filter(crm_notice::Column::ConnectorId.eq(&run.connector_id))
            .filter(crm_notice::Column::RunId.is_null())
            .count(db)
            .await?;
        if notices == 0 {
            return Ok(None);
        }
        SyncTrigger::CrmEvent
    };
    match create_run(
        db,
        queue,
        bus,
        &tenant,
        &run.connector_id,
        NewRun::new(trigger, SyncMode::Incremental),
    )
    .await
    {
        Ok(Created::New(run)) => Ok(Some(run)),
        Ok(Created::Existing(_)) => Ok(None),
        Err(RunError::Conflict(why)) => {
            tracing::info!(connector = %run.connector_id, why, "waiting submissions or notices: no run started");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
