//! Configuration changes: who, what, when.

use sea_orm::entity::prelude::*;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Token subject or `apikey:<id>`.
    pub actor: String,
    /// `connector.create`, `mappings.set`, ...
    pub action: String,
    /// `connector`, `api_key`, ...
    pub target_type: String,
    /// The target's id.
    pub target_id: String,
    /// What changed (never secrets).
    #[sea_orm(column_type = "JsonBinary")]
    pub detail: Json,
    /// When.
    pub at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
