//! Notifications (issue 6, R5): partner webhooks per tenant, and the outbox of
//! deliveries (webhook calls and run summary e-mails) that worker processes
//! claim and send, with every attempt recorded.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// ULIDs as text, as in the backbone.
fn id<T: IntoIden>(col: T) -> ColumnDef {
    string_len(col, 26)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Webhooks::Table)
                .col(id(Webhooks::Id).primary_key())
                .col(id(Webhooks::TenantId))
                .col(string_len(Webhooks::Url, 2048))
                .col(json_binary(Webhooks::Events))
                .col(text_null(Webhooks::Description))
                .col(boolean(Webhooks::Enabled))
                .col(blob(Webhooks::Secret))
                .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                .col(timestamp_with_time_zone(Webhooks::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_webhooks_tenant")
                        .from(Webhooks::Table, Webhooks::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_webhooks_tenant")
                .table(Webhooks::Table)
                .col(Webhooks::TenantId)
                .col(Webhooks::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .col(id(Deliveries::Id).primary_key())
                .col(id(Deliveries::TenantId))
                .col(string_len(Deliveries::Channel, 16))
                .col(string_len_null(Deliveries::WebhookId, 26))
                .col(json_binary_null(Deliveries::Recipients))
                .col(string_len(Deliveries::Event, 64))
                .col(string_len_null(Deliveries::RunId, 26))
                .col(text(Deliveries::Payload))
                .col(string_len(Deliveries::Status, 16))
                .col(integer(Deliveries::Attempts).default(0))
                .col(json_binary(Deliveries::AttemptLog))
                .col(timestamp_with_time_zone_null(Deliveries::NextAttemptAt))
                .col(string_len_null(Deliveries::ClaimedBy, 128))
                .col(timestamp_with_time_zone_null(Deliveries::ClaimExpiresAt))
                .col(timestamp_with_time_zone(Deliveries::CreatedAt))
                .col(timestamp_with_time_zone_null(Deliveries::DeliveredAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_deliveries_tenant")
                        .from(Deliveries::Table, Deliveries::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                // A webhook's log goes with it.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_deliveries_webhook")
                        .from(Deliveries::Table, Deliveries::WebhookId)
                        .to(Webhooks::Table, Webhooks::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A webhook's log, newest first.
        m.create_index(
            Index::create()
                .name("ix_deliveries_webhook")
                .table(Deliveries::Table)
                .col(Deliveries::TenantId)
                .col(Deliveries::WebhookId)
                .col(Deliveries::Id)
                .to_owned(),
        )
        .await?;
        // What the dispatchers look for: pending rows by due time.
        m.create_index(
            Index::create()
                .name("ix_deliveries_due")
                .table(Deliveries::Table)
                .col(Deliveries::Status)
                .col(Deliveries::NextAttemptAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    TenantId,
    Url,
    Events,
    Description,
    Enabled,
    Secret,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TenantId,
    Channel,
    WebhookId,
    Recipients,
    Event,
    RunId,
    Payload,
    Status,
    Attempts,
    AttemptLog,
    NextAttemptAt,
    ClaimedBy,
    ClaimExpiresAt,
    CreatedAt,
    DeliveredAt,
}
