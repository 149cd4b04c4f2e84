//! Leads, contacts, custom fields, users and lead conversions: envelopes,
//! paging, sorting, filters, partial updates and upserts.

use crmsync_sandbox::kit::SandboxCrm;
use serde_json::json;

use super::{Sell, empty};
use crate::common::TestSandbox;

#[tokio::test]
async fn a_lead_listing_is_a_collection_of_enveloped_leads_in_pages_of_25() {
    let sb = TestSandbox::start_with(60).await;
    let sell = Sell::default_account(&sb);

    let first = sell.get("/leads").await;

    assert_eq!(first.status, 200);
    assert!(first.header("content-type").starts_with("application/json"));
    assert_eq!(first.items().len(), 25);
    assert_eq!(first.body["items"][0]["meta"]["type"], "lead");
    assert_eq!(first.body["meta"]["type"], "collection");
    assert_eq!(first.body["meta"]["count"], 25);
    let next = first.body["meta"]["links"]["next_page"]
        .as_str()
        .expect("a next page");
    assert!(next.contains("page=2"), "{next}");
    let lead = &first.items()[0];
    for key in [
        "id",
        "first_name",
        "last_name",
        "email",
        "custom_fields",
        "created_at",
        "updated_at",
        "owner_id",
    ] {
        assert!(lead.get(key).is_some(), "{key} in {lead}");
    }
}

#[tokio::test]
async fn the_last_page_has_no_next_page_link() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;
    for i in 0..3 {
        let made = sell
            .post("/leads", json!({ "last_name": format!("L{i}") }))
            .await;
        assert_eq!(made.status, 200, "{}", made.body);
    }

    let page = sell.get("/leads?per_page=2&page=2").await;

    assert_eq!(page.items().len(), 1);
    assert!(page.body["meta"]["links"].get("next_page").is_none());
    assert!(page.body["meta"]["links"]["prev_page"].is_string());
}

#[tokio::test]
async fn a_lead_is_created_read_partially_updated_and_deleted() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;

    let made = sell
        .post(
            "/leads",
            json!({ "first_name": "Zoë", "last_name": "Łukasiewicz", "email": "zoe@example.com",
                    "custom_fields": { "score": 12, "source": "Form" } }),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.body["meta"]["type"], "lead");
    let id = made.body["data"]["id"].as_u64().expect("id");

    let updated = sell
        .put(
            &format!("/leads/{id}"),
            json!({ "title": "CTO", "custom_fields": { "score": 40 } }),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let lead = &updated.body["data"];
    assert_eq!(lead["title"], "CTO");
    assert_eq!(lead["first_name"], "Zoë", "attributes not sent are kept");
    assert_eq!(lead["custom_fields"]["score"], 40);
    assert_eq!(
        lead["custom_fields"]["source"], "Form",
        "custom fields not sent are kept"
    );

    let read = sell.get(&format!("/leads/{id}")).await;
    assert_eq!(read.body["data"]["title"], "CTO");

    let gone = sell.delete(&format!("/leads/{id}")).await;
    assert_eq!(gone.status, 204);
    assert_eq!(sell.get(&format!("/leads/{id}")).await.status, 404);
}

#[tokio::test]
async fn leads_sort_by_updated_at_descending_and_filter_by_email_in_any_case() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;
    let (_, put) = sb
        .admin_post(
            &sell.admin("/records/leads"),
            json!({ "records": [
                { "last_name": "Old", "email": "old@example.com", "updated_at": "2026-01-01T00:00:00Z" },
                { "last_name": "New", "email": "New@Example.com", "updated_at": "2026-03-01T00:00:00Z" },
                { "last_name": "Mid", "email": "mid@example.com", "updated_at": "2026-02-01T00:00:00Z" },
            ] }),
        )
        .await;
    assert_eq!(put["records"].as_array().map(Vec::len), Some(3), "{put}");

    let sorted = sell.get("/leads?sort_by=updated_at:desc").await;
    let names: Vec<_> = sorted
        .items()
        .iter()
        .map(|l| l["last_name"].clone())
        .collect();
    assert_eq!(names, vec![json!("New"), json!("Mid"), json!("Old")]);
    assert_eq!(sorted.items()[0]["updated_at"], "2026-03-01T00:00:00Z");

    let found = sell.get("/leads?email=new@example.com").await;
    assert_eq!(found.items().len(), 1);
    assert_eq!(found.items()[0]["last_name"], "New");
}

#[tokio::test]
async fn an_upsert_creates_then_updates_by_its_filter_and_refuses_an_ambiguous_one() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;

    let created = sell
        .post(
            "/leads/upsert?email=a@example.com",
            json!({ "last_name": "A", "email": "a@example.com" }),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["data"]["id"].clone();
    let updated = sell
        .post(
            "/leads/upsert?email=a@example.com",
            json!({ "title": "CEO" }),
        )
        .await;
    assert_eq!(updated.body["data"]["id"], id);
    assert_eq!(updated.body["data"]["title"], "CEO");

    sell.post(
        "/leads",
        json!({ "last_name": "B", "email": "dup@example.com" }),
    )
    .await;
    sell.post(
        "/leads",
        json!({ "last_name": "C", "email": "dup@example.com" }),
    )
    .await;
    let ambiguous = sell
        .post(
            "/leads/upsert?email=dup@example.com",
            json!({ "title": "x" }),
        )
        .await;
    assert_eq!(ambiguous.status, 409);
    let unfiltered = sell
        .post("/leads/upsert", json!({ "last_name": "D" }))
        .await;
    assert_eq!(unfiltered.status, 400);
    assert_eq!(unfiltered.error()["code"], "invalid_param");
}

#[tokio::test]
async fn custom_field_definitions_are_listed_per_resource() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(
        &sb,
        json!({ "lead_fields": [{ "name": "segment", "type": "list", "choices": ["A", "B"] }] }),
    )
    .await;

    let fields = sell.get("/lead/custom_fields").await;

    assert_eq!(fields.status, 200);
    assert_eq!(fields.body["items"][0]["meta"]["type"], "custom_field");
    let segment = &fields.items()[0];
    assert_eq!(segment["name"], "segment");
    assert_eq!(segment["type"], "list");
    assert_eq!(segment["choices"][1]["name"], "B");
    let contact_fields = sell.get("/contact/custom_fields").await;
    assert!(contact_fields.items().iter().any(|f| f["name"] == "score"));
    let bad = sell
        .post(
            "/leads",
            json!({ "last_name": "X", "custom_fields": { "segment": "C" } }),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error()["field"], "custom_fields.segment");
}

#[tokio::test]
async fn users_carry_their_e_mail_and_self_is_the_tokens_user() {
    let sb = TestSandbox::start().await;
    let sell = Sell::default_account(&sb);

    let users = sell.get("/users").await;
    let me = sell.get("/users/self").await;

    assert_eq!(users.status, 200);
    assert!(
        users
            .items()
            .iter()
            .all(|u| u["email"].as_str().is_some_and(|e| e.contains('@')))
    );
    assert_eq!(me.body["meta"]["type"], "user");
    assert_eq!(me.body["data"]["id"], sb.desc().zendesk_sell.user_id);
    assert_eq!(me.body["data"]["role"], "admin");
}

#[tokio::test]
async fn a_converted_lead_becomes_a_contact_and_leaves_the_leads() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;
    let lead = sell
        .post(
            "/leads",
            json!({ "first_name": "Inès", "last_name": "Nuñez", "email": "ines@example.com",
                    "organization_name": "Acme", "custom_fields": { "score": 70 } }),
        )
        .await;
    let lead_id = lead.body["data"]["id"].as_u64().expect("id");

    let conversion = sell
        .post("/lead_conversions", json!({ "lead_id": lead_id }))
        .await;

    assert_eq!(conversion.status, 200, "{}", conversion.body);
    assert_eq!(conversion.body["meta"]["type"], "lead_conversion");
    let individual = conversion.body["data"]["individual_id"]
        .as_u64()
        .expect("individual");
    let contact = sell.get(&format!("/contacts/{individual}")).await;
    assert_eq!(contact.body["data"]["email"], "ines@example.com");
    assert_eq!(contact.body["data"]["custom_fields"]["score"], 70);
    assert_eq!(
        contact.body["data"]["contact_id"],
        conversion.body["data"]["organization_id"]
    );
    assert_eq!(sell.get(&format!("/leads/{lead_id}")).await.status, 404);
    assert!(sell.get("/leads").await.items().is_empty());
}

#[tokio::test]
async fn converted_leads_stay_readable_but_unchangeable_when_the_account_says_so() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(
        &sb,
        json!({ "settings": { "converted_leads_visible": true } }),
    )
    .await;
    let lead = sell.post("/leads", json!({ "last_name": "Kept" })).await;
    let lead_id = lead.body["data"]["id"].as_u64().expect("id");
    sell.post("/lead_conversions", json!({ "lead_id": lead_id }))
        .await;

    assert_eq!(sell.get(&format!("/leads/{lead_id}")).await.status, 200);
    let change = sell
        .put(&format!("/leads/{lead_id}"), json!({ "title": "x" }))
        .await;
    assert_eq!(change.status, 422);
}

#[tokio::test]
async fn a_contact_listing_holds_the_seeded_converted_people() {
    let sb = TestSandbox::start_with(60).await;
    let sell = Sell::default_account(&sb);

    let contacts = sell.get("/contacts?per_page=100").await;

    assert_eq!(contacts.status, 200);
    assert!(!contacts.items().is_empty());
    assert_eq!(contacts.body["items"][0]["meta"]["type"], "contact");
    assert!(
        contacts
            .items()
            .iter()
            .all(|c| c["is_organization"] == false)
    );
}

#[tokio::test]
async fn the_kit_deletes_a_lead_as_a_rep_does() {
    let sb = TestSandbox::start().await;
    let kit = crmsync_sandbox::zendesk_sell::SandboxKind;
    crate::common::kit_deletes_the_first_of_two(&sb, &kit).await;
    assert_eq!(kit.list_endpoint(), "GET /zendesk_sell/v2/leads");
}
