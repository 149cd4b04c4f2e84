//! The notifications outbox (R5): one row per message to send (a webhook call
//! or a run summary e-mail), written with the run event that caused it, then
//! claimed and sent by the worker processes' dispatchers. The row keeps every
//! attempt, so it is also the webhook's delivery log.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{Condition, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::enums::{DeliveryChannel, DeliveryStatus};

/// A delivery.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    /// ULID: the delivery id receivers see (`X-Crmsync-Delivery`), the same
    /// across retries.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Webhook call or e-mail.
    pub channel: DeliveryChannel,
    /// The webhook, for webhook calls.
    pub webhook_id: Option<String>,
    /// The addresses, for e-mails (a JSON list).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub recipients: Option<Json>,
    /// `sync.started`, `sync.finished`.
    pub event: String,
    /// The run the event is about.
    pub run_id: Option<String>,
    /// The JSON body, exactly as sent.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// Every attempt, oldest first: a JSON list of [`Attempt`].
    #[sea_orm(column_type = "JsonBinary")]
    pub attempt_log: Json,
    /// When the next attempt is due; none once final.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// The dispatcher attempting it now.
    pub claimed_by: Option<String>,
    /// When that claim lapses (its dispatcher died): another may then attempt it.
    pub claim_expires_at: Option<DateTimeUtc>,
    /// When the event happened.
    pub created_at: DateTimeUtc,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTimeUtc>,
}

/// One attempt, as kept in [`Model::attempt_log`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// When it started.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it replied (webhooks).
    pub http_status: Option<u16>,
    /// Why it failed, in words; none when it succeeded.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The attempts made so far, oldest first.
    pub fn attempt_list(&self) -> Vec<Attempt> {
        serde_json::from_value(self.attempt_log.clone()).unwrap_or_default()
    }

    /// The e-mail addresses, for e-mails.
    pub fn recipient_list(&self) -> Vec<String> {
        self.recipients
            .clone()
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default()
    }
}

super::tenant_scoped!(Entity, Column);

/// Deliveries due for an attempt at `now`, across all tenants, oldest due
/// first: pending, due, and not claimed by a live dispatcher. The one
/// cross-tenant read of the outbox, for the dispatchers; each row carries its
/// tenant, and everything after (the claim, the webhook, the run) is read
/// and written for that tenant.
pub async fn due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(due_at(now))
        .order_by_asc(Column::NextAttemptAt)
        .limit(limit)
        .all(db)
        .await
}

/// The condition of a delivery due for an attempt at `now`: pending, due, and
/// unclaimed or claimed by a dispatcher whose claim has lapsed.
pub fn due_at(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(Column::Status.eq(DeliveryStatus::Pending))
        .add(Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(Column::ClaimExpiresAt.is_null())
                .add(Column::ClaimExpiresAt.lt(now)),
        )
}
