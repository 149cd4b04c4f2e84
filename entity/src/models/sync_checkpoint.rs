//! Per-direction checkpoints (S2): the last applied modification time and record id.

use sea_orm::entity::prelude::*;

use crate::enums::{CrmModule, SyncDirection};

/// A checkpoint, saved only after a page is applied.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_checkpoints")]
pub struct Model {
    /// Owning tenant.
    pub tenant_id: String,
    /// The connector.
    #[sea_orm(primary_key, auto_increment = false)]
    pub connector_id: String,
    /// The direction.
    #[sea_orm(primary_key, auto_increment = false)]
    pub direction: SyncDirection,
    /// The CRM module (for TO_CRM, the module written to).
    #[sea_orm(primary_key, auto_increment = false)]
    pub module: CrmModule,
    /// Modification time of the last applied record: the CRM's own for FROM_CRM,
    /// the contact's `updated_at` for TO_CRM.
    pub at: DateTimeUtc,
    /// Id of the last applied record, to order records with the same time.
    pub record_id: String,
    /// When it was saved.
    pub saved_at: DateTimeUtc,
    /// The run whose page saved it: a run handed back goes on from its own
    /// checkpoints (a FULL run too), never from an earlier run's.
    pub run_id: Option<String>,
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
        Column::ConnectorId
    }
}
