//! Webhook calls: the signing secret, the signature, and one POST.
//!
//! The receiver verifies `X-Crmsync-Signature: v1=<hex>`, the HMAC-SHA256
//! with the webhook's secret (its UTF-8 bytes, as shown once) over
//! `"{X-Crmsync-Timestamp}.{body}"`, and rejects old timestamps to stop
//! replays. The timestamp, and so the signature, is new at each attempt; the
//! delivery id is not.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::egress::HttpClient;

/// Unix seconds at which the attempt was signed.
pub const TIMESTAMP_HEADER: &str = "X-Crmsync-Timestamp";
/// `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Crmsync-Signature";
/// The event name (`sync.finished`).
pub const EVENT_HEADER: &str = "X-Crmsync-Event";
/// The delivery id, the same across retries: receivers deduplicate by it.
pub const DELIVERY_HEADER: &str = "X-Crmsync-Delivery";
/// The version prefix of the signature.
pub const SIGNATURE_SCHEME: &str = "v1";

/// A fresh signing secret: `whsec_` and 32 random bytes, base64url.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The value of [`SIGNATURE_HEADER`] for a body sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{SIGNATURE_SCHEME}={hex}")
}

/// What one POST came to.
pub(crate) struct Reply {
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// Why it failed; none for a 2xx.
    pub error: Option<String>,
}

/// POSTs a signed event and reads the status. Anything but a 2xx within the
/// client's timeout is a failure, described in words that name no internals
/// (the receiver's own URL is the tenant's).
pub(crate) async fn post(
    http: &HttpClient,
    url: &str,
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &str,
    timeout: Duration,
) -> Reply {
    let timestamp = chrono::Utc::now().timestamp();
    let request = match http.request(reqwest::Method::POST, url) {
        Ok(request) => request,
        Err(refused) => {
            return Reply {
                status: None,
                error: Some(format!("refused: {refused}")),
            };
        }
    };
    let sent = request
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature(secret, timestamp, body))
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery_id)
        .body(body.to_owned())
        .send()
        .await;
    let (status, error) = match sent {
        Ok(reply) => {
            let status = reply.status();
            // The body is not needed; reading it lets the connection be reused.
            let _ = reply.bytes().await;
            if status.is_success() {
                (Some(status.as_u16()), None)
            } else {
                (Some(status.as_u16()), Some(format!("HTTP {status}")))
            }
        }
        Err(e) if crate::egress::refusal(&e).is_some() => (
            None,
            crate::egress::refusal(&e).map(|refused| format!("refused: {refused}")),
        ),
        Err(e) if e.is_timeout() => (
            None,
            Some(format!("no reply within {} s", timeout.as_secs())),
        ),
        Err(e) if e.is_connect() => (None, Some(format!("could not connect: {}", root_cause(&e)))),
        Err(e) => (None, Some(root_cause(&e))),
    };
    Reply { status, error }
}

/// The innermost cause of a request error (reqwest's own text names the URL).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body_in_hex() {
        // Computed the way a receiver would: one HMAC over the joined string.
        let signed = signature("Jefe", 0, "what do ya want for nothing?");
        assert!(signed.starts_with("v1="));
        assert_eq!(signed.len(), 3 + 64);
        let direct = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"0.what do ya want for nothing?");
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(signed, format!("v1={direct}"));
        assert_ne!(signed, signature("Jefe", 1, "what do ya want for nothing?"));
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43, "{a}");
        assert_ne!(a, b);
    }
}
