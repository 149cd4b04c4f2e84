//! The standard person fields contact sync fills (`job_title`, `birthday`, `notes`,
//! `im`, `postal_address`): stored on create and update, returned on persons, validated.

use serde_json::{Value, json};

use super::{Pd, assert_error};
use crate::common::TestSandbox;

fn address() -> Value {
    json!({
        "value": "123 Main St, Sunnyvale", "country": "USA", "admin_area_level_1": "CA",
        "admin_area_level_2": "Santa Clara", "locality": "Sunnyvale", "sublocality": "Downtown",
        "route": "Main St", "street_number": "123", "subpremise": "4B", "postal_code": "94085",
    })
}

#[tokio::test]
async fn create_stores_the_contact_sync_fields_and_get_returns_them() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let created = pd
        .create_person(json!({
            "name": "Ada Lovelace",
            "job_title": "Analyst",
            "birthday": "1815-12-10",
            "notes": "Met at the engine demo",
            "im": [{"value": "ada.l", "primary": true, "label": "skype"}, {"value": "ada"}],
            "postal_address": address(),
        }))
        .await;
    let fetched = pd
        .get(&format!("/api/v2/persons/{}", created["id"]))
        .await
        .body["data"]
        .clone();

    for person in [&created, &fetched] {
        assert_eq!(person["job_title"], "Analyst");
        assert_eq!(person["birthday"], "1815-12-10");
        assert_eq!(person["notes"], "Met at the engine demo");
        assert_eq!(
            person["im"],
            json!([
                {"value": "ada.l", "primary": true, "label": "skype"},
                {"value": "ada", "primary": false, "label": "work"},
            ])
        );
        assert_eq!(person["postal_address"], address());
        assert_eq!(person["picture_id"], Value::Null);
    }
}

#[tokio::test]
async fn a_person_without_contact_sync_values_carries_them_empty() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let p = pd.create_person(json!({"name": "Plain"})).await;

    for key in [
        "job_title",
        "birthday",
        "notes",
        "postal_address",
        "picture_id",
    ] {
        assert_eq!(p[key], Value::Null, "{key}");
    }
    assert_eq!(p["im"], json!([]));
}

#[tokio::test]
async fn patch_replaces_contact_sync_fields_and_null_clears_them() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let p = pd
        .create_person(json!({
            "name": "Grace", "job_title": "Admiral", "notes": "n",
            "postal_address": address(), "im": [{"value": "g"}],
        }))
        .await;
    let path = format!("/api/v2/persons/{}", p["id"]);

    let r = pd
        .patch(
            &path,
            json!({
                "job_title": "Rear admiral", "notes": null, "postal_address": {"locality": "Arlington"},
                "im": [], "birthday": "1906-12-09",
            }),
        )
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    let after = pd.get(&path).await.body["data"].clone();
    assert_eq!(after["job_title"], "Rear admiral");
    assert_eq!(after["notes"], Value::Null);
    assert_eq!(after["birthday"], "1906-12-09");
    assert_eq!(after["im"], json!([]));
    assert_eq!(after["postal_address"]["locality"], "Arlington");
    assert_eq!(after["postal_address"]["route"], Value::Null);
}

#[tokio::test]
async fn bad_contact_sync_values_are_400_naming_the_field() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let cases = [
        (json!({"job_title": 7}), "job_title: must be a string"),
        (
            json!({"birthday": "10/12/1815"}),
            "birthday: must be a date",
        ),
        (
            json!({"birthday": "1815-02-30"}),
            "birthday: must be a date",
        ),
        (json!({"birthday": 1815}), "birthday: must be a date"),
        (
            json!({"notes": "x".repeat(10_001)}),
            "notes: must be at most 10000 characters",
        ),
        (json!({"im": "ada"}), "im: must be an array"),
        (
            json!({"im": [{"primary": true}]}),
            "im[0].value: is required",
        ),
        (json!({"im": [{"value": "a", "label": ""}]}), "im[0].label"),
        (json!({"im": [{"value": "a", "kind": "x"}]}), "im[0].kind"),
        (
            json!({"postal_address": "Main St"}),
            "postal_address: must be an object",
        ),
        (
            json!({"postal_address": {"city": "Paris"}}),
            "postal_address.city: unknown field",
        ),
        (
            json!({"postal_address": {"postal_code": 75001}}),
            "postal_address.postal_code: must be a string",
        ),
        (json!({"picture_id": 1}), "picture_id: unknown field"),
    ];
    for (mut body, expected) in cases {
        body["name"] = json!("A");
        assert_error(&pd.post("/api/v2/persons", body).await, 400, expected);
    }
}

#[tokio::test]
async fn notes_of_exactly_10000_characters_are_accepted() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let p = pd
        .create_person(json!({"name": "Long", "notes": "é".repeat(10_000)}))
        .await;

    assert_eq!(p["notes"].as_str().unwrap().chars().count(), 10_000);
}
