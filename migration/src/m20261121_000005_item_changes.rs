//! Field changes and proposed mappings (issue 6, dry runs): each sync item
//! lists the fields the run changed, or in a dry run would change, on the
//! item's target side (`sync_items.changes`, JSON, null when nothing changed);
//! a dry run may preview mappings that are not saved on the connector
//! (`sync_runs.mappings`, JSON, null when the run used the connector's own).

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncItems {
    Table,
    Changes,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Mappings,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        m.alter_table(
            Table::alter()
                .table(SyncItems::Table)
                .add_column(json_binary_null(SyncItems::Changes))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(json_binary_null(SyncRuns::Mappings))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::Mappings)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncItems::Table)
                .drop_column(SyncItems::Changes)
                .to_owned(),
        )
        .await
    }
}
