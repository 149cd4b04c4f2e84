//! Run summary e-mails: the SMTP settings, the summary text (a pure function of
//! the run, its connector and its first rejected contacts), and sending it.

use std::fmt::Write as _;
use std::time::Duration;

use crmsync_entity::models::{connector, sync_item, sync_run};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::events::{LegCounts, Legs};

/// The sender when `CRMSYNC_SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "crmsync <crmsync@localhost>";

/// How many rejected contacts a summary lists.
pub const REJECTED_LISTED: u64 = 10;

/// Where summaries are sent from: an SMTP server and the sender.
#[derive(Clone)]
pub struct SmtpSettings {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the URL's password.
        f.debug_struct("SmtpSettings")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    /// An SMTP server from a lettre URL (`smtp://user:pass@host:587?tls=required`,
    /// `smtps://host`, `smtp://host:25` without TLS) and the sender
    /// (`Name <address>` or a bare address). Errors never repeat the URL,
    /// which may hold a password.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                format!(
                    "expected smtp://[user:password@]host[:port][?tls=required|opportunistic] or smtps://…: {e}"
                )
            })?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            from: parse_mailbox(from)?,
        })
    }

    /// Sends one message to every recipient.
    pub(crate) async fn send(
        &self,
        to: &[String],
        summary: &SummaryEmail,
    ) -> Result<(), SendError> {
        let mut message = Message::builder().from(self.from.clone());
        for address in to {
            let mailbox = address
                .parse::<Mailbox>()
                .map_err(|e| SendError::Permanent(format!("the address {address}: {e}")))?;
            message = message.to(mailbox);
        }
        let message = message
            .subject(summary.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(summary.body.clone())
            .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

/// Why an e-mail was not sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Sending again will not help (the server refused the message for good).
    Permanent(String),
    /// Try again later (a 4xx reply, a network error, a timeout).
    Transient(String),
}

/// Parses a sender or recipient: `Name <address>` or a bare address.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("expected an address such as `crmsync <crmsync@example.com>`: {e}"))
}

/// A summary, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryEmail {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// The summary of an ended run: connector, status, trigger, mode, times,
/// counts per direction, the first rejected contacts (`rejected`, at most
/// [`REJECTED_LISTED`], of `rejected_total`) with reason code, field and
/// message, and a link to the run under `public_url`.
pub fn summary(
    run: &sync_run::Model,
    connector: &connector::Model,
    rejected: &[sync_item::Model],
    rejected_total: u64,
    public_url: &str,
) -> SummaryEmail {
    let subject = format!(
        "[crmsync] {} ({}): sync {}",
        connector.name, connector.kind, run.status
    );
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let mut body = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(body, "Connector: {} ({})", connector.name, connector.kind);
    let _ = writeln!(body, "Run:       {}", run.id);
    let _ = writeln!(body, "Status:    {}", run.status);
    if let Some(error) = &run.error {
        let _ = writeln!(body, "           {error}");
    }
    let _ = writeln!(body, "Trigger:   {}", run.trigger);
    let _ = writeln!(body, "Mode:      {}", run.mode);
    let _ = writeln!(body, "Started:   {}", time(run.started_at));
    let _ = writeln!(body, "Ended:     {}", time(run.finished_at));
    let _ = writeln!(body);
    let legs = Legs::of_run(run);
    let _ = writeln!(
        body,
        "{:<16}{:>9}{:>9}{:>11}{:>10}{:>11}{:>9}",
        "", "created", "updated", "unchanged", "rejected", "conflicts", "deleted"
    );
    let row = |body: &mut String, name: &str, c: LegCounts| {
        let _ = writeln!(
            body,
            "{name:<16}{:>9}{:>9}{:>11}{:>10}{:>11}{:>9}",
            c.created, c.updated, c.unchanged, c.rejected, c.conflicts, c.deleted
        );
    };
    row(&mut body, "Platform to CRM", legs.to_crm);
    row(&mut body, "CRM to platform", legs.from_crm);
    if !rejected.is_empty() {
        let _ = writeln!(body);
        let _ = writeln!(
            body,
            "Rejected contacts (the first {} of {rejected_total}):",
            rejected.len()
        );
        for item in rejected {
            let who = item
                .email
                .clone()
                .or_else(|| {
                    item.crm_record_id
                        .as_ref()
                        .map(|id| format!("CRM record {id}"))
                })
                .unwrap_or_else(|| "(unknown)".into());
            let _ = writeln!(
                body,
                "- {who} [{}] {}, field {}: {}",
                item.direction,
                item.reason_code.as_deref().unwrap_or("REJECTED"),
                item.field.as_deref().unwrap_or("-"),
                item.message.as_deref().unwrap_or("-"),
            );
        }
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "The run: {}", run_link(public_url, &run.id));
    SummaryEmail { subject, body }
}

/// The run's page under the platform's public URL.
pub fn run_link(public_url: &str, run_id: &str) -> String {
    format!("{}/runs/{run_id}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use crmsync_entity::enums::{
        ConnectorStatus, ItemOutcome, SyncDirection, SyncMode, SyncRunStatus, SyncTrigger,
    };

    use super::*;

    fn run() -> sync_run::Model {
        let mut run = sync_run::Model::queued(
            "t1",
            "c1",
            SyncTrigger::Schedule,
            SyncMode::Incremental,
            "task".into(),
            None,
        );
        run.id = "01RUN".into();
        run.status = SyncRunStatus::Partial;
        run.error = Some("1 contacts rejected: see the run's items".into());
        run.started_at = Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        run.finished_at = Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 0).unwrap());
        run.to_crm_created = 3;
        run.from_crm_updated = 12;
        run.to_crm_rejected = 1;
        run
    }

    fn connector() -> connector::Model {
        let now = Utc::now();
        connector::Model {
            id: "c1".into(),
            tenant_id: "t1".into(),
            kind: crate::crm::kit::any_kind(),
            name: "Sales".into(),
            status: ConnectorStatus::Connected,
            status_message: None,
            enabled: true,
            settings: serde_json::json!({}),
            credentials: None,
            credentials_set: serde_json::json!([]),
            base_url: None,
            full_resync_recommended: false,
            next_sync_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn rejected() -> sync_item::Model {
        sync_item::Model {
            id: "i1".into(),
            tenant_id: "t1".into(),
            run_id: "01RUN".into(),
            connector_id: "c1".into(),
            direction: SyncDirection::ToCrm,
            outcome: ItemOutcome::Rejected,
            email: Some("nameless@x.com".into()),
            contact_id: None,
            crm_record_id: None,
            reason_code: Some("MISSING_NAME".into()),
            field: Some("name".into()),
            message: Some("the CRM requires a name".into()),
            changes: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_summary_has_status_counts_rejections_and_the_run_link() {
        let email = summary(
            &run(),
            &connector(),
            &[rejected()],
            1,
            "https://app.example/",
        );
        // The summary names the kind as stored.
        let kind = crate::crm::kit::any_kind();
        assert_eq!(
            email.subject,
            format!("[crmsync] Sales ({kind}): sync PARTIAL")
        );
        let connector_line = format!("Connector: Sales ({kind})");
        for expected in [
            connector_line.as_str(),
            "Status:    PARTIAL",
            "Trigger:   SCHEDULE",
            "Mode:      INCREMENTAL",
            "Started:   2026-01-02 03:04:05 UTC",
            "Ended:     2026-01-02 03:05:00 UTC",
            "Platform to CRM         3        0          0         1          0",
            "CRM to platform         0       12          0         0          0",
            "Rejected contacts (the first 1 of 1):",
            "- nameless@x.com [TO_CRM] MISSING_NAME, field name: the CRM requires a name",
            "The run: https://app.example/runs/01RUN",
        ] {
            assert!(
                email.body.contains(expected),
                "{expected:?} in\n{}",
                email.body
            );
        }
    }

    #[test]
    fn a_run_without_rejections_lists_none() {
        let mut run = run();
        run.status = SyncRunStatus::Succeeded;
        run.to_crm_rejected = 0;
        let email = summary(&run, &connector(), &[], 0, "http://127.0.0.1:8080");
        assert!(!email.body.contains("Rejected contacts"), "{}", email.body);
        assert!(
            email
                .body
                .ends_with("The run: http://127.0.0.1:8080/runs/01RUN\n")
        );
    }

    #[test]
    fn smtp_urls_and_senders_are_checked_without_echoing_passwords() {
        let ok = SmtpSettings::new(
            "smtp://u:secret-pw@mail.example:587?tls=required",
            DEFAULT_FROM,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("secret-pw"));
        assert!(
            SmtpSettings::new(
                "smtps://mail.example",
                "ops@example.com",
                Duration::from_secs(1)
            )
            .is_ok()
        );
        let bad = SmtpSettings::new(
            "http://u:secret-pw@mail",
            DEFAULT_FROM,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(!bad.contains("secret-pw"), "{bad}");
        assert!(parse_mailbox("not an address").is_err());
    }
}
