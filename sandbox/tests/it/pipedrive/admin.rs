//! The Pipedrive admin API.

use serde_json::{Value, json};

use super::Pd;
use crate::common::TestSandbox;

#[tokio::test]
async fn creating_a_company_returns_its_base_url_token_users_and_field_keys() {
    let sb = TestSandbox::start().await;

    let (status, body) = sb
        .admin_post(
            "/admin/pipedrive/companies",
            json!({"domain": "acme", "burst_limit": 20, "seed": {"people": 12, "seed": 7}}),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["domain"], "acme");
    assert_eq!(
        body["base_url"],
        format!("{}/pipedrive/acme", sb.sandbox.base_url())
    );
    assert_eq!(body["api_token"].as_str().unwrap().len(), 40);
    assert_eq!(body["limits"]["burst_limit"], 20);
    assert_eq!(body["limits"]["daily_budget"], 600_000);
    assert_eq!(body["person_count"], 12);
    assert_eq!(body["field_keys"].as_object().unwrap().len(), 6);
    assert!(body["users"].as_array().unwrap().len() >= 3);
    let pd = Pd {
        sb: &sb,
        base_url: body["base_url"].as_str().unwrap().into(),
        token: body["api_token"].as_str().unwrap().into(),
    };
    assert_eq!(
        pd.get("/api/v2/persons").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
}

#[tokio::test]
async fn a_taken_domain_is_409_and_a_bad_one_400_naming_the_field() {
    let sb = TestSandbox::start().await;

    let (taken, body) = sb
        .admin_post("/admin/pipedrive/companies", json!({"domain": "sandbox"}))
        .await;
    let (bad, bad_body) = sb
        .admin_post("/admin/pipedrive/companies", json!({"domain": "No Spaces"}))
        .await;
    let (unknown, unknown_body) = sb
        .admin_post(
            "/admin/pipedrive/companies",
            json!({"domain": "x", "burst": 1}),
        )
        .await;

    assert_eq!(taken, 409);
    assert!(body["error"].as_str().unwrap().starts_with("domain:"));
    assert_eq!(bad, 400);
    assert!(bad_body["error"].as_str().unwrap().starts_with("domain:"));
    assert_eq!(unknown, 400);
    assert!(
        unknown_body["error"].as_str().unwrap().contains("burst"),
        "{unknown_body}"
    );
}

#[tokio::test]
async fn companies_can_be_listed_and_read() {
    let sb = TestSandbox::start().await;
    Pd::create(&sb, json!({"domain": "second"})).await;

    let (_, list) = sb.admin_get("/admin/pipedrive/companies").await;
    let (missing, _) = sb.admin_get("/admin/pipedrive/companies/nope").await;

    let domains: Vec<&str> = list["companies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["sandbox", "second"]);
    assert_eq!(missing, 404);
}

#[tokio::test]
async fn custom_users_and_fields_can_be_given_at_creation() {
    let sb = TestSandbox::start().await;

    let pd = Pd::create(
        &sb,
        json!({"domain": "custom",
            "users": [{"name": "Only Admin", "email": "admin@custom.test", "is_admin": true}, {"name": "Gone", "active_flag": false}],
            "custom_fields": [{"name": "tier", "field_type": "enum", "options": ["gold", "silver"]}]}),
    )
    .await;

    let users = pd.get("/api/v1/users").await;
    assert_eq!(users.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(users.body["data"][0]["email"], "admin@custom.test");
    let fields = pd.get("/api/v1/personFields").await;
    let custom: Vec<&Value> = fields.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["edit_flag"] == true)
        .collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0]["name"], "tier");
}

#[tokio::test]
async fn a_minted_token_belongs_to_the_given_user() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);
    let users = pd.get("/api/v1/users").await;
    let second = users.body["data"][1]["id"].as_u64().unwrap();

    let (status, minted) = sb
        .admin_post(
            "/admin/pipedrive/companies/sandbox/tokens",
            json!({"user_id": second}),
        )
        .await;
    let (bad, _) = sb
        .admin_post(
            "/admin/pipedrive/companies/sandbox/tokens",
            json!({"user_id": 1}),
        )
        .await;

    assert_eq!(status, 201);
    let me = pd
        .with_token(minted["token"].as_str().unwrap())
        .get("/api/v1/users/me")
        .await;
    assert_eq!(me.body["data"]["id"], second);
    let created = pd
        .with_token(minted["token"].as_str().unwrap())
        .create_person(json!({"name": "Owned"}))
        .await;
    assert_eq!(created["owner_id"], second);
    assert_eq!(bad, 400);
}

#[tokio::test]
async fn seeding_adds_generated_persons_with_custom_fields() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "seeded"})).await;

    let (status, body) = sb
        .admin_post(
            "/admin/pipedrive/companies/seeded/seed",
            json!({"people": 50, "seed": 3, "filter": 1.0, "converted": 1.0}),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 50);
    let sync = pd.field_key("sync_to_plezi").await;
    let status_key = pd.field_key("status").await;
    let yes = pd.option_id("sync_to_plezi", "yes").await;
    let client = pd.option_id("status", "Client").await;
    let list = pd.get("/api/v2/persons?limit=500").await;
    let persons = list.body["data"].as_array().unwrap();
    assert_eq!(persons.len(), 50);
    assert!(
        persons
            .iter()
            .all(|p| p["custom_fields"][&sync] == yes && p["custom_fields"][&status_key] == client)
    );
    assert!(
        persons
            .iter()
            .all(|p| p["add_time"].as_str() <= p["update_time"].as_str())
    );
}

#[tokio::test]
async fn seeding_skips_people_without_a_name() {
    let sb = TestSandbox::start().await;
    Pd::create(&sb, json!({"domain": "nameless"})).await;

    let (_, body) = sb
        .admin_post(
            "/admin/pipedrive/companies/nameless/seed",
            json!({"people": 40, "missing_name": 0.5}),
        )
        .await;

    let created = body["created"].as_u64().unwrap();
    assert!(created > 0 && created < 40, "{body}");
    assert_eq!(body["skipped_without_name"], 40 - created);
}

#[tokio::test]
async fn explicit_persons_are_stored_as_given_and_listed_with_deleted_ones() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "explicit"})).await;

    let (status, body) = sb
        .admin_post(
            "/admin/pipedrive/companies/explicit/persons",
            json!({"persons": [
                {"name": "Odd Email", "emails": [{"value": " ODD@Example.com ", "primary": true, "label": "work"}],
                 "add_time": "2026-01-01T00:00:00Z", "update_time": "2026-02-01T00:00:00Z"},
                {"name": "Was Here", "is_deleted": true},
            ]}),
        )
        .await;
    let (_, stored) = sb
        .admin_get("/admin/pipedrive/companies/explicit/persons")
        .await;

    assert_eq!(status, 201, "{body}");
    let persons = stored["persons"].as_array().unwrap();
    assert_eq!(persons.len(), 2);
    assert_eq!(persons[0]["emails"][0]["value"], " ODD@Example.com ");
    assert_eq!(persons[0]["update_time"], "2026-02-01T00:00:00Z");
    assert_eq!(persons[1]["is_deleted"], true);
    assert_eq!(
        pd.get("/api/v2/persons").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn limits_can_be_changed_and_usage_read() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let (status, limits) = sb
        .send_patch(
            "/admin/pipedrive/companies/sandbox/limits",
            json!({"burst_limit": 2, "daily_budget": 1000}),
        )
        .await;
    pd.get("/api/v2/persons").await;
    pd.get("/api/v2/persons").await;
    let over = pd.get("/api/v2/persons").await;
    let (_, usage) = sb
        .admin_get("/admin/pipedrive/companies/sandbox/usage")
        .await;

    assert_eq!(status, 200);
    assert_eq!(limits["burst_limit"], 2);
    assert_eq!(over.status, 429);
    assert_eq!(usage["daily_budget"], 1000);
    assert_eq!(usage["daily_used"], 20);
    assert_eq!(usage["tokens"][0]["burst_window_count"], 2);
    assert_eq!(usage["tokens"][0]["recent_429s"], 1);
}

trait PatchExt {
    async fn send_patch(&self, path: &str, body: Value) -> (u16, Value);
}

impl PatchExt for TestSandbox {
    async fn send_patch(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        crate::common::split(resp).await
    }
}

#[tokio::test]
async fn the_kit_deletes_a_person_as_pipedrive_does() {
    let sb = TestSandbox::start_with(0).await;
    let kit = crmsync_sandbox::pipedrive::SandboxKind;

    let (account, ids) = crate::common::kit_deletes_the_first_of_two(&sb, &kit).await;

    let (_, body) = sb
        .admin_get(&format!(
            "/admin/pipedrive/companies/{}/persons",
            account.tenant
        ))
        .await;
    let gone = body["persons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_u64().map(|id| id.to_string()).as_ref() == Some(&ids[0]))
        .expect("a deleted person is kept");
    assert_eq!(gone["is_deleted"], json!(true));
    assert!(gone["delete_time"].is_string(), "{gone}");
}
