//! The two legs of a run, page by page.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crmsync_entity::Email;
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{CrmModule, ItemOutcome, Lifecycle, MappingDirection, SyncDirection};
use crmsync_entity::models::{contact, crm_link, crm_record};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value;

use super::platform_side::{apply_values, contact_values, new_contact, update_model};
use futures::StreamExt;

use super::{OVERLAP, PAGE_SIZE, Run, Stop, store};
use crate::crm::{Conversion, CrmError, CrmField, CrmRecord, ListQuery, RecordWrite, WriteResult};
use crate::decide::{self, Decision, Pair, Rejection, Rules, Side, Snapshot, Values, Write};
use crate::events::LegCounts;
use crate::platform::Mapping;

/// Owners before they are needed: no contact of the page has one to match.
static NO_OWNERS: std::sync::LazyLock<std::collections::HashSet<String>> =
    std::sync::LazyLock::new(Default::default);

/// The CRM's fields of a module (loaded for every module a run uses).
fn fields_of<'a>(run: &'a Run<'_>, module: CrmModule) -> &'a HashMap<String, CrmField> {
    run.fields
        .get(&module)
        .expect("the run loads the fields of every module it uses")
}

/// True for a module that only flows CRM to platform (owned by sales, S4).
fn one_way(run: &Run<'_>, module: CrmModule) -> bool {
    module != run.kit.export_module()
}

/// The mappings that apply to a module: all of them for the module contacts
/// are written to; for a one-way module, those whose CRM field it has, as
/// FROM_CRM only.
fn mappings_for(run: &Run<'_>, module: CrmModule) -> Vec<Mapping> {
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

fn rules<'a>(run: &'a Run<'_>, module: CrmModule, mappings: &'a [Mapping]) -> Rules<'a> {
    Rules {
        mappings,
        fields: fields_of(run, module),
        joined_name: run.kit.joined_name,
        owners: run.owners.as_ref().unwrap_or(&NO_OWNERS),
        default_owner: run.settings.default_owner_email.as_deref(),
    }
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

/// Converts the leads of contacts that became clients (S10), a few at a time,
/// unless the page already stops the run; a failure that stops it is `stop`.
/// A dry run converts nothing (see [`would_convert`]).
async fn convert_leads(
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
fn would_convert(run: &Run<'_>, leads: &[(usize, String)]) -> std::collections::HashSet<usize> {
    if run.dry() {
        leads.iter().map(|(i, _)| *i).collect()
    } else {
        std::collections::HashSet::new()
    }
}

/// One lead's conversion: a refusal is reported on the item (the write before
/// it stays applied).
fn conversion_of(
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
fn crm_outcome(to_crm: &Write, converted: bool, conflicts: &[String]) -> ItemOutcome {
    match (to_crm, converted) {
        (Write::Unchanged, true) => ItemOutcome::Updated,
        _ => outcome_of(to_crm, conflicts),
    }
}

/// The stored field changes of an item that changes its target side
/// (CREATED, UPDATED, CONFLICT): the decision's, in the item's direction,
/// and a lead's conversion (S10) on the CRM side. One serialisation per item.
fn item_changes(
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
fn converted_link(
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

/// One item row and its count.
struct Items<'a> {
    run: &'a crmsync_entity::models::sync_run::Model,
    rows: Vec<store::ItemRow>,
}

struct ItemInput<'a> {
    direction: SyncDirection,
    outcome: ItemOutcome,
    email: Option<String>,
    contact_id: Option<String>,
    crm_record_id: Option<String>,
    rejection: Option<&'a Rejection>,
    /// The stored field changes ([`item_changes`]).
    changes: Option<String>,
}

impl Items<'_> {
    fn push(&mut self, legs: &mut crate::events::Legs, item: ItemInput<'_>) {
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
fn outcome_of(write: &Write, conflicts: &[String]) -> ItemOutcome {
    match write {
        Write::Create(_) => ItemOutcome::Created,
        Write::Update(_) if !conflicts.is_empty() => ItemOutcome::Conflict,
        Write::Update(_) => ItemOutcome::Updated,
        Write::Unchanged => ItemOutcome::Unchanged,
        Write::Reject(_) => ItemOutcome::Rejected,
    }
}

fn rejection_of(e: &CrmError) -> Rejection {
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
fn stop_of<'a, T: 'a>(results: impl IntoIterator<Item = &'a Result<T, CrmError>>) -> Option<Stop> {
    results.into_iter().find_map(|r| match r {
        Err(CrmError::Rejected { .. }) | Ok(_) => None,
        Err(e) => Some(Stop::from(e.clone())),
    })
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
    for module in modules {
        import_module(run, module).await?;
    }
    Ok(())
}

/// One module's records changed since its checkpoint, page by page.
async fn import_module(run: &mut Run<'_>, module: CrmModule) -> Result<(), Stop> {
    let since = if run.ignores_checkpoints() {
        None
    } else {
        store::checkpoint(
            &run.ctx.db,
            &run.tenant,
            &run.connector.id,
            SyncDirection::FromCrm,
            module,
        )
        .await?
        .map(|c| c.at - OVERLAP)
    };
    run.progress("import").await?;
    run.written_from = None;
    let mut cursor = None;
    loop {
        let page = run
            .client
            .list(&ListQuery {
                module,
                since,
                cursor: cursor.clone(),
                page_size: PAGE_SIZE,
            })
            .await?;
        let mut records = page.records;
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
        let stop = import_page(run, module, records).await?;
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

struct ImportPair {
    record: CrmRecord,
    email: Option<String>,
    contact: Option<contact::Model>,
    new_contact: Option<contact::Model>,
    link: Option<crm_link::Model>,
    decision: Decision,
}

async fn import_page(
    run: &mut Run<'_>,
    module: CrmModule,
    records: Vec<CrmRecord>,
) -> Result<Option<Stop>, Stop> {
    let db = &run.ctx.db;
    let tenant = run.tenant.clone();
    let connector_id = run.connector.id.clone();
    let last = records.last().map(|r| (r.modified_at, r.id.clone()));
    // The e-mail index of everything listed, filtered or not.
    let index: Vec<crm_record::Model> = records
        .iter()
        .map(|r| crm_record::Model {
            tenant_id: tenant.as_str().to_owned(),
            connector_id: connector_id.clone(),
            module,
            crm_record_id: r.id.clone(),
            email: normalised(r.email.as_deref()),
            modified_at: r.modified_at,
        })
        .collect();
    match &mut run.shadow {
        Some(shadow) => shadow.put_index(index),
        None => store::upsert_crm_records(db, index).await?,
    }

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
    let links = run
        .links_by_records(module, records.iter().map(|r| r.id.clone()).collect())
        .await?;
    let link_by_record: HashMap<String, crm_link::Model> = links
        .into_iter()
        .map(|l| (l.crm_record_id.clone(), l))
        .collect();
    let contacts = run
        .contacts(
            link_by_record
                .values()
                .map(|l| l.contact_id.clone())
                .collect(),
            emails.clone(),
        )
        .await?;
    let linked_contacts: HashMap<String, crm_link::Model> = run
        .links_by_contacts(contacts.iter().map(|c| c.id.clone()).collect())
        .await?
        .into_iter()
        .map(|l| (l.contact_id.clone(), l))
        .collect();
    // Owners are matched when a contact already has one to send (S9).
    if contacts.iter().any(|c| c.owner_email.is_some()) {
        run.load_owners().await?;
    }
    let by_id: HashMap<String, contact::Model> =
        contacts.iter().map(|c| (c.id.clone(), c.clone())).collect();
    let by_email: HashMap<String, contact::Model> =
        contacts.into_iter().map(|c| (c.email.clone(), c)).collect();
    let mut groups: HashMap<String, Vec<crm_record::Model>> = HashMap::new();
    for r in run.crm_records_by_email(module, emails).await? {
        if let Some(e) = r.email.clone() {
            groups.entry(e).or_default().push(r);
        }
    }

    let mut items = Items {
        run: &run.run,
        rows: Vec::new(),
    };
    let mut legs = run.legs;
    let mut pairs = Vec::new();
    let one_way = one_way(run, module);
    let mappings = mappings_for(run, module);
    let rules = rules(run, module, &mappings);
    for record in records {
        let email = normalised(record.email.as_deref());
        let mut link = link_by_record.get(&record.id).cloned();
        let reject = |items: &mut Items<'_>, legs: &mut _, code: &str, message: String| {
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
        };
        let contact = match (&link, &email) {
            (Some(link), _) => by_id.get(&link.contact_id).cloned(),
            (None, None) => {
                reject(
                    &mut items,
                    &mut legs,
                    "MISSING_EMAIL",
                    "the CRM record has no valid e-mail address; add one in the CRM to sync it"
                        .into(),
                );
                continue;
            }
            (None, Some(email)) => {
                // S8: of several records with one e-mail, the most recently modified is used.
                let group = groups.get(email).cloned().unwrap_or_default();
                let winner =
                    decide::pick_duplicate(group, |r| (r.modified_at, r.crm_record_id.clone()))
                        .map(|(w, _)| w.crm_record_id);
                let contact = by_email.get(email).cloned();
                let linked_elsewhere = contact
                    .as_ref()
                    .and_then(|c| linked_contacts.get(&c.id))
                    .filter(|l| l.crm_record_id != record.id || l.module != module);
                match linked_elsewhere {
                    // S10: the CRM contact a linked lead became takes the link over.
                    Some(l) if one_way && l.module == run.kit.export_module() => {
                        link = Some(l.clone());
                    }
                    // A converted lead whose contact has moved on: nothing to do.
                    Some(_) if record.converted => continue,
                    _ => {}
                }
                let other = match (&link, linked_elsewhere) {
                    (Some(_), _) => None,
                    (None, Some(l)) => Some(l.crm_record_id.clone()),
                    (None, None) => winner.filter(|w| *w != record.id),
                };
                if let Some(other) = other {
                    reject(
                        &mut items,
                        &mut legs,
                        "DUPLICATE_IN_CRM",
                        format!(
                            "another CRM record ({other}) has the e-mail {email} and is the one synced; merge the duplicates in the CRM"
                        ),
                    );
                    continue;
                }
                contact
            }
        };
        let platform = contact
            .as_ref()
            .map(|c| contact_values(c, &run.ctx.options.platform_url));
        let snapshot = link.as_ref().and_then(|l| Snapshot::from_json(&l.snapshot));
        let newer = match &contact {
            Some(c) if c.updated_at > record.modified_at => Side::Platform,
            _ => Side::Crm,
        };
        let mut decision = decide::decide(
            &Pair {
                platform: platform.as_ref(),
                crm: Some(&record.values),
                crm_converted: record.converted,
                snapshot: snapshot.as_ref(),
                newer,
            },
            &rules,
        );
        if one_way || record.converted {
            make_client(&mut decision, contact.as_ref());
        }
        // A contact created from the CRM has platform fields of its own (its
        // link, score, state) that go back to the CRM in the same pass (F6),
        // unless the record is not ours to write (a CRM contact, a converted lead).
        let (new_contact, decision) = match (&decision.to_platform, &email) {
            (Write::Create(values), Some(email)) if one_way || record.converted => {
                let model = new_contact(run.tenant.as_str(), email, values, Utc::now());
                (Some(model), decision)
            }
            (Write::Create(values), Some(email)) => {
                let model = new_contact(run.tenant.as_str(), email, values, Utc::now());
                let values = contact_values(&model, &run.ctx.options.platform_url);
                let snapshot = decision.snapshot(true, false);
                let second = decide::decide(
                    &Pair {
                        platform: Some(&values),
                        crm: Some(&record.values),
                        crm_converted: record.converted,
                        snapshot: Some(&snapshot),
                        newer: Side::Platform,
                    },
                    &rules,
                );
                let merged = decision.with_crm_side_of(second);
                (Some(model), merged)
            }
            _ => (None, decision),
        };
        pairs.push(ImportPair {
            record,
            email,
            contact,
            new_contact,
            link,
            decision,
        });
    }

    // Platform changes found on the way in go out in the same pass.
    let writes: Vec<(usize, RecordWrite)> = pairs
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
        .collect();
    let mut crm_results: HashMap<usize, Result<WriteResult, CrmError>> = HashMap::new();
    if !run.dry() && !writes.is_empty() {
        let (idx, writes): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        let results = run.client.write(module, writes).await;
        crm_results = idx.into_iter().zip(results).collect();
    }
    let mut stop = stop_of(crm_results.values());
    let first_write = crm_results
        .values()
        .filter_map(|r| r.as_ref().ok().map(|w| w.modified_at))
        .min();
    run.written_from = run.written_from.into_iter().chain(first_write).min();
    // S10: a platform client whose lead is not converted yet converts it.
    let leads: Vec<(usize, String)> = pairs
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            run.client.converts_leads()
                && !one_way
                && !p.record.converted
                && p.contact
                    .as_ref()
                    .is_some_and(|c| c.lifecycle == Lifecycle::Client)
                && !matches!(p.decision.to_crm, Write::Reject(_))
                && crm_results.get(i).is_none_or(Result::is_ok)
        })
        .map(|(i, p)| (i, p.record.id.clone()))
        .collect();
    let dry_conversions = would_convert(run, &leads);
    let mut conversions = convert_leads(run, leads, &mut stop).await;
    let mut index = Vec::new();

    // E-mails flowing in must not take another contact's.
    let incoming: Vec<String> = pairs
        .iter()
        .filter_map(|p| match &p.decision.to_platform {
            Write::Update(v) => v.get("email").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect();
    let taken: HashMap<String, String> = run
        .contacts(Vec::new(), incoming)
        .await?
        .into_iter()
        .map(|c| (c.email, c.id))
        .collect();

    let now = Utc::now();
    let mut new_contacts = Vec::new();
    let mut updated_contacts = Vec::new();
    let mut links = Vec::new();
    for (i, p) in pairs.into_iter().enumerate() {
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
        let crm_result = crm_results.remove(&i);
        let mut crm_modified = p.record.modified_at;
        match &crm_result {
            Some(Ok(r)) => crm_modified = r.modified_at,
            Some(Err(e @ CrmError::Rejected { .. })) => to_crm = Write::Reject(rejection_of(e)),
            // Not applied (the run stops): no item, the next run tries again.
            Some(Err(_)) => to_crm = Write::Unchanged,
            None => {}
        }
        let crm_applied = match (&p.decision.to_crm, &crm_result) {
            (Write::Update(_), Some(Ok(_))) => true,
            (Write::Update(_), _) => run.dry(),
            (Write::Reject(_), _) => false,
            _ => true,
        } && !matches!(to_crm, Write::Reject(_));
        let platform_applied = !matches!(to_platform, Write::Reject(_));

        let contact_id = match (&to_platform, &p.contact) {
            (Write::Create(_), None) => {
                let model = p.new_contact.clone().expect("made with the decision");
                let id = model.id.clone();
                new_contacts.push(model);
                Some(id)
            }
            (Write::Update(values), Some(c)) => {
                let mut updated = c.clone();
                apply_values(&mut updated, values);
                updated.updated_at = now;
                updated_contacts.push(updated);
                Some(c.id.clone())
            }
            (_, c) => c.as_ref().map(|c| c.id.clone()),
        };
        let conversion = conversion_of(conversions.remove(&i), &mut to_crm);
        let converted = conversion.is_some() || dry_conversions.contains(&i);
        if let Some(contact_id) = &contact_id {
            run.touched.insert(contact_id.clone());
            let mut link = store::LinkRow {
                id: p
                    .link
                    .as_ref()
                    .map_or_else(crmsync_entity::new_id, |l| l.id.clone()),
                tenant_id: run.tenant.as_str().to_owned(),
                connector_id: connector_id.clone(),
                contact_id: contact_id.clone(),
                module,
                crm_record_id: p.record.id.clone(),
                snapshot: p.decision.stored_snapshot(platform_applied, crm_applied),
                crm_modified_at: Some(crm_modified),
                last_synced_at: now,
            };
            if let Some(c) = &conversion {
                converted_link(&mut link, c, &mut index, p.email.as_deref());
                run.converted.insert(c.contact_id.clone());
            }
            links.push(link);
        }
        let reason = |w: &Write| match w {
            Write::Reject(r) => Some(r.clone()),
            _ => None,
        };
        let platform_reason = reason(&to_platform);
        let outcome = outcome_of(&to_platform, &p.decision.platform_conflicts);
        // A contact a dry run would create has no id yet.
        let item_contact = contact_id
            .clone()
            .filter(|_| !(run.dry() && matches!(to_platform, Write::Create(_))));
        items.push(
            &mut legs,
            ItemInput {
                direction: SyncDirection::FromCrm,
                outcome,
                email: p.email.clone().or(p.record.email.clone()),
                contact_id: item_contact.clone(),
                crm_record_id: Some(p.record.id.clone()),
                rejection: platform_reason.as_ref(),
                changes: item_changes(&p.decision, SyncDirection::FromCrm, outcome, false),
            },
        );
        if matches!(to_crm, Write::Update(_) | Write::Reject(_)) || converted {
            let crm_reason = reason(&to_crm);
            let outcome = crm_outcome(&to_crm, converted, &p.decision.crm_conflicts);
            items.push(
                &mut legs,
                ItemInput {
                    direction: SyncDirection::ToCrm,
                    outcome,
                    email: p.email.clone(),
                    contact_id: item_contact,
                    crm_record_id: Some(p.record.id.clone()),
                    rejection: crm_reason.as_ref(),
                    changes: item_changes(&p.decision, SyncDirection::ToCrm, outcome, converted),
                },
            );
        }
    }

    let rows = std::mem::take(&mut items.rows);
    let txn = store::begin(db).await?;
    if let Some(shadow) = &mut run.shadow {
        // A dry run: only for its own later reads.
        for c in new_contacts.into_iter().chain(updated_contacts) {
            shadow.put_contact(c);
        }
        shadow.put_links(links.into_iter().map(store::LinkRow::into_model).collect());
    } else {
        if !new_contacts.is_empty() {
            contact::Entity::insert_many(new_contacts.into_iter().map(contact::ActiveModel::from))
                .exec_without_returning(&txn)
                .await?;
        }
        for updated in updated_contacts {
            update_model(updated, now).update(&txn).await?;
        }
        store::upsert_crm_records(&txn, index).await?;
        store::upsert_links(&txn, links).await?;
        if stop.is_none()
            && run.saves_checkpoints()
            && let Some((at, id)) = &last
        {
            store::save_checkpoint(
                &txn,
                &tenant,
                &connector_id,
                SyncDirection::FromCrm,
                module,
                *at,
                id,
            )
            .await?;
        }
    }
    let recorded = store::insert_items(&txn, rows).await?;
    store::commit(txn, db).await?;
    run.ctx.metrics.items_recorded(&recorded);
    run.legs = legs;
    Ok(stop)
}

/// Platform to CRM: contacts changed since the checkpoint with a high enough
/// score, page by page, matched by link or by e-mail in the CRM-side index.
pub(crate) async fn export(run: &mut Run<'_>) -> Result<(), Stop> {
    let module = run.kit.export_module();
    // A page fills every write the CRM takes at once (ten batches of 100, say).
    let page_size = run.client.writes_in_flight().max(PAGE_SIZE as usize) as u32;
    let after: Option<(DateTime<Utc>, String)> = if run.ignores_checkpoints() {
        None
    } else {
        store::checkpoint(
            &run.ctx.db,
            &run.tenant,
            &run.connector.id,
            SyncDirection::ToCrm,
            module,
        )
        .await?
        .map(|c| (c.at - OVERLAP, String::new()))
    };
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
    let mut query = contact::Entity::for_tenant(&run.tenant)
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
    let found: HashMap<String, CrmRecord> = run
        .client
        .get_many(module, &wanted)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();

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
        let platform = contact_values(&contact, &run.ctx.options.platform_url);
        let decision = decide::decide(
            &Pair {
                platform: Some(&platform),
                crm: crm_values,
                crm_converted: record.is_some_and(|r| r.converted),
                snapshot: snapshot.as_ref(),
                newer,
            },
            &rules,
        );
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
            run.client.converts_leads()
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
                    SyncDirection::ToCrm,
                    self.module,
                    *at,
                    id,
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
