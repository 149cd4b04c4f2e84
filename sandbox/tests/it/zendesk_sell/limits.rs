//! The rate limit per token: 429 in Sell's envelope, no rate-limit headers,
//! and fault rules scoped to the `zendesk_sell` system.

use serde_json::json;

use super::Sell;
use crate::common::TestSandbox;

#[tokio::test]
async fn a_token_past_its_hourly_allowance_gets_a_429_without_headers_until_the_hour_rolls() {
    let sb = TestSandbox::start().await;
    let sell = Sell::create(&sb, json!({ "limits": { "hourly": 2 } })).await;
    assert_eq!(sell.get("/leads").await.status, 200);
    assert_eq!(sell.get("/users/self").await.status, 200);

    let refused = sell.get("/leads").await;

    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["meta"]["http_status"], "429 Too Many Requests");
    assert!(refused.headers.get("retry-after").is_none());
    assert!(
        !refused
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-ratelimit")),
        "Sell documents no rate-limit headers"
    );
    let (_, usage) = sb.admin_get(&sell.admin("/usage")).await;
    assert_eq!(usage["used"], 2, "a refused request is not counted");

    sb.admin_post("/admin/clock", json!({ "advance_secs": 3601 }))
        .await;
    assert_eq!(sell.get("/leads").await.status, 200);
}

#[tokio::test]
async fn a_fault_rule_for_zendesk_sell_answers_in_sells_envelope() {
    let sb = TestSandbox::start().await;
    let sell = Sell::default_account(&sb);
    let rule = json!({
        "system": "zendesk_sell",
        "tenant": sell.account_id.to_string(),
        "endpoint": "GET /zendesk_sell/v2/leads",
        "kind": "error",
        "status": 503,
        "count": 1,
    });
    assert_eq!(sb.admin_post("/admin/faults", rule).await.0, 201);

    let failed = sell.get("/leads").await;

    assert_eq!(failed.status, 503);
    assert_eq!(
        failed.body["meta"]["http_status"],
        "503 Service Unavailable"
    );
    assert_eq!(failed.body["meta"]["logref"], failed.header("x-request-id"));
    assert_eq!(sell.get("/leads").await.status, 200);
    let (_, counts) = sb
        .admin_get(&format!(
            "/admin/requests?system=zendesk_sell&tenant={}",
            sell.account_id
        ))
        .await;
    assert_eq!(counts["total"], 2);
}
