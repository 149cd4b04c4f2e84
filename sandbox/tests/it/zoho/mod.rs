//! Zoho CRM tests.

#![allow(dead_code)]

mod admin;
mod coql;
mod limits;
mod oauth;
mod org;
mod records;
mod sdk;
mod search;
mod writes;

use serde_json::{Value, json};

use crate::common::{TestSandbox, split};

/// A sandbox with an access token for the default org.
pub struct Zoho {
    pub sb: TestSandbox,
    pub token: String,
    pub refresh: String,
}

impl Zoho {
    /// A sandbox with 20 seeded people and a token from the printed grant code.
    pub async fn start() -> Self {
        Self::start_with(20).await
    }

    pub async fn start_with(people: usize) -> Self {
        let sb = TestSandbox::start_with(people).await;
        let d = &sb.desc().zoho;
        let (status, body) = token_request(
            &sb,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &d.client_id),
                ("client_secret", &d.client_secret),
                ("code", &d.grant_code),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        let refresh = body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned();
        Self { sb, token, refresh }
    }

    pub fn org(&self) -> String {
        self.sb.desc().zoho.org_id.clone()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/crm/v8{}", self.sb.desc().zoho.api_domain, path)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        split(req.send().await.expect("request")).await
    }

    pub fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("Authorization", format!("Zoho-oauthtoken {}", self.token))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.auth(self.sb.http.get(self.api(path)))).await
    }

    pub async fn get_since(&self, path: &str, since: &str) -> (u16, Value) {
        self.send(
            self.auth(self.sb.http.get(self.api(path)))
                .header("If-Modified-Since", since),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.auth(self.sb.http.post(self.api(path))).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.auth(self.sb.http.put(self.api(path))).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.auth(self.sb.http.delete(self.api(path))))
            .await
    }

    pub async fn advance(&self, secs: f64) {
        let (status, _) = self
            .sb
            .admin_post("/admin/clock", json!({ "advance_secs": secs }))
            .await;
        assert_eq!(status, 200);
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> (u16, Value) {
        split(
            self.sb
                .http
                .patch(self.sb.url(path))
                .json(&body)
                .send()
                .await
                .expect("patch"),
        )
        .await
    }

    pub async fn set_limits(&self, body: Value) {
        let (status, body) = self
            .admin_patch(&format!("/admin/zoho/orgs/{}/limits", self.org()), body)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn usage(&self) -> Value {
        self.sb
            .admin_get(&format!("/admin/zoho/orgs/{}/usage", self.org()))
            .await
            .1
    }

    /// A fresh access token for the default org with the given scope.
    pub async fn token_with_scope(&self, scope: &str) -> String {
        let (status, minted) = self
            .sb
            .admin_post(
                &format!("/admin/zoho/orgs/{}/grant-codes", self.org()),
                json!({ "scope": scope }),
            )
            .await;
        assert_eq!(status, 201, "{minted}");
        let d = &self.sb.desc().zoho;
        let (_, body) = token_request(
            &self.sb,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &d.client_id),
                ("client_secret", &d.client_secret),
                ("code", minted["code"].as_str().unwrap()),
            ],
        )
        .await;
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// Records as the admin API stores them.
    pub async fn stored(&self, module: &str) -> Value {
        self.sb
            .admin_get(&format!("/admin/zoho/orgs/{}/records/{module}", self.org()))
            .await
            .1
    }

    /// Inserts one lead through the API and returns its id.
    pub async fn insert_lead(&self, record: Value) -> String {
        let (status, body) = self.post("/Leads", json!({ "data": [record] })).await;
        assert_eq!(status, 201, "{body}");
        body["data"][0]["details"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// `POST {accounts}/oauth/v2/token` with a form body.
pub async fn token_request(sb: &TestSandbox, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/oauth/v2/token", sb.desc().zoho.accounts_url);
    split(
        sb.http
            .post(url)
            .form(form)
            .send()
            .await
            .expect("token request"),
    )
    .await
}
