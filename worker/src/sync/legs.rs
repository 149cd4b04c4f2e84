//! The export leg (platform to CRM), page by page, and what both legs share:
//! the mappings and rules of a module, items, lead conversions and CRM
//! rejections. The import leg is in `import`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{CrmModule, ItemOutcome, Lifecycle, MappingDirection, SyncDirection};
use crmsync_entity::models::{contact, crm_deletion, crm_link, crm_record};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};

use super::platform_side::contact_values;
use futures::StreamExt;

use super::{OVERLAP, PAGE_SIZE, Run, Stop, store};
use crate::crm::{Conversion, CrmError, CrmField, CrmRecord, RecordWrite, WriteResult};
use crate::decide::{self, Decision, Pair, Rejection, Rules, Side, Snapshot, Values, Write};
use crate::events::LegCounts;
use crate::platform::Mapping;

/// Owners before they are needed: no contact of the page has one to match.
static NO_OWNERS: std::sync::LazyLock<std::collections::HashSet<String>> =
    std::sync::LazyLock::new(Default::default);

/// The CRM's fields of a module (loaded for every module a run uses).
pub(super) fn fields_of<'a>(run: &'a Run<'_>, module: CrmModule) -> &'a HashMap<String, CrmField> {
    run.fields
        .get(&module)
        .expect("the run loads the fields of every module it uses")
}

/// True for a module that only flows CRM to platform (owned by sales, S4).
pub(super) fn one_way(run: &Run<'_>, module: CrmModule) -> bool {
    run.kit.one_way(module)
}

/// The mappings that apply to a module: all of them for the module contacts
/// are written to; for a one-way module, those whose CRM field it has, as
/// FROM_CRM only.
pub(super) fn mappings_for(run: &Run<'_>, module: CrmModule) -> Vec<Mapping> {
    if !one_way(run, module) {
        return run.mappings.clone();
    }
    let fields = fields_of(run, module);
    run.mappings
        .iter()
        .filter(|m| fields.contains_key(&m.crm_field))
        .map(|m| Mapping {
            direction: MappingDirection::FromCrm,
            enabled: m.enabled && m.from_crm(),
            ..m.clone()
        })
        .collect()
}

pub(super) fn rules<'a>(run: &'a Run<'_>, module: CrmModule, mappings: &'a [Mapping]) -> Rules<'a> {
    Rules {
        mappings,
        fields: fields_of(run, module),
        joined_name: run.kit.joined_name,
        owners: run.owners.as_ref().unwrap_or(&NO_OWNERS),
        default_owner: run.settings.default_owner_email.as_deref(),
    }
}

/// Converts the leads of contacts that became clients (S10), a few at a time,
/// unless the page already stops the run; a failure that stops it is `stop`.
/// A dry run converts nothing (see [`would_convert`]).
pub(super) async fn convert_leads(
    run: &Run<'_>,
    leads: Vec<(usize, String)>,
    stop: &mut Option<Stop>,
) -> HashMap<usize, Result<Conversion, CrmError>> {
    if run.dry() || leads.is_empty() || stop.is_some() {
        return HashMap::new();
    }
    let client = &run.client;
    let conversions: HashMap<usize, Result<Conversion, CrmError>> = futures::stream::iter(leads)
        .map(|(i, id)| async move { (i, client.convert_lead(&id).await) })
        .buffer_unordered(4)
        .collect()
        .await;
    *stop = stop_of(conversions.values());
    conversions
}

/// The leads a dry run would convert: all it was given (it sends nothing,
/// so nothing is refused); none in a real run.
pub(super) fn would_convert(
    run: &Run<'_>,
    leads: &[(usize, String)],
) -> std::collections::HashSet<usize> {
    if run.dry() {
        leads.iter().map(|(i, _)| *i).collect()
    } else {
        std::collections::HashSet::new()
    }
}

/// One lead's conversion: a refusal is reported on the item (the write before
/// it stays applied).
pub(super) fn conversion_of(
    result: Option<Result<Conversion, CrmError>>,
    to_crm: &mut Write,
) -> Option<Conversion> {
    match result {
        Some(Err(e @ CrmError::Rejected { .. })) => {
            *to_crm = Write::Reject(rejection_of(&e));
            None
        }
        Some(Ok(c)) => Some(c),
        _ => None,
    }
}

/// The outcome of the CRM side, a conversion counting as the change made.
pub(super) fn crm_outcome(to_crm: &Write, converted: bool, conflicts: &[String]) -> ItemOutcome {
    match (to_crm, converted) {
        (Write::Unchanged, true) => ItemOutcome::Updated,
        _ => outcome_of(to_crm, conflicts),
    }
}

/// The stored field changes of an item that changes its target side
/// (CREATED, UPDATED, CONFLICT): the decision's, in the item's direction,
/// and a lead's conversion (S10) on the CRM side. One serialisation per item.
pub(super) fn item_changes(
    decision: &Decision,
    direction: SyncDirection,
    outcome: ItemOutcome,
    converted: bool,
) -> Option<String> {
    if !matches!(
        outcome,
        ItemOutcome::Created | ItemOutcome::Updated | ItemOutcome::Conflict
    ) {
        return None;
    }
    let conversion = (converted && direction == SyncDirection::ToCrm).then(decide::lead_conversion);
    decision.changes_text(direction, conversion.as_slice())
}

/// The link of a converted lead, moved to the contact it became.
pub(super) fn converted_link(
    link: &mut store::LinkRow,
    conversion: &Conversion,
    index: &mut Vec<crm_record::Model>,
    email: Option<&str>,
) {
    link.module = CrmModule::Contacts;
    link.crm_record_id = conversion.contact_id.clone();
    // A conversion reply may carry no time; the next listing brings it.
    link.crm_modified_at = None;
    index.push(crm_record::Model {
        tenant_id: link.tenant_id.clone(),
        connector_id: link.connector_id.clone(),
        module: CrmModule::Contacts,
        crm_record_id: conversion.contact_id.clone(),
        email: email.map(str::to_owned),
        modified_at: link.last_synced_at,
    });
}

/// A page's item rows, counted on the run's legs as they are pushed.
pub(super) struct Items<'a> {
    pub run: &'a crmsync_entity::models::sync_run::Model,
    pub rows: Vec<store::ItemRow>,
}

/// One item.
pub(super) struct ItemInput<'a> {
    pub direction: SyncDirection,
    pub outcome: ItemOutcome,
    pub email: Option<String>,
    pub contact_id: Option<String>,
    pub crm_record_id: Option<String>,
    /// Why: a rejection, or the reason an item is UNCHANGED (its code is the
    /// item's `reason_code`, such as ARCHIVED_IN_PLATFORM).
    pub rejection: Option<&'a Rejection>,
    /// The stored field changes ([`item_changes`]).
    pub changes: Option<String>,
}

impl Items<'_> {
    pub(super) fn push(&mut self, legs: &mut crate::events::Legs, item: ItemInput<'_>) {
        let counts: &mut LegCounts = match item.direction {
            SyncDirection::ToCrm => &mut legs.to_crm,
            SyncDirection::FromCrm => &mut legs.from_crm,
        };
        match item.outcome {
            ItemOutcome::Created => counts.created += 1,
            ItemOutcome::Updated => counts.updated += 1,
            ItemOutcome::Unchanged => counts.unchanged += 1,
            ItemOutcome::Rejected => counts.rejected += 1,
            ItemOutcome::Conflict => counts.conflicts += 1,
            ItemOutcome::Deleted => counts.deleted += 1,
        }
        self.rows.push(store::ItemRow {
            id: crmsync_entity::new_id(),
            tenant_id: self.run.tenant_id.clone(),
            run_id: self.run.id.clone(),
            connector_id: self.run.connector_id.clone(),
            direction: item.direction,
            outcome: item.outcome,
            email: item.email,
            contact_id: item.contact_id,
            crm_record_id: item.crm_record_id,
            reason_code: item.rejection.map(|r| r.code.clone()),
            field: item.rejection.and_then(|r| r.field.clone()),
            message: item.rejection.map(|r| r.message.clone()),
            changes: item.changes,
            created_at: Utc::now(),
        });
    }
}

/// The outcome of one side's write.
pub(super) fn outcome_of(write: &Write, conflicts: &[String]) -> ItemOutcome {
    match write {
        Write::Create(_) => ItemOutcome::Created,
        Write::Update(_) if !conflicts.is_empty() => ItemOutcome::Conflict,
        Write::Update(_) => ItemOutcome::Updated,
        Write::Unchanged => ItemOutcome::Unchanged,
        Write::Reject(_) => ItemOutcome::Rejected,
    }
}

pub(super) fn rejection_of(e: &CrmError) -> Rejection {
    match e {
        CrmError::Rejected {
            code,
            field,
            message,
        } => Rejection {
            code: code.clone(),
            field: field.clone(),
            message: message.clone(),
        },
        other => Rejection {
            code: "CRM_ERROR".into(),
            field: None,
            message: other.to_string(),
        },
    }
}

/// Splits write results into what was applied and what stops the run.
pub(super) fn stop_of<'a, T: 'a>(
    results: impl IntoIterator<Item = &'a Result<T, CrmError>>,
) -> Option<Stop> {
    results.into_iter().find_map(|r| match r {
        Err(CrmError::Rejected { .. }) | Ok(_) => None,
        Err(e) => Some(Stop::from(e.clone())),
    })
}

/// Platform to CRM: contacts changed since the checkpoint with a high enough
/// score, not archived, page by page, matched by link or by e-mail in the CRM-side index.
pub(crate) async fn export(run: &mut Run<'_>) -> Result<(), Stop> {
    let module = run.kit.export_module();
    // A page fills every write the CRM takes at once (ten batches of 100, say).
    let page_size = run.client.writes_in_flight().max(PAGE_SIZE as usize) as u32;
    let saved = store::checkpoint(
        &run.ctx.db,
        &run.tenant,
        &run.connector.id,
        SyncDirection::ToCrm,
        module,
    )
    .await?;
    // A run handed back goes on after the last contact it applied.
    let after: Option<(DateTime<Utc>, String)> = match run.own_checkpoint(saved.as_ref()) {
        Some(own) => Some(own),
        None if run.ignores_checkpoints() => None,
        None => saved.map(|c| (c.at - OVERLAP, String::new())),
    };
    // The run may be handed back after any page: the export goes on after
    // exactly the last contact applied.
    run.resumable = false;
    run.progress("export").await?;
    // Each page's transaction runs while the next pages are read, decided
    // and written to the CRM; a page's transaction starts after the previous
    // one's ends, so checkpoints advance in order.
    let mut applying: Option<tokio::task::JoinHandle<Result<(), sea_orm::DbErr>>> = None;
    let outcome = export_pages(run, module, page_size, after, &mut applying).await;
    let applied = match applying {
        Some(task) => joined(task).await,
        None => Ok(()),
    };
    applied?;
    outcome
}

/// The end of a page's transaction.
async fn joined(task: tokio::task::JoinHandle<Result<(), sea_orm::DbErr>>) -> Result<(), Stop> {
    match task.await {
        Ok(done) => Ok(done?),
        Err(e) => Err(Stop::Db(sea_orm::DbErr::Custom(format!(
            "an export page's transaction did not finish: {e}"
        )))),
    }
}

/// A page's CRM writes under way, by the page's pair index.
type Writing = tokio::task::JoinHandle<HashMap<usize, Result<WriteResult, CrmError>>>;

/// Pages whose CRM writes queue behind those of the page being finished. With
/// two, a slow step between pages (a checkpoint of the database, a page whose
/// contacts take longer to decide) does not leave the CRM without writes.
const PAGES_AHEAD: usize = 2;

/// The pages in a pipeline: while a page's CRM writes are in flight, the
/// next pages are read and decided and their writes queue behind them (the
/// client's concurrency limit lets them through as slots free up), so the
/// CRM always has writes to take; then the page's results are recorded and
/// its transaction starts. Every page whose writes started is recorded, even
/// when the run stops: what the CRM applied is never left unlinked.
async fn export_pages(
    run: &mut Run<'_>,
    module: CrmModule,
    page_size: u32,
    mut after: Option<(DateTime<Utc>, String)>,
    applying: &mut Option<tokio::task::JoinHandle<Result<(), sea_orm::DbErr>>>,
) -> Result<(), Stop> {
    // Pages read and decided, in order, each with its writes under way.
    let mut queued: std::collections::VecDeque<(Decided, Option<Writing>)> =
        std::collections::VecDeque::new();
    // There may be a page after the last one read.
    let mut more = true;
    // A failed read: the pages already queued are still recorded.
    let mut failed: Option<Stop> = None;
    // Why the run stops, once a page or its progress says so: the pages
    // whose writes started are still recorded, and no further page is read.
    let mut ending: Option<Stop> = None;
    // After a page that did not apply everything, no checkpoint moves on.
    let mut checkpoints = run.saves_checkpoints();
    loop {
        while more && ending.is_none() && queued.len() <= PAGES_AHEAD && !run.stopping() {
            match next_page(run, module, page_size, after.clone()).await {
                // A page read as the run must stop is left for whoever goes on.
                Ok(Some(page)) if !run.stopping() => {
                    more = page.full;
                    after = Some(page.last.clone());
                    let writing = start_writes(run, module, &page);
                    queued.push_back((page, writing));
                }
                Ok(_) => more = false,
                Err(e) => {
                    failed = Some(e);
                    more = false;
                }
            }
        }
        let Some((current, writing)) = queued.pop_front() else {
            break;
        };
        let results = match writing {
            Some(task) => task.await.unwrap_or_else(|e| {
                let lost = CrmError::Protocol(format!("a page's CRM writes did not finish: {e}"));
                write_indexes(&current)
                    .map(|i| (i, Err(lost.clone())))
                    .collect()
            }),
            None => HashMap::new(),
        };
        let count = current.count;
        let (stop, apply) = finish_page(run, module, current, results, checkpoints).await;
        if let Some(previous) = applying.take() {
            joined(previous).await?;
        }
        // The run's progress is written between two pages' transactions: a
        // write made while one runs would wait for it (one writer at a time
        // on SQLite), and the next page's reads and CRM calls with it. The
        // page is applied whatever the progress says (its CRM writes are
        // done); the leg stops after.
        run.processed += count;
        run.resumable = true;
        let progress = run.progress("export").await;
        *applying = Some(tokio::spawn(apply.run()));
        if stop.is_some() {
            checkpoints = false;
        }
        if ending.is_none() {
            ending = progress.err().or(stop);
        }
    }
    match ending.or(failed) {
        Some(stop) => Err(stop),
        None => Ok(()),
    }
}

/// A page read and decided, its CRM writes not made yet.
struct Decided {
    pairs: Vec<ExportPair>,
    /// Item rows made while deciding (a record linked to another contact).
    rows: Vec<store::ItemRow>,
    /// The last contact read: where the next page starts.
    last: (DateTime<Utc>, String),
    /// Contacts read (the run's progress).
    count: i64,
    /// A full page: there may be more.
    full: bool,
}

struct ExportPair {
    contact: contact::Model,
    link: Option<crm_link::Model>,
    crm_id: Option<String>,
    /// The modification time of a record matched by e-mail, as read.
    crm_modified_at: Option<DateTime<Utc>>,
    /// The record matched by e-mail is a converted lead.
    crm_converted: bool,
    decision: Decision,
}

/// The pairs whose decision writes to the CRM.
fn write_indexes(page: &Decided) -> impl Iterator<Item = usize> + '_ {
    page.pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.decision.to_crm, Write::Create(_) | Write::Update(_)))
        .map(|(i, _)| i)
}

/// Starts a page's CRM writes (none in a dry run).
fn start_writes(run: &Run<'_>, module: CrmModule, page: &Decided) -> Option<Writing> {
    if run.dry() {
        return None;
    }
    let (idx, writes): (Vec<usize>, Vec<RecordWrite>) = write_indexes(page)
        .map(|i| {
            let p = &page.pairs[i];
            let (Write::Create(values) | Write::Update(values)) = &p.decision.to_crm else {
                unreachable!("write_indexes keeps writes only")
            };
            let write = RecordWrite {
                id: p.crm_id.clone(),
                values: values.clone(),
                owner_email: None,
                email: p.contact.email.clone(),
            };
            (i, write)
        })
        .unzip();
    if writes.is_empty() {
        return None;
    }
    let client = run.client.clone();
    Some(tokio::spawn(async move {
        let out = client.write(module, writes).await;
        idx.into_iter().zip(out).collect()
    }))
}

/// Reads the page after `after` and decides it; `None` past the last page.
async fn next_page(
    run: &mut Run<'_>,
    module: CrmModule,
    page_size: u32,
    after: Option<(DateTime<Utc>, String)>,
) -> Result<Option<Decided>, Stop> {
    // An archived contact is never exported (issue 24): no CRM write, and
    // its CRM record, linked or not, is left as it is.
    let mut query = contact::Entity::for_tenant(&run.tenant)
        .filter(contact::Column::ArchivedAt.is_null())
        .filter(contact::Column::BehaviourScore.gte(run.settings.min_score_to_export));
    if let Some((at, id)) = &after {
        // A row-value comparison, which SQLite seeks in the (tenant, updated,
        // id) index; `updated > at OR (updated = at AND id > ..)` scanned
        // every contact updated at `at` again at each page (a bulk import
        // updates thousands at once).
        query = query.filter(
            Expr::tuple([
                Expr::col(contact::Column::UpdatedAt),
                Expr::col(contact::Column::Id),
            ])
            .gt(Expr::tuple([Expr::val(*at), Expr::val(id.clone())])),
        );
    }
    if let Some((_, contacts)) = &run.retry {
        query = query.filter(contact::Column::Id.is_in(contacts.iter().cloned()));
    }
    let page = query
        .order_by_asc(contact::Column::UpdatedAt)
        .order_by_asc(contact::Column::Id)
        .limit(u64::from(page_size))
        .all(&run.ctx.db)
        .await?;
    let Some(last) = page.last().map(|c| (c.updated_at, c.id.clone())) else {
        return Ok(None);
    };
    let full = page.len() as u64 == u64::from(page_size);
    let count = page.len() as i64;
    let (pairs, rows) = decide_page(run, module, page).await?;
    Ok(Some(Decided {
        pairs,
        rows,
        last,
        count,
        full,
    }))
}

/// Matches a page's contacts to CRM records (by link, else by e-mail in the
/// index) and decides each pair.
async fn decide_page(
    run: &mut Run<'_>,
    module: CrmModule,
    page: Vec<contact::Model>,
) -> Result<(Vec<ExportPair>, Vec<store::ItemRow>), Stop> {
    let page: Vec<contact::Model> = page
        .into_iter()
        .filter(|c| !run.touched.contains(&c.id))
        .collect();
    let links: HashMap<String, crm_link::Model> = run
        .links_by_contacts(page.iter().map(|c| c.id.clone()).collect())
        .await?
        .into_iter()
        .map(|l| (l.contact_id.clone(), l))
        .collect();
    // Contacts linked to a one-way record (a CRM contact) only receive (S4).
    let page: Vec<contact::Model> = page
        .into_iter()
        .filter(|c| links.get(&c.id).is_none_or(|l| l.module == module))
        .collect();
    if page.iter().any(|c| c.owner_email.is_some()) {
        run.load_owners().await?;
    }
    let unlinked: Vec<String> = page
        .iter()
        .filter(|c| !links.contains_key(&c.id))
        .map(|c| c.email.clone())
        .collect();
    let mut groups: HashMap<String, Vec<crm_record::Model>> = HashMap::new();
    for r in run.crm_records_by_email(module, unlinked).await? {
        if let Some(e) = r.email.clone() {
            groups.entry(e).or_default().push(r);
        }
    }
    let winners: HashMap<String, String> = groups
        .into_iter()
        .filter_map(|(email, group)| {
            decide::pick_duplicate(group, |r| (r.modified_at, r.crm_record_id.clone()))
                .map(|(w, _)| (email, w.crm_record_id))
        })
        .collect();
    // A record already linked to another contact is not taken over.
    let taken: std::collections::HashSet<String> = run
        .links_by_records(module, winners.values().cloned().collect())
        .await?
        .into_iter()
        .map(|l| l.crm_record_id)
        .collect();
    // The records matched by e-mail, read in one batch: their values and
    // modification times decide what the platform may overwrite (S6). A
    // record the CRM no longer returns (deleted) is no match.
    let wanted: Vec<String> = page
        .iter()
        .filter(|c| !links.contains_key(&c.id))
        .filter_map(|c| winners.get(&c.email))
        .filter(|id| !taken.contains(*id))
        .cloned()
        .collect();
    let found: HashMap<String, CrmRecord> = if wanted.is_empty() {
        HashMap::new()
    } else {
        run.client
            .get_many(module, &wanted)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect()
    };

    // Contacts whose linked record was deleted in the CRM (S12).
    let unlinked: Vec<String> = page
        .iter()
        .filter(|c| !links.contains_key(&c.id))
        .map(|c| c.id.clone())
        .collect();
    let tombstones = super::deletions::tombstones(run, module, unlinked).await?;

    let mut items = Items {
        run: &run.run,
        rows: Vec::new(),
    };
    let mut legs = run.legs;
    let mappings = mappings_for(run, module);
    let rules = rules(run, module, &mappings);
    let mut pairs = Vec::new();
    for contact in page {
        let link = links.get(&contact.id).cloned();
        // S13: the TO_CRM rules decide which contacts go out.
        let platform = contact_values(&contact, &run.ctx.options.platform_url);
        let sets =
            match crate::sync_rules::verdict(&run.sync_rules, SyncDirection::ToCrm, &platform) {
                Ok(sets) => sets,
                Err(reason) => {
                    let item = ItemInput {
                        direction: SyncDirection::ToCrm,
                        outcome: ItemOutcome::Unchanged,
                        email: Some(contact.email.clone()),
                        contact_id: Some(contact.id.clone()),
                        crm_record_id: link.map(|l| l.crm_record_id),
                        rejection: Some(&reason),
                        changes: None,
                    };
                    items.push(&mut legs, item);
                    continue;
                }
            };
        let mut matched = winners.get(&contact.email).cloned();
        if link.is_none()
            && let Some(id) = matched.as_ref().filter(|id| taken.contains(*id))
        {
            let rejection = Rejection {
                code: "DUPLICATE_IN_CRM".into(),
                field: Some("email".into()),
                message: format!(
                    "the CRM record {id} with this e-mail is already linked to another contact; merge the contacts first"
                ),
            };
            items.push(
                &mut legs,
                ItemInput {
                    direction: SyncDirection::ToCrm,
                    outcome: ItemOutcome::Rejected,
                    email: Some(contact.email.clone()),
                    contact_id: Some(contact.id.clone()),
                    crm_record_id: Some(id.clone()),
                    rejection: Some(&rejection),
                    changes: None,
                },
            );
            continue;
        }
        let record = match (&link, &matched) {
            (None, Some(id)) => {
                let record = found.get(id);
                if record.is_none() {
                    // Deleted in the CRM since it was indexed: create anew.
                    matched = None;
                }
                record
            }
            _ => None,
        };
        let snapshot = link.as_ref().and_then(|l| Snapshot::from_json(&l.snapshot));
        // The import leg just read every CRM change since the last sync, so a
        // linked record holds what the snapshot says.
        let linked_values: Option<Values> = link.as_ref().map(|_| {
            run.mappings
                .iter()
                .filter_map(|m| {
                    snapshot
                        .as_ref()
                        .and_then(|s| s.0.get(&m.platform_field))
                        .map(|a| (m.crm_field.clone(), a.c.clone()))
                })
                .collect()
        });
        let crm_values = linked_values.as_ref().or(record.map(|r| &r.values));
        // A record matched by e-mail may have been changed after the contact
        // (and skipped by the import filter): the newer side wins (S6).
        let newer = match record {
            Some(r) if r.modified_at > contact.updated_at => Side::Crm,
            _ => Side::Platform,
        };
        let mut decision = decide::decide(
            &Pair {
                platform: Some(&platform),
                crm: crm_values,
                crm_converted: record.is_some_and(|r| r.converted),
                snapshot: snapshot.as_ref(),
                newer,
            },
            &rules,
        );
        if let (Write::Create(_), Some(deleted)) = (&decision.to_crm, tombstones.get(&contact.id))
            && let Some((outcome, reason)) = deleted_in_crm(run, &contact, deleted)
        {
            items.push(
                &mut legs,
                ItemInput {
                    direction: SyncDirection::ToCrm,
                    outcome,
                    email: Some(contact.email.clone()),
                    contact_id: Some(contact.id.clone()),
                    crm_record_id: Some(deleted.crm_record_id.clone()),
                    rejection: Some(&reason),
                    changes: None,
                },
            );
            continue;
        }
        crate::sync_rules::set_crm_fields(&mut decision, crm_values, sets);
        let crm_id = link.as_ref().map(|l| l.crm_record_id.clone()).or(matched);
        pairs.push(ExportPair {
            crm_converted: record.is_some_and(|r| r.converted),
            crm_modified_at: record.map(|r| r.modified_at),
            contact,
            link,
            crm_id,
            decision,
        });
    }
    let rows = items.rows;
    run.legs = legs;
    Ok((pairs, rows))
}

/// Why a contact whose CRM record was deleted is not created again (S12),
/// or `None` when it is: it changed after the deletion was found and the
/// connector's `recreateDeleted` says so. Changed without that setting, it
/// is REJECTED; unchanged since, UNCHANGED (reason DELETED_IN_CRM both).
fn deleted_in_crm(
    run: &Run<'_>,
    contact: &contact::Model,
    deleted: &crm_deletion::Model,
) -> Option<(ItemOutcome, Rejection)> {
    let changed = contact.updated_at > deleted.found_at;
    if changed && run.settings.recreate_deleted {
        return None;
    }
    let (outcome, message) = if changed {
        (
            ItemOutcome::Rejected,
            format!(
                "the contact's CRM record {} was deleted in the CRM; set the connector's recreateDeleted to create it again",
                deleted.crm_record_id
            ),
        )
    } else {
        (
            ItemOutcome::Unchanged,
            format!(
                "the contact's CRM record {} was deleted in the CRM and the contact has not changed since",
                deleted.crm_record_id
            ),
        )
    };
    let reason = Rejection {
        code: super::deletions::DELETED_IN_CRM.into(),
        field: None,
        message,
    };
    Some((outcome, reason))
}

/// Records a page's CRM write results: converts clients' leads (S10), then
/// builds the index rows, links and items its transaction stores. The
/// checkpoint moves on when `checkpoint` allows and the page applied
/// everything.
async fn finish_page(
    run: &mut Run<'_>,
    module: CrmModule,
    page: Decided,
    mut results: HashMap<usize, Result<WriteResult, CrmError>>,
    checkpoint: bool,
) -> (Option<Stop>, ExportApply) {
    let Decided {
        pairs, rows, last, ..
    } = page;
    let tenant = run.tenant.clone();
    let connector_id = run.connector.id.clone();
    let mut stop = stop_of(results.values());
    // S10: a client's lead, once written, is converted into a contact.
    let leads: Vec<(usize, String)> = pairs
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            run.kit.converts_leads
                && p.contact.lifecycle == Lifecycle::Client
                && !p.crm_converted
                && !matches!(p.decision.to_crm, Write::Reject(_))
        })
        .filter_map(|(i, p)| match results.get(&i) {
            Some(Ok(r)) => Some((i, r.id.clone())),
            Some(Err(_)) => None,
            // A dry run's write would have gone through: its record too.
            None if run.dry()
                && matches!(p.decision.to_crm, Write::Create(_) | Write::Update(_)) =>
            {
                Some((i, p.crm_id.clone().unwrap_or_default()))
            }
            None => p.crm_id.clone().map(|id| (i, id)),
        })
        .collect();
    let dry_conversions = would_convert(run, &leads);
    let mut conversions = convert_leads(run, leads, &mut stop).await;
    run.wrote(
        results
            .values()
            .filter_map(|r| r.as_ref().ok().map(|w| w.modified_at))
            .min(),
    );

    let mut items = Items {
        run: &run.run,
        rows,
    };
    let mut legs = run.legs;
    let now = Utc::now();
    let mut links = Vec::new();
    let mut index = Vec::new();
    for (i, mut p) in pairs.into_iter().enumerate() {
        // The CRM side's write as the CRM took it; put back for the item's
        // changes (a refused write changes nothing).
        let mut to_crm = std::mem::replace(&mut p.decision.to_crm, Write::Unchanged);
        let result = results.remove(&i);
        let mut crm_id = p.crm_id.take();
        let mut modified = p
            .link
            .as_ref()
            .and_then(|l| l.crm_modified_at)
            .or(p.crm_modified_at);
        match &result {
            Some(Ok(r)) => {
                crm_id = Some(r.id.clone());
                modified = Some(r.modified_at);
                index.push(crm_record::Model {
                    tenant_id: tenant.as_str().to_owned(),
                    connector_id: connector_id.clone(),
                    module,
                    crm_record_id: r.id.clone(),
                    email: Some(p.contact.email.clone()),
                    modified_at: r.modified_at,
                });
            }
            Some(Err(e @ CrmError::Rejected { .. })) => to_crm = Write::Reject(rejection_of(e)),
            // Not applied: the run stops here and the next run tries again.
            Some(Err(_)) => continue,
            None => {}
        }
        let applied = !matches!(to_crm, Write::Reject(_));
        let conversion = conversion_of(conversions.remove(&i), &mut to_crm);
        let converted = conversion.is_some() || dry_conversions.contains(&i);
        if let Some(crm_id) = &crm_id
            && (applied || p.link.is_some())
            && !(run.dry() && p.link.is_none())
        {
            let mut link = store::LinkRow {
                id: p
                    .link
                    .as_ref()
                    .map_or_else(crmsync_entity::new_id, |l| l.id.clone()),
                tenant_id: tenant.as_str().to_owned(),
                connector_id: connector_id.clone(),
                contact_id: p.contact.id.clone(),
                module,
                crm_record_id: crm_id.clone(),
                // The platform side is not written here: what flows to the
                // platform is left as both sides hold it.
                snapshot: p.decision.stored_snapshot_as_found(applied),
                crm_modified_at: modified,
                last_synced_at: now,
            };
            if let Some(c) = &conversion {
                converted_link(&mut link, c, &mut index, Some(&p.contact.email));
            }
            links.push(link);
        }
        let outcome = crm_outcome(&to_crm, converted, &p.decision.crm_conflicts);
        p.decision.to_crm = to_crm;
        let rejection = match &p.decision.to_crm {
            Write::Reject(r) => Some(r),
            _ => None,
        };
        items.push(
            &mut legs,
            ItemInput {
                direction: SyncDirection::ToCrm,
                outcome,
                email: Some(p.contact.email),
                contact_id: Some(p.contact.id),
                crm_record_id: crm_id,
                rejection,
                changes: item_changes(&p.decision, SyncDirection::ToCrm, outcome, converted),
            },
        );
    }

    let rows = items.rows;
    run.legs = legs;
    let apply = ExportApply {
        db: run.ctx.db.clone(),
        tenant,
        connector_id,
        run_id: run.run.id.clone(),
        module,
        dry: run.dry(),
        checkpoint: (stop.is_none() && checkpoint).then_some(last),
        index,
        links,
        rows,
        metrics: run.ctx.metrics.clone(),
    };
    (stop, apply)
}

/// What one export page stores, in one transaction: CRM index rows, links,
/// the checkpoint (unless the run stops at this page) and items.
struct ExportApply {
    db: sea_orm::DatabaseConnection,
    tenant: crmsync_entity::TenantId,
    connector_id: String,
    /// The run whose page this is (named on the checkpoint).
    run_id: String,
    module: CrmModule,
    dry: bool,
    checkpoint: Option<(DateTime<Utc>, String)>,
    index: Vec<crm_record::Model>,
    links: Vec<store::LinkRow>,
    rows: Vec<store::ItemRow>,
    metrics: crate::metrics::Metrics,
}

impl ExportApply {
    async fn run(self) -> Result<(), sea_orm::DbErr> {
        let txn = store::begin(&self.db).await?;
        if !self.dry {
            store::upsert_crm_records(&txn, self.index).await?;
            store::upsert_links(&txn, self.links).await?;
            if let Some((at, id)) = &self.checkpoint {
                store::save_checkpoint(
                    &txn,
                    &self.tenant,
                    &self.connector_id,
                    (SyncDirection::ToCrm, self.module),
                    (*at, id),
                    &self.run_id,
                )
                .await?;
            }
        }
        let recorded = store::insert_items(&txn, self.rows).await?;
        store::commit(txn, &self.db).await?;
        self.metrics.items_recorded(&recorded);
        Ok(())
    }
}
