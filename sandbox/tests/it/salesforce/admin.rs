//! The admin API under `/admin/salesforce`, the description, the seed and the kit.

use crmsync_sandbox::kit::{Person, Picklist, SandboxCrm};
use crmsync_sandbox::salesforce::SandboxKind;
use serde_json::{Value, json};

use super::{Sf, V};
use crate::common::TestSandbox;

#[tokio::test]
async fn the_description_names_the_default_org_and_get_admin_serves_it() {
    let sb = TestSandbox::start().await;
    let d = &sb.desc().salesforce;
    assert_eq!(d.login_url, sb.sandbox.base_url());
    assert_eq!(d.instance_url, sb.sandbox.base_url());
    assert_eq!(d.api_version, "v62.0");
    assert!(d.org_id.starts_with("00D") && d.org_id.len() == 18);
    assert!(d.username.contains('@'));
    let (_, admin) = sb.admin_get("/admin").await;
    assert_eq!(
        admin["description"]["salesforce"]["org_id"],
        d.org_id.as_str()
    );
    let (status, org) = sb
        .admin_get(&format!("/admin/salesforce/orgs/{}", d.org_id))
        .await;
    assert_eq!(status, 200);
    assert_eq!(org["client_id"], d.client_id.as_str());
    assert_eq!(sb.admin_get("/admin/salesforce/orgs/00Dnope").await.0, 404);
}

#[tokio::test]
async fn the_default_org_is_seeded_as_the_issue_asks() {
    let sb = TestSandbox::start_with(250).await;
    let sf = Sf::default_org(&sb).await;
    let (_, body) = sb.admin_get(&sf.admin("/records/Lead")).await;
    let leads = body["records"].as_array().unwrap();
    assert_eq!(leads.len(), 250);
    assert!(
        leads
            .iter()
            .any(|l| l["IsConverted"] == true && l["ConvertedContactId"].is_string())
    );
    assert!(leads.iter().any(|l| l["Email"].is_null()));
    let mut emails: Vec<String> = leads
        .iter()
        .filter_map(|l| l["Email"].as_str())
        .map(str::to_lowercase)
        .collect();
    let all = emails.len();
    emails.sort();
    emails.dedup();
    assert!(emails.len() < all, "an e-mail duplicate");
    assert!(
        leads
            .iter()
            .any(|l| l["Plezi_URL__c"].is_string() && l["Sync_To_Plezi__c"] == true)
    );
    assert!(leads.iter().any(|l| l["LeadSource"] == "Web"));
    let users = sf.query("SELECT Email FROM User").await;
    assert!(
        users.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["Email"].as_str().unwrap().contains('@'))
    );
    let (_, contacts) = sb.admin_get(&sf.admin("/records/Contact")).await;
    assert!(!contacts["records"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn raw_records_keep_their_times_and_deleted_ones_are_listed() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let ids = sf
        .put_raw(
            "Lead",
            json!([
                { "LastName": "Old", "CreatedDate": "2026-01-01T00:00:00Z", "LastModifiedDate": "2026-02-01T00:00:00.000+0000" },
                { "LastName": "Gone", "Company": "A", "IsDeleted": true },
            ]),
        )
        .await;
    let (_, body) = sb.admin_get(&sf.admin("/records/Lead")).await;
    let old = &body["records"][0];
    assert_eq!(old["Id"], ids[0].as_str());
    assert_eq!(old["CreatedDate"], "2026-01-01T00:00:00.000+0000");
    assert_eq!(old["SystemModstamp"], "2026-02-01T00:00:00.000+0000");
    assert!(old["Company"].is_null());
    assert_eq!(body["records"][1]["IsDeleted"], true);
    let (status, body) = sb
        .admin_post(
            &sf.admin("/records/Lead"),
            json!({ "records": [{ "Nope": 1 }] }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("records[0].Nope"),
        "{body}"
    );
}

#[tokio::test]
async fn users_and_custom_fields_are_added_through_the_admin_api() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (status, user) = sb
        .admin_post(
            &sf.admin("/users"),
            json!({ "email": "rep@example.com", "first_name": "Rep", "last_name": "One" }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["Username"], "rep@example.com");
    assert_eq!(user["Name"], "Rep One");
    let (status, _) = sb
        .admin_post(
            &sf.admin("/users"),
            json!({ "email": "rep@example.com", "last_name": "Two" }),
        )
        .await;
    assert_eq!(status, 400);
    let field = json!({ "name": "Segment__c", "type": "picklist", "picklist_values": ["A", "B"] });
    let (status, body) = sb
        .admin_post(&sf.admin("/fields/Lead"), field.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(sb.admin_post(&sf.admin("/fields/Lead"), field).await.0, 409);
    let (status, _) = sb
        .admin_post(
            &sf.admin("/fields/Lead"),
            json!({ "name": "NoSuffix", "type": "string" }),
        )
        .await;
    assert_eq!(status, 400);
    let id = sf
        .lead(json!({ "LastName": "X", "Company": "Y", "Segment__c": "B", "OwnerId": user["Id"] }))
        .await;
    let r = sf
        .query(&format!(
            "SELECT Segment__c, OwnerId FROM Lead WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(r.body["records"][0]["Segment__c"], "B");
    assert_eq!(r.body["records"][0]["OwnerId"], user["Id"]);
}

#[tokio::test]
async fn settings_read_back_and_refuse_unknown_values() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let (_, settings) = sb.admin_get(&sf.admin("/settings")).await;
    assert_eq!(
        settings,
        json!({ "duplicate_rule": "off", "session_timeout_secs": 7200, "batch_size": null })
    );
    let (status, _) = sf
        .admin_put("/settings", json!({ "duplicate_rule": "warn" }))
        .await;
    assert_eq!(status, 400);
    let (status, body) = sf
        .admin_put(
            "/settings",
            json!({ "batch_size": 500, "duplicate_rule": "block" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["batch_size"], 500);
    let (_, body) = sf
        .admin_put("/settings", json!({ "batch_size": null }))
        .await;
    assert_eq!(body["batch_size"], Value::Null);
    assert_eq!(body["duplicate_rule"], "block");
}

#[tokio::test]
async fn the_kit_provisions_stores_reads_budgets_and_revokes() {
    let sb = TestSandbox::start().await;
    let state = sb.sandbox.state();
    let kit = SandboxKind;
    let picklists = [Picklist {
        name: "Plezi Segment".into(),
        options: vec!["Gold".into()],
    }];
    let account = kit.provision(state, &picklists).await.unwrap();
    assert_eq!(account.base_url, sb.sandbox.base_url());
    assert!(account.connect_form.contains_key("refreshToken"));
    let person = Person {
        last_name: "Faure".into(),
        email: Some("f@example.com".into()),
        picklists: [("Plezi Segment".to_owned(), "Gold".to_owned())].into(),
        ..Person::default()
    };
    let ids = kit.put_people(state, &account, &[person]).await.unwrap();
    let stored = kit.stored(state, &account).await.unwrap();
    assert_eq!(stored[0].id, ids[0]);
    assert_eq!(stored[0].email.as_deref(), Some("f@example.com"));
    let form = &account.connect_form;
    let sf = Sf::create_from(&sb, &account.tenant, form).await;
    let r = sf.query("SELECT Plezi_Segment__c FROM Lead").await;
    assert_eq!(r.body["records"][0]["Plezi_Segment__c"], "Gold");
    assert_eq!(kit.daily_used(state, &account).await.unwrap(), 1);
    kit.set_daily_budget(state, &account, 1).await.unwrap();
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 403);
    kit.revoke_credentials(state, &account).unwrap();
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 401);
}

#[tokio::test]
async fn orgs_are_listed_and_created_with_their_own_users_and_limits() {
    let sb = TestSandbox::start().await;
    let spec = json!({
        "daily_api_requests": 500,
        "users": [{ "email": "only@example.com", "last_name": "Only" }],
        "settings": { "duplicate_rule": "block" },
    });
    let sf = Sf::create(&sb, spec).await;
    assert_eq!(sf.username, "only@example.com");
    let (_, limits) = sb.admin_get(&sf.admin("/limits")).await;
    assert_eq!(limits["daily_api_requests"], 500);
    let (_, list) = sb.admin_get("/admin/salesforce/orgs").await;
    assert_eq!(list["orgs"].as_array().unwrap().len(), 2);
    let (status, body) = sb
        .admin_post("/admin/salesforce/orgs", json!({ "users": [] }))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = sb
        .admin_post("/admin/salesforce/orgs", json!({ "bogus": 1 }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_kit_deletes_a_lead_to_the_recycle_bin() {
    let sb = TestSandbox::start_with(0).await;

    let (account, ids) = crate::common::kit_deletes_the_first_of_two(&sb, &SandboxKind).await;

    let (_, body) = sb
        .admin_get(&format!(
            "/admin/salesforce/orgs/{}/records/Lead",
            account.tenant
        ))
        .await;
    let gone = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Id"] == ids[0].as_str())
        .expect("a deleted lead is kept");
    assert_eq!(gone["IsDeleted"], json!(true));
}
