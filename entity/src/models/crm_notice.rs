//! Records a CRM's change notification named (real time), waiting for a
//! CRM_EVENT run (`run_id` null) or taken by one (`run_id` set) until it
//! ends. Only a hint: the run reads each record from the CRM.

use sea_orm::entity::prelude::*;

use crate::enums::CrmModule;

/// One record named by a notification.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_notices")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector notified.
    pub connector_id: String,
    /// The record's module.
    pub module: CrmModule,
    /// The CRM's id of the record.
    pub crm_record_id: String,
    /// The notification said the record was deleted.
    pub deleted: bool,
    /// When the notification came.
    pub received_at: DateTimeUtc,
    /// The CRM_EVENT run that took it; null while it waits.
    pub run_id: Option<String>,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
