//! Archived contacts (issue 24): `archiveContact` / `unarchiveContact`,
//! `Contact.archived` and `archivedAt`, and the `contacts(archived:)` filter.

use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;

const ARCHIVE: &str = "mutation($id: ID!) { archiveContact(input: {id: $id}) { contact { id archived archivedAt updatedAt } } }";
const UNARCHIVE: &str = "mutation($id: ID!) { unarchiveContact(input: {id: $id}) { contact { id archived archivedAt } } }";

async fn contact(app: &TestApp, email: &str) -> Value {
    app.admin_ok(
        "mutation($e: String!) { upsertContact(input: {email: $e}) { contact { id archived archivedAt } } }",
        json!({ "e": email }),
    )
    .await["upsertContact"]["contact"]
        .clone()
}

async fn listed(app: &TestApp, archived: Option<bool>) -> Vec<String> {
    let data = app
        .admin_ok(
            "query($a: Boolean) { contacts(archived: $a) { totalCount nodes { email } } }",
            json!({ "a": archived }),
        )
        .await;
    let mut emails: Vec<String> = data["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(data["contacts"]["totalCount"], emails.len());
    emails.sort();
    emails
}

#[tokio::test]
async fn a_new_contact_is_not_archived() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    assert_eq!(c["archived"], false);
    assert_eq!(c["archivedAt"], Value::Null);
}

#[tokio::test]
async fn archive_sets_archived_and_its_time() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    let data = app.admin_ok(ARCHIVE, json!({ "id": c["id"] })).await;
    let archived = &data["archiveContact"]["contact"];
    assert_eq!(archived["id"], c["id"]);
    assert_eq!(archived["archived"], true);
    assert!(archived["archivedAt"].is_string(), "{data}");
}

#[tokio::test]
async fn archiving_an_archived_contact_keeps_its_first_time() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    let first = app.admin_ok(ARCHIVE, json!({ "id": c["id"] })).await;
    let second = app.admin_ok(ARCHIVE, json!({ "id": c["id"] })).await;
    let (first, second) = (
        &first["archiveContact"]["contact"],
        &second["archiveContact"]["contact"],
    );
    assert_eq!(second["archived"], true);
    assert_eq!(second["archivedAt"], first["archivedAt"]);
    assert_eq!(second["updatedAt"], first["updatedAt"], "nothing changed");
}

#[tokio::test]
async fn unarchive_clears_the_archive_time_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    app.admin_ok(ARCHIVE, json!({ "id": c["id"] })).await;
    for _ in 0..2 {
        let data = app.admin_ok(UNARCHIVE, json!({ "id": c["id"] })).await;
        let back = &data["unarchiveContact"]["contact"];
        assert_eq!(back["archived"], false);
        assert_eq!(back["archivedAt"], Value::Null);
    }
}

#[tokio::test]
async fn contacts_lists_the_unarchived_by_default_and_the_archived_on_request() {
    let app = TestApp::spawn().await;
    contact(&app, "kept@x.com").await;
    let gone = contact(&app, "gone@x.com").await;
    app.admin_ok(ARCHIVE, json!({ "id": gone["id"] })).await;

    assert_eq!(listed(&app, None).await, ["kept@x.com"]);
    assert_eq!(listed(&app, Some(false)).await, ["kept@x.com"]);
    assert_eq!(listed(&app, Some(true)).await, ["gone@x.com"]);

    app.admin_ok(UNARCHIVE, json!({ "id": gone["id"] })).await;
    assert_eq!(listed(&app, None).await, ["gone@x.com", "kept@x.com"]);
    assert!(listed(&app, Some(true)).await.is_empty());
}

#[tokio::test]
async fn an_archived_contact_is_still_found_by_id_and_email() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    app.admin_ok(ARCHIVE, json!({ "id": c["id"] })).await;
    let data = app
        .admin_ok(
            "query($id: ID!) { byId: contact(id: $id) { archived } byEmail: contact(email: \"a@x.com\") { archived } }",
            json!({ "id": c["id"] }),
        )
        .await;
    assert_eq!(data["byId"]["archived"], true);
    assert_eq!(data["byEmail"]["archived"], true);
}

#[tokio::test]
async fn an_unknown_id_is_not_found() {
    let app = TestApp::spawn().await;
    for query in [ARCHIVE, UNARCHIVE] {
        let body = app
            .gql(
                &app.token(Role::Admin),
                query,
                json!({ "id": "01NOSUCHCONTACT" }),
            )
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
    }
}

#[tokio::test]
async fn another_tenants_contact_is_not_found_and_stays_as_it_was() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    let other = app.other_tenant_admin().await;
    let body = app.gql(&other, ARCHIVE, json!({ "id": c["id"] })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(listed(&app, None).await, ["a@x.com"]);
    // Nor does the other tenant list it, archived or not.
    for archived in [false, true] {
        let body = app
            .gql(
                &other,
                "query($a: Boolean) { contacts(archived: $a) { totalCount } }",
                json!({ "a": archived }),
            )
            .await;
        assert_eq!(body["data"]["contacts"]["totalCount"], 0, "{body}");
    }
}

#[tokio::test]
async fn a_viewer_may_not_archive_or_unarchive() {
    let app = TestApp::spawn().await;
    let c = contact(&app, "a@x.com").await;
    for query in [ARCHIVE, UNARCHIVE] {
        let body = app
            .gql(&app.token(Role::Viewer), query, json!({ "id": c["id"] }))
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
    assert_eq!(listed(&app, None).await, ["a@x.com"]);
}
