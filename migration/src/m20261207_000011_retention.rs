//! Bounded history (issue 26): each tenant's retention (days of sync items,
//! deliveries and audit rows to keep), the mark a run's items were pruned
//! with, and the indexes the pruner and the API's pages at a million rows
//! read through.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    RetentionSyncItemsDays,
    RetentionDeliveriesDays,
    RetentionAuditDays,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    TenantId,
    ConnectorId,
    Id,
    ItemsPrunedAt,
    AllRejectedKept,
}

#[derive(DeriveIden)]
enum SyncItems {
    Table,
    TenantId,
    RunId,
    Outcome,
    Id,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    TenantId,
    Id,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    TenantId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    TenantId,
    At,
}

#[derive(DeriveIden)]
enum ConsentEvents {
    Table,
    TenantId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for (col, days) in [
            (Tenants::RetentionSyncItemsDays, 30),
            (Tenants::RetentionDeliveriesDays, 30),
            (Tenants::RetentionAuditDays, 365),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(integer(col).default(days))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(timestamp_with_time_zone_null(SyncRuns::ItemsPrunedAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(boolean(SyncRuns::AllRejectedKept).default(false))
                .to_owned(),
        )
        .await?;
        for index in indexes() {
            m.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_contacts_tenant_id", Contacts::Table.into_iden()),
            ("ix_items_tenant_run_outcome", SyncItems::Table.into_iden()),
            ("ix_runs_tenant_connector", SyncRuns::Table.into_iden()),
            (
                "ix_deliveries_tenant_created",
                Deliveries::Table.into_iden(),
            ),
            ("ix_audit_tenant_at", AuditLog::Table.into_iden()),
            (
                "ix_consent_events_tenant_at",
                ConsentEvents::Table.into_iden(),
            ),
        ] {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for col in [SyncRuns::ItemsPrunedAt, SyncRuns::AllRejectedKept] {
            m.alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        for col in [
            Tenants::RetentionSyncItemsDays,
            Tenants::RetentionDeliveriesDays,
            Tenants::RetentionAuditDays,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        // A tenant's contacts in id order: the API's pages (`contacts`),
        // which otherwise sort a million-row tenant on each page.
        Index::create()
            .name("ix_contacts_tenant_id")
            .table(Contacts::Table)
            .col(Contacts::TenantId)
            .col(Contacts::Id)
            .to_owned(),
        // A run's items of one outcome in id order: `items(outcome:)`,
        // `rejectedContacts(runId:)`, a retry's rejected contacts, and the
        // rejected items the pruner keeps, without reading the run's others.
        // The tenant leads, so that it matches more of these queries' terms
        // than `ix_items_tenant_outcome` (SQLite has no statistics to choose by).
        Index::create()
            .name("ix_items_tenant_run_outcome")
            .table(SyncItems::Table)
            .col(SyncItems::TenantId)
            .col(SyncItems::RunId)
            .col(SyncItems::Outcome)
            .col(SyncItems::Id)
            .to_owned(),
        // A connector's runs newest first: its latest run (the pruner keeps
        // its rejected items; `lastRun`).
        Index::create()
            .name("ix_runs_tenant_connector")
            .table(SyncRuns::Table)
            .col(SyncRuns::TenantId)
            .col(SyncRuns::ConnectorId)
            .col(SyncRuns::Id)
            .to_owned(),
        // The pruner's reads: a tenant's rows older than its retention.
        Index::create()
            .name("ix_deliveries_tenant_created")
            .table(Deliveries::Table)
            .col(Deliveries::TenantId)
            .col(Deliveries::CreatedAt)
            .to_owned(),
        Index::create()
            .name("ix_audit_tenant_at")
            .table(AuditLog::Table)
            .col(AuditLog::TenantId)
            .col(AuditLog::At)
            .to_owned(),
        Index::create()
            .name("ix_consent_events_tenant_at")
            .table(ConsentEvents::Table)
            .col(ConsentEvents::TenantId)
            .col(ConsentEvents::At)
            .to_owned(),
    ]
}
