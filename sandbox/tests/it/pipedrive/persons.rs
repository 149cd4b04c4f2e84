//! Persons on API v2: list, get, create, update, delete and their strict validation.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Pd, advance, assert_error};
use crate::common::TestSandbox;

fn ids(body: &Value) -> Vec<u64> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

/// A company without persons, with persons stored at the given update times.
async fn company_with_times<'a>(sb: &'a TestSandbox, times: &[&str]) -> Pd<'a> {
    let pd = Pd::create(sb, json!({"domain": "timed"})).await;
    let persons: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"name": format!("Person {i}"), "add_time": "2026-01-01T00:00:00Z", "update_time": t}))
        .collect();
    let (status, body) = sb
        .admin_post(
            "/admin/pipedrive/companies/timed/persons",
            json!({ "persons": persons }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    pd
}

#[tokio::test]
async fn the_list_pages_through_every_person_by_id_with_next_cursor() {
    let sb = TestSandbox::start_with(250).await;
    let pd = Pd::default_company(&sb);

    let first = pd.get("/api/v2/persons").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["success"], true);
    let mut seen = ids(&first.body);
    assert_eq!(seen.len(), 100, "the default limit is 100");
    let mut cursor = first.body["additional_data"]["next_cursor"]
        .as_str()
        .map(str::to_owned);
    while let Some(c) = cursor {
        let page = pd.get(&format!("/api/v2/persons?cursor={c}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(ids(&page.body));
        cursor = page.body["additional_data"]["next_cursor"]
            .as_str()
            .map(str::to_owned);
    }

    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(seen, sorted, "ascending ids by default");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    assert_eq!(
        seen.len() as u64,
        pd.admin().await["person_count"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn the_last_page_has_a_null_next_cursor() {
    let sb = TestSandbox::start_with(5).await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v2/persons?limit=500").await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["additional_data"], json!({"next_cursor": null}));
}

#[tokio::test]
async fn a_person_has_the_v2_shape_with_40_hex_custom_field_keys() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v2/persons?limit=1").await;

    let p = &r.body["data"][0];
    for key in [
        "id",
        "name",
        "first_name",
        "last_name",
        "owner_id",
        "org_id",
        "add_time",
        "update_time",
        "emails",
        "phones",
        "is_deleted",
        "visible_to",
        "label_ids",
        "picture_id",
        "postal_address",
        "notes",
        "im",
        "birthday",
        "job_title",
        "custom_fields",
    ] {
        assert!(p.get(key).is_some(), "{key} missing in {p}");
    }
    assert!(
        p.get("marketing_status").is_none(),
        "marketing_status comes only through include_fields: {p}"
    );
    assert!(p["owner_id"].is_u64());
    assert_eq!(p["is_deleted"], false);
    let time = p["update_time"].as_str().unwrap();
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    let custom = p["custom_fields"].as_object().unwrap();
    assert_eq!(custom.len(), 6);
    assert!(
        custom
            .keys()
            .all(|k| k.len() == 40 && k.chars().all(|c| c.is_ascii_hexdigit()))
    );
}

#[tokio::test]
async fn a_limit_over_500_is_400() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(&pd.get("/api/v2/persons?limit=501").await, 400, "limit");
    assert_eq!(pd.get("/api/v2/persons?limit=500").await.status, 200);
}

#[tokio::test]
async fn an_invalid_updated_since_is_400_naming_the_parameter() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.get("/api/v2/persons?updated_since=2026-11-21%2010:00:00")
            .await,
        400,
        "updated_since",
    );
    assert_error(
        &pd.get("/api/v2/persons?updated_until=yesterday").await,
        400,
        "updated_until",
    );
    assert_error(
        &pd.get("/api/v2/persons?sort_by=name").await,
        400,
        "sort_by",
    );
    assert_error(
        &pd.get("/api/v2/persons?sort_direction=up").await,
        400,
        "sort_direction",
    );
}

#[tokio::test]
async fn updated_since_is_inclusive_and_updated_until_exclusive() {
    let sb = TestSandbox::start().await;
    let pd = company_with_times(
        &sb,
        &[
            "2026-03-01T10:00:00Z",
            "2026-03-01T11:00:00Z",
            "2026-03-01T12:00:00Z",
            "2026-03-01T13:00:00Z",
        ],
    )
    .await;

    let r = pd
        .get("/api/v2/persons?updated_since=2026-03-01T11:00:00Z&updated_until=2026-03-01T13:00:00Z&sort_by=update_time")
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    let times: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["update_time"].as_str().unwrap())
        .collect();
    assert_eq!(times, ["2026-03-01T11:00:00Z", "2026-03-01T12:00:00Z"]);
}

#[tokio::test]
async fn sorting_by_update_time_desc_pages_with_the_cursor() {
    let sb = TestSandbox::start().await;
    let pd = company_with_times(
        &sb,
        &[
            "2026-03-01T10:00:00Z",
            "2026-03-01T13:00:00Z",
            "2026-03-01T11:00:00Z",
            "2026-03-01T12:00:00Z",
        ],
    )
    .await;

    let first = pd
        .get("/api/v2/persons?sort_by=update_time&sort_direction=desc&limit=3")
        .await;
    let cursor = first.body["additional_data"]["next_cursor"]
        .as_str()
        .unwrap();
    let second = pd
        .get(&format!(
            "/api/v2/persons?sort_by=update_time&sort_direction=desc&limit=3&cursor={cursor}"
        ))
        .await;

    assert_eq!(ids(&first.body), [2, 4, 3]);
    assert_eq!(ids(&second.body), [1]);
    assert_eq!(second.body["additional_data"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_cursor_used_with_other_parameters_is_400() {
    let sb = TestSandbox::start_with(30).await;
    let pd = Pd::default_company(&sb);
    let first = pd.get("/api/v2/persons?limit=10&sort_by=update_time").await;
    let cursor = first.body["additional_data"]["next_cursor"]
        .as_str()
        .unwrap();

    let r = pd
        .get(&format!(
            "/api/v2/persons?limit=10&sort_by=add_time&cursor={cursor}"
        ))
        .await;
    let garbage = pd.get("/api/v2/persons?cursor=not-a-cursor").await;

    assert_error(&r, 400, "cursor");
    assert_error(&garbage, 400, "cursor");
}

#[tokio::test]
async fn ids_and_owner_id_filter_the_list() {
    let sb = TestSandbox::start_with(30).await;
    let pd = Pd::default_company(&sb);
    let all = pd.get("/api/v2/persons?limit=500").await;
    let owner = all.body["data"][0]["owner_id"].as_u64().unwrap();

    let by_ids = pd.get("/api/v2/persons?ids=5,3,9").await;
    let by_owner = pd
        .get(&format!("/api/v2/persons?owner_id={owner}&limit=500"))
        .await;

    assert_eq!(ids(&by_ids.body), [3, 5, 9]);
    let owned = by_owner.body["data"].as_array().unwrap();
    assert!(!owned.is_empty() && owned.len() < 30);
    assert!(owned.iter().all(|p| p["owner_id"] == owner));
    let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    assert_error(
        &pd.get(&format!("/api/v2/persons?ids={}", many.join(",")))
            .await,
        400,
        "ids",
    );
}

#[tokio::test]
async fn custom_fields_parameter_returns_only_those_fields() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let score = pd.field_key("score").await;

    let r = pd
        .get(&format!("/api/v2/persons?custom_fields={score}&limit=2"))
        .await;
    let unknown = pd
        .get("/api/v2/persons?custom_fields=0000000000000000000000000000000000000000")
        .await;

    let custom = r.body["data"][0]["custom_fields"].as_object().unwrap();
    assert_eq!(custom.keys().collect::<Vec<_>>(), [&score]);
    assert!(custom[&score].is_number());
    assert_error(&unknown, 400, "custom_fields");
}

#[tokio::test]
async fn include_fields_accepts_known_values_and_rejects_others() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let known = pd
        .get("/api/v2/persons?include_fields=notes_count,last_incoming_mail_time&limit=1")
        .await;
    let unknown = pd.get("/api/v2/persons?include_fields=shoe_size").await;

    assert_eq!(known.status, 200, "{}", known.body);
    assert_eq!(known.body["data"][0]["notes_count"], 0);
    assert_eq!(
        known.body["data"][0]["last_incoming_mail_time"],
        Value::Null
    );
    assert_error(&unknown, 400, "include_fields");
}

#[tokio::test]
async fn create_derives_first_and_last_name_and_stamps_the_sandbox_clock() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "fresh"})).await;
    let (_, clock) = sb
        .admin_post("/admin/clock", json!({"set": "2026-11-21T10:00:00.500Z"}))
        .await;
    assert!(
        clock["now"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21T10:00:0")
    );

    let p = pd
        .create_person(json!({"name": "Jean-Baptiste de la Fontaine", "emails": [{"value": "jb@example.fr", "primary": true, "label": "work"}]}))
        .await;

    assert_eq!(p["id"], 1);
    assert_eq!(p["first_name"], "Jean-Baptiste");
    assert_eq!(p["last_name"], "de la Fontaine");
    assert!(
        p["add_time"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21T10:00:0")
    );
    assert_eq!(p["add_time"], p["update_time"]);
    assert_eq!(
        p["emails"],
        json!([{"value": "jb@example.fr", "primary": true, "label": "work"}])
    );
    assert_eq!(p["owner_id"], pd.admin().await["user_id"]);
    assert_eq!(p["visible_to"], 3);
}

#[tokio::test]
async fn create_without_a_name_is_400_name_must_be_given() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.post("/api/v2/persons", json!({"emails": []})).await,
        400,
        "Name must be given.",
    );
    assert_error(
        &pd.post("/api/v2/persons", json!({"name": "  "})).await,
        400,
        "Name must be given.",
    );
}

#[tokio::test]
async fn strings_where_numbers_belong_are_400_naming_the_field() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let owner = pd.admin().await["user_id"].as_u64().unwrap();

    let cases = [
        (
            json!({"name": "A", "owner_id": owner.to_string()}),
            "owner_id",
        ),
        (json!({"name": "A", "org_id": "1"}), "org_id"),
        (json!({"name": "A", "visible_to": "3"}), "visible_to"),
        (json!({"name": "A", "label_ids": ["1"]}), "label_ids[0]"),
    ];
    for (body, field) in cases {
        assert_error(&pd.post("/api/v2/persons", body).await, 400, field);
    }
}

#[tokio::test]
async fn bad_emails_and_phones_shapes_are_400() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let cases = [
        (
            json!({"name": "A", "emails": [{"value": "a@b.c", "primary": "true"}]}),
            "emails[0].primary",
        ),
        (json!({"name": "A", "emails": ["a@b.c"]}), "emails[0]"),
        (
            json!({"name": "A", "emails": [{"value": "a@b.c", "label": "office"}]}),
            "emails[0].label",
        ),
        (
            json!({"name": "A", "phones": [{"value": 33612345678u64}]}),
            "phones[0].value",
        ),
        (
            json!({"name": "A", "phones": [{"number": "1"}]}),
            "phones[0].number",
        ),
        (json!({"name": "A", "emails": "a@b.c"}), "emails"),
    ];
    for (body, field) in cases {
        assert_error(&pd.post("/api/v2/persons", body).await, 400, field);
    }
}

#[tokio::test]
async fn unknown_body_fields_and_bad_enumerations_are_400() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let cases = [
        (json!({"name": "A", "email": "a@b.c"}), "email"),
        (json!({"name": "A", "owner_id": 999_999}), "owner_id"),
        (json!({"name": "A", "visible_to": 2}), "visible_to"),
        (
            json!({"name": "A", "marketing_status": "spam"}),
            "marketing_status",
        ),
        (json!({"name": "A", "label_ids": [99]}), "label_ids[0]"),
    ];
    for (body, field) in cases {
        assert_error(&pd.post("/api/v2/persons", body).await, 400, field);
    }
}

#[tokio::test]
async fn an_owner_from_another_company_is_400() {
    let sb = TestSandbox::start().await;
    let other = Pd::create(&sb, json!({"domain": "other"})).await;
    let foreign_user = other.admin().await["user_id"].as_u64().unwrap();
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.post(
            "/api/v2/persons",
            json!({"name": "A", "owner_id": foreign_user}),
        )
        .await,
        400,
        "owner_id",
    );
}

#[tokio::test]
async fn custom_fields_are_checked_by_type_and_option_id() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let (sync, url, score, industries) = (
        pd.field_key("sync_to_plezi").await,
        pd.field_key("plezi_url").await,
        pd.field_key("score").await,
        pd.field_key("industries").await,
    );
    let yes = pd.option_id("sync_to_plezi", "yes").await;
    let retail = pd.option_id("industries", "Retail").await;
    let media = pd.option_id("industries", "Media").await;

    let ok = pd
        .create_person(json!({"name": "Zoë Müller", "custom_fields": {
            sync.clone(): yes, url.clone(): "https://plezi.co/x", score.clone(): 42.5, industries.clone(): [retail, media]
        }}))
        .await;

    assert_eq!(ok["custom_fields"][&sync], yes);
    assert_eq!(ok["custom_fields"][&industries], json!([retail, media]));
    assert_eq!(ok["custom_fields"][&score], 42.5);
    let bad = [
        (json!({sync.clone(): "yes"}), sync.clone()),
        (json!({sync.clone(): 999_999}), sync.clone()),
        (json!({score.clone(): "42"}), score.clone()),
        (json!({url.clone(): 3}), url.clone()),
        (json!({industries.clone(): retail}), industries.clone()),
        (
            json!({industries.clone(): [retail, 999_999]}),
            format!("{industries}[1]"),
        ),
        (
            json!({"ffffffffffffffffffffffffffffffffffffffff": "x"}),
            "ffffffffffffffffffffffffffffffffffffffff".into(),
        ),
    ];
    for (custom, field) in bad {
        assert_error(
            &pd.post(
                "/api/v2/persons",
                json!({"name": "A", "custom_fields": custom}),
            )
            .await,
            400,
            &field,
        );
    }
}

#[tokio::test]
async fn date_custom_fields_take_yyyy_mm_dd() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(
        &sb,
        json!({"domain": "dated", "custom_fields": [{"name": "birthday", "field_type": "date"}]}),
    )
    .await;
    let key = pd.field_key("birthday").await;

    let ok = pd
        .create_person(json!({"name": "A", "custom_fields": {key.clone(): "1990-02-28"}}))
        .await;
    let bad = pd
        .post(
            "/api/v2/persons",
            json!({"name": "A", "custom_fields": {key.clone(): "28/02/1990"}}),
        )
        .await;

    assert_eq!(ok["custom_fields"][&key], "1990-02-28");
    assert_error(&bad, 400, &key);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_sets_update_time() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let created = pd
        .create_person(json!({"name": "Anaïs Le Goff", "phones": [{"value": "+33 6 12 34 56 78", "primary": true, "label": "mobile"}]}))
        .await;
    advance(&sb, 3600.0).await;

    let r = pd
        .patch(
            &format!("/api/v2/persons/{}", created["id"]),
            json!({"emails": [{"value": "anais@x.fr", "primary": true, "label": "work"}]}),
        )
        .await;

    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["data"];
    assert_eq!(p["name"], "Anaïs Le Goff");
    assert_eq!(p["phones"], created["phones"]);
    assert_eq!(p["emails"][0]["value"], "anais@x.fr");
    assert_eq!(p["add_time"], created["add_time"]);
    assert_ne!(p["update_time"], created["update_time"]);
    let listed = pd
        .get(&format!(
            "/api/v2/persons?updated_since={}",
            p["update_time"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&listed.body), [created["id"].as_u64().unwrap()]);
}

#[tokio::test]
async fn patch_with_an_empty_name_is_400_and_a_new_name_resplits_it() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let id = pd.create_person(json!({"name": "Old Name"})).await["id"].clone();

    let empty = pd
        .patch(&format!("/api/v2/persons/{id}"), json!({"name": ""}))
        .await;
    let renamed = pd
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"name": "Søren Østergaard"}),
        )
        .await;

    assert_error(&empty, 400, "Name must be given.");
    assert_eq!(renamed.body["data"]["first_name"], "Søren");
    assert_eq!(renamed.body["data"]["last_name"], "Østergaard");
}

#[tokio::test]
async fn null_clears_a_custom_field() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let score = pd.field_key("score").await;
    let id = pd
        .create_person(json!({"name": "A", "custom_fields": {score.clone(): 10}}))
        .await["id"]
        .clone();

    let r = pd
        .patch(
            &format!("/api/v2/persons/{id}"),
            json!({"custom_fields": {score.clone(): null}}),
        )
        .await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["custom_fields"][&score], Value::Null);
}

#[tokio::test]
async fn delete_marks_the_person_deleted_and_hides_it_from_the_list() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "del"})).await;
    let id = pd.create_person(json!({"name": "Gone Soon"})).await["id"]
        .as_u64()
        .unwrap();

    let r = pd.delete(&format!("/api/v2/persons/{id}")).await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"success": true, "data": {"id": id}}));
    assert!(ids(&pd.get("/api/v2/persons").await.body).is_empty());
    let got = pd.get(&format!("/api/v2/persons/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"]["is_deleted"], true);
    assert_error(
        &pd.patch(&format!("/api/v2/persons/{id}"), json!({"name": "Back"}))
            .await,
        404,
        "Person not found",
    );
}

#[tokio::test]
async fn a_deleted_person_is_404_after_30_days() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    pd.delete("/api/v2/persons/1").await;
    advance(&sb, 29.0 * 86_400.0).await;
    assert_eq!(pd.get("/api/v2/persons/1").await.status, 200);

    advance(&sb, 86_400.0).await;

    assert_error(&pd.get("/api/v2/persons/1").await, 404, "Person not found");
}

#[tokio::test]
async fn an_unknown_person_is_404_person_not_found() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    assert_error(
        &pd.get("/api/v2/persons/987654").await,
        404,
        "Person not found",
    );
    assert_error(
        &pd.delete("/api/v2/persons/987654").await,
        404,
        "Person not found",
    );
    assert_error(&pd.get("/api/v2/persons/abc").await, 400, "id");
}

#[tokio::test]
async fn create_accepts_an_rfc3339_add_time_and_sorting_by_add_time_follows_it() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "added"})).await;
    pd.create_person(json!({"name": "Newer", "add_time": "2026-05-01T00:00:00Z"}))
        .await;
    let older = pd
        .create_person(json!({"name": "Older", "add_time": "2026-04-01T08:30:00+02:00"}))
        .await;

    let r = pd.get("/api/v2/persons?sort_by=add_time").await;
    let bad = pd
        .post(
            "/api/v2/persons",
            json!({"name": "A", "add_time": "2026-04-01 08:30:00"}),
        )
        .await;
    let on_patch = pd
        .patch(
            "/api/v2/persons/1",
            json!({"add_time": "2026-04-01T00:00:00Z"}),
        )
        .await;

    assert_eq!(older["add_time"], "2026-04-01T06:30:00Z");
    assert_eq!(ids(&r.body), [2, 1]);
    assert_error(&bad, 400, "add_time");
    assert_error(&on_patch, 400, "add_time");
}

#[tokio::test]
async fn concurrent_patches_of_one_person_all_apply_and_the_index_stays_consistent() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "busy", "burst_limit": 1000})).await;
    let id = pd.create_person(json!({"name": "Busy Person"})).await["id"]
        .as_u64()
        .unwrap();
    let mut patches = tokio::task::JoinSet::new();
    for i in 0..30 {
        let request = sb
            .http
            .patch(pd.url(&format!("/api/v2/persons/{id}")))
            .header("x-api-token", &pd.token)
            .json(&json!({"name": format!("Name {i}")}));
        patches.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = patches.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }

    let by_update = pd.get("/api/v2/persons?sort_by=update_time").await;

    assert_eq!(ids(&by_update.body), [id], "one index entry per person");
    assert!(
        by_update.body["data"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("Name ")
    );
}
