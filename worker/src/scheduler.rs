//! Syncs that start by themselves (S3): each connector's schedule fires an
//! INCREMENTAL run with trigger SCHEDULE.
//!
//! **Invariant:** one process schedules, however many run. Every worker
//! process runs [`run`], but only the holder of the `scheduler` process lease
//! ticks; the others keep asking, and one of them takes over within a lease
//! length of the holder's death. Each fire also moves the connector's
//! `next_sync_at` with a conditional update from the value it read, so even
//! two processes that both believe they hold the lease (clocks far apart)
//! fire a tick once.
//!
//! Ticks missed while nothing ran (downtime, a disabled connector, a run still
//! going) give one catch-up run, not a burst: a due connector fires once and
//! its next time is computed from now. A connector first seen (or whose
//! schedule changed) is planned from now, without firing; an interval's
//! first time is spread over the interval by connector
//! ([`Schedule::first_after`]), so connectors set up together do not fire
//! together.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::TenantId;
use crmsync_entity::enums::{SyncMode, SyncTrigger};
use crmsync_entity::models::{connector, process_lease};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::events::EventBus;
use crate::jobs::{JobQueue, SyncJob};
use crate::runs::{self, RunError};
use crate::settings::{ConnectorSettings, Schedule};

/// The scheduler's process lease.
const LEASE: &str = "scheduler";
/// How often the scheduler looks for due connectors.
pub const TICK: Duration = Duration::from_secs(1);
/// How often the scheduler looks for runs no token reaches
/// ([`crate::slots::Stranded`]): their grace is seconds, not a tick.
const STRANDED_EVERY: Duration = Duration::from_secs(5);

/// What a scheduler process needs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// The database.
    pub db: DatabaseConnection,
    /// Where runs' jobs go.
    pub queue: JobQueue,
    /// Where run events go.
    pub bus: std::sync::Arc<dyn EventBus>,
    /// This process's name (the lease holder).
    pub holder: String,
    /// How long the lease lasts unless renewed (renewed every tick).
    pub lease: Duration,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Runs started (connector id, run id).
    pub started: Vec<(String, String)>,
    /// Connectors due whose run was not started (one already going, say).
    pub skipped: Vec<String>,
    /// Connectors planned for the first time.
    pub planned: Vec<String>,
}

impl Scheduler {
    /// Ticks every [`TICK`] while this process holds the scheduler lease,
    /// until `shutdown` completes; then gives the lease up, so another
    /// process takes over at once.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = false;
        let mut stranded = crate::slots::Stranded::default();
        let mut swept = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut shutdown => break,
            }
            match hold(&self.db, LEASE, &self.holder, self.lease).await {
                Ok(held) => {
                    if held != leading {
                        leading = held;
                        if held {
                            tracing::info!(holder = %self.holder, "this process now schedules syncs");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: cannot renew the scheduler lease");
                    continue;
                }
            }
            if !leading {
                continue;
            }
            if let Err(e) = tick(&self.db, &self.queue, self.bus.as_ref(), Utc::now()).await {
                tracing::warn!(error = %e, "scheduler: tick failed");
            }
            if swept.elapsed() >= STRANDED_EVERY {
                swept = tokio::time::Instant::now();
                if let Err(e) = restart_stranded(&self.db, &self.queue, &mut stranded).await {
                    tracing::warn!(error = %e, "scheduler: cannot look for stranded runs");
                }
            }
        }
        if leading && let Err(e) = release(&self.db, LEASE, &self.holder).await {
            tracing::warn!(error = %e, "scheduler: cannot release the scheduler lease");
        }
    }
}

/// Gives each run no token may reach a token of its own
/// ([`crate::slots::Stranded`]).
pub async fn restart_stranded(
    db: &DatabaseConnection,
    queue: &JobQueue,
    stranded: &mut crate::slots::Stranded,
) -> Result<(), DbErr> {
    for (lane, run) in stranded.sweep(db, Utc::now()).await? {
        tracing::info!(run = %run.id, "a waiting run had no token on the queue: one is given");
        queue
            .enqueue_in(lane, &SyncJob::of(&run), &crate::jobs::new_task_id())
            .await
            .map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    Ok(())
}

/// Takes or renews the process lease `name` for `holder`; true when held.
pub async fn hold(
    db: &DatabaseConnection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    let renewed = process_lease::Entity::update_many()
        .col_expr(process_lease::Column::Holder, Expr::value(holder))
        .col_expr(process_lease::Column::ExpiresAt, Expr::value(expires))
        .filter(process_lease::Column::Name.eq(name))
        .filter(
            sea_orm::Condition::any()
                .add(process_lease::Column::Holder.eq(holder))
                .add(process_lease::Column::ExpiresAt.lt(now)),
        )
        .exec(db)
        .await?;
    if renewed.rows_affected == 1 {
        return Ok(true);
    }
    let row = process_lease::ActiveModel::from(process_lease::Model {
        name: name.to_owned(),
        holder: holder.to_owned(),
        expires_at: expires,
    });
    let inserted = process_lease::Entity::insert(row)
        .on_conflict(
            OnConflict::column(process_lease::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted == 1)
}

/// Gives the lease `name` up if `holder` has it.
pub async fn release(db: &DatabaseConnection, name: &str, holder: &str) -> Result<(), DbErr> {
    process_lease::Entity::update_many()
        .col_expr(process_lease::Column::ExpiresAt, Expr::value(Utc::now()))
        .filter(process_lease::Column::Name.eq(name))
        .filter(process_lease::Column::Holder.eq(holder))
        .exec(db)
        .await?;
    Ok(())
}

/// The holder of the lease `name` while it lasts.
pub async fn holder_of(db: &DatabaseConnection, name: &str) -> Result<Option<String>, DbErr> {
    Ok(process_lease::Entity::find_by_id(name.to_owned())
        .one(db)
        .await?
        .filter(|l| l.expires_at > Utc::now())
        .map(|l| l.holder))
}

/// The holder of the scheduler lease while it lasts (for operators and tests).
pub async fn scheduler_holder(db: &DatabaseConnection) -> Result<Option<String>, DbErr> {
    holder_of(db, LEASE).await
}

/// One pass at `now`: fires every due connector once and plans the next
/// time of each. Call only while holding the lease ([`Scheduler::run`]).
pub async fn tick(
    db: &DatabaseConnection,
    queue: &JobQueue,
    bus: &dyn EventBus,
    now: DateTime<Utc>,
) -> Result<Tick, DbErr> {
    let mut done = Tick::default();
    for c in connector::Entity::schedule_due(now).all(db).await? {
        let schedule = serde_json::from_value::<ConnectorSettings>(c.settings.clone())
            .map_err(|e| e.to_string())
            .and_then(|s| Schedule::parse(&s.schedule));
        let schedule = match schedule {
            Ok(s) => s,
            Err(e) => {
                // Settings are validated on write; this is a stored row gone bad.
                tracing::warn!(connector = %c.id, error = %e, "scheduler: the connector's schedule is unreadable");
                continue;
            }
        };
        let next = match c.next_sync_at {
            Some(_) => schedule.next_after(now),
            None => schedule.first_after(now, &c.id),
        };
        let Some(next) = next else {
            continue;
        };
        // Only the process that moves next_sync_at from what it read fires.
        let moved = connector::Entity::update_many()
            .col_expr(connector::Column::NextSyncAt, Expr::value(next))
            .filter(connector::Column::TenantId.eq(&c.tenant_id))
            .filter(connector::Column::Id.eq(&c.id))
            .filter(match c.next_sync_at {
                Some(at) => connector::Column::NextSyncAt.eq(at),
                None => connector::Column::NextSyncAt.is_null(),
            })
            .exec(db)
            .await?;
        if moved.rows_affected != 1 {
            continue;
        }
        if c.next_sync_at.is_none() {
            done.planned.push(c.id);
            continue;
        }
        let tenant = TenantId::new(c.tenant_id.clone());
        match runs::start_sync(
            db,
            queue,
            bus,
            &tenant,
            &c.id,
            SyncTrigger::Schedule,
            SyncMode::Incremental,
        )
        .await
        {
            Ok(run) if run.trigger == SyncTrigger::Schedule => {
                tracing::info!(connector = %c.id, run = %run.id, next = %next, "scheduled sync started");
                done.started.push((c.id, run.id));
            }
            Ok(run) => {
                tracing::info!(connector = %c.id, run = %run.id, status = %run.status, "scheduled sync skipped: a run is already going");
                done.skipped.push(c.id);
            }
            Err(RunError::Db(e)) => return Err(e),
            Err(e) => {
                tracing::info!(connector = %c.id, error = %e, "scheduled sync not started");
                done.skipped.push(c.id);
            }
        }
    }
    Ok(done)
}
