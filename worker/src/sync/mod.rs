//! One run from start to end: load and re-check the run and connector by
//! tenant, then the CRM's deletion feeds, the import leg (CRM to platform),
//! the deletions found (`deletions`, applied once the import leg's listing
//! completed) and the export leg (platform to CRM), page by page. Each page is read, decided (`decide`), written to the
//! CRM, then applied to the database in one transaction with its items, links
//! and checkpoint. The export leg runs its pages in a pipeline: while a page's
//! CRM writes are in flight, the next page is read and decided and its writes
//! queue behind them; a page's transaction runs while later pages go on (one
//! at a time, in page order). Every page whose CRM writes started is
//! recorded, even when the run stops. Progress events go out after every page.
//!
//! **Invariant:** a checkpoint is saved only in the transaction that applies its
//! page, and never in a dry run.
//!
//! **Invariant:** a dry run writes to neither side: no CRM write or lead
//! conversion, no contact, link, snapshot, checkpoint or index row, and no
//! change to its connector (status, `fullResyncRecommended`); only its run row
//! and its items. What its pages would have written is kept in memory
//! (`shadow`) for its own later reads, so it lists what the real run would do.

mod deletions;
mod ending;
mod import;
mod lease;
mod legs;
mod platform_side;
mod shadow;
mod store;

pub(crate) use ending::{End, ending};
pub use lease::Take;
pub(crate) use store::begin as begin_write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use crmsync_entity::enums::{ConnectorStatus, CrmModule, SyncMode, SyncRunStatus, SyncTrigger};
use crmsync_entity::enums::{ItemOutcome, SyncDirection};
use crmsync_entity::models::{connector, field_mapping, sync_item, sync_run};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

pub use crate::context::{DEFAULT_LEASE, SyncOptions, WorkerContext};
use crate::crm::{CrmClient, CrmError, CrmField, Description};
use crate::events::{Legs, SyncEvent};
use crate::platform::Mapping;
use crate::settings::ConnectorSettings;

/// The records a CRM_EVENT run reads (real time), by module: each record
/// once, with whether a notification said it was deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Notified(HashMap<CrmModule, std::collections::BTreeMap<String, bool>>);

impl Notified {
    /// Notes a record a notification named.
    pub(crate) fn add(&mut self, module: CrmModule, id: String, deleted: bool) {
        *self.0.entry(module).or_default().entry(id).or_default() |= deleted;
    }

    /// True when no record is named.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.values().all(|m| m.is_empty())
    }

    /// Every record named, of any module.
    pub(crate) fn ids(&self) -> HashSet<String> {
        self.0.values().flat_map(|m| m.keys().cloned()).collect()
    }

    /// The records of `module`, with whether they were said deleted.
    pub(crate) fn take(&mut self, module: CrmModule) -> Vec<(String, bool)> {
        self.0
            .remove(&module)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

/// What a worker needs to run one sync: re-checked against the database by tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// The tenant; the worker reads the run and connector through tenant-scoped finders.
    pub tenant_id: String,
    /// The run to execute.
    pub run_id: String,
    /// The run's connector.
    pub connector_id: String,
}

impl SyncJob {
    /// The job (a token naming it) of a run.
    pub fn of(run: &sync_run::Model) -> Self {
        Self {
            tenant_id: run.tenant_id.clone(),
            run_id: run.id.clone(),
            connector_id: run.connector_id.clone(),
        }
    }
}

/// Records per page, both legs (the largest list page among the CRMs; a
/// client caps it at its own).
pub const PAGE_SIZE: u32 = 500;
/// How far before a checkpoint a run reads again, so that nothing written
/// while the previous run worked is missed (S2).
pub const OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such run or connector for the job's tenant.
    #[error("the run or its connector does not exist for this tenant")]
    NotFound,
    /// The process is shutting down: the run stopped at a page boundary and
    /// its job goes back to the queue (retried by another worker).
    #[error("the worker is shutting down: the run goes back to the queue")]
    HandedBack,
    /// The run's slice ended while other runs waited: it is QUEUED again,
    /// behind them, and goes on from its checkpoints in a later slot.
    #[error("the run's slice ended: it goes back to the queue behind the runs that waited")]
    Yielded,
    /// A slot taken fairly found the run not free to take: another worker
    /// holds it, it ended, or its tenant is at its cap.
    #[error("the run is not free to take now")]
    Busy,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// How a run ended, as stored.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Cancelled between pages.
    Cancelled,
    /// The daily limit: stop cleanly, resume from the checkpoint next time.
    DailyLimit(String),
    /// A CRM error that ends the run.
    Crm(CrmError),
    /// The database failed.
    Db(DbErr),
    /// The process is shutting down: give the run back to the queue.
    HandBack,
    /// The run's slice is over and other runs wait: back to the queue.
    Yield,
    /// Another worker took the run over (this one was presumed dead).
    LeaseLost,
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

impl From<CrmError> for Stop {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::DailyLimit(m) => Self::DailyLimit(m),
            other => Self::Crm(other),
        }
    }
}

/// Contacts a run's import leg decided, which its export leg skips. A
/// FULL run of a million contacts holds a million: an id crmsync made (a
/// ULID in its canonical form) is kept as its 16 bytes, any other as text.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    ulids: HashSet<u128>,
    others: HashSet<String>,
}

impl Touched {
    fn ulid(id: &str) -> Option<u128> {
        ulid::Ulid::from_string(id)
            .ok()
            .filter(|u| u.to_string() == id)
            .map(|u| u.0)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        match Self::ulid(id) {
            Some(u) => self.ulids.contains(&u),
            None => self.others.contains(id),
        }
    }
}

impl Extend<String> for Touched {
    fn extend<I: IntoIterator<Item = String>>(&mut self, ids: I) {
        for id in ids {
            match Self::ulid(&id) {
                Some(u) => {
                    self.ulids.insert(u);
                }
                None => {
                    self.others.insert(id);
                }
            }
        }
    }
}

/// Everything a leg needs.
pub(crate) struct Run<'a> {
    pub ctx: &'a WorkerContext,
    pub tenant: TenantId,
    pub run: sync_run::Model,
    pub connector: connector::Model,
    /// What the connector's CRM is (its modules, names, conversion).
    pub kit: &'static Description,
    pub settings: ConnectorSettings,
    pub client: Arc<dyn CrmClient>,
    pub mappings: Vec<Mapping>,
    /// The sync rules (S13): the connector's, or a dry run's proposed ones.
    pub sync_rules: Vec<crate::sync_rules::SyncRule>,
    /// The CRM's fields by module, then by api name.
    pub fields: HashMap<CrmModule, HashMap<String, CrmField>>,
    /// E-mails of the CRM's active users, read when a page first has a
    /// contact with an owner (a run that never needs them never asks).
    pub owners: Option<HashSet<String>>,
    pub legs: Legs,
    pub processed: i64,
    /// Contacts the import leg decided (both ways): the export leg skips them.
    pub touched: Touched,
    /// The CRM's modification time of the import leg's first write-back in
    /// the module being listed: records modified since are left for the next run.
    pub written_from: Option<chrono::DateTime<Utc>>,
    /// The CRM's modification time of the run's first write to it, in any
    /// slice (saved when the slice hands the run back, cleared while it
    /// works): a later slice's listing stops at records modified since, so
    /// that a run handed back during its export does not read its own
    /// writes back.
    pub crm_written_from: Option<chrono::DateTime<Utc>>,
    /// The CRM contacts this run's lead conversions made (S10): a later
    /// module's listing stops before them rather than read them back.
    pub converted: HashSet<String>,
    /// For a run of some records only (a retry run, a FORM run): the CRM
    /// records and contacts it takes. Such a run reads from the start and
    /// saves no checkpoint (it did not read everything up to one).
    pub retry: Option<(HashSet<String>, HashSet<String>)>,
    /// For a CRM_EVENT run: the records its notifications named, read by id
    /// instead of listing changes (its `retry` holds their ids, so it saves
    /// no checkpoint and has no export leg).
    pub notified: Option<Notified>,
    /// This worker's lease on the run.
    pub lease: lease::Lease,
    /// A dry run's writes, kept in memory for its own later reads.
    pub shadow: Option<shadow::Shadow>,
    /// The ids the import leg listed, in a run that reconciles its links
    /// with them (S12).
    pub listed: deletions::Listed,
    /// When this slice began (issue 26).
    pub slice_started: std::time::Instant,
    /// When the run next asks whether other runs wait for its slot.
    pub next_wait_check: std::time::Instant,
    /// Records processed when this slice began: a slice processes some
    /// before it ends, so that a run always moves on, however short slices are.
    pub slice_processed: i64,
    /// False while the run could not go on from where it stands if it were
    /// handed back now: an import listing resumed at a modification time
    /// that its checkpoint has not yet passed (records sharing one time are
    /// read again from it, and a slice ended there would move nothing on).
    pub resumable: bool,
    /// True once an import listing went on from a checkpoint this run saved
    /// in an earlier slice without what the earlier slices listed (a worker
    /// died since its last hand-back): its listing is not whole, so it finds
    /// no deletion by reconciliation (S12).
    pub resumed: bool,
}

impl Run<'_> {
    /// True for dry runs: compute and record, write nothing.
    pub fn dry(&self) -> bool {
        self.run.mode == SyncMode::DryRun
    }

    /// True when checkpoints are ignored: FULL runs, retries, and dry runs
    /// previewing proposed mappings or rules (such a change calls for a full
    /// resync, so its preview reads everything). Any other dry run reads from
    /// the checkpoints as the next incremental run would, and saves none.
    pub fn ignores_checkpoints(&self) -> bool {
        match self.run.mode {
            SyncMode::Full => true,
            SyncMode::DryRun => {
                self.run.mappings.is_some() || self.run.rules.is_some() || self.retry.is_some()
            }
            SyncMode::Incremental => self.retry.is_some(),
        }
    }

    /// True when the run compares its links with everything the CRM lists
    /// to find deletions (S12): a run that reads everything, not one of
    /// some records only.
    pub fn reconciles(&self) -> bool {
        self.ignores_checkpoints() && self.retry.is_none() && !self.resumed
    }

    /// Where a leg starts from when this run saved `checkpoint` itself in an
    /// earlier slice (a run handed back and taken again, FULL runs too): on
    /// from there, with no overlap.
    pub fn own_checkpoint(
        &self,
        checkpoint: Option<&crmsync_entity::models::sync_checkpoint::Model>,
    ) -> Option<(chrono::DateTime<Utc>, String)> {
        let own = checkpoint.filter(|c| c.run_id.as_deref() == Some(self.run.id.as_str()))?;
        Some((own.at, own.record_id.clone()))
    }

    /// Notes the CRM's modification times of writes the CRM took.
    pub fn wrote(&mut self, first: Option<chrono::DateTime<Utc>>) {
        self.crm_written_from = self.crm_written_from.into_iter().chain(first).min();
    }

    /// Where a slice's listing stops: from the second slice on, at the
    /// run's first write to the CRM (its own writes, which the next run
    /// reads, as it would after a run that went through in one slice).
    fn listing_stops_at(&self) -> Option<chrono::DateTime<Utc>> {
        self.crm_written_from.filter(|_| self.run.slices > 1)
    }

    /// True for runs that give their slot back when their slice is over:
    /// those that go on from checkpoints (not a dry run, a run of some
    /// records only, or a run of the FORM lane, which keep their slot to
    /// their end).
    fn sliced(&self) -> bool {
        self.ctx.options.slots.slice.is_some()
            && !self.dry()
            && self.saves_checkpoints()
            && !crate::slots::Lane::of(self.run.trigger).is_form()
    }

    /// True when the slice is over and another run waits for the slot.
    async fn slice_over(&mut self) -> Result<bool, DbErr> {
        let Some(slice) = self.ctx.options.slots.slice.filter(|_| self.sliced()) else {
            return Ok(false);
        };
        let now = std::time::Instant::now();
        if now < self.slice_started + slice
            || now < self.next_wait_check
            || self.processed <= self.slice_processed
            || !self.resumable
        {
            return Ok(false);
        }
        // Asked at most every quarter of a slice (a second at most).
        self.next_wait_check = now + (slice / 4).min(std::time::Duration::from_secs(1));
        crate::slots::others_wait(&self.ctx.db, &self.run, &self.ctx.options.slots).await
    }

    /// True when the run's pages move the checkpoints on: not in a run of
    /// some records only, which skips everything else it reads.
    pub fn saves_checkpoints(&self) -> bool {
        self.retry.is_none()
    }

    /// Reads the CRM's active users once, for owner matching (S9).
    pub async fn load_owners(&mut self) -> Result<(), Stop> {
        if self.owners.is_none() {
            let users = self.client.users().await?;
            self.owners = Some(
                users
                    .into_iter()
                    .filter(|u| u.active)
                    .map(|u| u.email)
                    .collect(),
            );
        }
        Ok(())
    }

    /// True once the run must stop without asking the database: the process
    /// is shutting down, or another worker took the run over. A leg starts
    /// no further CRM writes then.
    pub fn stopping(&self) -> bool {
        self.lease.lost() || self.ctx.options.draining.load(Ordering::Relaxed)
    }

    /// Saves counters and phase, publishes an event, and stops if cancelled,
    /// shutting down, or taken over.
    pub async fn progress(&mut self, phase: &str) -> Result<(), Stop> {
        if self.lease.lost() {
            return Err(Stop::LeaseLost);
        }
        let db = &self.ctx.db;
        let current = sync_run::Entity::find_for_tenant(&self.tenant, &self.run.id)
            .one(db)
            .await?
            .ok_or(Stop::Db(DbErr::RecordNotFound("sync run".into())))?;
        // Taken over, or ended elsewhere, since the last renewal.
        if current.status != SyncRunStatus::Running
            || current.lease_holder.as_deref() != Some(self.lease.holder())
        {
            return Err(Stop::LeaseLost);
        }
        let mut am = sync_run::ActiveModel::from(current.clone());
        am.phase = Set(phase.to_owned());
        am.processed = Set(self.processed);
        // Kept only when the slice hands the run back whole (every page
        // whose writes started recorded): a worker that dies leaves it
        // unset, and the next slice lists everything again, reading back
        // (and so linking) what the dead worker wrote unrecorded.
        am.crm_written_from = Set(None);
        set_legs(&mut am, &self.legs);
        self.run = am.update(db).await?;
        self.ctx.bus.publish(SyncEvent::of_run(&self.run));
        if current.cancel_requested {
            return Err(Stop::Cancelled);
        }
        if self.ctx.options.draining.load(Ordering::Relaxed) {
            return Err(Stop::HandBack);
        }
        if self.slice_over().await? {
            return Err(Stop::Yield);
        }
        Ok(())
    }
}

fn set_legs(am: &mut sync_run::ActiveModel, legs: &Legs) {
    am.to_crm_created = Set(legs.to_crm.created);
    am.to_crm_updated = Set(legs.to_crm.updated);
    am.to_crm_unchanged = Set(legs.to_crm.unchanged);
    am.to_crm_rejected = Set(legs.to_crm.rejected);
    am.to_crm_conflicts = Set(legs.to_crm.conflicts);
    am.to_crm_deleted = Set(legs.to_crm.deleted);
    am.from_crm_created = Set(legs.from_crm.created);
    am.from_crm_updated = Set(legs.from_crm.updated);
    am.from_crm_unchanged = Set(legs.from_crm.unchanged);
    am.from_crm_rejected = Set(legs.from_crm.rejected);
    am.from_crm_conflicts = Set(legs.from_crm.conflicts);
    am.from_crm_deleted = Set(legs.from_crm.deleted);
}

/// Runs one job's sync to its end and returns the final run row. A run already
/// final is returned as it is (a redelivered job does nothing). A run whose
/// slice ends while other runs wait goes back to the queue
/// ([`SyncError::Yielded`]).
pub async fn run_sync(ctx: &WorkerContext, job: &SyncJob) -> Result<sync_run::Model, SyncError> {
    run_slice(ctx, job, Take::Wait).await
}

/// Runs a slice of the job's run: to its end, or until its slice ends while
/// other runs wait ([`SyncError::Yielded`]), the worker shuts down
/// ([`SyncError::HandedBack`]) or another worker takes it over. `take` says
/// whether to wait for a live lease of another worker ([`Take::Wait`]) or
/// to give up at once ([`SyncError::Busy`]), as a slot handed out fairly
/// does.
pub async fn run_slice(
    ctx: &WorkerContext,
    job: &SyncJob,
    take: Take,
) -> Result<sync_run::Model, SyncError> {
    let db = &ctx.db;
    let tenant = TenantId::new(job.tenant_id.clone());
    let run = sync_run::Entity::find_for_tenant(&tenant, &job.run_id)
        .one(db)
        .await?
        .filter(|r| r.connector_id == job.connector_id)
        .ok_or(SyncError::NotFound)?;
    if run.status.is_final() {
        return match take {
            Take::Wait => Ok(run),
            Take::Fair { .. } => Err(SyncError::Busy),
        };
    }
    let connector = connector::Entity::find_for_tenant(&tenant, &run.connector_id)
        .one(db)
        .await?
        .ok_or(SyncError::NotFound)?;
    if run.cancel_requested {
        let end = ending::ending(ending::End::Cancelled);
        return finish(ctx, run, &Legs::default(), end, None).await;
    }

    // Only a run still going starts (a cancel may have won the race), and only
    // here: a RUNNING run is a job delivered again after its worker died or
    // handed it back; it goes on from its checkpoints once that worker's lease
    // has lapsed or been released.
    let options = &ctx.options;
    let lease = match lease::claim(
        db,
        &tenant,
        &run.id,
        &options.holder,
        options.lease,
        &options.draining,
        take,
    )
    .await?
    {
        lease::Claim::Held(lease) => lease,
        lease::Claim::Ended => return current_row(db, &tenant, &run.id).await,
        lease::Claim::Draining => return Err(SyncError::HandedBack),
        lease::Claim::Busy => return Err(SyncError::Busy),
    };
    let run = sync_run::Entity::find_for_tenant(&tenant, &run.id)
        .one(db)
        .await?
        .ok_or(SyncError::NotFound)?;
    // A run another worker started (even one seen QUEUED before waiting for
    // its lease) goes on with that worker's committed counts.
    let (legs, processed) = counts_so_far(db, &tenant, &run).await?;
    if processed > 0 {
        tracing::info!(run = %run.id, processed, "taking over a run whose worker stopped");
    }
    ctx.bus.publish(SyncEvent::of_run(&run));
    ctx.metrics.run_started(&run);

    let prepared = match prepare(ctx, &tenant, &run, &connector).await {
        Ok(p) => p,
        Err(stop) => {
            let stopped = Stopped {
                crm_written_from: run.crm_written_from,
                run,
                connector: &connector,
                legs: &legs,
                lease: &lease,
            };
            return conclude(ctx, stopped, Err(stop), false).await;
        }
    };
    let (kit, client, settings, (mappings, sync_rules), fields, (retry, notified)) = prepared;
    let shadow = (run.mode == SyncMode::DryRun).then(shadow::Shadow::default);
    let crm_written_from = run.crm_written_from;
    let mut state = Run {
        ctx,
        tenant,
        run,
        connector,
        kit,
        settings,
        client,
        mappings,
        sync_rules,
        fields,
        owners: None,
        legs,
        processed,
        touched: Touched::default(),
        written_from: None,
        crm_written_from,
        converted: HashSet::new(),
        retry,
        notified,
        lease,
        shadow,
        listed: deletions::Listed::default(),
        slice_started: std::time::Instant::now(),
        next_wait_check: std::time::Instant::now(),
        slice_processed: processed,
        resumable: true,
        resumed: false,
    };

    let outcome = async {
        let feeds = deletions::read_feeds(&state).await?;
        import::import(&mut state).await?;
        deletions::apply(&mut state, feeds).await?;
        legs::export(&mut state).await
    }
    .await;
    let rejected = state.legs.to_crm.rejected + state.legs.from_crm.rejected;
    // Only a FULL run that went through answers the recommendation (never a
    // dry run, even one previewing the new mappings).
    if outcome.is_ok() && state.run.mode == SyncMode::Full {
        let mut am = connector::ActiveModel::from(state.connector.clone());
        am.full_resync_recommended = Set(false);
        am.update(db).await?;
    }
    let stopped = Stopped {
        crm_written_from: state.crm_written_from,
        run: state.run.clone(),
        connector: &state.connector,
        legs: &state.legs,
        lease: &state.lease,
    };
    conclude(ctx, stopped, outcome.map(|()| rejected), true).await
}

/// A run whose legs stopped, with what its end needs.
struct Stopped<'a> {
    run: sync_run::Model,
    /// What a run handed back keeps of where its writes began.
    crm_written_from: Option<chrono::DateTime<Utc>>,
    connector: &'a connector::Model,
    legs: &'a Legs,
    lease: &'a lease::Lease,
}

/// Carries out the [`ending::verdict`] on a run that stopped with `outcome`
/// (`Ok` with the contacts rejected on the way): stores its end, gives it
/// back to the queue, or leaves it to the worker that holds it.
async fn conclude(
    ctx: &WorkerContext,
    stopped: Stopped<'_>,
    outcome: Result<i64, Stop>,
    pages_started: bool,
) -> Result<sync_run::Model, SyncError> {
    let Stopped {
        run,
        crm_written_from,
        connector,
        legs,
        lease,
    } = stopped;
    let db = &ctx.db;
    let tenant = TenantId::new(run.tenant_id.clone());
    match (ending::verdict(&outcome, pages_started), outcome) {
        (ending::Verdict::End(end), outcome) => {
            if let Err(Stop::Db(e)) = &outcome {
                tracing::error!(run = %run.id, error = %e, "sync run failed on the database");
            }
            if end.needs_reauth {
                let reason = end.message.as_deref().unwrap_or_default();
                needs_reauth(ctx, &run, connector, reason).await?;
            }
            finish(ctx, run, legs, end, Some(lease.holder())).await
        }
        (ending::Verdict::HandBack, _) => {
            lease::release(db, &tenant, &run.id, lease, crm_written_from).await?;
            if let Some(back) = sync_run::Entity::find_for_tenant(&tenant, &run.id)
                .one(db)
                .await?
            {
                tracing::info!(run = %back.id, processed = back.processed, "shutting down: the run is handed back for another worker");
                ctx.bus.publish(SyncEvent::of_run(&back));
            }
            Err(SyncError::HandedBack)
        }
        (ending::Verdict::Yield, _) => {
            if !lease::requeue(db, &tenant, &run.id, lease, crm_written_from).await? {
                return current_row(db, &tenant, &run.id).await;
            }
            if let Some(back) = sync_run::Entity::find_for_tenant(&tenant, &run.id)
                .one(db)
                .await?
            {
                tracing::info!(run = %back.id, slices = back.slices, "slice over: the run goes back to the queue");
                ctx.bus.publish(SyncEvent::of_run(&back));
            }
            Err(SyncError::Yielded)
        }
        (ending::Verdict::LeaveAsStored, _) => current_row(db, &tenant, &run.id).await,
        (ending::Verdict::Retry, Err(Stop::Db(e))) => Err(e.into()),
        (ending::Verdict::Retry, _) => Err(SyncError::Db(DbErr::Custom(
            "a run is retried only after a database failure".into(),
        ))),
    }
}

type Prepared = (
    &'static Description,
    Arc<dyn CrmClient>,
    ConnectorSettings,
    (Vec<Mapping>, Vec<crate::sync_rules::SyncRule>),
    HashMap<CrmModule, HashMap<String, CrmField>>,
    (Option<(HashSet<String>, HashSet<String>)>, Option<Notified>),
);

async fn prepare(
    ctx: &WorkerContext,
    tenant: &TenantId,
    run: &sync_run::Model,
    connector: &connector::Model,
) -> Result<Prepared, Stop> {
    let fail = |m: String| Stop::Crm(CrmError::Protocol(m));
    let settings: ConnectorSettings = serde_json::from_value(connector.settings.clone())
        .map_err(|e| fail(format!("the connector's settings are unreadable: {e}")))?;
    let kit = crate::crm::registry::kit(connector.kind)
        .ok_or_else(|| fail(crate::crm::registry::unavailable(connector.kind)))?;
    let described = kit.describe();
    let client = match &ctx.options.crm_client {
        Some(client) => client.clone(),
        None => connector_client(ctx, tenant, connector, kit, &settings)?,
    };
    // A dry run previewing proposed mappings uses them instead of the
    // connector's (validated by the API as setFieldMappings validates).
    let mappings = match &run.mappings {
        Some(proposed) => Vec::<Mapping>::deserialize(proposed)
            .map_err(|e| fail(format!("the run's proposed mappings are unreadable: {e}")))?,
        None => field_mapping::Entity::for_tenant(tenant)
            .filter(field_mapping::Column::ConnectorId.eq(&connector.id))
            .order_by_asc(field_mapping::Column::Position)
            .all(&ctx.db)
            .await?
            .into_iter()
            .map(|m| Mapping {
                platform_field: m.platform_field,
                crm_field: m.crm_field,
                direction: m.direction,
                enabled: m.enabled,
                locked: m.locked,
            })
            .collect(),
    };
    // Rules likewise: a dry run's proposed ones, else the connector's.
    let sync_rules = match &run.rules {
        Some(proposed) => proposed
            .as_array()
            .into_iter()
            .flatten()
            .map(crate::sync_rules::parse)
            .collect::<Result<_, _>>()?,
        None => crate::sync_rules::load(&ctx.db, tenant, &connector.id).await?,
    };
    let mut modules = vec![described.export_module()];
    modules.extend(settings.import_modules.iter().copied());
    modules.dedup();
    let mut fields = HashMap::new();
    for module in modules {
        if let std::collections::hash_map::Entry::Vacant(slot) = fields.entry(module) {
            slot.insert(
                client
                    .fields(module)
                    .await?
                    .into_iter()
                    .map(|f| (f.api_name.clone(), f))
                    .collect(),
            );
        }
    }
    // A retry run takes its run's rejected records and contacts; a FORM run,
    // the contacts submitted for its connector (and no CRM record); a
    // CRM_EVENT run, the records notified for it (and no contact).
    let mut notified = None;
    let retry = match (&run.retry_of, run.trigger) {
        (Some(of), _) => Some(store::rejected_of(&ctx.db, tenant, of).await?),
        (None, SyncTrigger::Form) => Some((
            HashSet::new(),
            store::take_pushes(&ctx.db, tenant, run).await?,
        )),
        (None, SyncTrigger::CrmEvent) => {
            let taken = store::take_notices(&ctx.db, tenant, run).await?;
            let ids = taken.ids();
            notified = Some(taken);
            Some((ids, HashSet::new()))
        }
        (None, _) => None,
    };
    Ok((
        described,
        client,
        settings,
        (mappings, sync_rules),
        fields,
        (retry, notified),
    ))
}

/// The client its credentials make for the connector's CRM.
fn connector_client(
    ctx: &WorkerContext,
    tenant: &TenantId,
    connector: &connector::Model,
    kit: &dyn crate::crm::CrmKit,
    settings: &ConnectorSettings,
) -> Result<Arc<dyn CrmClient>, Stop> {
    let fail = |m: String| Stop::Crm(CrmError::Protocol(m));
    let sealed = connector
        .credentials
        .as_deref()
        .ok_or_else(|| fail("the connector has no credentials: set them first".into()))?;
    let credentials = ctx
        .credentials_key
        .open(tenant.as_str(), &connector.id, sealed)
        .map_err(|e| fail(format!("{e}: enter the credentials again")))?;
    Ok(kit.client(
        &credentials,
        connector.base_url.as_deref(),
        ctx.http.clone(),
        &settings.client_options(kit.describe()),
        &ctx.metrics,
    )?)
}

/// Marks the connector NEEDS_REAUTH after the CRM refused its credentials
/// (C4); a dry run leaves its connector as it is (its run says why it failed).
async fn needs_reauth(
    ctx: &WorkerContext,
    run: &sync_run::Model,
    connector: &connector::Model,
    message: &str,
) -> Result<(), DbErr> {
    if run.mode == SyncMode::DryRun {
        return Ok(());
    }
    let mut am = connector::ActiveModel::from(connector.clone());
    am.status = Set(ConnectorStatus::NeedsReauth);
    am.status_message = Set(Some(format!(
        "{message}. Update the connector's credentials, then sync again."
    )));
    am.update(&ctx.db).await?;
    Ok(())
}

/// Stores the run's end with its notifications, releases its lease and
/// publishes it. With a lease (`holder`), nothing is written once another
/// worker has taken the run over.
async fn finish(
    ctx: &WorkerContext,
    run: sync_run::Model,
    legs: &Legs,
    end: ending::Ending,
    holder: Option<&str>,
) -> Result<sync_run::Model, SyncError> {
    let id = run.id.clone();
    let tenant = TenantId::new(run.tenant_id.clone());
    let mut am = sync_run::ActiveModel::from(run);
    am.status = Set(end.status);
    am.phase = Set("done".into());
    am.error = Set(end.message);
    am.finished_at = Set(Some(Utc::now()));
    am.lease_holder = Set(None);
    am.lease_expires_at = Set(None);
    set_legs(&mut am, legs);
    let mut update = sync_run::Entity::update(am).validate()?;
    if let Some(holder) = holder {
        // Still ours, and not ended meanwhile (cancelled or failed as abandoned).
        update = update
            .filter(sync_run::Column::LeaseHolder.eq(holder))
            .filter(sync_run::Column::Status.eq(SyncRunStatus::Running));
    } else {
        // Not ended meanwhile either: a run ends once, and is announced once.
        update = update.filter(
            sync_run::Column::Status.is_in([SyncRunStatus::Queued, SyncRunStatus::Running]),
        );
    }
    // The end and its notifications (R5) commit together.
    let txn = begin_write(&ctx.db).await?;
    match update.exec(&txn).await {
        Ok(run) => {
            let notified = crate::notify::run_ended(&txn, &tenant, &run.id).await?;
            deletions::forget_listed(&txn, &tenant, &run.id).await?;
            txn.commit().await?;
            if notified {
                crate::notify::wake();
            }
            ctx.bus.publish(SyncEvent::of_run(&run));
            ctx.metrics.run_finished(&run);
            Ok(run)
        }
        Err(DbErr::RecordNotUpdated) => {
            drop(txn);
            tracing::warn!(run = %id, "the run was taken over or ended elsewhere; leaving its end");
            current_row(&ctx.db, &tenant, &id).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The run as stored now (another worker's, once this one lost its lease).
async fn current_row(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<sync_run::Model, SyncError> {
    sync_run::Entity::find_for_tenant(tenant, id)
        .one(db)
        .await?
        .ok_or(SyncError::NotFound)
}

/// The counts a run starts from: none for a new run; for a run taken over or
/// handed back, those of the items its earlier slices committed with their
/// pages (the run row's counters may be a page behind, or ahead: the export
/// leg writes a page's progress just before its transaction), as it goes on
/// from the checkpoints those pages saved. A dry run saves no checkpoint: it
/// reads everything again from the start, so its earlier items go and its
/// counts start at zero.
async fn counts_so_far(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    run: &sync_run::Model,
) -> Result<(Legs, i64), DbErr> {
    if run.mode == SyncMode::DryRun {
        sync_item::Entity::delete_many()
            .filter(sync_item::Column::TenantId.eq(tenant.as_str()))
            .filter(sync_item::Column::RunId.eq(&run.id))
            .exec(db)
            .await?;
        return Ok((Legs::default(), 0));
    }
    let counts: Vec<(SyncDirection, ItemOutcome, i64)> = sync_item::Entity::for_tenant(tenant)
        .select_only()
        .column(sync_item::Column::Direction)
        .column(sync_item::Column::Outcome)
        .column_as(sync_item::Column::Id.count(), "n")
        .filter(sync_item::Column::RunId.eq(&run.id))
        .group_by(sync_item::Column::Direction)
        .group_by(sync_item::Column::Outcome)
        .into_tuple()
        .all(db)
        .await?;
    let mut legs = Legs::default();
    let mut processed = 0;
    for (direction, outcome, n) in counts {
        let leg = match direction {
            SyncDirection::ToCrm => &mut legs.to_crm,
            SyncDirection::FromCrm => &mut legs.from_crm,
        };
        *match outcome {
            ItemOutcome::Created => &mut leg.created,
            ItemOutcome::Updated => &mut leg.updated,
            ItemOutcome::Unchanged => &mut leg.unchanged,
            ItemOutcome::Rejected => &mut leg.rejected,
            ItemOutcome::Conflict => &mut leg.conflicts,
            ItemOutcome::Deleted => &mut leg.deleted,
        } += n;
        processed += n;
    }
    Ok((legs, processed))
}

#[cfg(test)]
mod tests {
    use super::Touched;

    #[test]
    fn touched_ids_are_found_as_written_whatever_their_form() {
        let made = crmsync_entity::new_id();
        let mut touched = Touched::default();
        touched.extend([made.clone(), "imported-7".to_owned()]);
        assert!(touched.contains(&made));
        assert!(touched.contains("imported-7"));
        // The same ULID in lower case is another id, as the database says.
        assert!(!touched.contains(&made.to_lowercase()));
        assert!(!touched.contains(&crmsync_entity::new_id()));
        assert!(!touched.contains("imported-8"));
    }
}
