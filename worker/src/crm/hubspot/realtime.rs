//! HubSpot's change notifications: the Webhooks API v3 of an OAuth app.
//!
//! - Webhooks belong to a HubSpot app, not to a portal: the app's settings
//!   name one `targetUrl` and its subscriptions fire for every portal that
//!   installed it. They are managed with the app id and the developer
//!   account's API key (`hapikey`), which an OAuth connector's credentials
//!   carry as `appId` and `developerApiKey`. Private apps get no webhooks
//!   through the API, and without the two fields an OAuth connector cannot
//!   subscribe: `watch` answers [`watch_unavailable`] with what to add.
//!   One app serves one connector: a second connector of the same app
//!   would move its `targetUrl`.
//! - Subscribing: `PUT /webhooks/v3/{appId}/settings` with the connector's
//!   URL, then `contact.creation`, `contact.deletion` and one
//!   `contact.propertyChange` per CRM field the connector reads, each
//!   reused when the app already has it (activated if paused) and created
//!   otherwise, so watching again duplicates nothing. The watch id is the
//!   subscription ids joined by commas. Subscriptions do not expire:
//!   "renewing" reads the app's settings and subscriptions, answers
//!   [`watch_gone`] when the creation or deletion subscription, or the
//!   target URL, is gone, and adds subscriptions for newly mapped fields.
//!   Unwatching deletes our subscriptions, then the settings once the app
//!   has none left.
//! - Verifying: `X-HubSpot-Signature-v3` is the base64 HMAC-SHA256, keyed
//!   with the app's client secret ([`Subscriptions::signing_secret`]), of
//!   method, URL, body and `X-HubSpot-Request-Timestamp`; a timestamp more
//!   than five minutes off is refused. The body is a batch of up to 100
//!   events naming contacts by `objectId`.

use std::collections::BTreeSet;
use std::time::Instant;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Auth, HubspotClient, kit};
use crate::crm::CrmError;
use crate::crm::realtime::{
    Inbound, Notice, Notifications, Refused, Subscriptions, Watch, WatchRequest, same_secret,
    watch_gone, watch_unavailable,
};
use crate::crm::retry::transport_error;
use crate::metrics::CallStatus;

/// The oldest (or furthest ahead) a signed timestamp may be.
pub const TIMESTAMP_WINDOW: chrono::Duration = chrono::Duration::minutes(5);
/// Calls HubSpot makes to the target URL at once (HubSpot's floor is 5).
const MAX_CONCURRENT_REQUESTS: u32 = 10;
/// Events a delivery carries at most.
pub const MAX_EVENTS: usize = 100;

/// The app whose webhooks a client manages.
#[derive(Debug)]
pub(super) struct WebhookApp {
    pub id: String,
    pub developer_api_key: SecretString,
}

/// One of the app's subscriptions as HubSpot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    id: String,
    event_type: String,
    property: Option<String>,
    active: bool,
}

/// The subscriptions a connector wants: (event type, property).
fn wanted(fields: &[String]) -> Vec<(&'static str, Option<String>)> {
    let mut out = vec![("contact.creation", None), ("contact.deletion", None)];
    let properties: BTreeSet<&str> = fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .collect();
    out.extend(
        properties
            .into_iter()
            .map(|p| ("contact.propertyChange", Some(p.to_owned()))),
    );
    out
}

impl HubspotClient {
    /// The app, or what a person must add to the credentials for real time.
    fn webhook_app(&self) -> Result<&WebhookApp, CrmError> {
        match (&self.auth, &self.app) {
            (Auth::OAuth { .. }, Some(app)) => Ok(app),
            (Auth::OAuth { .. }, None) => Err(watch_unavailable(
                "real time needs the OAuth app's webhooks: add the app's id (appId) and the developer account's API key (developerApiKey, HubSpot developer account > Apps > API key) to the connector's credentials",
            )),
            (Auth::Static(_), _) => Err(watch_unavailable(
                "HubSpot sends change notifications to OAuth apps only, not to private apps' tokens: connect with an OAuth app (clientId, clientSecret, refreshToken, appId, developerApiKey) for real time",
            )),
        }
    }

    /// What a connection test says about real time: `None` when the
    /// credentials can manage the app's webhooks (or are a private app's,
    /// whose realtime health says it all), else what to do.
    pub(super) async fn webhooks_problem(&self) -> Option<String> {
        match (&self.auth, &self.app) {
            (Auth::Static(_), _) => None,
            (Auth::OAuth { .. }, None) => Some(
                "real time is off: add the OAuth app's appId and its developer account's developerApiKey for HubSpot changes to arrive within seconds (the schedule syncs meanwhile)".to_owned(),
            ),
            (Auth::OAuth { .. }, Some(_)) => {
                match self.webhooks_call(Method::GET, "/subscriptions", None).await {
                    Err(CrmError::Unauthorized(m)) => Some(format!(
                        "real time is off: {m} (the schedule syncs meanwhile)"
                    )),
                    _ => None,
                }
            }
        }
    }

    /// One call of the webhooks API, authorised by the developer API key,
    /// with retries of the retryable failures.
    async fn webhooks_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let app = self.webhook_app()?;
        let path = format!("/webhooks/v3/{}{path}", app.id);
        self.policy
            .run(
                "HubSpot",
                &path,
                || self.webhooks_once(method.clone(), &path, app, body),
                |delay| tokio::time::sleep(delay),
            )
            .await
    }

    async fn webhooks_once(
        &self,
        method: Method,
        path: &str,
        app: &WebhookApp,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let mut request = self
            .http
            .request(method.clone(), &format!("{}{path}", self.base))?
            .query(&[("hapikey", app.developer_api_key.expose_secret())])
            .header("accept", "application/json")
            .timeout(self.policy.request_timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await;
        self.count(method.as_str(), path, CallStatus::of(&response), started);
        let response = response.map_err(|e| transport_error("HubSpot", e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        let text = response
            .text()
            .await
            .map_err(|e| transport_error("HubSpot", e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let category = body["category"].as_str().unwrap_or_default();
        let message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CrmError::Unauthorized(format!(
                "HubSpot refused the developer API key or app id for webhooks ({category}: {message}): copy the API key of the developer account that owns app {} and update the connector",
                app.id
            )),
            StatusCode::NOT_FOUND => CrmError::Rejected {
                code: "NOT_FOUND_IN_CRM".into(),
                field: None,
                message: format!("HubSpot: {message}"),
            },
            StatusCode::TOO_MANY_REQUESTS => CrmError::RateLimited {
                retry_after: Some(retry_after.unwrap_or(std::time::Duration::from_secs(10))),
            },
            s if s.is_server_error() => {
                CrmError::Unavailable(format!("HubSpot answered {}: {message}", s.as_u16()))
            }
            _ => CrmError::Rejected {
                code: "CRM_VALIDATION".into(),
                field: None,
                message: format!("HubSpot refused the webhook settings: {category}: {message}"),
            },
        })
    }

    /// The app's webhook target URL, if it has settings.
    async fn target_url(&self) -> Result<Option<String>, CrmError> {
        match self.webhooks_call(Method::GET, "/settings", None).await {
            Ok(body) => Ok(body["targetUrl"].as_str().map(str::to_owned)),
            Err(CrmError::Rejected { code, .. }) if code == "NOT_FOUND_IN_CRM" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The app's subscriptions.
    async fn app_subscriptions(&self) -> Result<Vec<Subscription>, CrmError> {
        let body = self
            .webhooks_call(Method::GET, "/subscriptions", None)
            .await?;
        Ok(body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let id = match &s["id"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(Subscription {
                    id,
                    event_type: s["eventType"].as_str()?.to_owned(),
                    property: s["propertyName"].as_str().map(str::to_owned),
                    active: s["active"].as_bool().unwrap_or(true),
                })
            })
            .collect())
    }

    /// Deletes one of the app's subscriptions (one gone already is fine).
    async fn delete_subscription(&self, id: &str) -> Result<(), CrmError> {
        match self
            .webhooks_call(Method::DELETE, &format!("/subscriptions/{id}"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(CrmError::Rejected { code, .. }) if code == "NOT_FOUND_IN_CRM" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes every wanted subscription exist and be active; their ids.
    async fn ensure_subscriptions(
        &self,
        have: &[Subscription],
        fields: &[String],
    ) -> Result<Vec<String>, CrmError> {
        let mut ids = Vec::new();
        for (event_type, property) in wanted(fields) {
            let found = have
                .iter()
                .find(|s| s.event_type == event_type && s.property == property);
            let id = match found {
                Some(s) if s.active => s.id.clone(),
                Some(s) => {
                    self.webhooks_call(
                        Method::PATCH,
                        &format!("/subscriptions/{}", s.id),
                        Some(&json!({ "active": true })),
                    )
                    .await?;
                    s.id.clone()
                }
                None => {
                    let mut body = json!({ "eventType": event_type, "active": true });
                    if let Some(p) = &property {
                        body["propertyName"] = json!(p);
                    }
                    let created = self
                        .webhooks_call(Method::POST, "/subscriptions", Some(&body))
                        .await?;
                    match &created["id"] {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        other => {
                            return Err(CrmError::Protocol(format!(
                                "webhooks: the reply has no subscription id ({other})"
                            )));
                        }
                    }
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl Subscriptions for HubspotClient {
    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        self.webhook_app()?;
        if !request.modules.contains(&CrmModule::Contacts) {
            return Err(watch_unavailable(
                "the connector imports no contacts: HubSpot has nothing to notify",
            ));
        }
        let settings = json!({
            "targetUrl": request.notify_url,
            "throttling": { "maxConcurrentRequests": MAX_CONCURRENT_REQUESTS },
        });
        self.webhooks_call(Method::PUT, "/settings", Some(&settings))
            .await?;
        let have = self.app_subscriptions().await?;
        let ids = self.ensure_subscriptions(&have, request.fields).await?;
        Ok(Watch {
            id: ids.join(","),
            expires_at: None,
        })
    }

    async fn renew(&self, watch: &Watch, request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        self.webhook_app()?;
        let target = self.target_url().await?;
        if target.as_deref() != Some(request.notify_url) {
            return Err(watch_gone(match target {
                None => "the HubSpot app has no webhook target URL any more".to_owned(),
                Some(_) => "the HubSpot app's webhook target URL was changed to another address (is the app used by another connector?)".to_owned(),
            }));
        }
        let have = self.app_subscriptions().await?;
        let held = |event_type: &str| {
            have.iter().any(|s| {
                s.event_type == event_type && s.active && watch.id.split(',').any(|id| id == s.id)
            })
        };
        for event_type in ["contact.creation", "contact.deletion"] {
            if !held(event_type) {
                return Err(watch_gone(format!(
                    "the HubSpot app's {event_type} subscription was deleted or paused"
                )));
            }
        }
        let ids = self.ensure_subscriptions(&have, request.fields).await?;
        // Ours to fields the connector no longer reads (a mapping turned
        // off or removed) go: HubSpot would notify their changes for nothing.
        let unread = have.iter().filter(|s| {
            s.event_type == "contact.propertyChange"
                && watch.id.split(',').any(|id| id == s.id)
                && !ids.contains(&s.id)
        });
        for s in unread {
            self.delete_subscription(&s.id).await?;
        }
        Ok(Watch {
            id: ids.join(","),
            expires_at: None,
        })
    }

    async fn unwatch(&self, watch: &Watch) -> Result<(), CrmError> {
        for id in watch.id.split(',').filter(|id| !id.is_empty()) {
            self.delete_subscription(id).await?;
        }
        if self.app_subscriptions().await?.is_empty() {
            match self.webhooks_call(Method::DELETE, "/settings", None).await {
                Ok(_) => {}
                Err(CrmError::Rejected { code, .. }) if code == "NOT_FOUND_IN_CRM" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn signing_secret(&self) -> Option<SecretString> {
        match &self.auth {
            Auth::OAuth { client_secret, .. } if self.app.is_some() => Some(client_secret.clone()),
            _ => None,
        }
    }
}

/// How HubSpot's webhook deliveries are verified and read.
#[derive(Debug)]
pub struct HubspotNotifications;

/// The v3 signature of a call: base64 HMAC-SHA256 of method, URL, body and
/// timestamp, keyed with the app's client secret.
pub fn signature_v3(secret: &str, method: &str, url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(method.as_bytes());
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Notifications for HubspotNotifications {
    /// HubSpot counts a delivery failed after 5 seconds.
    fn answer_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }

    fn verify(
        &self,
        inbound: &Inbound<'_>,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Notice, Refused> {
        let header = |name: &str| {
            inbound
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim())
        };
        let signature = header("x-hubspot-signature-v3")
            .ok_or_else(|| Refused("no X-HubSpot-Signature-v3".into()))?;
        let timestamp = header("x-hubspot-request-timestamp")
            .ok_or_else(|| Refused("no X-HubSpot-Request-Timestamp".into()))?;
        let at = timestamp
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(|| Refused("the timestamp is not epoch milliseconds".into()))?;
        if (now - at).abs() > TIMESTAMP_WINDOW {
            return Err(Refused(format!(
                "the timestamp is more than five minutes off ({at})"
            )));
        }
        let expected = signature_v3(secret, inbound.method, inbound.url, inbound.body, timestamp);
        if !same_secret(signature.as_bytes(), expected.as_bytes()) {
            return Err(Refused("wrong signature".into()));
        }
        let events: Vec<Value> = serde_json::from_slice(inbound.body)
            .map_err(|_| Refused("the body is not a JSON array".into()))?;
        Ok(read_events(&events))
    }
}

/// The contacts a batch of events names, each once.
fn read_events(events: &[Value]) -> Notice {
    let mut changed: Vec<(CrmModule, String)> = Vec::new();
    let mut deleted: Vec<(CrmModule, String)> = Vec::new();
    let id_of = |v: &Value| match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    };
    for event in events.iter().take(MAX_EVENTS) {
        let Some(id) = id_of(&event["objectId"]) else {
            continue;
        };
        let record = (CrmModule::Contacts, id);
        let list = match event["subscriptionType"].as_str() {
            Some("contact.creation" | "contact.propertyChange" | "contact.restore") => &mut changed,
            Some("contact.deletion" | "contact.privacyDeletion") => &mut deleted,
            _ => continue,
        };
        if !list.contains(&record) {
            list.push(record);
        }
    }
    // A contact created then deleted in one batch is deleted.
    changed.retain(|r| !deleted.contains(r));
    Notice { changed, deleted }
}

/// The credentials' app, when they carry both its id and the developer key.
pub(super) fn app_of(credentials: &crate::credentials::Credentials) -> Option<WebhookApp> {
    if credentials.tag() != kit::TAG {
        return None;
    }
    let id = credentials
        .secret("appId")?
        .expose_secret()
        .trim()
        .to_owned();
    let key = credentials.secret("developerApiKey")?.clone();
    (!id.is_empty() && !key.expose_secret().trim().is_empty()).then_some(WebhookApp {
        id,
        developer_api_key: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        body: &str,
        secret: &str,
        timestamp: i64,
        now: DateTime<Utc>,
    ) -> Result<Notice, Refused> {
        let url = "https://crmsync.example/crm-events/abc";
        let ts = timestamp.to_string();
        let headers = vec![
            (
                "x-hubspot-signature-v3".to_owned(),
                signature_v3(secret, "POST", url, body.as_bytes(), &ts),
            ),
            ("x-hubspot-request-timestamp".to_owned(), ts),
            ("x-hubspot-signature-version".to_owned(), "v3".to_owned()),
        ];
        HubspotNotifications.verify(
            &Inbound {
                headers: &headers,
                url,
                method: "POST",
                body: body.as_bytes(),
            },
            "client-secret",
            now,
        )
    }

    fn events() -> String {
        json!([
            { "objectId": 101, "subscriptionType": "contact.propertyChange", "propertyName": "firstname", "propertyValue": "Ada" },
            { "objectId": 101, "subscriptionType": "contact.propertyChange", "propertyName": "lastname", "propertyValue": "King" },
            { "objectId": 102, "subscriptionType": "contact.creation" },
            { "objectId": 103, "subscriptionType": "contact.deletion" },
            { "objectId": 104, "subscriptionType": "deal.creation" },
            { "objectId": "1 OR 1=1", "subscriptionType": "contact.creation" },
        ])
        .to_string()
    }

    #[test]
    fn a_signed_batch_names_its_contacts_once() {
        let now = Utc::now();
        let notice = call(&events(), "client-secret", now.timestamp_millis(), now).unwrap();
        assert_eq!(
            notice.changed,
            vec![
                (CrmModule::Contacts, "101".to_owned()),
                (CrmModule::Contacts, "102".to_owned())
            ]
        );
        assert_eq!(
            notice.deleted,
            vec![(CrmModule::Contacts, "103".to_owned())]
        );
    }

    #[test]
    fn a_wrong_secret_or_an_old_timestamp_is_refused() {
        let now = Utc::now();
        assert!(call(&events(), "another-secret", now.timestamp_millis(), now).is_err());
        let old = now - chrono::Duration::minutes(6);
        assert!(call(&events(), "client-secret", old.timestamp_millis(), now).is_err());
        let late = now - chrono::Duration::minutes(4);
        assert!(call(&events(), "client-secret", late.timestamp_millis(), now).is_ok());
    }

    #[test]
    fn a_changed_body_breaks_the_signature() {
        let now = Utc::now();
        let ts = now.timestamp_millis().to_string();
        let url = "https://crmsync.example/crm-events/abc";
        let headers = vec![
            (
                "x-hubspot-signature-v3".to_owned(),
                signature_v3("client-secret", "POST", url, b"[]", &ts),
            ),
            ("x-hubspot-request-timestamp".to_owned(), ts),
        ];
        let body = events();
        let refused = HubspotNotifications.verify(
            &Inbound {
                headers: &headers,
                url,
                method: "POST",
                body: body.as_bytes(),
            },
            "client-secret",
            now,
        );
        assert!(refused.is_err());
    }

    #[test]
    fn the_wanted_subscriptions_are_creation_deletion_and_each_field() {
        let fields = vec![
            "lastname".to_owned(),
            "email".to_owned(),
            "email".to_owned(),
        ];
        assert_eq!(
            wanted(&fields),
            vec![
                ("contact.creation", None),
                ("contact.deletion", None),
                ("contact.propertyChange", Some("email".to_owned())),
                ("contact.propertyChange", Some("lastname".to_owned())),
            ]
        );
    }
}
