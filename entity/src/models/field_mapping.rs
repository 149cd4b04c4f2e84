//! Field mapping rows (F1), ordered by `position`.

use sea_orm::entity::prelude::*;

use crate::enums::MappingDirection;

/// One mapping row of a connector.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "field_mappings")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Owning connector.
    pub connector_id: String,
    /// Order within the connector, from 0; new rows go last.
    pub position: i32,
    /// Platform field name (`email`, `first_name`, `custom.industry`, ...).
    pub platform_field: String,
    /// CRM field api name or key.
    pub crm_field: String,
    /// Which way it flows.
    pub direction: MappingDirection,
    /// Disabled rows are kept but not synced.
    pub enabled: bool,
    /// Mandatory rows (e-mail, names) cannot be removed or disabled.
    pub locked: bool,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
