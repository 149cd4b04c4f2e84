//! Runs that start by themselves (issue 6): each connector's next scheduled
//! sync, the contacts form submissions wait to push, and named process leases
//! (one scheduler among many processes).

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
    NextSyncAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PendingPushes {
    Table,
    Id,
    TenantId,
    ConnectorId,
    ContactId,
    RunId,
    SubmittedAt,
}

#[derive(DeriveIden)]
enum ProcessLeases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Connectors::Table)
                .add_column(timestamp_with_time_zone_null(Connectors::NextSyncAt))
                .to_owned(),
        )
        .await?;
        // The scheduler's scan, every second: connectors due by now.
        m.create_index(
            Index::create()
                .name("ix_connectors_next_sync_at")
                .table(Connectors::Table)
                .col(Connectors::NextSyncAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(PendingPushes::Table)
                .col(string_len(PendingPushes::Id, 26).primary_key())
                .col(string_len(PendingPushes::TenantId, 26))
                .col(string_len(PendingPushes::ConnectorId, 26))
                .col(string_len(PendingPushes::ContactId, 26))
                .col(string_len_null(PendingPushes::RunId, 26))
                .col(timestamp_with_time_zone(PendingPushes::SubmittedAt))
                // A deleted connector or contact has nothing left to push.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_pending_pushes_connector")
                        .from(PendingPushes::Table, PendingPushes::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_pending_pushes_contact")
                        .from(PendingPushes::Table, PendingPushes::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("pending_pushes_connector_run")
                .table(PendingPushes::Table)
                .col(PendingPushes::ConnectorId)
                .col(PendingPushes::RunId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ProcessLeases::Table)
                .col(string_len(ProcessLeases::Name, 64).primary_key())
                .col(string_len(ProcessLeases::Holder, 128))
                .col(timestamp_with_time_zone(ProcessLeases::ExpiresAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ProcessLeases::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(PendingPushes::Table).to_owned())
            .await?;
        m.drop_index(
            Index::drop()
                .name("ix_connectors_next_sync_at")
                .table(Connectors::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Connectors::Table)
                .drop_column(Connectors::NextSyncAt)
                .to_owned(),
        )
        .await
    }
}
