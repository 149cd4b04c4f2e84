//! The sync engine on an in-memory CRM (`MemoryCrm`): paging, export, no
//! echo, conflicts, retries, the daily limit and lead conversion, with no
//! HTTP in between. The CRM is shaped like Pipedrive (one module of persons,
//! both ways) unless a test says otherwise; its clock is the test's, so
//! which side changed last is exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use crmsync_entity::enums::{
    ConnectorKind, CrmModule, ItemOutcome, Lifecycle, SyncDirection, SyncMode, SyncRunStatus,
};
use crmsync_entity::models::{contact, sync_item};
use crmsync_worker::credentials::Credentials;
use crmsync_worker::crm::memory::{MemoryCrm, Operation};
use crmsync_worker::crm::{CrmClient, CrmError, CrmField, CrmRecord, FieldType};
use sea_orm::ActiveModelTrait;
use sea_orm::ActiveValue::Set;
use serde_json::{Value, json};

use crate::support::{App, PLATFORM_URL};

const PERSONS: CrmModule = CrmModule::Persons;

type Engine = App<Arc<MemoryCrm>>;

/// A plain CRM field: neither mandatory, read-only nor custom.
pub(crate) fn field(api_name: &str, field_type: FieldType) -> CrmField {
    CrmField {
        api_name: api_name.into(),
        label: api_name.into(),
        field_type,
        mandatory: false,
        read_only: false,
        custom: false,
        options: None,
    }
}

/// The person fields the default mappings look for.
fn person_fields() -> Vec<CrmField> {
    vec![
        field("email", FieldType::Email),
        field("first_name", FieldType::Text),
        field("last_name", FieldType::Text),
        field("phone", FieldType::Phone),
        field("plezi_url", FieldType::Url),
        field("score", FieldType::Number),
    ]
}

/// A tenant whose connector's runs go to `crm`, shaped like Pipedrive.
async fn engine(crm: MemoryCrm) -> Engine {
    let crm = crm.with_fields(PERSONS, person_fields());
    // Never opened: the runs use the in-memory CRM.
    let credentials = Credentials::new("unused");
    assemble(crm, credentials, PERSONS).await
}

async fn assemble(crm: MemoryCrm, credentials: Credentials, module: CrmModule) -> Engine {
    let crm = Arc::new(crm);
    let fields = crm.fields(module).await.unwrap();
    let kind = crm.kind();
    let base_url = "http://memory.invalid";
    let mut app = App::assemble(crm.clone(), kind, credentials, base_url, &fields, |_| {}).await;
    app.ctx.options.crm_client = Some(crm);
    app
}

fn person(email: &str, first: &str, last: &str) -> BTreeMap<String, Value> {
    [
        ("email", json!(email)),
        ("first_name", json!(first)),
        ("last_name", json!(last)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `n` persons `p1@x.com`... made in the CRM, one minute apart.
fn add_persons(crm: &MemoryCrm, n: usize) {
    for i in 1..=n {
        crm.put(
            PERSONS,
            None,
            person(&format!("p{i}@x.com"), "P", &format!("{i}")),
        );
        crm.advance(Duration::minutes(1));
    }
}

fn by_email(crm: &MemoryCrm, email: &str) -> Vec<CrmRecord> {
    let records = crm.records(PERSONS).into_iter();
    records
        .filter(|r| r.email.as_deref() == Some(email))
        .collect()
}

fn count(items: &[sync_item::Model], direction: SyncDirection, outcome: ItemOutcome) -> usize {
    let matching = |i: &&sync_item::Model| i.direction == direction && i.outcome == outcome;
    items.iter().filter(matching).count()
}

#[tokio::test]
async fn an_import_reads_every_page_and_links_each_record_back() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive).with_max_page_size(10)).await;
    add_persons(&app.crm, 25);

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.from_crm_created, 25);
    assert_eq!(app.contacts().await.len(), 25);
    let p17 = app.contact("p17@x.com").await.expect("page two imported");
    assert_eq!(p17.last_name.as_deref(), Some("17"));
    assert_eq!(
        app.crm.calls(Operation::List),
        3,
        "three pages of ten; the third page's write-backs end the listing"
    );
    // Each record gets the link to its contact back (F6).
    let stored = &by_email(&app.crm, "p17@x.com")[0];
    let link = format!("{PLATFORM_URL}/contacts/{}", p17.id);
    assert_eq!(stored.values["plezi_url"], json!(link));
}

#[tokio::test]
async fn an_export_creates_each_contact_in_the_crm() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive)).await;
    let alice = app
        .add_contact("alice@x.com", Some("Alice"), Some("Liddell"), 30)
        .await;
    app.add_contact("bob@x.com", Some("Bob"), Some("Builder"), 5)
        .await;

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.to_crm_created, 2);
    assert_eq!(app.crm.records(PERSONS).len(), 2);
    let stored = &by_email(&app.crm, "alice@x.com")[0];
    assert_eq!(stored.values["first_name"], json!("Alice"));
    assert_eq!(stored.values["last_name"], json!("Liddell"));
    assert_eq!(stored.values["score"].as_f64(), Some(30.0));
    let items = app.items(&run).await;
    let item = items
        .iter()
        .find(|i| i.contact_id.as_deref() == Some(alice.id.as_str()));
    assert_eq!(
        item.unwrap().crm_record_id.as_deref(),
        Some(stored.id.as_str())
    );
}

#[tokio::test]
async fn a_second_run_writes_nothing_to_either_side() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive)).await;
    add_persons(&app.crm, 3);
    app.add_contact("alice@x.com", Some("Alice"), Some("Liddell"), 30)
        .await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.status, SyncRunStatus::Succeeded, "{:?}", first.error);
    let (writes, records, contacts) = (
        app.crm.calls(Operation::Write),
        app.crm.records(PERSONS),
        app.contacts().await,
    );

    let second = app.sync(SyncMode::Incremental).await;

    assert_eq!(
        second.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        second.error
    );
    assert_eq!(
        app.crm.calls(Operation::Write),
        writes,
        "no echo to the CRM"
    );
    assert_eq!(app.crm.records(PERSONS), records);
    assert_eq!(app.contacts().await, contacts, "no echo to the platform");
    assert_eq!(second.to_crm_created + second.to_crm_updated, 0);
    assert_eq!(second.from_crm_created + second.from_crm_updated, 0);
}

/// A phone changed on both sides after a first run, the CRM at `crm_at` and
/// the platform at `platform_at` (minutes from now); then a second run.
async fn phone_changed_on_both_sides(
    crm_at: i64,
    platform_at: i64,
) -> (Engine, Vec<sync_item::Model>) {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive)).await;
    let contact = app
        .add_contact("both@x.com", Some("Bo"), Some("Th"), 5)
        .await;
    app.sync(SyncMode::Incremental).await;
    let id = by_email(&app.crm, "both@x.com")[0].id.clone();
    let now = Utc::now();
    app.crm.set_clock(now + Duration::minutes(crm_at));
    let phone = [("phone".to_owned(), json!("+33 1 crm"))]
        .into_iter()
        .collect();
    app.crm.put(PERSONS, Some(&id), phone);
    let mut am = contact::ActiveModel::from(contact);
    am.phone = Set(Some("+33 2 platform".into()));
    am.updated_at = Set(now + Duration::minutes(platform_at));
    am.update(&app.db.db).await.unwrap();

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let items = app.items(&run).await;
    (app, items)
}

#[tokio::test]
async fn a_field_changed_on_both_sides_takes_the_crm_value_when_the_crm_changed_last() {
    let (app, items) = phone_changed_on_both_sides(20, 10).await;

    assert_eq!(
        count(&items, SyncDirection::FromCrm, ItemOutcome::Conflict),
        1,
        "{items:?}"
    );
    let contact = app.contact("both@x.com").await.unwrap();
    assert_eq!(contact.phone.as_deref(), Some("+33 1 crm"));
    let stored = &by_email(&app.crm, "both@x.com")[0];
    assert_eq!(stored.values["phone"], json!("+33 1 crm"));
}

#[tokio::test]
async fn a_field_changed_on_both_sides_takes_the_platform_value_when_it_changed_last() {
    let (app, items) = phone_changed_on_both_sides(10, 20).await;

    assert_eq!(
        count(&items, SyncDirection::ToCrm, ItemOutcome::Conflict),
        1,
        "{items:?}"
    );
    let stored = &by_email(&app.crm, "both@x.com")[0];
    assert_eq!(stored.values["phone"], json!("+33 2 platform"));
    let contact = app.contact("both@x.com").await.unwrap();
    assert_eq!(contact.phone.as_deref(), Some("+33 2 platform"));
}

#[tokio::test]
async fn a_crm_answering_5xx_is_retried_until_it_answers() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive)).await;
    add_persons(&app.crm, 2);
    app.add_contact("alice@x.com", Some("Alice"), Some("Liddell"), 30)
        .await;
    let unavailable = CrmError::Unavailable("the CRM answered 503".into());
    app.crm.fail(Operation::List, 0, 2, unavailable.clone());
    app.crm.fail(Operation::Write, 0, 2, unavailable);

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!((run.from_crm_created, run.to_crm_created), (2, 1));
    assert_eq!(app.crm.calls(Operation::List), 3, "two 503s, then the page");
    assert_eq!(by_email(&app.crm, "alice@x.com").len(), 1, "created once");
    assert_eq!(app.crm.records(PERSONS).len(), 3);
}

#[tokio::test]
async fn a_daily_limit_ends_the_run_partial_and_the_next_run_resumes() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive).with_max_page_size(10)).await;
    add_persons(&app.crm, 25);
    let spent = CrmError::DailyLimit("the daily API budget is spent".into());
    app.crm.fail(Operation::List, 1, 1, spent);

    let first = app.sync(SyncMode::Incremental).await;

    assert_eq!(first.status, SyncRunStatus::Partial, "{:?}", first.error);
    let message = first.error.as_deref().unwrap();
    assert!(message.contains("daily API budget"), "{message}");
    assert!(message.contains("next run resumes"), "{message}");
    assert_eq!(first.from_crm_created, 10, "the first page is kept");
    let kept = app.contact("p1@x.com").await.expect("page one imported");

    let second = app.sync(SyncMode::Incremental).await;

    assert_eq!(
        second.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        second.error
    );
    assert_eq!(second.from_crm_created, 15, "resumed after the first page");
    assert_eq!(app.contacts().await.len(), 25);
    assert_eq!(app.contact("p1@x.com").await.unwrap().id, kept.id);
}

#[tokio::test]
async fn a_record_the_crm_refuses_is_reported_and_the_others_are_written() {
    let app = engine(MemoryCrm::new(ConnectorKind::Pipedrive)).await;
    app.add_contact("alice@x.com", Some("Alice"), Some("Liddell"), 30)
        .await;
    app.add_contact("bob@x.com", Some("Bob"), Some("Builder"), 5)
        .await;
    let refused = CrmError::Rejected {
        code: "CRM_VALIDATION".into(),
        field: Some("phone".into()),
        message: "the CRM refused the person: phone: not a number".into(),
    };
    app.crm.refuse_writes_of("bob@x.com", refused);

    let run = app.sync(SyncMode::Incremental).await;

    assert_eq!(run.status, SyncRunStatus::Partial, "{:?}", run.error);
    assert_eq!((run.to_crm_created, run.to_crm_rejected), (1, 1));
    let items = app.items(&run).await;
    let bob = items
        .iter()
        .find(|i| i.outcome == ItemOutcome::Rejected)
        .unwrap();
    assert_eq!(bob.reason_code.as_deref(), Some("CRM_VALIDATION"));
    assert_eq!(bob.field.as_deref(), Some("phone"));
    assert_eq!(by_email(&app.crm, "alice@x.com").len(), 1);
    assert!(by_email(&app.crm, "bob@x.com").is_empty());
}

/// The lead fields Zoho's default mappings look for.
fn lead_fields() -> Vec<CrmField> {
    vec![
        field("Email", FieldType::Email),
        field("First_Name", FieldType::Text),
        field("Last_Name", FieldType::Text),
        field("plezi_url", FieldType::Url),
    ]
}

#[tokio::test]
async fn a_contact_that_becomes_a_client_converts_its_lead_once() {
    let crm = MemoryCrm::new(ConnectorKind::ZohoCrm)
        .with_lead_conversion()
        .with_fields(CrmModule::Leads, lead_fields())
        .with_fields(CrmModule::Contacts, lead_fields());
    // Never opened either.
    let credentials = Credentials::new("unused");
    let app = assemble(crm, credentials, CrmModule::Leads).await;
    let carol = app
        .add_contact("carol@x.com", Some("Carol"), Some("Client"), 10)
        .await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.to_crm_created, 1, "{:?}", first.error);
    app.edit_contact(&carol, |c| c.lifecycle = Set(Lifecycle::Client))
        .await;

    let second = app.sync(SyncMode::Incremental).await;
    let third = app.sync(SyncMode::Incremental).await;

    assert_eq!(
        second.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        second.error
    );
    assert_eq!(third.status, SyncRunStatus::Succeeded, "{:?}", third.error);
    assert_eq!(app.crm.calls(Operation::ConvertLead), 1, "converted once");
    let leads = app.crm.records(CrmModule::Leads);
    assert!(leads.len() == 1 && leads[0].converted, "{leads:?}");
    let contacts = app.crm.records(CrmModule::Contacts);
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].email.as_deref(), Some("carol@x.com"));
}
