//! Contacts: upsert by e-mail (left out kept, null clears) and its validation.

use crmsync_entity::enums::Role;
use serde_json::json;

use crate::helpers::*;

const UPSERT: &str = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id email firstName lastName company behaviourScore lifecycle customFields } } }";

#[tokio::test]
async fn upsert_keeps_left_out_fields_and_clears_explicit_nulls() {
    let app = TestApp::spawn().await;
    let first = app
        .admin_ok(UPSERT, json!({ "input": { "email": " Jean@Example.COM ", "firstName": "Jean", "lastName": "Dupont", "company": "Acme", "behaviourScore": 40, "customFields": {"industry": "retail"} } }))
        .await;
    let c = &first["upsertContact"]["contact"];
    assert_eq!(c["email"], "jean@example.com");

    let second = app
        .admin_ok(UPSERT, json!({ "input": { "email": "jean@example.com", "company": null, "lastName": "Durand" } }))
        .await;
    let c2 = &second["upsertContact"]["contact"];
    assert_eq!(c2["id"], c["id"], "same contact");
    assert_eq!(c2["firstName"], "Jean", "left out: kept");
    assert_eq!(c2["lastName"], "Durand");
    assert_eq!(
        c2["company"],
        serde_json::Value::Null,
        "explicit null: cleared"
    );
    assert_eq!(c2["behaviourScore"], 40);
    assert_eq!(c2["customFields"]["industry"], "retail");

    let data = app
        .admin_ok("query($e: String!) { contact(email: $e) { id } contacts(search: \"Durand\") { totalCount } }", json!({ "e": "JEAN@example.com" }))
        .await;
    assert_eq!(data["contact"]["id"], c["id"]);
    assert_eq!(data["contacts"]["totalCount"], 1);
}

async fn invalid(app: &TestApp, input: serde_json::Value, expected_field: &str) {
    let body = app
        .gql(&app.token(Role::Admin), UPSERT, json!({ "input": input }))
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), expected_field, "{body}");
}

#[tokio::test]
async fn a_bad_email_is_a_validation_error_on_input_email() {
    let app = TestApp::spawn().await;
    invalid(&app, json!({ "email": "not-an-address" }), "input.email").await;
}

#[tokio::test]
async fn a_negative_score_is_a_validation_error() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        json!({ "email": "a@b.com", "behaviourScore": -1 }),
        "input.behaviourScore",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_lifecycle_is_a_validation_error() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        json!({ "email": "a@b.com", "lifecycle": "ALIEN" }),
        "input.lifecycle",
    )
    .await;
}

#[tokio::test]
async fn a_bad_owner_email_is_a_validation_error() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        json!({ "email": "a@b.com", "ownerEmail": "nobody" }),
        "input.ownerEmail",
    )
    .await;
}

#[tokio::test]
async fn custom_fields_must_be_an_object_with_plain_keys() {
    let app = TestApp::spawn().await;
    invalid(
        &app,
        json!({ "email": "a@b.com", "customFields": [1, 2] }),
        "input.customFields",
    )
    .await;
    invalid(
        &app,
        json!({ "email": "a@b.com", "customFields": {"Bad Key": 1} }),
        "input.customFields",
    )
    .await;
}

#[tokio::test]
async fn submit_form_validates_the_contact_under_its_input_path() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            "mutation { submitForm(input: {form: \"webinar\", contact: {email: \"nope\"}}) { contact { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.contact.email");
}

#[tokio::test]
async fn pages_have_opaque_cursors_and_a_total_count() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.admin_ok(
            UPSERT,
            json!({ "input": { "email": format!("p{i}@example.com") } }),
        )
        .await;
    }
    let q = "query($after: String) { contacts(first: 2, after: $after) { totalCount edges { cursor node { email } } pageInfo { hasNextPage endCursor } } }";
    let mut after = serde_json::Value::Null;
    let mut seen = Vec::new();
    loop {
        let data = app.admin_ok(q, json!({ "after": after })).await;
        let conn = &data["contacts"];
        assert_eq!(conn["totalCount"], 5);
        for e in conn["edges"].as_array().unwrap() {
            assert!(!e["cursor"].as_str().unwrap().contains('@'));
            seen.push(e["node"]["email"].as_str().unwrap().to_owned());
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len(), 5);
    let body = app
        .gql(&app.token(Role::Admin), q, json!({ "after": "garbage" }))
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
}
