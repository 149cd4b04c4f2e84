//! Partner webhooks (R5): managing them (validation, roles, tenants), and
//! real runs' events reaching a receiver this test starts, which verifies the
//! signature with the secret `createWebhook` showed, with retries, and the
//! delivery log read back through the API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use crmsync_entity::enums::Role;
use crmsync_worker::egress::{Egress, StaticHosts};
use crmsync_worker::notify::{DeliverySettings, Dispatcher};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

const CREATE: &str = "mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id url events description enabled } } }";
const START: &str =
    "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id status } } }";
const LOG: &str = "query($id: ID!) { webhook(id: $id) { deliveries { totalCount edges { node { id event runId status attemptCount nextAttemptAt createdAt deliveredAt payload attempts { number at httpStatus error durationMs } } } } } }";

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    /// Verifies the signature the way the README tells receivers to.
    fn verifies_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.{}", self.timestamp, self.body).as_bytes());
        let Some(hex) = self.signature.strip_prefix("v1=") else {
            return false;
        };
        let Some(bytes) = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        mac.verify_slice(&bytes).is_ok()
    }
}

/// A receiver on 127.0.0.1:0 that answers the statuses of `replies` in turn
/// (the last one from then on) and keeps every request.
async fn receiver(replies: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let keep = keep.clone();
            let replies = replies.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut got = keep.lock().unwrap();
                got.push(Received {
                    delivery: header("x-crmsync-delivery"),
                    event: header("x-crmsync-event"),
                    timestamp: header("x-crmsync-timestamp"),
                    signature: header("x-crmsync-signature"),
                    body,
                });
                let status = replies[(got.len() - 1).min(replies.len() - 1)];
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// Runs a dispatcher with fast retries on the app's database, calling out
/// under `egress`.
fn dispatch(app: &TestApp, max_attempts: u32, egress: Egress) {
    let mut settings = DeliverySettings::new("http://127.0.0.1/app");
    settings.retry_base = Duration::from_millis(50);
    settings.poll = Duration::from_millis(100);
    settings.max_attempts = max_attempts;
    settings.egress = egress;
    let dispatcher = Dispatcher::new(
        app.state.db.clone(),
        app.state.credentials_key.clone(),
        settings,
    );
    tokio::spawn(dispatcher.run(std::future::pending::<()>()));
}

/// Polls the webhook's log until its only delivery is no longer PENDING.
async fn settled(app: &TestApp, webhook: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let data = app.admin_ok(LOG, json!({ "id": webhook })).await;
        let edges = data["webhook"]["deliveries"]["edges"].clone();
        if let Some(node) = edges.as_array().and_then(|e| e.first()).map(|e| &e["node"])
            && node["status"] != "PENDING"
        {
            return node.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery is still pending: {data}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connector on an empty sandbox, a worker, a fast dispatcher, and a
/// webhook for `sync.finished` at `url`; returns the connector and webhook
/// ids and the secret.
async fn setup(
    app: &TestApp,
    url: &str,
    max_attempts: u32,
) -> (crmsync_sandbox::Sandbox, String, String, String) {
    setup_under(app, url, max_attempts, local_targets()).await
}

/// [`setup`] with a dispatcher calling out under `egress`.
async fn setup_under(
    app: &TestApp,
    url: &str,
    max_attempts: u32,
    egress: Egress,
) -> (crmsync_sandbox::Sandbox, String, String, String) {
    let sandbox = empty_sandbox().await;
    app.start_worker();
    dispatch(app, max_attempts, egress);
    let connector = app.pipedrive_connector(&sandbox).await;
    let created = app
        .admin_ok(
            CREATE,
            json!({ "input": { "url": url, "events": ["sync.finished"], "description": "CRM dashboard" } }),
        )
        .await;
    let hook = &created["createWebhook"];
    assert_eq!(hook["webhook"]["events"], json!(["sync.finished"]));
    assert_eq!(hook["webhook"]["enabled"], true);
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let id = hook["webhook"]["id"].as_str().unwrap().to_owned();
    (sandbox, connector, id, secret)
}

#[tokio::test]
async fn webhook_events_are_signed_retried_after_500s_and_logged() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver(vec![500, 500, 200]).await;
    let (_sandbox, connector, webhook, secret) = setup(&app, &url, 5).await;

    let run = app.admin_ok(START, json!({ "id": connector })).await["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let node = settled(&app, &webhook).await;

    // The receiver saw three attempts of one delivery, each validly signed.
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    for request in &got {
        assert_eq!(
            request.delivery, got[0].delivery,
            "one delivery id across retries"
        );
        assert_eq!(request.event, "sync.finished");
        assert!(request.verifies_with(&secret), "{request:?}");
        assert!(
            !request.verifies_with("whsec_another"),
            "the secret matters"
        );
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["event"], "sync.finished");
        assert_eq!(body["deliveryId"], request.delivery.as_str());
        assert_eq!(body["tenantId"], app.tenant_id.as_str());
        assert_eq!(body["run"]["id"], run.as_str());
        assert_eq!(body["run"]["connectorId"], connector.as_str());
        assert_eq!(body["run"]["status"], "SUCCEEDED");
        assert_eq!(body["run"]["legs"][0]["direction"], "TO_CRM");
        let age = chrono::Utc::now().timestamp() - request.timestamp.parse::<i64>().unwrap();
        assert!((0..120).contains(&age), "a current timestamp: {age}");
    }

    // The log says the same.
    assert_eq!(node["id"], got[0].delivery.as_str());
    assert_eq!(node["status"], "DELIVERED");
    assert_eq!(node["event"], "sync.finished");
    assert_eq!(node["runId"], run.as_str());
    assert_eq!(node["attemptCount"], 3);
    assert!(node["nextAttemptAt"].is_null());
    assert!(node["deliveredAt"].is_string());
    assert_eq!(node["payload"]["run"]["id"], run.as_str());
    let attempts = node["attempts"].as_array().unwrap();
    let statuses: Vec<&Value> = attempts.iter().map(|a| &a["httpStatus"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(500), &json!(200)]);
    assert_eq!(attempts[0]["error"], "HTTP 500 Internal Server Error");
    assert_eq!(attempts[1]["error"], "HTTP 500 Internal Server Error");
    assert!(attempts[2]["error"].is_null());
    assert_eq!(attempts[2]["number"], 3);
    assert!(
        attempts
            .iter()
            .all(|a| a["durationMs"].as_i64().unwrap() >= 0)
    );
}

#[tokio::test]
async fn webhook_deliveries_that_always_fail_are_given_up_after_the_last_attempt() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver(vec![503]).await;
    let (_sandbox, connector, webhook, _) = setup(&app, &url, 3).await;

    app.admin_ok(START, json!({ "id": connector })).await;
    let node = settled(&app, &webhook).await;

    assert_eq!(node["status"], "FAILED");
    assert_eq!(node["attemptCount"], 3);
    assert!(node["nextAttemptAt"].is_null());
    assert!(node["deliveredAt"].is_null());
    assert_eq!(got.lock().unwrap().len(), 3);
    let failed = app
        .admin_ok(
            "query($id: ID!) { webhook(id: $id) { deliveries(status: FAILED) { totalCount } delivered: deliveries(status: DELIVERED) { totalCount } } }",
            json!({ "id": webhook }),
        )
        .await;
    assert_eq!(failed["webhook"]["deliveries"]["totalCount"], 1);
    assert_eq!(failed["webhook"]["delivered"]["totalCount"], 0);
}

#[tokio::test]
async fn webhook_inputs_are_validated_naming_the_input() {
    let app = TestApp::spawn().await;
    let admin = app.token(Role::Admin);
    let cases = [
        (json!({ "url": "ftp://hooks.example.com/x" }), "input.url"),
        (json!({ "url": "not a url" }), "input.url"),
        (
            json!({ "url": "https://user:pw@hooks.example.com" }),
            "input.url",
        ),
        (
            json!({ "url": "https://hooks.example.com", "events": ["sync.finished", "sync.exploded"] }),
            "input.events[1]",
        ),
        (
            json!({ "url": "https://hooks.example.com", "events": [] }),
            "input.events",
        ),
        (
            json!({ "url": "https://hooks.example.com", "description": "x".repeat(501) }),
            "input.description",
        ),
    ];
    for (input, expected) in cases {
        let body = app.gql(&admin, CREATE, json!({ "input": input })).await;
        assert_eq!(code(&body), "VALIDATION", "{input}: {body}");
        assert_eq!(field(&body), expected, "{input}: {body}");
    }
    let created = app
        .admin_ok(
            CREATE,
            json!({ "input": { "url": "https://hooks.example.com/a" } }),
        )
        .await;
    assert_eq!(
        created["createWebhook"]["webhook"]["events"],
        json!(["sync.started", "sync.finished"]),
        "all events by default"
    );
    let id = created["createWebhook"]["webhook"]["id"].clone();
    let body = app
        .gql(
            &admin,
            "mutation($id: ID!) { updateWebhook(input: {id: $id, url: \"javascript:alert(1)\"}) { webhook { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.url");
}

#[tokio::test]
async fn webhooks_are_managed_by_admins_read_by_viewers_and_secrets_shown_once() {
    let app = TestApp::spawn().await;
    let viewer = app.token(Role::Viewer);
    let denied = app
        .gql(
            &viewer,
            CREATE,
            json!({ "input": { "url": "https://hooks.example.com" } }),
        )
        .await;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");

    let created = app
        .admin_ok(
            CREATE,
            json!({ "input": { "url": "https://hooks.example.com/a", "description": "BI" } }),
        )
        .await;
    let id = created["createWebhook"]["webhook"]["id"].clone();
    let first = created["createWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.starts_with("whsec_"), "{first}");

    // Viewers read the webhooks and their logs; nothing shows the secret.
    let list = app
        .gql(
            &viewer,
            "{ webhooks { totalCount edges { node { id url events description enabled deliveries { totalCount } } } } }",
            json!({}),
        )
        .await;
    assert!(list.get("errors").is_none(), "{list}");
    assert_eq!(list["data"]["webhooks"]["totalCount"], 1);
    assert!(!list.to_string().contains(&first));
    for mutation in [
        "mutation($id: ID!) { updateWebhook(input: {id: $id, enabled: false}) { webhook { id } } }",
        "mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { secret } }",
        "mutation($id: ID!) { deleteWebhook(input: {id: $id}) { deletedId } }",
    ] {
        let body = app.gql(&viewer, mutation, json!({ "id": id })).await;
        assert_eq!(code(&body), "FORBIDDEN", "{mutation}: {body}");
    }

    // Admins change, rotate (a new secret, shown once) and delete.
    let updated = app
        .admin_ok(
            "mutation($id: ID!) { updateWebhook(input: {id: $id, enabled: false, events: [\"sync.started\"], description: null}) { secret webhook { enabled events description } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        updated["updateWebhook"],
        json!({ "secret": null, "webhook": { "enabled": false, "events": ["sync.started"], "description": null } })
    );
    let rotated = app
        .admin_ok(
            "mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { secret } }",
            json!({ "id": id }),
        )
        .await;
    let second = rotated["rotateWebhookSecret"]["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != first);
    let audit = app
        .admin_ok(
            "{ auditLog { edges { node { action detail } } } }",
            json!({}),
        )
        .await;
    assert!(
        audit.to_string().contains("webhook.rotate_secret"),
        "{audit}"
    );
    assert!(
        !audit.to_string().contains("whsec_"),
        "no secret in the audit log"
    );
    app.admin_ok(
        "mutation($id: ID!) { deleteWebhook(input: {id: $id}) { deletedId } }",
        json!({ "id": id }),
    )
    .await;
    let gone = app
        .gql(
            &viewer,
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND", "{gone}");
}

#[tokio::test]
async fn webhooks_of_another_tenant_are_not_found() {
    let app = TestApp::spawn().await;
    let created = app
        .admin_ok(
            CREATE,
            json!({ "input": { "url": "https://hooks.example.com/a" } }),
        )
        .await;
    let id = created["createWebhook"]["webhook"]["id"].clone();
    let other = app.other_tenant_admin().await;
    for query in [
        "query($id: ID!) { webhook(id: $id) { id } }",
        "mutation($id: ID!) { updateWebhook(input: {id: $id, enabled: false}) { webhook { id } } }",
        "mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { secret } }",
        "mutation($id: ID!) { deleteWebhook(input: {id: $id}) { deletedId } }",
    ] {
        let body = app.gql(&other, query, json!({ "id": id })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{query}: {body}");
    }
    let list = app
        .gql(&other, "{ webhooks { totalCount } }", json!({}))
        .await;
    assert_eq!(list["data"]["webhooks"]["totalCount"], 0, "{list}");
    app.admin_ok(
        "query($id: ID!) { webhook(id: $id) { enabled } }",
        json!({ "id": id }),
    )
    .await;
}

#[tokio::test]
async fn webhook_urls_on_local_addresses_are_refused_at_create_and_update_naming_the_variable() {
    let app = TestApp::spawn_with_egress(Egress::new(false)).await;
    let admin = app.token(Role::Admin);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8080/hook",
    ] {
        let body = app
            .gql(&admin, CREATE, json!({ "input": { "url": url } }))
            .await;
        assert_eq!(code(&body), "VALIDATION", "{url}: {body}");
        assert_eq!(field(&body), "input.url", "{url}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("CRMSYNC_ALLOW_LOCAL_TARGETS"),
            "{url}: {message}"
        );
    }
    let created = app
        .admin_ok(
            CREATE,
            json!({ "input": { "url": "https://hooks.example.com/a" } }),
        )
        .await;
    let id = created["createWebhook"]["webhook"]["id"].clone();
    let body = app
        .gql(
            &admin,
            "mutation($id: ID!) { updateWebhook(input: {id: $id, url: \"http://127.0.0.1:6379/\"}) { webhook { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "input.url");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("CRMSYNC_ALLOW_LOCAL_TARGETS"),
        "{body}"
    );
}

/// The dispatcher's rule with `rebind.test` resolving to loopback: a name
/// that was public when the webhook was made and turned local since.
fn rebinding(allow_local_targets: bool) -> Egress {
    Egress::new(allow_local_targets).with_lookup(
        StaticHosts::default().with("rebind.test", std::net::Ipv4Addr::LOCALHOST.into()),
    )
}

#[tokio::test]
async fn a_webhook_whose_name_resolves_to_loopback_fails_at_delivery_without_connecting() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver(vec![200]).await;
    let url = url.replace("127.0.0.1", "rebind.test");
    let (_sandbox, connector, webhook, _) = setup_under(&app, &url, 1, rebinding(false)).await;

    app.admin_ok(START, json!({ "id": connector })).await;
    let node = settled(&app, &webhook).await;

    assert_eq!(node["status"], "FAILED", "{node}");
    let error = node["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("CRMSYNC_ALLOW_LOCAL_TARGETS"), "{error}");
    assert!(error.contains("rebind.test"), "{error}");
    assert!(!error.contains("127.0.0.1"), "no resolved address: {error}");
    assert!(node["attempts"][0]["httpStatus"].is_null());
    assert!(got.lock().unwrap().is_empty(), "the receiver saw a request");
}

#[tokio::test]
async fn a_webhook_whose_name_resolves_to_loopback_is_delivered_when_local_targets_are_allowed() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver(vec![200]).await;
    let url = url.replace("127.0.0.1", "rebind.test");
    let (_sandbox, connector, webhook, _) = setup_under(&app, &url, 1, rebinding(true)).await;

    app.admin_ok(START, json!({ "id": connector })).await;
    let node = settled(&app, &webhook).await;

    assert_eq!(node["status"], "DELIVERED", "{node}");
    assert_eq!(got.lock().unwrap().len(), 1);
}
