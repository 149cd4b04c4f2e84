//! Contacts a form submission pushes to a connector (S3): waiting for a FORM
//! run (`run_id` null), or taken by one (`run_id` set) until it ends.

use sea_orm::entity::prelude::*;

/// A contact waiting to be pushed to one connector.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pending_pushes")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector to push to.
    pub connector_id: String,
    /// The contact to push.
    pub contact_id: String,
    /// The FORM run that took it; null while it waits.
    pub run_id: Option<String>,
    /// When the form was submitted.
    pub submitted_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
