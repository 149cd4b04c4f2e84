//! The platform's own contacts (P1).

use sea_orm::entity::prelude::*;

use crate::enums::Lifecycle;

/// A platform contact; `email` is unique per tenant and stored normalised.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contacts")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Trimmed, lower-case e-mail: the identity (S1).
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Where the contact came from.
    pub source: Option<String>,
    /// Behaviour score (computed by the platform), never negative.
    pub behaviour_score: i32,
    /// Marketing state (computed by the platform).
    pub state: Option<String>,
    /// PROSPECT or CLIENT (S10).
    pub lifecycle: Lifecycle,
    /// Opted out of e-mail.
    pub opted_out: bool,
    /// E-mail of the owning sales person.
    pub owner_email: Option<String>,
    /// Custom fields, a JSON object.
    #[sea_orm(column_type = "JsonBinary")]
    pub custom_fields: Json,
    /// When it was created.
    pub created_at: DateTimeUtc,
    /// When it last changed; the export checkpoint reads it.
    pub updated_at: DateTimeUtc,
    /// When the contact was archived; null while it is not. An archived
    /// contact is never exported nor written by an import (issue 24).
    pub archived_at: Option<DateTimeUtc>,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
