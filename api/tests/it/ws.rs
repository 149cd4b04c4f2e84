//! Subscriptions over graphql-transport-ws: init auth, 4408, closed at expiry,
//! tenant-filtered events (T3).

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
    let mut request = app.ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
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
