//! The HubSpot admin API and the seeded default portal.

use serde_json::json;

use super::Hs;
use crate::common::TestSandbox;

#[tokio::test]
async fn the_default_portal_is_seeded_with_hubspots_awkward_cases() {
    let sb = TestSandbox::start_with(200).await;
    let hs = Hs::default_portal(&sb);
    let (status, body) = sb.admin_get(&hs.admin("/contacts")).await;
    assert_eq!(status, 200);
    let contacts = body["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 200);
    let without_email = contacts
        .iter()
        .filter(|c| c["properties"]["email"].is_null())
        .count();
    assert!(without_email > 0);
    assert!(
        contacts
            .iter()
            .any(|c| c["properties"]["hs_additional_emails"].is_string())
    );
    assert!(
        contacts
            .iter()
            .any(|c| c["properties"]["plezi_url"].is_string())
    );
    let sectors = crmsync_sandbox::seed::INDUSTRIES;
    assert!(contacts.iter().any(|c| {
        c["properties"]["sector"]
            .as_str()
            .is_some_and(|s| !sectors.contains(&s))
    }));
    let mut emails: Vec<String> = contacts
        .iter()
        .filter_map(|c| c["properties"]["email"].as_str())
        .map(str::to_lowercase)
        .collect();
    let n = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), n, "seeded e-mails are unique");
    let owners = hs.get("/crm/v3/owners").await;
    assert!(owners.body["results"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn portals_are_created_listed_and_given_tokens() {
    let sb = TestSandbox::start().await;
    let (status, body) = sb
        .admin_post(
            "/admin/hubspot/portals",
            json!({ "portal_id": 777, "owners": [{ "email": "a@b.example", "first_name": "A" }] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["portal_id"], 777);
    let (status, _) = sb
        .admin_post("/admin/hubspot/portals", json!({ "portal_id": 777 }))
        .await;
    assert_eq!(status, 409);
    let (status, body) = sb
        .admin_post(
            "/admin/hubspot/portals",
            json!({ "limits": { "ten_secondly": 0 } }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("limits.ten_secondly")
    );
    let (status, body) = sb.admin_get("/admin/hubspot/portals").await;
    assert_eq!(status, 200);
    assert_eq!(body["portals"].as_array().unwrap().len(), 2);

    let hs = Hs {
        sb: &sb,
        base_url: sb.desc().hubspot.base_url.clone(),
        token: String::new(),
        portal: "777".into(),
    };
    let (status, token) = sb.admin_post(&hs.admin("/tokens"), json!({})).await;
    assert_eq!(status, 201);
    let hs = hs.with_token(token["token"].as_str().unwrap());
    let r = hs.get("/crm/v3/owners").await;
    assert_eq!(r.body["results"][0]["email"], "a@b.example");
    let (status, token) = sb
        .admin_post(
            &hs.admin("/tokens"),
            json!({ "kind": "oauth", "expires_in": 60 }),
        )
        .await;
    assert_eq!(status, 201);
    let oauth = hs.with_token(token["token"].as_str().unwrap());
    let r = oauth.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hubspot-ratelimit-max"), "110");
    assert!(r.headers.get("x-hubspot-ratelimit-daily").is_none());
    let (status, _) = sb.admin_get("/admin/hubspot/portals/12345").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stored_contacts_are_put_as_given_and_read_back() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let (status, body) = sb
        .admin_post(
            &hs.admin("/contacts"),
            json!({ "contacts": [
                { "properties": { "email": "S@Example.com", "sector": "Not an option" }, "updated_at": "2026-02-02T00:00:00Z" },
                { "id": "5000", "properties": { "firstname": "NoMail" } },
            ] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["contacts"][1]["id"], "5000");
    let r = hs
        .get(&format!(
            "/crm/v3/objects/contacts/{}?properties=sector,email,lastmodifieddate",
            body["contacts"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.body["properties"]["sector"], "Not an option");
    assert_eq!(r.body["properties"]["email"], "s@example.com");
    assert_eq!(
        r.body["properties"]["lastmodifieddate"],
        "2026-02-02T00:00:00.000Z"
    );
    let (status, body) = sb
        .admin_post(
            &hs.admin("/contacts"),
            json!({ "contacts": [{ "properties": { "email": "s@EXAMPLE.com" } }] }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn the_conformance_kit_provisions_a_portal_with_picklists() {
    use crmsync_sandbox::hubspot::SandboxKind;
    use crmsync_sandbox::kit::{Person, Picklist, SandboxCrm};

    let sb = TestSandbox::start().await;
    let state = sb.sandbox.state();
    let kind = SandboxKind;
    let account = kind
        .provision(
            state,
            &[Picklist {
                name: "Tier".into(),
                options: vec!["Gold".into(), "Silver".into()],
            }],
        )
        .await
        .unwrap();
    assert_eq!(account.base_url, sb.desc().hubspot.base_url);
    let token = account.connect_form["accessToken"].clone();
    let ids = kind
        .put_people(
            state,
            &account,
            &[Person {
                first_name: Some("Zoë".into()),
                last_name: "Kit".into(),
                email: Some("zoe@kit.example".into()),
                picklists: [("Tier".to_owned(), "Gold".to_owned())].into(),
                ..Person::default()
            }],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let hs = Hs {
        sb: &sb,
        base_url: account.base_url.clone(),
        token,
        portal: account.tenant.clone(),
    };
    let r = hs
        .get(&format!(
            "/crm/v3/objects/contacts/{}?properties=tier",
            ids[0]
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["tier"], "Gold");
    let r = hs
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({ "inputs": [{ "idProperty": "email", "id": "new@kit.example", "properties": { "lastname": "New" } }] }),
        )
        .await;
    assert_eq!(r.status, 200);
    let stored = kind.stored(state, &account).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().any(|s| s.last_name.as_deref() == Some("New")));
    assert_eq!(account.calls_to(state, &kind.write_endpoints()[..1]), 1);
    assert!(kind.daily_used(state, &account).await.unwrap() >= 2);
    kind.set_daily_budget(state, &account, 0).await.unwrap();
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 429);
    kind.revoke_credentials(state, &account).unwrap();
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 401);
}

#[tokio::test]
async fn the_kit_deletes_a_contact_to_the_archive() {
    let sb = TestSandbox::start_with(0).await;
    let kit = crmsync_sandbox::hubspot::SandboxKind;

    let (account, ids) = crate::common::kit_deletes_the_first_of_two(&sb, &kit).await;

    let (_, body) = sb
        .admin_get(&format!(
            "/admin/hubspot/portals/{}/contacts",
            account.tenant
        ))
        .await;
    let gone = body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ids[0].as_str())
        .expect("an archived contact is kept");
    assert_eq!(gone["archived"], json!(true));
    assert!(gone["archivedAt"].is_string(), "{gone}");
}
