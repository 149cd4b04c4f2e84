//! Fair slots (issue 26): how a worker's slots are shared between runs and
//! tenants, across every worker process.
//!
//! - A job on the queue is a token for one slot of a lane, not a claim on
//!   its own run: the worker that receives it takes the fairest run waiting
//!   in the database ([`fairest`]), by a conditional update of the run's
//!   lease (the run's lease stays the mutual exclusion). The job's own run
//!   is taken later by another token.
//! - Fairest: the tenant whose runs last took a slot longest ago (never
//!   first), then the run queued first; a tenant with as many runs holding
//!   slots of the lane as its cap ([`SlotSettings::tenant_cap`]) waits.
//! - A run that has worked for a slice ([`SlotSettings::slice`]) while other
//!   runs wait stops at its next page, checkpoint saved, and goes back to
//!   the queue (QUEUED, behind the runs that waited); a run alone is never
//!   stopped. Only runs that go on from checkpoints are sliced: a dry run,
//!   a FORM run and a retry run keep their slot to their end.
//! - FORM runs have a lane of their own (a second named queue with its own
//!   slots), so a form submission never waits behind large runs.
//!
//! **Invariant:** a run waiting for a slot has a token on the queue, or its
//! tenant has a run holding a slot that hands one on when its slice ends
//! ([`crate::worker`]). A token that finds nothing to take ends; surplus
//! tokens are harmless. Where the chain breaks (a worker dies holding a run
//! that took another run's token, so the token that comes back names a run
//! it does not wait for; or a job is lost with a Redis queue), the
//! scheduling process gives the stranded run a token ([`Stranded`]).

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use crmsync_entity::enums::{SyncRunStatus, SyncTrigger};
use crmsync_entity::models::{sync_run, tenant_slot};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, ExprTrait, QueryFilter, QueryOrder};

/// A run's slice when nothing else is configured.
pub const DEFAULT_SLICE: Duration = Duration::from_secs(30);
/// Slots of the FORM lane per worker process when nothing else is configured.
pub const DEFAULT_FORM_SLOTS: usize = 2;
/// Runs read per claim, oldest first: far more than slots ever free at once.
const LOOK_AHEAD: u64 = 500;
/// How long a run must have waited before a slice is ended for it: a run
/// just queued is normally taken by a free slot elsewhere within a poll.
const MAX_GRACE: Duration = Duration::from_secs(2);
/// How long after its lease lapsed a run nobody holds gets a token of its
/// own: the dead worker's job normally comes back with the lapse.
const LAPSED_GRACE: Duration = Duration::from_secs(5);
/// How long a QUEUED run waits, its tenant holding no slot of its lane,
/// before it gets another token (its own may be lost); also how often a
/// stranded run gets one.
const LOST_AFTER: Duration = Duration::from_secs(300);

/// The two kinds of slots: runs of a few named records have their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Every run but FORM and CRM_EVENT runs.
    Main,
    /// FORM runs (one contact or a few) and CRM_EVENT runs (the records a
    /// CRM notified): they never wait behind large runs, and keep their
    /// slot to their end.
    Form,
}

impl Lane {
    /// The lane a run of `trigger` waits in.
    pub fn of(trigger: SyncTrigger) -> Self {
        if sync_run::FORM_LANE.contains(&trigger) {
            Self::Form
        } else {
            Self::Main
        }
    }

    /// True for the FORM lane.
    pub fn is_form(self) -> bool {
        self == Self::Form
    }
}

/// How a worker shares its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSettings {
    /// How long a run works before it gives its slot back when other runs
    /// wait ([`DEFAULT_SLICE`]); `None`: runs keep their slot to their end.
    pub slice: Option<Duration>,
    /// The most runs of one tenant holding slots of the main lane at once,
    /// across processes; `None`: half the worker's slots, at least one.
    pub tenant_cap: Option<usize>,
    /// Slots of the FORM lane per worker process ([`DEFAULT_FORM_SLOTS`]).
    pub form_slots: usize,
}

impl Default for SlotSettings {
    fn default() -> Self {
        Self {
            slice: Some(DEFAULT_SLICE),
            tenant_cap: None,
            form_slots: DEFAULT_FORM_SLOTS,
        }
    }
}

impl SlotSettings {
    /// The per-tenant cap on a worker of `slots` main-lane slots.
    pub fn cap_for(&self, slots: usize) -> usize {
        self.tenant_cap.unwrap_or(slots / 2).max(1)
    }
}

/// Runs waiting for a slot of `lane`, in the order slots go to them, with
/// whether their tenant is at its cap (`cap`; `freeing`: a tenant one of
/// whose runs is about to give its slot back, counted one run lighter).
async fn in_order(
    db: &impl ConnectionTrait,
    lane: Lane,
    cap: Option<usize>,
    freeing: Option<&str>,
) -> Result<Vec<(sync_run::Model, bool)>, DbErr> {
    let now = Utc::now();
    let waiting = sync_run::waiting_for_slot(db, lane.is_form(), now, LOOK_AHEAD).await?;
    let mut tenants: Vec<String> = waiting.iter().map(|r| r.tenant_id.clone()).collect();
    tenants.sort();
    tenants.dedup();
    let holding: HashMap<String, u64> = match cap {
        Some(_) => sync_run::holding_slots(db, &tenants, lane.is_form(), now).await?,
        None => HashMap::new(),
    };
    let last = tenant_slot::last_slots(db, &tenants).await?;
    let mut ordered: Vec<(sync_run::Model, bool)> = waiting
        .into_iter()
        .map(|run| {
            let held = holding.get(&run.tenant_id).copied().unwrap_or(0);
            let held = held.saturating_sub(u64::from(freeing == Some(run.tenant_id.as_str())));
            let capped = cap.is_some_and(|cap| held >= cap as u64);
            (run, capped)
        })
        .collect();
    // Stable: runs of one tenant stay oldest first.
    ordered.sort_by_key(|(run, capped)| (*capped, last.get(&run.tenant_id).copied()));
    Ok(ordered)
}

/// Runs no token may reach, found by the scheduling process every tick
/// (one process at a time): a run waiting for a slot whose tenant holds no
/// slot of its lane (so no hand-on comes for it), and whose lease lapsed
/// [`LAPSED_GRACE`] ago (its worker died) or which has waited
/// [`LOST_AFTER`]. Each gets a token at most once per [`LOST_AFTER`].
#[derive(Debug, Default)]
pub struct Stranded {
    /// When each stranded run was last given a token.
    tokened: HashMap<String, chrono::DateTime<Utc>>,
}

impl Stranded {
    /// The runs to give a token now, with their lane.
    pub async fn sweep(
        &mut self,
        db: &impl ConnectionTrait,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<(Lane, sync_run::Model)>, DbErr> {
        let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        let mut due = Vec::new();
        let mut stranded = HashMap::new();
        for lane in [Lane::Main, Lane::Form] {
            // A cap of one: "capped" is a tenant holding a slot of the lane,
            // which hands one on when its slice ends.
            for (run, holds) in in_order(db, lane, Some(1), None).await? {
                let lapsed = run.lease_holder.is_some()
                    && run.lease_expires_at.is_some_and(|t| t < ago(LAPSED_GRACE));
                let long = run.queued_at < ago(LOST_AFTER);
                if holds || !(lapsed || long) {
                    continue;
                }
                let at = match self.tokened.get(&run.id) {
                    Some(at) if *at >= ago(LOST_AFTER) => *at,
                    _ => {
                        due.push((lane, run.clone()));
                        now
                    }
                };
                stranded.insert(run.id, at);
            }
        }
        self.tokened = stranded;
        Ok(due)
    }
}

/// The runs a free slot of `lane` may take, fairest first: their tenant is
/// under `cap`.
pub async fn fairest(
    db: &impl ConnectionTrait,
    lane: Lane,
    cap: Option<usize>,
) -> Result<Vec<sync_run::Model>, DbErr> {
    Ok(in_order(db, lane, cap, None)
        .await?
        .into_iter()
        .filter(|(_, capped)| !capped)
        .map(|(run, _)| run)
        .collect())
}

/// True when a run other than `run` waits for a slot of its lane and would
/// take the one `run` gives back (its tenant under the cap once `run` has
/// gone), having waited a little already.
pub(crate) async fn others_wait(
    db: &impl ConnectionTrait,
    run: &sync_run::Model,
    settings: &SlotSettings,
) -> Result<bool, DbErr> {
    let grace = settings.slice.unwrap_or_default().min(MAX_GRACE);
    let waited_since = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let lane = Lane::of(run.trigger);
    let cap = settings.tenant_cap.filter(|_| lane == Lane::Main);
    Ok(in_order(db, lane, cap, Some(&run.tenant_id))
        .await?
        .into_iter()
        .any(|(other, capped)| !capped && other.id != run.id && other.queued_at <= waited_since))
}

/// A run of `tenant` waiting in `lane`, if any: the one a token is handed
/// on for when one of the tenant's runs gives its slot back.
pub(crate) async fn waiting_of(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    lane: Lane,
) -> Result<Option<sync_run::Model>, DbErr> {
    let now = Utc::now();
    sync_run::Entity::for_tenant(tenant)
        .filter(sync_run::Column::Status.is_in([SyncRunStatus::Queued, SyncRunStatus::Running]))
        .filter(sync_run::Column::CancelRequested.eq(false))
        .filter(
            sync_run::Column::LeaseHolder
                .is_null()
                .or(sync_run::Column::LeaseExpiresAt.lt(now)),
        )
        .filter(sync_run::in_lane(lane.is_form()))
        .order_by_asc(sync_run::Column::QueuedAt)
        .one(db)
        .await
}

/// Where the connector's QUEUED run stands in its lane's queue (1: the next
/// slot is its), or `None` when it has no run waiting. A run whose tenant
/// is at its cap counts behind every run that is not.
pub async fn queue_position(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    cap: Option<usize>,
) -> Result<Option<u64>, DbErr> {
    let Some(queued) = sync_run::Entity::for_tenant(tenant)
        .filter(sync_run::Column::ConnectorId.eq(connector_id))
        .filter(sync_run::Column::Status.eq(SyncRunStatus::Queued))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let lane = Lane::of(queued.trigger);
    let cap = cap.filter(|_| lane == Lane::Main);
    let ordered = in_order(db, lane, cap, None).await?;
    let position = ordered
        .iter()
        .position(|(run, _)| run.id == queued.id)
        .unwrap_or(ordered.len());
    Ok(Some(position as u64 + 1))
}
