//! Bad input gets a clear error naming what is wrong, never INTERNAL (issue 20).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;

const UPSERT: &str = "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id firstName customFields } } }";

const CONTACTS_AFTER: &str =
    "query($after: String) { contacts(first: 2, after: $after) { edges { node { email } } } }";

/// The first error's message.
fn message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

/// Asserts a VALIDATION error at `expected_field` whose message holds `hint`.
fn assert_validation(body: &Value, expected_field: &str, hint: &str) {
    assert_eq!(code(body), "VALIDATION", "{body}");
    assert_eq!(field(body), expected_field, "{body}");
    assert!(message(body).contains(hint), "{hint:?} not in {body}");
    assert!(body["data"].is_null(), "{body}");
}

async fn upsert(app: &TestApp, input: Value) -> Value {
    app.gql(&app.token(Role::Admin), UPSERT, json!({ "input": input }))
        .await
}

async fn contacts_count(app: &TestApp) -> i64 {
    app.admin_ok("{ contacts { totalCount } }", json!({})).await["contacts"]["totalCount"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_first_beyond_32_bits_is_a_validation_error_naming_it_and_the_range() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            "{ contacts(first: 2147483648) { totalCount } }",
            json!({}),
        )
        .await;
    assert_validation(&body, "first", "2147483647");
}

#[tokio::test]
async fn a_behaviour_score_beyond_32_bits_is_a_validation_error_naming_it() {
    let app = TestApp::spawn().await;
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "behaviourScore": 2_147_483_648_i64 }),
    )
    .await;
    assert_validation(&body, "input.behaviourScore", "2147483647");
    assert_eq!(contacts_count(&app).await, 0);
}

#[tokio::test]
async fn an_int_setting_beyond_32_bits_in_a_literal_is_a_validation_error_naming_it() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            "mutation { createConnector(input: {kind: PIPEDRIVE, name: \"x\", settings: {maxConcurrentCalls: -2147483649}}) { connector { id } } }",
            json!({}),
        )
        .await;
    assert_validation(&body, "input.settings.maxConcurrentCalls", "-2147483648");
}

#[tokio::test]
async fn a_search_term_over_200_characters_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            "query($s: String) { contacts(search: $s) { totalCount } }",
            json!({ "s": "a".repeat(100_000) }),
        )
        .await;
    assert_validation(&body, "search", "200");
}

#[tokio::test]
async fn search_matches_wildcards_and_the_escape_character_literally() {
    let app = TestApp::spawn().await;
    for (email, last) in [
        ("plain@example.com", "Plain"),
        ("under_score@example.com", "Under"),
        ("percent@example.com", "Fifty%"),
        ("slash@example.com", "Back\\slash"),
    ] {
        app.admin_ok(
            UPSERT,
            json!({ "input": { "email": email, "lastName": last } }),
        )
        .await;
    }
    let q = "query($s: String) { contacts(search: $s) { edges { node { email } } } }";
    for (term, expected) in [
        ("%_", vec![]),
        ("_", vec!["under_score@example.com"]),
        ("%", vec!["percent@example.com"]),
        ("\\", vec!["slash@example.com"]),
        ("k\\s", vec!["slash@example.com"]),
    ] {
        let data = app.admin_ok(q, json!({ "s": term })).await;
        let found: Vec<&str> = data["contacts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["email"].as_str().unwrap())
            .collect();
        assert_eq!(found, expected, "search {term:?}");
    }
}

#[tokio::test]
async fn control_characters_in_a_contact_name_are_refused() {
    let app = TestApp::spawn().await;
    for bad in [
        "Jean\u{0}",
        "Jean\u{1b}[31m",
        "Jean\u{7}",
        "Jean\u{7f}",
        "Jean\nDupont",
    ] {
        let body = upsert(&app, json!({ "email": "a@example.com", "firstName": bad })).await;
        assert_validation(&body, "input.firstName", "control characters");
    }
    assert_eq!(contacts_count(&app).await, 0);
}

#[tokio::test]
async fn control_characters_in_a_literal_tenant_name_are_refused() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.operator(),
            "mutation { createTenant(input: {name: \"Evil\\u0000Corp\", slug: \"evil\"}) { tenant { id } } }",
            json!({}),
        )
        .await;
    assert_validation(&body, "input.name", "U+0000");
}

#[tokio::test]
async fn a_custom_field_value_may_span_lines_but_holds_no_other_control_character() {
    let app = TestApp::spawn().await;
    let ok = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": { "note": "line 1\n\tline 2" } }),
    )
    .await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": { "note": "nul\u{0}" } }),
    )
    .await;
    assert_validation(&body, "input.customFields.note", "control characters");
}

#[tokio::test]
async fn custom_fields_are_capped_at_100_keys() {
    let app = TestApp::spawn().await;
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": many }),
    )
    .await;
    assert_validation(&body, "input.customFields", "100");
}

#[tokio::test]
async fn a_custom_field_value_over_2_kib_is_refused_naming_its_key() {
    let app = TestApp::spawn().await;
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": { "bio": "x".repeat(3000) } }),
    )
    .await;
    assert_validation(&body, "input.customFields.bio", "2048");
}

#[tokio::test]
async fn custom_fields_over_32_kib_in_all_are_refused() {
    let app = TestApp::spawn().await;
    let big: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("k{i}"), json!("x".repeat(2000))))
        .collect();
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": big }),
    )
    .await;
    assert_validation(&body, "input.customFields", "32768");
}

#[tokio::test]
async fn a_custom_field_key_over_64_characters_is_refused() {
    let app = TestApp::spawn().await;
    let body = upsert(
        &app,
        json!({ "email": "a@example.com", "customFields": { "k".repeat(65): 1 } }),
    )
    .await;
    assert_validation(&body, "input.customFields", "64");
}

#[tokio::test]
async fn a_forged_cursor_is_refused() {
    let app = TestApp::spawn().await;
    for text in [
        "c1:anything",
        "c1:01JAAAAAAAAAAAAAAAAAAAAAAA",
        "c2:contacts:not-a-ulid",
        "c2:contacts:' OR 1=1 --",
    ] {
        let cursor = URL_SAFE_NO_PAD.encode(text);
        let body = app
            .gql(
                &app.token(Role::Admin),
                CONTACTS_AFTER,
                json!({ "after": cursor }),
            )
            .await;
        assert_validation(&body, "after", "cursor");
    }
}

#[tokio::test]
async fn a_cursor_of_another_list_is_refused() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    insert_run(&app.database.db, &app.tenant_id, &connector).await;
    let runs = app
        .admin_ok("{ syncRuns { edges { cursor } } }", json!({}))
        .await;
    let cursor = runs["syncRuns"]["edges"][0]["cursor"].clone();
    let body = app
        .gql(
            &app.token(Role::Admin),
            CONTACTS_AFTER,
            json!({ "after": cursor }),
        )
        .await;
    assert_validation(&body, "after", "cursor");
}

#[tokio::test]
async fn an_email_with_edge_dots_or_edge_hyphens_is_refused() {
    let app = TestApp::spawn().await;
    for bad in [".a@c.com", "a.@c.com", "a..b@c.com", "a@-c.com", "a@c-.com"] {
        let body = upsert(&app, json!({ "email": bad })).await;
        assert_validation(&body, "input.email", "e-mail");
    }
    assert_eq!(contacts_count(&app).await, 0);
}

#[tokio::test]
async fn a_body_without_a_query_says_what_the_body_must_be() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app
        .post(
            Some(&app.token(Role::Admin)),
            json!({ "q": "{ viewer { role } }" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "BAD_REQUEST", "{body}");
    assert!(
        message(&body).contains("JSON object with a `query` string"),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_nested_too_deeply_says_so() {
    let app = TestApp::spawn().await;
    let nested = format!(
        "{{\"query\": \"{{ viewer {{ role }} }}\", \"variables\": {{\"x\": {}1{}}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let resp = app
        .client
        .post(&app.url)
        .bearer_auth(app.token(Role::Admin))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(message(&body).contains("nested too deeply"), "{body}");
}

#[tokio::test]
async fn a_syntax_error_is_described_in_one_line() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(&app.token(Role::Admin), "{ viewer { role }", json!({}))
        .await;
    let text = message(&body);
    assert!(
        text.starts_with("the query is not valid GraphQL at line 1"),
        "{body}"
    );
    assert!(!text.contains('\n'), "{body}");
}

#[tokio::test]
async fn an_enum_written_as_a_string_is_refused_listing_the_values() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            &format!(
                "mutation {{ startSync(input: {{connectorId: \"{connector}\", mode: \"FULL\"}}) {{ run {{ id }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert_validation(&body, "input.mode", "INCREMENTAL, FULL, DRY_RUN");
    let runs = app.admin_ok("{ syncRuns { totalCount } }", json!({})).await;
    assert_eq!(runs["syncRuns"]["totalCount"], 0, "no run was started");
}

#[tokio::test]
async fn an_enum_in_a_list_literal_written_as_a_string_is_refused() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            &app.token(Role::Admin),
            "{ syncRuns(status: [FAILED, \"RUNNING\"]) { totalCount } }",
            json!({}),
        )
        .await;
    assert_validation(&body, "status[1]", "RUNNING");
}

#[tokio::test]
async fn an_enum_given_in_variables_as_a_string_is_accepted() {
    let app = TestApp::spawn().await;
    let data = app
        .admin_ok(
            "query($s: [SyncRunStatus!]) { syncRuns(status: $s) { totalCount } }",
            json!({ "s": ["RUNNING"] }),
        )
        .await;
    assert_eq!(data["syncRuns"]["totalCount"], 0);
}

#[tokio::test]
async fn a_nullable_variable_left_unset_leaves_its_field_to_its_default() {
    let sandbox = sandbox().await;
    let app = TestApp::spawn().await;
    let id = app.pipedrive_connector(&sandbox).await;

    let started = app
        .admin_ok(
            "mutation($id: ID!, $mode: SyncMode) { startSync(input: {connectorId: $id, mode: $mode}) { run { mode } } }",
            json!({ "id": id }),
        )
        .await;
    let listed = app
        .admin_ok(
            "query($first: Int) { contacts(first: $first) { totalCount } }",
            json!({}),
        )
        .await;

    assert_eq!(
        started["startSync"]["run"]["mode"], "INCREMENTAL",
        "{started}"
    );
    assert_eq!(listed["contacts"]["totalCount"], 0, "{listed}");
}
