//! Consent history (S9): `Contact.consentHistory` lists every change of a
//! contact's opt-out state, newest first, with its origin; a change through
//! the API is recorded; a page of contacts reads its histories in one batch.

use std::sync::atomic::Ordering;

use chrono::{Duration, Utc};
use crmsync_entity::enums::{ConnectorKind, ConsentOrigin};
use crmsync_entity::models::consent_event;
use serde_json::json;

use crate::helpers::*;

const UPSERT: &str = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id optedOut } } }";
const HISTORY: &str = "query($e: String!) { contact(email: $e) { optedOut consentHistory { optedOut origin connectorId crmKind syncRunId at } } }";

#[tokio::test]
async fn api_changes_are_recorded_and_history_is_newest_first() {
    let app = TestApp::spawn().await;
    let db = &app.database.db;
    let upsert = |input: serde_json::Value| app.admin_ok(UPSERT, json!({ "input": input }));
    let made = upsert(json!({ "email": "ana@x.com", "optedOut": true })).await;
    let id = made["upsertContact"]["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // No change of state, no event: the same opt-out again, another field.
    upsert(json!({ "email": "ana@x.com", "optedOut": true })).await;
    upsert(json!({ "email": "ana@x.com", "firstName": "Ana" })).await;
    // A sync's change, stored as a run records it, an hour later.
    let connector = insert_connector(db, &app.tenant_id, "c").await;
    let run = insert_run(db, &app.tenant_id, &connector).await;
    let source = consent_event::Source::sync(&connector, ConnectorKind::Pipedrive, &run);
    let later = Utc::now() + Duration::hours(1);
    let event = consent_event::change(&app.tenant_id, &id, Some(true), false, &source, later);
    consent_event::record(db, event.into_iter().collect())
        .await
        .unwrap();

    let data = app.admin_ok(HISTORY, json!({ "e": "ana@x.com" })).await;
    let history = data["contact"]["consentHistory"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["optedOut"], false);
    assert_eq!(history[0]["origin"], ConsentOrigin::Crm.as_str());
    assert_eq!(history[0]["connectorId"], connector.as_str());
    assert_eq!(history[0]["crmKind"], "PIPEDRIVE");
    assert_eq!(history[0]["syncRunId"], run.as_str());
    assert_eq!(history[1]["optedOut"], true);
    assert_eq!(history[1]["origin"], "PLATFORM");
    assert_eq!(history[1]["connectorId"], serde_json::Value::Null);
    assert_eq!(history[1]["crmKind"], serde_json::Value::Null);
    assert_eq!(history[1]["syncRunId"], serde_json::Value::Null);
    assert!(history[0]["at"].as_str() > history[1]["at"].as_str());

    // Opted back in through the API: recorded, first in the list.
    upsert(json!({ "email": "ana@x.com", "optedOut": false })).await;
    upsert(json!({ "email": "ana@x.com", "optedOut": true })).await;
    let data = app.admin_ok(HISTORY, json!({ "e": "ana@x.com" })).await;
    let history = data["contact"]["consentHistory"].as_array().unwrap();
    // The stored contact was still opted out (the event above was written
    // alone): both upserts changed its state. The sync's event, an hour
    // ahead, stays first.
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(data["contact"]["optedOut"], true);
    let platform: Vec<_> = history[1..]
        .iter()
        .map(|e| (e["origin"].clone(), e["optedOut"].clone()))
        .collect();
    let p = |out: bool| (json!("PLATFORM"), json!(out));
    assert_eq!(platform, vec![p(true), p(false), p(true)]);
    // A contact never opted out has no history.
    upsert(json!({ "email": "ben@x.com" })).await;
    let data = app.admin_ok(HISTORY, json!({ "e": "ben@x.com" })).await;
    assert_eq!(data["contact"]["consentHistory"], json!([]));
}

#[tokio::test]
async fn a_page_of_contacts_reads_its_consent_histories_in_one_batch() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        app.admin_ok(
            UPSERT,
            json!({ "input": { "email": format!("p{i}@x.com"), "optedOut": true } }),
        )
        .await;
    }
    let query = "query($n: Int!) { contacts(first: $n) { edges { node { id consentHistory { optedOut at } } } } }";
    let app = &app;
    let count = |n: usize| async move {
        let before = app.statements.load(Ordering::SeqCst);
        let data = app.admin_ok(query, json!({ "n": n })).await;
        let edges = data["contacts"]["edges"].as_array().unwrap().clone();
        assert_eq!(edges.len(), n);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["consentHistory"][0]["optedOut"] == true)
        );
        app.statements.load(Ordering::SeqCst) - before
    };
    let small = count(3).await;
    let large = count(30).await;
    assert_eq!(small, large, "statements for 3: {small}, for 30: {large}");
}
