//! The import leg: CRM to platform, each imported module in turn, page by
//! page. A page goes through five steps:
//!
//! 1. load: index every record listed, then read the links, contacts and
//!    e-mail groups the records it takes touch;
//! 2. pair: each record with its contact, or a rejection (no e-mail, a
//!    duplicate in the CRM); a record of an archived contact is left alone
//!    (UNCHANGED, ARCHIVED_IN_PLATFORM);
//! 3. decide: each pair ([`crate::decide`]);
//! 4. apply: the platform changes found on the way in go back to the CRM in
//!    one batch, and clients' leads are converted;
//! 5. record: items, links, contacts and the checkpoint, in one transaction.
//!
//! What depends on the CRM's model is asked once a page ([`Capabilities`]):
//! whether the module flows CRM to platform only (a secondary module: contacts
//! owned by sales) and whether the CRM converts leads.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use crmsync_entity::Email;
use crmsync_entity::enums::{CrmModule, ItemOutcome, Lifecycle, SyncDirection};
use crmsync_entity::models::{consent_event, contact, crm_link, crm_record};
use sea_orm::{ActiveModelTrait, EntityTrait};
use serde_json::Value;

use super::legs::{
    ItemInput, Items, conversion_of, convert_leads, converted_link, crm_outcome, fields_of,
    item_changes, mappings_for, one_way, outcome_of, rejection_of, rules, stop_of, would_convert,
};
use super::platform_side::{apply_values, contact_values, new_contact, update_model};
use super::{OVERLAP, PAGE_SIZE, Run, Stop, store};
use crate::crm::{Conversion, CrmError, CrmRecord, ListQuery, RecordWrite, WriteResult};
use crate::decide::{self, Decision, Pair, Rejection, Rules, Side, Snapshot, Values, Write};
use crate::events::Legs;
use crate::sync_rules::{self, SetField};

/// The reason of an UNCHANGED item whose CRM record is linked to (or has the
/// e-mail of) an archived platform contact (issue 24).
pub(crate) const ARCHIVED_IN_PLATFORM: &str = "ARCHIVED_IN_PLATFORM";
/// Records a CRM_EVENT run reads before it leaves the notices that come
/// next to the next run.
const DRAIN_LIMIT: usize = 10_000;
/// How long a CRM_EVENT run that took notices at its last look waits for
/// more before it takes a quiet look for the end of them.
const STREAM_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// CRM to platform: each imported module in turn, the one contacts are
/// written to first (a lead's link exists before its contact takes it over).
pub(crate) async fn import(run: &mut Run<'_>) -> Result<(), Stop> {
    // A run of some contacts only (a FORM run, a retry of export rejections)
    // has no CRM record to read.
    if run.retry.as_ref().is_some_and(|(crm, _)| crm.is_empty()) {
        return Ok(());
    }
    let mut modules = run.settings.import_modules.clone();
    let main = run.kit.export_module();
    modules.sort_by_key(|m| *m != main);
    // A CRM_EVENT run reads the records its notifications named, by id.
    if let Some(notified) = run.notified.take() {
        return import_all_notified(run, &modules, notified).await;
    }
    for module in modules {
        import_module(run, module).await?;
    }
    Ok(())
}

/// The records a CRM_EVENT run's notifications named, and those notified
/// while it reads (they join it, up to [`DRAIN_LIMIT`] records): read by
/// id in whole batches of the CRM's lookup size, the part of a batch left
/// over waiting (a second at most) for the notices that come meanwhile, so
/// that a bulk edit notified over many seconds is read in about as few calls
/// as one notified at once.
async fn import_all_notified(
    run: &mut Run<'_>,
    modules: &[CrmModule],
    mut notified: super::Notified,
) -> Result<(), Stop> {
    let mut left: HashMap<CrmModule, Vec<(String, bool)>> = HashMap::new();
    let mut left_since: Option<std::time::Instant> = None;
    let mut streaming = false;
    let mut read = 0;
    loop {
        let whole_batches = left_since.is_none_or(|since| since.elapsed() < store::FORM_GATHER);
        let mut moved = false;
        for module in modules {
            let mut records = left.remove(module).unwrap_or_default();
            records.extend(notified.take(*module));
            let taken = records.len();
            let rest = import_notified(run, *module, records, whole_batches).await?;
            read += taken - rest.len();
            moved |= rest.len() < taken;
            if !rest.is_empty() {
                left.insert(*module, rest);
            }
        }
        // What is left is the newest part (a batch read takes the oldest
        // first): it has waited since now when a batch was read.
        if left.is_empty() {
            left_since = None;
        } else if moved || left_since.is_none() {
            left_since = Some(std::time::Instant::now());
        }
        let mut more = super::Notified::default();
        if read < DRAIN_LIMIT {
            more = store::take_more_notices(&run.ctx.db, &run.tenant, &run.run).await?;
            // Notices are coming (the last look found some): a short pause
            // before taking a quiet moment for their end.
            if more.is_empty() && streaming {
                tokio::time::sleep(STREAM_PAUSE).await;
                more = store::take_more_notices(&run.ctx.db, &run.tenant, &run.run).await?;
            }
        }
        streaming = !more.is_empty();
        if more.is_empty() {
            for module in modules {
                let rest = left.remove(module).unwrap_or_default();
                import_notified(run, *module, rest, false).await?;
            }
            return Ok(());
        }
        if let Some((crm, _)) = run.retry.as_mut() {
            crm.extend(more.ids());
        }
        notified = more;
    }
}

/// The records of `module` notifications named (real time), read by id in
/// the CRM's largest batches and decided page by page as listed ones are,
/// without a checkpoint. A record said deleted that the CRM no longer
/// returns goes through the deletions' rules; a deletion notice for a
/// record the CRM still returns is only read. With `whole_batches`, the
/// records short of a whole batch are not read but returned.
async fn import_notified(
    run: &mut Run<'_>,
    module: CrmModule,
    mut records: Vec<(String, bool)>,
    whole_batches: bool,
) -> Result<Vec<(String, bool)>, Stop> {
    let page_size = run.client.records_per_read().max(PAGE_SIZE) as usize;
    let batch = run.client.records_per_lookup().max(1);
    let rest = if whole_batches {
        records.split_off(records.len() - records.len() % batch)
    } else {
        Vec::new()
    };
    if records.is_empty() {
        return Ok(rest);
    }
    run.progress("import").await?;
    run.written_from = None;
    for chunk in records.chunks(page_size) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let read = run.client.get_many(module, &ids).await?;
        let found: HashSet<&str> = read.iter().map(|r| r.id.as_str()).collect();
        let gone: Vec<String> = chunk
            .iter()
            .filter(|(id, deleted)| *deleted && !found.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        let count = read.len() as i64;
        let stop = import_page(run, module, read).await?;
        run.processed += count;
        run.progress("import").await?;
        if let Some(stop) = stop {
            return Err(stop);
        }
        super::deletions::confirmed(run, module, gone).await?;
    }
    Ok(rest)
}

/// One module's records changed since its checkpoint, page by page. A run
/// handed back meanwhile saves what its listings returned, for the slice
/// that goes on to reconcile with.
async fn import_module(run: &mut Run<'_>, module: CrmModule) -> Result<(), Stop> {
    let listed = list_module(run, module).await;
    if let Err(Stop::Yield | Stop::HandBack) = &listed {
        super::deletions::save_listed(run).await?;
    }
    listed
}

/// [`import_module`]'s listing.
async fn list_module(run: &mut Run<'_>, module: CrmModule) -> Result<(), Stop> {
    let saved = store::checkpoint(
        &run.ctx.db,
        &run.tenant,
        &run.connector.id,
        SyncDirection::FromCrm,
        module,
    )
    .await?;
    // A run handed back goes on from its own checkpoint: the records listed
    // at or after it, but the one it names and any older.
    let resume = run.own_checkpoint(saved.as_ref());
    if let Some((at, id)) = &resume
        && run.reconciles()
        && !super::deletions::restore_listed(run, module, *at, id).await?
    {
        run.resumed = true;
    }
    let since = match (&resume, saved) {
        (Some((at, _)), _) => Some(*at),
        (None, _) if run.ignores_checkpoints() => None,
        (None, saved) => saved.map(|c| c.at - OVERLAP),
    };
    // The run may be handed back only after a page that moved its
    // checkpoint on: resumed at a time, past that time (records sharing it
    // are read again from there).
    let resumed_at = resume.as_ref().map(|(at, _)| *at);
    run.resumable = false;
    run.progress("import").await?;
    run.written_from = run.listing_stops_at();
    let mut resume_point = resume.clone().map(|(at, id)| ResumePoint::new(at, id));
    let mut cursor = None;
    let page_size = run.client.records_per_read().max(PAGE_SIZE);
    loop {
        let page = run
            .client
            .list(&ListQuery {
                module,
                since,
                cursor: cursor.clone(),
                page_size,
            })
            .await?;
        let mut records = page.records;
        if let Some(point) = resume_point.as_mut() {
            records = point.unread(records, page.next_cursor.is_none());
        }
        if run.reconciles() {
            run.listed
                .add(module, records.iter().map(|r| r.id.as_str()));
        }
        // Records modified since this leg first wrote to the CRM are its own
        // write-backs (moved to the end of the listing) or changes made
        // meanwhile: the next run reads them from the checkpoint, this one
        // stops listing rather than reading its own writes back.
        let listed = records.len();
        if let Some(from) = run.written_from {
            records.retain(|r| r.modified_at < from);
        }
        let caught_up = records.len() < listed;
        // The CRM contacts this run's lead conversions made (S10), listed in
        // a later module, are its own writes too, and their links already
        // moved: not read back (so a dry run, which converts nothing, lists
        // what the real run lists).
        if !run.converted.is_empty() {
            records.retain(|r| !run.converted.contains(&r.id));
        }
        let count = records.len() as i64;
        let last_at = records.last().map(|r| r.modified_at);
        let stop = import_page(run, module, records).await?;
        if last_at.is_some_and(|last| resumed_at.is_none_or(|from| last > from)) {
            run.resumable = true;
        }
        run.processed += count;
        run.progress("import").await?;
        if let Some(stop) = stop {
            return Err(stop);
        }
        if caught_up {
            return Ok(());
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Where a run handed back goes on reading a module: after the record its
/// checkpoint names (`at`, `id`). The listing comes in the CRM's order of
/// (modification time, id), the order the run read it in before, so the
/// records of that instant before the named one were read already and are
/// passed over, on every page they fill. If the named record is not among
/// them (it changed since), the ones passed over are read after all, when
/// the listing moves past that instant or ends: read twice rather than missed.
#[derive(Debug)]
struct ResumePoint {
    at: DateTime<Utc>,
    id: String,
    /// Records of the instant passed over while the named one is not found.
    held: Vec<CrmRecord>,
    /// The named record was found, or the listing moved past its instant.
    passed: bool,
}

impl ResumePoint {
    fn new(at: DateTime<Utc>, id: String) -> Self {
        Self {
            at,
            id,
            held: Vec::new(),
            passed: false,
        }
    }

    /// The records of a page still to read; `last`: the listing ends with it.
    fn unread(&mut self, records: Vec<CrmRecord>, last: bool) -> Vec<CrmRecord> {
        if self.passed {
            return records;
        }
        let mut unread = Vec::with_capacity(records.len());
        for record in records {
            if self.passed {
                unread.push(record);
            } else if record.modified_at < self.at {
                // Listed from `at` on: nothing older comes.
            } else if record.modified_at == self.at && record.id == self.id {
                self.passed = true;
                self.held.clear();
            } else if record.modified_at == self.at {
                self.held.push(record);
            } else {
                self.passed = true;
                unread.append(&mut self.held);
                unread.push(record);
            }
        }
        if last && !self.passed {
            self.passed = true;
            unread.append(&mut self.held);
        }
        unread
    }
}

/// What the CRM's model says about one module: asked once a page.
#[derive(Debug, Clone, Copy)]
struct Capabilities {
    /// The module flows CRM to platform only (contacts owned by sales,
    /// S4): its records are never written to, and one makes its
    /// contact a client (S10).
    secondary: bool,
    /// The CRM converts a client's lead into a contact (S10).
    converts_leads: bool,
    /// The module platform contacts are written to: a secondary record's
    /// contact linked there takes the link over (the lead it came from).
    export_module: CrmModule,
}

impl Capabilities {
    fn of(run: &Run<'_>, module: CrmModule) -> Self {
        Self {
            secondary: one_way(run, module),
            converts_leads: run.kit.converts_leads,
            export_module: run.kit.export_module(),
        }
    }
}

/// One page of a module's records: load, pair and decide, apply, record.
/// Returns what stops the run after this page, if anything (its page is
/// recorded first).
async fn import_page(
    run: &mut Run<'_>,
    module: CrmModule,
    records: Vec<CrmRecord>,
) -> Result<Option<Stop>, Stop> {
    let last = records.last().map(|r| (r.modified_at, r.id.clone()));
    let can = Capabilities::of(run, module);
    let loaded = load(run, module, records).await?;
    let mappings = mappings_for(run, module);
    let rules = rules(run, module, &mappings);
    let mut items = Items {
        run: &run.run,
        rows: Vec::new(),
    };
    let mut legs = run.legs;
    let pairs = pair_and_decide(run, &rules, can, module, loaded, &mut items, &mut legs);
    let mut applied = apply(run, module, can, &pairs).await;
    run.written_from = run
        .written_from
        .into_iter()
        .chain(applied.first_write)
        .min();
    run.crm_written_from = run
        .crm_written_from
        .into_iter()
        .chain(applied.first_write)
        .min();
    let taken = emails_taken(run, &pairs).await?;
    let mut page = PageRows::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        page.record(
            run,
            module,
            pair,
            &mut applied.of(i),
            &taken,
            &mut items,
            &mut legs,
        );
    }
    let rows = std::mem::take(&mut items.rows);
    let checkpoint = last.filter(|_| applied.stop.is_none());
    save(run, module, page, rows, checkpoint).await?;
    run.legs = legs;
    Ok(applied.stop)
}

/// What a page's records are paired with, read once for the page.
struct Loaded {
    /// The records the run takes (its filter and its retry applied).
    records: Vec<CrmRecord>,
    /// The records' links, by CRM record id.
    link_by_record: HashMap<String, crm_link::Model>,
    /// The contacts those links and the records' e-mails name, by id.
    by_id: HashMap<String, contact::Model>,
    /// The same contacts by e-mail.
    by_email: HashMap<String, contact::Model>,
    /// Those contacts' links (in any module), by contact id.
    linked_contacts: HashMap<String, crm_link::Model>,
    /// The CRM-side index rows of the module by e-mail (for duplicates, S8).
    groups: HashMap<String, Vec<crm_record::Model>>,
}

/// Step 1: indexes every record listed, then reads what the records the run
/// takes are paired with.
async fn load(
    run: &mut Run<'_>,
    module: CrmModule,
    records: Vec<CrmRecord>,
) -> Result<Loaded, Stop> {
    index_listed(run, module, &records).await?;
    let records: Vec<CrmRecord> = records
        .into_iter()
        .filter(|r| passes_filter(run, r))
        .filter(|r| {
            run.retry
                .as_ref()
                .is_none_or(|(crm, _)| crm.contains(&r.id))
        })
        .collect();
    let emails: Vec<String> = records
        .iter()
        .filter_map(|r| normalised(r.email.as_deref()))
        .collect();
    let ids = records.iter().map(|r| r.id.clone()).collect();
    let link_by_record: HashMap<String, crm_link::Model> = run
        .links_by_records(module, ids)
        .await?
        .into_iter()
        .map(|l| (l.crm_record_id.clone(), l))
        .collect();
    let linked_ids = link_by_record.values().map(|l| l.contact_id.clone());
    let contacts = run.contacts(linked_ids.collect(), emails.clone()).await?;
    let linked_contacts = run
        .links_by_contacts(contacts.iter().map(|c| c.id.clone()).collect())
        .await?
        .into_iter()
        .map(|l| (l.contact_id.clone(), l))
        .collect();
    // Owners are matched when a contact already has one to send (S9).
    if contacts.iter().any(|c| c.owner_email.is_some()) {
        run.load_owners().await?;
    }
    let mut groups: HashMap<String, Vec<crm_record::Model>> = HashMap::new();
    for r in run.crm_records_by_email(module, emails).await? {
        if let Some(e) = r.email.clone() {
            groups.entry(e).or_default().push(r);
        }
    }
    Ok(Loaded {
        records,
        link_by_record,
        by_id: contacts.iter().map(|c| (c.id.clone(), c.clone())).collect(),
        by_email: contacts.into_iter().map(|c| (c.email.clone(), c)).collect(),
        linked_contacts,
        groups,
    })
}

/// The e-mail index of everything listed, filtered or not.
async fn index_listed(
    run: &mut Run<'_>,
    module: CrmModule,
    records: &[CrmRecord],
) -> Result<(), Stop> {
    let index: Vec<crm_record::Model> = records
        .iter()
        .map(|r| crm_record::Model {
            tenant_id: run.tenant.as_str().to_owned(),
            connector_id: run.connector.id.clone(),
            module,
            crm_record_id: r.id.clone(),
            email: normalised(r.email.as_deref()),
            modified_at: r.modified_at,
        })
        .collect();
    match &mut run.shadow {
        Some(shadow) => shadow.put_index(index),
        None => store::upsert_crm_records(&run.ctx.db, index).await?,
    }
    Ok(())
}

/// A record paired with its contact, or why it is not synced.
#[allow(
    clippy::large_enum_variant,
    reason = "one a record, used at once: boxing would only add allocations"
)]
enum Pairing {
    /// Synced with `contact` (none yet: one is made) through `link` (none
    /// yet: one is made).
    Paired {
        email: Option<String>,
        contact: Option<contact::Model>,
        link: Option<crm_link::Model>,
    },
    /// Not synced: a reason code and what a person can do.
    Rejected { code: &'static str, message: String },
    /// Nothing to do (a converted lead whose contact has moved on).
    Skipped,
}

/// Steps 2 and 3: pairs each record and decides each pair; records the
/// rejections.
fn pair_and_decide(
    run: &Run<'_>,
    rules: &Rules<'_>,
    can: Capabilities,
    module: CrmModule,
    loaded: Loaded,
    items: &mut Items<'_>,
    legs: &mut Legs,
) -> Vec<ImportPair> {
    let mut pairs = Vec::new();
    for record in &loaded.records {
        // S13: the FROM_CRM rules decide which records come in.
        let sets =
            match sync_rules::verdict(&run.sync_rules, SyncDirection::FromCrm, &record.values) {
                Ok(sets) => sets,
                Err(reason) => {
                    items.push(legs, excluded(SyncDirection::FromCrm, record, &reason));
                    continue;
                }
            };
        match pair(&loaded, can, module, record) {
            // Issue 24: an archived contact is never brought back: nothing is
            // written onto it, no contact is made, its link stays as it is.
            Pairing::Paired {
                contact: Some(contact),
                email,
                ..
            } if contact.archived_at.is_some() => {
                let reason = Rejection {
                    code: ARCHIVED_IN_PLATFORM.into(),
                    field: None,
                    message: "the platform contact is archived; unarchive it to sync it again"
                        .into(),
                };
                items.push(
                    legs,
                    ItemInput {
                        direction: SyncDirection::FromCrm,
                        outcome: ItemOutcome::Unchanged,
                        email: email.or(record.email.clone()),
                        contact_id: Some(contact.id),
                        crm_record_id: Some(record.id.clone()),
                        rejection: Some(&reason),
                        changes: None,
                    },
                );
            }
            Pairing::Paired {
                email,
                contact,
                link,
            } => pairs.push(decide_pair(
                run,
                rules,
                can,
                record.clone(),
                (email, contact, link),
                sets,
            )),
            Pairing::Rejected { code, message } => {
                let rejection = Rejection {
                    code: code.into(),
                    field: None,
                    message,
                };
                items.push(
                    legs,
                    ItemInput {
                        direction: SyncDirection::FromCrm,
                        outcome: ItemOutcome::Rejected,
                        email: record.email.clone(),
                        contact_id: None,
                        crm_record_id: Some(record.id.clone()),
                        rejection: Some(&rejection),
                        changes: None,
                    },
                );
            }
            Pairing::Skipped => {}
        }
    }
    pairs
}

/// Step 2 for one record: by its link, else by its e-mail.
fn pair(loaded: &Loaded, can: Capabilities, module: CrmModule, record: &CrmRecord) -> Pairing {
    let email = normalised(record.email.as_deref());
    match (loaded.link_by_record.get(&record.id), email) {
        (Some(link), email) => Pairing::Paired {
            email,
            contact: loaded.by_id.get(&link.contact_id).cloned(),
            link: Some(link.clone()),
        },
        (None, None) => Pairing::Rejected {
            code: "MISSING_EMAIL",
            message: "the CRM record has no valid e-mail address; add one in the CRM to sync it"
                .into(),
        },
        (None, Some(email)) => pair_by_email(loaded, can, module, record, email),
    }
}

/// A record without a link, by its e-mail: the contact that has it, unless
/// another record of that e-mail is the one synced (S8).
fn pair_by_email(
    loaded: &Loaded,
    can: Capabilities,
    module: CrmModule,
    record: &CrmRecord,
    email: String,
) -> Pairing {
    // S8: of several records with one e-mail, the most recently modified is used.
    let group = loaded.groups.get(&email).cloned().unwrap_or_default();
    let winner = decide::pick_duplicate(group, |r| (r.modified_at, r.crm_record_id.clone()))
        .map(|(w, _)| w.crm_record_id);
    let contact = loaded.by_email.get(&email).cloned();
    let linked_elsewhere = contact
        .as_ref()
        .and_then(|c| loaded.linked_contacts.get(&c.id))
        .filter(|l| l.crm_record_id != record.id || l.module != module);
    let mut link = None;
    match linked_elsewhere {
        // S10: the CRM contact a linked lead became takes the link over.
        Some(l) if can.secondary && l.module == can.export_module => link = Some(l.clone()),
        // A converted lead whose contact has moved on: nothing to do.
        Some(_) if record.converted => return Pairing::Skipped,
        _ => {}
    }
    let other = match (&link, linked_elsewhere) {
        (Some(_), _) => None,
        (None, Some(l)) => Some(l.crm_record_id.clone()),
        (None, None) => winner.filter(|w| *w != record.id),
    };
    if let Some(other) = other {
        return Pairing::Rejected {
            code: "DUPLICATE_IN_CRM",
            message: format!(
                "another CRM record ({other}) has the e-mail {email} and is the one synced; merge the duplicates in the CRM"
            ),
        };
    }
    Pairing::Paired {
        email: Some(email),
        contact,
        link,
    }
}

/// A record, its contact and what the decision says to do with them.
struct ImportPair {
    record: CrmRecord,
    email: Option<String>,
    contact: Option<contact::Model>,
    /// The contact the decision creates, made with it.
    new_contact: Option<contact::Model>,
    link: Option<crm_link::Model>,
    decision: Decision,
}

/// An UNCHANGED item for a CRM record a sync rule keeps from syncing one way
/// (S13): the reason names the rule.
fn excluded<'a>(
    direction: SyncDirection,
    record: &CrmRecord,
    reason: &'a Rejection,
) -> ItemInput<'a> {
    ItemInput {
        direction,
        outcome: ItemOutcome::Unchanged,
        email: record.email.clone(),
        contact_id: None,
        crm_record_id: Some(record.id.clone()),
        rejection: Some(reason),
        changes: None,
    }
}

/// Step 3 for one pair, with the fields its FROM_CRM rule sets (S13).
fn decide_pair(
    run: &Run<'_>,
    rules: &Rules<'_>,
    can: Capabilities,
    record: CrmRecord,
    (email, contact, link): (
        Option<String>,
        Option<contact::Model>,
        Option<crm_link::Model>,
    ),
    sets: &[SetField],
) -> ImportPair {
    let platform_url = &run.ctx.options.platform_url;
    let platform = contact.as_ref().map(|c| contact_values(c, platform_url));
    let snapshot = link.as_ref().and_then(|l| Snapshot::from_json(&l.snapshot));
    let newer = match &contact {
        Some(c) if c.updated_at > record.modified_at => Side::Platform,
        _ => Side::Crm,
    };
    let pair = Pair {
        platform: platform.as_ref(),
        crm: Some(&record.values),
        crm_converted: record.converted,
        snapshot: snapshot.as_ref(),
        newer,
    };
    let mut decision = decide::decide(&pair, rules);
    // The record is not ours to write: a secondary module's, a converted lead.
    let crm_owned = can.secondary || record.converted;
    if crm_owned {
        make_client(&mut decision, contact.as_ref());
    }
    sync_rules::set_platform_fields(&mut decision, platform.as_ref(), sets);
    let mut new = None;
    if let (Write::Create(values), Some(email)) = (&decision.to_platform, &email) {
        let model = new_contact(run.tenant.as_str(), email, values, Utc::now());
        if !crm_owned {
            decision = with_platform_fields(rules, &record, &model, decision, platform_url);
        }
        new = Some(model);
    }
    write_back_rules(run, &mut decision, platform, new.as_ref(), &record);
    ImportPair {
        record,
        email,
        contact,
        new_contact: new,
        link,
        decision,
    }
}

/// S13: a write-back to the CRM follows the TO_CRM rules, evaluated on the
/// contact as this pass leaves it. An excluded write is refused with the
/// rule's reason (its item is UNCHANGED, the snapshot keeps the CRM side as
/// it was); an included one gets its rule's CRM fields.
fn write_back_rules(
    run: &Run<'_>,
    decision: &mut Decision,
    platform: Option<Values>,
    created: Option<&contact::Model>,
    record: &CrmRecord,
) {
    if !matches!(decision.to_crm, Write::Update(_)) {
        return;
    }
    let mut values = platform
        .or_else(|| created.map(|c| contact_values(c, &run.ctx.options.platform_url)))
        .unwrap_or_default();
    if let Write::Update(changed) = &decision.to_platform {
        values.extend(changed.clone());
    }
    match sync_rules::verdict(&run.sync_rules, SyncDirection::ToCrm, &values) {
        Ok(sets) => sync_rules::set_crm_fields(decision, Some(&record.values), sets),
        Err(reason) => decision.to_crm = Write::Reject(reason),
    }
}

/// A contact created from the CRM has platform fields of its own (its link,
/// score, state) that go back to the CRM in the same pass (F6).
fn with_platform_fields(
    rules: &Rules<'_>,
    record: &CrmRecord,
    created: &contact::Model,
    decision: Decision,
    platform_url: &str,
) -> Decision {
    let values = contact_values(created, platform_url);
    let snapshot = decision.snapshot(true, false);
    let second = decide::decide(
        &Pair {
            platform: Some(&values),
            crm: Some(&record.values),
            crm_converted: record.converted,
            snapshot: Some(&snapshot),
            newer: Side::Platform,
        },
        rules,
    );
    decision.with_crm_side_of(second)
}

/// S10: a CRM contact, or a lead converted in the CRM, makes the platform
/// contact a client (never the other way: a client stays a client).
fn make_client(decision: &mut Decision, contact: Option<&contact::Model>) {
    if contact.is_some_and(|c| c.lifecycle == Lifecycle::Client) {
        return;
    }
    let lifecycle = |l: Lifecycle| Value::String(l.as_str().to_owned());
    decision.set_platform_field(
        "lifecycle",
        contact.map(|c| lifecycle(c.lifecycle)),
        lifecycle(Lifecycle::Client),
    );
}

/// What a page's CRM calls did, by pair index, and what stops the run.
struct Applied {
    writes: HashMap<usize, Result<WriteResult, CrmError>>,
    conversions: HashMap<usize, Result<Conversion, CrmError>>,
    /// The pairs a dry run would convert.
    dry_conversions: HashSet<usize>,
    /// The CRM's modification time of the earliest write.
    first_write: Option<DateTime<Utc>>,
    stop: Option<Stop>,
}

/// What the CRM calls did to one pair.
struct PairCalls {
    write: Option<Result<WriteResult, CrmError>>,
    conversion: Option<Result<Conversion, CrmError>>,
    dry_converted: bool,
}

impl Applied {
    /// Takes pair `i`'s results.
    fn of(&mut self, i: usize) -> PairCalls {
        PairCalls {
            write: self.writes.remove(&i),
            conversion: self.conversions.remove(&i),
            dry_converted: self.dry_conversions.contains(&i),
        }
    }
}

/// Step 4: platform changes found on the way in go out in the same pass;
/// then a platform client whose lead is not converted yet converts it (S10).
async fn apply(
    run: &Run<'_>,
    module: CrmModule,
    can: Capabilities,
    pairs: &[ImportPair],
) -> Applied {
    let writes = write_back(run, module, pairs).await;
    let mut stop = stop_of(writes.values());
    let leads: Vec<(usize, String)> = pairs
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            can.converts_leads
                && !can.secondary
                && !p.record.converted
                && p.contact
                    .as_ref()
                    .is_some_and(|c| c.lifecycle == Lifecycle::Client)
                && !matches!(p.decision.to_crm, Write::Reject(_))
                && writes.get(i).is_none_or(Result::is_ok)
        })
        .map(|(i, p)| (i, p.record.id.clone()))
        .collect();
    let dry_conversions = would_convert(run, &leads);
    let conversions = convert_leads(run, leads, &mut stop).await;
    let first_write = writes
        .values()
        .filter_map(|r| r.as_ref().ok().map(|w| w.modified_at))
        .min();
    Applied {
        writes,
        conversions,
        dry_conversions,
        first_write,
        stop,
    }
}

/// The pairs' CRM updates in one batch (none in a dry run).
async fn write_back(
    run: &Run<'_>,
    module: CrmModule,
    pairs: &[ImportPair],
) -> HashMap<usize, Result<WriteResult, CrmError>> {
    let (idx, writes): (Vec<usize>, Vec<RecordWrite>) = pairs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.decision.to_crm {
            Write::Update(values) => Some((
                i,
                RecordWrite {
                    id: Some(p.record.id.clone()),
                    values: values.clone(),
                    owner_email: None,
                    email: p.email.clone().unwrap_or_default(),
                },
            )),
            _ => None,
        })
        .unzip();
    if run.dry() || writes.is_empty() {
        return HashMap::new();
    }
    let results = run.client.write(module, writes).await;
    idx.into_iter().zip(results).collect()
}

/// E-mails flowing in must not take another contact's: the contacts that
/// hold the e-mails the pairs bring in, by e-mail.
async fn emails_taken(
    run: &Run<'_>,
    pairs: &[ImportPair],
) -> Result<HashMap<String, String>, Stop> {
    let incoming: Vec<String> = pairs
        .iter()
        .filter_map(|p| match &p.decision.to_platform {
            Write::Update(v) => v.get("email").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect();
    Ok(run
        .contacts(Vec::new(), incoming)
        .await?
        .into_iter()
        .map(|c| (c.email, c.id))
        .collect())
}

/// New contacts per INSERT statement (a contact binds under twenty values).
const NEW_CONTACTS_PER_STATEMENT: usize = 1_000;

/// Step 5's rows, gathered pair by pair before the page's transaction.
struct PageRows {
    now: DateTime<Utc>,
    new_contacts: Vec<contact::Model>,
    updated_contacts: Vec<contact::Model>,
    links: Vec<store::LinkRow>,
    /// Index rows of the contacts lead conversions made.
    index: Vec<crm_record::Model>,
    /// Contacts this page decided (the export leg skips them).
    touched: Vec<String>,
    /// CRM contacts this page's conversions made.
    converted: Vec<String>,
    /// Changes of opt-out state this page made (S9).
    consent: Vec<consent_event::Model>,
}

/// One pair's outcome on each side, as recorded.
struct Sides {
    to_platform: Write,
    to_crm: Write,
    /// The CRM record's modification time after this pass.
    crm_modified: DateTime<Utc>,
    /// True when the CRM holds the decided values (for the link's snapshot).
    crm_applied: bool,
}

impl PageRows {
    fn new() -> Self {
        Self {
            now: Utc::now(),
            new_contacts: Vec::new(),
            updated_contacts: Vec::new(),
            links: Vec::new(),
            index: Vec::new(),
            touched: Vec::new(),
            converted: Vec::new(),
            consent: Vec::new(),
        }
    }

    /// Step 5 for one pair: its contact change, link and items.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        run: &Run<'_>,
        module: CrmModule,
        p: ImportPair,
        calls: &mut PairCalls,
        taken: &HashMap<String, String>,
        items: &mut Items<'_>,
        legs: &mut Legs,
    ) {
        let mut sides = sides_of(run, &p, calls.write.take(), taken);
        let contact_id = self.contact_change(run, &p, &sides.to_platform);
        let conversion = conversion_of(calls.conversion.take(), &mut sides.to_crm);
        let converted = conversion.is_some() || calls.dry_converted;
        if let Some(contact_id) = &contact_id {
            self.link(run, module, &p, contact_id, &sides, conversion.as_ref());
        }
        // A contact a dry run would create has no id yet.
        let item_contact =
            contact_id.filter(|_| !(run.dry() && matches!(sides.to_platform, Write::Create(_))));
        push_items(items, legs, &p, &sides, converted, item_contact);
    }

    /// The pair's contact made or changed; its id, if it has one.
    fn contact_change(
        &mut self,
        run: &Run<'_>,
        p: &ImportPair,
        to_platform: &Write,
    ) -> Option<String> {
        let source =
            || consent_event::Source::sync(&run.connector.id, run.connector.kind, &run.run.id);
        match (to_platform, &p.contact) {
            (Write::Create(_), None) => {
                let model = p.new_contact.clone().expect("made with the decision");
                let id = model.id.clone();
                self.consent.extend(consent_event::change(
                    &model.tenant_id,
                    &id,
                    None,
                    model.opted_out,
                    &source(),
                    self.now,
                ));
                self.new_contacts.push(model);
                Some(id)
            }
            (Write::Update(values), Some(c)) => {
                let mut updated = c.clone();
                apply_values(&mut updated, values);
                updated.updated_at = self.now;
                self.consent.extend(consent_event::change(
                    &c.tenant_id,
                    &c.id,
                    Some(c.opted_out),
                    updated.opted_out,
                    &source(),
                    self.now,
                ));
                self.updated_contacts.push(updated);
                Some(c.id.clone())
            }
            (_, c) => c.as_ref().map(|c| c.id.clone()),
        }
    }

    /// The pair's link, moved to the contact its lead became if converted.
    fn link(
        &mut self,
        run: &Run<'_>,
        module: CrmModule,
        p: &ImportPair,
        contact_id: &str,
        sides: &Sides,
        conversion: Option<&Conversion>,
    ) {
        self.touched.push(contact_id.to_owned());
        let platform_applied = !matches!(sides.to_platform, Write::Reject(_));
        let mut link = store::LinkRow {
            id: p
                .link
                .as_ref()
                .map_or_else(crmsync_entity::new_id, |l| l.id.clone()),
            tenant_id: run.tenant.as_str().to_owned(),
            connector_id: run.connector.id.clone(),
            contact_id: contact_id.to_owned(),
            module,
            crm_record_id: p.record.id.clone(),
            snapshot: p
                .decision
                .stored_snapshot(platform_applied, sides.crm_applied),
            crm_modified_at: Some(sides.crm_modified),
            last_synced_at: self.now,
        };
        if let Some(c) = conversion {
            converted_link(&mut link, c, &mut self.index, p.email.as_deref());
            self.converted.push(c.contact_id.clone());
        }
        self.links.push(link);
    }
}

/// What each side of a pair ends with, given the CRM's answer to its write.
fn sides_of(
    run: &Run<'_>,
    p: &ImportPair,
    write: Option<Result<WriteResult, CrmError>>,
    taken: &HashMap<String, String>,
) -> Sides {
    let mut to_platform = p.decision.to_platform.clone();
    if let (Write::Update(v), Some(c)) = (&to_platform, &p.contact)
        && let Some(e) = v.get("email").and_then(Value::as_str)
        && taken.get(e).is_some_and(|id| *id != c.id)
    {
        to_platform = Write::Reject(Rejection {
            code: "EMAIL_TAKEN".into(),
            field: Some("email".into()),
            message: format!(
                "the CRM record's new e-mail {e} belongs to another platform contact; merge them first"
            ),
        });
    }
    let mut to_crm = p.decision.to_crm.clone();
    let mut crm_modified = p.record.modified_at;
    match &write {
        Some(Ok(r)) => crm_modified = r.modified_at,
        Some(Err(e @ CrmError::Rejected { .. })) => to_crm = Write::Reject(rejection_of(e)),
        // Not applied (the run stops): no item, the next run tries again.
        Some(Err(_)) => to_crm = Write::Unchanged,
        None => {}
    }
    let crm_applied = match (&p.decision.to_crm, &write) {
        (Write::Update(_), Some(Ok(_))) => true,
        (Write::Update(_), _) => run.dry(),
        (Write::Reject(_), _) => false,
        _ => true,
    } && !matches!(to_crm, Write::Reject(_));
    Sides {
        to_platform,
        to_crm,
        crm_modified,
        crm_applied,
    }
}

/// The pair's items: FROM_CRM always; TO_CRM when the CRM side changed, was
/// refused or converted.
fn push_items(
    items: &mut Items<'_>,
    legs: &mut Legs,
    p: &ImportPair,
    sides: &Sides,
    converted: bool,
    contact_id: Option<String>,
) {
    let reason = |w: &Write| match w {
        Write::Reject(r) => Some(r.clone()),
        _ => None,
    };
    let platform_reason = reason(&sides.to_platform);
    let outcome = outcome_of(&sides.to_platform, &p.decision.platform_conflicts);
    items.push(
        legs,
        ItemInput {
            direction: SyncDirection::FromCrm,
            outcome,
            email: p.email.clone().or(p.record.email.clone()),
            contact_id: contact_id.clone(),
            crm_record_id: Some(p.record.id.clone()),
            rejection: platform_reason.as_ref(),
            changes: item_changes(&p.decision, SyncDirection::FromCrm, outcome, false),
        },
    );
    if matches!(sides.to_crm, Write::Update(_) | Write::Reject(_)) || converted {
        let crm_reason = reason(&sides.to_crm);
        let outcome = match crm_outcome(&sides.to_crm, converted, &p.decision.crm_conflicts) {
            _ if sync_rules::is_exclusion(crm_reason.as_ref()) => ItemOutcome::Unchanged,
            outcome => outcome,
        };
        items.push(
            legs,
            ItemInput {
                direction: SyncDirection::ToCrm,
                outcome,
                email: p.email.clone(),
                contact_id,
                crm_record_id: Some(p.record.id.clone()),
                rejection: crm_reason.as_ref(),
                changes: item_changes(&p.decision, SyncDirection::ToCrm, outcome, converted),
            },
        );
    }
}

/// Step 5: the page's rows in one transaction, with its checkpoint (the
/// last record listed) when the run goes on and saves checkpoints. A dry run
/// keeps its contacts and links in memory for its own later reads.
async fn save(
    run: &mut Run<'_>,
    module: CrmModule,
    page: PageRows,
    items: Vec<store::ItemRow>,
    checkpoint: Option<(DateTime<Utc>, String)>,
) -> Result<(), Stop> {
    let PageRows {
        now,
        new_contacts,
        updated_contacts,
        links,
        index,
        touched,
        converted,
        consent,
    } = page;
    run.touched.extend(touched);
    run.converted.extend(converted);
    let db = &run.ctx.db;
    let txn = store::begin(db).await?;
    if let Some(shadow) = &mut run.shadow {
        for c in new_contacts.into_iter().chain(updated_contacts) {
            shadow.put_contact(c);
        }
        shadow.put_links(links.into_iter().map(store::LinkRow::into_model).collect());
    } else {
        // A statement per thousand contacts: a page may be larger than
        // SQLite's 32,766 bound values allow in one (a CRM page can hold 2,000).
        let mut rest = new_contacts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(NEW_CONTACTS_PER_STATEMENT));
            contact::Entity::insert_many(rest.into_iter().map(contact::ActiveModel::from))
                .exec_without_returning(&txn)
                .await?;
            rest = tail;
        }
        for updated in updated_contacts {
            update_model(updated, now).update(&txn).await?;
        }
        consent_event::record(&txn, consent).await?;
        store::upsert_crm_records(&txn, index).await?;
        store::upsert_links(&txn, links).await?;
        if run.saves_checkpoints()
            && let Some((at, id)) = &checkpoint
        {
            let (tenant, connector) = (&run.tenant, &run.connector.id);
            let key = (SyncDirection::FromCrm, module);
            store::save_checkpoint(&txn, tenant, connector, key, (*at, id), &run.run.id).await?;
        }
    }
    let recorded = store::insert_items(&txn, items).await?;
    store::commit(txn, db).await?;
    run.ctx.metrics.items_recorded(&recorded);
    Ok(())
}

/// True when the record carries the connector's filter value (C5).
fn passes_filter(run: &Run<'_>, record: &CrmRecord) -> bool {
    let (Some(field), Some(wanted)) = (&run.settings.filter_field, &run.settings.filter_value)
    else {
        return true;
    };
    let key = fields_of(run, record.module)
        .values()
        .find(|f| &f.api_name == field || f.label.eq_ignore_ascii_case(field.trim()))
        .map_or(field.as_str(), |f| f.api_name.as_str());
    let matches = |v: &Value| match v {
        Value::String(s) => s.trim().eq_ignore_ascii_case(wanted.trim()),
        Value::Bool(b) => b.to_string().eq_ignore_ascii_case(wanted.trim()),
        Value::Number(n) => n.to_string() == wanted.trim(),
        _ => false,
    };
    match record.values.get(key) {
        Some(Value::Array(items)) => items.iter().any(matches),
        Some(v) => matches(v),
        None => false,
    }
}

fn normalised(email: Option<&str>) -> Option<String> {
    email
        .and_then(|e| Email::parse(e).ok())
        .map(Email::into_string)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn record(id: &str, secs: i64) -> CrmRecord {
        CrmRecord {
            id: id.to_owned(),
            module: CrmModule::Leads,
            modified_at: at(secs),
            email: None,
            values: Default::default(),
            owner_email: None,
            converted: false,
        }
    }

    fn ids(records: &[CrmRecord]) -> Vec<&str> {
        records.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn a_resume_point_passes_over_its_instant_up_to_the_named_record_across_pages() {
        let mut point = ResumePoint::new(at(5), "c".into());
        let first = point.unread(vec![record("a", 5), record("b", 5)], false);
        let second = point.unread(vec![record("c", 5), record("d", 5), record("e", 6)], true);
        assert!(first.is_empty(), "{first:?}");
        assert_eq!(ids(&second), ["d", "e"]);
    }

    #[test]
    fn a_resume_point_whose_record_changed_reads_its_instant_again() {
        // Past the instant without the named record: what was held is read.
        let mut point = ResumePoint::new(at(5), "c".into());
        let first = point.unread(vec![record("a", 5)], false);
        let second = point.unread(vec![record("b", 5), record("e", 6)], false);
        assert!(first.is_empty());
        assert_eq!(ids(&second), ["a", "b", "e"]);

        // The listing ends within the instant: the same.
        let mut point = ResumePoint::new(at(5), "c".into());
        assert_eq!(ids(&point.unread(vec![record("a", 5)], true)), ["a"]);
    }
}
