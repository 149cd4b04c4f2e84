//! Concurrency limits and credits.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Zoho;
use crate::common::split;

async fn set_gate(z: &Zoho, closed: bool) {
    let (s, _) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/gate", z.org()),
            json!({ "closed": closed }),
        )
        .await;
    assert_eq!(s, 200);
}

/// Polls the usage until `key` reaches `want`, with a deadline.
async fn wait_usage(z: &Zoho, key: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while z.usage().await[key] != json!(want) {
        assert!(Instant::now() < deadline, "{key} never reached {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn spawn_get(z: &Zoho, path: &str) -> tokio::task::JoinHandle<u16> {
    let req = z.auth(z.sb.http.get(z.api(path)));
    tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
}

#[tokio::test]
async fn a_call_over_the_concurrency_limit_is_429_while_others_are_in_flight() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "concurrency": 2 })).await;
    set_gate(&z, true).await;
    let held = [
        spawn_get(&z, "/Leads?fields=Last_Name"),
        spawn_get(&z, "/Contacts?fields=Last_Name"),
    ];
    wait_usage(&z, "in_flight", 2).await;
    let (status, body) = z.get("/Leads?fields=Last_Name").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert_eq!(body["details"], json!({ "limit": "concurrency" }));
    assert!(body["message"].as_str().unwrap().contains("concurrency"));
    set_gate(&z, false).await;
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    wait_usage(&z, "in_flight", 0).await;
    assert_eq!(z.get("/Leads?fields=Last_Name").await.0, 200);
}

#[tokio::test]
async fn eleven_concurrent_calls_with_the_default_limit_see_a_429() {
    let z = Zoho::start().await;
    set_gate(&z, true).await;
    let held: Vec<_> = (0..10).map(|_| spawn_get(&z, "/users")).collect();
    wait_usage(&z, "in_flight", 10).await;
    let (status, body) = z.get("/users").await;
    assert_eq!(
        (status, body["details"]["limit"].clone()),
        (429, json!("concurrency"))
    );
    set_gate(&z, false).await;
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn heavy_calls_have_their_own_sub_limit() {
    let z = Zoho::start_with(0).await;
    z.set_limits(json!({ "heavy_concurrency": 1 })).await;
    let id = z.insert_lead(json!({ "Last_Name": "Heavy" })).await;
    set_gate(&z, true).await;
    let records: Vec<Value> = (0..11)
        .map(|i| json!({ "Last_Name": format!("H{i}") }))
        .collect();
    let req = z
        .auth(z.sb.http.post(z.api("/Leads")))
        .json(&json!({ "data": records }));
    let held = tokio::spawn(async move { req.send().await.unwrap().status().as_u16() });
    wait_usage(&z, "heavy_in_flight", 1).await;
    let (status, body) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{}] }),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["details"], json!({ "limit": "heavy_concurrency" }));
    // Light calls are not held back by the heavy sub-limit.
    let light = spawn_get(&z, "/users");
    set_gate(&z, false).await;
    assert_eq!(light.await.unwrap(), 200);
    assert_eq!(held.await.unwrap(), 201);
    let (s, _) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{}] }),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn credits_run_out_with_429_naming_the_credit_limit() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "daily_credits": 3 })).await;
    for _ in 0..3 {
        assert_eq!(z.get("/Leads?fields=Last_Name").await.0, 200);
    }
    let (status, body) = z.get("/Leads?fields=Last_Name").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert_eq!(body["details"], json!({ "limit": "credits" }));
}

#[tokio::test]
async fn writes_cost_one_credit_per_ten_records_and_conversion_five() {
    let z = Zoho::start_with(0).await;
    let before = z.usage().await["credits_used"].as_u64().unwrap();
    let records: Vec<Value> = (0..21)
        .map(|i| json!({ "Last_Name": format!("C{i}") }))
        .collect();
    z.post("/Leads", json!({ "data": records })).await;
    assert_eq!(
        z.usage().await["credits_used"].as_u64().unwrap() - before,
        3
    );
    let id = z.insert_lead(json!({ "Last_Name": "Conv" })).await;
    z.post(
        &format!("/Leads/{id}/actions/convert"),
        json!({ "data": [{}] }),
    )
    .await;
    z.get("/Leads/deleted").await;
    assert_eq!(
        z.usage().await["credits_used"].as_u64().unwrap() - before,
        3 + 1 + 5 + 2
    );
}

#[tokio::test]
async fn an_exhausted_daily_budget_recovers_after_24_hours() {
    let z = Zoho::start().await;
    let (s, usage) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/limits/exhaust-daily", z.org()),
            json!({}),
        )
        .await;
    assert_eq!((s, usage["credits_remaining"].clone()), (200, json!(0)));
    let (status, body) = z.get("/users").await;
    assert_eq!(
        (status, body["details"]["limit"].clone()),
        (429, json!("credits"))
    );
    z.advance(86_401.0).await;
    let d = z.sb.desc().zoho.clone();
    let (_, t) = super::token_request(
        &z.sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &z.refresh),
        ],
    )
    .await;
    let token = t["access_token"].as_str().unwrap();
    let req =
        z.sb.http
            .get(z.api("/users"))
            .header("Authorization", format!("Zoho-oauthtoken {token}"));
    assert_eq!(split(req.send().await.unwrap()).await.0, 200);
}

#[tokio::test]
async fn a_latency_fault_keeps_the_call_in_its_concurrency_slot() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "concurrency": 1 })).await;
    let (s, _) =
        z.sb.admin_post(
            "/admin/faults",
            json!({ "system": "zoho", "kind": "latency", "fixed_ms": 1500, "count": 1 }),
        )
        .await;
    assert_eq!(s, 201);
    let slow = spawn_get(&z, "/Leads?fields=Last_Name");
    wait_usage(&z, "in_flight", 1).await;
    let (status, body) = z.get("/Leads?fields=Last_Name").await;
    assert_eq!(status, 429, "the slow call holds the only slot: {body}");
    assert_eq!(slow.await.unwrap(), 200);
}
