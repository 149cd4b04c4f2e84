//! What a v2 person carries on request: `include_fields` (marketing_status and the
//! other optional fields), `include_option_labels` and `include_labels`.

use serde_json::{Value, json};

use super::{Pd, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn marketing_status_is_returned_only_when_asked_through_include_fields() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let p = pd
        .create_person(json!({"name": "Opted", "marketing_status": "subscribed"}))
        .await;
    let path = format!("/api/v2/persons/{}", p["id"]);

    let plain = pd.get(&path).await;
    let asked = pd
        .get(&format!("{path}?include_fields=marketing_status"))
        .await;
    let listed = pd
        .get(&format!(
            "/api/v2/persons?ids={}&include_fields=marketing_status",
            p["id"]
        ))
        .await;

    assert!(p.get("marketing_status").is_none(), "{p}");
    assert!(plain.body["data"].get("marketing_status").is_none());
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(asked.body["data"]["marketing_status"], "subscribed");
    assert_eq!(listed.body["data"][0]["marketing_status"], "subscribed");
}

#[tokio::test]
async fn a_list_without_include_fields_carries_no_marketing_status() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v2/persons").await;

    assert_eq!(r.status, 200);
    let persons = r.body["data"].as_array().unwrap();
    assert!(!persons.is_empty());
    assert!(persons.iter().all(|p| p.get("marketing_status").is_none()));
}

#[tokio::test]
async fn the_other_documented_include_fields_are_accepted() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd
        .get("/api/v2/persons?limit=1&include_fields=next_activity_id,doi_status,smart_bcc_email")
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["data"][0];
    assert_eq!(p["next_activity_id"], Value::Null);
    assert_eq!(p["doi_status"], Value::Null);
    assert_eq!(
        p["smart_bcc_email"],
        format!("sandbox+{}@pipedrivemail.com", p["id"])
    );
}

#[tokio::test]
async fn include_option_labels_turns_enum_and_set_values_into_id_label_objects() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let (status, tech, health) = (
        pd.field_key("status").await,
        pd.option_id("industries", "Software").await,
        pd.option_id("industries", "Healthcare").await,
    );
    let (industries, score) = (
        pd.field_key("industries").await,
        pd.field_key("score").await,
    );
    let client = pd.option_id("status", "Client").await;
    let p = pd
        .create_person(json!({"name": "Labelled", "custom_fields": {
            status.clone(): client, industries.clone(): [tech, health], score.clone(): 4.5,
        }}))
        .await;
    let path = format!("/api/v2/persons/{}", p["id"]);

    let plain = pd.get(&path).await.body["data"]["custom_fields"].clone();
    let labelled = pd
        .get(&format!("{path}?include_option_labels=true"))
        .await
        .body["data"]["custom_fields"]
        .clone();
    let listed = pd
        .get(&format!(
            "/api/v2/persons?ids={}&include_option_labels=true&custom_fields={status}",
            p["id"]
        ))
        .await
        .body["data"][0]["custom_fields"]
        .clone();

    assert_eq!(plain[&status], client);
    assert_eq!(labelled[&status], json!({"id": client, "label": "Client"}));
    assert_eq!(
        labelled[&industries],
        json!([{"id": tech, "label": "Software"}, {"id": health, "label": "Healthcare"}])
    );
    assert_eq!(labelled[&score], 4.5);
    assert_eq!(listed, json!({ status: {"id": client, "label": "Client"} }));
}

#[tokio::test]
async fn include_labels_adds_label_objects_beside_label_ids() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let p = pd
        .create_person(json!({"name": "Hot", "label_ids": [2, 1]}))
        .await;
    let path = format!("/api/v2/persons/{}", p["id"]);

    let plain = pd.get(&path).await.body["data"].clone();
    let asked = pd.get(&format!("{path}?include_labels=true")).await.body["data"].clone();

    assert!(plain.get("labels").is_none(), "{plain}");
    assert_eq!(asked["label_ids"], json!([2, 1]));
    assert_eq!(
        asked["labels"],
        json!([{"id": 2, "label": "Hot lead"}, {"id": 1, "label": "Customer"}])
    );
}

#[tokio::test]
async fn label_flags_other_than_true_or_false_are_400() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.get("/api/v2/persons?include_option_labels=1").await,
        400,
        "include_option_labels",
    );
    assert_error(
        &pd.get("/api/v2/persons/1?include_labels=yes").await,
        400,
        "include_labels",
    );
}
