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

/// Every item of `GET /api/v2/personFields`, following `next_cursor`.
async fn v2_fields(pd: &Pd<'_>, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v2/personFields?{query}&cursor={c}"),
            None => format!("/api/v2/personFields?{query}"),
        };
        let r = pd.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        items.extend(r.body["data"].as_array().unwrap().iter().cloned());
        match r.body["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn v2_person_fields_describe_standard_and_custom_fields_by_field_code() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let fields = v2_fields(&pd, "").await;

    let by_code = |c: &str| fields.iter().find(|f| f["field_code"] == c).cloned();
    let name = by_code("name").unwrap();
    assert_eq!(
        name,
        json!({"field_name": "Name", "field_code": "name", "field_type": "varchar",
               "options": null, "subfields": null, "is_custom_field": false,
               "is_optional_response_field": false})
    );
    for code in [
        "job_title",
        "birthday",
        "notes",
        "im",
        "postal_address",
        "picture_id",
    ] {
        assert!(by_code(code).is_some(), "{code}");
    }
    let marketing = by_code("marketing_status").unwrap();
    assert_eq!(marketing["is_optional_response_field"], true);
    assert_eq!(marketing["options"].as_array().unwrap().len(), 4);
    let address = by_code("postal_address").unwrap();
    assert_eq!(address["field_type"], "address");
    assert_eq!(address["subfields"].as_array().unwrap().len(), 10);
    let sync = by_code(&pd.field_key("sync_to_plezi").await).unwrap();
    assert_eq!(sync["is_custom_field"], true);
    assert_eq!(sync["field_type"], "enum");
    let labels: Vec<&str> = sync["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["yes", "no"]);
    assert_eq!(
        fields
            .iter()
            .filter(|f| f["is_custom_field"] == true)
            .count(),
        6
    );
}

#[tokio::test]
async fn v2_person_fields_page_with_limit_and_cursor() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let all = v2_fields(&pd, "").await;

    let first = pd.get("/api/v2/personFields?limit=5").await;
    let paged = v2_fields(&pd, "limit=5").await;

    assert_eq!(first.body["data"].as_array().unwrap().len(), 5);
    assert!(first.body["additional_data"]["next_cursor"].is_string());
    assert_eq!(paged, all);
    assert_error(
        &pd.get("/api/v2/personFields?limit=501").await,
        400,
        "limit",
    );
    assert_error(
        &pd.get("/api/v2/personFields?cursor=nope").await,
        400,
        "cursor",
    );
}

#[tokio::test]
async fn v2_person_fields_add_namespaces_only_when_asked() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let plain = pd.get("/api/v2/personFields?limit=1").await;
    let asked = pd
        .get("/api/v2/personFields?limit=1&include_fields=ui_visibility,required_fields")
        .await;
    let unknown = pd.get("/api/v2/personFields?include_fields=colour").await;

    assert!(plain.body["data"][0].get("ui_visibility").is_none());
    let name = &asked.body["data"][0];
    assert_eq!(name["ui_visibility"]["add_visible_flag"], true);
    assert_eq!(name["required_fields"], json!({"enabled": true}));
    assert!(name.get("important_fields").is_none());
    assert_error(&unknown, 400, "include_fields");
}
