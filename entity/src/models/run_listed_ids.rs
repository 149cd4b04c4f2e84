//! Ids a run's listing returned before it was handed back (issue 26), for
//! the reconciliation of deletions (S12) by the slice that goes on: 64-bit
//! hashes, little-endian, eight bytes each, with the checkpoint they reach.

use sea_orm::entity::prelude::*;

use crate::enums::CrmModule;

/// The ids of one module listed during one slice of a run.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_listed_ids")]
pub struct Model {
    /// ULID: rows of a run and module are written in id order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The run.
    pub run_id: String,
    /// The module listed.
    pub module: CrmModule,
    /// The modification time of the module's checkpoint when written.
    pub through_at: Option<DateTimeUtc>,
    /// The record id of the module's checkpoint when written.
    pub through_id: Option<String>,
    /// The hashes of the ids listed since the previous row.
    pub hashes: Vec<u8>,
    /// When written.
    pub created_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);
