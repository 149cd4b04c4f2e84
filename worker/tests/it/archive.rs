//! Archived platform contacts (issue 24), against the sandbox CRMs: never
//! exported, never brought back by an import or a FULL run (UNCHANGED with
//! reason ARCHIVED_IN_PLATFORM, the CRM record left linked and in place),
//! and synced again once unarchived.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{
    ConnectorKind, CrmModule, ItemOutcome, SyncDirection, SyncMode, SyncRunStatus,
};
use crmsync_entity::models::{contact, crm_link, sync_item, sync_run};
use crmsync_worker::crm::{CrmClient, RecordWrite};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, QueryFilter};
use serde_json::{Value, json};

use crate::support::{App, Zoho, primary_email};

const ARCHIVED_IN_PLATFORM: &str = "ARCHIVED_IN_PLATFORM";

/// Archives or unarchives a contact as `archiveContact` does (bumping
/// `updated_at`).
async fn set_archived<C>(app: &App<C>, c: &contact::Model, archived: bool) -> contact::Model {
    app.edit_contact(c, |am| {
        am.archived_at = Set(archived.then(Utc::now));
    })
    .await
}

async fn link_of<C>(app: &App<C>, contact_id: &str) -> Option<crm_link::Model> {
    crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::ContactId.eq(contact_id))
        .one(&app.db.db)
        .await
        .unwrap()
}

/// The run's ARCHIVED_IN_PLATFORM items.
async fn archived_items<C>(app: &App<C>, run: &sync_run::Model) -> Vec<sync_item::Model> {
    app.items(run)
        .await
        .into_iter()
        .filter(|i| i.reason_code.as_deref() == Some(ARCHIVED_IN_PLATFORM))
        .collect()
}

fn assert_succeeded(run: &sync_run::Model) {
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
}

async fn persons_with_email(app: &App, email: &str) -> Vec<Value> {
    app.crm
        .persons()
        .await
        .into_iter()
        .filter(|p| p["is_deleted"] != json!(true))
        .filter(|p| primary_email(p).is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .collect()
}

fn person(id: u64, first: &str, last: &str, email: &str) -> Value {
    let t = (Utc::now() - Duration::hours(1)).to_rfc3339();
    json!({
        "id": id, "name": format!("{first} {last}"), "first_name": first, "last_name": last,
        "emails": [{"value": email, "primary": true, "label": "work"}],
        "add_time": t, "update_time": t,
    })
}

#[tokio::test]
async fn an_archived_contact_is_not_exported() {
    let app = App::start(0).await;
    let kept = app
        .add_contact("kept@x.com", Some("Kept"), Some("One"), 50)
        .await;
    let gone = app
        .add_contact("gone@x.com", Some("Gone"), Some("Two"), 50)
        .await;
    set_archived(&app, &gone, true).await;

    let run = app.sync(SyncMode::Full).await;

    assert_succeeded(&run);
    assert_eq!(run.to_crm_created, 1);
    assert_eq!(persons_with_email(&app, "kept@x.com").await.len(), 1);
    assert!(persons_with_email(&app, "gone@x.com").await.is_empty());
    assert!(link_of(&app, &gone.id).await.is_none());
    assert!(link_of(&app, &kept.id).await.is_some());
    let items = app.items(&run).await;
    assert!(
        items
            .iter()
            .all(|i| i.contact_id.as_deref() != Some(&gone.id)),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_full_run_does_not_bring_back_an_archived_linked_contact() {
    let app = App::start(0).await;
    let c = app
        .add_contact("a@x.com", Some("Ann"), Some("Lee"), 50)
        .await;
    assert_succeeded(&app.sync(SyncMode::Incremental).await);
    let link = link_of(&app, &c.id).await.expect("exported and linked");
    let c = app.contact("a@x.com").await.unwrap();
    set_archived(&app, &c, true).await;
    // The person changes in the CRM after the archive.
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Persons,
            vec![RecordWrite {
                id: Some(link.crm_record_id.clone()),
                values: BTreeMap::from([("last_name".to_owned(), json!("Changed"))]),
                owner_email: None,
                email: "a@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    let writes = app.writes().await;

    let run = app.sync(SyncMode::Full).await;

    assert_succeeded(&run);
    let after = app.contact("a@x.com").await.unwrap();
    assert_eq!(
        after.last_name.as_deref(),
        Some("Lee"),
        "nothing written onto it"
    );
    assert!(after.archived_at.is_some(), "still archived");
    assert_eq!(app.contacts().await.len(), 1, "no new contact");
    let items = archived_items(&app, &run).await;
    assert_eq!(items.len(), 1, "{:?}", app.items(&run).await);
    assert_eq!(items[0].outcome, ItemOutcome::Unchanged);
    assert_eq!(items[0].direction, SyncDirection::FromCrm);
    assert_eq!(items[0].contact_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(
        items[0].crm_record_id.as_deref(),
        Some(link.crm_record_id.as_str())
    );
    let kept = link_of(&app, &c.id).await.expect("still linked");
    assert_eq!(kept.crm_record_id, link.crm_record_id);
    assert_eq!(app.writes().await, writes, "no CRM write");
    let persons = persons_with_email(&app, "a@x.com").await;
    assert_eq!(persons.len(), 1, "the CRM person is not deleted");
    let name = persons[0]["name"].as_str().unwrap_or_default();
    assert!(name.ends_with("Changed"), "the CRM's change stays: {name}");
}

#[tokio::test]
async fn a_crm_person_with_an_archived_contacts_email_makes_no_contact() {
    let app = App::start(0).await;
    let c = app
        .add_contact("b@x.com", Some("Bea"), Some("Old"), 50)
        .await;
    let c = set_archived(&app, &c, true).await;
    app.crm
        .add_persons(json!([person(1, "Bea", "New", "B@x.com")]))
        .await;
    let writes = app.writes().await;

    let run = app.sync(SyncMode::Full).await;

    assert_succeeded(&run);
    assert_eq!(run.from_crm_created, 0);
    let contacts = app.contacts().await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].last_name.as_deref(), Some("Old"));
    assert!(contacts[0].archived_at.is_some());
    let items = archived_items(&app, &run).await;
    assert_eq!(items.len(), 1, "{:?}", app.items(&run).await);
    assert_eq!(items[0].outcome, ItemOutcome::Unchanged);
    assert_eq!(items[0].contact_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(app.writes().await, writes, "no CRM write");
}

#[tokio::test]
async fn an_unarchived_contact_syncs_again() {
    let app = App::start(0).await;
    let c = app
        .add_contact("c@x.com", Some("Cy"), Some("Ray"), 50)
        .await;
    let c = set_archived(&app, &c, true).await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_succeeded(&first);
    assert_eq!(first.to_crm_created, 0);

    set_archived(&app, &c, false).await;
    let again = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&again);
    assert_eq!(again.to_crm_created, 1);
    assert_eq!(persons_with_email(&app, "c@x.com").await.len(), 1);
    assert!(link_of(&app, &c.id).await.is_some());
    assert!(archived_items(&app, &again).await.is_empty());
}

/// A tenant with a Zoho connector on an empty sandbox Zoho org.
async fn zoho_app() -> App<Zoho> {
    let zoho = Zoho::start(0).await;
    zoho.set_limits(json!({ "token_throttle": 1000 })).await;
    let fields = zoho.client().fields(CrmModule::Leads).await.unwrap();
    let credentials = zoho.credentials();
    let base_url = zoho.accounts_url();
    App::assemble(
        zoho,
        ConnectorKind::ZohoCrm,
        credentials,
        &base_url,
        &fields,
        |_| {},
    )
    .await
}

#[tokio::test]
async fn zoho_an_archived_lead_is_neither_exported_nor_brought_back_then_syncs_again() {
    let app = zoho_app().await;
    let c = app
        .add_contact("z@x.com", Some("Zed"), Some("One"), 50)
        .await;
    assert_succeeded(&app.sync(SyncMode::Incremental).await);
    let link = link_of(&app, &c.id).await.expect("exported and linked");
    let c = app.contact("z@x.com").await.unwrap();
    let c = set_archived(&app, &c, true).await;
    // Changed on both sides while archived.
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Leads,
            vec![RecordWrite {
                id: Some(link.crm_record_id.clone()),
                values: BTreeMap::from([("Last_Name".to_owned(), json!("FromZoho"))]),
                owner_email: None,
                email: "z@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    let c = app
        .edit_contact(&c, |am| am.first_name = Set(Some("Platform".into())))
        .await;

    let full = app.sync(SyncMode::Full).await;

    assert_succeeded(&full);
    let after = app.contact("z@x.com").await.unwrap();
    assert_eq!(after.last_name.as_deref(), Some("One"));
    let items = archived_items(&app, &full).await;
    assert_eq!(items.len(), 1, "{:?}", app.items(&full).await);
    assert_eq!(items[0].outcome, ItemOutcome::Unchanged);
    assert_eq!(
        items[0].crm_record_id.as_deref(),
        Some(link.crm_record_id.as_str())
    );
    let leads = app.crm.stored_leads().await;
    let lead = leads
        .iter()
        .find(|l| l["id"].as_str() == Some(link.crm_record_id.as_str()))
        .expect("the lead is not deleted");
    assert_eq!(lead["First_Name"], json!("Zed"), "not exported");
    assert!(link_of(&app, &c.id).await.is_some(), "still linked");

    set_archived(&app, &c, false).await;
    let again = app.sync(SyncMode::Incremental).await;

    assert_succeeded(&again);
    assert!(archived_items(&app, &again).await.is_empty());
    let leads = app.crm.stored_leads().await;
    let lead = leads
        .iter()
        .find(|l| l["id"].as_str() == Some(link.crm_record_id.as_str()))
        .unwrap();
    assert_eq!(lead["First_Name"], json!("Platform"), "exported again");
}
