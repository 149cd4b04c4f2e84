//! SAP C4C tests: each starts a sandbox on port 0 and talks OData to the
//! default tenant or to tenants it creates through the admin API, over real HTTP.

mod batch;
mod kit;
mod odata;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestSandbox, split};

/// The service root below the sandbox's base URL.
pub const SERVICE: &str = "/sap/c4c/odata/v1/c4codataapi/";

/// A technical user's session on one tenant: its credentials and, once
/// fetched, the CSRF token and session cookie.
pub struct C4c<'a> {
    pub sb: &'a TestSandbox,
    pub tenant: String,
    pub username: String,
    pub password: String,
    pub csrf: Option<(String, String)>,
}

impl<'a> C4c<'a> {
    /// A tenant created through the admin API with `spec`.
    pub async fn create(sb: &'a TestSandbox, spec: Value) -> Self {
        let (status, d) = sb.admin_post("/admin/sap_c4c/tenants", spec).await;
        assert_eq!(status, 201, "{d}");
        let text = |k: &str| d[k].as_str().unwrap().to_owned();
        Self {
            sb,
            tenant: text("tenant"),
            username: text("username"),
            password: text("password"),
            csrf: None,
        }
    }

    /// An empty tenant with default settings.
    pub async fn empty(sb: &'a TestSandbox) -> Self {
        Self::create(sb, json!({})).await
    }

    pub fn url(&self, path: &str) -> String {
        self.sb.url(&format!("{SERVICE}{path}"))
    }

    /// Fetches a CSRF token and its session cookie (a GET on the service root).
    pub async fn fetch_token(&mut self) {
        let resp = self
            .sb
            .http
            .get(self.url(""))
            .basic_auth(&self.username, Some(&self.password))
            .header("x-csrf-token", "Fetch")
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let token = resp.headers()["x-csrf-token"].to_str().unwrap().to_owned();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        self.csrf = Some((token, cookie));
    }

    /// A request with basic credentials, JSON asked for, and the CSRF token if fetched.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .sb
            .http
            .request(method, self.url(path))
            .basic_auth(&self.username, Some(&self.password))
            .header("accept", "application/json");
        if let Some((token, cookie)) = &self.csrf {
            r = r.header("x-csrf-token", token).header("cookie", cookie);
        }
        r
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        split(self.request(Method::GET, path).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        split(
            self.request(Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Creates a lead (fetching a token first if needed); its ObjectID.
    pub async fn lead(&mut self, body: Value) -> String {
        if self.csrf.is_none() {
            self.fetch_token().await;
        }
        let (status, reply) = self.post("LeadCollection", body).await;
        assert_eq!(status, 201, "{reply}");
        reply["d"]["ObjectID"].as_str().unwrap().to_owned()
    }

    pub async fn settings(&self, settings: Value) {
        let resp = self
            .sb
            .http
            .put(
                self.sb
                    .url(&format!("/admin/sap_c4c/tenants/{}/settings", self.tenant)),
            )
            .json(&settings)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}
