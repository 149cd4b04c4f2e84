//! Bounded history (issue 26): each tenant keeps its sync items, deliveries
//! and audit rows for as many days as its retention says, and a pruner in
//! every worker process deletes what is older, a small batch at a time.
//!
//! What stays, whatever its age:
//! - every run's summary (its row: status, times, leg counts), marked with
//!   `items_pruned_at` once its items went;
//! - the first [`KEPT_REJECTED`] rejected items of every run;
//! - all rejected items of each connector's latest finished run (dry runs
//!   aside), so they can still be retried; once a newer run ends, they are
//!   pruned down to the first ones like any other run's;
//! - deliveries not yet final (a pending outbox row is never deleted);
//! - each contact's latest consent event (the origin of its current state).
//!
//! **Invariant:** one process prunes, however many run (the `pruner` process
//! lease, as the scheduler's); each statement deletes at most a batch of rows
//! by primary key, in its own short transaction, and only rows of finished
//! runs, so a running sync never waits long and never loses a row it reads.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{DeliveryStatus, ItemOutcome, SyncMode};
use crmsync_entity::models::{
    audit_log, consent_event, delivery, run_listed_ids, sync_item, sync_run, tenant,
};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use crate::scheduler::{hold, release};

/// The pruner's process lease.
const LEASE: &str = "pruner";

/// Rejected items every run keeps, the first by id (its summary's examples).
pub const KEPT_REJECTED: usize = 10;

/// The longest retention a tenant may set, in days (ten years).
pub const MAX_DAYS: i32 = 3650;

/// A tenant's retention, in days: how long each kind of history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A finished run's items (its summary and first rejected items stay).
    pub sync_items_days: i32,
    /// Sent or given-up deliveries (webhook calls, e-mails).
    pub deliveries_days: i32,
    /// Audit entries and consent events.
    pub audit_days: i32,
}

impl Default for Retention {
    /// 30 days of items and deliveries, a year of audit rows (the columns'
    /// defaults).
    fn default() -> Self {
        Self {
            sync_items_days: 30,
            deliveries_days: 30,
            audit_days: 365,
        }
    }
}

/// A retention refused: the field (its GraphQL name) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidRetention {
    /// `syncItemsDays`, `deliveriesDays` or `auditDays`.
    pub field: &'static str,
    /// In words.
    pub reason: String,
}

impl Retention {
    /// The tenant's stored retention.
    pub fn of(tenant: &tenant::Model) -> Self {
        Self {
            sync_items_days: tenant.retention_sync_items_days,
            deliveries_days: tenant.retention_deliveries_days,
            audit_days: tenant.retention_audit_days,
        }
    }

    /// Every value is a whole number of days from 1 to [`MAX_DAYS`].
    pub fn validate(&self) -> Result<(), InvalidRetention> {
        for (field, days) in [
            ("syncItemsDays", self.sync_items_days),
            ("deliveriesDays", self.deliveries_days),
            ("auditDays", self.audit_days),
        ] {
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(InvalidRetention {
                    field,
                    reason: format!("must be between 1 and {MAX_DAYS} days"),
                });
            }
        }
        Ok(())
    }
}

/// Stores a tenant's retention (validated first) and returns the tenant.
pub async fn set(
    db: &DatabaseConnection,
    tenant_id: &TenantId,
    retention: Retention,
) -> Result<Option<tenant::Model>, SetError> {
    retention.validate()?;
    tenant::Entity::update_many()
        .col_expr(
            tenant::Column::RetentionSyncItemsDays,
            Expr::value(retention.sync_items_days),
        )
        .col_expr(
            tenant::Column::RetentionDeliveriesDays,
            Expr::value(retention.deliveries_days),
        )
        .col_expr(
            tenant::Column::RetentionAuditDays,
            Expr::value(retention.audit_days),
        )
        .filter(tenant::Column::Id.eq(tenant_id.as_str()))
        .exec(db)
        .await?;
    Ok(tenant::Entity::find_by_id(tenant_id.as_str().to_owned())
        .one(db)
        .await?)
}

/// Why a retention was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// A value out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidRetention),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// How the pruner works.
#[derive(Debug, Clone)]
pub struct PruneSettings {
    /// Rows one statement deletes at most (`CRMSYNC_PRUNE_BATCH`).
    pub batch: u64,
    /// How often the lease holder prunes (`CRMSYNC_PRUNE_INTERVAL_SECS`).
    pub interval: Duration,
}

impl PruneSettings {
    /// The default batch: small enough that a statement holds SQLite's write
    /// lock for a few milliseconds.
    pub const DEFAULT_BATCH: u64 = 500;
    /// The default interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
}

impl Default for PruneSettings {
    fn default() -> Self {
        Self {
            batch: Self::DEFAULT_BATCH,
            interval: Self::DEFAULT_INTERVAL,
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Sync items deleted.
    pub sync_items: u64,
    /// Runs newly marked `items_pruned_at` (or pruned again once no longer
    /// their connector's latest).
    pub runs: u64,
    /// Deliveries deleted.
    pub deliveries: u64,
    /// Audit entries deleted.
    pub audit_entries: u64,
    /// Consent events deleted.
    pub consent_events: u64,
    /// Delete statements run (each at most a batch).
    pub statements: u64,
}

/// The pruner of one worker process.
#[derive(Debug, Clone)]
pub struct Pruner {
    /// The database.
    pub db: DatabaseConnection,
    /// This process's name (the lease holder).
    pub holder: String,
    /// How long the lease lasts unless renewed (renewed between tenants).
    pub lease: Duration,
    /// Batch and interval.
    pub settings: PruneSettings,
}

impl Pruner {
    /// Prunes every interval while this process holds the pruner lease,
    /// until `shutdown` completes; then gives the lease up.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut shutdown => break,
            }
            match hold(&self.db, LEASE, &self.holder, self.lease).await {
                Ok(held) => leading = held,
                Err(e) => {
                    tracing::warn!(error = %e, "pruner: cannot renew the pruner lease");
                    continue;
                }
            }
            if !leading {
                continue;
            }
            let pass = prune_held(&self.db, Utc::now(), &self.settings, || {
                hold(&self.db, LEASE, &self.holder, self.lease)
            });
            tokio::select! {
                done = pass => match done {
                    Ok(p) if p != Pruned::default() => tracing::info!(?p, "pruned history past retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruner: pass failed"),
                },
                () = &mut shutdown => break,
            }
        }
        if leading && let Err(e) = release(&self.db, LEASE, &self.holder).await {
            tracing::warn!(error = %e, "pruner: cannot release the pruner lease");
        }
    }
}

/// The holder of the pruner lease while it lasts (for operators and tests).
pub async fn pruner_holder(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    crate::scheduler::holder_of(db, LEASE).await
}

/// One pass at `now` over every tenant. Call only while holding the lease
/// ([`Pruner::run`]), or in tests.
pub async fn prune(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    settings: &PruneSettings,
) -> Result<Pruned, DbErr> {
    prune_held(db, now, settings, || async { Ok(true) }).await
}

/// [`prune`], renewing the lease (`still_held`) before each tenant and
/// stopping when it is lost.
async fn prune_held<F, Fut>(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    settings: &PruneSettings,
    still_held: F,
) -> Result<Pruned, DbErr>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, DbErr>>,
{
    let mut done = Pruned::default();
    let tenants: Vec<tenant::Model> = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(db)
        .await?;
    for t in tenants {
        if !still_held().await? {
            break;
        }
        let retention = Retention::of(&t);
        let tenant = TenantId::new(t.id);
        let batch = Ord::max(settings.batch, 1);
        prune_items(
            db,
            &tenant,
            cutoff(now, retention.sync_items_days),
            batch,
            &mut done,
        )
        .await?;
        prune_deliveries(
            db,
            &tenant,
            cutoff(now, retention.deliveries_days),
            batch,
            &mut done,
        )
        .await?;
        prune_audit(
            db,
            &tenant,
            cutoff(now, retention.audit_days),
            batch,
            &mut done,
        )
        .await?;
        // What a sliced run listed outlives it only when the run ended
        // without its worker (cancelled while queued, abandoned): a day on,
        // no run still needs it.
        run_listed_ids::Entity::delete_many()
            .filter(run_listed_ids::Column::TenantId.eq(tenant.as_str()))
            .filter(run_listed_ids::Column::CreatedAt.lt(cutoff(now, 1)))
            .exec(db)
            .await?;
    }
    Ok(done)
}

fn cutoff(now: DateTime<Utc>, days: i32) -> DateTime<Utc> {
    now - chrono::Duration::days(i64::from(Ord::max(days, 1)))
}

/// The runs whose items a pass prunes: finished before `cutoff`, and not yet
/// pruned, or pruned while they were their connector's latest run.
async fn prune_items(
    db: &DatabaseConnection,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
    done: &mut Pruned,
) -> Result<(), DbErr> {
    let latest = latest_runs(db, tenant).await?;
    let runs: Vec<(String, String, bool, Option<DateTime<Utc>>)> =
        sync_run::Entity::for_tenant(tenant)
            .select_only()
            .column(sync_run::Column::Id)
            .column(sync_run::Column::ConnectorId)
            .column(sync_run::Column::AllRejectedKept)
            .column(sync_run::Column::ItemsPrunedAt)
            .filter(sync_run::Column::FinishedAt.lt(cutoff))
            .filter(
                sea_orm::Condition::any()
                    .add(sync_run::Column::ItemsPrunedAt.is_null())
                    .add(sync_run::Column::AllRejectedKept.eq(true)),
            )
            .order_by_asc(sync_run::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
    for (run_id, connector_id, all_kept, pruned_at) in runs {
        let is_latest = latest.get(&connector_id) == Some(&run_id);
        if pruned_at.is_some() && all_kept && is_latest {
            continue;
        }
        prune_run(db, tenant, &run_id, is_latest, batch, done).await?;
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::ItemsPrunedAt, Expr::value(Utc::now()))
            .col_expr(sync_run::Column::AllRejectedKept, Expr::value(is_latest))
            .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_run::Column::Id.eq(&run_id))
            .exec(db)
            .await?;
        done.runs += 1;
    }
    Ok(())
}

/// Each connector's latest finished run, dry runs aside: the one whose
/// rejected items are all kept.
async fn latest_runs(
    db: &DatabaseConnection,
    tenant: &TenantId,
) -> Result<HashMap<String, String>, DbErr> {
    let rows: Vec<(String, Option<String>)> = sync_run::Entity::for_tenant(tenant)
        .select_only()
        .column(sync_run::Column::ConnectorId)
        .column_as(sync_run::Column::Id.max(), "latest")
        .filter(sync_run::Column::Mode.ne(SyncMode::DryRun))
        .filter(sync_run::Column::FinishedAt.is_not_null())
        .group_by(sync_run::Column::ConnectorId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(connector, latest)| Some((connector, latest?)))
        .collect())
}

/// Deletes one run's items but the rejected ones it keeps, a batch at a
/// time, walking the run's items in id order (`ix_items_run`).
async fn prune_run(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
    keep_all_rejected: bool,
    batch: u64,
    done: &mut Pruned,
) -> Result<(), DbErr> {
    let first_rejected: BTreeSet<String> = if keep_all_rejected {
        BTreeSet::new()
    } else {
        sync_item::Entity::for_tenant(tenant)
            .select_only()
            .column(sync_item::Column::Id)
            .filter(sync_item::Column::RunId.eq(run_id))
            .filter(sync_item::Column::Outcome.eq(ItemOutcome::Rejected))
            .order_by_asc(sync_item::Column::Id)
            .limit(KEPT_REJECTED as u64)
            .into_tuple()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let mut after = String::new();
    loop {
        let rows: Vec<(String, ItemOutcome)> = sync_item::Entity::for_tenant(tenant)
            .select_only()
            .column(sync_item::Column::Id)
            .column(sync_item::Column::Outcome)
            .filter(sync_item::Column::RunId.eq(run_id))
            .filter(sync_item::Column::Id.gt(after.as_str()))
            .order_by_asc(sync_item::Column::Id)
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        after = last.clone();
        let doomed: Vec<String> = rows
            .into_iter()
            .filter(|(id, outcome)| {
                let kept = if keep_all_rejected {
                    *outcome == ItemOutcome::Rejected
                } else {
                    first_rejected.contains(id)
                };
                !kept
            })
            .map(|(id, _)| id)
            .collect();
        if doomed.is_empty() {
            continue;
        }
        let deleted = sync_item::Entity::delete_many()
            .filter(sync_item::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_item::Column::Id.is_in(doomed))
            .exec(db)
            .await?;
        done.sync_items += deleted.rows_affected;
        done.statements += 1;
        // Let a running sync's page in between two batches.
        tokio::task::yield_now().await;
    }
}

/// Deletes final deliveries created before `cutoff`, a batch at a time.
async fn prune_deliveries(
    db: &DatabaseConnection,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
    done: &mut Pruned,
) -> Result<(), DbErr> {
    let finished = delivery::Entity::for_tenant(tenant)
        .filter(delivery::Column::CreatedAt.lt(cutoff))
        .filter(
            delivery::Column::Status.is_in([DeliveryStatus::Delivered, DeliveryStatus::Failed]),
        );
    done.deliveries += delete_in_batches(
        db,
        tenant,
        finished,
        (delivery::Column::Id, delivery::Column::TenantId),
        batch,
        &mut done.statements,
    )
    .await?;
    Ok(())
}

/// Deletes audit entries and consent events from before `cutoff`, a batch at
/// a time; each contact's latest consent event stays.
async fn prune_audit(
    db: &DatabaseConnection,
    tenant: &TenantId,
    cutoff: DateTime<Utc>,
    batch: u64,
    done: &mut Pruned,
) -> Result<(), DbErr> {
    let old = audit_log::Entity::for_tenant(tenant).filter(audit_log::Column::At.lt(cutoff));
    done.audit_entries += delete_in_batches(
        db,
        tenant,
        old,
        (audit_log::Column::Id, audit_log::Column::TenantId),
        batch,
        &mut done.statements,
    )
    .await?;
    // A newer event of the same contact: this one is not its latest.
    let newer = Alias::new("newer");
    let superseded = Query::select()
        .expr(Expr::val(1))
        .from_as(consent_event::Entity, newer.clone())
        .and_where(
            Expr::col((newer.clone(), consent_event::Column::TenantId))
                .equals((consent_event::Entity, consent_event::Column::TenantId)),
        )
        .and_where(
            Expr::col((newer.clone(), consent_event::Column::ContactId))
                .equals((consent_event::Entity, consent_event::Column::ContactId)),
        )
        .and_where(
            Expr::col((newer.clone(), consent_event::Column::At))
                .gt(Expr::col((
                    consent_event::Entity,
                    consent_event::Column::At,
                )))
                .or(Expr::col((newer.clone(), consent_event::Column::At))
                    .equals((consent_event::Entity, consent_event::Column::At))
                    .and(Expr::col((newer, consent_event::Column::Id)).gt(Expr::col((
                        consent_event::Entity,
                        consent_event::Column::Id,
                    ))))),
        )
        .to_owned();
    let superseded_old = consent_event::Entity::for_tenant(tenant)
        .filter(consent_event::Column::At.lt(cutoff))
        .filter(Expr::exists(superseded));
    done.consent_events += delete_in_batches(
        db,
        tenant,
        superseded_old,
        (consent_event::Column::Id, consent_event::Column::TenantId),
        batch,
        &mut done.statements,
    )
    .await?;
    Ok(())
}

/// Deletes the rows `find` selects, a batch at a time: at most `batch` ids
/// read, then deleted by id (and tenant) in a statement of their own, until
/// a read finds less than a batch. Counts its statements in `statements`;
/// returns the rows deleted.
async fn delete_in_batches<E>(
    db: &DatabaseConnection,
    tenant: &TenantId,
    find: Select<E>,
    (id, tenant_id): (E::Column, E::Column),
    batch: u64,
    statements: &mut u64,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
{
    let mut deleted = 0;
    loop {
        let ids: Vec<String> = find
            .clone()
            .select_only()
            .column(id)
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        let n = ids.len() as u64;
        deleted += E::delete_many()
            .filter(tenant_id.eq(tenant.as_str()))
            .filter(id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        *statements += 1;
        if n < batch {
            return Ok(deleted);
        }
        // Let a running sync's page in between two batches.
        tokio::task::yield_now().await;
    }
}
