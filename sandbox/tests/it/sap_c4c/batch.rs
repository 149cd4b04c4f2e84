//! `$batch`: changesets are atomic, retrieves answer in place, limits hold.

use reqwest::Method;
use serde_json::json;

use super::C4c;
use crate::common::TestSandbox;

fn changeset(boundary: &str, ops: &[String]) -> String {
    let mut s = format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n");
    for op in ops {
        s.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{op}\r\n"
        ));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

fn create(body: serde_json::Value) -> String {
    format!("POST LeadCollection HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}")
}

async fn send_batch(c4c: &C4c<'_>, parts: &[String]) -> (u16, String) {
    let mut body = String::new();
    for part in parts {
        body.push_str(&format!("--batch_1\r\n{part}"));
    }
    body.push_str("--batch_1--\r\n");
    let resp = c4c
        .request(Method::POST, "$batch")
        .header("content-type", "multipart/mixed; boundary=batch_1")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn lead_count(c4c: &C4c<'_>) -> usize {
    c4c.get("LeadCollection?$format=json").await.1["d"]["results"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_changeset_with_a_failing_operation_is_rolled_back_whole() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    c4c.fetch_token().await;
    let good = create(json!({"Name": "A", "Company": "Acme"}));
    let bad = create(json!({"Name": "B"}));
    let (status, text) = send_batch(&c4c, &[changeset("cs_1", &[good.clone(), bad])]).await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert_eq!(lead_count(&c4c).await, 0);

    let (status, text) = send_batch(&c4c, &[changeset("cs_2", &[good.clone(), good])]).await;
    assert_eq!(status, 202);
    assert_eq!(text.matches("HTTP/1.1 201").count(), 2, "{text}");
    assert_eq!(lead_count(&c4c).await, 2);
}

#[tokio::test]
async fn a_batch_needs_the_csrf_token_and_respects_the_changeset_limit() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    let op = create(json!({"Name": "A", "Company": "Acme"}));
    let (status, _) = send_batch(&c4c, &[changeset("cs", std::slice::from_ref(&op))]).await;
    assert_eq!(status, 403);
    c4c.fetch_token().await;
    c4c.settings(json!({"changeset_max": 2, "batch_max": 10}))
        .await;
    let (status, text) = send_batch(&c4c, &[changeset("cs", &vec![op; 3])]).await;
    assert_eq!(status, 400);
    assert!(text.contains("at most 2"), "{text}");
}

#[tokio::test]
async fn a_retrieve_in_a_batch_answers_in_place() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    c4c.lead(json!({"Name": "A", "Company": "Acme"})).await;
    let get = "Content-Type: application/http\r\n\r\nGET LeadCollection?$format=json HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n".to_owned();
    let (status, text) = send_batch(&c4c, &[get]).await;
    assert_eq!(status, 202);
    assert!(
        text.contains("HTTP/1.1 200") && text.contains("\"Name\":\"A\""),
        "{text}"
    );
}
