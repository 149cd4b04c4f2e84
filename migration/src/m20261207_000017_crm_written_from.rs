//! A run's first write to its CRM, in the CRM's clock (issue 26): a FULL
//! run handed back during its export goes on with its import leg first, and
//! that leg stops listing at the records modified since the run first wrote
//! (its own writes, read by the next run), as an unsliced run does.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    CrmWrittenFrom,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(timestamp_with_time_zone_null(SyncRuns::CrmWrittenFrom))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::CrmWrittenFrom)
                .to_owned(),
        )
        .await
    }
}
