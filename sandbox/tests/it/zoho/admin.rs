//! The Zoho admin API and seeding.

use serde_json::{Value, json};

use super::{Zoho, token_request};
use crate::common::TestSandbox;

#[tokio::test]
async fn the_default_org_is_seeded_from_the_configured_people() {
    let z = Zoho::start_with(50).await;
    let leads = z.stored("Leads").await;
    let contacts = z.stored("Contacts").await;
    let n_leads = leads["count"].as_u64().unwrap();
    let n_contacts = contacts["count"].as_u64().unwrap();
    let converted = leads["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["$converted"] == true)
        .count() as u64;
    // Every person is a lead or a straight contact; each converted lead has its contact.
    assert_eq!(n_leads + n_contacts - converted, 50);
    let flags: Vec<&Value> = leads["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["sync_to_plezi"])
        .collect();
    assert!(flags.iter().any(|f| **f == "yes"));
    assert!(
        flags
            .iter()
            .all(|f| **f == "yes" || **f == "no" || f.is_null())
    );
}

#[tokio::test]
async fn seeded_times_lie_in_the_past() {
    let z = Zoho::start().await;
    let (_, body) = z.get("/Leads?fields=Created_Time,Modified_Time").await;
    let now = chrono::Utc::now().timestamp();
    for r in body["data"].as_array().unwrap() {
        let c = chrono::DateTime::parse_from_rfc3339(r["Created_Time"].as_str().unwrap())
            .unwrap()
            .timestamp();
        let m = chrono::DateTime::parse_from_rfc3339(r["Modified_Time"].as_str().unwrap())
            .unwrap()
            .timestamp();
        assert!(c <= m && m <= now + 5);
    }
}

#[tokio::test]
async fn creating_an_org_returns_its_credentials_and_it_works() {
    let sb = TestSandbox::start().await;
    let (status, org) = sb
        .admin_post(
            "/admin/zoho/orgs",
            json!({
                "name": "Acme", "time_zone": "+01:00", "concurrency": 5,
                "custom_fields": [
                    { "api_name": "Tier", "data_type": "picklist", "pick_list_values": [{ "display_value": "Gold tier", "actual_value": "Gold" }] },
                    { "api_name": "Tags", "data_type": "multiselectpicklist", "pick_list_values": [{ "actual_value": "a" }, { "actual_value": "b" }], "modules": ["Leads"] }
                ],
                "seed": { "people": 10, "seed": 7 }
            }),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    assert_ne!(org["org_id"], json!(sb.desc().zoho.org_id));
    assert_eq!(org["limits"]["concurrency"], 5);
    let (_, t) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", org["client_id"].as_str().unwrap()),
            ("client_secret", org["client_secret"].as_str().unwrap()),
            ("code", org["grant_code"].as_str().unwrap()),
        ],
    )
    .await;
    let token = t["access_token"].as_str().unwrap();
    let api = format!("{}/crm/v8", org["api_domain"].as_str().unwrap());
    let auth = format!("Zoho-oauthtoken {token}");
    let fields: Value = sb
        .http
        .get(format!("{api}/settings/fields?module=Leads"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["api_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Tier") && names.contains(&"Tags") && !names.contains(&"sync_to_plezi")
    );
    let resp = sb
        .http
        .post(format!("{api}/Leads"))
        .header("Authorization", &auth)
        .json(&json!({ "data": [{ "Last_Name": "T", "Tier": "Gold", "Tags": ["a", "b"] }, { "Last_Name": "U", "Tags": ["c"] }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 207);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"][1]["details"]["api_name"], "Tags");
    let got: Value = sb
        .http
        .get(format!("{api}/Leads?fields=Created_Time"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        got["data"][0]["Created_Time"]
            .as_str()
            .unwrap()
            .ends_with("+01:00")
    );
    let (_, listed) = sb.admin_get("/admin/zoho/orgs").await;
    assert_eq!(listed["orgs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bad_org_setting_is_refused_naming_the_field() {
    let sb = TestSandbox::start().await;
    let (s, b) = sb
        .admin_post("/admin/zoho/orgs", json!({ "time_zone": "CET" }))
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().starts_with("time_zone"));
    let (s, b) = sb
        .admin_post(
            "/admin/zoho/orgs",
            json!({ "custom_fields": [{ "api_name": "x", "data_type": "blob" }] }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("data_type"), "{b}");
    let (s, _) = sb
        .admin_post("/admin/zoho/orgs", json!({ "colour": "blue" }))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn an_unknown_org_is_404() {
    let sb = TestSandbox::start().await;
    let (s, b) = sb.admin_get("/admin/zoho/orgs/nope").await;
    assert_eq!(s, 404);
    assert!(b["error"].as_str().unwrap().starts_with("org"));
}

#[tokio::test]
async fn get_org_shows_limits_counts_and_clients() {
    let z = Zoho::start().await;
    let (s, org) =
        z.sb.admin_get(&format!("/admin/zoho/orgs/{}", z.org()))
            .await;
    assert_eq!(s, 200);
    assert_eq!(org["limits"]["concurrency"], 10);
    assert_eq!(org["limits"]["daily_credits"], 5_000_000);
    assert_eq!(org["limits"]["grant_code_ttl_secs"], 180);
    assert_eq!(org["clients"][0], json!(z.sb.desc().zoho.client_id));
    assert!(org["counts"]["leads"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_new_client_gets_its_own_grant_codes() {
    let z = Zoho::start().await;
    let (s, client) =
        z.sb.admin_post(&format!("/admin/zoho/orgs/{}/clients", z.org()), json!({}))
            .await;
    assert_eq!(s, 201);
    let cid = client["client_id"].as_str().unwrap();
    let (s, minted) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/grant-codes", z.org()),
            json!({ "client_id": cid }),
        )
        .await;
    assert_eq!(s, 201);
    let (_, t) = token_request(
        &z.sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", cid),
            ("client_secret", client["client_secret"].as_str().unwrap()),
            ("code", minted["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert!(t["access_token"].is_string());
    // A code minted for one client does not work for another.
    let d = z.sb.desc().zoho.clone();
    let (_, minted) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/grant-codes", z.org()),
            json!({ "client_id": cid }),
        )
        .await;
    let (_, t) = token_request(
        &z.sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("code", minted["code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(t, json!({ "error": "invalid_code" }));
}

#[tokio::test]
async fn seeding_adds_people_in_bulk() {
    let z = Zoho::start_with(0).await;
    let (s, b) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/seed", z.org()),
            json!({ "people": 30, "seed": 3, "converted": 0.5 }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["leads"].as_u64().unwrap() + b["contacts"].as_u64().unwrap()
            - b["converted"].as_u64().unwrap(),
        30
    );
    assert!(b["converted"].as_u64().unwrap() > 0);
    let (s, b) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/seed", z.org()),
            json!({ "converted": 2.0 }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().starts_with("converted"));
}

#[tokio::test]
async fn explicit_records_are_stored_as_given_with_their_times() {
    let z = Zoho::start_with(0).await;
    let (s, b) = z
        .sb
        .admin_post(
            &format!("/admin/zoho/orgs/{}/records/Leads", z.org()),
            json!({ "records": [
                { "Last_Name": "Old", "Industry": "Aerospace & Defence", "Created_Time": "2020-01-01T00:00:00+00:00", "Modified_Time": "2021-01-01T00:00:00+00:00" },
                { "Last_Name": "Conv", "$converted": true, "id": "6899999999999999999" }
            ] }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["ids"][1], "6899999999999999999");
    let (_, got) = z
        .get(&format!(
            "/Leads/{}?fields=Industry,Modified_Time,Created_Time",
            b["ids"][0].as_str().unwrap()
        ))
        .await;
    assert_eq!(got["data"][0]["Industry"], "Aerospace & Defence");
    assert_eq!(got["data"][0]["Modified_Time"], "2021-01-01T00:00:00+00:00");
    let (_, conv) = z.get("/Leads?fields=Last_Name&converted=true").await;
    assert_eq!(conv["data"][0]["id"], "6899999999999999999");
    let (s, b) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/records/Leads", z.org()),
            json!({ "records": [{ "Nope": 1 }] }),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("Nope"));
}

#[tokio::test]
async fn limits_can_be_read_and_changed_with_named_errors() {
    let z = Zoho::start().await;
    let path = format!("/admin/zoho/orgs/{}/limits", z.org());
    let (s, b) = z
        .admin_patch(
            &path,
            json!({ "daily_credits": 100, "access_token_ttl_secs": 60 }),
        )
        .await;
    assert_eq!(
        (
            s,
            b["daily_credits"].clone(),
            b["access_token_ttl_secs"].clone()
        ),
        (200, json!(100), json!(60))
    );
    let (s, b) = z.admin_patch(&path, json!({ "concurrency": 0 })).await;
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().starts_with("concurrency"));
    let (_, got) = z.sb.admin_get(&path).await;
    assert_eq!(got["daily_credits"], 100);
    assert_eq!(z.usage().await["daily_credits"], 100);
}

#[tokio::test]
async fn a_shorter_access_token_ttl_applies_to_new_tokens() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "access_token_ttl_secs": 60, "grant_code_ttl_secs": 600 }))
        .await;
    let token = z.token_with_scope("ZohoCRM.modules.all").await;
    z.advance(61.0).await;
    let req =
        z.sb.http
            .get(z.api("/Leads?fields=Last_Name"))
            .header("Authorization", format!("Zoho-oauthtoken {token}"));
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn request_counts_are_labelled_with_the_org() {
    let z = Zoho::start().await;
    z.get("/users").await;
    let (_, counts) =
        z.sb.admin_get(&format!("/admin/requests?system=zoho&tenant={}", z.org()))
            .await;
    let endpoints: Vec<&str> = counts["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap())
        .collect();
    assert!(
        endpoints.iter().any(|e| e.ends_with("/crm/v8/users")),
        "{endpoints:?}"
    );
    assert!(
        endpoints.iter().any(|e| e.ends_with("/oauth/v2/token")),
        "{endpoints:?}"
    );
}

#[tokio::test]
async fn the_kit_deletes_a_lead_to_the_recycle_bin() {
    let sb = TestSandbox::start_with(0).await;
    let kit = crmsync_sandbox::zoho::SandboxKind;

    let (account, ids) = crate::common::kit_deletes_the_first_of_two(&sb, &kit).await;

    let (_, leads) = sb
        .admin_get(&format!(
            "/admin/zoho/orgs/{}/records/Leads",
            account.tenant
        ))
        .await;
    let bin = leads["deleted"].as_array().unwrap();
    assert_eq!(bin.len(), 1, "{bin:?}");
    assert_eq!(bin[0]["id"], ids[0].as_str());
    assert!(bin[0]["deleted_time"].is_string());
}
