//! Whole runs against the sandbox: each rule of the "Sync with Pipedrive".

use chrono::{Duration, Utc};
use crmsync_entity::enums::{SyncDirection, SyncMode, SyncRunStatus};
use sea_orm::ActiveValue::Set;
use serde_json::{Value, json};

use crate::support::{App, primary_email};

fn person(id: u64, name: &str, email: Option<&str>, hours_ago: i64) -> Value {
    let t = (Utc::now() - Duration::hours(hours_ago)).to_rfc3339();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    json!({
        "id": id, "name": name, "first_name": first, "last_name": last,
        "emails": email.map_or(json!([]), |e| json!([{"value": e, "primary": true, "label": "work"}])),
        "add_time": t, "update_time": t,
    })
}

async fn person_by_email(app: &App, email: &str) -> Vec<Value> {
    app.crm
        .persons()
        .await
        .into_iter()
        .filter(|p| p["is_deleted"] != json!(true))
        .filter(|p| primary_email(p).is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .collect()
}

#[tokio::test]
async fn a_two_way_sync_then_a_second_sync_writes_nothing() {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([
            person(1, "Zoë Müller", Some("zoe@acme.fr"), 5),
            person(2, "Jean de la Tour", Some(" Jean@Acme.fr "), 4),
        ]))
        .await;
    let alice = app
        .add_contact("alice@x.com", Some("Alice Marie"), Some("Liddell"), 30)
        .await;

    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.from_crm_created, 2);
    assert_eq!(run.to_crm_created, 1);
    let jean = app
        .contact("jean@acme.fr")
        .await
        .expect("imported, e-mail normalised");
    assert_eq!(jean.first_name.as_deref(), Some("Jean"));
    assert_eq!(jean.last_name.as_deref(), Some("de la Tour"));
    // F5 and F6: the name joined, the platform link and the score written.
    let exported = person_by_email(&app, "alice@x.com").await;
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["name"], json!("Alice Marie Liddell"));
    let url = app.crm.field_key("plezi_url");
    let score = app.crm.field_key("score");
    assert_eq!(
        exported[0]["custom_fields"][&url],
        json!(format!("https://app.platform.test/contacts/{}", alice.id))
    );
    assert_eq!(exported[0]["custom_fields"][&score].as_f64(), Some(30.0));

    assert!(app.writes().await > 0, "the request counts see our writes");
    app.crm.reset_requests().await;
    let contacts_before = app.contacts().await;
    let second = app.sync(SyncMode::Incremental).await;
    assert_eq!(second.status, SyncRunStatus::Succeeded);
    assert_eq!(app.writes().await, 0, "no echo: nothing written to the CRM");
    assert_eq!(
        app.contacts().await,
        contacts_before,
        "nothing written to the platform"
    );
    assert_eq!(second.to_crm_created + second.to_crm_updated, 0);
    assert_eq!(second.from_crm_created + second.from_crm_updated, 0);
}

#[tokio::test]
async fn persons_without_email_and_contacts_without_name_are_rejected_with_reasons() {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([person(1, "No Mail", None, 2)]))
        .await;
    app.add_contact("nameless@x.com", None, None, 10).await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Partial);
    let items = app.items(&run).await;
    let missing_email = items
        .iter()
        .find(|i| i.reason_code.as_deref() == Some("MISSING_EMAIL"))
        .expect("a MISSING_EMAIL item");
    assert_eq!(missing_email.direction, SyncDirection::FromCrm);
    assert_eq!(missing_email.crm_record_id.as_deref(), Some("1"));
    let missing_name = items
        .iter()
        .find(|i| i.reason_code.as_deref() == Some("MISSING_NAME"))
        .expect("a MISSING_NAME item");
    assert_eq!(missing_name.direction, SyncDirection::ToCrm);
    assert!(missing_name.message.as_deref().unwrap().contains("name"));
    assert!(person_by_email(&app, "nameless@x.com").await.is_empty());
}

#[tokio::test]
async fn of_duplicate_persons_the_most_recently_modified_is_used_and_the_others_reported() {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([
            person(1, "Old Copy", Some("dup@x.com"), 10),
            person(2, "New Copy", Some("DUP@x.com"), 1),
        ]))
        .await;
    let run = app.sync(SyncMode::Incremental).await;
    let items = app.items(&run).await;
    let dup = items
        .iter()
        .find(|i| i.reason_code.as_deref() == Some("DUPLICATE_IN_CRM"))
        .expect("the older one is reported");
    assert_eq!(dup.crm_record_id.as_deref(), Some("1"));
    let contact = app.contact("dup@x.com").await.unwrap();
    assert_eq!(contact.first_name.as_deref(), Some("New"));
}

#[tokio::test]
async fn a_spent_daily_budget_ends_partial_and_the_next_run_resumes_after_the_last_page() {
    let app = App::start(0).await;
    let persons: Vec<Value> = (1..=1200)
        .map(|i| {
            person(
                i,
                &format!("P{i} Person"),
                Some(&format!("p{i}@x.com")),
                2000 - i as i64,
            )
        })
        .collect();
    app.crm.add_persons(json!(persons)).await;
    let usage = app
        .crm
        .admin_get(&format!("/pipedrive/companies/{}/usage", app.crm.domain()))
        .await;
    let used = usage["daily_used"].as_u64().unwrap();
    // Fields, users, one list page and its 500 write-backs (F6) fit; the second page does not.
    app.crm
        .set_limits(json!({"daily_budget": used + 20 + 20 + 10 + 500 * 5}))
        .await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.status, SyncRunStatus::Partial, "{:?}", first.error);
    assert!(first.error.as_deref().unwrap().contains("daily"));
    assert_eq!(first.from_crm_created, 500);

    app.crm.set_limits(json!({"daily_budget": 600000})).await;
    let second = app.sync(SyncMode::Incremental).await;
    assert_eq!(
        second.status,
        SyncRunStatus::Succeeded,
        "{:?}",
        second.error
    );
    assert_eq!(second.from_crm_created, 700, "resumed after the first page");
    assert_eq!(app.contacts().await.len(), 1200);

    // FULL reads everything again, and finds nothing to change.
    let full = app.sync(SyncMode::Full).await;
    assert_eq!(full.from_crm_unchanged, 1200);
    assert_eq!(full.from_crm_created + full.from_crm_updated, 0);
}

#[tokio::test]
async fn a_link_is_kept_when_the_email_changes() {
    let app = App::start(0).await;
    let contact = app
        .add_contact("before@x.com", Some("Ed"), Some("It"), 1)
        .await;
    app.sync(SyncMode::Incremental).await;
    let id = person_by_email(&app, "before@x.com").await[0]["id"].clone();
    app.edit_contact(&contact, |c| c.email = Set("after@x.com".into()))
        .await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.to_crm_updated, 1, "{:?}", app.items(&run).await);
    let after = person_by_email(&app, "after@x.com").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], id, "the same person, not a new one");
}

#[tokio::test]
async fn owners_are_matched_by_email_else_the_default_owner() {
    let crm = crate::support::Crm::start(0).await;
    let users = crmsync_worker::crm::CrmClient::users(&crm.client())
        .await
        .unwrap();
    let active: Vec<_> = users.iter().filter(|u| u.active).cloned().collect();
    let (known, default) = (active[1].clone(), active[2].clone());
    let credentials = crm.credentials();
    let app = crate::support::App::build(crm, credentials, |s| {
        s.default_owner_email = Some(default.email.clone());
    })
    .await;
    let a = app
        .add_contact("owned@x.com", Some("Own"), Some("Ed"), 1)
        .await;
    app.edit_contact(&a, |c| {
        c.owner_email = Set(Some(known.email.to_uppercase()))
    })
    .await;
    let b = app
        .add_contact("stray@x.com", Some("Str"), Some("Ay"), 1)
        .await;
    app.edit_contact(&b, |c| c.owner_email = Set(Some("nobody@else.com".into())))
        .await;
    app.sync(SyncMode::Incremental).await;
    let owned = &person_by_email(&app, "owned@x.com").await[0];
    assert_eq!(owned["owner_id"].to_string(), known.id);
    let stray = &person_by_email(&app, "stray@x.com").await[0];
    assert_eq!(stray["owner_id"].to_string(), default.id);
}

#[tokio::test]
async fn a_dry_run_records_items_and_writes_nothing() {
    let app = App::start(0).await;
    app.crm
        .add_persons(json!([person(1, "Dry Run", Some("dry@x.com"), 1)]))
        .await;
    app.add_contact("wet@x.com", Some("We"), Some("T"), 1).await;
    let run = app.sync(SyncMode::DryRun).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded);
    assert_eq!(run.from_crm_created, 1);
    assert_eq!(run.to_crm_created, 1);
    assert!(app.contact("dry@x.com").await.is_none());
    assert_eq!(app.writes().await, 0);
    // No checkpoint either: a real run afterwards does everything.
    let real = app.sync(SyncMode::Incremental).await;
    assert_eq!(real.from_crm_created, 1);
}

#[tokio::test]
async fn retrying_a_runs_rejected_contacts_syncs_them_once_fixed() {
    let app = App::start(0).await;
    let nameless = app.add_contact("later@x.com", None, None, 1).await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.to_crm_rejected, 1);
    sea_orm::ActiveModelTrait::update(
        crmsync_entity::models::contact::ActiveModel {
            first_name: Set(Some("Named".into())),
            ..nameless.clone().into()
        },
        &app.db.db,
    )
    .await
    .unwrap();
    let retry = app
        .queued_run(SyncMode::Incremental, Some(first.id.clone()))
        .await;
    let retry = app.execute(&retry).await;
    assert_eq!(retry.to_crm_created, 1, "{:?}", app.items(&retry).await);
    assert_eq!(person_by_email(&app, "later@x.com").await.len(), 1);
}

/// A person the import filter skips (no flag), matched by e-mail on export, with
/// a phone different from the contact's: the side modified last keeps it (S6).
async fn export_match_of_an_unflagged_person(crm_newer: bool) -> (App, Value) {
    let app = App::with(0, |s| {
        s.filter_field = Some("sync_to_plezi".into());
        s.filter_value = Some("yes".into());
    })
    .await;
    let now = Utc::now();
    let (person_at, contact_at) = if crm_newer {
        (now - Duration::hours(1), now - Duration::hours(2))
    } else {
        (now - Duration::hours(2), now - Duration::hours(1))
    };
    let mut p = person(1, "Pat Match", Some("pat@x.com"), 0);
    p["add_time"] = json!((now - Duration::hours(3)).to_rfc3339());
    p["update_time"] = json!(person_at.to_rfc3339());
    p["phones"] = json!([{"value": "+33 1 crm", "primary": true, "label": "work"}]);
    app.crm.add_persons(json!([p])).await;
    let contact = app
        .add_contact("pat@x.com", Some("Pat"), Some("Match"), 5)
        .await;
    let mut am: crmsync_entity::models::contact::ActiveModel = contact.into();
    am.phone = Set(Some("+33 2 platform".into()));
    am.updated_at = Set(contact_at);
    sea_orm::ActiveModelTrait::update(am, &app.db.db)
        .await
        .unwrap();

    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.from_crm_created, 0,
        "the unflagged person is not imported"
    );
    assert_eq!(run.to_crm_created, 0, "matched by e-mail, not created");
    let stored = person_by_email(&app, "pat@x.com").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        app.contact("pat@x.com").await.unwrap().phone.as_deref(),
        Some("+33 2 platform"),
        "nothing imported from an unflagged person"
    );

    // The snapshot holds what both sides hold: no false change next time.
    app.crm.reset_requests().await;
    let second = app.sync(SyncMode::Incremental).await;
    assert_eq!(second.status, SyncRunStatus::Succeeded);
    assert_eq!(app.writes().await, 0, "{:?}", app.items(&second).await);
    (app, stored[0].clone())
}

#[tokio::test]
async fn a_person_matched_by_email_and_modified_after_the_contact_keeps_its_values() {
    let (app, stored) = export_match_of_an_unflagged_person(true).await;
    assert_eq!(stored["phones"][0]["value"], json!("+33 1 crm"));
    // Fields the CRM leaves empty still get the platform's values (F6).
    let score = app.crm.field_key("score");
    assert_eq!(stored["custom_fields"][&score].as_f64(), Some(5.0));
}

#[tokio::test]
async fn a_person_matched_by_email_and_modified_before_the_contact_takes_its_values() {
    let (_app, stored) = export_match_of_an_unflagged_person(false).await;
    assert_eq!(stored["phones"][0]["value"], json!("+33 2 platform"));
}

#[tokio::test]
async fn a_matched_person_deleted_since_it_was_indexed_is_created_anew() {
    let app = App::with(0, |s| {
        s.filter_field = Some("sync_to_plezi".into());
        s.filter_value = Some("yes".into());
    })
    .await;
    app.crm
        .add_persons(json!([person(1, "Gone Soon", Some("gone@x.com"), 2)]))
        .await;
    // Indexed by e-mail, not imported (no flag).
    let first = app.sync(SyncMode::Incremental).await;
    assert_eq!(first.from_crm_created, 0);
    let token = app.crm.sandbox.description().pipedrive.api_token.clone();
    app.crm
        .http
        .delete(format!("{}/api/v2/persons/1", app.crm.base_url()))
        .header("x-api-token", token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    app.add_contact("gone@x.com", Some("Gone"), Some("Soon"), 1)
        .await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.to_crm_created, 1, "{:?}", app.items(&run).await);
    let live = person_by_email(&app, "gone@x.com").await;
    assert_eq!(live.len(), 1);
    assert_ne!(live[0]["id"], json!(1));
}
