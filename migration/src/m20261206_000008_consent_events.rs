//! Consent history (issue 24, S9): every change of a contact's opt-out
//! state, with its time and origin (the platform, or a connector's CRM and
//! the sync run that carried it). Rows outlive their connector and run
//! (history), not their contact.

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
enum ConsentEvents {
    Table,
    Id,
    TenantId,
    ContactId,
    OptedOut,
    Origin,
    ConnectorId,
    CrmKind,
    RunId,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ConsentEvents::Table)
                .col(string_len(ConsentEvents::Id, 26).primary_key())
                .col(string_len(ConsentEvents::TenantId, 26))
                .col(string_len(ConsentEvents::ContactId, 26))
                .col(boolean(ConsentEvents::OptedOut))
                .col(string_len(ConsentEvents::Origin, 16))
                .col(string_len_null(ConsentEvents::ConnectorId, 26))
                .col(string_len_null(ConsentEvents::CrmKind, 16))
                .col(string_len_null(ConsentEvents::RunId, 26))
                .col(timestamp_with_time_zone(ConsentEvents::At))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_consent_events_contact")
                        .from(ConsentEvents::Table, ConsentEvents::ContactId)
                        .to(Contacts::Table, Contacts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A tenant's contact's history, newest first; its last opt-out.
        m.create_index(
            Index::create()
                .name("ix_consent_events_tenant_contact_at")
                .table(ConsentEvents::Table)
                .col(ConsentEvents::TenantId)
                .col(ConsentEvents::ContactId)
                .col(ConsentEvents::At)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConsentEvents::Table).to_owned())
            .await
    }
}
