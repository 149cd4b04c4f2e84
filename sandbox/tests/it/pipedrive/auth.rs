//! Authentication, the URL layout and unknown routes.

use serde_json::json;

use super::{Pd, anonymous, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn the_token_is_accepted_in_the_x_api_token_header() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = pd.get("/api/v1/users/me").await;

    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true);
}

#[tokio::test]
async fn the_token_is_accepted_in_the_api_token_query_parameter() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = anonymous(
        &sb,
        &pd.url(&format!("/api/v2/persons?limit=1&api_token={}", pd.token)),
    )
    .await;

    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_missing_token_is_401_in_pipedrives_envelope() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = anonymous(&sb, &pd.url("/api/v2/persons")).await;

    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({
            "success": false,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
            "data": null,
            "additional_data": null,
        })
    );
}

#[tokio::test]
async fn an_unknown_token_and_an_oauth_bearer_token_are_401() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let unknown = pd
        .with_token("0123456789abcdef0123456789abcdef01234567")
        .get("/api/v2/persons")
        .await;
    let bearer = sb
        .http
        .get(pd.url("/api/v2/persons"))
        .bearer_auth(&pd.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();

    assert_eq!(unknown.status, 401);
    assert_eq!(bearer, 401);
}

#[tokio::test]
async fn a_token_used_on_another_companys_prefix_is_401() {
    let sb = TestSandbox::start().await;
    let other = Pd::create(&sb, json!({"domain": "other"})).await;
    let default = Pd::default_company(&sb);

    let r = default
        .with_token(&other.token)
        .get("/api/v2/persons")
        .await;

    assert_eq!(r.status, 401);
    assert_eq!(other.get("/api/v2/persons").await.status, 200);
}

#[tokio::test]
async fn an_unknown_company_is_404_in_pipedrives_envelope() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let r = reqwest::Client::new()
        .get(sb.url("/pipedrive/nosuchcompany/api/v2/persons"))
        .header("x-api-token", &pd.token)
        .send()
        .await
        .unwrap();
    let r = super::reply(r).await;

    assert_error(&r, 404, "nosuchcompany");
}

#[tokio::test]
async fn put_on_a_person_is_405_and_an_unknown_path_is_404() {
    let sb = TestSandbox::start().await;
    let pd = Pd::default_company(&sb);

    let put = pd
        .send(
            reqwest::Method::PUT,
            "/api/v2/persons/1",
            Some(json!({"name": "X"})),
        )
        .await;
    let unknown = pd.get("/api/v2/deals").await;

    assert_error(&put, 405, "Method not allowed");
    assert_error(&unknown, 404, "Unknown method");
}
