//! Sync runs (R1) with their two legs' counts as columns, so a page of runs with
//! legs is one query.

use sea_orm::QuerySelect;
use sea_orm::entity::prelude::*;

use crate::enums::{SyncMode, SyncRunStatus, SyncTrigger};

/// A sync run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector.
    pub connector_id: String,
    /// What started it.
    pub trigger: SyncTrigger,
    /// Incremental, full or dry run.
    pub mode: SyncMode,
    /// Where it is.
    pub status: SyncRunStatus,
    /// Why it failed or was partial, in words.
    pub error: Option<String>,
    /// The job-queue task id we generated for it.
    pub task_id: String,
    /// What it is doing now (`queued`, `import`, `export`, `done`).
    pub phase: String,
    /// Records processed so far.
    pub processed: i64,
    /// Set by `cancelSync`; the worker stops at the next page.
    pub cancel_requested: bool,
    /// The run whose rejected contacts this run retries.
    pub retry_of: Option<String>,
    /// When it was queued.
    pub queued_at: DateTimeUtc,
    /// When a worker started it.
    pub started_at: Option<DateTimeUtc>,
    /// When it ended.
    pub finished_at: Option<DateTimeUtc>,
    /// TO_CRM leg: created.
    pub to_crm_created: i64,
    /// TO_CRM leg: updated.
    pub to_crm_updated: i64,
    /// TO_CRM leg: unchanged.
    pub to_crm_unchanged: i64,
    /// TO_CRM leg: rejected.
    pub to_crm_rejected: i64,
    /// TO_CRM leg: conflicts.
    pub to_crm_conflicts: i64,
    /// TO_CRM leg: deleted (always 0: nothing is ever deleted in a CRM).
    pub to_crm_deleted: i64,
    /// FROM_CRM leg: created.
    pub from_crm_created: i64,
    /// FROM_CRM leg: updated.
    pub from_crm_updated: i64,
    /// FROM_CRM leg: unchanged.
    pub from_crm_unchanged: i64,
    /// FROM_CRM leg: rejected.
    pub from_crm_rejected: i64,
    /// FROM_CRM leg: conflicts.
    pub from_crm_conflicts: i64,
    /// FROM_CRM leg: CRM records found deleted (their links removed).
    pub from_crm_deleted: i64,
    /// The worker executing the run (its lease), while it runs.
    pub lease_holder: Option<String>,
    /// When the holder's lease lapses unless renewed; past it, another worker
    /// may take the run over.
    pub lease_expires_at: Option<DateTimeUtc>,
    /// A dry run's proposed mappings (a JSON list), used instead of the
    /// connector's; null when the run uses the connector's own.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub mappings: Option<Json>,
    /// A dry run's proposed sync rules (a JSON list), used instead of the
    /// connector's; null when the run uses the connector's own.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub rules: Option<Json>,
    /// When the run started reading its CRM's deletions, once it has read
    /// them all (S12); the next run reads them from there.
    pub deletions_read_at: Option<DateTimeUtc>,
    /// When the pruner deleted the run's items past the tenant's retention
    /// (its summary and first rejected items stay); null while all are kept.
    pub items_pruned_at: Option<DateTimeUtc>,
    /// Set when the pruner kept every rejected item because the run was its
    /// connector's latest: once a newer run ends, they are pruned too.
    pub all_rejected_kept: bool,
    /// How many times a worker took the run: 1 for a run that went from
    /// start to end in one slot, more for one handed back (a slice ended
    /// while other runs waited, a worker shut down or died) and taken again.
    pub slices: i32,
    /// The CRM's modification time of the run's first write to it (any
    /// leg), once it wrote: a slice that goes on listing stops at records
    /// modified since (the run's own writes, left for the next run).
    pub crm_written_from: Option<DateTimeUtc>,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// A new QUEUED run with zero counts, not yet saved.
    pub fn queued(
        tenant_id: &str,
        connector_id: &str,
        trigger: SyncTrigger,
        mode: SyncMode,
        task_id: String,
        retry_of: Option<String>,
    ) -> Self {
        Self {
            id: crate::new_id(),
            tenant_id: tenant_id.to_owned(),
            connector_id: connector_id.to_owned(),
            trigger,
            mode,
            status: SyncRunStatus::Queued,
            error: None,
            task_id,
            phase: "queued".into(),
            processed: 0,
            cancel_requested: false,
            retry_of,
            queued_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            to_crm_created: 0,
            to_crm_updated: 0,
            to_crm_unchanged: 0,
            to_crm_rejected: 0,
            to_crm_conflicts: 0,
            to_crm_deleted: 0,
            from_crm_created: 0,
            from_crm_updated: 0,
            from_crm_unchanged: 0,
            from_crm_rejected: 0,
            from_crm_conflicts: 0,
            from_crm_deleted: 0,
            lease_holder: None,
            lease_expires_at: None,
            mappings: None,
            rules: None,
            deletions_read_at: None,
            crm_written_from: None,
            items_pruned_at: None,
            all_rejected_kept: false,
            slices: 0,
        }
    }
}

super::tenant_scoped!(Entity, Column);

/// Runs by status across all tenants, counts only: for the operators' metrics,
/// which every process reads from here so that they all report the same truth.
/// Statuses with no run are absent.
pub async fn count_by_status(
    db: &impl ConnectionTrait,
) -> Result<Vec<(SyncRunStatus, u64)>, DbErr> {
    let rows: Vec<(String, i64)> = Entity::find()
        .select_only()
        .column(Column::Status)
        .column_as(Column::Id.count(), "n")
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(status, n)| Some((SyncRunStatus::parse(&status)?, n.max(0) as u64)))
        .collect())
}

/// The triggers of the runs the FORM slot lane carries: runs of a few named
/// records (form submissions, records a CRM notified), which never wait
/// behind large runs. Every other run is in the main lane.
pub const FORM_LANE: [SyncTrigger; 2] = [SyncTrigger::Form, SyncTrigger::CrmEvent];

/// Which runs a slot lane carries (see [`FORM_LANE`]).
pub fn in_lane(form_lane: bool) -> sea_orm::sea_query::SimpleExpr {
    if form_lane {
        Column::Trigger.is_in(FORM_LANE)
    } else {
        Column::Trigger.is_not_in(FORM_LANE)
    }
}

/// Runs waiting for a slot in a lane, across all tenants, oldest first (at
/// most `limit`): QUEUED runs, and RUNNING runs nobody holds (handed back at
/// shutdown, or whose worker died and whose lease lapsed), not cancelled.
/// Cross-tenant by nature, like the queue: the worker that takes a slot
/// picks the fairest of them, then reads its run through its tenant.
pub async fn waiting_for_slot(
    db: &impl ConnectionTrait,
    form_lane: bool,
    now: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    use sea_orm::{ExprTrait, QueryOrder};
    Entity::find()
        .filter(Column::Status.is_in([SyncRunStatus::Queued, SyncRunStatus::Running]))
        .filter(Column::CancelRequested.eq(false))
        .filter(
            Column::LeaseHolder
                .is_null()
                .or(Column::LeaseExpiresAt.lt(now)),
        )
        .filter(in_lane(form_lane))
        .order_by_asc(Column::QueuedAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// The RUNNING runs a worker holds a lease on (`{worker}/{execution}`), across all
/// tenants: what its shutdown waits for, said in its log. Cross-tenant by
/// nature, like the queue.
pub async fn held_by(db: &impl ConnectionTrait, worker: &str) -> Result<Vec<Model>, DbErr> {
    use sea_orm::QueryOrder;
    // Compared here, not with LIKE, where `_` in a host name is a wildcard.
    let prefix = format!("{worker}/");
    let held = Entity::find()
        .filter(Column::Status.eq(SyncRunStatus::Running))
        .filter(Column::LeaseHolder.is_not_null())
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    Ok(held
        .into_iter()
        .filter(|r| {
            r.lease_holder
                .as_deref()
                .is_some_and(|h| h.starts_with(&prefix))
        })
        .collect())
}

/// Runs holding a slot of a lane now (RUNNING under a live lease), by
/// tenant, for the tenants named: what the per-tenant cap counts, across
/// every worker process.
pub async fn holding_slots(
    db: &impl ConnectionTrait,
    tenants: &[String],
    form_lane: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<std::collections::HashMap<String, u64>, DbErr> {
    if tenants.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, i64)> = Entity::find()
        .select_only()
        .column(Column::TenantId)
        .column_as(Column::Id.count(), "n")
        .filter(Column::TenantId.is_in(tenants.iter().cloned()))
        .filter(Column::Status.eq(SyncRunStatus::Running))
        .filter(Column::LeaseHolder.is_not_null())
        .filter(Column::LeaseExpiresAt.gte(now))
        .filter(in_lane(form_lane))
        .group_by(Column::TenantId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, n)| (tenant, n.max(0) as u64))
        .collect())
}
