//! A connector's subscription to its CRM's change notifications (real
//! time): what the CRM holds (its watch id and expiry), the unguessable path
//! token of the connector's inbound URL, the secret the CRM echoes or signs
//! with (sealed like credentials), and the subscription's health.

use sea_orm::entity::prelude::*;

use crate::enums::RealtimeState;

/// One connector's subscription (at most one per connector).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "realtime_subscriptions")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector (unique).
    pub connector_id: String,
    /// The last path segment of the inbound URL: 64 random hex digits.
    pub token: String,
    /// The secret, AES-256-GCM sealed for this subscription.
    pub secret: Vec<u8>,
    /// The CRM's id of the subscription, while it holds one.
    pub watch_id: Option<String>,
    /// When the CRM ends it unless renewed; null when it does not expire.
    pub expires_at: Option<DateTimeUtc>,
    /// ACTIVE or DEGRADED.
    pub state: RealtimeState,
    /// What a person should know (why DEGRADED), in words.
    pub message: Option<String>,
    /// When the CRM last accepted the subscription.
    pub subscribed_at: Option<DateTimeUtc>,
    /// When the last verified notification came.
    pub last_event_at: Option<DateTimeUtc>,
    /// For a connector whose CRM is asked what changed (the kit's
    /// `change_poll`): how far each module was read, as the worker's
    /// `realtime::poll::Marks`; null before the first look.
    pub polled_to: Option<Json>,
    /// When the renewal task next looks at it.
    pub next_check_at: DateTimeUtc,
    /// When the row was made.
    pub created_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);

impl Entity {
    /// The subscription an inbound call names by its path token: the one
    /// read across tenants (the tenant comes from the row found, as an API
    /// key's comes from its hash).
    pub fn by_token(token: &str) -> Select<Entity> {
        Self::find().filter(Column::Token.eq(token))
    }

    /// The renewal task's scan, across tenants: every subscription (each
    /// one is then handled through the tenant-scoped path).
    pub fn all_subscriptions() -> Select<Entity> {
        Self::find()
    }
}
