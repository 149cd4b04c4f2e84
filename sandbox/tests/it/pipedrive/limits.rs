//! Burst limit, daily budget, search limit and the 403 pages for clients that ignore 429s.

use serde_json::json;

use super::{Pd, advance, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn every_reply_carries_the_rate_limit_headers() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let first = pd.get("/api/v2/persons/1").await;
    let second = pd.get("/api/v2/persons/987654").await;

    assert_eq!(first.header("x-ratelimit-limit"), "80");
    assert_eq!(first.header("x-ratelimit-remaining"), "79");
    assert_eq!(first.header("x-ratelimit-reset"), "2");
    assert_eq!(first.header("x-daily-requests-left"), "599999");
    assert_eq!(second.status, 404);
    assert_eq!(second.header("x-ratelimit-remaining"), "78");
    assert_eq!(second.header("x-daily-requests-left"), "599998");
}

#[tokio::test]
async fn calls_over_the_burst_limit_are_429_until_the_window_moves_on() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "bursty", "burst_limit": 3})).await;
    for _ in 0..3 {
        assert_eq!(pd.get("/api/v1/users/me").await.status, 200);
    }

    let over = pd.get("/api/v2/persons").await;
    advance(&sb, 2.0).await;
    let later = pd.get("/api/v2/persons").await;

    assert_error(&over, 429, "Request over limit");
    assert_eq!(over.header("x-ratelimit-remaining"), "0");
    assert!(
        ["1", "2"].contains(&over.header("x-ratelimit-reset")),
        "{}",
        over.header("x-ratelimit-reset")
    );
    assert_eq!(later.status, 200);
}

#[tokio::test]
async fn the_burst_limit_is_per_token() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "tokens", "burst_limit": 1})).await;
    let (_, minted) = sb
        .admin_post("/admin/pipedrive/companies/tokens/tokens", json!({}))
        .await;
    let other = pd.with_token(minted["token"].as_str().unwrap());
    pd.get("/api/v1/users/me").await;

    assert_eq!(pd.get("/api/v1/users/me").await.status, 429);
    assert_eq!(other.get("/api/v1/users/me").await.status, 200);
}

#[tokio::test]
async fn the_daily_budget_charges_per_call_costs_and_rolls_over_24_hours() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(&sb, json!({"domain": "budget", "daily_budget": 25})).await;
    assert_eq!(pd.get("/api/v2/persons").await.status, 200); // 10
    assert_eq!(pd.get("/api/v2/persons").await.status, 200); // 20

    let over = pd.get("/api/v2/persons").await;
    let get = pd.get("/api/v2/persons/1").await; // 1 token still fits
    advance(&sb, 86_400.0).await;
    let next_day = pd.get("/api/v2/persons").await;

    assert_error(&over, 429, "daily");
    assert_eq!(over.header("x-daily-requests-left"), "5");
    assert_eq!(get.status, 404, "a cheap call still fits: {}", get.body);
    assert_eq!(next_day.status, 200);
    let (_, usage) = sb
        .admin_get("/admin/pipedrive/companies/budget/usage")
        .await;
    assert_eq!(usage["daily_used"], 10);
}

#[tokio::test]
async fn exhausting_the_daily_budget_makes_the_next_call_429() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let (status, usage) = sb
        .admin_post(
            "/admin/pipedrive/companies/sandbox/limits/exhaust-daily",
            json!({}),
        )
        .await;
    let r = pd.get("/api/v2/persons/1").await;

    assert_eq!(status, 200);
    assert_eq!(usage["daily_left"], 0);
    assert_error(&r, 429, "daily");
}

#[tokio::test]
async fn a_token_that_ignores_429s_gets_403_html_pages_for_a_while() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(
        &sb,
        json!({"domain": "abuser", "burst_limit": 1, "abuse_threshold": 3, "abuse_block_secs": 10}),
    )
    .await;
    assert_eq!(pd.get("/api/v1/users/me").await.status, 200);
    for _ in 0..4 {
        assert_eq!(pd.get("/api/v1/users/me").await.status, 429);
    }

    let blocked = pd.get("/api/v1/users/me").await;
    advance(&sb, 9.0).await;
    let still = pd.get("/api/v1/users/me").await;
    advance(&sb, 1.0).await;
    let free = pd.get("/api/v1/users/me").await;

    assert_eq!(blocked.status, 403);
    assert!(blocked.header("content-type").starts_with("text/html"));
    assert!(blocked.body.as_str().unwrap().contains("<html>"));
    assert_eq!(still.status, 403);
    assert_eq!(free.status, 200);
}

#[tokio::test]
async fn a_zero_abuse_threshold_never_blocks() {
    let sb = TestSandbox::start().await;
    let pd = Pd::create(
        &sb,
        json!({"domain": "patient", "burst_limit": 1, "abuse_threshold": 0}),
    )
    .await;
    pd.get("/api/v1/users/me").await;
    for _ in 0..50 {
        assert_eq!(pd.get("/api/v1/users/me").await.status, 429);
    }
}
