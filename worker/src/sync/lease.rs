//! A run's lease: one run executes in one place, across processes (R4).
//!
//! The worker that starts a run writes its name and an expiry on the run row,
//! in the same conditional update that marks the run RUNNING, and renews the
//! expiry in the background. Another worker may take a RUNNING run over only
//! once its lease has lapsed (its holder died: `kill -9`, a lost machine) or
//! was released (its holder shut down and handed the run back). A holder that
//! finds its lease taken stops at the next page and writes nothing more to
//! the run.
//!
//! A worker handed a job whose run is held under a live lease waits, holding
//! the job, until the run ends or the lease is free: the queue can deliver a
//! job again while its first worker still runs it (a worker shutting down
//! stops its queue heartbeats before its runs reach their next page), and
//! completing that delivery at once would leave no job behind a run its
//! holder then hands back.
//!
//! Times are the workers' own clocks; the lease is several heartbeats long, so
//! small clock differences between machines do not matter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::SyncRunStatus;
use crmsync_entity::models::{sync_run, tenant_slot};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait, QueryFilter, QuerySelect,
};

/// A lease held by this worker, renewed until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    holder: String,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// The holder's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// True once another worker holds the run (this one was presumed dead).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// What [`claim`] found.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The run is ours: QUEUED or RUNNING, not cancelled, no live lease of another.
    Held(Lease),
    /// The run is not to be executed: final, cancelled or gone.
    Ended,
    /// This worker is shutting down: it takes no run.
    Draining,
    /// Taking a slot fairly: another worker holds the run, or its tenant
    /// already has as many runs going as its cap allows.
    Busy,
}

/// How a run is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The job's own run, waiting while another worker's lease on it is live
    /// (a job delivered again while its first worker still runs it).
    Wait,
    /// A slot handed out fairly ([`crate::slots`]): the run is taken only if
    /// it is free now and its tenant has fewer than `cap` runs holding slots
    /// of its lane (`None`: no cap).
    Fair {
        /// The most runs of one tenant at once in the lane.
        cap: Option<usize>,
    },
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60))
}

/// Marks the run RUNNING under a lease of this execution (`worker/ulid`:
/// the worker's name, and one per claim, so that the same process handed the
/// job twice never runs it twice). While another lease is live, waits
/// (checking at least every third of a lease) for the run to end, or for the
/// lease to lapse or be released, then takes it.
pub(crate) async fn claim(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
    worker: &str,
    ttl: Duration,
    draining: &AtomicBool,
    take: Take,
) -> Result<Claim, DbErr> {
    let holder = format!("{worker}/{}", ulid::Ulid::generate());
    let holder = holder.as_str();
    loop {
        // A worker shutting down starts nothing: the run stays where it is
        // for a worker that goes on.
        if draining.load(Ordering::Relaxed) {
            return Ok(Claim::Draining);
        }
        let now = Utc::now();
        // The row is read and updated in one write transaction (holding it on
        // PostgreSQL), so `before` is what the update saw: a run that was
        // QUEUED starts here, and its `sync.started` deliveries are written
        // with the change or not at all (a run taken over is not started again).
        let txn = super::store::begin(db).await?;
        let Some(before) = sync_run::Entity::find_for_tenant(tenant, run_id)
            .lock_exclusive()
            .one(&txn)
            .await?
        else {
            return Ok(Claim::Ended);
        };
        // Under a cap, the tenant's slot row is written first: on PostgreSQL
        // it holds the tenant until this transaction ends, so two workers
        // never both find the tenant under its cap.
        let capped = match take {
            Take::Fair { cap: Some(cap) } => Some(cap),
            _ => None,
        };
        if let Some(cap) = capped {
            tenant_slot::take(&txn, tenant.as_str(), now).await?;
            let lane = crate::slots::Lane::of(before.trigger);
            let tenants = [tenant.as_str().to_owned()];
            let holding = sync_run::holding_slots(&txn, &tenants, lane.is_form(), now).await?;
            if holding.get(tenant.as_str()).copied().unwrap_or(0) >= cap as u64 {
                return Ok(Claim::Busy);
            }
        }
        let taken = sync_run::Entity::update_many()
            .col_expr(
                sync_run::Column::Status,
                Expr::value(SyncRunStatus::Running),
            )
            .col_expr(sync_run::Column::Phase, Expr::value("starting"))
            // A run taken over keeps the time it first started.
            .col_expr(
                sync_run::Column::StartedAt,
                Func::coalesce([Expr::col(sync_run::Column::StartedAt), Expr::value(now)]).into(),
            )
            .col_expr(sync_run::Column::LeaseHolder, Expr::value(holder))
            .col_expr(sync_run::Column::LeaseExpiresAt, Expr::value(expiry(ttl)))
            .col_expr(
                sync_run::Column::Slices,
                Expr::col(sync_run::Column::Slices).add(1),
            )
            .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_run::Column::Id.eq(run_id))
            .filter(sync_run::Column::Status.is_in([SyncRunStatus::Queued, SyncRunStatus::Running]))
            .filter(sync_run::Column::CancelRequested.eq(false))
            .filter(
                sync_run::Column::LeaseHolder
                    .is_null()
                    .or(sync_run::Column::LeaseExpiresAt.lt(now)),
            )
            .exec(&txn)
            .await?;
        if taken.rows_affected == 1 {
            if capped.is_none() {
                tenant_slot::take(&txn, tenant.as_str(), now).await?;
            }
            // A run handed back for fairness is QUEUED again, but it started
            // once: it is announced once.
            let notified = before.status == SyncRunStatus::Queued
                && before.started_at.is_none()
                && crate::notify::run_started(&txn, tenant, run_id).await?;
            txn.commit().await?;
            if notified {
                crate::notify::wake();
            }
            return Ok(Claim::Held(renewed(
                db.clone(),
                tenant,
                run_id,
                holder,
                ttl,
            )));
        }
        if let Take::Fair { .. } = take {
            // Nothing taken: the tenant's slot time is left as it was.
            drop(txn);
            return Ok(match before.status {
                SyncRunStatus::Queued | SyncRunStatus::Running => Claim::Busy,
                _ => Claim::Ended,
            });
        }
        txn.commit().await?;
        let run = before;
        let live_until = match (run.status, run.cancel_requested, run.lease_expires_at) {
            (SyncRunStatus::Queued | SyncRunStatus::Running, false, Some(at)) if at >= now => at,
            // Released or lapsed since we looked: try again at once.
            (SyncRunStatus::Queued | SyncRunStatus::Running, false, _) => continue,
            _ => return Ok(Claim::Ended),
        };
        let wait = (live_until - now).to_std().unwrap_or_default() + Duration::from_millis(50);
        tokio::time::sleep(wait.min(ttl / 3).max(Duration::from_millis(50))).await;
    }
}

/// Renews the lease every third of its length until dropped; marks it lost
/// when the row no longer names this holder.
fn renewed(
    db: DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
    holder: &str,
    ttl: Duration,
) -> Lease {
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = tokio::spawn({
        let lost = lost.clone();
        let tenant = tenant.as_str().to_owned();
        let run_id = run_id.to_owned();
        let holder = holder.to_owned();
        async move {
            let mut every = tokio::time::interval(ttl / 3);
            every.tick().await;
            loop {
                every.tick().await;
                let renewed = sync_run::Entity::update_many()
                    .col_expr(sync_run::Column::LeaseExpiresAt, Expr::value(expiry(ttl)))
                    .filter(sync_run::Column::TenantId.eq(&tenant))
                    .filter(sync_run::Column::Id.eq(&run_id))
                    .filter(sync_run::Column::LeaseHolder.eq(&holder))
                    // Ended by someone else (cancelled or failed as abandoned): lost too.
                    .filter(sync_run::Column::Status.eq(SyncRunStatus::Running))
                    .exec(&db)
                    .await;
                match renewed {
                    Ok(r) if r.rows_affected == 0 => {
                        tracing::warn!(run = %run_id, "the run was taken over or ended elsewhere; stopping");
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(_) => {}
                    // A passing database error: the lease still has two thirds to go.
                    Err(e) => tracing::warn!(run = %run_id, error = %e, "renewing the run's lease"),
                }
            }
        }
    });
    Lease {
        holder: holder.to_owned(),
        lost,
        renewal,
    }
}

/// Puts the run back in the queue at the end of its slice, behind the runs
/// that waited: QUEUED (since now), no holder. Its counts and checkpoints
/// are those of its pages; whichever worker takes it next goes on from them.
/// False if the run was no longer this holder's.
pub(crate) async fn requeue(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
    lease: &Lease,
    crm_written_from: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let requeued = sync_run::Entity::update_many()
        .col_expr(
            sync_run::Column::CrmWrittenFrom,
            Expr::value(crm_written_from),
        )
        .col_expr(sync_run::Column::Status, Expr::value(SyncRunStatus::Queued))
        .col_expr(sync_run::Column::Phase, Expr::value("queued"))
        .col_expr(sync_run::Column::QueuedAt, Expr::value(Utc::now()))
        .col_expr(
            sync_run::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            sync_run::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::LeaseHolder.eq(lease.holder()))
        .filter(sync_run::Column::Status.eq(SyncRunStatus::Running))
        .exec(db)
        .await?;
    Ok(requeued.rows_affected == 1)
}

/// Gives the run back to the queue (graceful shutdown): RUNNING, no holder,
/// so the next worker to get its job takes it over at once.
pub(crate) async fn release(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
    lease: &Lease,
    crm_written_from: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Phase, Expr::value("handed back"))
        .col_expr(
            sync_run::Column::CrmWrittenFrom,
            Expr::value(crm_written_from),
        )
        .col_expr(
            sync_run::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        // Free from now: the time a stale run is judged by (`runs::ABANDONED_AFTER`).
        .col_expr(sync_run::Column::LeaseExpiresAt, Expr::value(Utc::now()))
        .filter(sync_run::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::LeaseHolder.eq(lease.holder()))
        .exec(db)
        .await?;
    Ok(())
}
