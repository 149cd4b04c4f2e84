//! The batch endpoints: read, create, update, upsert, archive.

use serde_json::{Value, json};

use super::{Hs, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn batch_read_answers_207_listing_unknown_ids() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let a = hs.contact(json!({ "email": "a@example.com" })).await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({ "properties": ["email"], "propertiesWithHistory": [], "inputs": [{ "id": a }, { "id": "999999" }] }),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["results"][0]["id"], a.as_str());
    let error = &r.body["errors"][0];
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(error["context"]["ids"], json!(["999999"]));
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());

    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({ "properties": ["firstname"], "idProperty": "email", "inputs": [{ "id": "A@example.com" }] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][0]["id"], a.as_str());
    assert!(r.body.get("errors").is_none());
}

#[tokio::test]
async fn more_than_100_inputs_are_refused() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({ "idProperty": "email", "id": format!("p{i}@example.com"), "properties": {} }))
        .collect();
    for endpoint in ["upsert", "create", "read", "update"] {
        let r = hs
            .post(
                &format!("/crm/v3/objects/contacts/batch/{endpoint}"),
                json!({ "inputs": inputs }),
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
    }
    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({ "inputs": inputs[..100] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn upsert_by_email_creates_or_updates_and_says_which() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let existing = hs
        .contact(json!({ "email": "old@example.com", "firstname": "Old" }))
        .await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({ "inputs": [
                { "idProperty": "email", "id": "OLD@example.com", "properties": { "firstname": "Renamed" } },
                { "idProperty": "email", "id": "new@example.com", "properties": { "firstname": "New" } },
            ] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let old = results
        .iter()
        .find(|c| c["id"] == existing.as_str())
        .unwrap();
    assert_eq!(old["new"], false);
    assert_eq!(old["properties"]["firstname"], "Renamed");
    let new = results
        .iter()
        .find(|c| c["id"] != existing.as_str())
        .unwrap();
    assert_eq!(new["new"], true);
    assert_eq!(new["properties"]["email"], "new@example.com");
    let list = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(list.body["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_invalid_input_refuses_the_whole_batch_or_only_itself_by_setting() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let body = json!({ "inputs": [
        { "idProperty": "email", "id": "good@example.com", "properties": { "firstname": "G" } },
        { "idProperty": "email", "id": "bad@example.com", "properties": { "lifecyclestage": "nope" } },
    ] });
    let r = hs
        .post("/crm/v3/objects/contacts/batch/upsert", body.clone())
        .await;
    let message = assert_error(&r, 400, "VALIDATION_ERROR");
    assert!(message.contains("INVALID_OPTION"), "{message}");
    assert_eq!(
        hs.get("/crm/v3/objects/contacts").await.body["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let resp = sb
        .http
        .patch(sb.url(&hs.admin("/settings")))
        .json(&json!({ "batch_errors": "per_record" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r = hs.post("/crm/v3/objects/contacts/batch/upsert", body).await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(r.body["errors"][0]["context"]["index"], json!(["1"]));
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn batch_create_answers_201_and_update_207_for_unknown_ids() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({ "inputs": [
                { "properties": { "email": "c1@example.com" }, "associations": [] },
                { "properties": { "email": "c2@example.com" } },
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<String> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);

    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({ "inputs": [{ "properties": { "email": "C1@example.com" } }] }),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");

    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({ "inputs": [
                { "id": ids[0], "properties": { "firstname": "One" } },
                { "id": "424242", "properties": { "firstname": "Ghost" } },
            ] }),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.body);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(r.body["errors"][0]["context"]["ids"], json!(["424242"]));
    assert_eq!(r.body["results"][0]["properties"]["firstname"], "One");

    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            json!({ "inputs": [{ "id": ids[1] }] }),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = hs
        .get(&format!("/crm/v3/objects/contacts/{}", ids[1]))
        .await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
}
