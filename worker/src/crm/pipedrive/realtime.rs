//! Pipedrive's change notifications: webhooks v2 on persons.
//!
//! - Subscribing: `POST /api/v1/webhooks` with `subscription_url`, `event_action: "*"`,
//!   `event_object: "person"`, `version: "2.0"` and the basic-auth
//!   credentials Pipedrive sends back on each call (user [`AUTH_USER`], the
//!   subscription's secret as password). A webhook of ours already at that
//!   URL is deleted first, so there is never two. Webhooks do not expire;
//!   "renewing" reads `GET /api/v1/webhooks` and answers [`watch_gone`] when the
//!   webhook was deleted (in Pipedrive's settings, or by Pipedrive after
//!   failed deliveries). `DELETE /api/v1/webhooks/{id}` ends it.
//! - Verifying: the `Authorization: Basic` header must carry exactly those
//!   credentials (compared in constant time); the body's `meta` names the
//!   person (`entity_id`) and the action (`create`, `change`, `delete`).

use crmsync_entity::enums::CrmModule;
use reqwest::Method;
use serde_json::{Value, json};

use super::PipedriveClient;
use crate::crm::CrmError;
use crate::crm::realtime::{
    Inbound, Notice, Notifications, Refused, Subscriptions, Watch, WatchRequest, same_secret,
    watch_gone,
};

/// The basic-auth user name of our webhooks.
pub const AUTH_USER: &str = "crmsync";

impl PipedriveClient {
    /// Our webhooks: (id, subscription URL).
    async fn webhooks(&self) -> Result<Vec<(String, String)>, CrmError> {
        let reply = self
            .call(Method::GET, "/api/v1/webhooks", &[], None, false)
            .await?;
        Ok(reply
            .data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| {
                let id = match &w["id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                let url = w["subscription_url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Some((id, url))
            })
            .collect())
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), CrmError> {
        match self
            .call(
                Method::DELETE,
                &format!("/api/v1/webhooks/{id}"),
                &[],
                None,
                false,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone already: what we wanted.
            Err(CrmError::Rejected { code, .. }) if code == "NOT_FOUND_IN_CRM" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait::async_trait]
impl Subscriptions for PipedriveClient {
    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        for (id, url) in self.webhooks().await? {
            if url == request.notify_url {
                self.delete_webhook(&id).await?;
            }
        }
        let body = json!({
            "subscription_url": request.notify_url,
            "event_action": "*",
            "event_object": "person",
            "version": "2.0",
            "http_auth_user": AUTH_USER,
            "http_auth_password": request.secret,
        });
        let reply = self
            .call(Method::POST, "/api/v1/webhooks", &[], Some(&body), false)
            .await?;
        let id = match &reply.data["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.is_empty() => s.clone(),
            other => {
                return Err(CrmError::Protocol(format!(
                    "webhooks: the reply has no webhook id ({other})"
                )));
            }
        };
        Ok(Watch {
            id,
            expires_at: None,
        })
    }

    async fn renew(&self, watch: &Watch, _request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        if self.webhooks().await?.iter().any(|(id, _)| *id == watch.id) {
            Ok(watch.clone())
        } else {
            Err(watch_gone(format!(
                "Pipedrive has no webhook {} any more",
                watch.id
            )))
        }
    }

    async fn unwatch(&self, watch: &Watch) -> Result<(), CrmError> {
        self.delete_webhook(&watch.id).await
    }
}

/// How Pipedrive's webhook calls are verified and read.
#[derive(Debug)]
pub struct PipedriveNotifications;

impl Notifications for PipedriveNotifications {
    /// Pipedrive waits 10 seconds for an answer.
    fn answer_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }

    fn verify(
        &self,
        inbound: &Inbound<'_>,
        secret: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Notice, Refused> {
        use base64::Engine as _;
        let header = inbound
            .headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.trim())
            .ok_or_else(|| Refused("no basic auth".into()))?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| Refused("not basic auth".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Refused("basic auth is not base64".into()))?;
        let expected = format!("{AUTH_USER}:{secret}");
        if !same_secret(&decoded, expected.as_bytes()) {
            return Err(Refused("wrong basic-auth credentials".into()));
        }
        let body: Value = serde_json::from_slice(inbound.body)
            .map_err(|_| Refused("the body is not JSON".into()))?;
        let meta = &body["meta"];
        let entity = meta["entity"].as_str().or_else(|| meta["object"].as_str());
        if entity != Some("person") {
            return Ok(Notice::default());
        }
        let id = match &meta["entity_id"] {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return Ok(Notice::default()),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Notice::default());
        }
        let record = vec![(CrmModule::Persons, id)];
        Ok(match meta["action"].as_str() {
            Some("delete" | "deleted") => Notice {
                changed: Vec::new(),
                deleted: record,
            },
            Some("create" | "change" | "added" | "updated" | "merged") => Notice {
                changed: record,
                deleted: Vec::new(),
            },
            _ => Notice::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn call(auth: &str, body: Value) -> Result<Notice, Refused> {
        let headers = vec![("authorization".to_owned(), auth.to_owned())];
        let body = body.to_string();
        PipedriveNotifications.verify(
            &Inbound {
                headers: &headers,
                url: "http://x/crm-events/t",
                method: "POST",
                body: body.as_bytes(),
            },
            "s3cret",
            chrono::Utc::now(),
        )
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    fn change(action: &str, id: Value) -> Value {
        json!({ "meta": { "action": action, "entity": "person", "entity_id": id, "version": "2.0" }, "data": {}, "previous": null })
    }

    #[test]
    fn a_change_with_our_credentials_names_the_person() {
        let notice = call(&basic(AUTH_USER, "s3cret"), change("change", json!("42"))).unwrap();
        assert_eq!(notice.changed, vec![(CrmModule::Persons, "42".to_owned())]);
        let notice = call(&basic(AUTH_USER, "s3cret"), change("delete", json!(42))).unwrap();
        assert_eq!(notice.deleted, vec![(CrmModule::Persons, "42".to_owned())]);
    }

    #[test]
    fn wrong_or_missing_credentials_are_refused() {
        for auth in [
            basic(AUTH_USER, "s3cres"),
            basic("someone", "s3cret"),
            basic(AUTH_USER, "s3cret "),
            "Bearer s3cret".to_owned(),
            String::new(),
        ] {
            assert!(call(&auth, change("change", json!("1"))).is_err(), "{auth}");
        }
    }

    #[test]
    fn other_objects_and_odd_ids_name_nothing() {
        let ok = basic(AUTH_USER, "s3cret");
        let deal = json!({ "meta": { "action": "change", "entity": "deal", "entity_id": "1" } });
        assert!(call(&ok, deal).unwrap().is_empty());
        assert!(
            call(&ok, change("change", json!("1 OR 1=1")))
                .unwrap()
                .is_empty()
        );
    }
}
