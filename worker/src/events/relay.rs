//! What the cross-process buses share: local delivery first, then the wire.
//!
//! A [`Relay`] publishes to an [`InProcessBus`] (this process's subscribers get
//! the event at once) and hands the encoded event to a background sender
//! through a bounded channel, so a publish never waits for the network. The
//! transport's listener hands every message it receives to an [`Inbound`],
//! which drops this process's own echoes (already delivered locally) and
//! publishes the rest to the same in-process bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{EventBus, EventStream, InProcessBus, SyncEvent};

/// Events waiting for the sender; beyond this (the server unreachable for a
/// while), new events reach local subscribers only.
const OUTBOX_CAPACITY: usize = 4096;
/// Events sent in one round trip at most.
pub(super) const BATCH: usize = 64;
/// Tries of one batch before it is given up (progress events are superseded by
/// the next one, so a long outage loses intermediate progress, not the stream).
pub(super) const SEND_ATTEMPTS: u32 = 4;

/// The pause before the `attempt`-th retry of a send or a reconnection (1-based):
/// 100 ms, 400 ms, 1.6 s, then 5 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    let millis = 100u64.saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1)));
    Duration::from_millis(millis.min(5_000))
}

/// An event on the wire, tagged with the process that sent it.
#[derive(Serialize)]
struct Outgoing<'a> {
    origin: &'a str,
    /// Makes every payload distinct (PostgreSQL folds identical notifications
    /// sent in one transaction into one).
    seq: u64,
    event: &'a SyncEvent,
}

#[derive(Deserialize)]
struct Incoming {
    origin: String,
    event: SyncEvent,
}

/// The publishing half, owned by the bus handle.
pub(super) struct Relay {
    local: InProcessBus,
    origin: Arc<str>,
    seq: AtomicU64,
    outbox: mpsc::Sender<String>,
    /// The longest payload the transport takes.
    max_payload: usize,
    transport: &'static str,
    /// The listener, stopped when the last handle on the bus is dropped (the
    /// sender ends by itself once the outbox is closed and drained).
    listener: Option<AbortHandle>,
}

/// The receiving half, moved into the transport's listener task.
#[derive(Clone)]
pub(super) struct Inbound {
    local: InProcessBus,
    origin: Arc<str>,
    transport: &'static str,
}

impl Relay {
    /// A relay and the halves its tasks take: the inbound side for the listener
    /// and the outbox's receiving end for the sender.
    pub(super) fn new(
        transport: &'static str,
        max_payload: usize,
    ) -> (Self, Inbound, mpsc::Receiver<String>) {
        let local = InProcessBus::default();
        let origin: Arc<str> = ulid::Ulid::generate().to_string().into();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let inbound = Inbound {
            local: local.clone(),
            origin: origin.clone(),
            transport,
        };
        let relay = Self {
            local,
            origin,
            seq: AtomicU64::new(0),
            outbox,
            max_payload,
            transport,
            listener: None,
        };
        (relay, inbound, outbox_rx)
    }

    /// Ties the listener task's life to this relay.
    pub(super) fn with_listener(mut self, listener: AbortHandle) -> Self {
        self.listener = Some(listener);
        self
    }

    pub(super) fn publish(&self, event: SyncEvent) {
        let outgoing = Outgoing {
            origin: &self.origin,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            event: &event,
        };
        let payload = serde_json::to_string(&outgoing);
        self.local.publish(event.clone());
        let payload = match payload {
            Ok(payload) if payload.len() <= self.max_payload => payload,
            Ok(payload) => {
                tracing::warn!(
                    transport = self.transport,
                    bytes = payload.len(),
                    limit = self.max_payload,
                    run = %event.run_id,
                    "progress event too large to cross processes; delivered in this process only"
                );
                return;
            }
            Err(e) => {
                tracing::error!(transport = self.transport, error = %e, "cannot encode a progress event");
                return;
            }
        };
        match self.outbox.try_send(payload) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    transport = self.transport,
                    run = %event.run_id,
                    "event bus outbox full (server unreachable?); progress event delivered in this process only"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!(
                    transport = self.transport,
                    "event bus sender stopped; progress event delivered in this process only"
                );
            }
        }
    }

    pub(super) fn subscribe(&self, tenant_id: &str) -> EventStream {
        self.local.subscribe(tenant_id)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("transport", &self.transport)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Delivers a received payload to this process's subscribers, unless this
    /// process sent it.
    pub(super) fn receive(&self, payload: &[u8]) {
        match serde_json::from_slice::<Incoming>(payload) {
            Ok(incoming) if *incoming.origin == *self.origin => {}
            Ok(incoming) => self.local.publish(incoming.event),
            Err(e) => {
                // Another version of crmsync on the same channel, or a stranger.
                tracing::warn!(transport = self.transport, error = %e, "ignoring a message on the event channel");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::events::tests::event;

    #[tokio::test]
    async fn a_local_subscriber_gets_the_event_once_and_the_echo_is_skipped() {
        let (relay, inbound, mut outbox) = Relay::new("test", 8000);
        let mut acme = relay.subscribe("acme");
        relay.publish(event("acme", "r1"));
        let sent = outbox.recv().await.unwrap();
        inbound.receive(sent.as_bytes());
        relay.publish(event("acme", "r2"));
        assert_eq!(acme.next().await.unwrap().run_id, "r1");
        assert_eq!(acme.next().await.unwrap().run_id, "r2");
    }

    #[tokio::test]
    async fn another_process_event_is_delivered_to_its_tenant_only() {
        let (a, _, mut a_outbox) = Relay::new("test", 8000);
        let (b, b_inbound, _b_outbox) = Relay::new("test", 8000);
        let mut acme_on_b = b.subscribe("acme");
        a.publish(event("globex", "r1"));
        a.publish(event("acme", "r2"));
        b_inbound.receive(a_outbox.recv().await.unwrap().as_bytes());
        b_inbound.receive(a_outbox.recv().await.unwrap().as_bytes());
        assert_eq!(acme_on_b.next().await.unwrap().run_id, "r2");
    }

    #[tokio::test]
    async fn an_oversized_event_stays_local() {
        let (relay, _, mut outbox) = Relay::new("test", 100);
        let mut acme = relay.subscribe("acme");
        relay.publish(event("acme", "r1"));
        assert_eq!(acme.next().await.unwrap().run_id, "r1");
        assert!(outbox.try_recv().is_err());
    }

    #[test]
    fn payloads_are_far_below_the_notify_limit() {
        let outgoing = Outgoing {
            origin: &ulid::Ulid::generate().to_string(),
            seq: u64::MAX,
            event: &event(&"T".repeat(26), &"R".repeat(26)),
        };
        assert!(serde_json::to_string(&outgoing).unwrap().len() < 1000);
    }

    #[test]
    fn backoff_grows_to_five_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(10), Duration::from_secs(5));
    }
}
