//! The backbone schema: tenants and API keys, platform contacts, connectors and
//! their field mappings, CRM links and the CRM-side index, sync runs and items,
//! checkpoints, the audit log and idempotency keys.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// ULIDs as text: sortable by creation time, portable across backends.
fn id<T: IntoIden>(col: T) -> ColumnDef {
    string_len(col, 26)
}

fn id_null<T: IntoIden>(col: T) -> ColumnDef {
    string_len_null(col, 26)
}

fn fk<T: IntoIden, R: IntoIden>(
    name: &str,
    from: (T, R),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .col(id(Tenants::Id).primary_key())
                .col(string(Tenants::Name))
                .col(string_len_uniq(Tenants::Slug, 64))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(id(ApiKeys::Id).primary_key())
                .col(id(ApiKeys::TenantId))
                .col(string(ApiKeys::Name))
                .col(string_len(ApiKeys::Role, 16))
                .col(string_len_uniq(ApiKeys::KeyHash, 64))
                .col(string(ApiKeys::CreatedBy))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(&mut fk(
                    "fk_api_keys_tenant",
                    (ApiKeys::Table, ApiKeys::TenantId),
                    (Tenants::Table, Tenants::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_api_keys_tenant",
            ApiKeys::Table,
            &[ApiKeys::TenantId.into_iden(), ApiKeys::Id.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Contacts::Table)
                .col(id(Contacts::Id).primary_key())
                .col(id(Contacts::TenantId))
                .col(string(Contacts::Email))
                .col(string_null(Contacts::FirstName))
                .col(string_null(Contacts::LastName))
                .col(string_null(Contacts::Company))
                .col(string_null(Contacts::Phone))
                .col(string_null(Contacts::JobTitle))
                .col(string_null(Contacts::Source))
                .col(integer(Contacts::BehaviourScore).default(0))
                .col(string_null(Contacts::State))
                .col(string_len(Contacts::Lifecycle, 16))
                .col(boolean(Contacts::OptedOut).default(false))
                .col(string_null(Contacts::OwnerEmail))
                .col(json_binary(Contacts::CustomFields))
                .col(timestamp_with_time_zone(Contacts::CreatedAt))
                .col(timestamp_with_time_zone(Contacts::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_contacts_tenant",
                    (Contacts::Table, Contacts::TenantId),
                    (Tenants::Table, Tenants::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_contacts_tenant_email",
            Contacts::Table,
            &[Contacts::TenantId.into_iden(), Contacts::Email.into_iden()],
            true,
        )
        .await?;
        index(
            m,
            "ix_contacts_tenant_updated",
            Contacts::Table,
            &[
                Contacts::TenantId.into_iden(),
                Contacts::UpdatedAt.into_iden(),
                Contacts::Id.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Connectors::Table)
                .col(id(Connectors::Id).primary_key())
                .col(id(Connectors::TenantId))
                .col(string_len(Connectors::Kind, 16))
                .col(string(Connectors::Name))
                .col(string_len(Connectors::Status, 16))
                .col(text_null(Connectors::StatusMessage))
                .col(boolean(Connectors::Enabled))
                .col(json_binary(Connectors::Settings))
                .col(blob_null(Connectors::Credentials))
                .col(json_binary(Connectors::CredentialsSet))
                .col(string_null(Connectors::BaseUrl))
                .col(boolean(Connectors::FullResyncRecommended).default(false))
                .col(timestamp_with_time_zone(Connectors::CreatedAt))
                .col(timestamp_with_time_zone(Connectors::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_connectors_tenant",
                    (Connectors::Table, Connectors::TenantId),
                    (Tenants::Table, Tenants::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_connectors_tenant",
            Connectors::Table,
            &[Connectors::TenantId.into_iden(), Connectors::Id.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(FieldMappings::Table)
                .col(id(FieldMappings::Id).primary_key())
                .col(id(FieldMappings::TenantId))
                .col(id(FieldMappings::ConnectorId))
                .col(integer(FieldMappings::Position))
                .col(string(FieldMappings::PlatformField))
                .col(string(FieldMappings::CrmField))
                .col(string_len(FieldMappings::Direction, 16))
                .col(boolean(FieldMappings::Enabled))
                .col(boolean(FieldMappings::Locked))
                .foreign_key(&mut fk(
                    "fk_mappings_connector",
                    (FieldMappings::Table, FieldMappings::ConnectorId),
                    (Connectors::Table, Connectors::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_mappings_connector_position",
            FieldMappings::Table,
            &[
                FieldMappings::ConnectorId.into_iden(),
                FieldMappings::Position.into_iden(),
            ],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CrmLinks::Table)
                .col(id(CrmLinks::Id).primary_key())
                .col(id(CrmLinks::TenantId))
                .col(id(CrmLinks::ConnectorId))
                .col(id(CrmLinks::ContactId))
                .col(string_len(CrmLinks::Module, 16))
                .col(string_len(CrmLinks::CrmRecordId, 64))
                .col(json_binary(CrmLinks::Snapshot))
                .col(timestamp_with_time_zone_null(CrmLinks::CrmModifiedAt))
                .col(timestamp_with_time_zone(CrmLinks::LastSyncedAt))
                .foreign_key(&mut fk(
                    "fk_links_connector",
                    (CrmLinks::Table, CrmLinks::ConnectorId),
                    (Connectors::Table, Connectors::Id),
                ))
                .foreign_key(&mut fk(
                    "fk_links_contact",
                    (CrmLinks::Table, CrmLinks::ContactId),
                    (Contacts::Table, Contacts::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_links_connector_contact",
            CrmLinks::Table,
            &[
                CrmLinks::ConnectorId.into_iden(),
                CrmLinks::ContactId.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ux_links_connector_record",
            CrmLinks::Table,
            &[
                CrmLinks::ConnectorId.into_iden(),
                CrmLinks::Module.into_iden(),
                CrmLinks::CrmRecordId.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            m,
            "ix_links_contact",
            CrmLinks::Table,
            &[CrmLinks::ContactId.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CrmRecords::Table)
                .col(id(CrmRecords::TenantId))
                .col(id(CrmRecords::ConnectorId))
                .col(string_len(CrmRecords::Module, 16))
                .col(string_len(CrmRecords::CrmRecordId, 64))
                .col(string_null(CrmRecords::Email))
                .col(timestamp_with_time_zone(CrmRecords::ModifiedAt))
                .primary_key(
                    Index::create()
                        .col(CrmRecords::ConnectorId)
                        .col(CrmRecords::Module)
                        .col(CrmRecords::CrmRecordId),
                )
                .foreign_key(&mut fk(
                    "fk_crm_records_connector",
                    (CrmRecords::Table, CrmRecords::ConnectorId),
                    (Connectors::Table, Connectors::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_crm_records_email",
            CrmRecords::Table,
            &[
                CrmRecords::ConnectorId.into_iden(),
                CrmRecords::Email.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SyncCheckpoints::Table)
                .col(id(SyncCheckpoints::TenantId))
                .col(id(SyncCheckpoints::ConnectorId))
                .col(string_len(SyncCheckpoints::Direction, 16))
                .col(string_len(SyncCheckpoints::Module, 16))
                .col(timestamp_with_time_zone(SyncCheckpoints::At))
                .col(string_len(SyncCheckpoints::RecordId, 64))
                .col(timestamp_with_time_zone(SyncCheckpoints::SavedAt))
                .primary_key(
                    Index::create()
                        .col(SyncCheckpoints::ConnectorId)
                        .col(SyncCheckpoints::Direction)
                        .col(SyncCheckpoints::Module),
                )
                .foreign_key(&mut fk(
                    "fk_checkpoints_connector",
                    (SyncCheckpoints::Table, SyncCheckpoints::ConnectorId),
                    (Connectors::Table, Connectors::Id),
                ))
                .to_owned(),
        )
        .await?;

        let mut runs = Table::create();
        runs.table(SyncRuns::Table)
            .col(id(SyncRuns::Id).primary_key())
            .col(id(SyncRuns::TenantId))
            .col(id(SyncRuns::ConnectorId))
            .col(string_len(SyncRuns::Trigger, 16))
            .col(string_len(SyncRuns::Mode, 16))
            .col(string_len(SyncRuns::Status, 16))
            .col(text_null(SyncRuns::Error))
            .col(string_len(SyncRuns::TaskId, 64))
            .col(string_len(SyncRuns::Phase, 32))
            .col(big_integer(SyncRuns::Processed).default(0))
            .col(boolean(SyncRuns::CancelRequested).default(false))
            .col(id_null(SyncRuns::RetryOf))
            .col(timestamp_with_time_zone(SyncRuns::QueuedAt))
            .col(timestamp_with_time_zone_null(SyncRuns::StartedAt))
            .col(timestamp_with_time_zone_null(SyncRuns::FinishedAt));
        for col in [
            SyncRuns::ToCrmCreated,
            SyncRuns::ToCrmUpdated,
            SyncRuns::ToCrmUnchanged,
            SyncRuns::ToCrmRejected,
            SyncRuns::ToCrmConflicts,
            SyncRuns::FromCrmCreated,
            SyncRuns::FromCrmUpdated,
            SyncRuns::FromCrmUnchanged,
            SyncRuns::FromCrmRejected,
            SyncRuns::FromCrmConflicts,
        ] {
            runs.col(big_integer(col).default(0));
        }
        runs.foreign_key(&mut fk(
            "fk_runs_connector",
            (SyncRuns::Table, SyncRuns::ConnectorId),
            (Connectors::Table, Connectors::Id),
        ));
        m.create_table(runs.to_owned()).await?;
        index(
            m,
            "ix_runs_tenant",
            SyncRuns::Table,
            &[SyncRuns::TenantId.into_iden(), SyncRuns::Id.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_runs_connector_status",
            SyncRuns::Table,
            &[
                SyncRuns::ConnectorId.into_iden(),
                SyncRuns::Status.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SyncItems::Table)
                .col(id(SyncItems::Id).primary_key())
                .col(id(SyncItems::TenantId))
                .col(id(SyncItems::RunId))
                .col(id(SyncItems::ConnectorId))
                .col(string_len(SyncItems::Direction, 16))
                .col(string_len(SyncItems::Outcome, 16))
                .col(string_null(SyncItems::Email))
                .col(id_null(SyncItems::ContactId))
                .col(string_len_null(SyncItems::CrmRecordId, 64))
                .col(string_len_null(SyncItems::ReasonCode, 64))
                .col(string_null(SyncItems::Field))
                .col(text_null(SyncItems::Message))
                .col(timestamp_with_time_zone(SyncItems::CreatedAt))
                .foreign_key(&mut fk(
                    "fk_items_run",
                    (SyncItems::Table, SyncItems::RunId),
                    (SyncRuns::Table, SyncRuns::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_items_run",
            SyncItems::Table,
            &[SyncItems::RunId.into_iden(), SyncItems::Id.into_iden()],
            false,
        )
        .await?;
        index(
            m,
            "ix_items_tenant_outcome",
            SyncItems::Table,
            &[
                SyncItems::TenantId.into_iden(),
                SyncItems::Outcome.into_iden(),
                SyncItems::Id.into_iden(),
            ],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(id(AuditLog::Id).primary_key())
                .col(id(AuditLog::TenantId))
                .col(string(AuditLog::Actor))
                .col(string_len(AuditLog::Action, 64))
                .col(string_len(AuditLog::TargetType, 32))
                .col(string_len(AuditLog::TargetId, 64))
                .col(json_binary(AuditLog::Detail))
                .col(timestamp_with_time_zone(AuditLog::At))
                .foreign_key(&mut fk(
                    "fk_audit_tenant",
                    (AuditLog::Table, AuditLog::TenantId),
                    (Tenants::Table, Tenants::Id),
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_audit_tenant",
            AuditLog::Table,
            &[AuditLog::TenantId.into_iden(), AuditLog::Id.into_iden()],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(id(IdempotencyKeys::TenantId))
                .col(string_len(IdempotencyKeys::Operation, 32))
                .col(string_len(IdempotencyKeys::Key, 128))
                .col(id(IdempotencyKeys::ResultId))
                .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::TenantId)
                        .col(IdempotencyKeys::Operation)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            AuditLog::Table.into_iden(),
            SyncItems::Table.into_iden(),
            SyncRuns::Table.into_iden(),
            SyncCheckpoints::Table.into_iden(),
            CrmRecords::Table.into_iden(),
            CrmLinks::Table.into_iden(),
            FieldMappings::Table.into_iden(),
            Connectors::Table.into_iden(),
            Contacts::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    cols: &[DynIden],
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(col.clone());
    }
    if unique {
        stmt.unique();
    }
    m.create_index(stmt.to_owned()).await
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Role,
    KeyHash,
    CreatedBy,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    TenantId,
    Email,
    FirstName,
    LastName,
    Company,
    Phone,
    JobTitle,
    Source,
    BehaviourScore,
    State,
    Lifecycle,
    OptedOut,
    OwnerEmail,
    CustomFields,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
    TenantId,
    Kind,
    Name,
    Status,
    StatusMessage,
    Enabled,
    Settings,
    Credentials,
    CredentialsSet,
    BaseUrl,
    FullResyncRecommended,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FieldMappings {
    Table,
    Id,
    TenantId,
    ConnectorId,
    Position,
    PlatformField,
    CrmField,
    Direction,
    Enabled,
    Locked,
}

#[derive(DeriveIden)]
enum CrmLinks {
    Table,
    Id,
    TenantId,
    ConnectorId,
    ContactId,
    Module,
    CrmRecordId,
    Snapshot,
    CrmModifiedAt,
    LastSyncedAt,
}

#[derive(DeriveIden)]
enum CrmRecords {
    Table,
    TenantId,
    ConnectorId,
    Module,
    CrmRecordId,
    Email,
    ModifiedAt,
}

#[derive(DeriveIden)]
enum SyncCheckpoints {
    Table,
    TenantId,
    ConnectorId,
    Direction,
    Module,
    At,
    RecordId,
    SavedAt,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
    TenantId,
    ConnectorId,
    Trigger,
    Mode,
    Status,
    Error,
    TaskId,
    Phase,
    Processed,
    CancelRequested,
    RetryOf,
    QueuedAt,
    StartedAt,
    FinishedAt,
    ToCrmCreated,
    ToCrmUpdated,
    ToCrmUnchanged,
    ToCrmRejected,
    ToCrmConflicts,
    FromCrmCreated,
    FromCrmUpdated,
    FromCrmUnchanged,
    FromCrmRejected,
    FromCrmConflicts,
}

#[derive(DeriveIden)]
enum SyncItems {
    Table,
    Id,
    TenantId,
    RunId,
    ConnectorId,
    Direction,
    Outcome,
    Email,
    ContactId,
    CrmRecordId,
    ReasonCode,
    Field,
    Message,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    TenantId,
    Actor,
    Action,
    TargetType,
    TargetId,
    Detail,
    At,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TenantId,
    Operation,
    Key,
    ResultId,
    CreatedAt,
}
