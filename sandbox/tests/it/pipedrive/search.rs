//! `GET /api/v2/persons/search`.

use serde_json::{Value, json};

use super::{Pd, assert_error};
use crate::common::TestSandbox;

async fn company(sb: &TestSandbox) -> Pd<'_> {
    let pd = Pd::create(sb, json!({"domain": "searchable"})).await;
    pd.create_person(json!({"name": "Émile Dupont", "emails": [{"value": "Emile.Dupont@Acme.fr", "primary": true, "label": "work"}]}))
        .await;
    pd.create_person(json!({"name": "Claire Dupontel", "emails": [{"value": "claire@acme.fr", "primary": true, "label": "work"}],
        "phones": [{"value": "+33 1 23 45 67 89", "primary": true, "label": "work"}]}))
        .await;
    pd
}

fn found(body: &Value) -> Vec<u64> {
    body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn exact_match_on_email_is_whole_value_and_case_insensitive() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;

    let r = pd
        .get("/api/v2/persons/search?term=emile.dupont@acme.fr&fields=email&exact_match=true")
        .await;
    let partial = pd
        .get("/api/v2/persons/search?term=acme.fr&fields=email&exact_match=true")
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["data"]["items"][0],
        json!({"result_score": 1.0, "item": {
            "id": 1, "type": "person", "name": "Émile Dupont", "phones": [], "emails": ["Emile.Dupont@Acme.fr"],
            "visible_to": 3, "owner": {"id": pd.admin().await["user_id"]}, "organization": null,
            "custom_fields": [], "notes": [], "update_time": r.body["data"]["items"][0]["item"]["update_time"],
        }})
    );
    assert_eq!(r.body["additional_data"], json!({"next_cursor": null}));
    assert!(found(&partial.body).is_empty());
}

#[tokio::test]
async fn without_exact_match_the_term_matches_substrings_best_first() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;

    let r = pd
        .get("/api/v2/persons/search?term=dupont&fields=name")
        .await;

    assert_eq!(found(&r.body), [1, 2]);
    let scores: Vec<f64> = r.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result_score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] >= scores[1]);
}

#[tokio::test]
async fn a_term_shorter_than_two_characters_is_400_unless_exact() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;

    assert_error(&pd.get("/api/v2/persons/search?term=d").await, 400, "term");
    assert_error(&pd.get("/api/v2/persons/search").await, 400, "term");
    assert_eq!(
        pd.get("/api/v2/persons/search?term=d&exact_match=true")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn unknown_search_fields_are_400() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;

    assert_error(
        &pd.get("/api/v2/persons/search?term=dupont&fields=address")
            .await,
        400,
        "fields",
    );
}

#[tokio::test]
async fn search_excludes_deleted_persons() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;
    pd.delete("/api/v2/persons/1").await;

    let r = pd.get("/api/v2/persons/search?term=dupont").await;

    assert_eq!(found(&r.body), [2]);
}

#[tokio::test]
async fn search_finds_phones_and_text_custom_fields() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;
    let url = pd.field_key("plezi_url").await;
    pd.patch(
        "/api/v2/persons/1",
        json!({"custom_fields": {url: "https://plezi.co/c/abc"}}),
    )
    .await;

    let phone = pd
        .get("/api/v2/persons/search?term=45 67&fields=phone")
        .await;
    let custom = pd
        .get("/api/v2/persons/search?term=plezi.co&fields=custom_fields")
        .await;

    assert_eq!(found(&phone.body), [2]);
    assert_eq!(found(&custom.body), [1]);
    assert_eq!(
        custom.body["data"]["items"][0]["item"]["custom_fields"],
        json!(["https://plezi.co/c/abc"])
    );
}

#[tokio::test]
async fn search_pages_with_a_cursor() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;

    let first = pd.get("/api/v2/persons/search?term=acme&limit=1").await;
    let cursor = first.body["additional_data"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = pd
        .get(&format!(
            "/api/v2/persons/search?term=acme&limit=1&cursor={cursor}"
        ))
        .await;

    assert_eq!(found(&first.body).len() + found(&second.body).len(), 2);
    assert_ne!(found(&first.body), found(&second.body));
    assert_eq!(second.body["additional_data"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn more_than_10_searches_in_2_seconds_are_429() {
    let sb = TestSandbox::start().await;
    let pd = company(&sb).await;
    for _ in 0..10 {
        assert_eq!(
            pd.get("/api/v2/persons/search?term=dupont").await.status,
            200
        );
    }

    let over = pd.get("/api/v2/persons/search?term=dupont").await;
    let list = pd.get("/api/v2/persons").await;
    super::advance(&sb, 2.0).await;
    let later = pd.get("/api/v2/persons/search?term=dupont").await;

    assert_error(&over, 429, "Request over limit");
    assert_eq!(list.status, 200, "other endpoints are not held back");
    assert_eq!(later.status, 200);
}
