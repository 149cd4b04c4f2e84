//! Salesforce tests: each starts a sandbox on port 0 and talks to the default
//! org or to orgs it creates through the admin API, over real HTTP.

mod admin;
mod auth;
mod collections;
mod limits;
mod query;
mod records;

use serde_json::{Value, json};

use crate::common::TestSandbox;
pub use crate::hubspot::Reply;
use crate::hubspot::reply;

/// The API version the tests call.
pub const V: &str = "/services/data/v62.0";

/// A session on one org.
pub struct Sf<'a> {
    pub sb: &'a TestSandbox,
    pub org: String,
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub username: String,
}

impl<'a> Sf<'a> {
    /// The default org, through the refresh grant with its printed credentials.
    pub async fn default_org(sb: &'a TestSandbox) -> Self {
        let d = serde_json::to_value(&sb.desc().salesforce).unwrap();
        Self::login(sb, d).await
    }

    /// An org created through the admin API with `spec`, logged in.
    pub async fn create(sb: &'a TestSandbox, spec: Value) -> Self {
        let (status, body) = sb.admin_post("/admin/salesforce/orgs", spec).await;
        assert_eq!(status, 201, "{body}");
        Self::login(sb, body).await
    }

    /// An empty org (no records) with default settings.
    pub async fn empty(sb: &'a TestSandbox) -> Self {
        Self::create(sb, json!({})).await
    }

    async fn login(sb: &'a TestSandbox, d: Value) -> Self {
        let text = |k: &str| d[k].as_str().unwrap().to_owned();
        let r = token(
            sb,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &text("client_id")),
                ("client_secret", &text("client_secret")),
                ("refresh_token", &text("refresh_token")),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        Self {
            sb,
            org: text("org_id"),
            token: r.body["access_token"].as_str().unwrap().to_owned(),
            client_id: text("client_id"),
            client_secret: text("client_secret"),
            refresh_token: text("refresh_token"),
            username: text("username"),
        }
    }

    pub fn admin(&self, rest: &str) -> String {
        format!("/admin/salesforce/orgs/{}{rest}", self.org)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .sb
            .http
            .request(method, self.sb.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request")).await
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

    /// `GET query?q=`.
    pub async fn query(&self, soql: &str) -> Reply {
        let url =
            reqwest::Url::parse_with_params(&self.sb.url(&format!("{V}/query")), &[("q", soql)])
                .unwrap();
        reply(
            self.sb
                .http
                .get(url)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Creates a lead through the API; its id.
    pub async fn lead(&self, fields: Value) -> String {
        let r = self.post(&format!("{V}/sobjects/Lead"), fields).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Stores records as given through the admin API; their ids.
    pub async fn put_raw(&self, sobject: &str, records: Value) -> Vec<String> {
        let (status, body) = self
            .sb
            .admin_post(
                &self.admin(&format!("/records/{sobject}")),
                json!({ "records": records }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// PUT to the admin API.
    pub async fn admin_put(&self, rest: &str, body: Value) -> (u16, Value) {
        let resp = self
            .sb
            .http
            .put(self.sb.url(&self.admin(rest)))
            .json(&body)
            .send()
            .await
            .unwrap();
        crate::common::split(resp).await
    }
}

/// `POST /services/oauth2/token` with a form.
pub async fn token(sb: &TestSandbox, form: &[(&str, &str)]) -> Reply {
    let resp = sb
        .http
        .post(sb.url("/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .expect("token request");
    reply(resp).await
}

/// Checks Salesforce's error array and returns the first error.
pub fn assert_error(r: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    let first = r.body[0].clone();
    assert_eq!(first["errorCode"], code, "{}", r.body);
    assert!(first["message"].is_string(), "{}", r.body);
    first
}

/// Checks a collection result's error and returns it.
pub fn assert_record_error(result: &Value, code: &str) -> Value {
    assert_eq!(result["success"], false, "{result}");
    let first = result["errors"][0].clone();
    assert_eq!(first["statusCode"], code, "{result}");
    first
}

impl<'a> Sf<'a> {
    /// Logs in to an org with a kit account's connect form.
    pub async fn create_from(
        sb: &'a TestSandbox,
        org: &str,
        form: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let (_, d) = sb.admin_get(&format!("/admin/salesforce/orgs/{org}")).await;
        assert_eq!(d["client_id"], form["clientId"].as_str());
        Self::login(sb, d).await
    }
}
