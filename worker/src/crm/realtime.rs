//! Change notifications from a CRM (S2, real time): what a client does to
//! subscribe, and what a kit does to verify and read an inbound call. A
//! notification is only a hint: it names records, and the engine reads those
//! records through the CRM's API before deciding anything. Nothing here names
//! a CRM; each CRM's folder implements these traits where its vendor offers
//! notifications usable by our kind of app.

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;

use super::CrmError;

/// What crmsync asks a CRM to notify, and where.
#[derive(Debug, Clone)]
pub struct WatchRequest<'a> {
    /// Our stable id for the connector's subscription (a channel id, a
    /// webhook name): the same across renewals.
    pub channel_id: &'a str,
    /// The URL the CRM calls (unguessable, one per connector).
    pub notify_url: &'a str,
    /// The secret the CRM echoes or signs with (a token, a basic-auth
    /// password), where the vendor takes one from the subscriber. Never logged.
    pub secret: &'a str,
    /// The modules whose changes to notify (the ones the connector imports).
    pub modules: &'a [CrmModule],
    /// The CRM fields the connector reads (the CRM side of its enabled
    /// mappings that flow from the CRM), for CRMs that notify changes per
    /// field.
    pub fields: &'a [String],
}

/// A subscription as the CRM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The CRM's id of the subscription (several for CRMs that take one
    /// subscription per module or event, joined by the client as it likes).
    pub id: String,
    /// When the CRM ends it unless renewed; `None` when it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The code of the `CrmError::Rejected` that `Subscriptions::renew`
/// answers when the CRM no longer holds the subscription (deleted in its
/// settings, expired, paused after failed deliveries): the engine marks it
/// DEGRADED and subscribes again at its next check.
pub const WATCH_GONE: &str = "WATCH_GONE";

/// The error `renew` returns for a subscription the CRM no longer holds.
pub fn watch_gone(message: impl Into<String>) -> CrmError {
    CrmError::Rejected {
        code: WATCH_GONE.into(),
        field: None,
        message: message.into(),
    }
}

/// The code of the `CrmError::Rejected` that `Subscriptions::watch`
/// answers when the connector's credentials cannot subscribe at all (a kind
/// of app the vendor sends no notifications to, a missing app id): the
/// engine shows its message as is, DEGRADED, and polling carries on.
pub const WATCH_UNAVAILABLE: &str = "WATCH_UNAVAILABLE";

/// The error `watch` returns when the credentials cannot subscribe; the
/// message says what to add to them.
pub fn watch_unavailable(message: impl Into<String>) -> CrmError {
    CrmError::Rejected {
        code: WATCH_UNAVAILABLE.into(),
        field: None,
        message: message.into(),
    }
}

/// The subscription side of a client whose CRM notifies changes.
#[async_trait::async_trait]
pub trait Subscriptions: Send + Sync {
    /// Subscribes; a subscription of the same channel id the CRM still holds
    /// is replaced, not duplicated.
    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watch, CrmError>;

    /// Extends a subscription before it expires, or checks that the CRM
    /// still holds one that does not expire; a subscription the CRM no longer
    /// holds is [`watch_gone`] (the engine subscribes again).
    async fn renew(&self, watch: &Watch, request: &WatchRequest<'_>) -> Result<Watch, CrmError>;

    /// Ends a subscription; one the CRM no longer holds is not an error.
    async fn unwatch(&self, watch: &Watch) -> Result<(), CrmError>;

    /// The secret the CRM signs its notifications with, where the vendor
    /// chooses it (an app's client secret) instead of taking
    /// [`WatchRequest::secret`]: the engine keeps it, sealed, in place of
    /// its own and hands it to [`Notifications::verify`]. `None`: the
    /// vendor uses the secret crmsync gave.
    fn signing_secret(&self) -> Option<secrecy::SecretString> {
        None
    }
}

/// An inbound call as the API received it.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    /// Header names in lower case, values as sent.
    pub headers: &'a [(String, String)],
    /// The full URL the CRM called (some vendors sign it).
    pub url: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// What a verified notification says changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    /// Records created or changed, by module.
    pub changed: Vec<(CrmModule, String)>,
    /// Records deleted, by module (still only a hint: a deletion is applied
    /// as the deletions system decides).
    pub deleted: Vec<(CrmModule, String)>,
}

/// Why an inbound call was refused (answered 401 without reading its body
/// any further). The words go to the log, never to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Notice {
    /// True when the notification names no record of a module crmsync reads.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }
}

/// Compares two secrets in time that depends on their lengths only, so a
/// caller cannot learn a secret byte by byte from how long refusals take.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Real time for a CRM that pushes no change notifications our kind of app
/// can use: a look at the CRM's listing every `every`, whose changed records
/// become notices as a notification's would (the kit's `change_poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangePoll {
    /// How often the CRM is asked what changed.
    pub every: std::time::Duration,
    /// Why the CRM's own notifications are not used, in words a person
    /// reads in `Connector.realtime.message`.
    pub why: &'static str,
}

/// The inbound side of a kit whose CRM notifies changes.
pub trait Notifications: Send + Sync + std::fmt::Debug {
    /// How soon the vendor wants an answer before it counts the delivery
    /// failed (the inbound endpoint answers well within it).
    fn answer_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }

    /// Checks an inbound call the way the vendor signs it (an echoed token,
    /// basic auth, an HMAC with a timestamp window) against the connector's
    /// `secret`, and reads the records it names.
    fn verify(
        &self,
        inbound: &Inbound<'_>,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Notice, Refused>;
}
