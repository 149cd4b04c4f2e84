//! v1: personFields, users, users/me and recents.

use serde_json::{Value, json};

use super::{Pd, advance, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn person_fields_list_standard_fields_then_custom_fields_with_options() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v1/personFields").await;

    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["additional_data"],
        json!({"pagination": {"start": 0, "limit": 100, "more_items_in_collection": false}})
    );
    let fields = r.body["data"].as_array().unwrap();
    let by_key = |k: &str| {
        fields
            .iter()
            .find(|f| f["key"] == k)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for key in [
        "name",
        "first_name",
        "last_name",
        "email",
        "phone",
        "owner_id",
        "org_id",
        "label",
        "add_time",
        "update_time",
        "visible_to",
        "marketing_status",
    ] {
        assert_eq!(by_key(key)["edit_flag"], false, "{key}");
    }
    assert_eq!(by_key("owner_id")["field_type"], "user");
    assert_eq!(by_key("name")["mandatory_flag"], true);
    let custom: Vec<&Value> = fields.iter().filter(|f| f["edit_flag"] == true).collect();
    let names: Vec<&str> = custom.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sync_to_plezi",
            "plezi_url",
            "source",
            "score",
            "status",
            "industries"
        ]
    );
    let types: Vec<&str> = custom
        .iter()
        .map(|f| f["field_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["enum", "varchar", "enum", "double", "enum", "set"]);
    let sync_labels: Vec<&str> = custom[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(sync_labels, ["yes", "no"]);
    assert_eq!(custom[1]["options"], Value::Null);
    assert!(
        custom
            .iter()
            .all(|f| f["key"].as_str().unwrap().len() == 40)
    );
    assert_eq!(custom[5]["options"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn custom_field_keys_are_deterministic_for_a_seed() {
    let a = TestSandbox::start().await;
    let b = TestSandbox::start().await;

    assert_eq!(a.desc().pipedrive.field_keys, b.desc().pipedrive.field_keys);
    assert_eq!(a.desc().pipedrive.field_keys.len(), 6);
}

#[tokio::test]
async fn users_list_the_seeded_users_with_one_inactive() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v1/users").await;

    assert_eq!(r.status, 200);
    let users = r.body["data"].as_array().unwrap();
    assert!((3..=5).contains(&users.len()));
    assert_eq!(
        users.iter().filter(|u| u["active_flag"] == false).count(),
        1
    );
    assert_eq!(users.iter().filter(|u| u["is_you"] == true).count(), 1);
    for key in ["id", "name", "email", "active_flag", "is_admin"] {
        assert!(users[0].get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn users_me_is_the_tokens_user_with_the_company() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v1/users/me").await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["id"], sb.desc().pipedrive.user_id);
    assert_eq!(r.body["data"]["company_domain"], "sandbox");
    assert_eq!(r.body["data"]["company_id"], sb.desc().pipedrive.company_id);
}

#[tokio::test]
async fn recents_require_since_timestamp_in_v1_format() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.get("/api/v1/recents?items=person").await,
        400,
        "since_timestamp",
    );
    assert_error(
        &pd.get("/api/v1/recents?items=person&since_timestamp=2026-11-21T10:00:00Z")
            .await,
        400,
        "since_timestamp",
    );
}

#[tokio::test]
async fn recents_list_changed_persons_in_v1_shape_deleted_included() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "recent"})).await;
    sb.admin_post("/admin/clock", json!({"set": "2026-11-21T10:00:00.500Z"}))
        .await;
    let score = pd.field_key("score").await;
    let status = pd.field_key("status").await;
    let client = pd.option_id("status", "Client").await;
    pd.create_person(
        json!({"name": "Kept One", "custom_fields": {score.clone(): 7, status.clone(): client}}),
    )
    .await;
    pd.create_person(json!({"name": "Deleted One"})).await;
    advance(&sb, 60.0).await;
    pd.delete("/api/v2/persons/2").await;

    let r = pd
        .get("/api/v1/recents?since_timestamp=2026-11-21%2009:59:00&items=person")
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["item"], "person");
    let kept = &rows[0]["data"];
    assert_eq!(kept["active_flag"], true);
    assert_eq!(kept["email"], json!([{"value": "", "primary": true}]));
    assert!(kept["owner_id"]["id"].is_u64());
    assert_eq!(kept[&score], 7);
    assert_eq!(kept[&status], client.to_string());
    assert!(
        kept["add_time"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21 10:00:0")
    );
    assert_eq!(rows[1]["data"]["active_flag"], false);
    let extra = &r.body["additional_data"];
    assert_eq!(extra["since_timestamp"], "2026-11-21 09:59:00");
    assert!(
        extra["last_timestamp_on_page"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21 10:01:0")
    );
    assert_eq!(extra["pagination"]["more_items_in_collection"], false);
}

#[tokio::test]
async fn recents_paginate_with_start_and_limit() {
    let sb = TestSandbox::start_with(30).await;
    let pd = Pd::default_company(&sb);

    let first = pd
        .get("/api/v1/recents?since_timestamp=2000-01-01%2000:00:00&items=person&limit=20")
        .await;
    let second = pd
        .get("/api/v1/recents?since_timestamp=2000-01-01%2000:00:00&items=person&start=20&limit=20")
        .await;

    assert_eq!(first.body["data"].as_array().unwrap().len(), 20);
    assert_eq!(
        first.body["additional_data"]["pagination"],
        json!({"start": 0, "limit": 20, "more_items_in_collection": true, "next_start": 20})
    );
    assert_eq!(second.body["data"].as_array().unwrap().len(), 10);
    assert_eq!(
        second.body["additional_data"]["pagination"]["more_items_in_collection"],
        false
    );
}

#[tokio::test]
async fn recents_for_other_item_types_list_no_persons_and_unknown_types_are_400() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let deals = pd
        .get("/api/v1/recents?since_timestamp=2000-01-01%2000:00:00&items=deal")
        .await;
    let unknown = pd
        .get("/api/v1/recents?since_timestamp=2000-01-01%2000:00:00&items=unicorn")
        .await;

    assert_eq!(deals.status, 200);
    assert_eq!(deals.body["data"], json!([]));
    assert_error(&unknown, 400, "items");
}
