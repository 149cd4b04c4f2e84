//! CRM deletions (issue 24, S12) on the in-memory CRM, shaped like a CRM
//! with a deletion feed: found by the feed in every run and by a FULL run's
//! reconciliation; the link removed and kept as a tombstone, a DELETED item,
//! the contact archived only with `syncDeletions`; nothing applied by a run
//! that fails; a deleted record recreated only after its contact changes and
//! with `recreateDeleted`. The same rules run against every sandbox CRM in
//! the conformance suite.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{
    ConnectorKind, CrmModule, ItemOutcome, SyncDirection, SyncMode, SyncRunStatus, SyncTrigger,
};
use crmsync_entity::models::{crm_deletion, crm_link, run_listed_ids, sync_item, sync_run};
use crmsync_worker::credentials::Credentials;
use crmsync_worker::crm::memory::{MemoryCrm, Operation};
use crmsync_worker::crm::{CrmClient, CrmError, FieldType};
use crmsync_worker::jobs::{SyncJob, new_task_id};
use crmsync_worker::settings::ConnectorSettings;
use crmsync_worker::sync::{SyncError, Take, run_slice};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::engine::field;
use crate::support::App;

const PERSONS: CrmModule = CrmModule::Persons;
const DELETED_IN_CRM: &str = "DELETED_IN_CRM";

pub(crate) type Engine = App<Arc<MemoryCrm>>;

/// A tenant whose connector's runs go to an in-memory CRM posing as
/// Pipedrive (a change feed marks its deletions), with these settings.
async fn engine(settings: impl FnOnce(&mut ConnectorSettings)) -> Engine {
    engine_of(MemoryCrm::new(ConnectorKind::Pipedrive), settings).await
}

pub(crate) async fn engine_of(
    crm: MemoryCrm,
    settings: impl FnOnce(&mut ConnectorSettings),
) -> Engine {
    let fields = vec![
        field("email", FieldType::Email),
        field("first_name", FieldType::Text),
        field("last_name", FieldType::Text),
    ];
    let crm = Arc::new(crm.with_fields(PERSONS, fields));
    let fields = crm.fields(PERSONS).await.unwrap();
    let credentials = Credentials::new("unused");
    let base_url = "http://memory.invalid";
    let kind = crm.kind();
    let mut app = App::assemble(crm.clone(), kind, credentials, base_url, &fields, settings).await;
    app.ctx.options.crm_client = Some(crm);
    app
}

pub(crate) fn person(email: &str, last: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("email".to_owned(), json!(email)),
        ("first_name".to_owned(), json!("P")),
        ("last_name".to_owned(), json!(last)),
    ])
}

/// Two persons made in the CRM and synced: their ids, `a@x.com`'s first.
async fn two_synced(app: &Engine) -> (String, String) {
    let a = app.crm.put(PERSONS, None, person("a@x.com", "A")).id;
    let b = app.crm.put(PERSONS, None, person("b@x.com", "B")).id;
    app.crm.advance(Duration::seconds(1));
    let first = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&first);
    assert_eq!(first.from_crm_created, 2);
    assert!(link(app, &a).await.is_some());
    (a, b)
}

pub(crate) fn assert_succeeded(run: &sync_run::Model) {
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
}

async fn link(app: &Engine, crm_id: &str) -> Option<crm_link::Model> {
    crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::CrmRecordId.eq(crm_id))
        .one(&app.db.db)
        .await
        .unwrap()
}

async fn tombstones(app: &Engine) -> Vec<crm_deletion::Model> {
    crm_deletion::Entity::for_tenant(&app.tenant)
        .all(&app.db.db)
        .await
        .unwrap()
}

fn with_outcome(items: &[sync_item::Model], outcome: ItemOutcome) -> Vec<&sync_item::Model> {
    items.iter().filter(|i| i.outcome == outcome).collect()
}

#[tokio::test]
async fn a_deletion_in_the_feed_removes_the_link_and_keeps_the_contact() {
    let app = engine(|_| {}).await;
    let (a, b) = two_synced(&app).await;
    let contact = app.contact("a@x.com").await.unwrap();
    assert!(app.crm.delete(PERSONS, &a));

    let run = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&run);
    assert_eq!(run.from_crm_deleted, 1);
    assert_eq!(run.to_crm_deleted, 0);
    let items = app.items(&run).await;
    let deleted = with_outcome(&items, ItemOutcome::Deleted);
    assert_eq!(deleted.len(), 1, "{items:?}");
    assert_eq!(deleted[0].direction, SyncDirection::FromCrm);
    assert_eq!(deleted[0].crm_record_id.as_deref(), Some(a.as_str()));
    assert_eq!(deleted[0].contact_id.as_deref(), Some(contact.id.as_str()));
    assert_eq!(deleted[0].reason_code.as_deref(), Some(DELETED_IN_CRM));
    assert!(link(&app, &a).await.is_none(), "the link is removed");
    assert!(link(&app, &b).await.is_some(), "the other stays");
    let kept = app.contact("a@x.com").await.unwrap();
    assert!(kept.archived_at.is_none(), "syncDeletions is off");
    let stones = tombstones(&app).await;
    assert_eq!(stones.len(), 1);
    assert_eq!(stones[0].crm_record_id, a);
    assert_eq!(stones[0].contact_id, contact.id);
    assert!(stones[0].deleted_at.is_some(), "the feed's time is kept");
    // Not recreated by the run that found it, nor by the next.
    assert_eq!(app.crm.records(PERSONS).len(), 1);
    let next = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&next);
    assert_eq!(next.from_crm_deleted, 0, "found once");
    assert_eq!(next.to_crm_created, 0);
    assert_eq!(app.crm.records(PERSONS).len(), 1);
}

#[tokio::test]
async fn with_sync_deletions_the_contact_is_archived_and_never_removed() {
    let app = engine(|s| s.sync_deletions = true).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);

    let run = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&run);
    assert_eq!(run.from_crm_deleted, 1);
    let archived = app.contact("a@x.com").await.expect("never removed");
    assert!(archived.archived_at.is_some());
    let other = app.contact("b@x.com").await.unwrap();
    assert!(other.archived_at.is_none());
    let items = app.items(&run).await;
    assert!(
        with_outcome(&items, ItemOutcome::Deleted)[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("archived")),
        "{items:?}"
    );
}

#[tokio::test]
async fn only_a_full_run_reconciles_a_deletion_the_feed_does_not_list() {
    let app = engine(|_| {}).await;
    let (a, _) = two_synced(&app).await;
    // Gone longer ago than the feed remembers.
    assert!(app.crm.purge(PERSONS, &a));

    let incremental = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&incremental);
    assert_eq!(incremental.from_crm_deleted, 0);
    assert!(link(&app, &a).await.is_some(), "nothing says it is gone");

    let full = app.sync(SyncMode::Full).await;

    assert_succeeded(&full);
    assert_eq!(full.from_crm_deleted, 1);
    assert!(link(&app, &a).await.is_none());
    let items = app.items(&full).await;
    let deleted = with_outcome(&items, ItemOutcome::Deleted);
    assert_eq!(deleted.len(), 1, "{items:?}");
    assert_eq!(deleted[0].crm_record_id.as_deref(), Some(a.as_str()));
    assert_eq!(app.crm.records(PERSONS).len(), 1, "not recreated");
}

#[tokio::test]
async fn a_lookup_that_fails_leaves_the_link_alone() {
    let app = engine(|_| {}).await;
    let (a, _) = two_synced(&app).await;
    app.crm.purge(PERSONS, &a);
    // The lookup confirming the reconciliation fails on every retry.
    let unavailable = CrmError::Unavailable("503".into());
    app.crm.fail(Operation::GetMany, 0, 100, unavailable);

    let full = app.sync(SyncMode::Full).await;

    assert_succeeded(&full);
    assert_eq!(full.from_crm_deleted, 0);
    assert!(link(&app, &a).await.is_some(), "a fault is not a deletion");
    assert!(tombstones(&app).await.is_empty());
}

#[tokio::test]
async fn a_run_whose_listing_fails_archives_nothing_and_the_next_finds_it() {
    let app = engine(|s| s.sync_deletions = true).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);
    let unavailable = CrmError::Unavailable("502".into());
    app.crm.fail(Operation::List, 0, 100, unavailable);

    let failed = app.sync(SyncMode::Incremental).await;

    assert_eq!(failed.status, SyncRunStatus::Failed);
    assert_eq!(failed.from_crm_deleted, 0);
    let items = app.items(&failed).await;
    assert!(with_outcome(&items, ItemOutcome::Deleted).is_empty());
    assert!(link(&app, &a).await.is_some());
    assert!(app.contact("a@x.com").await.unwrap().archived_at.is_none());

    // The feed is read again from where the last complete read started.
    app.crm.recover(Operation::List);
    let next = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&next);
    assert_eq!(next.from_crm_deleted, 1);
    assert!(app.contact("a@x.com").await.unwrap().archived_at.is_some());
}

#[tokio::test]
async fn a_failing_feed_fails_the_run_before_anything_is_applied() {
    let app = engine(|_| {}).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);
    app.crm.fail(
        Operation::Deleted,
        0,
        100,
        CrmError::Unavailable("500".into()),
    );

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Failed);
    assert!(link(&app, &a).await.is_some());
    let read: Vec<_> = app
        .runs()
        .await
        .into_iter()
        .filter(|r| r.deletions_read_at.is_some())
        .collect();
    assert_eq!(read.len(), 1, "only the first run read its feed to the end");
}

#[tokio::test]
async fn a_first_run_skips_the_feed_and_the_next_reads_it_from_the_first() {
    let app = engine(|_| {}).await;
    let (a, _) = two_synced(&app).await;
    assert_eq!(
        app.crm.calls(Operation::Deleted),
        0,
        "with no link, no deletion applies: the feed is not read"
    );
    let first = app.runs().await;
    assert!(first[0].deletions_read_at.is_some(), "and counts as read");

    app.crm.delete(PERSONS, &a);
    let next = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&next);
    assert_eq!(app.crm.calls(Operation::Deleted), 1);
    assert_eq!(next.from_crm_deleted, 1);
    assert!(link(&app, &a).await.is_none());
}

#[tokio::test]
async fn a_changed_contact_is_rejected_unless_recreate_deleted_is_on() {
    let app = engine(|_| {}).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);
    assert_succeeded(&app.sync(SyncMode::Incremental).await);

    // Unchanged since: a FULL run says why it does not create it.
    let full = app.sync(SyncMode::Full).await;
    assert_succeeded(&full);
    let items = app.items(&full).await;
    let why: Vec<_> = items
        .iter()
        .filter(|i| i.direction == SyncDirection::ToCrm)
        .filter(|i| i.reason_code.as_deref() == Some(DELETED_IN_CRM))
        .collect();
    assert_eq!(why.len(), 1, "{items:?}");
    assert_eq!(why[0].outcome, ItemOutcome::Unchanged);
    assert_eq!(why[0].crm_record_id.as_deref(), Some(a.as_str()));

    // Changed afterwards, recreateDeleted off: REJECTED.
    let contact = app.contact("a@x.com").await.unwrap();
    app.edit_contact(&contact, |c| {
        c.last_name = sea_orm::ActiveValue::Set(Some("Changed".into()));
    })
    .await;
    let rejected = app.sync(SyncMode::Incremental).await;
    assert_eq!(rejected.status, SyncRunStatus::Partial);
    assert_eq!(rejected.to_crm_rejected, 1);
    assert_eq!(rejected.to_crm_created, 0);
    let items = app.items(&rejected).await;
    let refused = with_outcome(&items, ItemOutcome::Rejected);
    assert_eq!(refused[0].reason_code.as_deref(), Some(DELETED_IN_CRM));
    assert_eq!(app.crm.records(PERSONS).len(), 1);
}

#[tokio::test]
async fn with_recreate_deleted_a_changed_contact_is_created_again() {
    let app = engine(|s| s.recreate_deleted = true).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);
    let found = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&found);
    assert_eq!(found.to_crm_created, 0, "never by the run that found it");
    assert_eq!(app.crm.records(PERSONS).len(), 1);

    let contact = app.contact("a@x.com").await.unwrap();
    app.edit_contact(&contact, |c| {
        c.last_name = sea_orm::ActiveValue::Set(Some("Back".into()));
    })
    .await;
    let run = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&run);
    assert_eq!(run.to_crm_created, 1);
    let records = app.crm.records(PERSONS);
    let again = records
        .iter()
        .find(|r| r.email.as_deref() == Some("a@x.com"))
        .expect("created again");
    assert_ne!(again.id, a, "a new record");
    assert_eq!(again.values["last_name"], json!("Back"));
    assert!(link(&app, &again.id).await.is_some());
}

#[tokio::test]
async fn a_dry_run_lists_the_deletion_and_applies_nothing() {
    let app = engine(|s| s.sync_deletions = true).await;
    let (a, _) = two_synced(&app).await;
    app.crm.delete(PERSONS, &a);

    let dry = app.sync(SyncMode::DryRun).await;

    assert_succeeded(&dry);
    assert_eq!(dry.from_crm_deleted, 1);
    assert!(link(&app, &a).await.is_some());
    assert!(app.contact("a@x.com").await.unwrap().archived_at.is_none());
    assert!(tombstones(&app).await.is_empty());
    assert!(
        dry.deletions_read_at.is_none(),
        "a dry run reads for itself"
    );
    // The real run still finds it.
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.from_crm_deleted, 1);
}

/// A FULL run handed back at every page (its slice a millisecond, another
/// run waiting) goes on from its checkpoint with what its earlier slices
/// listed, so it still finds a deletion no feed lists, looking up only the
/// record it did not list.
#[tokio::test]
async fn a_full_run_handed_back_between_pages_still_reconciles() {
    let mut app = engine_of(
        MemoryCrm::new(ConnectorKind::Pipedrive).with_max_page_size(5),
        |_| {},
    )
    .await;
    let ids: Vec<String> = (0..30)
        .map(|i| {
            app.crm
                .put(PERSONS, None, person(&format!("p{i}@x.com"), "P"))
                .id
        })
        .collect();
    app.crm.advance(Duration::seconds(1));
    assert_succeeded(&app.sync(SyncMode::Incremental).await);
    assert!(app.crm.purge(PERSONS, &ids[7]));
    another_run_waits(&mut app).await;
    let lookups = app.crm.calls(Operation::GetMany);

    let done = full_run_in_slices(&app).await;

    assert_succeeded(&done);
    assert!(
        done.slices >= 3,
        "handed back between pages: {}",
        done.slices
    );
    assert_eq!(done.from_crm_deleted, 1);
    assert!(link(&app, &ids[7]).await.is_none());
    assert!(link(&app, &ids[8]).await.is_some());
    assert_eq!(
        app.crm.calls(Operation::GetMany) - lookups,
        1,
        "only the record no slice listed is looked up"
    );
    let left = run_listed_ids::Entity::find()
        .all(&app.db.db)
        .await
        .unwrap();
    assert!(left.is_empty(), "what it listed is forgotten: {left:?}");
}

/// Another connector's run waits, and slices last a millisecond: a run gives
/// its slot back after each page that moves its checkpoint on.
async fn another_run_waits(app: &mut Engine) {
    let fields = app.crm.fields(PERSONS).await.unwrap();
    let waiting_connector = crate::support::insert_connector(
        &app.db.db,
        app.ctx.credentials_key.as_ref(),
        app.tenant.as_str(),
        (
            ConnectorKind::Pipedrive,
            Credentials::new("unused"),
            "http://waiting.invalid",
        ),
        &fields,
        |_| {},
    )
    .await;
    sync_run::ActiveModel::from(sync_run::Model::queued(
        app.tenant.as_str(),
        &waiting_connector,
        SyncTrigger::Manual,
        SyncMode::Incremental,
        new_task_id(),
        None,
    ))
    .insert(&app.db.db)
    .await
    .unwrap();
    app.ctx.options.slots.slice = Some(std::time::Duration::from_millis(1));
}

/// A FULL run of the connector, slice after slice until it ends.
async fn full_run_in_slices(app: &Engine) -> sync_run::Model {
    let full = app.queued_run(SyncMode::Full, None).await;
    for _ in 0..100 {
        match run_slice(&app.ctx, &SyncJob::of(&full), Take::Wait).await {
            Ok(done) => return done,
            Err(SyncError::Yielded) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("the run never ended");
}

#[tokio::test]
async fn a_run_resumed_among_records_of_one_instant_reads_each_once() {
    let mut app = engine_of(
        MemoryCrm::new(ConnectorKind::Pipedrive).with_max_page_size(5),
        |_| {},
    )
    .await;
    // A bulk edit: twelve persons changed in the same instant, so the
    // checkpoint the run hands back at falls among them.
    let at = app.crm.now();
    for i in 0..12 {
        app.crm.set_clock(at);
        app.crm
            .put(PERSONS, None, person(&format!("s{i}@x.com"), "Same"));
    }
    app.crm.set_clock(at + Duration::seconds(1));
    another_run_waits(&mut app).await;

    let done = full_run_in_slices(&app).await;

    assert_succeeded(&done);
    assert!(done.slices >= 2, "handed back: {}", done.slices);
    assert_eq!(done.from_crm_created, 12);
    let mut emails: Vec<String> = app
        .items(&done)
        .await
        .into_iter()
        .filter(|i| i.direction == SyncDirection::FromCrm)
        .filter_map(|i| i.email)
        .collect();
    emails.sort();
    let listed = emails.len();
    emails.dedup();
    assert_eq!((listed, emails.len()), (12, 12), "each person read once");
}

#[tokio::test]
async fn a_full_run_handed_back_during_its_export_does_not_read_its_writes_back() {
    let mut app = engine_of(MemoryCrm::new(ConnectorKind::Pipedrive), |_| {}).await;
    // Three export pages: the run gives its slot back after one, and the
    // next slice lists the CRM again before it goes on exporting.
    for i in 0..1500 {
        app.add_contact(&format!("e{i}@x.com"), Some("E"), Some("Export"), 10)
            .await;
    }
    another_run_waits(&mut app).await;

    let done = full_run_in_slices(&app).await;

    assert_succeeded(&done);
    assert!(done.slices >= 2, "handed back: {}", done.slices);
    assert_eq!(done.to_crm_created, 1500);
    let read_back = app
        .items(&done)
        .await
        .into_iter()
        .filter(|i| i.direction == SyncDirection::FromCrm)
        .count();
    assert_eq!(
        read_back, 0,
        "the run's own writes are left for the next run"
    );
    app.ctx.options.slots.slice = None;
    let next = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&next);
    assert_eq!(next.from_crm_created + next.from_crm_updated, 0);
}
