//! OAuth access tokens shared in the process: every client of one OAuth app
//! and refresh token uses one cached access token, refreshed single-flight
//! (the slot's lock is held across the refresh, so callers queued behind it
//! find the new token instead of refreshing again). CRMs cap how many access
//! tokens a refresh token may mint, and runs one after another reuse one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::crm::CrmError;
use crate::crm::retry::transport_error;

/// A cached access token.
#[derive(Debug)]
pub(crate) struct AccessToken {
    /// The token.
    pub value: String,
    /// Where API calls go, when the token reply says (else empty).
    pub api_domain: String,
    /// When to renew it: a little before it expires.
    pub renew_at: Instant,
}

impl AccessToken {
    /// A token that lives `lifetime`, renewed `margin` early (at most a
    /// quarter of its life: a short-lived token keeps most of it).
    pub fn new(value: String, api_domain: String, lifetime: Duration, margin: Duration) -> Self {
        let margin = margin.min(lifetime / 4);
        Self {
            value,
            api_domain,
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        }
    }

    /// True while the token may be used, unless it is the one just refused.
    pub fn usable(&self, stale: Option<&str>) -> bool {
        Instant::now() < self.renew_at && stale != Some(self.value.as_str())
    }
}

/// The slot of one OAuth grant: hold its lock while reading or refreshing.
pub(crate) type TokenSlot = Arc<Mutex<Option<AccessToken>>>;

/// The access token slot of one grant (`parts`: the token server, the
/// client id, ...; and its refresh token), shared in the process.
pub(crate) fn shared_token(parts: &[&str], refresh_token: &SecretString) -> TokenSlot {
    type Slots = std::sync::Mutex<HashMap<[u8; 32], TokenSlot>>;
    static SLOTS: LazyLock<Slots> = LazyLock::new(Default::default);
    // Keyed by a digest: the refresh token itself is not kept as a key.
    let mut digest = Sha256::new();
    for part in parts.iter().copied().chain([refresh_token.expose_secret()]) {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let key: [u8; 32] = digest.finalize().into();
    let mut slots = SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(slot) = slots.get(&key) {
        return slot.clone();
    }
    // Slots no client holds whose token is spent are dropped on the way.
    slots.retain(|_, slot| {
        Arc::strong_count(slot) > 1
            || slot.try_lock().map_or(true, |t| {
                t.as_ref().is_some_and(|t| Instant::now() < t.renew_at)
            })
    });
    let slot = Arc::new(Mutex::new(None));
    slots.insert(key, slot.clone());
    slot
}

/// What a token endpoint answered, with its status: a transport failure or
/// a 5xx is `Unavailable`, a 429 `RateLimited`, a body that is no token
/// reply `Protocol`. A refusal (a 4xx with a token reply's error fields) is
/// the caller's to word. `server` names the endpoint in messages
/// ("the accounts server").
pub(crate) async fn token_reply<T: serde::de::DeserializeOwned>(
    crm: &str,
    server: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(StatusCode, T), CrmError> {
    let response = response.map_err(|e| transport_error(crm, e))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| transport_error(crm, e))?;
    if status.is_server_error() {
        return Err(CrmError::Unavailable(format!(
            "{server} answered {}",
            status.as_u16()
        )));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(CrmError::RateLimited { retry_after: None });
    }
    let reply = serde_json::from_str(&text).map_err(|_| {
        CrmError::Protocol(format!(
            "{server} answered {} with no token reply",
            status.as_u16()
        ))
    })?;
    Ok((status, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grant_shares_one_slot_and_another_gets_its_own() {
        let token = SecretString::from("r-1".to_owned());
        let a = shared_token(&["https://a.test", "c"], &token);
        let b = shared_token(&["https://a.test", "c"], &token);
        let other = shared_token(&["https://a.test", "d"], &token);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[test]
    fn a_token_is_renewed_early_and_not_reused_once_refused() {
        let t = AccessToken::new(
            "t".into(),
            String::new(),
            Duration::from_secs(1800),
            Duration::from_secs(120),
        );
        assert!(t.usable(None));
        assert!(!t.usable(Some("t")));
        let short = AccessToken::new(
            "s".into(),
            String::new(),
            Duration::from_secs(40),
            Duration::from_secs(120),
        );
        assert!(short.renew_at >= Instant::now() + Duration::from_secs(29));
    }
}
