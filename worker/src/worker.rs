//! The worker loop: takes tokens from the queue ([`crate::jobs`]), each a
//! slot for the fairest run waiting ([`crate::slots`]), runs a slice of it
//! ([`crate::sync::run_slice`]), then starts the FORM run of the form
//! submissions that came while it ran ([`crate::runs::after_run`]) and hands
//! a token on for the tenant's next waiting run. It sits above all three, so
//! the queue and the sync know nothing of it.

use std::time::Duration;

use apalis::prelude::*;
use chrono::Utc;
use crmsync_entity::enums::SyncRunStatus;
use crmsync_entity::models::sync_run;
use crmsync_entity::{TenantId, TenantScoped};

use crate::context::{WorkerContext, worker_name};
use crate::jobs::{JOB_TIMEOUT, JobQueue, PG_POLL, POLL, QueueError, Storage, SyncJob};
use crate::slots::Lane;
use crate::sync::{SyncError, Take};

async fn handle(
    job: SyncJob,
    ctx: Data<WorkerContext>,
    queue: Data<JobQueue>,
    lane: Data<Lane>,
) -> Result<(), BoxDynError> {
    match take_slot(&ctx, &queue, *lane, &job).await {
        Ok(()) => Ok(()),
        // A job for a run or tenant that does not exist never will: do not retry.
        Err(SyncError::NotFound) => Err(AbortError::new(SyncError::NotFound).into()),
        Err(e) => Err(e.into()),
    }
}

/// One token: a slot of `lane` for the fairest run waiting. Runs a slice of
/// it, then hands a token on for its tenant's next waiting run. With nothing
/// to take, the token ends, unless the job's own run is held by another
/// worker's live lease: then it waits for that lease to end or lapse (the
/// worker may have died; its run is then taken over here).
pub async fn take_slot(
    ctx: &WorkerContext,
    queue: &JobQueue,
    lane: Lane,
    job: &SyncJob,
) -> Result<(), SyncError> {
    let cap = match lane {
        Lane::Main => ctx.options.slots.tenant_cap,
        Lane::Form => None,
    };
    let tenant = TenantId::new(job.tenant_id.clone());
    loop {
        if ctx
            .options
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // Shutting down: no run is taken here (one just handed back
            // would only be handed back again); the token goes back for
            // another worker.
            return give_token(queue, lane, job).await;
        }
        for run in crate::slots::fairest(&ctx.db, lane, cap).await? {
            let target = SyncJob::of(&run);
            match crate::sync::run_slice(ctx, &target, Take::Fair { cap }).await {
                Err(SyncError::Busy) => continue,
                outcome => return after_slice(ctx, queue, lane, &target, outcome).await,
            }
        }
        let own = sync_run::Entity::find_for_tenant(&tenant, &job.run_id)
            .one(&ctx.db)
            .await?
            .filter(|r| r.connector_id == job.connector_id)
            .ok_or(SyncError::NotFound)?;
        if own.cancel_requested && !own.status.is_final() {
            // Ended as cancelled (a RUNNING one at its holder's next page).
            let outcome = crate::sync::run_slice(ctx, job, Take::Wait).await;
            return after_slice(ctx, queue, lane, job, outcome).await;
        }
        let now = Utc::now();
        let live = match (own.status, own.lease_holder.as_ref(), own.lease_expires_at) {
            (SyncRunStatus::Running, Some(_), Some(until)) if until >= now => until,
            // Final, taken by another slot, or waiting while its tenant is
            // at its cap: a run of the tenant hands a token on for it.
            _ => return Ok(()),
        };
        let ttl = ctx.options.lease;
        let wait = (live - now).to_std().unwrap_or_default() + Duration::from_millis(50);
        tokio::time::sleep(wait.min(ttl / 3).max(Duration::from_millis(50))).await;
    }
}

/// After a slice of `job`'s run: a run that ended starts the FORM run of the
/// submissions that came meanwhile; a run that went back to the queue (its
/// slice over, or this worker shutting down) has its token handed on, as
/// has the tenant's next run waiting for the slot this one frees.
async fn after_slice(
    ctx: &WorkerContext,
    queue: &JobQueue,
    lane: Lane,
    job: &SyncJob,
    outcome: Result<sync_run::Model, SyncError>,
) -> Result<(), SyncError> {
    match outcome {
        Ok(run) => {
            tracing::info!(run = %run.id, status = %run.status, slices = run.slices, "sync run ended");
            // Form submissions and CRM notifications that came while it ran go in a run of their own.
            match crate::runs::after_run(&ctx.db, queue, ctx.bus.as_ref(), &run).await {
                Ok(Some(next)) => {
                    tracing::info!(run = %next.id, "submissions or CRM notifications came while the run went on: next run queued");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "could not queue the FORM run of waiting submissions; the next run exports them");
                }
            }
        }
        Err(SyncError::Yielded | SyncError::HandedBack) => {}
        Err(e) => return Err(e),
    }
    hand_on(ctx, queue, lane, &TenantId::new(job.tenant_id.clone())).await
}

/// Enqueues a token for the tenant's oldest run waiting in `lane`, if any:
/// a run handed back, or one that waited while the tenant was at its cap.
async fn hand_on(
    ctx: &WorkerContext,
    queue: &JobQueue,
    lane: Lane,
    tenant: &TenantId,
) -> Result<(), SyncError> {
    let Some(next) = crate::slots::waiting_of(&ctx.db, tenant, lane).await? else {
        return Ok(());
    };
    give_token(queue, lane, &SyncJob::of(&next)).await
}

/// Puts a token for `job`'s run on the queue of `lane`, for any worker.
async fn give_token(queue: &JobQueue, lane: Lane, job: &SyncJob) -> Result<(), SyncError> {
    queue
        .enqueue_in(lane, job, &crate::jobs::new_task_id())
        .await
        .map_err(|e| SyncError::Db(sea_orm::DbErr::Custom(e.to_string())))
}

/// Runs jobs from the queue, at most `concurrency` runs at a time (and the
/// FORM lane's slots beside them, [`crate::slots::SlotSettings::form_slots`]),
/// until `shutdown` completes. A backend error restarts the worker after a
/// pause (under a new name).
///
/// Shutdown is graceful: no new job is taken, and the runs in flight stop at
/// their next page (checkpoint saved), release their lease and go back to the
/// queue, where another worker takes them over at once.
pub async fn run_worker(
    queue: JobQueue,
    mut ctx: WorkerContext,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), QueueError> {
    let concurrency = concurrency.max(1);
    let slots = &mut ctx.options.slots;
    slots.tenant_cap = Some(slots.cap_for(concurrency));
    let form_slots = slots.form_slots.max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let draining = ctx.options.draining.clone();
    tokio::pin!(shutdown);
    loop {
        let name = worker_name();
        let form_name = format!("{name}-form");
        let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
            Ok::<(), WorkerError>(())
        };
        // The same worker on each storage (their backend types differ), one
        // per lane.
        macro_rules! worker_on {
            ($name:expr, $lane:expr, $slots:expr, $backend:expr) => {
                WorkerBuilder::new($name)
                    .backend($backend)
                    .data(ctx.clone())
                    .data(queue.clone())
                    .data($lane)
                    .concurrency($slots)
                    .timeout(JOB_TIMEOUT)
                    .build(handle)
                    .run_until(signal(stopped.clone()))
                    .await
            };
        }
        macro_rules! lane_on {
            ($storage:expr, $name:expr, $lane:expr, $slots:expr) => {
                async {
                    match $storage {
                        Storage::Sqlite(s) => {
                            worker_on!($name, $lane, $slots, s.clone().poll_with_interval(POLL))
                        }
                        Storage::Postgres(s) => {
                            // Woken by LISTEN/NOTIFY for new jobs, and polling
                            // for the ones that come back without an insert: a
                            // dead worker's, re-enqueued by a peer's heartbeat.
                            let pubsub = apalis_postgres::Pubsub::new(
                                s.pool().clone(),
                                s.config().queue.to_string(),
                            );
                            let strategy = Strategy::new().stream(pubsub).interval(PG_POLL);
                            worker_on!($name, $lane, $slots, s.clone().poll_with_strategy(strategy))
                        }
                        Storage::Redis(s) => {
                            worker_on!($name, $lane, $slots, s.clone().poll_with_interval(POLL))
                        }
                    }
                }
            };
        }
        let run = async {
            tokio::try_join!(
                lane_on!(&queue.storage, name.as_str(), Lane::Main, concurrency),
                lane_on!(&queue.form, form_name.as_str(), Lane::Form, form_slots),
            )
            .map(|_| ())
        };
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => {
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::warn!(worker = %name, error = %e, "job worker stopped; restarting");
                    }
                }
            }
            () = &mut shutdown => {
                tracing::info!(worker = %name, "stopping: runs in flight go back to the queue at their next page");
                draining.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = stop.send(true);
                if let Err(e) = still_waiting(|| runs_finishing(&ctx), run).await {
                    tracing::warn!(worker = %name, error = %e, "job worker stopped with an error");
                }
                tracing::info!(worker = %name, "job workers stopped: no run of this worker is in flight");
                return Ok(());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// How often a shutdown that waits says what it waits for.
pub const STILL_WAITING_EVERY: Duration = Duration::from_secs(10);

/// Awaits `fut`, logging `what` every [`STILL_WAITING_EVERY`] while it is
/// pending: a shutdown that takes long says what it waits for.
pub async fn still_waiting<F, W>(what: impl Fn() -> W, fut: F) -> F::Output
where
    F: std::future::Future,
    W: std::future::Future<Output = String>,
{
    tokio::pin!(fut);
    let started = tokio::time::Instant::now();
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep(STILL_WAITING_EVERY) => {
                let waited = started.elapsed().as_secs();
                let what = what().await;
                tracing::warn!(waited_secs = waited, "shutting down: still waiting for {what}");
            }
        }
    }
}

/// [`still_waiting`] for a wait that a fixed phrase names.
pub async fn still_waiting_for<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    still_waiting(|| std::future::ready(what.to_owned()), fut).await
}

/// Says which of this worker's runs are still going (the ones a shutdown
/// waits for until they reach their next page), and how many CRM requests
/// have ended so far.
async fn runs_finishing(ctx: &WorkerContext) -> String {
    let calls = ctx.metrics.crm_calls_so_far();
    let runs = match sync_run::held_by(&ctx.db, &ctx.options.holder).await {
        Ok(runs) if runs.is_empty() => {
            "the job workers to stop (no run holds this worker's lease)".to_owned()
        }
        Ok(runs) => {
            let runs: Vec<String> = runs
                .iter()
                .map(|r| {
                    format!(
                        "{} ({}, phase {}, {} processed)",
                        r.id, r.status, r.phase, r.processed
                    )
                })
                .collect();
            format!("runs to reach their next page: {}", runs.join(", "))
        }
        Err(e) => format!("the runs in flight (cannot read them: {e})"),
    };
    format!("{runs}; {calls} so far")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_says_what_it_waits_for_every_interval_until_it_ends() {
        let asked = AtomicUsize::new(0);
        let what = || {
            asked.fetch_add(1, Ordering::Relaxed);
            std::future::ready("the test".to_owned())
        };
        let slow = async {
            tokio::time::sleep(STILL_WAITING_EVERY * 2 + Duration::from_secs(1)).await;
            7
        };
        assert_eq!(still_waiting(what, slow).await, 7);
        assert_eq!(asked.load(Ordering::Relaxed), 2);
        // A wait that ends at once says nothing.
        assert_eq!(still_waiting(what, async { 8 }).await, 8);
        assert_eq!(asked.load(Ordering::Relaxed), 2);
    }
}
