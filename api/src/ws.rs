//! Subscriptions over graphql-transport-ws at `/graphql/ws`: authenticated in
//! `connection_init`, closed with 4408 when no init arrives in time, and
//! closed when the token expires (T3), or with 1001 (going away) when the
//! process shuts down.

use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols as Protocols, WsMessage};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::auth;
use crate::error::{ApiError, RequestId};
use crate::http::{App, ClientIp, request_data};

/// How long a client has to send `connection_init`.
pub(crate) const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sub-protocol we speak.
const PROTOCOL: &str = "graphql-transport-ws";

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
) -> Response {
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| serve(app, client, socket))
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

async fn serve(app: App, client: ClientIp, socket: WebSocket) {
    let _open = app.state.shutdown.socket_opened();
    let request_id = RequestId(ulid::Ulid::generate().to_string());
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|m| futures::future::ready(m.is_ok()))
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(Message::Text(t)) => Some(t.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    let (init_tx, init_rx) = watch::channel(InitState::Waiting);
    let state = app.state.clone();
    let init_id = request_id.clone();
    let on_init = move |payload: serde_json::Value| async move {
        let header = payload
            .get("Authorization")
            .or_else(|| payload.get("authorization"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let result = authenticate_init(&state, client, header).await;
        match result {
            Ok(Some(principal)) => {
                let _ = init_tx.send(InitState::Accepted(principal.expires_at));
                Ok(request_data(&state, Some(principal), init_id))
            }
            Ok(None) => unreachable!("a header was given"),
            Err(e) => {
                let _ = init_tx.send(InitState::Refused);
                let message = match &e {
                    ApiError::Internal(cause) => {
                        tracing::error!(request_id = %init_id.0, cause, "internal error in connection_init");
                        "internal error".to_owned()
                    }
                    other => other.to_string(),
                };
                Err(async_graphql::Error::new(message))
            }
        }
    };
    let mut messages = GqlWebSocket::new(app.schema.clone(), input, Protocols::GraphQLWS)
        .on_connection_init(on_init);

    let init_deadline = Instant::now() + INIT_TIMEOUT;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut expiry: Option<Instant> = None;
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        }))
    };
    loop {
        let init = *init_rx.borrow();
        let waiting = init == InitState::Waiting;
        if let (None, InitState::Accepted(Some(exp))) = (expiry, init) {
            let left = exp.saturating_sub(auth::unix_now());
            expiry = Some(Instant::now() + Duration::from_secs(left));
        }
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
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
                None => break,
            },
            () = sleep_until(init_deadline), if waiting => {
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
