//! Test helpers: a sandbox on port 0 and an HTTP client.

#![allow(dead_code)]

use crmsync_sandbox::{Description, Sandbox, SandboxConfig};
use serde_json::Value;

/// A running sandbox and a client for it.
pub struct TestSandbox {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

impl TestSandbox {
    /// A sandbox with `people` seeded people in each CRM.
    pub async fn start_with(people: usize) -> Self {
        let config = SandboxConfig {
            people,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config)
            .await
            .expect("sandbox starts on port 0");
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("client");
        Self { sandbox, http }
    }

    /// A sandbox with 20 seeded people in each CRM.
    pub async fn start() -> Self {
        Self::start_with(20).await
    }

    pub fn desc(&self) -> &Description {
        self.sandbox.description()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.base_url(), path)
    }

    /// POST JSON to the admin API and return status and body.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("admin request");
        split(resp).await
    }

    /// GET from the admin API.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("admin request");
        split(resp).await
    }
}

/// Status and JSON body (Null when empty).
pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}
