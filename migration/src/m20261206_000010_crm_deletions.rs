//! CRM deletions (issue 24, S12). A CRM record found deleted loses its link;
//! `crm_deletions` keeps what the link was (the tombstone), so that the
//! export does not recreate the record unless the contact changes afterwards
//! and the connector says so (`recreateDeleted`). Runs count the DELETED
//! items of each leg (`to_crm_deleted`, `from_crm_deleted`), and a run that
//! read its CRM's deletion feeds to the end says from when
//! (`deletions_read_at`): the next run reads them from there.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    ToCrmDeleted,
    FromCrmDeleted,
    DeletionsReadAt,
}

#[derive(DeriveIden)]
enum CrmDeletions {
    Table,
    Id,
    TenantId,
    ConnectorId,
    ContactId,
    Module,
    CrmRecordId,
    DeletedAt,
    FoundAt,
    RunId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [SyncRuns::ToCrmDeleted, SyncRuns::FromCrmDeleted] {
            m.alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .add_column(big_integer(col).default(0))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(SyncRuns::Table)
                .add_column(timestamp_with_time_zone_null(SyncRuns::DeletionsReadAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CrmDeletions::Table)
                .col(string_len(CrmDeletions::Id, 26).primary_key())
                .col(string_len(CrmDeletions::TenantId, 26))
                .col(string_len(CrmDeletions::ConnectorId, 26))
                .col(string_len(CrmDeletions::ContactId, 26))
                .col(string_len(CrmDeletions::Module, 16))
                .col(string_len(CrmDeletions::CrmRecordId, 64))
                .col(timestamp_with_time_zone_null(CrmDeletions::DeletedAt))
                .col(timestamp_with_time_zone(CrmDeletions::FoundAt))
                .col(string_len(CrmDeletions::RunId, 26))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_crm_deletions_connector")
                        .from(CrmDeletions::Table, CrmDeletions::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_crm_deletions_contact")
                        .from(CrmDeletions::Table, CrmDeletions::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The export asks by contact: was its record deleted, and when.
        m.create_index(
            Index::create()
                .name("ix_crm_deletions_connector_contact")
                .table(CrmDeletions::Table)
                .col(CrmDeletions::ConnectorId)
                .col(CrmDeletions::ContactId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CrmDeletions::Table).to_owned())
            .await?;
        for col in [
            SyncRuns::ToCrmDeleted,
            SyncRuns::FromCrmDeleted,
            SyncRuns::DeletionsReadAt,
        ] {
            m.alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
