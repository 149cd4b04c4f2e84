//! The worker loop: takes sync jobs from the queue ([`crate::jobs`]), runs
//! each ([`crate::sync::run_sync`]), then starts the FORM run of the form
//! submissions that came while it ran ([`crate::runs::after_run`]). It sits
//! above both, so the queue and the sync know nothing of it.

use std::time::Duration;

use apalis::prelude::*;

use crate::context::{WorkerContext, worker_name};
use crate::jobs::{JOB_TIMEOUT, JobQueue, PG_POLL, POLL, QueueError, Storage, SyncJob};
use crate::sync::SyncError;

async fn handle(
    job: SyncJob,
    ctx: Data<WorkerContext>,
    queue: Data<JobQueue>,
) -> Result<(), BoxDynError> {
    match crate::sync::run_sync(&ctx, &job).await {
        Ok(run) => {
            tracing::info!(run = %run.id, status = %run.status, "sync run ended");
            // Form submissions and CRM notifications that came while it ran go in a run of their own.
            match crate::runs::after_run(&ctx.db, &queue, ctx.bus.as_ref(), &run).await {
                Ok(Some(next)) => {
                    tracing::info!(run = %next.id, "submissions or CRM notifications came while the run went on: next run queued");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "could not queue the FORM run of waiting submissions; the next run exports them");
                }
            }
            Ok(())
        }
        // A job for a run or tenant that does not exist never will: do not retry.
        Err(SyncError::NotFound) => Err(AbortError::new(SyncError::NotFound).into()),
        Err(e) => Err(e.into()),
    }
}

/// Runs jobs from the queue, at most `concurrency` at a time, until
/// `shutdown` completes. A backend error restarts the worker after a pause
/// (under a new name).
///
/// Shutdown is graceful: no new job is taken, and the runs in flight stop at
/// their next page (checkpoint saved), release their lease and go back to the
/// queue, where another worker takes them over at once.
pub async fn run_worker(
    queue: JobQueue,
    ctx: WorkerContext,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), QueueError> {
    let concurrency = concurrency.max(1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let draining = ctx.options.draining.clone();
    tokio::pin!(shutdown);
    loop {
        let name = worker_name();
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
            Ok::<(), WorkerError>(())
        };
        // The same worker on each storage (their backend types differ).
        macro_rules! worker_on {
            ($backend:expr) => {
                WorkerBuilder::new(name.as_str())
                    .backend($backend)
                    .data(ctx.clone())
                    .data(queue.clone())
                    .concurrency(concurrency)
                    .timeout(JOB_TIMEOUT)
                    .build(handle)
                    .run_until(signal)
                    .await
            };
        }
        let run = async {
            match &queue.storage {
                Storage::Sqlite(s) => worker_on!(s.clone().poll_with_interval(POLL)),
                Storage::Postgres(s) => {
                    // Woken by LISTEN/NOTIFY for new jobs, and polling for the
                    // ones that come back without an insert: a dead worker's,
                    // re-enqueued by a peer's heartbeat, and handed-back ones.
                    let pubsub = apalis_postgres::Pubsub::new(
                        s.pool().clone(),
                        s.config().queue.to_string(),
                    );
                    let strategy = Strategy::new().stream(pubsub).interval(PG_POLL);
                    worker_on!(s.clone().poll_with_strategy(strategy))
                }
                Storage::Redis(s) => worker_on!(s.clone().poll_with_interval(POLL)),
            }
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
                if let Err(e) = run.await {
                    tracing::warn!(worker = %name, error = %e, "job worker stopped with an error");
                }
                return Ok(());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}
