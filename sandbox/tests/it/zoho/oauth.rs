//! The accounts server and API authentication.

use serde_json::json;

use super::{Zoho, token_request};
use crate::common::{TestSandbox, split};

#[tokio::test]
async fn grant_code_exchange_returns_tokens_and_the_api_domain() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    let (status, body) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("code", &d.grant_code),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["access_token"].as_str().unwrap().starts_with("1000."));
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["api_domain"], json!(d.api_domain));
    assert_ne!(d.api_domain, d.accounts_url);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"],
        "ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ,ZohoCRM.notifications.ALL"
    );
}

#[tokio::test]
async fn token_parameters_are_accepted_in_the_query_string() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    let url = format!("{}/oauth/v2/token", d.accounts_url);
    let req = sb.http.post(url).query(&[
        ("grant_type", "authorization_code"),
        ("client_id", &d.client_id),
        ("client_secret", &d.client_secret),
        ("code", &d.grant_code),
    ]);
    let (status, body) = split(req.send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].is_string(), "{body}");
}

#[tokio::test]
async fn a_grant_code_works_once() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", &*d.client_id),
        ("client_secret", &*d.client_secret),
        ("code", &*d.grant_code),
    ];
    assert_eq!(token_request(&sb, &form).await.0, 200);
    let (status, body) = token_request(&sb, &form).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "error": "invalid_code" }));
}

#[tokio::test]
async fn a_grant_code_expires_after_three_minutes() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    sb.admin_post("/admin/clock", json!({ "advance_secs": 181 }))
        .await;
    let (status, body) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("code", &d.grant_code),
        ],
    )
    .await;
    assert_eq!((status, body), (200, json!({ "error": "invalid_code" })));
}

#[tokio::test]
async fn the_mint_url_gives_a_fresh_grant_code() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    let (status, minted) = split(sb.http.post(&d.mint_grant_code_url).send().await.unwrap()).await;
    assert!(status == 201 || status == 200);
    let code = minted["code"].as_str().unwrap();
    let (_, body) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("code", code),
        ],
    )
    .await;
    assert!(body["access_token"].is_string(), "{body}");
}

#[tokio::test]
async fn unknown_client_wrong_secret_and_bad_grant_type_are_refused() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().zoho.clone();
    let (s, b) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "1000.NOPE"),
            ("client_secret", "x"),
            ("code", &d.grant_code),
        ],
    )
    .await;
    assert_eq!((s, b), (200, json!({ "error": "invalid_client" })));
    let (s, b) = token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &d.client_id),
            ("client_secret", "wrong"),
            ("code", &d.grant_code),
        ],
    )
    .await;
    assert_eq!((s, b), (200, json!({ "error": "invalid_client_secret" })));
    let (s, b) = token_request(
        &sb,
        &[
            ("grant_type", "password"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
        ],
    )
    .await;
    assert_eq!((s, b), (200, json!({ "error": "unsupported_grant_type" })));
}

#[tokio::test]
async fn refresh_gives_a_new_access_token_without_a_refresh_token() {
    let z = Zoho::start().await;
    let d = z.sb.desc().zoho.clone();
    let (status, body) = token_request(
        &z.sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &z.refresh),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["access_token"].is_string());
    assert_ne!(body["access_token"], json!(z.token));
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["api_domain"], json!(d.api_domain));
}

#[tokio::test]
async fn an_unknown_refresh_token_is_invalid_code() {
    let z = Zoho::start().await;
    let d = z.sb.desc().zoho.clone();
    let (s, b) = token_request(
        &z.sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", "1000.nope"),
        ],
    )
    .await;
    assert_eq!((s, b), (200, json!({ "error": "invalid_code" })));
}

#[tokio::test]
async fn a_revoked_refresh_token_refreshes_nothing_and_takes_its_access_tokens_along() {
    let z = Zoho::start().await;
    let d = z.sb.desc().zoho.clone();
    let revoke = |token: &str| {
        z.sb.http
            .post(format!("{}/oauth/v2/token/revoke", d.accounts_url))
            .query(&[("token", token)])
    };

    let (status, body) = split(revoke(&z.refresh).send().await.unwrap()).await;

    assert_eq!((status, body), (200, json!({ "status": "success" })));
    let (s, b) = token_request(
        &z.sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &z.refresh),
        ],
    )
    .await;
    assert_eq!((s, b), (200, json!({ "error": "invalid_code" })));
    let (s, b) = z.get("/users").await;
    assert_eq!((s, b["code"].clone()), (401, json!("INVALID_TOKEN")));
    let (s, _) = split(revoke(&z.refresh).send().await.unwrap()).await;
    assert_eq!(s, 400, "a token revoked twice is unknown the second time");
}

#[tokio::test]
async fn the_eleventh_access_token_in_ten_minutes_is_denied_until_the_window_moves() {
    let z = Zoho::start().await;
    let d = z.sb.desc().zoho.clone();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &*d.client_id),
        ("client_secret", &*d.client_secret),
        ("refresh_token", &*z.refresh),
    ];
    // The grant's own token counts: nine refreshes make ten.
    for _ in 0..9 {
        let (s, b) = token_request(&z.sb, &form).await;
        assert!(s == 200 && b["access_token"].is_string(), "{b}");
    }
    let (status, body) = token_request(&z.sb, &form).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "error": "Access Denied",
            "error_description": "You have made too many requests continuously. Please try again after some time.",
            "status": "failure",
        })
    );
    z.advance(601.0).await;
    let (s, b) = token_request(&z.sb, &form).await;
    assert!(s == 200 && b["access_token"].is_string(), "{b}");
}

#[tokio::test]
async fn an_access_token_expires_after_an_hour() {
    let z = Zoho::start().await;
    assert_eq!(z.get("/Leads?fields=Last_Name").await.0, 200);
    z.advance(3601.0).await;
    let (status, body) = z.get("/Leads?fields=Last_Name").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "INVALID_TOKEN");
    assert_eq!(body["message"], "invalid oauth token");
    assert_eq!(body["status"], "error");
}

#[tokio::test]
async fn calls_without_a_zoho_oauthtoken_header_are_invalid_token() {
    let z = Zoho::start().await;
    let url = z.api("/Leads?fields=Last_Name");
    let (s, b) = split(z.sb.http.get(&url).send().await.unwrap()).await;
    assert_eq!((s, b["code"].clone()), (401, json!("INVALID_TOKEN")));
    let (s, b) = split(
        z.sb.http
            .get(&url)
            .bearer_auth(&z.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].clone()), (401, json!("INVALID_TOKEN")));
    let (s, _) = split(
        z.sb.http
            .get(&url)
            .header("Authorization", "Zoho-oauthtoken 1000.unknown")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_token_without_the_needed_scope_gets_oauth_scope_mismatch() {
    let z = Zoho::start().await;
    let token = z.token_with_scope("zohocrm.modules.leads.read").await;
    let call = |path: &str| {
        z.sb.http
            .get(z.api(path))
            .header("Authorization", format!("Zoho-oauthtoken {token}"))
    };
    let (s, _) = split(call("/Leads?fields=Last_Name").send().await.unwrap()).await;
    assert_eq!(s, 200);
    for path in [
        "/Contacts?fields=Last_Name",
        "/settings/fields?module=Leads",
        "/users",
    ] {
        let (s, b) = split(call(path).send().await.unwrap()).await;
        assert_eq!(
            (s, b["code"].clone()),
            (401, json!("OAUTH_SCOPE_MISMATCH")),
            "{path}"
        );
    }
    let (s, b) = split(
        z.sb.http
            .post(z.api("/Leads"))
            .header("Authorization", format!("Zoho-oauthtoken {token}"))
            .json(&json!({"data":[{"Last_Name":"X"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].clone()), (401, json!("OAUTH_SCOPE_MISMATCH")));
}

#[tokio::test]
async fn the_token_endpoint_counts_calls_per_org() {
    let z = Zoho::start().await;
    let usage = z.usage().await;
    assert_eq!(usage["token_calls"], 1);
}

#[tokio::test]
async fn the_grant_code_lifetime_and_token_throttle_are_configurable() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "grant_code_ttl_secs": 600, "token_throttle": 2 }))
        .await;
    let (_, minted) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/grant-codes", z.org()),
            json!({}),
        )
        .await;
    assert_eq!(minted["expires_in"], 600);
    z.advance(300.0).await;
    let d = z.sb.desc().zoho.clone();
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
    let refresh = t["refresh_token"]
        .as_str()
        .expect("a code younger than its ttl works")
        .to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &*d.client_id),
        ("client_secret", &*d.client_secret),
        ("refresh_token", &*refresh),
    ];
    assert!(token_request(&z.sb, &form).await.1["access_token"].is_string());
    let (status, body) = token_request(&z.sb, &form).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("Access Denied"))
    );
}
