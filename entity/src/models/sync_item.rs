//! Every contact a run touched, with its outcome and, when rejected, why (R2).

use sea_orm::entity::prelude::*;

use crate::enums::{ItemOutcome, SyncDirection};

/// A sync item.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_items")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The run.
    pub run_id: String,
    /// The connector.
    pub connector_id: String,
    /// Which leg.
    pub direction: SyncDirection,
    /// What happened.
    pub outcome: ItemOutcome,
    /// The e-mail as seen, when there was one.
    pub email: Option<String>,
    /// The platform contact, when there is one.
    pub contact_id: Option<String>,
    /// The CRM record, when there is one.
    pub crm_record_id: Option<String>,
    /// MISSING_EMAIL, MISSING_NAME, INVALID_PICKLIST_VALUE, ...
    pub reason_code: Option<String>,
    /// The field at fault.
    pub field: Option<String>,
    /// What a person can do about it.
    pub message: Option<String>,
    /// When it was recorded.
    pub created_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
