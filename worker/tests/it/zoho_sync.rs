//! Two-way sync with the sandbox Zoho: leads both ways, contacts one way,
//! conversions (S10), owners and opt-outs (S9), batches and limits (S11).

use std::collections::BTreeMap;

use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{
    ConnectorKind, ConnectorStatus, CrmModule, ItemOutcome, Lifecycle, MappingDirection,
    SyncDirection, SyncMode, SyncRunStatus,
};
use crmsync_entity::models::{crm_link, field_mapping};
use crmsync_worker::crm::{CrmClient, RecordWrite};
use crmsync_worker::runs::RunError;
use crmsync_worker::settings::ConnectorSettings;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{App, Zoho};

/// A tenant with a Zoho connector on a sandbox Zoho org seeded with `people`.
async fn app(people: usize, settings: impl FnOnce(&mut ConnectorSettings)) -> App<Zoho> {
    let zoho = Zoho::start(people).await;
    // Every run makes its own client; these tests run more than ten.
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

/// Platform contacts `prefix0@x.com`.. with names (the last name left out for
/// the indexes in `nameless`).
async fn add_contacts(app: &App<Zoho>, prefix: &str, n: usize, nameless: &[usize]) {
    for i in 0..n {
        let last = (!nameless.contains(&i)).then(|| format!("Last{i}"));
        app.add_contact(
            &format!("{prefix}{i}@x.com"),
            Some(&format!("First{i}")),
            last.as_deref(),
            50,
        )
        .await;
    }
}

fn lead_by_email<'a>(leads: &'a [Value], email: &str) -> &'a Value {
    leads
        .iter()
        .find(|l| l["Email"].as_str() == Some(email))
        .unwrap_or_else(|| panic!("no lead {email}"))
}

async fn link_of(app: &App<Zoho>, contact_id: &str) -> crm_link::Model {
    crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::ContactId.eq(contact_id))
        .one(&app.db.db)
        .await
        .unwrap()
        .expect("a link")
}

async fn set_lifecycle(app: &App<Zoho>, email: &str, lifecycle: Lifecycle) {
    let contact = app.contact(email).await.unwrap();
    app.edit_contact(&contact, |c| c.lifecycle = Set(lifecycle))
        .await;
}

#[tokio::test]
async fn a_batch_with_three_bad_records_writes_ninety_seven_and_says_why() {
    let app = app(0, |_| {}).await;
    add_contacts(&app, "b", 100, &[3, 50, 99]).await;
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Partial);
    assert_eq!(run.to_crm_created, 97);
    assert_eq!(run.to_crm_rejected, 3);
    assert_eq!(app.crm.calls("/upsert").await, 1);
    let rejected: Vec<_> = app
        .items(&run)
        .await
        .into_iter()
        .filter(|i| i.outcome == ItemOutcome::Rejected)
        .collect();
    let mut emails: Vec<_> = rejected.iter().filter_map(|i| i.email.clone()).collect();
    emails.sort();
    assert_eq!(emails, ["b3@x.com", "b50@x.com", "b99@x.com"]);
    for item in &rejected {
        assert_eq!(item.reason_code.as_deref(), Some("MISSING_LAST_NAME"));
        assert_eq!(item.field.as_deref(), Some("Last_Name"));
        assert!(item.message.as_deref().unwrap().contains("last name"));
    }
    assert_eq!(app.crm.stored("Leads").await.len(), 97);
}

#[tokio::test]
async fn seeded_leads_come_in_through_the_filter_with_owners_and_opt_outs() {
    let app = app(300, |s| {
        s.filter_field = Some("sync_to_plezi".into());
        s.filter_value = Some("yes".into());
    })
    .await;
    let run = app.sync(SyncMode::Full).await;
    assert!(
        matches!(
            run.status,
            SyncRunStatus::Succeeded | SyncRunStatus::Partial
        ),
        "{:?}",
        run.error
    );
    let leads = app.crm.stored("Leads").await;
    let flagged: Vec<&Value> = leads
        .iter()
        .filter(|l| l["sync_to_plezi"].as_str() == Some("yes"))
        .collect();
    assert!(flagged.len() > 10, "the seed flags some leads");
    // Every flagged lead was decided: created or rejected (no e-mail, duplicates).
    assert_eq!(
        run.from_crm_created + run.from_crm_rejected,
        flagged.len() as i64,
        "{run:?}"
    );
    let contacts = app.contacts().await;
    assert_eq!(contacts.len() as i64, run.from_crm_created);
    for contact in &contacts {
        let link = link_of(&app, &contact.id).await;
        let lead = flagged
            .iter()
            .find(|l| l["id"].as_str() == Some(link.crm_record_id.as_str()))
            .unwrap_or_else(|| panic!("{} comes from a flagged lead", contact.email));
        assert_eq!(
            lead["Email"].as_str().map(|e| e.trim().to_lowercase()),
            Some(contact.email.clone())
        );
        assert_eq!(
            contact.opted_out,
            lead["Email_Opt_Out"].as_bool().unwrap_or(false),
            "{}",
            contact.email
        );
        let owner = lead["Owner"]["email"].as_str().map(str::to_lowercase);
        assert_eq!(contact.owner_email, owner, "{}", contact.email);
        let converted = lead["$converted"].as_bool() == Some(true);
        let expected = if converted {
            Lifecycle::Client
        } else {
            Lifecycle::Prospect
        };
        assert_eq!(contact.lifecycle, expected, "{}", contact.email);
    }
}

#[tokio::test]
async fn opt_outs_and_owners_go_to_zoho_and_opt_outs_come_back() {
    let app = app(0, |s| s.default_owner_email = None).await;
    let users = app.crm.client().users().await.unwrap();
    assert!(users.len() >= 2, "the sandbox org has users");
    let (ann, bob) = (&users[0], &users[1]);
    app.edit_contact(
        &app.add_contact("o1@x.com", Some("Olga"), Some("One"), 10)
            .await,
        |c| {
            c.opted_out = Set(true);
            c.owner_email = Set(Some(bob.email.clone()));
        },
    )
    .await;
    app.edit_contact(
        &app.add_contact("o2@x.com", Some("Oleg"), Some("Two"), 10)
            .await,
        |c| c.owner_email = Set(Some("nobody@elsewhere.test".into())),
    )
    .await;
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let leads = app.crm.stored("Leads").await;
    let one = lead_by_email(&leads, "o1@x.com");
    assert_eq!(one["Email_Opt_Out"], json!(true));
    assert_eq!(one["Owner"]["id"], json!(bob.id));
    // An owner who is no Zoho user: Zoho's default owner (the token's user).
    let two = lead_by_email(&leads, "o2@x.com");
    assert_eq!(two["Owner"]["id"], json!(ann.id));

    // Opted back in, in Zoho: the platform follows (S9, both ways).
    let id = one["id"].as_str().unwrap().to_owned();
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Leads,
            vec![RecordWrite {
                id: Some(id),
                values: BTreeMap::from([("Email_Opt_Out".to_owned(), json!(false))]),
                owner_email: None,
                email: "o1@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    let back = app.sync(SyncMode::Incremental).await;
    assert_eq!(back.status, SyncRunStatus::Succeeded, "{:?}", back.error);
    assert_eq!(back.from_crm_updated, 1);
    assert!(!app.contact("o1@x.com").await.unwrap().opted_out);
}

#[tokio::test]
async fn a_default_owner_owns_leads_whose_owner_is_no_zoho_user() {
    let app = app(0, |_| {}).await;
    let users = app.crm.client().users().await.unwrap();
    let bob = users[1].clone();
    let mut connector = crmsync_entity::models::connector::ActiveModel::from(app.connector().await);
    let mut settings: ConnectorSettings =
        serde_json::from_value(app.connector().await.settings).unwrap();
    settings.default_owner_email = Some(bob.email.clone());
    connector.settings = Set(serde_json::to_value(&settings).unwrap());
    sea_orm::ActiveModelTrait::update(connector, &app.db.db)
        .await
        .unwrap();
    app.edit_contact(
        &app.add_contact("d1@x.com", Some("Dora"), Some("One"), 10)
            .await,
        |c| c.owner_email = Set(Some("nobody@elsewhere.test".into())),
    )
    .await;
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let leads = app.crm.stored("Leads").await;
    assert_eq!(
        lead_by_email(&leads, "d1@x.com")["Owner"]["id"],
        json!(bob.id)
    );
}

#[tokio::test]
async fn a_client_converts_its_lead_and_then_only_receives_from_its_zoho_contact() {
    let app = app(0, |s| {
        s.import_modules = vec![CrmModule::Leads, CrmModule::Contacts];
    })
    .await;
    add_contacts(&app, "k", 2, &[]).await;
    let first = app.sync(SyncMode::Full).await;
    assert_eq!(first.status, SyncRunStatus::Succeeded, "{:?}", first.error);
    set_lifecycle(&app, "k0@x.com", Lifecycle::Client).await;

    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let leads = app.crm.stored("Leads").await;
    assert_eq!(lead_by_email(&leads, "k0@x.com")["$converted"], json!(true));
    assert_ne!(lead_by_email(&leads, "k1@x.com")["$converted"], json!(true));
    let zoho_contacts = app.crm.stored("Contacts").await;
    let zoho_contact = lead_by_email(&zoho_contacts, "k0@x.com");
    let contact = app.contact("k0@x.com").await.unwrap();
    let link = link_of(&app, &contact.id).await;
    assert_eq!(link.module, CrmModule::Contacts);
    assert_eq!(
        Some(link.crm_record_id.as_str()),
        zoho_contact["id"].as_str()
    );
    let conversion = app
        .items(&run)
        .await
        .into_iter()
        .find(|i| i.email.as_deref() == Some("k0@x.com") && i.direction == SyncDirection::ToCrm)
        .expect("the conversion is an item");
    assert_eq!(conversion.outcome, ItemOutcome::Updated);

    // Sales change the Zoho contact: the platform follows.
    let written = app
        .crm
        .client()
        .write(
            CrmModule::Contacts,
            vec![RecordWrite {
                id: Some(link.crm_record_id.clone()),
                values: BTreeMap::from([("Phone".to_owned(), json!("+33 1 23 45 67 89"))]),
                owner_email: None,
                email: "k0@x.com".into(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    let back = app.sync(SyncMode::Incremental).await;
    assert_eq!(back.status, SyncRunStatus::Succeeded, "{:?}", back.error);
    let contact = app.contact("k0@x.com").await.unwrap();
    assert_eq!(contact.phone.as_deref(), Some("+33 1 23 45 67 89"));
    assert_eq!(contact.lifecycle, Lifecycle::Client);

    // The platform changes the client: nothing goes to Zoho's contact (S4).
    app.edit_contact(&contact, |c| {
        c.phone = Set(Some("+33 9 99 99 99 99".into()))
    })
    .await;
    let upserts = app.crm.calls("/upsert").await;
    let quiet = app.sync(SyncMode::Incremental).await;
    assert_eq!(quiet.status, SyncRunStatus::Succeeded, "{:?}", quiet.error);
    assert_eq!(app.crm.calls("/upsert").await, upserts);
    let zoho_contacts = app.crm.stored("Contacts").await;
    assert_eq!(
        lead_by_email(&zoho_contacts, "k0@x.com")["Phone"],
        json!("+33 1 23 45 67 89")
    );
}

#[tokio::test]
async fn converting_a_lead_twice_is_refused_as_converted() {
    let app = app(0, |_| {}).await;
    add_contacts(&app, "t", 1, &[]).await;
    app.sync(SyncMode::Full).await;
    let contact = app.contact("t0@x.com").await.unwrap();
    let lead_id = link_of(&app, &contact.id).await.crm_record_id;
    let client = app.crm.client();
    client.convert_lead(&lead_id).await.unwrap();
    let again = client.convert_lead(&lead_id).await.unwrap_err();
    assert!(
        matches!(&again, crmsync_worker::crm::CrmError::Rejected { code, .. } if code == "CONVERTED_LEAD"),
        "{again:?}"
    );
}

#[tokio::test]
async fn spent_daily_credits_end_the_run_partial_and_the_next_run_resumes() {
    let app = app(0, |_| {}).await;
    add_contacts(&app, "d", 600, &[]).await;
    // Room for the set-up calls (fields, users, the empty listing: 3) and
    // five of the six upserts of 100 (10 credits each), not the sixth.
    let used = app.crm.usage().await["credits_used"].as_u64().unwrap();
    app.crm
        .set_limits(json!({ "daily_credits": used + 3 + 50 + 5 }))
        .await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Partial, "{run:?}");
    assert_eq!(run.to_crm_created, 500);
    let message = run.error.as_deref().unwrap();
    assert!(message.contains("credits"), "{message}");
    assert!(message.contains("resumes"), "{message}");
    assert_eq!(app.crm.stored("Leads").await.len(), 500);

    app.crm
        .set_limits(json!({ "daily_credits": 5_000_000 }))
        .await;
    let next = app.sync(SyncMode::Incremental).await;
    assert_eq!(next.status, SyncRunStatus::Succeeded, "{:?}", next.error);
    assert_eq!(next.to_crm_created, 100);
    assert_eq!(app.crm.stored("Leads").await.len(), 600);
}

#[tokio::test]
async fn a_refused_refresh_token_needs_reauth_and_stops_the_connectors_syncs() {
    let zoho = Zoho::start(0).await;
    let fields = zoho.client().fields(CrmModule::Leads).await.unwrap();
    let mut credentials = zoho.credentials();
    credentials = credentials.with(
        "refreshToken",
        SecretString::from("1000.revoked.token".to_owned()),
    );
    let base_url = zoho.accounts_url();
    let app = App::assemble(
        zoho,
        ConnectorKind::ZohoCrm,
        credentials,
        &base_url,
        &fields,
        |_| {},
    )
    .await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Failed);
    let connector = app.connector().await;
    assert_eq!(connector.status, ConnectorStatus::NeedsReauth);
    let message = connector.status_message.unwrap();
    assert!(message.contains("grant code"), "{message}");

    let queue = crmsync_worker::jobs::JobQueue::connect(&app.db.db)
        .await
        .unwrap();
    let refused = app.start_sync(&queue).await.unwrap_err();
    assert!(
        matches!(&refused, RunError::Conflict(m) if m.contains("needs new credentials")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_access_token_expiring_mid_run_is_renewed_without_failing_the_run() {
    let app = app(0, |s| s.max_concurrent_calls = Some(2)).await;
    // Tokens live one second; each upsert takes at least 300 ms, and ten
    // batches two at a time (five rounds) outlive the first token.
    app.crm
        .set_limits(json!({ "access_token_ttl_secs": 1 }))
        .await;
    // The token cached since the set-up expires too.
    app.crm.advance_clock(7200).await;
    app.crm
        .admin(
            reqwest::Method::POST,
            "/faults",
            json!({ "kind": "latency", "system": "zoho", "endpoint": "POST /zoho/api/*", "fixed_ms": 300 }),
        )
        .await;
    add_contacts(&app, "e", 1000, &[]).await;
    let tokens_before = app.crm.token_calls().await;
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.to_crm_created, 1000);
    assert!(
        app.crm.token_calls().await >= tokens_before + 2,
        "the run renewed its token"
    );
}

#[tokio::test]
async fn the_connectors_concurrency_limit_keeps_calls_within_the_orgs() {
    let app = app(0, |s| s.max_concurrent_calls = Some(2)).await;
    app.crm
        .set_limits(json!({ "concurrency": 2, "heavy_concurrency": 2 }))
        .await;
    app.crm
        .admin(
            reqwest::Method::POST,
            "/faults",
            json!({ "kind": "latency", "system": "zoho", "endpoint": "POST /zoho/api/*", "fixed_ms": 50 }),
        )
        .await;
    add_contacts(&app, "p", 1000, &[]).await;
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.to_crm_created, 1000);
    assert_eq!(app.crm.calls_with_status(429).await, 0);
}

#[tokio::test]
async fn contacts_of_zoho_come_in_one_way_as_clients() {
    let app = app(200, |s| {
        s.import_modules = vec![CrmModule::Contacts];
    })
    .await;
    let run = app.sync(SyncMode::Full).await;
    assert!(
        matches!(
            run.status,
            SyncRunStatus::Succeeded | SyncRunStatus::Partial
        ),
        "{:?}",
        run.error
    );
    assert!(run.from_crm_created > 0);
    let zoho_contacts = app.crm.stored("Contacts").await;
    let clients = app
        .contacts()
        .await
        .into_iter()
        .filter(|c| c.lifecycle == Lifecycle::Client)
        .count();
    assert_eq!(clients as i64, run.from_crm_created);
    // One way: the platform wrote nothing to Zoho's contacts.
    assert_eq!(app.crm.calls("/upsert").await, 0);
    assert!(zoho_contacts.len() as i64 >= run.from_crm_created);
    let links = crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::Module.eq(CrmModule::Contacts))
        .all(&app.db.db)
        .await
        .unwrap();
    assert_eq!(links.len() as i64, run.from_crm_created);
}

#[tokio::test]
async fn picklist_values_are_checked_before_sending_and_labels_do_not_echo() {
    let app = app(0, |_| {}).await;
    // The platform's source goes to Zoho's Lead_Source picklist, whose option
    // "Web Form" is shown as "Web-Form".
    let mapping = field_mapping::Entity::for_tenant(&app.tenant)
        .filter(field_mapping::Column::PlatformField.eq("source"))
        .one(&app.db.db)
        .await
        .unwrap()
        .expect("source is mapped by default");
    let mut row = field_mapping::ActiveModel::from(mapping);
    row.crm_field = Set("Lead_Source".into());
    row.direction = Set(MappingDirection::Both);
    sea_orm::ActiveModelTrait::update(row, &app.db.db)
        .await
        .unwrap();
    for (email, source) in [("web@x.com", "Web-Form"), ("bird@x.com", "Carrier pigeon")] {
        let contact = app.add_contact(email, Some("Pat"), Some("Doe"), 10).await;
        app.edit_contact(&contact, |c| c.source = Set(Some(source.into())))
            .await;
    }
    let run = app.sync(SyncMode::Full).await;
    assert_eq!(run.status, SyncRunStatus::Partial, "{:?}", run.error);
    assert_eq!(run.to_crm_created, 1);
    let rejected = app
        .items(&run)
        .await
        .into_iter()
        .find(|i| i.outcome == ItemOutcome::Rejected)
        .expect("the unknown source is refused");
    assert_eq!(rejected.email.as_deref(), Some("bird@x.com"));
    assert_eq!(
        rejected.reason_code.as_deref(),
        Some("INVALID_PICKLIST_VALUE")
    );
    assert_eq!(rejected.field.as_deref(), Some("Lead_Source"));
    let message = rejected.message.unwrap();
    assert!(
        message.contains("Web-Form") && message.contains("Trade Show"),
        "{message}"
    );
    // Zoho holds the actual value; read back as its label, it is no change.
    let leads = app.crm.stored("Leads").await;
    assert_eq!(
        lead_by_email(&leads, "web@x.com")["Lead_Source"],
        json!("Web Form")
    );
    let upserts = app.crm.calls("/upsert").await;
    let again = app.sync(SyncMode::Incremental).await;
    assert_eq!(again.from_crm_updated, 0, "{again:?}");
    assert_eq!(again.to_crm_updated, 0, "{again:?}");
    assert_eq!(app.crm.calls("/upsert").await, upserts);
    assert_eq!(
        app.contact("web@x.com").await.unwrap().source.as_deref(),
        Some("Web-Form")
    );
}

#[tokio::test]
async fn zoho_workflows_run_on_our_writes_only_when_the_connector_asks() {
    let quiet = app(0, |_| {}).await;
    add_contacts(&quiet, "w", 3, &[]).await;
    let run = quiet.sync(SyncMode::Full).await;
    assert_eq!(run.to_crm_created, 3, "{:?}", run.error);
    assert_eq!(quiet.crm.usage().await["workflow_runs"], json!(0));

    let asks = app(0, |s| s.run_workflows = true).await;
    add_contacts(&asks, "w", 3, &[]).await;
    let run = asks.sync(SyncMode::Full).await;
    assert_eq!(run.to_crm_created, 3, "{:?}", run.error);
    assert_eq!(asks.crm.usage().await["workflow_runs"], json!(3));
}
