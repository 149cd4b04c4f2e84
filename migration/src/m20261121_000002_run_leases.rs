//! Run leases (issue 5): the worker executing a run holds a lease on its row
//! and renews it; a lease whose holder died expires, and only then may another
//! worker take the run over. One run executes in one place, across processes.

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
    LeaseHolder,
    LeaseExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(string_len_null(SyncRuns::LeaseHolder, 128))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(timestamp_with_time_zone_null(SyncRuns::LeaseExpiresAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::LeaseExpiresAt)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::LeaseHolder)
                .to_owned(),
        )
        .await
    }
}
