//! Notifications (R5): run summaries over a real SMTP exchange with a server
//! this test starts, the summary logged when no SMTP server is configured,
//! and two dispatchers on one outbox sending each delivery once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use crmsync_entity::enums::{DeliveryChannel, DeliveryStatus, SyncMode, SyncRunStatus};
use crmsync_entity::models::{delivery, webhook};
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_worker::notify::{DeliverySettings, Dispatcher, SmtpSettings};
use hmac::{Hmac, Mac};
use sea_orm::{ActiveModelTrait, DatabaseConnection};
use secrecy::SecretString;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{App, eventually};

const PUBLIC_URL: &str = "https://app.platform.test";

/// One message as an SMTP server received it.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

impl Mail {
    fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    /// The body, decoded from its transfer encoding.
    fn text(&self) -> String {
        let (_, body) = self.data.split_once("\r\n\r\n").expect("headers end");
        match self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "base64" => String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(body.replace("\r\n", ""))
                    .expect("base64 body"),
            )
            .expect("UTF-8 body"),
            "quoted-printable" => quoted_printable(body),
            _ => body.to_owned(),
        }
        .replace("\r\n", "\n")
    }
}

fn quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 body")
}

/// A small SMTP server on 127.0.0.1:0: enough of RFC 5321 for lettre without
/// extensions (greeting, EHLO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT).
struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    connections: Arc<Mutex<usize>>,
}

impl SmtpServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (m, c) = (mails.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                tokio::spawn(session(socket, m.clone()));
            }
        });
        Self {
            port,
            mails,
            connections,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

async fn session(socket: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    let reply = |text: &str| format!("{text}\r\n").into_bytes();
    if write
        .write_all(&reply("220 smtp.test ESMTP"))
        .await
        .is_err()
    {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250 smtp.test"
        } else if let Some(rest) = upper.strip_prefix("MAIL FROM:") {
            from = address(&command[command.len() - rest.len()..]);
            to.clear();
            "250 OK"
        } else if let Some(rest) = upper.strip_prefix("RCPT TO:") {
            to.push(address(&command[command.len() - rest.len()..]));
            "250 OK"
        } else if upper == "DATA" {
            if write
                .write_all(&reply("354 end with <CRLF>.<CRLF>"))
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                // Undo the client's dot-stuffing.
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            "250 OK queued"
        } else if upper == "QUIT" {
            let _ = write.write_all(&reply("221 bye")).await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK"
        } else {
            "502 not implemented"
        };
        if write.write_all(&reply(answer)).await.is_err() {
            return;
        }
    }
}

/// `<a@b>` (with optional parameters after it) -> `a@b`.
fn address(text: &str) -> String {
    let text = text.trim();
    let start = text.find('<').map_or(0, |i| i + 1);
    let end = text.find('>').unwrap_or(text.len());
    text[start..end].to_owned()
}

async fn deliveries(db: &DatabaseConnection, tenant: &TenantId) -> Vec<delivery::Model> {
    delivery::Entity::for_tenant(tenant).all(db).await.unwrap()
}

/// Runs a dispatcher on the app's database until the returned sender is dropped.
fn dispatch(app: &App, settings: DeliverySettings) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = Dispatcher::new(app.db.db.clone(), app.ctx.credentials_key.clone(), settings);
    tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));
    stop
}

/// Fast retries, and webhook receivers on 127.0.0.1 allowed.
fn fast(mut settings: DeliverySettings) -> DeliverySettings {
    settings.retry_base = Duration::from_millis(50);
    settings.poll = Duration::from_millis(100);
    settings.egress = crmsync_worker::egress::Egress::new(true);
    settings
}

#[tokio::test]
async fn notify_a_run_summary_is_emailed_with_counts_rejections_and_the_run_link() {
    let app = App::with(0, |s| {
        s.notify_emails = vec!["ops@acme.test".into(), "sales@acme.test".into()];
    })
    .await;
    app.add_contact("ada@x.com", Some("Ada"), Some("Lovelace"), 10)
        .await;
    app.add_contact("nameless@x.com", None, None, 10).await;
    let smtp = SmtpServer::start().await;
    let mut settings = fast(DeliverySettings::new(PUBLIC_URL));
    settings.smtp = Some(
        SmtpSettings::new(
            &smtp.url(),
            "crmsync <crmsync@platform.test>",
            Duration::from_secs(10),
        )
        .unwrap(),
    );
    let _dispatcher = dispatch(&app, settings);

    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Partial);
    assert_eq!((run.to_crm_created, run.to_crm_rejected), (1, 1));

    let mail = eventually(20, "the summary e-mail", || async {
        smtp.mails().into_iter().next()
    })
    .await;
    assert_eq!(mail.from, "crmsync@platform.test");
    assert_eq!(mail.to, vec!["ops@acme.test", "sales@acme.test"]);
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[crmsync] PIPEDRIVE (PIPEDRIVE): sync PARTIAL"
    );
    let text = mail.text();
    for expected in [
        "Connector: PIPEDRIVE (PIPEDRIVE)".to_owned(),
        "Status:    PARTIAL".to_owned(),
        "Trigger:   MANUAL".to_owned(),
        "Mode:      INCREMENTAL".to_owned(),
        format!(
            "{:<16}{:>9}{:>9}{:>11}{:>10}{:>11}",
            "Platform to CRM",
            run.to_crm_created,
            run.to_crm_updated,
            run.to_crm_unchanged,
            run.to_crm_rejected,
            run.to_crm_conflicts
        ),
        format!(
            "{:<16}{:>9}{:>9}{:>11}{:>10}{:>11}",
            "CRM to platform", 0, 0, 0, 0, 0
        ),
        "Rejected contacts (the first 1 of 1):".to_owned(),
        "- nameless@x.com [TO_CRM] MISSING_NAME, field ".to_owned(),
        format!("The run: {PUBLIC_URL}/runs/{}", run.id),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    let sent = eventually(10, "the e-mail delivery is recorded", || async {
        deliveries(&app.db.db, &app.tenant)
            .await
            .into_iter()
            .find(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    assert_eq!(sent.channel, DeliveryChannel::Email);
    assert_eq!(sent.attempts, 1);
    assert_eq!(smtp.mails().len(), 1, "one e-mail for one run");
}

#[tokio::test]
async fn notify_without_smtp_the_summary_is_logged_and_nothing_is_sent() {
    let app = App::with(0, |s| s.notify_emails = vec!["ops@acme.test".into()]).await;
    app.add_contact("ada@x.com", Some("Ada"), Some("Lovelace"), 10)
        .await;
    let smtp = SmtpServer::start().await;
    // The embedded default: no SMTP server configured.
    let _dispatcher = dispatch(&app, fast(DeliverySettings::new(PUBLIC_URL)));

    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);

    let logged = eventually(20, "the summary is handled", || async {
        deliveries(&app.db.db, &app.tenant)
            .await
            .into_iter()
            .find(|d| d.status != DeliveryStatus::Pending)
    })
    .await;
    assert_eq!(logged.channel, DeliveryChannel::Email);
    assert_eq!(logged.status, DeliveryStatus::Failed);
    assert_eq!(logged.attempts, 1, "not retried");
    let attempt = &logged.attempt_list()[0];
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap()
            .contains("CRMSYNC_SMTP_URL is not set"),
        "{attempt:?}"
    );
    assert_eq!(smtp.connections(), 0, "no SMTP server was called");
}

#[tokio::test]
async fn notify_a_connector_without_addresses_queues_no_email() {
    let app = App::start(0).await;
    let run = app.sync(SyncMode::Incremental).await;
    assert!(run.status.is_final());
    assert!(deliveries(&app.db.db, &app.tenant).await.is_empty());
}

/// A webhook receiver on 127.0.0.1:0 that answers 200 and keeps what it got:
/// delivery id, event, and whether the signature verified.
async fn receiver(secret: String) -> (String, Arc<Mutex<Vec<(String, String, bool)>>>) {
    use axum::http::HeaderMap;
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let keep = keep.clone();
            let secret = secret.clone();
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let timestamp = header("x-crmsync-timestamp");
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(format!("{timestamp}.{body}").as_bytes());
                let expected: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let valid = header("x-crmsync-signature") == format!("v1={expected}");
                keep.lock().unwrap().push((
                    header("x-crmsync-delivery"),
                    header("x-crmsync-event"),
                    valid,
                ));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// A webhook of the app's tenant at `url`, signed with `secret`.
async fn add_webhook(app: &App, url: String, events: serde_json::Value, secret: String) {
    let id = crmsync_entity::new_id();
    let now = Utc::now();
    webhook::ActiveModel::from(webhook::Model {
        id: id.clone(),
        tenant_id: app.tenant.as_str().to_owned(),
        url,
        events,
        description: None,
        enabled: true,
        secret: app.ctx.credentials_key.seal_webhook_secret(
            app.tenant.as_str(),
            &id,
            &SecretString::from(secret),
        ),
        created_at: now,
        updated_at: now,
    })
    .insert(&app.db.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn notify_two_dispatchers_on_one_outbox_send_each_delivery_once() {
    let app = App::start(0).await;
    let secret = "whsec_test-secret".to_owned();
    let (url, got) = receiver(secret.clone()).await;
    add_webhook(
        &app,
        url,
        serde_json::json!(["sync.started", "sync.finished"]),
        secret,
    )
    .await;
    let _first = dispatch(&app, fast(DeliverySettings::new(PUBLIC_URL)));
    let _second = dispatch(&app, fast(DeliverySettings::new(PUBLIC_URL)));

    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(app.sync(SyncMode::Incremental).await);
    }
    let rows = eventually(30, "every delivery is delivered", || async {
        let rows = deliveries(&app.db.db, &app.tenant).await;
        (rows.len() == 10 && rows.iter().all(|d| d.status == DeliveryStatus::Delivered))
            .then_some(rows)
    })
    .await;

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 10, "one request per delivery: {got:?}");
    let mut per_delivery: HashMap<&str, usize> = HashMap::new();
    for (delivery, _, valid) in &got {
        assert!(valid, "signed with the webhook's secret");
        *per_delivery.entry(delivery.as_str()).or_default() += 1;
    }
    for row in &rows {
        assert_eq!(per_delivery.get(row.id.as_str()), Some(&1), "{}", row.id);
        assert_eq!(row.attempts, 1);
    }
    // Each run announced its start and its end.
    for run in &runs {
        let events: Vec<&str> = rows
            .iter()
            .filter(|d| d.run_id.as_deref() == Some(run.id.as_str()))
            .map(|d| d.event.as_str())
            .collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.contains(&"sync.started") && events.contains(&"sync.finished"));
    }
}

#[tokio::test]
async fn notify_a_cancelled_queued_run_is_announced_as_finished() {
    let app = App::with(0, |s| s.notify_emails = vec!["ops@acme.test".into()]).await;
    let run = app.queued_run(SyncMode::Incremental, None).await;
    let cancelled =
        crmsync_worker::runs::cancel_sync(&app.db.db, app.bus.as_ref(), &app.tenant, &run.id)
            .await
            .unwrap();
    assert_eq!(cancelled.status, SyncRunStatus::Cancelled);
    let rows = deliveries(&app.db.db, &app.tenant).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].channel, DeliveryChannel::Email);
    assert_eq!(rows[0].event, "sync.finished");
    let body: serde_json::Value = serde_json::from_str(&rows[0].payload).unwrap();
    assert_eq!(body["run"]["status"], "CANCELLED");
    // Executing the cancelled run's job later announces nothing more.
    app.execute(&cancelled).await;
    assert_eq!(deliveries(&app.db.db, &app.tenant).await.len(), 1);
}

#[tokio::test]
async fn notify_a_dispatcher_shutting_down_finishes_the_attempt_in_flight() {
    let app = App::start(0).await;
    // A receiver that holds its reply until the test releases it.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (release, released) = tokio::sync::watch::channel(false);
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let arrived_tx = arrived_tx.clone();
            let mut released = released.clone();
            async move {
                let _ = arrived_tx.send(());
                let _ = released.wait_for(|r| *r).await;
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
    add_webhook(
        &app,
        url,
        serde_json::json!(["sync.finished"]),
        "whsec_x".into(),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = Dispatcher::new(
        app.db.db.clone(),
        app.ctx.credentials_key.clone(),
        fast(DeliverySettings::new(PUBLIC_URL)),
    );
    let running = tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));

    app.sync(SyncMode::Incremental).await;
    tokio::time::timeout(Duration::from_secs(20), arrived.recv())
        .await
        .expect("the webhook is called")
        .unwrap();
    // Shut down while the receiver has not answered, then let it answer.
    stop.send(()).unwrap();
    release.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the dispatcher stops")
        .unwrap();

    let rows = deliveries(&app.db.db, &app.tenant).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, DeliveryStatus::Delivered, "{:?}", rows[0]);
    assert_eq!(rows[0].attempt_list()[0].http_status, Some(204));
    assert!(rows[0].claimed_by.is_none(), "the claim is cleared");
}
