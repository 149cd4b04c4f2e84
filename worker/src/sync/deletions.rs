//! Deletions found in the CRM (S12), applied between the import leg and the
//! export leg, once every module's listing has completed (a run that fails or
//! is cancelled before then applies none).
//!
//! 1. find: before the listing, the CRM's deletion feed (its kit's
//!    `deletions`: a deleted-records API, a listing of archived records, a
//!    change feed), read from where the last run that read it to the end
//!    started; after it, in a run that lists everything (FULL), the links
//!    whose records the listing did not return, each confirmed absent by a
//!    lookup (a lookup that fails leaves its links alone: a fault is not a
//!    deletion);
//! 2. apply, a few hundred links at a time: each deleted record's link is
//!    removed with its index row and kept as a tombstone (`crm_deletions`),
//!    a DELETED item names the record and the contact, and with the
//!    connector's `syncDeletions` the contact is archived (never removed).
//!    Nothing is ever deleted in a CRM. A dry run records the items only.
//!
//! The contacts whose records were found deleted are not exported by the
//! same run; later runs recreate such a record only when the contact changed
//! after the deletion and the connector's `recreateDeleted` says so (see the
//! export leg).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{CrmModule, ItemOutcome, SyncDirection, SyncMode};
use crmsync_entity::models::{
    contact, crm_deletion, crm_link, crm_record, run_listed_ids, sync_run,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::legs::{ItemInput, Items};
use super::{OVERLAP, Run, Stop, store};
use crate::crm::CrmError;
use crate::crm::kit::Deletions;
use crate::decide::Rejection;

/// The reason of a DELETED item, and of an export item whose record was
/// deleted in the CRM (REJECTED, or UNCHANGED when the contact did not
/// change since).
pub(crate) const DELETED_IN_CRM: &str = "DELETED_IN_CRM";

/// Links applied per transaction.
const LINKS_PER_BATCH: usize = 500;
/// Links read per query while reconciling.
const LINKS_PER_READ: u64 = 5_000;
/// Records looked up per call while confirming a reconciliation.
const LOOKUPS_PER_CALL: usize = 100;

/// The record ids a listing returned, by module, for the reconciliation of a
/// run that lists everything. Kept as 64-bit hashes (a million ids take
/// about 16 MB): two ids that share a hash can only hide a deletion until
/// the next FULL run, never make one up. A run handed back writes what it
/// listed since its last hand-back ([`Listed::save`]); the slice that goes
/// on reads it back ([`Listed::restore`]), so a sliced FULL run reconciles
/// as one that ran through.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    ids: HashMap<CrmModule, HashSet<u64>>,
    /// Hashes added since the last [`Listed::save`], by module.
    unsaved: HashMap<CrmModule, Vec<u64>>,
}

impl Listed {
    /// Notes the ids of a page listed in `module`.
    pub(crate) fn add<'a>(&mut self, module: CrmModule, ids: impl Iterator<Item = &'a str>) {
        let set = self.ids.entry(module).or_default();
        let unsaved = self.unsaved.entry(module).or_default();
        for hash in ids.map(hashed) {
            if set.insert(hash) {
                unsaved.push(hash);
            }
        }
    }

    fn contains(&self, module: CrmModule, id: &str) -> bool {
        self.ids
            .get(&module)
            .is_some_and(|ids| ids.contains(&hashed(id)))
    }

    /// At a hand-back: writes what each module listed since the last save,
    /// with the module's checkpoint now (what the next slice goes on from).
    async fn save(&mut self, run: &Run<'_>) -> Result<(), sea_orm::DbErr> {
        let db = &run.ctx.db;
        for module in &run.settings.import_modules {
            let checkpoint = store::checkpoint(
                db,
                &run.tenant,
                &run.connector.id,
                SyncDirection::FromCrm,
                *module,
            )
            .await?
            .filter(|c| c.run_id.as_deref() == Some(run.run.id.as_str()));
            let hashes: Vec<u8> = self
                .unsaved
                .remove(module)
                .unwrap_or_default()
                .iter()
                .flat_map(|h| h.to_le_bytes())
                .collect();
            run_listed_ids::Entity::insert(run_listed_ids::ActiveModel::from(
                run_listed_ids::Model {
                    id: crmsync_entity::new_id(),
                    tenant_id: run.tenant.as_str().to_owned(),
                    run_id: run.run.id.clone(),
                    module: *module,
                    through_at: checkpoint.as_ref().map(|c| c.at),
                    through_id: checkpoint.map(|c| c.record_id),
                    hashes,
                    created_at: Utc::now(),
                },
            ))
            .exec_without_returning(db)
            .await?;
        }
        Ok(())
    }

    /// When a slice goes on from the run's own checkpoint `at`/`id` in
    /// `module`: reads back what earlier slices listed. True when they were
    /// all saved, the last save reaching that checkpoint (a worker that died
    /// after its last hand-back listed pages nobody saved: false).
    async fn restore(
        &mut self,
        run: &Run<'_>,
        module: CrmModule,
        at: DateTime<Utc>,
        id: &str,
    ) -> Result<bool, sea_orm::DbErr> {
        let rows = run_listed_ids::Entity::for_tenant(&run.tenant)
            .filter(run_listed_ids::Column::RunId.eq(&run.run.id))
            .filter(run_listed_ids::Column::Module.eq(module))
            .order_by_asc(run_listed_ids::Column::Id)
            .all(&run.ctx.db)
            .await?;
        let whole = rows.last().is_some_and(|last| {
            last.through_at == Some(at) && last.through_id.as_deref() == Some(id)
        });
        if whole {
            let set = self.ids.entry(module).or_default();
            for row in &rows {
                set.extend(
                    row.hashes
                        .chunks_exact(8)
                        .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes"))),
                );
            }
        }
        Ok(whole)
    }
}

/// At a hand-back of a run that reconciles: saves what it listed
/// ([`Listed`]).
pub(crate) async fn save_listed(run: &mut Run<'_>) -> Result<(), sea_orm::DbErr> {
    if !run.reconciles() {
        return Ok(());
    }
    let mut listed = std::mem::take(&mut run.listed);
    let saved = listed.save(run).await;
    run.listed = listed;
    saved
}

/// When a leg of `module` goes on from the run's own checkpoint `at`/`id`:
/// true when what earlier slices listed is back, so the run still
/// reconciles; false when it was not all saved.
pub(crate) async fn restore_listed(
    run: &mut Run<'_>,
    module: CrmModule,
    at: DateTime<Utc>,
    id: &str,
) -> Result<bool, sea_orm::DbErr> {
    let mut listed = std::mem::take(&mut run.listed);
    let restored = listed.restore(run, module, at, id).await;
    run.listed = listed;
    restored
}

/// Forgets what the run's listing returned once it is no longer needed
/// (its deletions applied, or the run ended).
pub(crate) async fn forget_listed(
    db: &impl sea_orm::ConnectionTrait,
    tenant: &crmsync_entity::TenantId,
    run_id: &str,
) -> Result<(), sea_orm::DbErr> {
    run_listed_ids::Entity::delete_many()
        .filter(run_listed_ids::Column::TenantId.eq(tenant.as_str()))
        .filter(run_listed_ids::Column::RunId.eq(run_id))
        .exec(db)
        .await?;
    Ok(())
}

fn hashed(id: &str) -> u64 {
    // SipHash with fixed keys: the same id hashes the same within the run.
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// CRM records found deleted, by id, with when the CRM says they were
/// deleted (where it says).
type Found = HashMap<String, Option<DateTime<Utc>>>;

/// What a run's deletion feeds listed, read before its import leg lists
/// anything and applied once the listing has completed.
pub(super) struct Feeds {
    /// When the reading started: the next run reads from there.
    started: DateTime<Utc>,
    /// The records each imported module's feed listed.
    found: Vec<(CrmModule, Found)>,
    /// True when every feed was read to its end.
    complete: bool,
}

/// Reads the deletion feed of every imported module, from where the last
/// run that read them to the end started (CRMs without a feed, and runs of
/// some records only, read none). A feed that fails stops the run before
/// its listing, with nothing applied.
pub(super) async fn read_feeds(run: &Run<'_>) -> Result<Feeds, Stop> {
    let mut feeds = Feeds {
        started: Utc::now(),
        found: Vec::new(),
        complete: false,
    };
    if run.retry.is_some() || run.kit.deletions == Deletions::Reconcile {
        return Ok(feeds);
    }
    let since = last_read(run).await?;
    for module in &run.settings.import_modules {
        let mut deleted = Found::new();
        // A deletion applies to a link only: with none (a first run), the
        // feed has nothing to say and is not read.
        if has_links(run, *module).await? {
            for record in run.client.deleted(*module, since).await? {
                deleted.insert(record.id, record.deleted_at);
            }
        }
        feeds.found.push((*module, deleted));
    }
    feeds.complete = true;
    Ok(feeds)
}

/// Whether the connector links any record of `module`.
async fn has_links(run: &Run<'_>, module: CrmModule) -> Result<bool, sea_orm::DbErr> {
    let any: Option<String> = crm_link::Entity::for_tenant(&run.tenant)
        .select_only()
        .column(crm_link::Column::Id)
        .filter(crm_link::Column::ConnectorId.eq(&run.connector.id))
        .filter(crm_link::Column::Module.eq(module))
        .into_tuple()
        .one(&run.ctx.db)
        .await?;
    Ok(any.is_some())
}

/// Once the import leg's listing has completed: adds what a run that lists
/// everything finds by reconciliation to what the feeds listed, and
/// applies it all; then notes that the feeds were read.
pub(super) async fn apply(run: &mut Run<'_>, feeds: Feeds) -> Result<(), Stop> {
    if run.retry.is_some() {
        return Ok(());
    }
    let Feeds {
        started,
        mut found,
        complete,
    } = feeds;
    if run.reconciles() {
        for module in run.settings.import_modules.clone() {
            let gone = reconcile(run, module).await?;
            let at = match found.iter().position(|(m, _)| *m == module) {
                Some(i) => i,
                None => {
                    found.push((module, Found::new()));
                    found.len() - 1
                }
            };
            for id in gone {
                found[at].1.entry(id).or_insert(None);
            }
        }
    }
    for (module, deleted) in found {
        let records: Vec<(String, Option<DateTime<Utc>>)> = deleted.into_iter().collect();
        for batch in records.chunks(LINKS_PER_BATCH) {
            apply_batch(run, module, batch.iter().cloned().collect()).await?;
        }
    }
    if complete && !run.dry() {
        note_read(run, started).await?;
    }
    forget_listed(&run.ctx.db, &run.tenant, &run.run.id).await?;
    Ok(())
}

/// Records a CRM_EVENT run found deleted: notified as deleted and no
/// longer returned by the CRM. Applied as any deletion found (S12).
pub(super) async fn confirmed(
    run: &mut Run<'_>,
    module: CrmModule,
    ids: Vec<String>,
) -> Result<(), Stop> {
    for batch in ids.chunks(LINKS_PER_BATCH) {
        apply_batch(
            run,
            module,
            batch.iter().map(|id| (id.clone(), None)).collect(),
        )
        .await?;
    }
    Ok(())
}

/// Where the feed is read from: a little before the last run that read it
/// to the end started; from the start when none did.
async fn last_read(run: &Run<'_>) -> Result<Option<DateTime<Utc>>, Stop> {
    let last: Option<Option<DateTime<Utc>>> = sync_run::Entity::for_tenant(&run.tenant)
        .select_only()
        .column(sync_run::Column::DeletionsReadAt)
        .filter(sync_run::Column::ConnectorId.eq(&run.connector.id))
        .filter(sync_run::Column::Mode.ne(SyncMode::DryRun))
        .filter(sync_run::Column::DeletionsReadAt.is_not_null())
        .order_by_desc(sync_run::Column::DeletionsReadAt)
        .into_tuple()
        .one(&run.ctx.db)
        .await?;
    Ok(last.flatten().map(|at| at - OVERLAP))
}

/// The module's links whose records the listing did not return and the CRM
/// no longer has. A lookup that fails (after the client's retries) leaves
/// its links alone; a spent budget or refused credentials stop the run.
async fn reconcile(run: &Run<'_>, module: CrmModule) -> Result<Vec<String>, Stop> {
    let mut unseen = Vec::new();
    let mut after = String::new();
    loop {
        let ids: Vec<String> = crm_link::Entity::for_tenant(&run.tenant)
            .select_only()
            .column(crm_link::Column::CrmRecordId)
            .filter(crm_link::Column::ConnectorId.eq(&run.connector.id))
            .filter(crm_link::Column::Module.eq(module))
            .filter(crm_link::Column::CrmRecordId.gt(after.clone()))
            .order_by_asc(crm_link::Column::CrmRecordId)
            .limit(LINKS_PER_READ)
            .into_tuple()
            .all(&run.ctx.db)
            .await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        unseen.extend(
            ids.into_iter()
                .filter(|id| !run.listed.contains(module, id)),
        );
    }
    let mut gone = Vec::new();
    for ids in unseen.chunks(LOOKUPS_PER_CALL) {
        match run.client.get_many(module, ids).await {
            Ok(records) => {
                let alive: HashSet<String> = records.into_iter().map(|r| r.id).collect();
                gone.extend(ids.iter().filter(|id| !alive.contains(*id)).cloned());
            }
            Err(e @ (CrmError::DailyLimit(_) | CrmError::Unauthorized(_))) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    run = %run.run.id,
                    %module,
                    records = ids.len(),
                    error = %e,
                    "could not tell whether unlisted records were deleted; their links stay"
                );
            }
        }
    }
    Ok(gone)
}

/// Notes that the run read its CRM's deletion feeds to the end, from `at`.
async fn note_read(run: &Run<'_>, at: DateTime<Utc>) -> Result<(), Stop> {
    sync_run::Entity::update_many()
        .col_expr(sync_run::Column::DeletionsReadAt, Expr::value(at))
        .filter(sync_run::Column::TenantId.eq(run.tenant.as_str()))
        .filter(sync_run::Column::Id.eq(&run.run.id))
        .exec(&run.ctx.db)
        .await?;
    Ok(())
}

/// One batch: the links of these records removed (kept as tombstones), their
/// contacts archived when the connector says so, one DELETED item each.
async fn apply_batch(run: &mut Run<'_>, module: CrmModule, records: Found) -> Result<(), Stop> {
    let links = run
        .links_by_records(module, records.keys().cloned().collect())
        .await?;
    if links.is_empty() {
        return Ok(());
    }
    let contacts: HashMap<String, contact::Model> = run
        .contacts(
            links.iter().map(|l| l.contact_id.clone()).collect(),
            Vec::new(),
        )
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let now = Utc::now();
    let archives = run.settings.sync_deletions;
    let mut items = Items {
        run: &run.run,
        rows: Vec::new(),
    };
    let mut legs = run.legs;
    let mut archived = Vec::new();
    let mut tombstones = Vec::new();
    for link in &links {
        let contact = contacts.get(&link.contact_id);
        let archive = archives && contact.is_some_and(|c| c.archived_at.is_none());
        if archive {
            archived.push(link.contact_id.clone());
        }
        let reason = Rejection {
            code: DELETED_IN_CRM.into(),
            field: None,
            message: if archive {
                "the record was deleted in the CRM: its link is removed and the platform contact archived (syncDeletions)".into()
            } else {
                "the record was deleted in the CRM: its link is removed; the platform contact is kept (syncDeletions is off)".into()
            },
        };
        items.push(
            &mut legs,
            ItemInput {
                direction: SyncDirection::FromCrm,
                outcome: ItemOutcome::Deleted,
                email: contact.map(|c| c.email.clone()),
                contact_id: Some(link.contact_id.clone()),
                crm_record_id: Some(link.crm_record_id.clone()),
                rejection: Some(&reason),
                changes: None,
            },
        );
        tombstones.push(crm_deletion::Model {
            id: crmsync_entity::new_id(),
            tenant_id: link.tenant_id.clone(),
            connector_id: link.connector_id.clone(),
            contact_id: link.contact_id.clone(),
            module,
            crm_record_id: link.crm_record_id.clone(),
            deleted_at: records.get(&link.crm_record_id).copied().flatten(),
            found_at: now,
            run_id: run.run.id.clone(),
        });
    }
    let rows = items.rows;
    // Not exported by this run: its record is gone, and is not made again
    // by the run that found it gone.
    run.touched
        .extend(links.iter().map(|l| l.contact_id.clone()));
    let db = &run.ctx.db;
    let txn = store::begin(db).await?;
    if !run.dry() {
        let (tenant, connector) = (run.tenant.as_str(), run.connector.id.as_str());
        let link_ids: Vec<String> = links.iter().map(|l| l.id.clone()).collect();
        let record_ids: Vec<String> = links.iter().map(|l| l.crm_record_id.clone()).collect();
        crm_link::Entity::delete_many()
            .filter(crm_link::Column::TenantId.eq(tenant))
            .filter(crm_link::Column::Id.is_in(link_ids))
            .exec(&txn)
            .await?;
        crm_record::Entity::delete_many()
            .filter(crm_record::Column::TenantId.eq(tenant))
            .filter(crm_record::Column::ConnectorId.eq(connector))
            .filter(crm_record::Column::Module.eq(module))
            .filter(crm_record::Column::CrmRecordId.is_in(record_ids))
            .exec(&txn)
            .await?;
        crm_deletion::Entity::insert_many(
            tombstones.into_iter().map(crm_deletion::ActiveModel::from),
        )
        .exec_without_returning(&txn)
        .await?;
        if !archived.is_empty() {
            contact::Entity::update_many()
                .col_expr(contact::Column::ArchivedAt, Expr::value(now))
                .col_expr(contact::Column::UpdatedAt, Expr::value(now))
                .filter(contact::Column::TenantId.eq(tenant))
                .filter(contact::Column::Id.is_in(archived))
                .filter(contact::Column::ArchivedAt.is_null())
                .exec(&txn)
                .await?;
        }
    }
    let recorded = store::insert_items(&txn, rows).await?;
    store::commit(txn, db).await?;
    run.ctx.metrics.items_recorded(&recorded);
    run.legs = legs;
    run.progress("import").await
}

/// The latest deletion found of each of these contacts' records in
/// `module`, by contact: the export leg recreates none of them unless the
/// contact changed since and the connector's `recreateDeleted` says so.
pub(super) async fn tombstones(
    run: &Run<'_>,
    module: CrmModule,
    contacts: Vec<String>,
) -> Result<HashMap<String, crm_deletion::Model>, Stop> {
    if contacts.is_empty() {
        return Ok(HashMap::new());
    }
    let mut latest: HashMap<String, crm_deletion::Model> = HashMap::new();
    for d in crm_deletion::Entity::for_tenant(&run.tenant)
        .filter(crm_deletion::Column::ConnectorId.eq(&run.connector.id))
        .filter(crm_deletion::Column::Module.eq(module))
        .filter(crm_deletion::Column::ContactId.is_in(contacts))
        .all(&run.ctx.db)
        .await?
    {
        match latest.get(&d.contact_id) {
            Some(kept) if kept.found_at >= d.found_at => {}
            _ => {
                latest.insert(d.contact_id.clone(), d);
            }
        }
    }
    Ok(latest)
}
