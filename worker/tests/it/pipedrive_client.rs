//! The Pipedrive client against the sandbox: mapping, limits, retries, creates.

use std::collections::BTreeMap;

use crmsync_entity::enums::CrmModule;
use crmsync_worker::crm::{CrmClient, CrmError, Expectations, FieldType, ListQuery, RecordWrite};
use serde_json::{Value, json};

use crate::support::{Crm, primary_email};

fn values(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn create(email: &str, pairs: &[(&str, Value)]) -> RecordWrite {
    RecordWrite {
        id: None,
        values: values(pairs),
        owner_email: None,
        email: email.to_owned(),
    }
}

async fn list_all(crm: &Crm) -> Vec<crmsync_worker::crm::CrmRecord> {
    let client = crm.client();
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list(&ListQuery {
                module: CrmModule::Persons,
                since: None,
                cursor,
                page_size: 500,
            })
            .await
            .unwrap();
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn fields_are_normalised_with_custom_keys_and_options() {
    let crm = Crm::start(0).await;
    let fields = crm.client().fields(CrmModule::Persons).await.unwrap();
    let by_key = |k: &str| fields.iter().find(|f| f.api_name == k).unwrap().clone();
    assert_eq!(by_key("email").field_type, FieldType::Email);
    assert_eq!(by_key("phone").field_type, FieldType::Phone);
    assert_eq!(by_key("owner_id").field_type, FieldType::User);
    assert!(!by_key("first_name").custom);
    let flag = by_key(&crm.field_key("sync_to_plezi"));
    assert!(flag.custom);
    assert_eq!(flag.label, "sync_to_plezi");
    assert_eq!(flag.field_type, FieldType::Picklist);
    let labels: Vec<_> = flag.options.unwrap().into_iter().map(|o| o.label).collect();
    assert_eq!(labels, ["yes", "no"]);
    assert_eq!(
        by_key(&crm.field_key("industries")).field_type,
        FieldType::MultiPicklist
    );
    assert_eq!(
        by_key(&crm.field_key("score")).field_type,
        FieldType::Number
    );
    assert_eq!(
        by_key(&crm.field_key("plezi_url")).field_type,
        FieldType::Text
    );
}

#[tokio::test]
async fn listing_reads_every_person_oldest_first_with_normalised_values() {
    let crm = Crm::start(700).await;
    let records = list_all(&crm).await;
    let live = crm
        .persons()
        .await
        .into_iter()
        .filter(|p| p["is_deleted"] != json!(true))
        .count();
    assert_eq!(records.len(), live);
    assert!(
        records
            .windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at)
    );
    let owners: Vec<_> = records
        .iter()
        .filter_map(|r| r.owner_email.clone())
        .collect();
    assert_eq!(owners.len(), records.len(), "every owner is a known user");
    let industries = crm.field_key("industries");
    assert!(
        records
            .iter()
            .filter_map(|r| r.values.get(&industries))
            .all(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    );
}

#[tokio::test]
async fn writes_join_names_send_option_ids_and_numbers() {
    let crm = Crm::start(0).await;
    let client = crm.client();
    let (source, industries, score) = (
        crm.field_key("source"),
        crm.field_key("industries"),
        crm.field_key("score"),
    );
    let fields = client.fields(CrmModule::Persons).await.unwrap();
    let source_field = fields.iter().find(|f| f.api_name == source).unwrap();
    let source_option = source_field.options.as_ref().unwrap()[0].clone();
    let industry_field = fields.iter().find(|f| f.api_name == industries).unwrap();
    let industry_option = industry_field.options.as_ref().unwrap()[1].clone();
    let users = client.users().await.unwrap();
    let owner = users
        .iter()
        .find(|u| u.active && u.id != users[0].id)
        .unwrap();

    let results = client
        .write(
            CrmModule::Persons,
            vec![RecordWrite {
                owner_email: Some(owner.email.to_uppercase()),
                ..create(
                    "marie@exemple.fr",
                    &[
                        ("first_name", json!("Marie Claire")),
                        ("last_name", json!("d'Arc-Dupont")),
                        ("email", json!("marie@exemple.fr")),
                        ("phone", json!("+33 1 23 45 67 89")),
                        (&source, json!(source_option.label)),
                        (&industries, json!([industry_option.label])),
                        (&score, json!(42)),
                    ],
                )
            }],
        )
        .await;
    let created = results[0].as_ref().unwrap().clone();
    assert!(created.created);

    let stored = crm
        .persons()
        .await
        .into_iter()
        .find(|p| p["id"].as_u64().map(|id| id.to_string()) == Some(created.id.clone()))
        .unwrap();
    assert_eq!(stored["name"], json!("Marie Claire d'Arc-Dupont"));
    assert_eq!(primary_email(&stored).as_deref(), Some("marie@exemple.fr"));
    assert_eq!(
        stored["custom_fields"][&source].to_string(),
        source_option.id
    );
    assert_eq!(
        stored["custom_fields"][&industries],
        json!([industry_option.id.parse::<i64>().unwrap()])
    );
    assert_eq!(stored["custom_fields"][&score].as_f64(), Some(42.0));
    assert_eq!(stored["owner_id"].to_string(), owner.id);

    // An update sends only what changed, and reads back as labels.
    let results = client
        .write(
            CrmModule::Persons,
            vec![RecordWrite {
                id: Some(created.id.clone()),
                values: values(&[
                    ("first_name", json!("Marie")),
                    ("last_name", json!("Curie")),
                ]),
                owner_email: None,
                email: "marie@exemple.fr".into(),
            }],
        )
        .await;
    assert!(!results[0].as_ref().unwrap().created);
    let record = list_all(&crm)
        .await
        .into_iter()
        .find(|r| r.id == created.id)
        .unwrap();
    assert_eq!(record.values["name"], json!("Marie Curie"));
    assert_eq!(record.values[&source], json!(source_option.label));
    assert_eq!(record.values[&industries], json!([industry_option.label]));
    assert_eq!(record.owner_email.as_deref(), Some(owner.email.as_str()));
}

#[tokio::test]
async fn calls_are_paced_under_the_burst_limit() {
    let crm = Crm::start(50).await;
    crm.set_limits(json!({"burst_limit": 10})).await;
    let client = crm.client();
    let calls = (0..25).map(|_| {
        client.list(&ListQuery {
            module: CrmModule::Persons,
            since: None,
            cursor: None,
            page_size: 5,
        })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(crm.request_count("status=429").await, 0);
}

#[tokio::test]
async fn check_says_what_is_wrong() {
    let crm = Crm::start(0).await;
    let ok = crm
        .client()
        .check(&Expectations::filter("sync_to_plezi", "yes"))
        .await
        .unwrap();
    assert!(ok.ok, "{}", ok.message);

    let missing = crm
        .client()
        .check(&Expectations::filter("no_such_field", "yes"))
        .await
        .unwrap();
    assert!(!missing.ok);
    assert!(
        missing.message.contains("no_such_field"),
        "{}",
        missing.message
    );

    let bad = crmsync_worker::crm::pipedrive::PipedriveClient::new(
        &crmsync_worker::crm::pipedrive::kit::credentials("0000".to_owned().into(), &crm.domain()),
        Some(&crm.base_url()),
        crate::support::crm_http(),
    )
    .unwrap();
    // A refused token is for a person to fix: check hands it on as
    // Unauthorized, as every CRM's client does.
    let refused = bad.check(&Expectations::default()).await;
    assert!(
        matches!(refused, Err(CrmError::Unauthorized(_))),
        "{refused:?}"
    );
    assert!(matches!(bad.users().await, Err(CrmError::Unauthorized(_))));

    let base = crm
        .base_url()
        .replace(&format!("/{}", crm.domain()), "/nope");
    let unknown = crmsync_worker::crm::pipedrive::PipedriveClient::new(
        &crm.credentials(),
        Some(&base),
        crate::support::crm_http(),
    )
    .unwrap();
    let unknown = unknown.check(&Expectations::default()).await.unwrap();
    assert!(!unknown.ok);
    assert!(unknown.message.contains("company"), "{}", unknown.message);
}

#[tokio::test]
async fn listed_and_fetched_persons_carry_their_marketing_status() {
    let crm = Crm::start(0).await;
    let client = crm.client();
    let results = client
        .write(
            CrmModule::Persons,
            vec![create(
                "opt@in.com",
                &[
                    ("last_name", json!("Optin")),
                    ("email", json!("opt@in.com")),
                    ("marketing_status", json!("subscribed")),
                ],
            )],
        )
        .await;
    let id = results[0].as_ref().unwrap().id.clone();

    let listed = list_all(&crm).await;
    let fetched = client
        .get_many(CrmModule::Persons, std::slice::from_ref(&id))
        .await
        .unwrap();

    let listed = listed.iter().find(|r| r.id == id).unwrap();
    assert_eq!(listed.values["marketing_status"], "subscribed");
    assert_eq!(fetched[0].values["marketing_status"], "subscribed");
}

/// Ids of the deleted records, sorted.
fn sorted_ids(deleted: &[crmsync_worker::crm::DeletedRecord]) -> Vec<String> {
    let mut ids: Vec<String> = deleted.iter().map(|d| d.id.clone()).collect();
    ids.sort_unstable();
    ids
}

fn person(name: &str, extra: Value) -> Value {
    let mut p = json!({ "name": name, "emails": [{"value": format!("{name}@x.com"), "primary": true, "label": "work"}] });
    for (k, v) in extra.as_object().into_iter().flatten() {
        p[k] = v.clone();
    }
    p
}

/// Pipedrive requests the sandbox counted to `endpoint`.
fn calls_to(crm: &Crm, endpoint: &str) -> u64 {
    crm.sandbox
        .state()
        .metrics
        .snapshot()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .map(|r| r.count)
        .sum()
}

#[tokio::test]
async fn deleted_persons_are_found_from_recents_since_a_time() {
    let crm = Crm::start(0).await;
    let two_days_ago = chrono::Utc::now() - chrono::Duration::days(2);
    let stored = crm
        .add_persons(json!([
            person("live", json!({})),
            person("deleted-now", json!({})),
            person(
                "deleted-before",
                json!({"is_deleted": true, "update_time": two_days_ago.to_rfc3339()})
            ),
        ]))
        .await;
    let ids: Vec<String> = stored["persons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap().to_string())
        .collect();
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    crm.admin_send(
        reqwest::Method::DELETE,
        &format!("/pipedrive/companies/{}/persons/{}", crm.domain(), ids[1]),
        Value::Null,
    )
    .await;
    let client = crm.client();

    let recent = client
        .deleted(CrmModule::Persons, Some(since))
        .await
        .unwrap();
    let all = client.deleted(CrmModule::Persons, None).await.unwrap();

    assert_eq!(sorted_ids(&recent), [ids[1].clone()], "{recent:?}");
    let at = recent[0].deleted_at.expect("a deletion time");
    assert!(
        at >= since && at <= chrono::Utc::now() + chrono::Duration::minutes(1),
        "{at}"
    );
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort_unstable();
    assert_eq!(sorted_ids(&all), expected, "the live person never comes");
    let before = all.iter().find(|d| d.id == ids[2]).unwrap();
    assert_eq!(
        before.deleted_at.map(|t| t.timestamp()),
        Some(two_days_ago.timestamp())
    );
}

#[tokio::test]
async fn more_deleted_persons_than_a_recents_page_are_all_found() {
    let crm = Crm::start(0).await;
    let persons: Vec<Value> = (0..501)
        .map(|i| person(&format!("gone{i}"), json!({"is_deleted": true})))
        .collect();
    let stored = crm.add_persons(Value::Array(persons)).await;
    let mut expected: Vec<String> = stored["persons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap().to_string())
        .collect();
    expected.sort_unstable();

    let deleted = crm
        .client()
        .deleted(CrmModule::Persons, None)
        .await
        .unwrap();

    assert_eq!(sorted_ids(&deleted), expected);
    assert_eq!(
        calls_to(&crm, "GET /pipedrive/{company}/api/v1/recents"),
        2,
        "two pages of 500"
    );
}

#[tokio::test]
async fn a_failing_recents_feed_is_an_error_after_retries() {
    let crm = Crm::start(0).await;
    let rule = crate::support::always_unavailable(
        &crm.sandbox,
        crmsync_sandbox::System::Pipedrive,
        "GET /pipedrive/{company}/api/v1/recents",
    );

    let result = crm.client().deleted(CrmModule::Persons, None).await;

    assert!(
        matches!(result, Err(CrmError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        crate::support::fault_hits(&crm.sandbox, rule),
        u64::from(crate::support::fast_retries().attempts),
        "retried"
    );
}
