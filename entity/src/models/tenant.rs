//! A company using the platform (T1).

use sea_orm::entity::prelude::*;

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique, URL-safe handle (`acme`), used by `crmsync token --tenant`.
    #[sea_orm(unique)]
    pub slug: String,
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// Days a finished run's items are kept (its summary and first rejected
    /// items stay); the pruner deletes older ones.
    pub retention_sync_items_days: i32,
    /// Days a sent or given-up delivery (webhook call, e-mail) is kept.
    pub retention_deliveries_days: i32,
    /// Days audit entries and consent events are kept (each contact's
    /// latest consent event stays).
    pub retention_audit_days: i32,
}

/// No navigable relations: tenant data is read through tenant-scoped finders.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
