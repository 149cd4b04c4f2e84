//! The cases: each asserts one behaviour every CRM kind must have, through the
//! engine (whole runs) or the kind's client, against its sandbox.

use chrono::{DateTime, Duration, Timelike, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{
    ConnectorStatus, ConsentOrigin, ItemOutcome, Lifecycle, MappingDirection, SyncDirection,
    SyncMode, SyncRunStatus,
};
use crmsync_entity::models::{
    consent_event, contact, crm_link, field_mapping, sync_item, sync_run,
};
use crmsync_sandbox::faults::FaultKind;
use crmsync_sandbox::kit::{Person, SandboxCrm};
use crmsync_worker::crm::kit::Deletions;
use crmsync_worker::crm::{CrmError, FieldType, RecordWrite};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter};
use serde_json::{Value, json};

use super::{Crm, FILTER_FIELD, Suite, TIER_FIELD, TIERS, crm_field, mapping};
use crate::support::App;

type Case<K> = App<Crm<K>>;

/// A person with an e-mail and a name, modified `at` (now when `None`).
fn person(email: Option<&str>, first: &str, last: &str, at: Option<DateTime<Utc>>) -> Person {
    Person {
        first_name: Some(first.to_owned()),
        last_name: last.to_owned(),
        email: email.map(str::to_owned),
        modified_at: at,
        ..Person::default()
    }
}

fn flagged(mut p: Person, option: &str) -> Person {
    p.picklists.insert(FILTER_FIELD.into(), option.into());
    p
}

fn assert_status(run: &sync_run::Model, status: SyncRunStatus) {
    assert_eq!(run.status, status, "{:?} {run:?}", run.error);
}

/// The run's items of this direction for this e-mail.
async fn items_of<K>(
    app: &Case<K>,
    run: &sync_run::Model,
    email: &str,
    direction: SyncDirection,
) -> Vec<sync_item::Model> {
    app.items(run)
        .await
        .into_iter()
        .filter(|i| i.direction == direction && i.email.as_deref() == Some(email))
        .collect()
}

/// Sets a platform contact's values and its modification time.
async fn edit_at<K>(
    app: &Case<K>,
    email: &str,
    at: DateTime<Utc>,
    edit: impl FnOnce(&mut contact::ActiveModel),
) {
    let contact = app.contact(email).await.expect("the contact exists");
    let mut am = contact::ActiveModel::from(contact);
    edit(&mut am);
    am.updated_at = Set(at);
    am.update(&app.db.db).await.unwrap();
}

/// Writes values to a stored record through the client, as a person in the CRM would.
async fn change_in_crm<K: SandboxCrm>(app: &Case<K>, email: &str, values: &[(&str, Value)]) {
    let stored = app.crm.stored_with(email).await;
    assert_eq!(stored.len(), 1, "one record for {email}");
    let written = app
        .crm
        .client()
        .write(
            app.crm.worker.describe().export_module(),
            vec![RecordWrite {
                id: Some(stored[0].id.clone()),
                values: values
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
                owner_email: None,
                email: email.to_owned(),
            }],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
}

async fn set_mapping_enabled<K>(app: &Case<K>, platform_field: &str, enabled: bool) {
    if let Some(row) = mapping(app, platform_field).await {
        let mut am = field_mapping::ActiveModel::from(row);
        am.enabled = Set(enabled);
        am.update(&app.db.db).await.unwrap();
    }
}

pub async fn connects_with_its_form_and_a_revoked_credential_is_unauthorized<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    let client = app.crm.client();
    assert!(
        client.users().await.unwrap().iter().any(|u| u.active),
        "the exchanged credentials read the account's users"
    );
    assert!(!crm_field(&app, "email").await.is_empty());

    app.crm
        .kit
        .revoke_credentials(&app.crm.state, &app.crm.account)
        .unwrap();

    let refused = app.crm.client();
    let fields = refused
        .fields(app.crm.worker.describe().export_module())
        .await;
    assert!(
        matches!(fields, Err(CrmError::Unauthorized(_))),
        "{fields:?}"
    );
    let users = refused.users().await;
    assert!(matches!(users, Err(CrmError::Unauthorized(_))), "{users:?}");
    assert!(
        app.crm.connect_again().await.is_err(),
        "the form no longer connects"
    );
    let run = app.sync(SyncMode::Incremental).await;
    assert_status(&run, SyncRunStatus::Failed);
    let connector = app.connector().await;
    assert_eq!(connector.status, ConnectorStatus::NeedsReauth);
    assert!(connector.status_message.is_some_and(|m| !m.is_empty()));
}

pub async fn lists_a_picklist_field_with_its_options<K: SandboxCrm + Default>(suite: Suite<K>) {
    let app = suite.app(|_| {}).await;
    let fields = app
        .crm
        .client()
        .fields(app.crm.worker.describe().export_module())
        .await
        .unwrap();
    let tier = fields
        .iter()
        .find(|f| f.api_name == TIER_FIELD || f.label == TIER_FIELD)
        .unwrap_or_else(|| panic!("{TIER_FIELD} is listed: {fields:?}"));
    assert_eq!(tier.field_type, FieldType::Picklist);
    assert!(tier.custom);
    let labels: Vec<&str> = tier
        .options
        .iter()
        .flatten()
        .map(|o| o.label.as_str())
        .collect();
    assert_eq!(labels, TIERS);
}

pub async fn imports_what_the_filter_selects_and_skips_a_record_without_email<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite
        .app(|s| {
            s.filter_field = Some(FILTER_FIELD.into());
            s.filter_value = Some("yes".into());
        })
        .await;
    let ids = app
        .crm
        .put(&[
            flagged(person(Some("yes@x.com"), "Yes", "Please", None), "yes"),
            flagged(person(Some("no@x.com"), "No", "Thanks", None), "no"),
            person(Some("unset@x.com"), "Not", "Set", None),
            flagged(person(None, "No", "Mail", None), "yes"),
        ])
        .await;

    let run = app.sync(SyncMode::Incremental).await;

    assert_status(&run, SyncRunStatus::Partial);
    assert_eq!(run.from_crm_created, 1);
    assert_eq!(run.from_crm_rejected, 1);
    assert!(app.contact("yes@x.com").await.is_some());
    assert!(app.contact("no@x.com").await.is_none());
    assert!(app.contact("unset@x.com").await.is_none());
    let skipped = app
        .items(&run)
        .await
        .into_iter()
        .find(|i| i.outcome == ItemOutcome::Rejected)
        .expect("the record without e-mail is an item");
    assert_eq!(skipped.direction, SyncDirection::FromCrm);
    assert_eq!(skipped.reason_code.as_deref(), Some("MISSING_EMAIL"));
    assert_eq!(skipped.crm_record_id.as_deref(), Some(ids[3].as_str()));
    assert!(skipped.message.is_some_and(|m| m.contains("e-mail")));
}

pub async fn imports_past_the_crms_page_size<K: SandboxCrm + Default>(suite: Suite<K>) {
    let app = suite.app(|_| {}).await;
    // Not written back: this case is about reading.
    set_mapping_enabled(&app, "platform_url", false).await;
    let n = app.crm.kit.list_page_size() + 7;
    let start = Utc::now() - Duration::hours(2);
    let people: Vec<Person> = (0..n)
        .map(|i| {
            let at = start + Duration::seconds(i as i64);
            person(
                Some(&format!("p{i}@x.com")),
                "Page",
                &format!("P{i}"),
                Some(at),
            )
        })
        .collect();
    app.crm.put(&people).await;

    let run = app.sync(SyncMode::Full).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(run.from_crm_created, n as i64);
    let contacts = app.contacts().await;
    assert_eq!(contacts.len(), n);
    for i in [0, n / 2, n - 1] {
        let contact = app.contact(&format!("p{i}@x.com")).await.expect("imported");
        assert_eq!(contact.last_name, Some(format!("P{i}")));
    }
}

pub async fn a_second_run_imports_only_what_changed_and_loses_no_record_at_the_boundary<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    // Whole seconds: the CRMs keep modification times to the second.
    let start = (Utc::now() - Duration::minutes(10))
        .with_nanosecond(0)
        .expect("zero nanoseconds");
    let first: Vec<Person> = (0..3)
        .map(|i| {
            let at = start + Duration::seconds(i);
            person(
                Some(&format!("a{i}@x.com")),
                "Ann",
                &format!("A{i}"),
                Some(at),
            )
        })
        .collect();
    app.crm.put(&first).await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(run.from_crm_created, 3);

    // The checkpoint is the last record's modification time: one record
    // carries the same time, one an earlier time it was committed too late
    // to be read with (both within the overlap), and one is changed now.
    let last = start + Duration::seconds(2);
    app.crm
        .put(&[
            person(Some("same-second@x.com"), "Bo", "Same", Some(last)),
            person(
                Some("late@x.com"),
                "Lu",
                "Late",
                Some(last - Duration::seconds(30)),
            ),
        ])
        .await;
    let phone = crm_field(&app, "phone").await;
    change_in_crm(&app, "a0@x.com", &[(&phone, json!("+33100000001"))]).await;

    let second = app.sync(SyncMode::Incremental).await;

    assert_status(&second, SyncRunStatus::Succeeded);
    assert_eq!(second.from_crm_created, 2, "{:?}", app.items(&second).await);
    assert_eq!(second.from_crm_updated, 1, "{:?}", app.items(&second).await);
    assert!(app.contact("same-second@x.com").await.is_some());
    assert!(app.contact("late@x.com").await.is_some());
    let changed = app.contact("a0@x.com").await.unwrap();
    assert_eq!(changed.phone.as_deref(), Some("+33100000001"));

    let third = app.sync(SyncMode::Incremental).await;
    assert_status(&third, SyncRunStatus::Succeeded);
    assert_eq!(third.from_crm_created + third.from_crm_updated, 0);
}

pub async fn exports_in_the_largest_batches_and_rejects_a_bad_record_alone<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    let batch = app.crm.kit.write_batch_size();
    let n = 2 * batch + 1;
    let bad = n / 2;
    // A CRM with mandatory fields (a name) refuses a nameless record; one
    // that takes nameless records refuses a value outside a picklist.
    let module = app.crm.worker.describe().export_module();
    let fields = app.crm.client().fields(module).await.unwrap();
    let names_required = fields.iter().any(|f| f.mandatory);
    if !names_required {
        let tier = fields
            .iter()
            .find(|f| f.api_name == TIER_FIELD || f.label == TIER_FIELD)
            .expect("the picklist field")
            .api_name
            .clone();
        let row = mapping(&app, "source").await.expect("source is mapped");
        let mut am = field_mapping::ActiveModel::from(row);
        am.crm_field = Set(tier);
        am.direction = Set(MappingDirection::ToCrm);
        am.enabled = Set(true);
        am.update(&app.db.db).await.unwrap();
    }
    for i in 0..n {
        let (first, last) = if i == bad && names_required {
            (None, None)
        } else {
            (Some("Exa".to_owned()), Some(format!("E{i}")))
        };
        let id = app
            .add_contact(
                &format!("e{i}@x.com"),
                first.as_deref(),
                last.as_deref(),
                10,
            )
            .await;
        if i == bad && !names_required {
            app.edit_contact(&id, |c| c.source = Set(Some("Carrier pigeon".into())))
                .await;
        }
    }

    let run = app.sync(SyncMode::Full).await;

    assert_status(&run, SyncRunStatus::Partial);
    assert_eq!(run.to_crm_created, (n - 1) as i64);
    assert_eq!(run.to_crm_rejected, 1);
    let rejected: Vec<_> = app
        .items(&run)
        .await
        .into_iter()
        .filter(|i| i.outcome == ItemOutcome::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1);
    let bad_email = format!("e{bad}@x.com");
    assert_eq!(rejected[0].email.as_deref(), Some(bad_email.as_str()));
    assert!(rejected[0].reason_code.is_some());
    assert!(
        rejected[0]
            .message
            .as_deref()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(app.crm.stored().await.len(), n - 1);
    assert!(app.crm.stored_with(&bad_email).await.is_empty());
    // The bad record goes in a batch where the CRM refuses records one by
    // one, or is refused before sending where the engine knows the rule.
    let creates = app
        .crm
        .account
        .calls_to(&app.crm.state, &app.crm.kit.write_endpoints()[..1]);
    let least = (n - 1).div_ceil(batch) as u64;
    let most = n.div_ceil(batch) as u64;
    assert!(
        (least..=most).contains(&creates),
        "{creates} write calls for {n} records in batches of {batch}"
    );
}

pub async fn an_exported_contact_does_not_come_back_as_a_change<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    app.crm
        .put(&[person(Some("crm@x.com"), "Cara", "Crm", None)])
        .await;
    app.add_contact("out1@x.com", Some("Otto"), Some("One"), 20)
        .await;
    app.add_contact("out2@x.com", Some("Olga"), Some("Two"), 30)
        .await;
    let first = app.sync(SyncMode::Incremental).await;
    assert_status(&first, SyncRunStatus::Succeeded);
    assert_eq!(first.from_crm_created, 1);
    assert_eq!(first.to_crm_created, 2);
    assert_eq!(app.crm.stored_with("out1@x.com").await.len(), 1);
    let writes = app.crm.writes();
    assert!(writes > 0, "the sandbox counts the exports");
    let contacts = app.contacts().await;

    let second = app.sync(SyncMode::Incremental).await;

    assert_status(&second, SyncRunStatus::Succeeded);
    assert_eq!(second.from_crm_created + second.from_crm_updated, 0);
    assert_eq!(second.to_crm_created + second.to_crm_updated, 0);
    assert_eq!(app.crm.writes(), writes, "nothing written to the CRM");
    assert_eq!(
        app.contacts().await,
        contacts,
        "nothing written to the platform"
    );
}

pub async fn a_field_changed_on_both_sides_takes_the_newer_side_and_is_recorded<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    for email in ["same@x.com", "other@x.com", "crmwins@x.com"] {
        let c = app.add_contact(email, Some("Bo"), Some("Th"), 5).await;
        app.edit_contact(&c, |c| c.phone = Set(Some("+33100000000".into())))
            .await;
    }
    let first = app.sync(SyncMode::Incremental).await;
    assert_status(&first, SyncRunStatus::Succeeded);
    assert_eq!(first.to_crm_created, 3);

    let phone = crm_field(&app, "phone").await;
    for email in ["same@x.com", "other@x.com", "crmwins@x.com"] {
        change_in_crm(&app, email, &[(&phone, json!("+33200000000"))]).await;
    }
    let later = Utc::now() + Duration::hours(1);
    let earlier = Utc::now() - Duration::hours(1);
    // The same field, changed later on the platform; another field; the same
    // field changed earlier on the platform than in the CRM.
    edit_at(&app, "same@x.com", later, |c| {
        c.phone = Set(Some("+33300000000".into()))
    })
    .await;
    edit_at(&app, "other@x.com", later, |c| {
        c.last_name = Set(Some("Changed".into()))
    })
    .await;
    edit_at(&app, "crmwins@x.com", earlier, |c| {
        c.phone = Set(Some("+33300000000".into()))
    })
    .await;

    let run = app.sync(SyncMode::Incremental).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    let same = items_of(&app, &run, "same@x.com", SyncDirection::ToCrm).await;
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0].outcome, ItemOutcome::Conflict);
    assert!(
        same[0]
            .field_changes()
            .iter()
            .any(|c| c.platform_field == "phone" && c.conflict),
        "{same:?}"
    );
    assert_eq!(
        app.crm.stored_with("same@x.com").await[0].phone.as_deref(),
        Some("+33300000000")
    );
    let same = app.contact("same@x.com").await.unwrap();
    assert_eq!(same.phone.as_deref(), Some("+33300000000"));

    let other_items = app.items(&run).await;
    assert!(
        other_items
            .iter()
            .filter(|i| i.email.as_deref() == Some("other@x.com"))
            .all(|i| i.outcome != ItemOutcome::Conflict),
        "{other_items:?}"
    );
    let other = &app.crm.stored_with("other@x.com").await[0];
    assert_eq!(other.phone.as_deref(), Some("+33200000000"));
    assert_eq!(other.last_name.as_deref(), Some("Changed"));
    let other = app.contact("other@x.com").await.unwrap();
    assert_eq!(other.phone.as_deref(), Some("+33200000000"));
    assert_eq!(other.last_name.as_deref(), Some("Changed"));

    let crm_wins = items_of(&app, &run, "crmwins@x.com", SyncDirection::FromCrm).await;
    assert_eq!(crm_wins.len(), 1, "{crm_wins:?}");
    assert_eq!(crm_wins[0].outcome, ItemOutcome::Conflict);
    let crm_wins = app.contact("crmwins@x.com").await.unwrap();
    assert_eq!(crm_wins.phone.as_deref(), Some("+33200000000"));
    assert_eq!(
        app.crm.stored_with("crmwins@x.com").await[0]
            .phone
            .as_deref(),
        Some("+33200000000")
    );
}

pub async fn a_converted_record_is_never_overwritten<K: SandboxCrm + Default>(suite: Suite<K>) {
    if !suite.worker.describe().converts_leads {
        println!(
            "skipped for {}: its kit says the CRM converts no leads, and conversion is the \
             engine's only notion of a record owned by sales",
            suite.kind
        );
        return;
    }
    let modules = suite
        .worker
        .describe()
        .modules
        .iter()
        .map(|m| m.module)
        .collect();
    let app = suite.app(|s| s.import_modules = modules).await;
    let contact = app
        .add_contact("sold@x.com", Some("Sol"), Some("Sold"), 5)
        .await;
    let first = app.sync(SyncMode::Full).await;
    assert_status(&first, SyncRunStatus::Succeeded);
    let lead = link_of(&app, &contact.id).await;
    let client = app.crm.client();
    let converted = app.crm.convert(&lead.crm_record_id).await;
    let taken = app.sync(SyncMode::Incremental).await;
    assert_status(&taken, SyncRunStatus::Succeeded);
    let link = link_of(&app, &contact.id).await;
    assert_eq!(link.crm_record_id, converted);
    assert_eq!(
        app.contact("sold@x.com").await.unwrap().lifecycle,
        Lifecycle::Client
    );

    let writes = app.crm.writes();
    let contact = app.contact("sold@x.com").await.unwrap();
    app.edit_contact(&contact, |c| {
        c.phone = Set(Some("+33999999999".into()));
        c.last_name = Set(Some("Overwritten".into()));
    })
    .await;
    let run = app.sync(SyncMode::Incremental).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(app.crm.writes(), writes, "nothing written to the CRM");
    let phone = crm_field(&app, "phone").await;
    let records = client
        .get_many(link.module, std::slice::from_ref(&link.crm_record_id))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_ne!(records[0].values.get(&phone), Some(&json!("+33999999999")));
    let lead = app.crm.stored_with("sold@x.com").await;
    assert!(lead.iter().all(|l| l.last_name.as_deref() == Some("Sold")));
}

async fn link_of<K>(app: &Case<K>, contact_id: &str) -> crm_link::Model {
    crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::ContactId.eq(contact_id))
        .one(&app.db.db)
        .await
        .unwrap()
        .expect("a link")
}

pub async fn a_value_outside_a_picklist_is_refused_before_sending<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    let module = app.crm.worker.describe().export_module();
    let fields = app.crm.client().fields(module).await.unwrap();
    let tier = fields
        .iter()
        .find(|f| f.api_name == TIER_FIELD || f.label == TIER_FIELD)
        .expect("the picklist field")
        .api_name
        .clone();
    // The platform's source goes to the picklist (a mapping of its own
    // where the CRM has no default field for the source).
    match mapping(&app, "source").await {
        Some(row) => {
            let mut am = field_mapping::ActiveModel::from(row);
            am.crm_field = Set(tier.clone());
            am.direction = Set(MappingDirection::ToCrm);
            am.enabled = Set(true);
            am.update(&app.db.db).await.unwrap();
        }
        None => {
            field_mapping::ActiveModel::from(field_mapping::Model {
                id: crmsync_entity::new_id(),
                tenant_id: app.tenant.as_str().to_owned(),
                connector_id: app.connector_id.clone(),
                position: 1_000,
                platform_field: "source".into(),
                crm_field: tier.clone(),
                direction: MappingDirection::ToCrm,
                enabled: true,
                locked: false,
            })
            .insert(&app.db.db)
            .await
            .unwrap();
        }
    }
    let bird = app
        .add_contact("bird@x.com", Some("Carrier"), Some("Pigeon"), 1)
        .await;
    app.edit_contact(&bird, |c| c.source = Set(Some("Carrier pigeon".into())))
        .await;

    let run = app.sync(SyncMode::Incremental).await;

    assert_status(&run, SyncRunStatus::Partial);
    assert_eq!(run.to_crm_rejected, 1);
    let item = &items_of(&app, &run, "bird@x.com", SyncDirection::ToCrm).await[0];
    assert_eq!(item.reason_code.as_deref(), Some("INVALID_PICKLIST_VALUE"));
    assert_eq!(item.field.as_deref(), Some(tier.as_str()));
    let message = item.message.as_deref().unwrap();
    assert!(message.contains(TIERS[0]), "{message}");
    assert_eq!(app.crm.writes(), 0, "no CRM request was made");
    assert!(app.crm.stored().await.is_empty());

    let gold = app
        .add_contact("gold@x.com", Some("Goldie"), Some("Hawn"), 1)
        .await;
    app.edit_contact(&gold, |c| c.source = Set(Some(TIERS[0].into())))
        .await;
    let next = app.sync(SyncMode::Incremental).await;
    assert_eq!(next.to_crm_created, 1, "{:?}", app.items(&next).await);
    let stored = app.crm.stored_with("gold@x.com").await;
    let record = app
        .crm
        .client()
        .get_many(module, &[stored[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(record[0].values.get(&tier), Some(&json!(TIERS[0])));
}

pub async fn rate_limits_and_server_errors_are_backed_off<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    app.crm
        .put(&[
            person(Some("r1@x.com"), "Ra", "One", None),
            person(Some("r2@x.com"), "Ra", "Two", None),
        ])
        .await;
    let (state, account) = (&app.crm.state, &app.crm.account);
    let limited = account.add_fault(state, FaultKind::RateLimit, None, Some(1));
    let failed = account.add_fault(state, FaultKind::Error { status: 503 }, None, Some(1));

    let run = app.sync(SyncMode::Full).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(run.from_crm_created, 2);
    // A CRM answers a rate limit its own way (HubSpot 429, Salesforce 403
    // REQUEST_LIMIT_EXCEEDED): the rule's hits say it was answered.
    let hits = |id: u64| {
        state
            .faults
            .list()
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.hits)
    };
    assert_eq!(hits(limited.id), 1, "the rate limit was answered");
    assert_eq!(hits(failed.id), 1, "the 503 was answered");
    assert_eq!(account.calls_answered(state, 503), 1, "the 503 was sent");
}

pub async fn a_write_whose_reply_is_lost_is_not_duplicated<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    app.add_contact("once@x.com", Some("Only"), Some("Once"), 1)
        .await;
    app.add_contact("twice@x.com", Some("Not"), Some("Twice"), 1)
        .await;
    let (state, account) = (&app.crm.state, &app.crm.account);
    let create = app.crm.kit.write_endpoints()[0];
    account.add_fault(
        state,
        FaultKind::TimeoutAfterWrite { delay_ms: 50 },
        Some(create),
        Some(1),
    );

    let run = app.sync(SyncMode::Full).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(run.to_crm_created, 2);
    assert_eq!(
        account.calls_answered(state, crmsync_sandbox::metrics::NO_REPLY),
        1,
        "one write's reply was lost"
    );
    for email in ["once@x.com", "twice@x.com"] {
        assert_eq!(app.crm.stored_with(email).await.len(), 1, "{email}");
    }
    assert_eq!(app.crm.stored().await.len(), 2);
}

pub async fn a_spent_daily_limit_ends_the_run_partial_and_the_next_resumes<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    // Only reads spend the budget: nothing is written back on import.
    for row in field_mapping::Entity::for_tenant(&app.tenant)
        .filter(field_mapping::Column::Direction.eq(MappingDirection::ToCrm))
        .all(&app.db.db)
        .await
        .unwrap()
    {
        set_mapping_enabled(&app, &row.platform_field, false).await;
    }
    let (kit, state, account) = (&app.crm.kit, &app.crm.state, &app.crm.account);
    // What a run that lists one page costs, in the CRM's units.
    let before = kit.daily_used(state, account).await.unwrap();
    let probe = app.sync(SyncMode::Full).await;
    assert_status(&probe, SyncRunStatus::Succeeded);
    let one_page = kit.daily_used(state, account).await.unwrap() - before;
    assert!(one_page > 0, "the sandbox counts the run's calls");
    let page = app.crm.kit.list_page_size();
    let start = Utc::now() - Duration::hours(2);
    let people: Vec<Person> = (0..page + 8)
        .map(|i| {
            let at = start + Duration::seconds(i as i64);
            person(
                Some(&format!("d{i}@x.com")),
                "Di",
                &format!("D{i}"),
                Some(at),
            )
        })
        .collect();
    app.crm.put(&people).await;
    // Room for that much again: the second page is refused.
    let used = kit.daily_used(state, account).await.unwrap();
    kit.set_daily_budget(state, account, used + one_page)
        .await
        .unwrap();

    let stopped = app.sync(SyncMode::Incremental).await;

    assert_status(&stopped, SyncRunStatus::Partial);
    let message = stopped.error.as_deref().unwrap();
    assert!(message.contains("resumes"), "{message}");
    // The first page: a client may hold back the records of its last
    // instant for the next page (a CRM that orders ties as it likes).
    let first = stopped.from_crm_created;
    assert!(
        first > 0 && first <= page as i64,
        "the first page, {first} of at most {page}"
    );
    assert_eq!(app.connector().await.status, ConnectorStatus::Connected);

    let used = kit.daily_used(state, account).await.unwrap();
    kit.set_daily_budget(state, account, used + 1_000_000_000)
        .await
        .unwrap();
    let resumed = app.sync(SyncMode::Incremental).await;
    assert_status(&resumed, SyncRunStatus::Succeeded);
    assert_eq!(
        resumed.from_crm_created,
        (page + 8) as i64 - first,
        "only what the stopped run missed"
    );
    assert_eq!(app.contacts().await.len(), page + 8);
}

/// Archives (or unarchives) a platform contact as `archiveContact` does.
async fn set_archived<K>(app: &Case<K>, email: &str, archived: bool) {
    let contact = app.contact(email).await.expect("the contact exists");
    app.edit_contact(&contact, |am| am.archived_at = Set(archived.then(Utc::now)))
        .await;
}

/// Issue 24: an archived contact is never exported; a FULL run neither
/// writes a CRM record of its e-mail onto it nor makes a new contact of it
/// (UNCHANGED, ARCHIVED_IN_PLATFORM); unarchived, it is exported again.
pub async fn an_archived_contact_is_neither_exported_nor_brought_back<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    app.add_contact("gone@x.com", Some("Gus"), Some("Gone"), 30)
        .await;
    app.add_contact("kept@x.com", Some("Kim"), Some("Old"), 30)
        .await;
    set_archived(&app, "gone@x.com", true).await;
    set_archived(&app, "kept@x.com", true).await;
    app.crm
        .put(&[person(Some("kept@x.com"), "Kim", "New", None)])
        .await;

    let full = app.sync(SyncMode::Full).await;

    assert_status(&full, SyncRunStatus::Succeeded);
    assert_eq!(full.to_crm_created + full.from_crm_created, 0);
    assert!(app.crm.stored_with("gone@x.com").await.is_empty());
    assert_eq!(app.crm.stored_with("kept@x.com").await.len(), 1);
    assert_eq!(app.contacts().await.len(), 2, "no new contact");
    let kept = app.contact("kept@x.com").await.unwrap();
    assert_eq!(kept.last_name.as_deref(), Some("Old"));
    assert!(kept.archived_at.is_some());
    let items = items_of(&app, &full, "kept@x.com", SyncDirection::FromCrm).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].outcome, ItemOutcome::Unchanged);
    assert_eq!(
        items[0].reason_code.as_deref(),
        Some("ARCHIVED_IN_PLATFORM")
    );
    assert_eq!(items[0].contact_id.as_deref(), Some(kept.id.as_str()));

    set_archived(&app, "gone@x.com", false).await;
    let again = app.sync(SyncMode::Incremental).await;

    assert_status(&again, SyncRunStatus::Succeeded);
    assert_eq!(again.to_crm_created, 1);
    assert_eq!(app.crm.stored_with("gone@x.com").await.len(), 1);
}

/// S9, on every CRM with an opt-out field: an opt-out made in the CRM
/// reaches the platform and is recorded with its connector and run; a newer
/// opt-in on the platform then goes back (and stays).
pub async fn an_opt_out_syncs_both_ways_and_is_recorded<K: SandboxCrm + Default>(suite: Suite<K>) {
    let app = suite.app(|_| {}).await;
    if super::mapping(&app, "opted_out").await.is_none() {
        return; // No opt-out field in this CRM.
    }
    let optout = crm_field(&app, "opted_out").await;
    let c = app
        .add_contact("consent@x.com", Some("Co"), Some("Sent"), 5)
        .await;
    assert_status(
        &app.sync(SyncMode::Incremental).await,
        SyncRunStatus::Succeeded,
    );
    change_in_crm(&app, "consent@x.com", &[(&optout, json!(true))]).await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_status(&run, SyncRunStatus::Succeeded);
    assert!(app.contact("consent@x.com").await.unwrap().opted_out);
    let events = consent_event::Entity::for_tenant(&app.tenant)
        .filter(consent_event::Column::ContactId.eq(&c.id))
        .all(&app.db.db)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].opted_out);
    assert_eq!(events[0].origin, ConsentOrigin::Crm);
    assert_eq!(
        events[0].connector_id.as_deref(),
        Some(app.connector_id.as_str())
    );
    assert_eq!(events[0].run_id.as_deref(), Some(run.id.as_str()));

    // Opted back in on the platform, after: the CRM follows, and the next
    // run brings nothing back.
    edit_at(
        &app,
        "consent@x.com",
        Utc::now() + Duration::hours(1),
        |c| c.opted_out = Set(false),
    )
    .await;
    assert_status(
        &app.sync(SyncMode::Incremental).await,
        SyncRunStatus::Succeeded,
    );
    assert_status(&app.sync(SyncMode::Full).await, SyncRunStatus::Succeeded);
    assert!(!app.contact("consent@x.com").await.unwrap().opted_out);
}

/// The run's DELETED items.
async fn deleted_items<K>(app: &Case<K>, run: &sync_run::Model) -> Vec<sync_item::Model> {
    app.items(run)
        .await
        .into_iter()
        .filter(|i| i.outcome == ItemOutcome::Deleted)
        .collect()
}

/// The link of a CRM record, if it has one.
async fn link_of_record<K>(app: &Case<K>, crm_id: &str) -> Option<crm_link::Model> {
    crm_link::Entity::for_tenant(&app.tenant)
        .filter(crm_link::Column::CrmRecordId.eq(crm_id))
        .one(&app.db.db)
        .await
        .unwrap()
}

/// The run that finds a deletion made since the last one: any run where the
/// CRM has a deletion feed, a FULL run (reconciliation) where it has none.
fn finding_run<K: SandboxCrm>(app: &Case<K>) -> SyncMode {
    match app.crm.worker.describe().deletions {
        Deletions::Reconcile => SyncMode::Full,
        _ => SyncMode::Incremental,
    }
}

/// S12: a record deleted in the CRM (as a person deletes it) is found by
/// the next run (through the CRM's deletion feed; a FULL run where it has
/// none): its link goes, a DELETED item names it and its contact, the
/// contact stays (syncDeletions off), and neither that run nor a FULL run
/// recreates the record.
pub async fn a_record_deleted_in_the_crm_loses_its_link_and_is_not_recreated<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    let ids = app
        .crm
        .put(&[
            person(Some("del@x.com"), "Del", "Eted", None),
            person(Some("stay@x.com"), "Stay", "Put", None),
        ])
        .await;
    assert_status(
        &app.sync(SyncMode::Incremental).await,
        SyncRunStatus::Succeeded,
    );
    let contact = app.contact("del@x.com").await.expect("imported");
    assert!(link_of_record(&app, &ids[0]).await.is_some());
    app.crm
        .kit
        .delete_record(&app.crm.state, &app.crm.account, &ids[0], None)
        .await
        .expect("the kit deletes the record");

    let run = app.sync(finding_run(&app)).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(run.from_crm_deleted, 1);
    let deleted = deleted_items(&app, &run).await;
    assert_eq!(deleted.len(), 1, "{:?}", app.items(&run).await);
    assert_eq!(deleted[0].crm_record_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(deleted[0].contact_id.as_deref(), Some(contact.id.as_str()));
    assert!(link_of_record(&app, &ids[0]).await.is_none());
    assert!(link_of_record(&app, &ids[1]).await.is_some());
    let kept = app.contact("del@x.com").await.expect("never removed");
    assert!(kept.archived_at.is_none(), "syncDeletions is off");

    let full = app.sync(SyncMode::Full).await;

    assert_status(&full, SyncRunStatus::Succeeded);
    assert_eq!(full.from_crm_deleted, 0, "found once");
    assert!(app.crm.stored_with("del@x.com").await.is_empty());
    assert_eq!(app.crm.stored_with("stay@x.com").await.len(), 1);
}

/// S12 with `syncDeletions`: a run whose listing fails (a 5xx on every try)
/// archives nothing and records no DELETED item; the next run archives the
/// contact whose record was deleted (never removing it).
pub async fn a_deletion_archives_with_sync_deletions_only_after_a_complete_listing<
    K: SandboxCrm + Default,
>(
    suite: Suite<K>,
) {
    let app = suite.app(|s| s.sync_deletions = true).await;
    let ids = app
        .crm
        .put(&[person(Some("arch@x.com"), "Ar", "Chived", None)])
        .await;
    assert_status(
        &app.sync(SyncMode::Incremental).await,
        SyncRunStatus::Succeeded,
    );
    let (kit, state, account) = (&app.crm.kit, &app.crm.state, &app.crm.account);
    kit.delete_record(state, account, &ids[0], None)
        .await
        .expect("the kit deletes the record");
    let listing = kit.list_endpoint();
    let fault = account.add_fault(state, FaultKind::Error { status: 500 }, Some(listing), None);

    let failed = app.sync(finding_run(&app)).await;

    assert_status(&failed, SyncRunStatus::Failed);
    assert!(deleted_items(&app, &failed).await.is_empty());
    let contact = app.contact("arch@x.com").await.unwrap();
    assert!(contact.archived_at.is_none(), "nothing archived");
    assert!(link_of_record(&app, &ids[0]).await.is_some());

    state.faults.remove(fault.id);
    let run = app.sync(finding_run(&app)).await;

    assert_status(&run, SyncRunStatus::Succeeded);
    assert_eq!(deleted_items(&app, &run).await.len(), 1);
    let archived = app.contact("arch@x.com").await.expect("never removed");
    assert!(archived.archived_at.is_some());
    assert!(link_of_record(&app, &ids[0]).await.is_none());
}

/// S12, where the feed does not reach: a record deleted longer ago than the
/// CRM's deleted-records feed goes back is found by a FULL run, which
/// compares the links with everything it listed (and looks the missing
/// record up first); an incremental run leaves its link alone.
pub async fn a_full_run_finds_a_deletion_the_feed_no_longer_lists<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    let app = suite.app(|_| {}).await;
    let ids = app
        .crm
        .put(&[
            person(Some("old@x.com"), "Old", "Deletion", None),
            person(Some("live@x.com"), "Li", "Ve", None),
        ])
        .await;
    assert_status(
        &app.sync(SyncMode::Incremental).await,
        SyncRunStatus::Succeeded,
    );
    let (kit, state, account) = (&app.crm.kit, &app.crm.state, &app.crm.account);
    let long_ago = state.clock.now() - Duration::days(40);
    kit.delete_record(state, account, &ids[0], Some(long_ago))
        .await
        .expect("the kit deletes the record");

    let incremental = app.sync(SyncMode::Incremental).await;

    assert_status(&incremental, SyncRunStatus::Succeeded);
    assert_eq!(incremental.from_crm_deleted, 0, "no feed lists it");
    assert!(link_of_record(&app, &ids[0]).await.is_some());

    let full = app.sync(SyncMode::Full).await;

    assert_status(&full, SyncRunStatus::Succeeded);
    assert_eq!(full.from_crm_deleted, 1);
    let deleted = deleted_items(&app, &full).await;
    assert_eq!(deleted.len(), 1, "{:?}", app.items(&full).await);
    assert_eq!(deleted[0].crm_record_id.as_deref(), Some(ids[0].as_str()));
    assert!(link_of_record(&app, &ids[0]).await.is_none());
    assert!(link_of_record(&app, &ids[1]).await.is_some());
    assert!(
        app.crm.stored_with("old@x.com").await.is_empty(),
        "not recreated"
    );
}

/// Real time by looking for changes (`realtime::poll`), for CRMs that push
/// nothing usable, works on every CRM's listing: a look names what changed
/// since it started, each change once.
pub async fn a_look_for_changes_names_each_change_in_the_crm_once<K: SandboxCrm + Default>(
    suite: Suite<K>,
) {
    use crmsync_worker::realtime::poll::{Marks, look};
    let app = suite.app(|_| {}).await;
    let module = app.crm.worker.describe().export_module();
    let start = (Utc::now() - Duration::minutes(5))
        .with_nanosecond(0)
        .expect("zero nanoseconds");
    let ids = app
        .crm
        .put(&[
            person(
                Some("before@x.com"),
                "Bea",
                "Before",
                Some(start - Duration::minutes(10)),
            ),
            person(
                Some("after@x.com"),
                "Al",
                "After",
                Some(start + Duration::minutes(1)),
            ),
        ])
        .await;
    let client = app.crm.client();

    let (changed, marks) = look(client.as_ref(), &[module], &Marks::default(), start)
        .await
        .unwrap();
    assert_eq!(changed, vec![(module, ids[1].clone())]);

    let (changed, marks) = look(client.as_ref(), &[module], &marks, start)
        .await
        .unwrap();
    assert!(changed.is_empty(), "nothing changed: {changed:?}");

    let phone = crm_field(&app, "phone").await;
    change_in_crm(&app, "before@x.com", &[(&phone, json!("+33100000002"))]).await;
    let (changed, marks) = look(client.as_ref(), &[module], &marks, start)
        .await
        .unwrap();
    assert_eq!(changed, vec![(module, ids[0].clone())]);

    let (changed, _) = look(client.as_ref(), &[module], &marks, start)
        .await
        .unwrap();
    assert!(changed.is_empty(), "named once: {changed:?}");
}
