//! Subscriptions over graphql-transport-ws: init auth, 4408, closed at expiry,
//! tenant-filtered events (T3); the protocol's 4401 and 4409, the cap per
//! socket; the legacy protocol; the upgrade answer's header names.

use std::time::Duration;

use chrono::Utc;
use crmsync_entity::enums::{Role, SyncRunStatus};
use crmsync_worker::events::{EventBus, Legs, SyncEvent};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp) -> Socket {
    connect_offering(app, "graphql-transport-ws").await.0
}

/// Connects offering `protocols` (comma-separated); returns the socket and
/// the sub-protocol the server chose.
pub(crate) async fn connect_offering(app: &TestApp, protocols: &str) -> (Socket, Option<String>) {
    let mut request = app.ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (socket, chosen)
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text message as JSON, or the close code.
pub(crate) async fn next(socket: &mut Socket, within: Duration) -> Result<Value, Option<u16>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, socket.next())
            .await
            .expect("nothing arrived before the deadline")
        {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

pub(crate) async fn init(socket: &mut Socket, token: &str) -> Result<Value, Option<u16>> {
    send(socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })).await;
    next(socket, Duration::from_secs(5)).await
}

fn event(tenant_id: &str, run_id: &str, status: SyncRunStatus) -> SyncEvent {
    SyncEvent {
        tenant_id: tenant_id.into(),
        run_id: run_id.into(),
        connector_id: "c1".into(),
        status,
        phase: "import".into(),
        processed: 3,
        legs: Legs::default(),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn init_with_a_token_is_acknowledged_and_events_are_tenant_filtered() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    let ack = init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    assert_eq!(ack["type"], "connection_ack");
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { syncEvents { runId status processed legs { direction } } }" } })).await;
    // Publish until the subscription is live (it registers asynchronously).
    let mut got = None;
    for _ in 0..50 {
        app.bus
            .publish(event("someone-else", "theirs", SyncRunStatus::Running));
        app.bus
            .publish(event(&app.tenant_id, "ours", SyncRunStatus::Running));
        if let Ok(Ok(message)) = timeout(
            Duration::from_millis(100),
            next(&mut socket, Duration::from_secs(5)),
        )
        .await
        {
            got = Some(message);
            break;
        }
    }
    let message = got.expect("an event arrived");
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["payload"]["data"]["syncEvents"]["runId"], "ours");
}

#[tokio::test]
async fn init_with_a_bad_token_is_closed_4403() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    assert_eq!(init(&mut socket, "not-a-token").await, Err(Some(4403)));
}

#[tokio::test]
async fn no_init_is_closed_4408() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    assert_eq!(
        next(&mut socket, Duration::from_secs(15)).await,
        Err(Some(4408))
    );
}

#[tokio::test]
async fn the_socket_closes_when_the_token_expires() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    let token = token_for(Role::Viewer, Some(&app.slug), Duration::from_secs(2));
    assert_eq!(
        init(&mut socket, &token).await.unwrap()["type"],
        "connection_ack"
    );
    assert_eq!(
        next(&mut socket, Duration::from_secs(10)).await,
        Err(Some(4401))
    );
}

#[tokio::test]
async fn progress_of_another_tenants_run_is_not_found() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let run = insert_run(&app.database.db, &app.tenant_id, &connector).await;
    let other = app.other_tenant_admin().await;
    let mut socket = connect(&app).await;
    init(&mut socket, &other).await.unwrap();
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription($id: ID!) { syncProgress(runId: $id) { status } }", "variables": { "id": run } } })).await;
    let message = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    let errors = if message["type"] == "error" {
        &message["payload"]
    } else {
        &message["payload"]["errors"]
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{message}");
    assert!(message["payload"]["data"].is_null());
}

#[tokio::test]
async fn progress_of_a_finished_run_sends_its_state_and_completes() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let run = insert_run(&app.database.db, &app.tenant_id, &connector).await;
    let mut socket = connect(&app).await;
    init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription($id: ID!) { syncProgress(runId: $id) { status processed } }", "variables": { "id": run } } })).await;
    let first = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        first["payload"]["data"]["syncProgress"]["status"], "PARTIAL",
        "{first}"
    );
    let done = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(done["type"], "complete", "{done}");
}

/// A subscription that stays open until the client completes it.
fn subscribe_events(id: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { syncEvents { runId } }" } })
}

#[tokio::test]
async fn subscribe_before_connection_init_closes_4401() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    send(&mut socket, subscribe_events("1")).await;
    assert_eq!(
        next(&mut socket, Duration::from_secs(5)).await,
        Err(Some(4401))
    );
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_4409() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app).await;
    init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    send(&mut socket, subscribe_events("1")).await;
    send(&mut socket, subscribe_events("1")).await;
    assert_eq!(
        next(&mut socket, Duration::from_secs(5)).await,
        Err(Some(4409))
    );
}

#[tokio::test]
async fn a_subscription_over_the_cap_is_refused_and_the_socket_stays_open() {
    let app = TestApp::spawn_with(|state| state.ws_max_subscriptions = 2).await;
    let mut socket = connect(&app).await;
    init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    send(&mut socket, subscribe_events("1")).await;
    send(&mut socket, subscribe_events("2")).await;
    send(&mut socket, subscribe_events("3")).await;
    let refused = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CRMSYNC_WS_MAX_SUBSCRIPTIONS"),
        "{refused}"
    );
    // The socket goes on: once one completes, a new one fits.
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    let done = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (done["type"].as_str(), done["id"].as_str()),
        (Some("complete"), Some("1"))
    );
    send(&mut socket, subscribe_events("4")).await;
    send(&mut socket, json!({ "type": "ping" })).await;
    let pong = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(pong["type"], "pong", "subscription 4 was refused: {pong}");
}

#[tokio::test]
async fn a_client_offering_both_protocols_gets_graphql_transport_ws() {
    let app = TestApp::spawn().await;
    let (_socket, chosen) = connect_offering(&app, "graphql-ws, graphql-transport-ws").await;
    assert_eq!(chosen.as_deref(), Some("graphql-transport-ws"));
}

#[tokio::test]
async fn a_client_offering_only_graphql_ws_is_spoken_to_in_the_legacy_protocol() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let run = insert_run(&app.database.db, &app.tenant_id, &connector).await;
    let (mut socket, chosen) = connect_offering(&app, "graphql-ws").await;
    assert_eq!(chosen.as_deref(), Some("graphql-ws"));
    let ack = init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    assert_eq!(ack["type"], "connection_ack");
    send(&mut socket, json!({ "id": "1", "type": "start", "payload": { "query": "subscription($id: ID!) { syncProgress(runId: $id) { status } }", "variables": { "id": run } } })).await;
    let first = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "data", "{first}");
    assert_eq!(
        first["payload"]["data"]["syncProgress"]["status"],
        "PARTIAL"
    );
}

#[tokio::test]
async fn the_legacy_protocol_refuses_a_bad_token_with_connection_error() {
    let app = TestApp::spawn().await;
    let (mut socket, _) = connect_offering(&app, "graphql-ws").await;
    let refused = init(&mut socket, "not-a-token").await.unwrap();
    assert_eq!(refused["type"], "connection_error", "{refused}");
    assert_eq!(
        next(&mut socket, Duration::from_secs(5)).await,
        Err(Some(4403))
    );
}

#[tokio::test]
async fn the_legacy_protocol_has_the_same_subscription_cap() {
    let app = TestApp::spawn_with(|state| state.ws_max_subscriptions = 1).await;
    let (mut socket, _) = connect_offering(&app, "graphql-ws").await;
    init(&mut socket, &app.token(Role::Viewer)).await.unwrap();
    let start = |id: &str| json!({ "id": id, "type": "start", "payload": { "query": "subscription { syncEvents { runId } }" } });
    send(&mut socket, start("1")).await;
    send(&mut socket, start("2")).await;
    let refused = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "2");
    assert_eq!(refused["payload"]["extensions"]["code"], "RATE_LIMITED");
}

/// Sends `request` on a raw TCP connection; returns the response head as sent.
async fn raw_response_head(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the response head arrived")
            .unwrap();
        assert_eq!(read, 1, "the connection closed mid-head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn host_of(app: &TestApp) -> String {
    app.url
        .trim_start_matches("http://")
        .trim_end_matches("/graphql")
        .to_owned()
}

#[tokio::test]
async fn the_upgrade_answer_spells_sec_websocket_protocol_as_gql_looks_it_up() {
    let app = TestApp::spawn().await;
    let host = host_of(&app);
    // What Python's websockets (under gql 4) sends.
    let request = format!(
        "GET /graphql/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-ws, graphql-transport-ws\r\n\r\n"
    );
    let head = raw_response_head(&host, &request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn http_responses_have_title_case_header_names() {
    let app = TestApp::spawn().await;
    let host = host_of(&app);
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n");
    let head = raw_response_head(&host, &request).await;
    assert!(head.contains("\r\nContent-Type: "), "{head}");
    assert!(head.contains("\r\nContent-Length: "), "{head}");
}
