//! A CRM record found deleted (S12): what its link was, kept after the link
//! is removed, so that the export does not recreate the record unless the
//! contact changes afterwards and the connector's `recreateDeleted` says so.

use sea_orm::entity::prelude::*;

use crate::enums::CrmModule;

/// One deletion found by a run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_deletions")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector.
    pub connector_id: String,
    /// The platform contact the record was linked to.
    pub contact_id: String,
    /// The CRM module of the record.
    pub module: CrmModule,
    /// The deleted CRM record's id.
    pub crm_record_id: String,
    /// When the CRM says it was deleted, where it says.
    pub deleted_at: Option<DateTimeUtc>,
    /// When a run found it (the export compares the contact's changes with it).
    pub found_at: DateTimeUtc,
    /// The run that found it.
    pub run_id: String,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
