//! Consent (S9, issue 24) against the sandbox Zoho: opt-outs sync both ways,
//! opt-out wins where an opt-in is not known to be newer, and every change
//! of a contact's opt-out state is recorded with its origin.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{ConnectorKind, ConsentOrigin, CrmModule, SyncMode, SyncRunStatus};
use crmsync_entity::models::{consent_event, contact};
use crmsync_worker::crm::{CrmClient, RecordWrite};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::support::{App, Zoho};

async fn app() -> App<Zoho> {
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

async fn lead(app: &App<Zoho>, email: &str) -> Value {
    app.crm
        .stored("Leads")
        .await
        .into_iter()
        .find(|l| l["Email"].as_str() == Some(email))
        .unwrap_or_else(|| panic!("no lead {email}"))
}

/// Writes a lead in Zoho (a new one when `id` is none).
async fn write_lead(app: &App<Zoho>, id: Option<String>, email: &str, values: Value) -> String {
    let mut values: BTreeMap<String, Value> = serde_json::from_value(values).unwrap();
    values.insert("Email".into(), json!(email));
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Leads,
            vec![RecordWrite {
                id,
                values,
                owner_email: None,
                email: email.into(),
            }],
        )
        .await;
    written[0].clone().expect("written").id
}

async fn history(app: &App<Zoho>, contact_id: &str) -> Vec<consent_event::Model> {
    consent_event::Entity::for_tenant(&app.tenant)
        .filter(consent_event::Column::ContactId.eq(contact_id))
        .order_by_asc(consent_event::Column::At)
        .order_by_asc(consent_event::Column::Id)
        .all(&app.db.db)
        .await
        .unwrap()
}

/// Sets the contact's opt-out as the platform would, at `at`.
async fn set_opted_out(app: &App<Zoho>, c: &contact::Model, out: bool, at: chrono::DateTime<Utc>) {
    let mut am = contact::ActiveModel::from(c.clone());
    am.opted_out = Set(out);
    am.updated_at = Set(at);
    am.update(&app.db.db).await.unwrap();
}

async fn sync(app: &App<Zoho>, mode: SyncMode) -> crmsync_entity::models::sync_run::Model {
    let run = app.sync(mode).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    run
}

#[tokio::test]
async fn a_zoho_opt_out_reaches_the_platform_and_is_recorded() {
    let app = app().await;
    let c = app
        .add_contact("c1@x.com", Some("Cleo"), Some("One"), 10)
        .await;
    sync(&app, SyncMode::Full).await;
    let id = lead(&app, "c1@x.com").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    write_lead(&app, Some(id), "c1@x.com", json!({ "Email_Opt_Out": true })).await;
    let run = sync(&app, SyncMode::Incremental).await;
    assert!(app.contact("c1@x.com").await.unwrap().opted_out);
    let events = history(&app, &c.id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert!(e.opted_out);
    assert_eq!(e.origin, ConsentOrigin::Crm);
    assert_eq!(e.connector_id.as_deref(), Some(app.connector_id.as_str()));
    assert_eq!(e.crm_kind, Some(ConnectorKind::ZohoCrm));
    assert_eq!(e.run_id.as_deref(), Some(run.id.as_str()));
}

#[tokio::test]
async fn a_platform_opt_out_reaches_zoho_and_a_newer_opt_in_comes_back() {
    let app = app().await;
    let c = app
        .add_contact("c2@x.com", Some("Carl"), Some("Two"), 10)
        .await;
    sync(&app, SyncMode::Full).await;
    set_opted_out(&app, &c, true, Utc::now()).await;
    sync(&app, SyncMode::Incremental).await;
    let l = lead(&app, "c2@x.com").await;
    assert_eq!(l["Email_Opt_Out"], json!(true));
    // Opted back in, in Zoho, after the opt-out: the platform follows.
    let id = l["id"].as_str().unwrap().to_owned();
    write_lead(
        &app,
        Some(id),
        "c2@x.com",
        json!({ "Email_Opt_Out": false }),
    )
    .await;
    let run = sync(&app, SyncMode::Incremental).await;
    assert!(!app.contact("c2@x.com").await.unwrap().opted_out);
    let events = history(&app, &c.id).await;
    // The platform's own opt-out was written past the API (no event); the
    // opt-in the run brought is recorded.
    let last = events.last().expect("an event");
    assert!(!last.opted_out);
    assert_eq!(last.run_id.as_deref(), Some(run.id.as_str()));

    // And a newer opt-in on the platform reaches Zoho.
    let c = app.contact("c2@x.com").await.unwrap();
    set_opted_out(&app, &c, true, Utc::now()).await;
    sync(&app, SyncMode::Incremental).await;
    assert_eq!(lead(&app, "c2@x.com").await["Email_Opt_Out"], json!(true));
    let c = app.contact("c2@x.com").await.unwrap();
    set_opted_out(&app, &c, false, Utc::now()).await;
    sync(&app, SyncMode::Incremental).await;
    assert_eq!(lead(&app, "c2@x.com").await["Email_Opt_Out"], json!(false));
}

#[tokio::test]
async fn an_opt_in_in_zoho_does_not_undo_a_platform_opt_out_it_is_not_known_to_follow() {
    let app = app().await;
    let c = app
        .add_contact("c3@x.com", Some("Cara"), Some("Three"), 10)
        .await;
    set_opted_out(&app, &c, true, Utc::now() - Duration::hours(2)).await;
    // A lead for the same person, opted in and modified after the contact:
    // the newer side would win any other field, not the opt-out.
    write_lead(
        &app,
        None,
        "c3@x.com",
        json!({ "Last_Name": "Three", "Email_Opt_Out": false }),
    )
    .await;
    sync(&app, SyncMode::Full).await;
    assert!(app.contact("c3@x.com").await.unwrap().opted_out);
    assert_eq!(lead(&app, "c3@x.com").await["Email_Opt_Out"], json!(true));
}

#[tokio::test]
async fn an_opt_in_on_the_platform_does_not_undo_a_zoho_opt_out_it_is_not_known_to_follow() {
    let app = app().await;
    write_lead(
        &app,
        None,
        "c4@x.com",
        json!({ "Last_Name": "Four", "Email_Opt_Out": true }),
    )
    .await;
    let c = app
        .add_contact("c4@x.com", Some("Coco"), Some("Four"), 10)
        .await;
    // The contact is the newer record, and opted in.
    set_opted_out(&app, &c, false, Utc::now() + Duration::hours(2)).await;
    let run = sync(&app, SyncMode::Full).await;
    assert!(app.contact("c4@x.com").await.unwrap().opted_out);
    assert_eq!(lead(&app, "c4@x.com").await["Email_Opt_Out"], json!(true));
    let events = history(&app, &c.id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].opted_out);
    assert_eq!(events[0].origin, ConsentOrigin::Crm);
    assert_eq!(events[0].run_id.as_deref(), Some(run.id.as_str()));
}
