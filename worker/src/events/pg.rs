//! Progress events across processes through PostgreSQL LISTEN/NOTIFY.
//!
//! - One channel, [`PgBus::CHANNEL`], in the application's database; the
//!   payload is the JSON event with its origin (a few hundred bytes; NOTIFY
//!   takes under 8000, and a larger event stays in its process with a warning).
//! - The listener holds one connection of the application's pool
//!   (`PgListener`), re-established by sqlx when it drops; the loss is logged.
//! - The sender has a connection of its own (opened with the pool's options,
//!   outside the pool), so a pool busy with sync transactions never delays
//!   progress; it sends whatever has queued up in a few statements of at most
//!   6 KiB each.

use std::sync::Arc;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool};
use sea_orm::sqlx::{self, ConnectOptions};
use tokio::sync::mpsc;

use super::relay::{self, BATCH, Inbound, Relay, SEND_ATTEMPTS};
use super::{BusError, EventBus, EventStream, SyncEvent};

/// NOTIFY refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// Payload bytes per statement. Measured on loopback: a statement of 64 events
/// (about 29 KB) took some 44 ms, one of 8 well under a millisecond; a burst of
/// 500 events crossed in 320 ms one way and 30 ms the other.
const STATEMENT_BYTES: usize = 6 * 1024;

/// A bus between every process on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgBus {
    relay: Arc<Relay>,
}

impl PgBus {
    /// The NOTIFY channel.
    pub const CHANNEL: &'static str = "crmsync_events";

    /// Listens on the application's pool and connects the sender; returns once
    /// LISTEN is in place.
    pub async fn connect(pool: &PgPool) -> Result<Self, BusError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(Self::CHANNEL).await?;
        // Opened now: the first event does not wait for a connection (some
        // 100 ms), and a server that refuses one fails the start.
        let options = pool.connect_options();
        let sender = options.connect().await?;
        let (relay, inbound, outbox) = Relay::new("postgres", MAX_PAYLOAD);
        let listening = tokio::spawn(listen(listener, inbound)).abort_handle();
        tokio::spawn(send(options, Some(sender), outbox));
        Ok(Self {
            relay: Arc::new(relay.with_listener(listening)),
        })
    }
}

impl EventBus for PgBus {
    fn publish(&self, event: SyncEvent) {
        self.relay.publish(event);
    }

    fn subscribe(&self, tenant_id: &str) -> EventStream {
        self.relay.subscribe(tenant_id)
    }
}

async fn listen(mut listener: PgListener, inbound: Inbound) {
    let mut failures = 0u32;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if failures > 0 {
                    tracing::info!("event bus: LISTEN connection to PostgreSQL re-established");
                    failures = 0;
                }
                inbound.receive(notification.payload().as_bytes());
            }
            // sqlx has already reconnected and listens again.
            Ok(None) => tracing::warn!(
                "event bus: LISTEN connection to PostgreSQL lost and re-established; events sent meanwhile are lost"
            ),
            Err(sqlx::Error::PoolClosed) => {
                tracing::debug!("event bus: pool closed; listener stops");
                return;
            }
            Err(e) => {
                failures += 1;
                let pause = relay::backoff(failures);
                tracing::warn!(error = %e, retry_in = ?pause, "event bus: LISTEN connection to PostgreSQL failed");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn send(
    options: Arc<PgConnectOptions>,
    mut connection: Option<PgConnection>,
    mut outbox: mpsc::Receiver<String>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while outbox.recv_many(&mut batch, BATCH).await > 0 {
        for statement in statements(&batch) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match notify(&mut connection, &options, statement).await {
                    Ok(()) => break,
                    Err(e) if attempt < SEND_ATTEMPTS => {
                        let pause = relay::backoff(attempt);
                        tracing::warn!(error = %e, retry_in = ?pause, "event bus: NOTIFY failed");
                        tokio::time::sleep(pause).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = statement.len(), "event bus: NOTIFY failed; these progress events reached this process only");
                        break;
                    }
                }
            }
        }
        batch.clear();
    }
}

/// The batch cut into statements of at most [`STATEMENT_BYTES`] of payload
/// (at least one event each).
fn statements(batch: &[String]) -> impl Iterator<Item = &[String]> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = rest[0].len();
        let mut end = 1;
        while end < rest.len() && bytes + rest[end].len() <= STATEMENT_BYTES {
            bytes += rest[end].len();
            end += 1;
        }
        let (statement, tail) = rest.split_at(end);
        rest = tail;
        Some(statement)
    })
}

/// Sends the events in one statement (notifications of one transaction are
/// delivered together and in order), on the sender's connection, opened if
/// there is none; a connection that failed is dropped.
async fn notify(
    slot: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    events: &[String],
) -> Result<(), sqlx::Error> {
    let mut connection = match slot.take() {
        Some(connection) => connection,
        None => options.connect().await?,
    };
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .bind(PgBus::CHANNEL)
        .bind(events)
        .execute(&mut connection)
        .await?;
    *slot = Some(connection);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_into_statements_under_the_byte_budget() {
        let event = "x".repeat(1000);
        let big = "y".repeat(MAX_PAYLOAD);
        let batch = vec![event.clone(); 13]
            .into_iter()
            .chain([big.clone(), event.clone()])
            .collect::<Vec<_>>();
        let sizes: Vec<usize> = statements(&batch).map(<[String]>::len).collect();
        assert_eq!(sizes, [6, 6, 1, 1, 1]);
        assert_eq!(statements(&[]).count(), 0);
    }
}
