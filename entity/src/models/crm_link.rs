//! The link between a platform contact and its CRM record (S1), with the values
//! both sides agreed on at the last sync (the snapshot, for S6 and S7).

use sea_orm::entity::prelude::*;

use crate::enums::CrmModule;

/// A link; kept even when the e-mail changes on either side.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_links")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector.
    pub connector_id: String,
    /// The platform contact.
    pub contact_id: String,
    /// The CRM module of the record.
    pub module: CrmModule,
    /// The CRM record id.
    pub crm_record_id: String,
    /// Mapped field values as last synced, by platform field, in each side's form:
    /// `{"phone": {"p": <platform value>, "c": <CRM value>}}` (see `crmsync_worker::decide::Snapshot`).
    #[sea_orm(column_type = "JsonBinary")]
    pub snapshot: Json,
    /// The CRM record's own modification time at the last sync.
    pub crm_modified_at: Option<DateTimeUtc>,
    /// When the last sync touched the link.
    pub last_synced_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
