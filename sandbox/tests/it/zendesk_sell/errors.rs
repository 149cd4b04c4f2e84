//! Sell's error envelope: codes, statuses as strings, `logref` equal to the
//! `X-Request-Id` header.

use serde_json::json;

use super::{Sell, empty, reply};
use crate::common::TestSandbox;

#[tokio::test]
async fn per_page_over_100_is_an_invalid_param_400_in_sells_envelope() {
    let sb = TestSandbox::start().await;
    let sell = Sell::default_account(&sb);

    let refused = sell.get("/leads?per_page=200").await;

    assert_eq!(refused.status, 400);
    assert_eq!(refused.error()["code"], "invalid_param");
    assert!(
        refused.error()["details"]
            .as_str()
            .unwrap_or("")
            .contains("between 1 and 100")
    );
    assert_eq!(refused.body["errors"][0]["meta"]["type"], "error");
    assert_eq!(refused.body["meta"]["http_status"], "400 Bad Request");
    let request_id = refused.header("x-request-id");
    assert!(!request_id.is_empty());
    assert_eq!(refused.body["meta"]["logref"], request_id);
}

#[tokio::test]
async fn a_lead_without_last_name_or_organization_name_is_a_422() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;

    let refused = sell.post("/leads", json!({ "first_name": "Léa" })).await;

    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.body["meta"]["http_status"],
        "422 Unprocessable Entity"
    );
    assert_eq!(refused.error()["resource"], "lead");
    assert_eq!(refused.error()["field"], "last_name");
}

#[tokio::test]
async fn an_unknown_attribute_is_a_422_naming_it() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;

    let refused = sell
        .post("/leads", json!({ "last_name": "X", "nickname": "y" }))
        .await;

    assert_eq!(refused.status, 422);
    assert_eq!(refused.error()["code"], "unknown_attribute");
    assert_eq!(refused.error()["field"], "nickname");
}

#[tokio::test]
async fn a_bad_or_revoked_token_is_a_401() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, empty()).await;
    let wrong = Sell {
        token: "0".repeat(64),
        ..Sell::default_account(&sb)
    };
    assert_eq!(wrong.get("/leads").await.status, 401);

    let (status, _) = sb.admin_post(&sell.admin("/revoke"), json!({})).await;
    assert_eq!(status, 204);
    let refused = sell.get("/leads").await;

    assert_eq!(refused.status, 401);
    assert_eq!(refused.error()["code"], "unauthorized");
    assert_eq!(refused.body["meta"]["http_status"], "401 Unauthorized");
}

#[tokio::test]
async fn an_unknown_record_is_a_404_not_found() {
    let sb = TestSandbox::start().await;
    let sell = Sell::default_account(&sb);

    let missing = sell.get("/contacts/1").await;

    assert_eq!(missing.status, 404);
    assert_eq!(missing.error()["code"], "not_found");
}

#[tokio::test]
async fn an_xml_accept_header_is_a_406() {
    let sb = TestSandbox::start().await;
    let sell = Sell::default_account(&sb);

    let refused = reply(
        sb.http
            .get(format!("{}/v2/leads", sell.base_url))
            .bearer_auth(&sell.token)
            .header("accept", "application/xml")
            .send()
            .await
            .expect("request"),
    )
    .await;

    assert_eq!(refused.status, 406);
}

#[tokio::test]
async fn a_bad_query_parameter_is_refused_unless_the_account_ignores_them() {
    let sb = TestSandbox::start().await;
    let strict = Sell::create(&sb, empty()).await;
    let lenient = Sell::create(&sb, json!({ "settings": { "strict_params": false } })).await;

    assert_eq!(strict.get("/leads?colour=red").await.status, 400);
    assert_eq!(lenient.get("/leads?colour=red").await.status, 200);
    assert_eq!(strict.get("/leads?sort_by=colour").await.status, 400);
}
