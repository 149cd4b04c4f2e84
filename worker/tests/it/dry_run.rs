//! Dry runs (issue 6): on both sandbox CRMs, a dry run writes nothing to
//! either side, lists each contact's field changes, and the real run that
//! follows makes exactly those changes.

use std::collections::BTreeMap;

use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{
    ConnectorKind, CrmModule, ItemOutcome, Lifecycle, SyncDirection, SyncMode, SyncRunStatus,
};
use crmsync_entity::models::sync_item::FieldChange;
use crmsync_entity::models::{
    connector, contact, crm_link, crm_record, sync_checkpoint, sync_item, sync_run,
};
use crmsync_worker::crm::{CrmClient, RecordWrite};
use sea_orm::ActiveValue::Set;
use serde_json::{Value, json};

use crmsync_worker::settings::ConnectorSettings;

use crate::support::{App, Zoho, primary_email};

/// Everything a run may write on the platform's side, for one tenant.
#[derive(Debug, PartialEq)]
struct PlatformState {
    contacts: Vec<contact::Model>,
    links: Vec<crm_link::Model>,
    checkpoints: Vec<sync_checkpoint::Model>,
    index: Vec<crm_record::Model>,
    connector: connector::Model,
}

async fn platform_state<C>(app: &App<C>) -> PlatformState {
    let db = &app.db.db;
    let mut contacts = contact::Entity::for_tenant(&app.tenant)
        .all(db)
        .await
        .unwrap();
    contacts.sort_by(|a, b| a.id.cmp(&b.id));
    let mut links = crm_link::Entity::for_tenant(&app.tenant)
        .all(db)
        .await
        .unwrap();
    links.sort_by(|a, b| a.id.cmp(&b.id));
    let mut checkpoints = sync_checkpoint::Entity::for_tenant(&app.tenant)
        .all(db)
        .await
        .unwrap();
    checkpoints.sort_by_key(|c| (c.direction.as_str(), c.module.as_str()));
    let mut index = crm_record::Entity::for_tenant(&app.tenant)
        .all(db)
        .await
        .unwrap();
    index.sort_by(|a, b| a.crm_record_id.cmp(&b.crm_record_id));
    PlatformState {
        contacts,
        links,
        checkpoints,
        index,
        connector: connector::Entity::find_for_tenant(&app.tenant, &app.connector_id)
            .one(db)
            .await
            .unwrap()
            .unwrap(),
    }
}

/// A run's items as a person compares them: by direction, e-mail and CRM
/// record, the outcome and the field changes. What a dry run would create
/// has no id yet: a record it would create is named by nobody, and the
/// platform link it would send names another id (links are redacted).
type Summary = BTreeMap<(&'static str, String, Option<String>), (ItemOutcome, Vec<FieldChange>)>;

fn summary(items: &[sync_item::Model]) -> Summary {
    let redact = |v: Value| match v {
        Value::String(s) if s.starts_with(crate::support::PLATFORM_URL) => {
            json!("<platform link>")
        }
        other => other,
    };
    items
        .iter()
        .map(|i| {
            let changes = i
                .field_changes()
                .into_iter()
                .map(|c| FieldChange {
                    from: redact(c.from),
                    to: redact(c.to),
                    ..c
                })
                .collect();
            let created_in_crm =
                i.direction == SyncDirection::ToCrm && i.outcome == ItemOutcome::Created;
            (
                (
                    i.direction.as_str(),
                    i.email.clone().unwrap_or_default().to_lowercase(),
                    i.crm_record_id.clone().filter(|_| !created_in_crm),
                ),
                (i.outcome, changes),
            )
        })
        .collect()
}

/// The one item of this direction and e-mail.
fn item<'a>(
    summary: &'a Summary,
    direction: &str,
    email: &str,
) -> &'a (ItemOutcome, Vec<FieldChange>) {
    let mut found = summary
        .iter()
        .filter(|((d, e, _), _)| *d == direction && e == email)
        .map(|(_, v)| v);
    let one = found
        .next()
        .unwrap_or_else(|| panic!("no {direction} item for {email}: {summary:#?}"));
    assert!(
        found.next().is_none(),
        "several {direction} items for {email}"
    );
    one
}

fn changes_of<'a>(summary: &'a Summary, direction: &str, email: &str) -> &'a [FieldChange] {
    &item(summary, direction, email).1
}

fn outcome_of(summary: &Summary, direction: &str, email: &str) -> ItemOutcome {
    item(summary, direction, email).0
}

fn change<'a>(changes: &'a [FieldChange], platform_field: &str) -> &'a FieldChange {
    changes
        .iter()
        .find(|c| c.platform_field == platform_field)
        .unwrap_or_else(|| panic!("no change of {platform_field}: {changes:#?}"))
}

fn succeeded(run: &sync_run::Model) {
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
}

// ---------------------------------------------------------------- Pipedrive

fn person(id: u64, name: &str, email: &str, phone: Option<&str>) -> Value {
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    let mut p = json!({
        "id": id, "name": name, "first_name": first, "last_name": last,
        "emails": [{"value": email, "primary": true, "label": "work"}],
    });
    if let Some(phone) = phone {
        p["phones"] = json!([{"value": phone, "primary": true, "label": "work"}]);
    }
    p
}

async fn stored_persons(app: &App) -> Vec<Value> {
    let mut persons = app.crm.persons().await;
    persons.sort_by_key(|p| p["id"].as_u64());
    persons
}

fn stored_person<'a>(persons: &'a [Value], email: &str) -> &'a Value {
    persons
        .iter()
        .find(|p| primary_email(p).as_deref() == Some(email))
        .unwrap_or_else(|| panic!("no person {email}"))
}

/// A Pipedrive account and a platform in step, then changed on both sides:
/// Ann's phone in the CRM, Bob's last name on the platform, a new person
/// (Cat) and a new contact (Dan).
async fn pipedrive_with_changes_on_both_sides() -> App {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([person(1, "Ann Lee", "ann@x.com", Some("+44 20 1"))]))
        .await;
    let bob = app
        .add_contact("bob@x.com", Some("Bob"), Some("Stone"), 10)
        .await;
    succeeded(&app.sync(SyncMode::Incremental).await);

    let written = app
        .crm
        .client()
        .write(
            CrmModule::Persons,
            vec![RecordWrite {
                id: Some("1".into()),
                values: [("phone".to_owned(), json!("+44 20 2"))].into(),
                owner_email: None,
                email: "ann@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    app.edit_contact(&bob, |c| c.last_name = Set(Some("Rock".into())))
        .await;
    app.crm
        .add_persons(json!([person(3, "Cat New", "cat@x.com", None)]))
        .await;
    app.add_contact("dan@x.com", Some("Dan"), Some("Fresh"), 5)
        .await;
    app
}

#[tokio::test]
async fn a_pipedrive_dry_run_writes_nothing_and_lists_the_changes_the_real_run_makes() {
    let app = pipedrive_with_changes_on_both_sides().await;
    let crm_before = stored_persons(&app).await;
    let platform_before = platform_state(&app).await;
    app.crm.reset_requests().await;

    let dry = app.sync(SyncMode::DryRun).await;
    succeeded(&dry);
    assert_eq!(app.writes().await, 0, "nothing sent to the CRM");
    assert_eq!(
        stored_persons(&app).await,
        crm_before,
        "the CRM is as it was"
    );
    assert_eq!(
        platform_state(&app).await,
        platform_before,
        "contacts, links, checkpoints, index and connector are as they were"
    );

    let listed = summary(&app.items(&dry).await);
    use ItemOutcome::*;
    assert_eq!(outcome_of(&listed, "FROM_CRM", "ann@x.com"), Updated);
    assert_eq!(
        changes_of(&listed, "FROM_CRM", "ann@x.com"),
        [FieldChange {
            platform_field: "phone".into(),
            crm_field: Some("phone".into()),
            direction: SyncDirection::FromCrm,
            from: json!("+44 20 1"),
            to: json!("+44 20 2"),
            conflict: false,
        }]
    );
    assert_eq!(outcome_of(&listed, "TO_CRM", "bob@x.com"), Updated);
    assert_eq!(
        changes_of(&listed, "TO_CRM", "bob@x.com"),
        [FieldChange {
            platform_field: "first_name + last_name".into(),
            crm_field: Some("name".into()),
            direction: SyncDirection::ToCrm,
            from: json!("Bob Stone"),
            to: json!("Bob Rock"),
            conflict: false,
        }]
    );
    assert_eq!(outcome_of(&listed, "FROM_CRM", "cat@x.com"), Created);
    let cat = changes_of(&listed, "FROM_CRM", "cat@x.com");
    assert_eq!(change(cat, "last_name").to, json!("New"));
    assert!(cat.iter().all(|c| c.from.is_null()), "{cat:#?}");
    assert_eq!(outcome_of(&listed, "TO_CRM", "dan@x.com"), Created);
    let dan = changes_of(&listed, "TO_CRM", "dan@x.com");
    assert_eq!(change(dan, "first_name + last_name").to, json!("Dan Fresh"));
    assert_eq!(change(dan, "behaviour_score").to, json!(5));
    assert_eq!(change(dan, "platform_url").to, json!("<platform link>"));
    assert!(dan.iter().all(|c| c.from.is_null()), "{dan:#?}");
    let ann = app.contact("ann@x.com").await.unwrap();
    assert!(
        app.items(&dry)
            .await
            .iter()
            .filter(|i| i.email.as_deref() == Some("ann@x.com"))
            .all(|i| i.contact_id.as_deref() == Some(ann.id.as_str())),
        "an existing contact is named"
    );

    let real = app.sync(SyncMode::Incremental).await;
    succeeded(&real);
    assert_eq!(
        summary(&app.items(&real).await),
        listed,
        "the real run does what the dry run listed"
    );
    assert_eq!(
        app.contact("ann@x.com").await.unwrap().phone.as_deref(),
        Some("+44 20 2")
    );
    assert!(app.contact("cat@x.com").await.is_some());
    let persons = stored_persons(&app).await;
    assert_eq!(stored_person(&persons, "bob@x.com")["name"], "Bob Rock");
    assert_eq!(stored_person(&persons, "dan@x.com")["name"], "Dan Fresh");

    // In step again: a dry run now lists no change (S7).
    let after = app.sync(SyncMode::DryRun).await;
    succeeded(&after);
    let items = app.items(&after).await;
    assert!(
        items.iter().all(|i| i.changes.is_none()),
        "{:#?}",
        summary(&items)
    );
}

#[tokio::test]
async fn a_first_dry_run_matches_by_email_as_the_real_run_does() {
    // The person lacks the import filter's flag: it is only indexed, and the
    // export finds it by e-mail in that index, which a dry run keeps in memory.
    let app = App::with(0, |s| {
        s.filter_field = Some("sync_to_plezi".into());
        s.filter_value = Some("yes".into());
    })
    .await;
    let mut eve = person(1, "Eve Match", "eve@x.com", Some("+33 1 crm"));
    let hours_ago = |h| (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339();
    eve["add_time"] = json!(hours_ago(3));
    eve["update_time"] = json!(hours_ago(2));
    app.crm.add_persons(json!([eve])).await;
    let contact = app
        .add_contact("eve@x.com", Some("Eve"), Some("Match"), 5)
        .await;
    app.edit_contact(&contact, |c| c.phone = Set(Some("+33 2 platform".into())))
        .await;
    let crm_before = stored_persons(&app).await;

    let dry = app.sync(SyncMode::DryRun).await;
    succeeded(&dry);
    assert_eq!(stored_persons(&app).await, crm_before);
    let listed = summary(&app.items(&dry).await);
    assert_eq!(
        outcome_of(&listed, "TO_CRM", "eve@x.com"),
        ItemOutcome::Updated
    );
    let phone = change(changes_of(&listed, "TO_CRM", "eve@x.com"), "phone");
    assert_eq!(
        (&phone.from, &phone.to),
        (&json!("+33 1 crm"), &json!("+33 2 platform"))
    );

    let real = app.sync(SyncMode::Incremental).await;
    succeeded(&real);
    assert_eq!(summary(&app.items(&real).await), listed);
    let persons = stored_persons(&app).await;
    assert_eq!(persons.len(), 1, "matched, not created");
    assert_eq!(persons[0]["phones"][0]["value"], json!("+33 2 platform"));
}

#[tokio::test]
async fn a_dry_run_reads_from_the_checkpoints_as_the_next_incremental_run_would() {
    // The persons the export creates lack the import filter's flag: the
    // import leaves them alone, so the export leg reads its own checkpoint.
    let app = App::with(0, |s| {
        s.filter_field = Some("sync_to_plezi".into());
        s.filter_value = Some("yes".into());
    })
    .await;
    let old = app
        .add_contact("old@x.com", Some("Old"), Some("Timer"), 5)
        .await;
    let mut am: contact::ActiveModel = old.into();
    am.updated_at = Set(chrono::Utc::now() - chrono::Duration::hours(5));
    sea_orm::ActiveModelTrait::update(am, &app.db.db)
        .await
        .unwrap();
    app.add_contact("new@x.com", Some("New"), Some("Comer"), 5)
        .await;
    succeeded(&app.sync(SyncMode::Incremental).await);
    let checkpoints = platform_state(&app).await.checkpoints;
    assert!(!checkpoints.is_empty());

    let dry = app.sync(SyncMode::DryRun).await;
    succeeded(&dry);
    let listed = summary(&app.items(&dry).await);
    assert!(
        listed.keys().all(|(_, email, _)| email != "old@x.com"),
        "a contact unchanged since long before the checkpoint is not read: {listed:#?}"
    );
    assert_eq!(
        outcome_of(&listed, "TO_CRM", "new@x.com"),
        ItemOutcome::Unchanged
    );
    assert_eq!(
        platform_state(&app).await.checkpoints,
        checkpoints,
        "none saved"
    );
    let real = app.sync(SyncMode::Incremental).await;
    succeeded(&real);
    assert_eq!(summary(&app.items(&real).await), listed);
}

#[tokio::test]
async fn a_dry_run_refused_by_the_crm_fails_and_leaves_the_connector_alone() {
    let crm = crate::support::Crm::start(0).await;
    let credentials = crmsync_worker::crm::pipedrive::kit::credentials(
        "not-a-token".to_owned().into(),
        &crm.domain(),
    );
    let app = App::build(crm, credentials, |_| {}).await;
    let before = platform_state(&app).await;
    let run = app.sync(SyncMode::DryRun).await;
    assert_eq!(run.status, SyncRunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("token"),
        "{:?}",
        run.error
    );
    assert_eq!(
        platform_state(&app).await,
        before,
        "the connector is not marked NEEDS_REAUTH by a dry run"
    );
}

// --------------------------------------------------------------------- Zoho

async fn zoho_app(settings: impl FnOnce(&mut ConnectorSettings)) -> App<Zoho> {
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
        settings,
    )
    .await
}

async fn add_records(app: &App<Zoho>, module: &str, records: Value) {
    app.crm
        .admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/records/{module}", app.crm.org()),
            json!({ "records": records }),
        )
        .await;
}

async fn add_leads(app: &App<Zoho>, leads: Value) {
    add_records(app, "Leads", leads).await;
}

async fn stored_leads(app: &App<Zoho>) -> Vec<Value> {
    let mut leads = app.crm.stored_leads().await;
    leads.sort_by(|a, b| a["id"].to_string().cmp(&b["id"].to_string()));
    leads
}

fn lead<'a>(leads: &'a [Value], email: &str) -> &'a Value {
    leads
        .iter()
        .find(|l| l["Email"].as_str() == Some(email))
        .unwrap_or_else(|| panic!("no lead {email}"))
}

#[tokio::test]
async fn a_zoho_dry_run_writes_nothing_and_lists_the_changes_the_real_run_makes() {
    let app = zoho_app(|_| {}).await;
    add_leads(
        &app,
        json!([{"Email": "ann@x.com", "First_Name": "Ann", "Last_Name": "Lee", "Phone": "+44 20 1"}]),
    )
    .await;
    let bob = app
        .add_contact("bob@x.com", Some("Bob"), Some("Stone"), 10)
        .await;
    succeeded(&app.sync(SyncMode::Incremental).await);
    // The CRM changes Ann's phone; the platform gives Bob a job title; each
    // side gains someone new.
    let ann_id = match &lead(&stored_leads(&app).await, "ann@x.com")["id"] {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Leads,
            vec![RecordWrite {
                id: Some(ann_id),
                values: [("Phone".to_owned(), json!("+44 20 2"))].into(),
                owner_email: None,
                email: "ann@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    app.edit_contact(&bob, |c| c.job_title = Set(Some("CTO".into())))
        .await;
    add_leads(
        &app,
        json!([{"Email": "cat@x.com", "First_Name": "Cat", "Last_Name": "New"}]),
    )
    .await;
    app.add_contact("dan@x.com", Some("Dan"), Some("Fresh"), 5)
        .await;

    let crm_before = stored_leads(&app).await;
    let platform_before = platform_state(&app).await;
    let upserts = app.crm.calls("/upsert").await;

    let dry = app.sync(SyncMode::DryRun).await;
    succeeded(&dry);
    assert_eq!(app.crm.calls("/upsert").await, upserts, "nothing sent");
    assert_eq!(stored_leads(&app).await, crm_before, "Zoho is as it was");
    assert_eq!(platform_state(&app).await, platform_before);

    let listed = summary(&app.items(&dry).await);
    let phone = change(changes_of(&listed, "FROM_CRM", "ann@x.com"), "phone");
    assert_eq!(
        (phone.crm_field.as_deref(), &phone.from, &phone.to),
        (Some("Phone"), &json!("+44 20 1"), &json!("+44 20 2"))
    );
    let title = change(changes_of(&listed, "TO_CRM", "bob@x.com"), "job_title");
    assert_eq!(
        (title.crm_field.as_deref(), &title.from, &title.to),
        (Some("Designation"), &Value::Null, &json!("CTO"))
    );
    assert_eq!(
        outcome_of(&listed, "FROM_CRM", "cat@x.com"),
        ItemOutcome::Created
    );
    let dan = changes_of(&listed, "TO_CRM", "dan@x.com");
    assert_eq!(change(dan, "last_name").to, json!("Fresh"));
    assert_eq!(
        change(dan, "last_name").crm_field.as_deref(),
        Some("Last_Name")
    );

    let real = app.sync(SyncMode::Incremental).await;
    succeeded(&real);
    assert_eq!(summary(&app.items(&real).await), listed);
    let leads = stored_leads(&app).await;
    assert_eq!(lead(&leads, "bob@x.com")["Designation"], json!("CTO"));
    assert_eq!(lead(&leads, "dan@x.com")["Last_Name"], json!("Fresh"));
    assert_eq!(
        app.contact("ann@x.com").await.unwrap().phone.as_deref(),
        Some("+44 20 2")
    );
    assert!(app.contact("cat@x.com").await.is_some());
}

#[tokio::test]
async fn a_zoho_dry_run_lists_a_conversion_and_a_takeover_as_the_real_run_makes_them() {
    let app = zoho_app(|s| {
        s.import_modules = vec![CrmModule::Leads, CrmModule::Contacts];
    })
    .await;
    app.add_contact("kim@x.com", Some("Kim"), Some("Park"), 10)
        .await;
    succeeded(&app.sync(SyncMode::Incremental).await);
    // Kim becomes a client (her lead is to be converted, S10); Lee arrives
    // in Zoho as a lead and as a contact: the contact takes the link the
    // lead's new platform contact got moments before, in the same run.
    let kim = app.contact("kim@x.com").await.unwrap();
    app.edit_contact(&kim, |c| c.lifecycle = Set(Lifecycle::Client))
        .await;
    add_leads(
        &app,
        json!([{"Email": "lee@x.com", "First_Name": "Lee", "Last_Name": "Chan"}]),
    )
    .await;
    add_records(
        &app,
        "Contacts",
        json!([{"Email": "lee@x.com", "First_Name": "Lee", "Last_Name": "Chan", "Phone": "+1 555"}]),
    )
    .await;
    let leads_before = stored_leads(&app).await;
    let contacts_before = app.crm.stored("Contacts").await;
    let platform_before = platform_state(&app).await;

    let dry = app.sync(SyncMode::DryRun).await;
    succeeded(&dry);
    assert_eq!(stored_leads(&app).await, leads_before, "no lead converted");
    assert_eq!(app.crm.stored("Contacts").await, contacts_before);
    assert_eq!(platform_state(&app).await, platform_before);
    let listed = summary(&app.items(&dry).await);
    assert_eq!(
        outcome_of(&listed, "TO_CRM", "kim@x.com"),
        ItemOutcome::Updated
    );
    assert_eq!(
        changes_of(&listed, "TO_CRM", "kim@x.com"),
        [FieldChange {
            platform_field: "lifecycle".into(),
            crm_field: None,
            direction: SyncDirection::ToCrm,
            from: json!("LEADS"),
            to: json!("CONTACTS"),
            conflict: false,
        }]
    );
    let lee: Vec<_> = listed
        .iter()
        .filter(|((d, e, _), _)| *d == "FROM_CRM" && e == "lee@x.com")
        .map(|(_, (outcome, changes))| (outcome, changes))
        .collect();
    assert_eq!(lee.len(), 2, "{listed:#?}");
    assert!(
        lee.iter().any(|(o, changes)| **o == ItemOutcome::Updated
            && change(changes, "lifecycle").to == json!("CLIENT")),
        "the Zoho contact takes the new contact over: {lee:#?}"
    );

    let real = app.sync(SyncMode::Incremental).await;
    succeeded(&real);
    assert_eq!(summary(&app.items(&real).await), listed);
    assert_eq!(
        lead(&stored_leads(&app).await, "kim@x.com")["$converted"],
        json!(true)
    );
    let lee = app.contact("lee@x.com").await.unwrap();
    assert_eq!(lee.lifecycle, Lifecycle::Client);
    assert_eq!(lee.phone.as_deref(), Some("+1 555"));
}
