//! Partner webhooks (R5): a tenant's URL that receives signed run events.

use sea_orm::entity::prelude::*;

/// A webhook. The signing secret is AES-256-GCM ciphertext (nonce first) whose
/// associated data is the tenant id and webhook id; it is shown once, when
/// created or rotated, and never stored in clear.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// The event names it receives, a JSON list (`["sync.started", "sync.finished"]`).
    #[sea_orm(column_type = "JsonBinary")]
    pub events: Json,
    /// What it is for, as its creator described it.
    pub description: Option<String>,
    /// Off: no new deliveries, and pending ones are given up.
    pub enabled: bool,
    /// The sealed signing secret.
    pub secret: Vec<u8>,
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// When it last changed (its secret included).
    pub updated_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The event names it receives.
    pub fn event_names(&self) -> Vec<String> {
        serde_json::from_value(self.events.clone()).unwrap_or_default()
    }
}

super::tenant_scoped!(Entity, Column);
