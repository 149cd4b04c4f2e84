//! The dispatcher: claims due deliveries of the outbox, sends them, records
//! each attempt. One runs in every worker process.
//!
//! - A row is due when PENDING, its `next_attempt_at` has come, and no live
//!   claim holds it. A dispatcher claims it with a conditional update that
//!   writes its name and an expiry (the attempt's timeout plus a margin); a
//!   second dispatcher's update then matches nothing, so one attempt is sent
//!   by one process.
//! - The attempt's outcome is written only where the row still names this
//!   dispatcher, together with the attempt's log entry, and the claim is
//!   cleared. A dispatcher that dies mid-attempt leaves its claim to lapse;
//!   the row is then attempted again (at least once).
//! - Failures are retried after `retry_base`, doubling each time up to an
//!   hour, until `max_attempts`; then the row is FAILED. Failures that no
//!   retry can mend (a webhook deleted or disabled, a secret that no longer
//!   opens, an address the SMTP server refuses for good, no SMTP server at
//!   all) fail at once.
//! - It wakes at once when this process commits deliveries ([`super::wake`])
//!   and polls for the others' every `poll`. At shutdown it claims nothing
//!   more and lets the attempts in flight finish (each is bounded by the
//!   timeout).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crmsync_entity::enums::{DeliveryChannel, DeliveryStatus, ItemOutcome};
use crmsync_entity::models::delivery::{self, Attempt};
use crmsync_entity::models::{connector, sync_item, sync_run, webhook};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::task::JoinSet;

use super::email::{self, SendError, SmtpSettings};
use crate::credentials::CredentialsKey;
use crate::egress::{Egress, HttpClient, HttpOptions};

/// The first retry's delay when nothing else is configured.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(10);
/// Attempts before a delivery fails, when nothing else is configured: with
/// the default base, retries go on for about an hour and a half.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The longest one attempt may take (a webhook's reply, an SMTP exchange).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a dispatcher looks for deliveries written by other processes.
pub const POLL: Duration = Duration::from_secs(1);
/// How long a claim outlives the attempt's timeout before another dispatcher
/// may take the row (its dispatcher is then presumed dead).
const CLAIM_MARGIN: Duration = Duration::from_secs(60);
/// Attempts in flight at once per dispatcher.
const IN_FLIGHT: usize = 16;

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The SMTP server for run summaries; none: summaries are logged instead
    /// (`CRMSYNC_SMTP_URL` unset, the embedded default).
    pub smtp: Option<SmtpSettings>,
    /// The platform's public URL, for the link to the run in summaries.
    pub public_url: String,
    /// The wait before the first retry; it doubles with each further one, up
    /// to [`MAX_BACKOFF`].
    pub retry_base: Duration,
    /// Attempts before a delivery is FAILED.
    pub max_attempts: u32,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// How often to look for deliveries written by other processes.
    pub poll: Duration,
    /// Which webhook addresses may be called (`CRMSYNC_ALLOW_LOCAL_TARGETS`).
    pub egress: Egress,
}

impl DeliverySettings {
    /// The defaults, without SMTP.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            smtp: None,
            public_url: public_url.into(),
            retry_base: DEFAULT_RETRY_BASE,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: ATTEMPT_TIMEOUT,
            poll: POLL,
            egress: Egress::default(),
        }
    }

    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(31));
        self.retry_base.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// Sends the outbox's deliveries; see the module documentation.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    key: Arc<CredentialsKey>,
    settings: DeliverySettings,
    http: HttpClient,
    /// Written on the rows this dispatcher claims.
    name: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.inner.name)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
struct Outcome {
    delivered: bool,
    http_status: Option<u16>,
    error: Option<String>,
    /// No retry can change it.
    permanent: bool,
}

impl Outcome {
    fn delivered(http_status: Option<u16>) -> Self {
        Self {
            delivered: true,
            http_status,
            error: None,
            permanent: false,
        }
    }

    fn retry(http_status: Option<u16>, error: String) -> Self {
        Self {
            delivered: false,
            http_status,
            error: Some(error),
            permanent: false,
        }
    }

    fn give_up(error: impl Into<String>) -> Self {
        Self {
            delivered: false,
            http_status: None,
            error: Some(error.into()),
            permanent: true,
        }
    }
}

impl Dispatcher {
    /// A dispatcher on the database, opening webhook secrets with `key`.
    pub fn new(
        db: DatabaseConnection,
        key: Arc<CredentialsKey>,
        settings: DeliverySettings,
    ) -> Self {
        let http = settings
            .egress
            .client(HttpOptions {
                user_agent: concat!("crmsync-webhooks/", env!("CARGO_PKG_VERSION")),
                connect_timeout: settings.timeout,
                timeout: settings.timeout,
                // A receiver that redirects has moved: its owner updates the URL.
                follow_redirects: false,
            })
            .expect("the webhook HTTP client builds");
        let name = format!(
            "{}/{}",
            crate::context::instance_name(),
            ulid::Ulid::generate()
        );
        Self {
            inner: Arc::new(Inner {
                db,
                key,
                settings,
                http,
                name,
            }),
        }
    }

    /// Sends due deliveries until `shutdown` completes, then lets the attempts
    /// in flight finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut wakes = super::wakes();
        let mut in_flight = JoinSet::new();
        tokio::pin!(shutdown);
        if self.inner.settings.smtp.is_none() {
            tracing::info!("run summaries are logged, not e-mailed: CRMSYNC_SMTP_URL is not set");
        }
        loop {
            let free = IN_FLIGHT.saturating_sub(in_flight.len());
            if free > 0 {
                match self.inner.claim_due(free).await {
                    Ok(rows) => {
                        for row in rows {
                            let inner = self.inner.clone();
                            in_flight.spawn(async move { inner.attempt(row).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "deliveries: reading the outbox failed"),
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                _ = wakes.changed() => {}
                () = tokio::time::sleep(self.inner.settings.poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        if !in_flight.is_empty() {
            tracing::info!(
                in_flight = in_flight.len(),
                "deliveries: finishing the attempts in flight"
            );
        }
        while in_flight.join_next().await.is_some() {}
    }
}

impl Inner {
    /// Claims up to `limit` due deliveries for this dispatcher.
    async fn claim_due(&self, limit: usize) -> Result<Vec<delivery::Model>, DbErr> {
        let now = Utc::now();
        let candidates = delivery::due(&self.db, now, limit as u64).await?;
        let until = now
            + chrono::Duration::from_std(self.settings.timeout + CLAIM_MARGIN)
                .unwrap_or(chrono::Duration::minutes(5));
        let mut claimed = Vec::with_capacity(candidates.len());
        for row in candidates {
            let taken = delivery::Entity::update_many()
                .col_expr(delivery::Column::ClaimedBy, Expr::value(self.name.as_str()))
                .col_expr(delivery::Column::ClaimExpiresAt, Expr::value(until))
                .filter(delivery::Column::TenantId.eq(&row.tenant_id))
                .filter(delivery::Column::Id.eq(&row.id))
                .filter(delivery::due_at(now))
                .exec(&self.db)
                .await?;
            if taken.rows_affected == 1 {
                claimed.push(row);
            }
        }
        Ok(claimed)
    }

    /// Sends one claimed delivery and records the attempt.
    async fn attempt(&self, row: delivery::Model) {
        let at = Utc::now();
        let started = Instant::now();
        let tenant = TenantId::new(row.tenant_id.clone());
        let outcome = match row.channel {
            DeliveryChannel::Webhook => self.webhook(&tenant, &row).await,
            DeliveryChannel::Email => self.email(&tenant, &row).await,
        };
        let outcome = outcome.unwrap_or_else(|e| {
            tracing::warn!(delivery = %row.id, error = %e, "deliveries: the database failed during an attempt");
            Outcome::retry(None, "internal error; the delivery will be attempted again".into())
        });
        let attempt = Attempt {
            at,
            http_status: outcome.http_status,
            error: outcome.error.clone(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        if let Err(e) = self.record(&tenant, &row, attempt, &outcome).await {
            // The claim lapses and the row is attempted again.
            tracing::warn!(delivery = %row.id, error = %e, "deliveries: recording an attempt failed");
        }
    }

    async fn webhook(&self, tenant: &TenantId, row: &delivery::Model) -> Result<Outcome, DbErr> {
        let Some(hook) = (match &row.webhook_id {
            Some(id) => {
                webhook::Entity::find_for_tenant(tenant, id)
                    .one(&self.db)
                    .await?
            }
            None => None,
        }) else {
            return Ok(Outcome::give_up("the webhook was deleted"));
        };
        if !hook.enabled {
            return Ok(Outcome::give_up("the webhook is disabled"));
        }
        let Ok(secret) = self
            .key
            .open_webhook_secret(tenant.as_str(), &hook.id, &hook.secret)
        else {
            return Ok(Outcome::give_up(
                "the signing secret does not decrypt with this key: rotate the webhook's secret",
            ));
        };
        let reply = super::webhook::post(
            &self.http,
            &hook.url,
            secrecy::ExposeSecret::expose_secret(&secret),
            &row.event,
            &row.id,
            &row.payload,
            self.settings.timeout,
        )
        .await;
        Ok(match reply.error {
            None => Outcome::delivered(reply.status),
            Some(error) => Outcome::retry(reply.status, error),
        })
    }

    async fn email(&self, tenant: &TenantId, row: &delivery::Model) -> Result<Outcome, DbErr> {
        let Some(run_id) = &row.run_id else {
            return Ok(Outcome::give_up("the delivery names no run"));
        };
        let Some(run) = sync_run::Entity::find_for_tenant(tenant, run_id)
            .one(&self.db)
            .await?
        else {
            return Ok(Outcome::give_up("the run no longer exists"));
        };
        let Some(connector) = connector::Entity::find_for_tenant(tenant, &run.connector_id)
            .one(&self.db)
            .await?
        else {
            return Ok(Outcome::give_up("the connector no longer exists"));
        };
        let rejected = sync_item::Entity::for_tenant(tenant)
            .filter(sync_item::Column::RunId.eq(&run.id))
            .filter(sync_item::Column::Outcome.eq(ItemOutcome::Rejected));
        let total = rejected.clone().count(&self.db).await?;
        let first = rejected
            .order_by_asc(sync_item::Column::Id)
            .limit(email::REJECTED_LISTED)
            .all(&self.db)
            .await?;
        let summary = email::summary(&run, &connector, &first, total, &self.settings.public_url);
        let to = row.recipient_list();
        let Some(smtp) = &self.settings.smtp else {
            tracing::info!(
                run = %run.id,
                to = ?to,
                subject = %summary.subject,
                body = %summary.body,
                "run summary, not e-mailed because CRMSYNC_SMTP_URL is not set"
            );
            return Ok(Outcome::give_up(
                "not e-mailed: CRMSYNC_SMTP_URL is not set (the summary was logged)",
            ));
        };
        let sent = tokio::time::timeout(self.settings.timeout, smtp.send(&to, &summary)).await;
        Ok(match sent {
            Ok(Ok(())) => Outcome::delivered(None),
            Ok(Err(SendError::Permanent(e))) => Outcome::give_up(format!("refused: {e}")),
            Ok(Err(SendError::Transient(e))) => Outcome::retry(None, e),
            Err(_) => Outcome::retry(
                None,
                format!("no reply within {} s", self.settings.timeout.as_secs()),
            ),
        })
    }

    /// Writes the attempt and what follows from it, where the row is still
    /// this dispatcher's.
    async fn record(
        &self,
        tenant: &TenantId,
        row: &delivery::Model,
        attempt: Attempt,
        outcome: &Outcome,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let attempts = row.attempts.saturating_add(1);
        let mut log = row.attempt_list();
        log.push(attempt);
        let made = u32::try_from(attempts).unwrap_or(u32::MAX);
        let (status, next, delivered_at) = if outcome.delivered {
            (DeliveryStatus::Delivered, None, Some(now))
        } else if outcome.permanent || made >= self.settings.max_attempts {
            (DeliveryStatus::Failed, None, None)
        } else {
            let wait = chrono::Duration::from_std(self.settings.backoff(made))
                .unwrap_or(chrono::Duration::hours(1));
            (DeliveryStatus::Pending, Some(now + wait), None)
        };
        let written = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(status))
            .col_expr(delivery::Column::Attempts, Expr::value(attempts))
            .col_expr(
                delivery::Column::AttemptLog,
                Expr::value(serde_json::to_value(&log).unwrap_or_default()),
            )
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(delivery::Column::DeliveredAt, Expr::value(delivered_at))
            .col_expr(
                delivery::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                delivery::Column::ClaimExpiresAt,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(delivery::Column::TenantId.eq(tenant.as_str()))
            .filter(delivery::Column::Id.eq(&row.id))
            .filter(delivery::Column::ClaimedBy.eq(self.name.as_str()))
            .exec(&self.db)
            .await?;
        if written.rows_affected == 0 {
            tracing::warn!(delivery = %row.id, "deliveries: the claim lapsed before the attempt was recorded; it will be attempted again");
        } else if status == DeliveryStatus::Failed {
            tracing::warn!(
                delivery = %row.id,
                channel = %row.channel,
                event = %row.event,
                attempts,
                error = outcome.error.as_deref().unwrap_or(""),
                "delivery failed"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_base_up_to_an_hour() {
        let settings = DeliverySettings::new("http://x");
        assert_eq!(settings.backoff(1), Duration::from_secs(10));
        assert_eq!(settings.backoff(2), Duration::from_secs(20));
        assert_eq!(settings.backoff(4), Duration::from_secs(80));
        assert_eq!(settings.backoff(12), MAX_BACKOFF);
        assert_eq!(settings.backoff(u32::MAX), MAX_BACKOFF);
    }
}
