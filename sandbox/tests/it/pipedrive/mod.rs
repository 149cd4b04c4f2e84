//! Pipedrive tests: each starts a sandbox on port 0 and talks to the default company
//! `sandbox` or to companies it creates through the admin API.

mod admin;
mod auth;
mod details;
mod fields;
mod includes;
mod limits;
mod persons;
mod sdk;
mod search;
mod webhooks;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::TestSandbox;

/// A reply: status, headers and JSON body (a string for non-JSON bodies).
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// A client for one company with one token.
pub struct Pd<'a> {
    pub sb: &'a TestSandbox,
    pub base_url: String,
    pub token: String,
}

impl<'a> Pd<'a> {
    /// The default company `sandbox` with its printed token.
    pub fn default_company(sb: &'a TestSandbox) -> Self {
        let d = &sb.desc().pipedrive;
        Self {
            sb,
            base_url: d.base_url.clone(),
            token: d.api_token.clone(),
        }
    }

    /// A company created through the admin API with `spec` (domain required).
    pub async fn create(sb: &'a TestSandbox, spec: Value) -> Self {
        let (status, body) = sb.admin_post("/admin/pipedrive/companies", spec).await;
        assert_eq!(status, 201, "{body}");
        Self {
            sb,
            base_url: body["base_url"].as_str().unwrap().to_owned(),
            token: body["api_token"].as_str().unwrap().to_owned(),
        }
    }

    pub fn with_token(&self, token: &str) -> Pd<'a> {
        Pd {
            sb: self.sb,
            base_url: self.base_url.clone(),
            token: token.to_owned(),
        }
    }

    pub fn domain(&self) -> &str {
        self.base_url.rsplit('/').next().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .sb
            .http
            .request(method, self.url(path))
            .header("x-api-token", &self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a person through the API and returns it.
    pub async fn create_person(&self, body: Value) -> Value {
        let r = self.post("/api/v2/persons", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"].clone()
    }

    /// The company as the admin API shows it.
    pub async fn admin(&self) -> Value {
        let (status, body) = self
            .sb
            .admin_get(&format!("/admin/pipedrive/companies/{}", self.domain()))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A custom field key by field name.
    pub async fn field_key(&self, name: &str) -> String {
        self.admin().await["field_keys"][name]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The option id of a custom field's option, by labels.
    pub async fn option_id(&self, field: &str, label: &str) -> u64 {
        let company = self.admin().await;
        let f = company["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field)
            .unwrap()
            .clone();
        f["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["label"] == label)
            .unwrap()["id"]
            .as_u64()
            .unwrap()
    }
}

/// Moves the sandbox clock forward.
pub async fn advance(sb: &TestSandbox, secs: f64) {
    let (status, body) = sb
        .admin_post("/admin/clock", json!({ "advance_secs": secs }))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Sends a request without any token.
pub async fn anonymous(sb: &TestSandbox, url: &str) -> Reply {
    reply(sb.http.get(url).send().await.expect("request")).await
}

/// The error envelope Pipedrive uses for everything but 401.
pub fn assert_error(r: &Reply, status: u16, contains: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["success"], false, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains(contains),
        "{} does not contain {contains}",
        r.body["error"]
    );
    assert_eq!(
        r.body["error_info"],
        "Please check developers.pipedrive.com for more information about Pipedrive API."
    );
    assert_eq!(r.body["data"], Value::Null);
    assert_eq!(r.body["additional_data"], Value::Null);
}
