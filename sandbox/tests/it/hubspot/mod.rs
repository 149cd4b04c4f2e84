//! HubSpot tests: each starts a sandbox on port 0 and talks to the default portal
//! or to portals it creates through the admin API.

mod admin;
mod auth;
mod batch;
mod contacts;
mod limits;
mod properties;
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

pub async fn reply(resp: reqwest::Response) -> Reply {
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

/// A client for one portal with one token.
pub struct Hs<'a> {
    pub sb: &'a TestSandbox,
    pub base_url: String,
    pub token: String,
    pub portal: String,
}

impl<'a> Hs<'a> {
    /// The default portal with its printed private-app token.
    pub fn default_portal(sb: &'a TestSandbox) -> Self {
        let d = &sb.desc().hubspot;
        Self {
            sb,
            base_url: d.base_url.clone(),
            token: d.access_token.clone(),
            portal: d.portal_id.to_string(),
        }
    }

    /// A portal created through the admin API with `spec`.
    pub async fn create(sb: &'a TestSandbox, spec: Value) -> Self {
        let (status, body) = sb.admin_post("/admin/hubspot/portals", spec).await;
        assert_eq!(status, 201, "{body}");
        Self {
            sb,
            base_url: body["base_url"].as_str().unwrap().to_owned(),
            token: body["access_token"].as_str().unwrap().to_owned(),
            portal: body["portal_id"].as_u64().unwrap().to_string(),
        }
    }

    /// An empty portal (no seeded contacts) with default limits.
    pub async fn empty(sb: &'a TestSandbox) -> Self {
        Self::create(sb, json!({})).await
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            sb: self.sb,
            base_url: self.base_url.clone(),
            token: token.to_owned(),
            portal: self.portal.clone(),
        }
    }

    pub fn admin(&self, rest: &str) -> String {
        format!("/admin/hubspot/portals/{}{rest}", self.portal)
    }

    pub async fn get(&self, path: &str) -> Reply {
        let resp = self
            .sb
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        reply(resp).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Reply {
        let resp = self
            .sb
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        reply(resp).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        let resp = self
            .sb
            .http
            .delete(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        reply(resp).await
    }

    /// Creates a contact and returns its id.
    pub async fn contact(&self, properties: Value) -> String {
        let r = self
            .post(
                "/crm/v3/objects/contacts",
                json!({ "properties": properties }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }
}

/// Checks HubSpot's error envelope and returns the message.
pub fn assert_error(r: &Reply, status: u16, category: &str) -> String {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["status"], "error", "{}", r.body);
    assert_eq!(r.body["category"], category, "{}", r.body);
    assert_eq!(
        r.body["correlationId"].as_str().unwrap_or_default().len(),
        36,
        "{}",
        r.body
    );
    r.body["message"].as_str().unwrap_or_default().to_owned()
}
