//! Real time from the CRM (issue 27): a connector's subscription to its
//! CRM's change notifications (`realtime_subscriptions`: the CRM's watch id
//! and expiry, the unguessable path token of its inbound URL, the sealed
//! secret the CRM echoes or signs with, its health), and the records the
//! notifications named, waiting for a CRM_EVENT run (`crm_notices`, as
//! `pending_pushes` wait for a FORM run).

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
enum RealtimeSubscriptions {
    Table,
    Id,
    TenantId,
    ConnectorId,
    Token,
    Secret,
    WatchId,
    ExpiresAt,
    State,
    Message,
    SubscribedAt,
    LastEventAt,
    NextCheckAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CrmNotices {
    Table,
    Id,
    TenantId,
    ConnectorId,
    Module,
    CrmRecordId,
    Deleted,
    ReceivedAt,
    RunId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(RealtimeSubscriptions::Table)
                .col(string_len(RealtimeSubscriptions::Id, 26).primary_key())
                .col(string_len(RealtimeSubscriptions::TenantId, 26))
                .col(string_len_uniq(RealtimeSubscriptions::ConnectorId, 26))
                .col(string_len_uniq(RealtimeSubscriptions::Token, 64))
                .col(blob(RealtimeSubscriptions::Secret))
                .col(string_len_null(RealtimeSubscriptions::WatchId, 255))
                .col(timestamp_with_time_zone_null(
                    RealtimeSubscriptions::ExpiresAt,
                ))
                .col(string_len(RealtimeSubscriptions::State, 16))
                .col(text_null(RealtimeSubscriptions::Message))
                .col(timestamp_with_time_zone_null(
                    RealtimeSubscriptions::SubscribedAt,
                ))
                .col(timestamp_with_time_zone_null(
                    RealtimeSubscriptions::LastEventAt,
                ))
                .col(timestamp_with_time_zone(RealtimeSubscriptions::NextCheckAt))
                .col(timestamp_with_time_zone(RealtimeSubscriptions::CreatedAt))
                // A deleted connector is unsubscribed first (by the API),
                // then its row goes with it.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_realtime_subscriptions_connector")
                        .from(
                            RealtimeSubscriptions::Table,
                            RealtimeSubscriptions::ConnectorId,
                        )
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The renewal task's scan: subscriptions due for a check.
        m.create_index(
            Index::create()
                .name("ix_realtime_subscriptions_next_check_at")
                .table(RealtimeSubscriptions::Table)
                .col(RealtimeSubscriptions::NextCheckAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(CrmNotices::Table)
                .col(string_len(CrmNotices::Id, 26).primary_key())
                .col(string_len(CrmNotices::TenantId, 26))
                .col(string_len(CrmNotices::ConnectorId, 26))
                .col(string_len(CrmNotices::Module, 16))
                .col(string_len(CrmNotices::CrmRecordId, 64))
                .col(boolean(CrmNotices::Deleted).default(false))
                .col(timestamp_with_time_zone(CrmNotices::ReceivedAt))
                .col(string_len_null(CrmNotices::RunId, 26))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_crm_notices_connector")
                        .from(CrmNotices::Table, CrmNotices::ConnectorId)
                        .to(Connectors::Table, Connectors::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A CRM_EVENT run takes its connector's waiting notices.
        m.create_index(
            Index::create()
                .name("ix_crm_notices_connector_run")
                .table(CrmNotices::Table)
                .col(CrmNotices::ConnectorId)
                .col(CrmNotices::RunId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(CrmNotices::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RealtimeSubscriptions::Table).to_owned())
            .await
    }
}
