//! Progress events across processes through Redis pub/sub, when the job queue
//! is on Redis.
//!
//! - One channel, [`RedisBus::CHANNEL`]; the payload is the JSON event with its
//!   origin.
//! - The listener has a connection of its own (a subscribed connection can do
//!   nothing else); when it drops, the listener logs it and subscribes again,
//!   with growing pauses while Redis is away.
//! - The sender uses a `ConnectionManager` (it reconnects by itself) and sends
//!   whatever has queued up in one pipeline.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use tokio::sync::mpsc;

use super::relay::{self, BATCH, Inbound, Relay, SEND_ATTEMPTS};
use super::{BusError, EventBus, EventStream, SyncEvent};

/// Redis takes payloads up to 512 MB; an event is a few hundred bytes, so this
/// only stops a runaway.
const MAX_PAYLOAD: usize = 64 * 1024;

/// A bus between every process on one Redis.
#[derive(Debug, Clone)]
pub struct RedisBus {
    relay: Arc<Relay>,
}

impl RedisBus {
    /// The pub/sub channel.
    pub const CHANNEL: &'static str = "crmsync_events";

    /// Subscribes and starts the sender; returns once SUBSCRIBE is in place.
    /// `url` is `redis://…` or `rediss://…`.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url)?;
        let subscription = subscribe(&client).await?;
        let publisher = client
            .get_connection_manager_with_config(
                ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(5))),
            )
            .await?;
        let (relay, inbound, outbox) = Relay::new("redis", MAX_PAYLOAD);
        let listening = tokio::spawn(listen(client, subscription, inbound)).abort_handle();
        tokio::spawn(send(publisher, outbox));
        Ok(Self {
            relay: Arc::new(relay.with_listener(listening)),
        })
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: SyncEvent) {
        self.relay.publish(event);
    }

    fn subscribe(&self, tenant_id: &str) -> EventStream {
        self.relay.subscribe(tenant_id)
    }
}

async fn subscribe(client: &redis::Client) -> Result<PubSub, redis::RedisError> {
    let mut subscription = client.get_async_pubsub().await?;
    subscription.subscribe(RedisBus::CHANNEL).await?;
    Ok(subscription)
}

async fn listen(client: redis::Client, subscription: PubSub, inbound: Inbound) {
    let mut messages = subscription.into_on_message();
    loop {
        while let Some(message) = messages.next().await {
            inbound.receive(message.get_payload_bytes());
        }
        tracing::warn!("event bus: Redis subscription lost; resubscribing");
        let mut attempt = 0;
        messages = loop {
            attempt += 1;
            match subscribe(&client).await {
                Ok(subscription) => break subscription.into_on_message(),
                Err(e) => {
                    let pause = relay::backoff(attempt);
                    tracing::warn!(error = %e, retry_in = ?pause, "event bus: cannot subscribe on Redis");
                    tokio::time::sleep(pause).await;
                }
            }
        };
        tracing::info!(
            "event bus: Redis subscription re-established; events sent meanwhile are lost"
        );
    }
}

async fn send(mut connection: ConnectionManager, mut outbox: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(BATCH);
    while outbox.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipeline = redis::pipe();
        for payload in &batch {
            pipeline
                .cmd("PUBLISH")
                .arg(RedisBus::CHANNEL)
                .arg(payload)
                .ignore();
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match pipeline.query_async::<()>(&mut connection).await {
                Ok(()) => break,
                Err(e) if attempt < SEND_ATTEMPTS => {
                    let pause = relay::backoff(attempt);
                    tracing::warn!(error = %e, retry_in = ?pause, "event bus: PUBLISH failed");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, events = batch.len(), "event bus: PUBLISH failed; these progress events reached this process only");
                    break;
                }
            }
        }
        batch.clear();
    }
}
