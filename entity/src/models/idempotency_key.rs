//! Idempotency keys: a replayed mutation within 24 h returns the first result.

use sea_orm::entity::prelude::*;

/// One remembered key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// Owning tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// `createConnector`, `startSync`, ...
    #[sea_orm(primary_key, auto_increment = false)]
    pub operation: String,
    /// The client's key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The id of what the first call created.
    pub result_id: String,
    /// A keyed hash of the first call's canonical input (without the key);
    /// null for keys stored before it was recorded.
    pub input_fingerprint: Option<String>,
    /// When the first call ran.
    pub created_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
