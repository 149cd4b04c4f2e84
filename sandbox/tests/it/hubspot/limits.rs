//! The 10-second and daily limits, their headers, and injected faults.

use serde_json::{Value, json};

use super::{Hs, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn replies_carry_the_rate_limit_headers() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-hubspot-ratelimit-max"), "190");
    assert_eq!(r.header("x-hubspot-ratelimit-remaining"), "189");
    assert_eq!(
        r.header("x-hubspot-ratelimit-interval-milliseconds"),
        "10000"
    );
    assert_eq!(r.header("x-hubspot-ratelimit-daily"), "625000");
    assert_eq!(r.header("x-hubspot-ratelimit-daily-remaining"), "624999");
}

#[tokio::test]
async fn the_ten_second_limit_answers_hubspots_429_until_the_window_rolls() {
    let sb = TestSandbox::start().await;
    let hs = Hs::create(&sb, json!({ "limits": { "ten_secondly": 3 } })).await;
    for remaining in ["2", "1", "0"] {
        let r = hs.get("/crm/v3/objects/contacts").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-hubspot-ratelimit-remaining"), remaining);
    }
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["status"], "error");
    assert_eq!(
        r.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(r.body.get("category").is_none());
    assert!(r.body["correlationId"].is_string());
    assert_eq!(r.header("x-hubspot-ratelimit-remaining"), "0");

    sb.admin_post("/admin/clock", json!({ "advance_secs": 10.5 }))
        .await;
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
}

#[tokio::test]
async fn a_spent_daily_limit_is_a_daily_429_until_midnight() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    sb.admin_post("/admin/clock", json!({ "set": "2031-03-03T12:00:00Z" }))
        .await;
    let (status, usage) = sb
        .admin_post(&hs.admin("/limits/exhaust-daily"), json!({}))
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["daily_remaining"], 0);
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "DAILY");
    assert_eq!(r.body["message"], "You have reached your daily limit.");
    assert_eq!(r.header("x-hubspot-ratelimit-daily-remaining"), "0");

    sb.admin_post("/admin/clock", json!({ "set": "2031-03-04T00:00:01Z" }))
        .await;
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
    let (_, usage) = sb.admin_get(&hs.admin("/usage")).await;
    assert_eq!(usage["daily_used"], 1);
}

#[tokio::test]
async fn injected_faults_look_like_hubspots_and_are_counted() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let endpoint = "POST /hubspot/crm/v3/objects/contacts/batch/upsert";
    let (status, body) = sb
        .admin_post(
            "/admin/faults",
            json!({ "system": "hubspot", "endpoint": endpoint, "kind": "rate_limit", "count": 1 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let input =
        json!({ "inputs": [{ "idProperty": "email", "id": "f@example.com", "properties": {} }] });
    let r = hs
        .post("/crm/v3/objects/contacts/batch/upsert", input.clone())
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    let (status, _) = sb
        .admin_post(
            "/admin/faults",
            json!({ "system": "hubspot", "endpoint": endpoint, "kind": "error", "status": 502, "count": 1 }),
        )
        .await;
    assert_eq!(status, 201);
    let r = hs
        .post("/crm/v3/objects/contacts/batch/upsert", input.clone())
        .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.body["status"], "error");
    let r = hs
        .post("/crm/v3/objects/contacts/batch/upsert", input)
        .await;
    assert_eq!(r.status, 200);

    let (_, counts) = sb
        .admin_get(&format!(
            "/admin/requests?system=hubspot&tenant={}",
            hs.portal
        ))
        .await;
    let rows = counts["requests"].as_array().unwrap();
    let count = |status: u64| {
        rows.iter()
            .filter(|r| r["endpoint"] == endpoint && r["status"] == status)
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((count(429), count(502), count(200)), (1, 1, 1));
}

#[tokio::test]
async fn limits_are_read_and_patched_per_portal() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let (status, limits) = sb.admin_get(&hs.admin("/limits")).await;
    assert_eq!(status, 200);
    assert_eq!(
        limits,
        json!({ "ten_secondly": 190, "oauth_ten_secondly": 110, "daily": 625000, "search_per_second": 5 })
    );
    let resp = sb
        .http
        .patch(sb.url(&hs.admin("/limits")))
        .json(&json!({ "daily": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.status, 429);
    let resp = sb
        .http
        .patch(sb.url(&hs.admin("/limits")))
        .json(&json!({ "ten_secondly": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let _ = assert_error;
}

#[tokio::test]
async fn the_limits_patch_takes_long_names_and_settings() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let patch = |body: Value| {
        let sb = &sb;
        let url = sb.url(&hs.admin("/limits"));
        async move {
            let resp = sb.http.patch(url).json(&body).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = patch(json!({
        "ten_second_limit": 7, "daily_limit": 900, "lifecycle_backward": "reject"
    }))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ten_secondly"], 7);
    assert_eq!(body["daily"], 900);
    assert_eq!(body["settings"]["lifecycle_backward"], "reject");
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.header("x-hubspot-ratelimit-max"), "7");
    assert_eq!(r.header("x-hubspot-ratelimit-daily"), "900");

    let (status, body) = patch(json!({ "lifecycle_backward": "sideways" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("lifecycle_backward")
    );
    let (status, _) = patch(json!({ "ten_seconds": 5 })).await;
    assert_eq!(status, 400);
    let (_, settings) = sb.admin_get(&hs.admin("/settings")).await;
    assert_eq!(settings["lifecycle_backward"], "reject");
}
