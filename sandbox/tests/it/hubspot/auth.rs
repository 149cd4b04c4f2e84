//! Tokens, scopes and the OAuth refresh grant.

use serde_json::{Value, json};

use super::{Hs, assert_error, reply};
use crate::common::TestSandbox;

#[tokio::test]
async fn the_description_names_the_default_portal_and_its_credentials() {
    let sb = TestSandbox::start().await;
    let d = serde_json::to_value(&sb.desc().hubspot).unwrap();
    for key in [
        "base_url",
        "access_token",
        "portal_id",
        "client_id",
        "client_secret",
        "refresh_token",
    ] {
        assert!(d.get(key).is_some(), "{key} missing from {d}");
    }
    assert_eq!(d["base_url"], format!("{}/hubspot", sb.sandbox.base_url()));
    assert!(d["portal_id"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_invalid_authentication() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let r = hs.with_token("nope").get("/crm/v3/objects/contacts").await;
    let message = assert_error(&r, 401, "INVALID_AUTHENTICATION");
    assert!(message.starts_with("Authentication credentials not found."));

    let resp = sb
        .http
        .get(format!("{}/crm/v3/objects/contacts", hs.base_url))
        .send()
        .await
        .unwrap();
    let r = reply(resp).await;
    assert_error(&r, 401, "INVALID_AUTHENTICATION");
}

async fn refresh(sb: &TestSandbox, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = sb
        .http
        .post(format!("{}/oauth/v1/token", sb.desc().hubspot.base_url))
        .form(form)
        .send()
        .await
        .unwrap();
    let r = reply(resp).await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_refresh_grant_gives_a_30_minute_access_token_that_expires_on_the_clock() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().hubspot.clone();
    let (status, body) = refresh(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["refresh_token"], d.refresh_token.as_str());
    let access = body["access_token"].as_str().unwrap();

    let hs = Hs::default_portal(&sb).with_token(access);
    let r = hs.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(r.status, 200, "{}", r.body);

    let (s, _) = sb
        .admin_post("/admin/clock", json!({ "advance_secs": 1805 }))
        .await;
    assert_eq!(s, 200);
    let r = hs.get("/crm/v3/objects/contacts?limit=1").await;
    let message = assert_error(&r, 401, "EXPIRED_AUTHENTICATION");
    assert!(
        message.starts_with("The OAuth token used to make this call expired"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_oauth_inputs_are_refused_in_hubspots_shape() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().hubspot.clone();
    let (status, body) = refresh(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", "not-a-token"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
    assert!(body["message"].is_string() && body["correlationId"].is_string());

    let (status, body) = refresh(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", "wrong"),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_CLIENT_SECRET"))
    );

    let (status, body) = refresh(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "unknown"),
            ("client_secret", &d.client_secret),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_CLIENT_ID"))
    );
}

#[tokio::test]
async fn a_token_without_the_scope_gets_missing_scopes() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let (status, body) = sb
        .admin_post(
            &hs.admin("/tokens"),
            json!({ "scopes": ["crm.objects.contacts.read"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let read_only = hs.with_token(body["token"].as_str().unwrap());
    assert_eq!(read_only.get("/crm/v3/objects/contacts").await.status, 200);
    let r = read_only
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "a@b.example" } }),
        )
        .await;
    assert_error(&r, 403, "MISSING_SCOPES");
    assert_eq!(
        r.body["errors"][0]["context"]["requiredGranularScopes"][0],
        "crm.objects.contacts.write"
    );
}

#[tokio::test]
async fn revoking_a_portal_refuses_its_tokens_and_refresh_tokens() {
    let sb = TestSandbox::start().await;
    let d = sb.desc().hubspot.clone();
    let hs = Hs::default_portal(&sb);
    let (status, _) = sb.admin_post(&hs.admin("/revoke"), json!({})).await;
    assert_eq!(status, 204);
    assert_error(
        &hs.get("/crm/v3/objects/contacts").await,
        401,
        "INVALID_AUTHENTICATION",
    );
    let (status, body) = refresh(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &d.refresh_token),
        ],
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("BAD_REFRESH_TOKEN"))
    );
}

#[tokio::test]
async fn a_tokens_scopes_are_replaced_through_the_admin_api() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let set = |scopes: Value, token: String| {
        let sb = &sb;
        let url = sb.url(&hs.admin("/tokens/scopes"));
        async move {
            let resp = sb
                .http
                .put(url)
                .json(&json!({ "token": token, "scopes": scopes }))
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    assert_eq!(
        set(json!(["crm.objects.contacts.write"]), hs.token.clone()).await,
        200
    );
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_error(&r, 403, "MISSING_SCOPES");
    assert_eq!(
        r.body["errors"][0]["context"]["requiredGranularScopes"][0],
        "crm.objects.contacts.read"
    );
    assert_eq!(
        set(json!(["crm.objects.contacts.read"]), hs.token.clone()).await,
        200
    );
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
    // A token of another portal is not this portal's.
    let other = sb.desc().hubspot.access_token.clone();
    assert_eq!(set(json!([]), other).await, 404);
    assert_eq!(
        Hs::default_portal(&sb)
            .get("/crm/v3/objects/contacts?limit=1")
            .await
            .status,
        200
    );
}
