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
}

/// No navigable relations: tenant data is read through tenant-scoped finders.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
