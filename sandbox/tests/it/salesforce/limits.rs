//! The daily API request limit, its header and `/limits`, request counts and faults.

use serde_json::json;

use super::{Sf, V, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn every_reply_carries_the_api_usage_and_limits_reports_it() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let first = sf.get(&format!("{V}/sobjects")).await;
    assert_eq!(first.header("sforce-limit-info"), "api-usage=1/100000");
    let error = sf
        .get(&format!("{V}/sobjects/Lead/00Q000000000000AAA"))
        .await;
    assert_eq!(error.status, 404);
    assert_eq!(error.header("sforce-limit-info"), "api-usage=2/100000");
    let limits = sf.get(&format!("{V}/limits")).await;
    assert_eq!(
        limits.body["DailyApiRequests"],
        json!({ "Max": 100000, "Remaining": 99997 })
    );
    let (_, usage) = sb.admin_get(&sf.admin("/usage")).await;
    assert_eq!(usage["used"], 3);
}

#[tokio::test]
async fn a_spent_daily_limit_is_403_request_limit_exceeded_until_it_rolls_off() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.admin_put("/settings", json!({ "session_timeout_secs": 200_000 }))
        .await;
    let (status, body) = sf
        .admin_put("/limits", json!({ "daily_api_requests": 2 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
    let refused = sf.get(&format!("{V}/limits")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.body,
        json!([{ "message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED" }])
    );
    assert_eq!(refused.header("sforce-limit-info"), "api-usage=2/2");
    sb.admin_post("/admin/clock", json!({ "advance_secs": 86_400 }))
        .await;
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
    let (status, _) = sf
        .admin_put("/limits", json!({ "daily_api_requests": 0 }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn requests_are_counted_by_org_and_route_template() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let id = sf.lead(json!({ "LastName": "A", "Company": "X" })).await;
    sf.get(&format!("{V}/sobjects/Lead/{id}")).await;
    sf.get(&format!("{V}/sobjects/Lead/{id}/")).await;
    let (_, counts) = sb
        .admin_get(&format!(
            "/admin/requests?system=salesforce&tenant={}",
            sf.org
        ))
        .await;
    let rows = counts["requests"].as_array().unwrap();
    let get = rows
        .iter()
        .find(|r| r["endpoint"] == "GET /services/data/{version}/sobjects/{sobject}/{id}")
        .unwrap();
    assert_eq!(get["count"], 2, "{counts}");
    assert!(rows.iter().any(|r| r["endpoint"]
        == "POST /services/data/{version}/sobjects/{sobject}"
        && r["status"] == 201));
    assert!(
        rows.iter()
            .any(|r| r["endpoint"] == "POST /services/oauth2/token" && r["status"] == 200)
    );
}

#[tokio::test]
async fn injected_faults_answer_in_salesforces_shape() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let rule = json!({ "system": "salesforce", "tenant": sf.org, "kind": "error", "status": 503, "count": 1 });
    assert_eq!(sb.admin_post("/admin/faults", rule).await.0, 201);
    assert_error(
        &sf.get(&format!("{V}/limits")).await,
        503,
        "SERVER_UNAVAILABLE",
    );
    let rule = json!({ "system": "salesforce", "kind": "rate_limit", "count": 1, "endpoint": "GET /services/data/{version}/limits" });
    sb.admin_post("/admin/faults", rule).await;
    let e = assert_error(
        &sf.get(&format!("{V}/limits")).await,
        403,
        "REQUEST_LIMIT_EXCEEDED",
    );
    assert_eq!(e["message"], "ConcurrentPerOrgLongTxn Limit exceeded.");
    let rule = json!({ "system": "salesforce", "kind": "error", "count": 1 });
    sb.admin_post("/admin/faults", rule).await;
    assert_error(
        &sf.get(&format!("{V}/limits")).await,
        500,
        "UNKNOWN_EXCEPTION",
    );
    assert_eq!(sf.get(&format!("{V}/limits")).await.status, 200);
}
