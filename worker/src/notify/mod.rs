//! Notifications (R5): run summary e-mails to a connector's `notifyEmails`,
//! and signed run events POSTed to the tenant's partner webhooks.
//!
//! Both go through one **outbox**, the `deliveries` table:
//!
//! 1. Where a run's status changes (RUNNING in `sync::lease::claim`, final in
//!    `sync::finish` and in `runs`), the same transaction calls
//!    [`run_started`] or [`run_ended`], which write one row per enabled
//!    webhook subscribed to the event, and one e-mail row when the run ended
//!    and its connector has notification addresses. The event is recorded if
//!    and only if the status change commits.
//! 2. A [`Dispatcher`] runs in every worker process. It claims each due row
//!    with a conditional update that writes its name and a claim expiry (so
//!    two processes never send the same attempt), sends it, and records the
//!    attempt on the row: delivered, or retried with exponential backoff, or
//!    failed for good after the last attempt.
//!
//! Delivery is at least once: a dispatcher that dies between sending and
//! recording leaves a claim that lapses, and the row is sent again. Webhook
//! receivers deduplicate by the delivery id (`X-Crmsync-Delivery`), which
//! stays the same across retries.
//!
//! **Invariant:** webhook secrets are stored sealed (AES-256-GCM, tenant and
//! webhook ids as associated data), opened only to sign, and never logged or
//! returned after the mutation that made them.

mod dispatch;
mod email;
mod webhook;

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{DeliveryChannel, DeliveryStatus};
use crmsync_entity::models::{connector, delivery, sync_run, webhook as webhook_model};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, QueryFilter};
use serde_json::json;

pub use dispatch::{
    ATTEMPT_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE, DeliverySettings, Dispatcher,
    MAX_BACKOFF,
};
pub use email::{DEFAULT_FROM, SmtpSettings, SummaryEmail, parse_mailbox, summary};
pub use webhook::{
    SIGNATURE_HEADER, SIGNATURE_SCHEME, TIMESTAMP_HEADER, generate_secret, signature,
};

use crate::events::Legs;
use crate::settings::ConnectorSettings;

/// A run went RUNNING (its first start; a run taken over is not started again).
pub const SYNC_STARTED: &str = "sync.started";
/// A run ended: SUCCEEDED, PARTIAL, FAILED or CANCELLED, with its counts.
pub const SYNC_FINISHED: &str = "sync.finished";
/// Every event a webhook may subscribe to.
pub const EVENTS: [&str; 2] = [SYNC_STARTED, SYNC_FINISHED];

/// Every dispatcher in this process waits on this: rows written here are sent
/// at once instead of at the next poll.
static WAKE: LazyLock<tokio::sync::watch::Sender<u64>> =
    LazyLock::new(|| tokio::sync::watch::channel(0).0);

/// Tells this process's dispatchers that deliveries were just committed.
/// Call it after the transaction that wrote them commits.
pub fn wake() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

fn wakes() -> tokio::sync::watch::Receiver<u64> {
    WAKE.subscribe()
}

/// Records `sync.started` for the run (now RUNNING) for each enabled webhook
/// of its tenant that takes it. Call it in the transaction that marked the
/// run RUNNING; returns true when it wrote a delivery (then [`wake`] once the
/// transaction commits).
pub async fn run_started(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> Result<bool, DbErr> {
    let Some(run) = sync_run::Entity::find_for_tenant(tenant, run_id)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    Ok(webhook_deliveries(db, tenant, &run, SYNC_STARTED).await? > 0)
}

/// Records `sync.finished` for the run (now final) for each enabled webhook of
/// its tenant that takes it, and the summary e-mail when its connector has
/// notification addresses. Call it in the transaction that ended the run;
/// returns true when it wrote a delivery (then [`wake`] once the transaction
/// commits).
pub async fn run_ended(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> Result<bool, DbErr> {
    let Some(run) = sync_run::Entity::find_for_tenant(tenant, run_id)
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let mut written = webhook_deliveries(db, tenant, &run, SYNC_FINISHED).await?;
    let recipients = connector::Entity::find_for_tenant(tenant, &run.connector_id)
        .one(db)
        .await?
        .and_then(|c| serde_json::from_value::<ConnectorSettings>(c.settings).ok())
        .map(|s| s.notify_emails)
        .unwrap_or_default();
    if !recipients.is_empty() {
        let id = crmsync_entity::new_id();
        let body = event_body(&id, SYNC_FINISHED, &run, Utc::now());
        insert(
            db,
            &run,
            id,
            DeliveryChannel::Email,
            None,
            Some(json!(recipients)),
            SYNC_FINISHED,
            body,
        )
        .await?;
        written += 1;
    }
    Ok(written > 0)
}

/// One delivery per enabled webhook of the tenant subscribed to `event`.
async fn webhook_deliveries(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run: &sync_run::Model,
    event: &str,
) -> Result<usize, DbErr> {
    let hooks = webhook_model::Entity::for_tenant(tenant)
        .filter(webhook_model::Column::Enabled.eq(true))
        .all(db)
        .await?;
    let mut written = 0;
    let now = Utc::now();
    for hook in hooks
        .into_iter()
        .filter(|h| h.event_names().iter().any(|e| e == event))
    {
        let id = crmsync_entity::new_id();
        let body = event_body(&id, event, run, now);
        insert(
            db,
            run,
            id,
            DeliveryChannel::Webhook,
            Some(hook.id),
            None,
            event,
            body,
        )
        .await?;
        written += 1;
    }
    Ok(written)
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    db: &impl ConnectionTrait,
    run: &sync_run::Model,
    id: String,
    channel: DeliveryChannel,
    webhook_id: Option<String>,
    recipients: Option<serde_json::Value>,
    event: &str,
    payload: String,
) -> Result<(), DbErr> {
    let now = Utc::now();
    delivery::ActiveModel {
        id: Set(id),
        tenant_id: Set(run.tenant_id.clone()),
        channel: Set(channel),
        webhook_id: Set(webhook_id),
        recipients: Set(recipients),
        event: Set(event.to_owned()),
        run_id: Set(Some(run.id.clone())),
        payload: Set(payload),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        attempt_log: Set(json!([])),
        next_attempt_at: Set(Some(now)),
        claimed_by: Set(None),
        claim_expires_at: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The JSON body of an event about a run, as webhooks receive it: the names
/// and shapes of the GraphQL API (`SyncRun`, its `legs`).
pub fn event_body(
    delivery_id: &str,
    event: &str,
    run: &sync_run::Model,
    occurred_at: DateTime<Utc>,
) -> String {
    let legs = Legs::of_run(run);
    let leg = |direction: &str, c: crate::events::LegCounts| {
        json!({
            "direction": direction,
            "created": c.created,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "rejected": c.rejected,
            "conflicts": c.conflicts,
            "deleted": c.deleted,
        })
    };
    json!({
        "event": event,
        "deliveryId": delivery_id,
        "occurredAt": occurred_at,
        "tenantId": run.tenant_id,
        "run": {
            "id": run.id,
            "connectorId": run.connector_id,
            "trigger": run.trigger.as_str(),
            "mode": run.mode.as_str(),
            "status": run.status.as_str(),
            "error": run.error,
            "queuedAt": run.queued_at,
            "startedAt": run.started_at,
            "finishedAt": run.finished_at,
            "legs": [leg("TO_CRM", legs.to_crm), leg("FROM_CRM", legs.from_crm)],
        },
    })
    .to_string()
}
