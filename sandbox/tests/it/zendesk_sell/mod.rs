//! Zendesk Sell tests: each starts a sandbox on port 0 and talks to the default
//! account or to accounts it creates through the admin API.

mod errors;
mod limits;
mod records;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::TestSandbox;

/// A reply: status, headers and JSON body (Null when empty).
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

    /// The `data` of each item of a collection.
    pub fn items(&self) -> Vec<Value> {
        self.body["items"]
            .as_array()
            .map(|items| items.iter().map(|i| i["data"].clone()).collect())
            .unwrap_or_default()
    }

    /// The first error's `error` object.
    pub fn error(&self) -> &Value {
        &self.body["errors"][0]["error"]
    }
}

/// A client for one account with one token.
pub struct Sell<'a> {
    pub sb: &'a TestSandbox,
    pub base_url: String,
    pub token: String,
    pub account_id: u64,
}

impl<'a> Sell<'a> {
    /// The default account with its printed token.
    pub fn default_account(sb: &'a TestSandbox) -> Self {
        let d = &sb.desc().zendesk_sell;
        Sell {
            sb,
            base_url: d.base_url.clone(),
            token: d.access_token.clone(),
            account_id: d.account_id,
        }
    }

    /// A fresh account made through the admin API with `spec`.
    pub async fn create(sb: &'a TestSandbox, spec: Value) -> Self {
        let (status, body) = sb.admin_post("/admin/zendesk_sell/accounts", spec).await;
        assert_eq!(status, 201, "account created: {body}");
        Sell {
            sb,
            base_url: body["base_url"].as_str().expect("base_url").to_owned(),
            token: body["access_token"].as_str().expect("token").to_owned(),
            account_id: body["account_id"].as_u64().expect("account_id"),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .sb
            .http
            .request(method, format!("{}/v2{path}", self.base_url))
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, data: Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(json!({ "data": data })))
            .await
    }

    pub async fn put(&self, path: &str, data: Value) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(json!({ "data": data })))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The admin path of this account.
    pub fn admin(&self, rest: &str) -> String {
        format!("/admin/zendesk_sell/accounts/{}{rest}", self.account_id)
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

/// An empty account (no seeded records) with the default custom fields.
pub fn empty() -> Value {
    json!({})
}
