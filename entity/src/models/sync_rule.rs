//! IF/THEN sync rules of a connector (S13), ordered by `position`.

use sea_orm::entity::prelude::*;

/// One rule of a connector; its body is the worker's `SyncRule` as JSON
/// (direction, conditions, action, fields to set), validated by the API.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_rules")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Owning connector.
    pub connector_id: String,
    /// Order within the connector, from 0: per direction, the first rule
    /// whose conditions hold decides.
    pub position: i32,
    /// The rule.
    #[sea_orm(column_type = "JsonBinary")]
    pub rule: Json,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
