//! Webhooks: the v1 API that makes them, and the v2 deliveries of person
//! changes, with Pipedrive's retry policy and the notifier's faults.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::Pd;
use crate::common::{TestSandbox, receiver};

/// A person webhook v2 with basic auth to `url`; its id.
async fn subscribe(pd: &Pd<'_>, url: &str) -> u64 {
    let r = pd
        .post(
            "/api/v1/webhooks",
            json!({ "subscription_url": url, "event_action": "*", "event_object": "person", "version": "2.0", "http_auth_user": "crm", "http_auth_password": "pw" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["id"].as_u64().unwrap()
}

async fn deliveries(sb: &TestSandbox) -> Value {
    sb.admin_get("/admin/notify/deliveries?system=pipedrive")
        .await
        .1
}

async fn faults(sb: &TestSandbox, faults: Value) {
    let r = sb
        .http
        .put(sb.url("/admin/notify/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Waits until the notifier has `n` attempts logged with `outcome`.
async fn logged(sb: &TestSandbox, outcome: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = deliveries(sb).await["deliveries"]
            .as_array()
            .unwrap()
            .clone();
        let hits: Vec<Value> = log
            .into_iter()
            .filter(|d| d["outcome"] == outcome)
            .collect();
        if hits.len() >= n {
            return hits;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {n} {outcome}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhooks_are_made_listed_and_deleted_with_fields_checked() {
    let sb = TestSandbox::start_with(0).await;
    let pd = Pd::default_company(&sb);

    let missing = pd
        .post(
            "/api/v1/webhooks",
            json!({ "event_action": "*", "event_object": "person" }),
        )
        .await;
    let bad_action = pd
        .post(
            "/api/v1/webhooks",
            json!({ "subscription_url": "http://x/h", "event_action": "updated", "event_object": "person" }),
        )
        .await;
    let id = subscribe(&pd, "http://127.0.0.1:9/h").await;
    let listed = pd.get("/api/v1/webhooks").await;
    let deleted = pd.delete(&format!("/api/v1/webhooks/{id}")).await;
    let again = pd.delete(&format!("/api/v1/webhooks/{id}")).await;

    assert_eq!(missing.status, 400);
    assert!(
        missing.body["error"]
            .as_str()
            .unwrap()
            .contains("subscription_url")
    );
    assert_eq!(bad_action.status, 400);
    assert!(
        bad_action.body["error"]
            .as_str()
            .unwrap()
            .contains("event_action")
    );
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["data"][0]["id"], id);
    assert_eq!(listed.body["data"][0]["version"], "2.0");
    assert_eq!(listed.body["data"][0]["is_active"], 1);
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["success"], true);
    assert_eq!(again.status, 404);
    assert_eq!(pd.get("/api/v1/webhooks").await.body["data"], json!([]));
}

#[tokio::test]
async fn person_changes_are_delivered_in_the_v2_shape_with_basic_auth() {
    let sb = TestSandbox::start_with(0).await;
    let pd = Pd::default_company(&sb);
    let mut rx = receiver(0).await;
    let webhook = subscribe(&pd, &rx.url).await;

    let person = pd
        .create_person(json!({ "name": "Ada Lovelace", "emails": [{ "value": "ada@x.com", "primary": true }] }))
        .await;
    let id = person["id"].as_u64().unwrap();
    let (headers, created) = rx.next_json().await;
    pd.patch(
        &format!("/api/v2/persons/{id}"),
        json!({ "name": "Ada King" }),
    )
    .await;
    let (_, changed) = rx.next_json().await;
    pd.delete(&format!("/api/v2/persons/{id}")).await;
    let (_, deleted) = rx.next_json().await;

    let auth = base64::engine::general_purpose::STANDARD.encode("crm:pw");
    assert_eq!(headers["authorization"], format!("Basic {auth}").as_str());
    assert_eq!(headers["user-agent"], "Pipedrive Webhooks");
    let meta = &created["meta"];
    assert_eq!(meta["action"], "create");
    assert_eq!(meta["entity"], "person");
    assert_eq!(meta["entity_id"], id.to_string());
    assert_eq!(meta["version"], "2.0");
    assert_eq!(meta["attempt"], 1);
    assert_eq!(meta["change_source"], "api");
    assert_eq!(meta["webhook_id"], webhook.to_string());
    assert_eq!(created["data"]["name"], "Ada Lovelace");
    assert_eq!(created["previous"], Value::Null);
    assert_eq!(changed["meta"]["action"], "change");
    assert_eq!(changed["data"]["name"], "Ada King");
    assert_eq!(changed["previous"]["name"], "Ada Lovelace");
    assert_eq!(deleted["meta"]["action"], "delete");
    assert_eq!(deleted["data"], Value::Null);
    assert_eq!(deleted["previous"]["name"], "Ada King");
}

#[tokio::test]
async fn a_failed_delivery_is_tried_again_on_pipedrives_schedule() {
    let sb = TestSandbox::start_with(0).await;
    let pd = Pd::default_company(&sb);
    let mut rx = receiver(1).await;
    subscribe(&pd, &rx.url).await;

    pd.create_person(json!({ "name": "Retry Me" })).await;
    let (_, first) = rx.next_json().await;
    logged(&sb, "failed", 1).await;
    // Pipedrive waits 3 s before the second attempt: the sandbox clock moves.
    let (status, _) = sb
        .admin_post("/admin/clock", json!({ "advance_secs": 3 }))
        .await;
    assert_eq!(status, 200);
    let (_, second) = rx.next_json().await;

    assert_eq!(first["meta"]["attempt"], 1);
    assert_eq!(second["meta"]["attempt"], 2);
    assert_eq!(first["meta"]["id"], second["meta"]["id"]);
    let delivered = logged(&sb, "delivered", 1).await;
    assert_eq!(delivered[0]["attempt"], 2);
}

#[tokio::test]
async fn faults_drop_duplicate_and_reorder_deliveries() {
    let sb = TestSandbox::start_with(0).await;
    let pd = Pd::default_company(&sb);
    let mut rx = receiver(0).await;
    subscribe(&pd, &rx.url).await;

    faults(
        &sb,
        json!({ "system": "pipedrive", "drop": 1, "duplicate": 1 }),
    )
    .await;
    pd.create_person(json!({ "name": "Dropped" })).await;
    let duplicated = pd.create_person(json!({ "name": "Twice" })).await;
    let (_, one) = rx.next_json().await;
    let (_, two) = rx.next_json().await;
    logged(&sb, "dropped", 1).await;

    faults(&sb, json!({ "reorder": 2 })).await;
    let a = pd.create_person(json!({ "name": "First" })).await;
    let b = pd.create_person(json!({ "name": "Second" })).await;
    let (_, newest) = rx.next_json().await;
    let (_, oldest) = rx.next_json().await;

    let twice = duplicated["id"].as_u64().unwrap().to_string();
    assert_eq!(one["meta"]["entity_id"], twice);
    assert_eq!(two["meta"]["entity_id"], twice);
    assert_eq!(one["meta"]["id"], two["meta"]["id"]);
    assert_eq!(
        newest["meta"]["entity_id"],
        b["id"].as_u64().unwrap().to_string()
    );
    assert_eq!(
        oldest["meta"]["entity_id"],
        a["id"].as_u64().unwrap().to_string()
    );
}

#[tokio::test]
async fn a_webhook_deleted_by_the_admin_api_delivers_nothing_more() {
    let sb = TestSandbox::start_with(0).await;
    let pd = Pd::default_company(&sb);
    let rx = receiver(0).await;
    let id = subscribe(&pd, &rx.url).await;

    let r = sb
        .http
        .delete(sb.url(&format!(
            "/admin/pipedrive/companies/{}/webhooks/{id}",
            pd.domain()
        )))
        .send()
        .await
        .unwrap();
    pd.create_person(json!({ "name": "Nobody Hears" })).await;

    assert_eq!(r.status(), 204);
    assert_eq!(pd.get("/api/v1/webhooks").await.body["data"], json!([]));
    let log = deliveries(&sb).await;
    assert_eq!(log["deliveries"], json!([]));
    assert_eq!(log["pending"], 0);
    assert_eq!(log["forgotten"], 0, "nothing let go of the log: {log}");
}
