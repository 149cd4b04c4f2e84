//! The parts shared by both CRMs: startup, the clock, fault injection and request counts.

use serde_json::{Value, json};

use crate::common::{TestSandbox, split};

const USERS_ME: &str = "/api/v1/users/me";

impl TestSandbox {
    fn pd_url(&self, path: &str) -> String {
        format!("{}{}", self.desc().pipedrive.base_url, path)
    }

    async fn pd_get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .get(self.pd_url(path))
            .header("x-api-token", &self.desc().pipedrive.api_token)
            .send()
            .await
    }

    async fn add_fault(&self, rule: Value) -> Value {
        let (status, body) = self.admin_post("/admin/faults", rule).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn request_count(&self, endpoint: &str, status: u16) -> u64 {
        let (_, body) = self.admin_get("/admin/requests").await;
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["endpoint"] == endpoint && r["status"] == status)
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    }
}

#[tokio::test]
async fn starting_on_port_0_describes_urls_with_the_real_port() {
    let sb = TestSandbox::start().await;
    let base = sb.sandbox.base_url().to_owned();
    assert_ne!(sb.sandbox.addr().port(), 0);
    let d = serde_json::to_value(sb.desc()).unwrap();
    for url in [
        &d["admin_url"],
        &d["zoho"]["accounts_url"],
        &d["zoho"]["api_domain"],
        &d["zoho"]["mint_grant_code_url"],
        &d["pipedrive"]["base_url"],
    ] {
        assert!(
            url.as_str().unwrap().starts_with(&base),
            "{url} under {base}"
        );
    }
    let (status, index) = sb.admin_get("/admin").await;
    assert_eq!(status, 200);
    assert_eq!(
        index["description"], d,
        "GET /admin serves the printed description"
    );
}

#[tokio::test]
async fn the_clock_can_be_set_and_advanced() {
    let sb = TestSandbox::start().await;
    let (status, body) = sb
        .admin_post("/admin/clock", json!({"set": "2030-05-01T12:00:00Z"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["now"]
            .as_str()
            .unwrap()
            .starts_with("2030-05-01T12:00:0"),
        "{body}"
    );
    let (_, body) = sb
        .admin_post("/admin/clock", json!({"advance_secs": 86400}))
        .await;
    assert!(
        body["now"]
            .as_str()
            .unwrap()
            .starts_with("2030-05-02T12:00:0"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_clock_change_is_refused_naming_the_field() {
    let sb = TestSandbox::start().await;
    let (status, body) = sb
        .admin_post("/admin/clock", json!({"set": "yesterday"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("body:"),
        "{body}"
    );
    let (status, body) = sb.admin_post("/admin/clock", json!({})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("advance_secs"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_fault_rule_is_refused_naming_the_field() {
    let sb = TestSandbox::start().await;
    let (status, body) = sb
        .admin_post("/admin/faults", json!({"kind": "error", "status": 404}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("status:"),
        "{body}"
    );
    let (status, body) = sb
        .admin_post("/admin/faults", json!({"kind": "explode"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("explode"),
        "{body}"
    );
}

#[tokio::test]
async fn fault_rules_are_listed_and_removed() {
    let sb = TestSandbox::start().await;
    let rule = sb
        .add_fault(json!({"kind": "latency", "fixed_ms": 1}))
        .await;
    let (_, list) = sb.admin_get("/admin/faults").await;
    assert_eq!(list["faults"].as_array().unwrap().len(), 1);
    let id = rule["id"].as_u64().unwrap();
    let resp = sb
        .http
        .delete(sb.url(&format!("/admin/faults/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = sb
        .http
        .delete(sb.url(&format!("/admin/faults/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, list) = sb.admin_get("/admin/faults").await;
    assert!(list["faults"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_error_fault_answers_in_pipedrives_shape_then_retires() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"system": "pipedrive", "kind": "error", "status": 503, "count": 1}))
        .await;
    let (status, body) = split(sb.pd_get(USERS_ME).await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["success"], false, "{body}");
    let (status, _) = split(sb.pd_get(USERS_ME).await.unwrap()).await;
    assert_eq!(status, 200, "a rule with count 1 hits once");
}

#[tokio::test]
async fn an_error_fault_answers_in_zohos_shape() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"system": "zoho", "kind": "error", "status": 500}))
        .await;
    let resp = sb
        .http
        .get(format!(
            "{}/crm/v8/users?type=ActiveUsers",
            sb.desc().zoho.api_domain
        ))
        .header("Authorization", "Zoho-oauthtoken whatever")
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 500);
    assert_eq!(body["status"], "error", "{body}");
    assert!(body["code"].is_string(), "{body}");
}

#[tokio::test]
async fn a_rate_limit_fault_answers_429() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"system": "pipedrive", "kind": "rate_limit", "count": 1}))
        .await;
    let resp = sb.pd_get(USERS_ME).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn a_fault_for_one_endpoint_spares_the_others() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"kind": "error", "endpoint": "GET /pipedrive/{company}/api/v2/persons"}))
        .await;
    assert_eq!(sb.pd_get("/api/v2/persons").await.unwrap().status(), 500);
    assert_eq!(sb.pd_get(USERS_ME).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_latency_fault_delays_the_reply_by_at_least_the_fixed_part() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"kind": "latency", "fixed_ms": 300, "jitter_ms": 50}))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(sb.pd_get(USERS_ME).await.unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_a_reply() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"kind": "drop", "count": 1})).await;
    let error = sb.pd_get(USERS_ME).await.expect_err("no reply");
    assert!(
        !error.is_timeout(),
        "closed at once, not timed out: {error}"
    );
    assert_eq!(
        sb.request_count("GET /pipedrive/{company}/api/v1/users/me", 0)
            .await,
        1
    );
    assert_eq!(
        sb.pd_get(USERS_ME).await.unwrap().status(),
        200,
        "the next request is served"
    );
}

#[tokio::test]
async fn a_timeout_after_write_applies_the_write_but_sends_no_reply() {
    let sb = TestSandbox::start().await;
    sb.add_fault(json!({"kind": "timeout_after_write", "delay_ms": 100, "count": 1}))
        .await;
    let attempt = sb
        .http
        .post(sb.pd_url("/api/v2/persons"))
        .header("x-api-token", &sb.desc().pipedrive.api_token)
        .json(&json!({"name": "Retry Trap", "emails": [{"value": "trap@example.com", "primary": true, "label": "work"}]}))
        .send()
        .await;
    assert!(attempt.is_err(), "the client sees no reply");
    let search = sb
        .pd_get("/api/v2/persons/search?term=trap@example.com&fields=email&exact_match=true")
        .await
        .unwrap();
    let (status, body) = split(search).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["items"].as_array().unwrap().len(),
        1,
        "the write was applied: {body}"
    );
}

#[tokio::test]
async fn requests_are_counted_by_endpoint_and_status_and_can_be_reset() {
    let sb = TestSandbox::start().await;
    sb.pd_get("/api/v2/persons").await.unwrap();
    sb.pd_get("/api/v2/persons").await.unwrap();
    let unauthorized = sb
        .http
        .get(sb.pd_url("/api/v2/persons"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let endpoint = "GET /pipedrive/{company}/api/v2/persons";
    assert_eq!(sb.request_count(endpoint, 200).await, 2);
    assert_eq!(sb.request_count(endpoint, 401).await, 1);

    let (_, filtered) = sb
        .admin_get("/admin/requests?system=pipedrive&status=401")
        .await;
    assert_eq!(filtered["total"], 1, "{filtered}");
    assert_eq!(
        filtered["requests"][0]["tenant"],
        sb.desc().pipedrive.company_domain.as_str()
    );

    let resp = sb
        .http
        .delete(sb.url("/admin/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(sb.request_count(endpoint, 200).await, 0);
}

#[tokio::test]
async fn concurrent_creates_each_get_their_own_person() {
    let sb = TestSandbox::start_with(0).await;
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..40 {
        let request = sb
            .http
            .post(sb.pd_url("/api/v2/persons"))
            .header("x-api-token", &sb.desc().pipedrive.api_token)
            .json(&json!({"name": format!("Person {i}")}));
        creates.spawn(async move { split(request.send().await.unwrap()).await });
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(reply) = creates.join_next().await {
        let (status, body) = reply.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        ids.insert(body["data"]["id"].as_i64().unwrap());
    }
    assert_eq!(ids.len(), 40, "40 distinct ids");
    let (_, list) = split(sb.pd_get("/api/v2/persons?limit=500").await.unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 40);
}
