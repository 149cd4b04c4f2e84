//! The organisation, the users by type, and paths that are not an API.

use serde_json::{Value, json};

use super::Zoho;

fn emails(body: &Value) -> Vec<&str> {
    body["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn current_user_is_the_user_of_the_token() {
    let z = Zoho::start_with(0).await;
    let admin = z.sb.desc().zoho.users[0].clone();

    let (s, body) = z.get("/users?type=CurrentUser").await;

    assert_eq!(s, 200, "{body}");
    assert_eq!(emails(&body), [admin["email"].as_str().unwrap()]);
    assert_eq!(body["users"][0]["id"], admin["id"]);
    assert_eq!(body["info"]["count"], 1);
}

#[tokio::test]
async fn every_documented_user_type_is_served() {
    let z = Zoho::start_with(0).await;
    let users = z.sb.desc().zoho.users.clone();
    let all: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    let active = &all[..3];
    for (kind, want) in [
        ("AllUsers", all.as_slice()),
        ("ActiveUsers", active),
        ("DeactiveUsers", &all[3..]),
        ("ConfirmedUsers", all.as_slice()),
        ("ActiveConfirmedUsers", active),
        ("AdminUsers", &all[..1]),
        ("ActiveConfirmedAdmins", &all[..1]),
    ] {
        let (s, body) = z.get(&format!("/users?type={kind}")).await;
        assert_eq!(s, 200, "{kind}: {body}");
        assert_eq!(emails(&body), want, "{kind}");
    }
    for kind in ["NotConfirmedUsers", "DeletedUsers"] {
        let (s, body) = z.get(&format!("/users?type={kind}")).await;
        assert_eq!((s, body), (204, Value::Null), "{kind}");
    }
    let (s, body) = z.get("/users?type=SomeUsers").await;
    assert_eq!((s, body["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn org_answers_the_organisation() {
    let z = Zoho::start_with(0).await;
    let token = z
        .token_with_scope("ZohoCRM.org.READ,ZohoCRM.modules.all")
        .await;
    let admin = z.sb.desc().zoho.users[0].clone();

    let (s, body) = z
        .send(
            z.sb.http
                .get(z.api("/org"))
                .header("Authorization", format!("Zoho-oauthtoken {token}")),
        )
        .await;

    assert_eq!(s, 200, "{body}");
    let orgs = body["org"].as_array().expect("org list");
    assert_eq!(orgs.len(), 1);
    let org = &orgs[0];
    assert_eq!(org["zgid"], json!(z.org()));
    assert_eq!(org["company_name"], "Sandbox Org");
    assert_eq!(org["primary_email"], admin["email"]);
    assert_eq!(org["primary_zuid"], admin["id"]);
    assert_eq!(org["domain_name"], json!(format!("org{}", z.org())));
    assert_eq!(org["time_zone"], "Etc/UTC");
    assert_eq!(
        (&org["currency"], &org["iso_code"], &org["country_code"]),
        (&json!("US Dollar"), &json!("USD"), &json!("US"))
    );
    assert_eq!(org["mc_status"], false);
    assert_eq!(org["type"], "production");
    assert_eq!(org["max_per_page"], 200);
    assert!(org["id"].as_str().is_some_and(|id| id.len() == 19), "{org}");
    assert_eq!(org["license_details"]["users_license_purchased"], 4);
}

#[tokio::test]
async fn org_needs_the_org_scope() {
    let z = Zoho::start_with(0).await;

    let (s, body) = z.get("/org").await;

    assert_eq!(
        (s, body["code"].clone()),
        (401, json!("OAUTH_SCOPE_MISMATCH"))
    );
}

#[tokio::test]
async fn paths_that_are_no_api_answer_invalid_url_pattern() {
    let z = Zoho::start_with(0).await;
    let documented = json!({
        "code": "INVALID_URL_PATTERN",
        "details": {},
        "message": "Please check if the URL trying to access is a correct one",
        "status": "error"
    });
    for path in [
        "/settings",
        "/settings/nothing",
        "/org/nothing",
        "/users/search",
        "/coql/deleted",
        "/Leads.json",
        "/Leads/1/nothing",
    ] {
        let (s, body) = z.get(path).await;
        assert_eq!((s, &body), (404, &documented), "GET {path}");
    }
}
