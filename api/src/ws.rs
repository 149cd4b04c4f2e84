//! Subscriptions at `/graphql/ws`, in graphql-transport-ws (the `graphql-ws`
//! npm package's protocol) or, for a client that offers only `graphql-ws`, in
//! the legacy protocol of subscriptions-transport-ws. Either way the socket is
//! authenticated in `connection_init`, closed with 4408 when no init arrives in
//! time, closed when the token expires (T3), or with 1001 (going away) when
//! the process shuts down, and holds at most `ws_max_subscriptions`
//! subscriptions.
//!
//! async-graphql runs the operations; this loop reads the client's messages
//! first and enforces what async-graphql does not: 4401 for a `subscribe`
//! before the acknowledgement, 4409 for an id already in use, and the cap.

use std::collections::HashSet;
use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols as Protocols, WsMessage};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::Extensions;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::auth;
use crate::error::{ApiError, RequestId};
use crate::http::{App, ClientIp, request_data};

/// How long a client has to send `connection_init`.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sub-protocols we speak, preferred first: a client offering both gets
/// graphql-transport-ws.
const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// Client messages read ahead of async-graphql.
const READ_AHEAD: usize = 16;

/// What the init step decided.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InitState {
    Waiting,
    /// Accepted; the credential expires at this UNIX time (`None`: API key).
    Accepted(Option<u64>),
    Refused,
}

pub(crate) async fn upgrade(
    State(app): State<App>,
    client: ClientIp,
    upgrade: WebSocketUpgrade,
    request: Extensions,
) -> Response {
    let upgrade = upgrade.protocols(PROTOCOLS);
    let protocol = match upgrade.selected_protocol() {
        Some(p) if p == "graphql-ws" => Protocols::SubscriptionsTransportWS,
        // With no sub-protocol offered, the current one.
        _ => Protocols::GraphQLWS,
    };
    let response = upgrade.on_upgrade(move |socket| serve(app, client, socket, protocol));
    // The request's extensions carry how the client spelled its header names
    // (the server preserves header case): the answer's `Sec-WebSocket-Protocol`
    // goes out in the same spelling, which clients that look it up
    // case-sensitively (Python gql 4) find. Title case would give
    // `Sec-Websocket-Protocol`.
    (request, response).into_response()
}

/// What to do with one client message.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Hand it to async-graphql.
    Forward,
    /// Answer it with this text and drop it.
    Reply(String),
    /// Close the socket with this code and reason.
    Close(u16, String),
}

/// The protocol rules async-graphql leaves to us, kept per socket.
#[derive(Debug)]
struct Session {
    protocol: Protocols,
    max_subscriptions: usize,
    /// A `connection_init` was received.
    init_sent: bool,
    /// The `connection_ack` was sent.
    acked: bool,
    /// Subscriptions running, by id.
    active: HashSet<String>,
    /// Ids the client completed whose `complete` echo from async-graphql is
    /// still to come.
    closing: HashSet<String>,
}

impl Session {
    fn new(protocol: Protocols, max_subscriptions: usize) -> Self {
        Self {
            protocol,
            max_subscriptions,
            init_sent: false,
            acked: false,
            active: HashSet::new(),
            closing: HashSet::new(),
        }
    }

    /// Judges a client message before async-graphql sees it.
    fn admit(&mut self, text: &[u8]) -> Verdict {
        // Anything unreadable goes on: async-graphql closes with its error.
        let Ok(message) = serde_json::from_slice::<Value>(text) else {
            return Verdict::Forward;
        };
        let id = message.get("id").and_then(Value::as_str);
        match (message.get("type").and_then(Value::as_str), id) {
            (Some("connection_init"), _) => {
                self.init_sent = true;
                Verdict::Forward
            }
            (Some("subscribe" | "start"), Some(id)) => self.subscribe(id),
            (Some("complete" | "stop"), Some(id)) => {
                if self.active.remove(id) {
                    self.closing.insert(id.to_owned());
                }
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }

    fn subscribe(&mut self, id: &str) -> Verdict {
        let legacy = self.protocol == Protocols::SubscriptionsTransportWS;
        // graphql-transport-ws wants the acknowledgement first; the legacy
        // protocol's clients send `start` right after `connection_init`,
        // which async-graphql holds until the init is decided.
        if !(self.acked || legacy && self.init_sent) {
            return Verdict::Close(4401, "Unauthorized".into());
        }
        if self.active.contains(id) {
            // The legacy protocol replaces the operation under that id.
            return if legacy {
                Verdict::Forward
            } else {
                Verdict::Close(4409, format!("Subscriber for {id} already exists"))
            };
        }
        if self.active.len() >= self.max_subscriptions {
            return Verdict::Reply(self.refusal(id));
        }
        self.active.insert(id.to_owned());
        Verdict::Forward
    }

    /// The `error` message refusing a subscription over the cap; the socket
    /// and its other subscriptions go on.
    fn refusal(&self, id: &str) -> String {
        let error = ApiError::RateLimited(format!(
            "at most {} subscriptions per connection (CRMSYNC_WS_MAX_SUBSCRIPTIONS): complete one first",
            self.max_subscriptions
        ));
        let error = json!({ "message": error.to_string(), "extensions": { "code": error.code() } });
        // graphql-transport-ws sends a list of GraphQL errors, the legacy
        // protocol one error.
        let payload = match self.protocol {
            Protocols::GraphQLWS => json!([error]),
            Protocols::SubscriptionsTransportWS => error,
        };
        json!({ "type": "error", "id": id, "payload": payload }).to_string()
    }

    /// Notes a message async-graphql sends: the acknowledgement, and the end
    /// of a subscription. Only those two are parsed (they are small, unlike
    /// `next`); serde writes the `type` tag first.
    fn sent(&mut self, text: &str) {
        if text.starts_with(r#"{"type":"connection_ack""#) {
            self.acked = true;
        } else if text.starts_with(r#"{"type":"complete""#)
            && let Some(id) = serde_json::from_str::<Value>(text)
                .ok()
                .as_ref()
                .and_then(|m| m.get("id"))
                .and_then(Value::as_str)
            && !self.closing.remove(id)
        {
            self.active.remove(id);
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Authenticates a `connection_init` from `client`: failed attempts count
/// against the address's limit, and an accepted one against its tenant's
/// request rate, as over HTTP.
async fn authenticate_init(
    state: &crate::ApiState,
    client: ClientIp,
    header: Option<String>,
) -> Result<Option<auth::Principal>, ApiError> {
    let Some(header) = header else {
        return Err(ApiError::Unauthenticated(
            "connection_init must carry {\"Authorization\": \"Bearer …\"}".into(),
        ));
    };
    let limits = &state.rate_limits;
    limits.before_authentication(client.0).map_err(|(e, _)| e)?;
    let result = auth::authenticate(&state.db, &state.auth, Some(&header)).await;
    match &result {
        Err(ApiError::Unauthenticated(_)) => {
            limits.authentication_failed(client.0).map_err(|(e, _)| e)?;
        }
        Ok(Some(principal)) => {
            if let Some(tenant) = principal.tenant_id() {
                limits.tenant_request(tenant.as_str()).map_err(|(e, _)| e)?;
            }
        }
        _ => {}
    }
    result
}

async fn serve(app: App, client: ClientIp, socket: WebSocket, protocol: Protocols) {
    let _open = app.state.shutdown.socket_opened();
    let request_id = RequestId(ulid::Ulid::generate().to_string());
    let (mut sink, mut stream) = socket.split();
    let (input_tx, mut input_rx) = mpsc::channel::<Vec<u8>>(READ_AHEAD);
    let input = futures::stream::poll_fn(move |cx| input_rx.poll_recv(cx));
    let (init_tx, init_rx) = watch::channel(InitState::Waiting);
    let on_init = connection_init(app.state.clone(), client, init_tx, request_id);
    let mut messages =
        GqlWebSocket::new(app.schema.clone(), input, protocol).on_connection_init(on_init);
    let mut session = Session::new(protocol, app.state.ws_max_subscriptions);

    let init_deadline = Instant::now() + INIT_TIMEOUT;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut expiry: Option<Instant> = None;
    loop {
        let init = *init_rx.borrow();
        if let (None, InitState::Accepted(Some(exp))) = (expiry, init) {
            let left = exp.saturating_sub(auth::unix_now());
            expiry = Some(Instant::now() + Duration::from_secs(left));
        }
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    session.sent(&text);
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    // A refused init is "4403 Forbidden" in graphql-transport-ws.
                    let code = if *init_rx.borrow() == InitState::Refused { 4403 } else { code };
                    let _ = sink.send(close(code, &reason)).await;
                    break;
                }
                None => {
                    // The legacy protocol refuses an init with a message, then
                    // async-graphql ends: say why in the close frame too.
                    if *init_rx.borrow() == InitState::Refused {
                        let _ = sink.send(close(4403, "Forbidden")).await;
                    }
                    break;
                }
            },
            // Read only while async-graphql keeps up, so a flood waits in the
            // socket rather than in memory.
            incoming = stream.next(), if input_tx.capacity() > 0 => {
                let bytes = match incoming {
                    Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                match session.admit(&bytes) {
                    Verdict::Forward => {
                        // Capacity was checked and only this loop sends.
                        let _ = input_tx.try_send(bytes);
                    }
                    Verdict::Reply(text) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Verdict::Close(code, reason) => {
                        let _ = sink.send(close(code, &reason)).await;
                        break;
                    }
                }
            }
            () = sleep_until(init_deadline), if init == InitState::Waiting => {
                let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                break;
            }
            () = sleep_until(expiry.unwrap_or(far)), if expiry.is_some() => {
                let _ = sink.send(close(4401, "Unauthorized: the token has expired")).await;
                break;
            }
            () = app.state.shutdown.started() => {
                let _ = sink.send(close(1001, "the server is shutting down: reconnect")).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}

/// Authenticates the `connection_init` payload's `Authorization`, the same
/// for both protocols, and reports the outcome to the socket's loop.
fn connection_init(
    state: crate::ApiState,
    client: ClientIp,
    init_tx: watch::Sender<InitState>,
    request_id: RequestId,
) -> impl FnOnce(
    Value,
) -> futures::future::BoxFuture<'static, async_graphql::Result<async_graphql::Data>>
+ Send
+ 'static {
    move |payload: Value| {
        Box::pin(async move {
            let header = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let result = authenticate_init(&state, client, header).await;
            match result {
                Ok(Some(principal)) => {
                    let _ = init_tx.send(InitState::Accepted(principal.expires_at));
                    Ok(request_data(&state, Some(principal), request_id))
                }
                Ok(None) => unreachable!("a header was given"),
                Err(e) => {
                    let _ = init_tx.send(InitState::Refused);
                    let message = match &e {
                        ApiError::Internal(cause) => {
                            tracing::error!(request_id = %request_id.0, cause, "internal error in connection_init");
                            "internal error".to_owned()
                        }
                        other => other.to_string(),
                    };
                    Err(async_graphql::Error::new(message))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(protocol: Protocols, max: usize) -> Session {
        let mut session = Session::new(protocol, max);
        assert_eq!(
            session.admit(br#"{"type":"connection_init","payload":{}}"#),
            Verdict::Forward
        );
        session.sent(r#"{"type":"connection_ack"}"#);
        session
    }

    fn subscribe(id: &str) -> Vec<u8> {
        json!({ "type": "subscribe", "id": id, "payload": { "query": "subscription { syncEvents { runId } }" } })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn an_id_is_free_again_once_its_subscription_completed() {
        let mut session = acked(Protocols::GraphQLWS, 1);
        assert_eq!(session.admit(&subscribe("a")), Verdict::Forward);
        session.sent(r#"{"type":"complete","id":"a"}"#);
        assert_eq!(session.admit(&subscribe("a")), Verdict::Forward);
    }

    #[test]
    fn the_echo_of_a_client_complete_does_not_free_a_reused_id() {
        let mut session = acked(Protocols::GraphQLWS, 5);
        assert_eq!(session.admit(&subscribe("a")), Verdict::Forward);
        session.admit(br#"{"type":"complete","id":"a"}"#);
        assert_eq!(session.admit(&subscribe("a")), Verdict::Forward);
        // async-graphql's answer to the first `complete` arrives now.
        session.sent(r#"{"type":"complete","id":"a"}"#);
        assert!(matches!(
            session.admit(&subscribe("a")),
            Verdict::Close(4409, _)
        ));
    }

    #[test]
    fn the_legacy_protocol_may_start_before_the_acknowledgement() {
        let mut session = Session::new(Protocols::SubscriptionsTransportWS, 5);
        session.admit(br#"{"type":"connection_init","payload":{}}"#);
        let start = br#"{"type":"start","id":"1","payload":{"query":"subscription { syncEvents { runId } }"}}"#;
        assert_eq!(session.admit(start), Verdict::Forward);
    }
}
