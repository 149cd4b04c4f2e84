//! IF/THEN sync rules (issue 24, S13): a connector's rules in order
//! (`sync_rules`, one JSON body per rule, gone with their connector), and
//! the rules a dry run previews instead of its connector's
//! (`sync_runs.rules`, JSON, null when the run uses the connector's own).

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SyncRules {
    Table,
    Id,
    TenantId,
    ConnectorId,
    Position,
    Rule,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Rules,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SyncRules::Table)
                .col(string_len(SyncRules::Id, 26).primary_key())
                .col(string_len(SyncRules::TenantId, 26))
                .col(string_len(SyncRules::ConnectorId, 26))
                .col(integer(SyncRules::Position))
                .col(json_binary(SyncRules::Rule))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sync_rules_connector")
                        .from(SyncRules::Table, SyncRules::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_sync_rules_connector_position")
                .table(SyncRules::Table)
                .col(SyncRules::ConnectorId)
                .col(SyncRules::Position)
                .unique()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(json_binary_null(SyncRuns::Rules))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .drop_column(SyncRuns::Rules)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(SyncRules::Table).to_owned())
            .await
    }
}
