//! Partner API keys (T2): stored as a SHA-256 hash, shown once, revocable.

use sea_orm::entity::prelude::*;

use crate::enums::Role;

/// An API key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// What the key is for, as its creator named it.
    pub name: String,
    /// The role the key acts with (ADMIN or VIEWER).
    pub role: Role,
    /// Hex SHA-256 of the secret; the secret itself is never stored.
    #[sea_orm(unique)]
    pub key_hash: String,
    /// Subject of the token that created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTimeUtc>,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
