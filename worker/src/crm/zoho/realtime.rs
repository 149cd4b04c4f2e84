//! Zoho CRM's change notifications: the Notification API.
//!
//! - Subscribing: `POST /crm/v8/actions/watch` with one channel: a numeric
//!   `channel_id` made from our subscription's id, `events` `<Module>.all`
//!   for each imported module, `notify_url`, the subscription's secret as
//!   `token` (Zoho echoes it in every notification) and a `channel_expiry`
//!   [`CHANNEL_LIFETIME`] ahead (Zoho allows a day at most). Renewing is a
//!   `PATCH` with a new expiry after `GET` shows the channel still held; a
//!   channel Zoho no longer holds (expired, removed) is [`watch_gone`].
//!   `DELETE ?channel_ids=` ends it. Needs the `ZohoCRM.notifications.ALL`
//!   scope: without it Zoho answers OAUTH_SCOPE_MISMATCH, which the engine
//!   shows as DEGRADED with the words to make a new grant code.
//! - Verifying: the body's `token` must equal the secret (compared in
//!   constant time); `module`, `operation` (`insert`, `update`, `delete`)
//!   and `ids` name the records.

use chrono::{SecondsFormat, Utc};
use crmsync_entity::enums::CrmModule;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use super::{ZohoClient, module_name};
use crate::crm::CrmError;
use crate::crm::realtime::{
    Inbound, Notice, Notifications, Refused, Subscriptions, Watch, WatchRequest, same_secret,
    watch_gone,
};

/// How long a channel is asked for (renewed an hour before it ends).
pub const CHANNEL_LIFETIME: chrono::Duration = chrono::Duration::hours(23);
/// The scope the Notification API needs.
pub const NOTIFICATIONS_SCOPE: &str = "ZohoCRM.notifications.ALL";

/// Zoho's channel ids are longs: ours is derived from the subscription id.
pub fn channel_id(subscription: &str) -> String {
    let digest = sha2::Sha256::digest(subscription.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // 15 digits at most, never zero.
    (u64::from_be_bytes(bytes) % 900_000_000_000_000 + 100_000_000_000_000).to_string()
}

fn channel(request: &WatchRequest<'_>, expiry: chrono::DateTime<Utc>) -> Value {
    let events: Vec<String> = request
        .modules
        .iter()
        .filter(|m| matches!(m, CrmModule::Leads | CrmModule::Contacts))
        .map(|m| format!("{}.all", module_name(*m)))
        .collect();
    json!({ "watch": [{
        "channel_id": channel_id(request.channel_id),
        "events": events,
        "channel_expiry": expiry.to_rfc3339_opts(SecondsFormat::Secs, true),
        "token": request.secret,
        "notify_url": request.notify_url,
    }] })
}

impl ZohoClient {
    /// The channels Zoho holds for the org (none: 204).
    async fn channels(&self) -> Result<Vec<String>, CrmError> {
        let reply = self
            .call(Method::GET, "/actions/watch", &[], None, None)
            .await?;
        Ok(reply.body["watch"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| match &c["channel_id"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect())
    }

    /// A per-channel failure in a 200 reply.
    fn refused_channel(body: &Value) -> Option<CrmError> {
        let item = body["watch"].as_array()?.first()?;
        (item["status"].as_str() != Some("success")).then(|| CrmError::Rejected {
            code: "CRM_VALIDATION".into(),
            field: item["details"]["api_name"].as_str().map(str::to_owned),
            message: format!(
                "Zoho refused the notification channel: {}",
                item["message"].as_str().unwrap_or("no reason given")
            ),
        })
    }

    /// Whether the grant may use the Notification API: `None` when it may,
    /// else what a person should do.
    pub(super) async fn notifications_scope_problem(&self) -> Option<String> {
        match self
            .call_raw(Method::GET, "/actions/watch", &[], None, None)
            .await
        {
            Err(CrmError::Unauthorized(m)) if m.contains("scope") => Some(format!(
                "real time is off: the grant lacks the scope {NOTIFICATIONS_SCOPE}; make a new grant code with scope {},{NOTIFICATIONS_SCOPE} and update the connector for CRM changes to arrive within seconds (the schedule syncs meanwhile)",
                super::SCOPE
            )),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl Subscriptions for ZohoClient {
    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        let expiry = Utc::now() + CHANNEL_LIFETIME;
        let reply = self
            .call(
                Method::POST,
                "/actions/watch",
                &[],
                Some(&channel(request, expiry)),
                None,
            )
            .await?;
        if let Some(refused) = Self::refused_channel(&reply.body) {
            return Err(refused);
        }
        Ok(Watch {
            id: channel_id(request.channel_id),
            expires_at: Some(expiry),
        })
    }

    async fn renew(&self, watch: &Watch, request: &WatchRequest<'_>) -> Result<Watch, CrmError> {
        if !self.channels().await?.contains(&watch.id) {
            return Err(watch_gone(format!(
                "Zoho holds no channel {} any more",
                watch.id
            )));
        }
        let expiry = Utc::now() + CHANNEL_LIFETIME;
        match self
            .call(
                Method::PATCH,
                "/actions/watch",
                &[],
                Some(&channel(request, expiry)),
                None,
            )
            .await
        {
            Ok(reply) => match Self::refused_channel(&reply.body) {
                Some(refused) => Err(refused),
                None => Ok(Watch {
                    id: watch.id.clone(),
                    expires_at: Some(expiry),
                }),
            },
            // Expired between the two calls.
            Err(CrmError::Rejected { field, message, .. })
                if field.as_deref() == Some("channel_id") =>
            {
                Err(watch_gone(message))
            }
            Err(e) => Err(e),
        }
    }

    async fn unwatch(&self, watch: &Watch) -> Result<(), CrmError> {
        self.call(
            Method::DELETE,
            "/actions/watch",
            &[("channel_ids", watch.id.clone())],
            None,
            None,
        )
        .await
        .map(|_| ())
    }
}

/// How Zoho's notifications are verified and read.
#[derive(Debug)]
pub struct ZohoNotifications;

impl Notifications for ZohoNotifications {
    fn verify(
        &self,
        inbound: &Inbound<'_>,
        secret: &str,
        _now: chrono::DateTime<Utc>,
    ) -> Result<Notice, Refused> {
        let body: Value = serde_json::from_slice(inbound.body)
            .map_err(|_| Refused("the body is not JSON".into()))?;
        let token = body["token"].as_str().unwrap_or_default();
        if !same_secret(token.as_bytes(), secret.as_bytes()) {
            return Err(Refused("wrong or missing token".into()));
        }
        let module = match body["module"].as_str() {
            Some(m) if m.eq_ignore_ascii_case("Leads") => CrmModule::Leads,
            Some(m) if m.eq_ignore_ascii_case("Contacts") => CrmModule::Contacts,
            _ => return Ok(Notice::default()),
        };
        let ids: Vec<(CrmModule, String)> = body["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| match id {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(|id| (module, id))
            .collect();
        Ok(match body["operation"].as_str() {
            Some("delete") => Notice {
                changed: Vec::new(),
                deleted: ids,
            },
            Some("insert" | "update") => Notice {
                changed: ids,
                deleted: Vec::new(),
            },
            _ => Notice::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: Value) -> Result<Notice, Refused> {
        let body = body.to_string();
        ZohoNotifications.verify(
            &Inbound {
                headers: &[],
                url: "http://x/crm-events/t",
                method: "POST",
                body: body.as_bytes(),
            },
            "tok",
            Utc::now(),
        )
    }

    #[test]
    fn the_echoed_token_is_checked_and_the_ids_read() {
        let ok = call(
            json!({ "token": "tok", "module": "Leads", "operation": "update", "ids": ["1", 2] }),
        )
        .unwrap();
        assert_eq!(
            ok.changed,
            vec![
                (CrmModule::Leads, "1".to_owned()),
                (CrmModule::Leads, "2".to_owned())
            ]
        );
        let gone = call(
            json!({ "token": "tok", "module": "Contacts", "operation": "delete", "ids": ["3"] }),
        )
        .unwrap();
        assert_eq!(gone.deleted, vec![(CrmModule::Contacts, "3".to_owned())]);
        for bad in [
            json!({ "token": "tak", "module": "Leads", "operation": "update", "ids": ["1"] }),
            json!({ "module": "Leads", "ids": ["1"] }),
        ] {
            assert!(call(bad).is_err());
        }
    }

    #[test]
    fn channel_ids_are_stable_longs() {
        let id = channel_id("01JABCDEF");
        assert_eq!(id, channel_id("01JABCDEF"));
        assert_eq!(id.len(), 15);
        assert_ne!(id, channel_id("01JABCDEG"));
    }
}
