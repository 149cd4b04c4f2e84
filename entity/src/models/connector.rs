//! One CRM account of a tenant (C1-C5).

use sea_orm::entity::prelude::*;

use crate::enums::{ConnectorKind, ConnectorStatus};

/// A connector. Credentials are AES-256-GCM ciphertext (nonce first) whose
/// associated data is the tenant id and connector id; only the names of the set
/// credentials are readable in clear.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connectors")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Which CRM.
    pub kind: ConnectorKind,
    /// Display name.
    pub name: String,
    /// Health (C4).
    pub status: ConnectorStatus,
    /// What a person should know about the status, in words.
    pub status_message: Option<String>,
    /// Sync on or off.
    pub enabled: bool,
    /// Settings (C5) as JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: Json,
    /// Encrypted credentials.
    pub credentials: Option<Vec<u8>>,
    /// Names of the credentials that are set, e.g. `["apiToken", "companyDomain"]`.
    #[sea_orm(column_type = "JsonBinary")]
    pub credentials_set: Json,
    /// Base-URL override (sandbox CRMs, proxies).
    pub base_url: Option<String>,
    /// True after a mapping change, until a FULL run succeeds.
    pub full_resync_recommended: bool,
    /// When the schedule next starts a sync; null until the scheduler first
    /// sees the connector (or its schedule changed).
    pub next_sync_at: Option<DateTimeUtc>,
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// When its configuration last changed.
    pub updated_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);

impl Entity {
    /// The scheduler's scan, the one read across tenants (each run it starts
    /// then goes through the tenant-scoped path): enabled connectors that can
    /// sync (not disabled, not waiting for new credentials) whose next
    /// scheduled sync is due at `now` or not planned yet.
    pub fn schedule_due(now: DateTimeUtc) -> Select<Entity> {
        use sea_orm::Condition;
        Self::find()
            .filter(Column::Enabled.eq(true))
            .filter(Column::Status.is_in([ConnectorStatus::Connected, ConnectorStatus::Error]))
            .filter(
                Condition::any()
                    .add(Column::NextSyncAt.is_null())
                    .add(Column::NextSyncAt.lte(now)),
            )
    }

    /// The real-time task's scan, across tenants: every connector, whose
    /// subscription it compares with what the connector wants (each one is
    /// then handled through the tenant-scoped path).
    pub fn realtime_scan() -> Select<Entity> {
        Self::find()
    }
}
