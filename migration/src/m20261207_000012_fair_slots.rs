//! Fair slots (issue 26). A run may work in several slices: `slices` counts
//! the times a worker took it. A checkpoint names the run that saved it
//! (`run_id`), so a run handed back goes on from its own checkpoints and
//! never from an earlier run's. `tenant_slots` keeps when each tenant was
//! last given a slot, across worker processes: the next slot goes to the
//! tenant served longest ago. Runs waiting for a slot are found by status.

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
    Slices,
    Status,
    QueuedAt,
}

#[derive(DeriveIden)]
enum SyncCheckpoints {
    Table,
    RunId,
}

#[derive(DeriveIden)]
enum TenantSlots {
    Table,
    TenantId,
    LastSlotAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(integer(SyncRuns::Slices).default(0))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncCheckpoints::Table)
                .add_column(string_len_null(SyncCheckpoints::RunId, 26))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(TenantSlots::Table)
                .col(string_len(TenantSlots::TenantId, 26).primary_key())
                .col(timestamp_with_time_zone(TenantSlots::LastSlotAt))
                .to_owned(),
        )
        .await?;
        // Every claim lists the runs waiting for a slot, oldest first.
        m.create_index(
            Index::create()
                .name("ix_runs_status_queued")
                .table(SyncRuns::Table)
                .col(SyncRuns::Status)
                .col(SyncRuns::QueuedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_runs_status_queued")
                .table(SyncRuns::Table)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(TenantSlots::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(SyncCheckpoints::Table)
                .drop_column(SyncCheckpoints::RunId)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::Slices)
                .to_owned(),
        )
        .await
    }
}
