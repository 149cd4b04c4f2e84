//! The CRM-side index: every CRM record a sync has listed, with its e-mail, so
//! export can match contacts by e-mail without a search call per contact.

use sea_orm::entity::prelude::*;

use crate::enums::CrmModule;

/// One CRM record as last listed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_records")]
pub struct Model {
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector.
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: String,
    /// The module.
    #[sea_orm(primary_key, auto_increment = false)]
    pub module: CrmModule,
    /// The CRM record id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub crm_record_id: String,
    /// Normalised e-mail, when the record has a valid one.
    pub email: Option<String>,
    /// The CRM's modification time.
    pub modified_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl crate::TenantScoped for Entity {
    fn tenant_column() -> Column {
        Column::TenantId
    }
    fn id_column() -> Column {
        Column::CrmRecordId
    }
}
