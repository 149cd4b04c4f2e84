//! Webhooks API v3: the app's settings and subscriptions (developer API key),
//! and the signed, batched deliveries of contact changes with HubSpot's
//! retries and the notifier's faults.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::{Hs, Reply, assert_error, reply};
use crate::common::{TestSandbox, receiver};

/// A portal's app: its id, developer API key and client secret.
struct App<'a> {
    hs: Hs<'a>,
    id: u64,
    key: String,
    secret: String,
}

impl<'a> App<'a> {
    async fn of(hs: Hs<'a>) -> Self {
        let (status, portal) = hs.sb.admin_get(&hs.admin("")).await;
        assert_eq!(status, 200, "{portal}");
        Self {
            id: portal["app_id"].as_u64().expect("app_id"),
            key: portal["developer_api_key"].as_str().unwrap().to_owned(),
            secret: portal["client_secret"].as_str().unwrap().to_owned(),
            hs,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        rest: &str,
        key: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .hs
            .sb
            .http
            .request(
                method,
                format!("{}/webhooks/v3/{}{rest}", self.hs.base_url, self.id),
            )
            .query(&[("hapikey", key)]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request")).await
    }

    async fn send(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> Reply {
        self.call(method, rest, &self.key, body).await
    }

    /// Points the app at `url` and subscribes it, active, to `types`
    /// (`contact.propertyChange:firstname` names the property).
    async fn subscribe(&self, url: &str, types: &[&str]) -> Vec<String> {
        let r = self
            .send(
                reqwest::Method::PUT,
                "/settings",
                Some(json!({ "targetUrl": url, "throttling": { "maxConcurrentRequests": 10 } })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut ids = Vec::new();
        for t in types {
            let (event_type, property) = t.split_once(':').unwrap_or((t, ""));
            let mut body = json!({ "eventType": event_type, "active": true });
            if !property.is_empty() {
                body["propertyName"] = json!(property);
            }
            let r = self
                .send(reqwest::Method::POST, "/subscriptions", Some(body))
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            ids.push(r.body["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Checks a delivery's v3 signature; its events.
    fn verified(&self, url: &str, headers: &HeaderMap, body: &str) -> Vec<Value> {
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-hubspot-signature-version"), "v3");
        let timestamp = header("x-hubspot-request-timestamp");
        let at: i64 = timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp_millis() - at).abs() < 60_000);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.secret.as_bytes()).unwrap();
        mac.update(format!("POST{url}{body}{timestamp}").as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(header("x-hubspot-signature-v3"), expected, "signature");
        serde_json::from_str::<Vec<Value>>(body).unwrap()
    }
}

/// The notifier's log of HubSpot deliveries, once nothing is left to send.
async fn deliveries(sb: &TestSandbox) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = sb
            .admin_get("/admin/notify/deliveries?system=hubspot")
            .await
            .1;
        if log["pending"] == 0 {
            return log["deliveries"].as_array().unwrap().clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "deliveries pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_developer_api_key_authorises_the_apps_webhooks_api_only() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    let other = App::of(Hs::empty(&sb).await).await;

    let none = app
        .call(reqwest::Method::GET, "/subscriptions", "", None)
        .await;
    let wrong = app
        .call(
            reqwest::Method::GET,
            "/subscriptions",
            "0000-not-a-key",
            None,
        )
        .await;
    let foreign = app
        .call(reqwest::Method::GET, "/subscriptions", &other.key, None)
        .await;
    let bearer = app
        .hs
        .get(&format!("/webhooks/v3/{}/subscriptions", app.id))
        .await;

    assert_error(&none, 401, "INVALID_AUTHENTICATION");
    assert_error(&wrong, 401, "INVALID_AUTHENTICATION");
    assert_error(&foreign, 403, "FORBIDDEN");
    assert_error(&bearer, 401, "INVALID_AUTHENTICATION");
    let ok = app.send(reqwest::Method::GET, "/subscriptions", None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, json!({ "results": [] }));
}

#[tokio::test]
async fn settings_and_subscriptions_are_made_read_changed_and_deleted() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    use reqwest::Method;

    let unset = app.send(Method::GET, "/settings", None).await;
    assert_error(&unset, 404, "OBJECT_NOT_FOUND");
    let bad = app
        .send(
            Method::PUT,
            "/settings",
            Some(json!({ "targetUrl": "not a url" })),
        )
        .await;
    assert!(assert_error(&bad, 400, "VALIDATION_ERROR").contains("targetUrl"));
    let put = app
        .send(
            Method::PUT,
            "/settings",
            Some(json!({ "targetUrl": "https://example.com/hook", "throttling": { "maxConcurrentRequests": 10 } })),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["targetUrl"], "https://example.com/hook");
    assert_eq!(put.body["throttling"]["maxConcurrentRequests"], 10);
    let got = app.send(Method::GET, "/settings", None).await;
    assert_eq!(got.body["targetUrl"], "https://example.com/hook");

    let no_property = app
        .send(
            Method::POST,
            "/subscriptions",
            Some(json!({ "eventType": "contact.propertyChange" })),
        )
        .await;
    assert!(assert_error(&no_property, 400, "VALIDATION_ERROR").contains("propertyName"));
    let unknown = app
        .send(
            Method::POST,
            "/subscriptions",
            Some(json!({ "eventType": "contact.teleport" })),
        )
        .await;
    assert_error(&unknown, 400, "VALIDATION_ERROR");
    let created = app
        .send(
            Method::POST,
            "/subscriptions",
            Some(json!({ "eventType": "contact.propertyChange", "propertyName": "firstname" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["active"], false,
        "paused unless told otherwise"
    );
    assert_eq!(created.body["propertyName"], "firstname");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let twice = app
        .send(
            Method::POST,
            "/subscriptions",
            Some(json!({ "eventType": "contact.propertyChange", "propertyName": "firstname" })),
        )
        .await;
    assert_error(&twice, 409, "CONFLICT");

    let patched = app
        .send(
            Method::PATCH,
            &format!("/subscriptions/{id}"),
            Some(json!({ "active": true })),
        )
        .await;
    assert_eq!(patched.body["active"], true, "{}", patched.body);
    let one = app
        .send(Method::GET, &format!("/subscriptions/{id}"), None)
        .await;
    assert_eq!(one.body["eventType"], "contact.propertyChange");
    let listed = app.send(Method::GET, "/subscriptions", None).await;
    assert_eq!(listed.body["results"].as_array().unwrap().len(), 1);

    let deleted = app
        .send(Method::DELETE, &format!("/subscriptions/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    let gone = app
        .send(Method::GET, &format!("/subscriptions/{id}"), None)
        .await;
    assert_error(&gone, 404, "OBJECT_NOT_FOUND");
    let cleared = app.send(Method::DELETE, "/settings", None).await;
    assert_eq!(cleared.status, 204);
    assert_eq!(app.send(Method::GET, "/settings", None).await.status, 404);
}

#[tokio::test]
async fn contact_changes_are_delivered_signed_in_hubspots_event_shape() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    let mut hook = receiver(0).await;
    let subs = app
        .subscribe(
            &hook.url,
            &[
                "contact.creation",
                "contact.propertyChange:firstname",
                "contact.deletion",
            ],
        )
        .await;

    let id = app
        .hs
        .contact(json!({ "email": "ada@example.com", "firstname": "Ada" }))
        .await;
    let (headers, body) = hook.next().await;
    let created = app.verified(&hook.url, &headers, &body);
    app.hs
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({ "properties": { "firstname": "Augusta", "lastname": "King" } }),
        )
        .await;
    let (headers, body) = hook.next().await;
    let changed = app.verified(&hook.url, &headers, &body);
    let r = sb
        .http
        .delete(sb.url(&app.hs.admin(&format!("/contacts/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (headers, body) = hook.next().await;
    let deleted = app.verified(&hook.url, &headers, &body);

    assert_eq!(created.len(), 1, "{created:?}");
    let e = &created[0];
    assert_eq!(e["subscriptionType"], "contact.creation");
    assert_eq!(e["objectId"].to_string(), id);
    assert_eq!(e["subscriptionId"].to_string(), subs[0]);
    assert_eq!(e["portalId"].to_string(), app.hs.portal);
    assert_eq!(e["appId"], app.id);
    assert_eq!(e["attemptNumber"], 0);
    assert_eq!(e["changeSource"], "INTEGRATION");
    assert!(e["eventId"].is_u64() && e["occurredAt"].is_i64(), "{e}");
    // Only the subscribed property is notified, with its new value.
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["subscriptionType"], "contact.propertyChange");
    assert_eq!(changed[0]["propertyName"], "firstname");
    assert_eq!(changed[0]["propertyValue"], "Augusta");
    assert_eq!(deleted[0]["subscriptionType"], "contact.deletion");
    assert_eq!(deleted[0]["changeSource"], "CRM_UI");
}

#[tokio::test]
async fn a_bulk_change_goes_in_batches_of_a_hundred_events() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    let mut hook = receiver(0).await;
    app.subscribe(&hook.url, &["contact.creation"]).await;
    let contacts: Vec<Value> = (0..150)
        .map(|i| json!({ "properties": { "email": format!("bulk{i}@example.com") } }))
        .collect();

    let (status, body) = sb
        .admin_post(&app.hs.admin("/contacts"), json!({ "contacts": contacts }))
        .await;
    assert_eq!(status, 201, "{body}");

    let (headers, first) = hook.next().await;
    let first = app.verified(&hook.url, &headers, &first);
    let (headers, second) = hook.next().await;
    let second = app.verified(&hook.url, &headers, &second);
    assert_eq!((first.len(), second.len()), (100, 50));
}

#[tokio::test]
async fn a_failed_delivery_is_retried_signed_anew_with_its_attempt_number() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    let r = sb
        .http
        .patch(sb.url(&app.hs.admin("/settings")))
        .json(&json!({ "webhook_retry_ms": 50 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut hook = receiver(2).await;
    app.subscribe(&hook.url, &["contact.creation"]).await;

    app.hs
        .contact(json!({ "email": "retry@example.com" }))
        .await;

    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (headers, body) = hook.next().await;
        attempts.push(app.verified(&hook.url, &headers, &body)[0].clone());
    }
    let numbers: Vec<&Value> = attempts.iter().map(|e| &e["attemptNumber"]).collect();
    assert_eq!(numbers, [&json!(0), &json!(1), &json!(2)]);
    assert!(
        attempts
            .iter()
            .all(|e| e["eventId"] == attempts[0]["eventId"])
    );
    let log = deliveries(&sb).await;
    let outcomes: Vec<&str> = log.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["failed", "failed", "delivered"]);
}

#[tokio::test]
async fn a_dropped_or_deleted_subscription_delivers_nothing() {
    let sb = TestSandbox::start_with(0).await;
    let app = App::of(Hs::empty(&sb).await).await;
    let mut hook = receiver(0).await;
    let subs = app.subscribe(&hook.url, &["contact.creation"]).await;
    let r = sb
        .http
        .put(sb.url("/admin/notify/faults"))
        .json(&json!({ "system": "hubspot", "drop": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    app.hs
        .contact(json!({ "email": "dropped@example.com" }))
        .await;
    app.hs.contact(json!({ "email": "kept@example.com" })).await;
    let (headers, body) = hook.next().await;
    let events = app.verified(&hook.url, &headers, &body);
    let r = sb
        .http
        .delete(sb.url(&format!(
            "/admin/hubspot/apps/{}/subscriptions/{}",
            app.id, subs[0]
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.hs
        .contact(json!({ "email": "unheard@example.com" }))
        .await;

    assert_eq!(events.len(), 1);
    let log = deliveries(&sb).await;
    let outcomes: Vec<&str> = log.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["dropped", "delivered"]);
    let listed = app.send(reqwest::Method::GET, "/subscriptions", None).await;
    assert_eq!(listed.body["results"], json!([]));
}
