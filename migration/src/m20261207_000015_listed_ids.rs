//! What a run's listing returned, kept across its slices (issue 26): a FULL
//! run handed back goes on from its checkpoint, and finds deletions by
//! reconciliation (S12) only if it still knows every id it listed before.
//! At each hand-back the run writes the ids (64-bit hashes) it listed since
//! the last one, per module, with the checkpoint they reach; the run that
//! takes it over reads them back when its checkpoint is that one.

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
    Id,
}

#[derive(DeriveIden)]
enum RunListedIds {
    Table,
    Id,
    TenantId,
    RunId,
    Module,
    ThroughAt,
    ThroughId,
    Hashes,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RunListedIds::Table)
                .col(string_len(RunListedIds::Id, 26).primary_key())
                .col(string_len(RunListedIds::TenantId, 26))
                .col(string_len(RunListedIds::RunId, 26))
                .col(string_len(RunListedIds::Module, 16))
                .col(timestamp_with_time_zone_null(RunListedIds::ThroughAt))
                .col(string_len_null(RunListedIds::ThroughId, 255))
                .col(blob(RunListedIds::Hashes))
                .col(timestamp_with_time_zone(RunListedIds::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_run_listed_ids_run")
                        .from(RunListedIds::Table, RunListedIds::RunId)
                        .to(SyncRuns::Table, SyncRuns::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_run_listed_ids_run_module")
                .table(RunListedIds::Table)
                .col(RunListedIds::RunId)
                .col(RunListedIds::Module)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RunListedIds::Table).to_owned())
            .await
    }
}
