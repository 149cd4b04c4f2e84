//! The database side of a run: batch reads per page, and the writes of a page
//! applied in one transaction (IMMEDIATE on SQLite).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{CrmModule, ItemOutcome, SyncDirection};
use crmsync_entity::models::{contact, crm_link, crm_record, sync_checkpoint, sync_item};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Opens a write transaction (IMMEDIATE on SQLite, so it never fails to upgrade its lock).
pub(crate) async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// The CRM records and contacts a run rejected (for a retry run).
pub(crate) async fn rejected_of(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run_id: &str,
) -> Result<(HashSet<String>, HashSet<String>), DbErr> {
    let items = sync_item::Entity::for_tenant(tenant)
        .filter(sync_item::Column::RunId.eq(run_id))
        .filter(sync_item::Column::Outcome.eq(ItemOutcome::Rejected))
        .all(db)
        .await?;
    let mut crm = HashSet::new();
    let mut contacts = HashSet::new();
    for item in items {
        match item.direction {
            SyncDirection::FromCrm => {
                if let Some(id) = item.crm_record_id {
                    crm.insert(id);
                }
            }
            SyncDirection::ToCrm => {
                if let Some(id) = item.contact_id {
                    contacts.insert(id);
                }
            }
        }
    }
    Ok((crm, contacts))
}

/// A checkpoint, if any.
pub(crate) async fn checkpoint(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    direction: SyncDirection,
    module: CrmModule,
) -> Result<Option<sync_checkpoint::Model>, DbErr> {
    sync_checkpoint::Entity::for_tenant(tenant)
        .filter(sync_checkpoint::Column::ConnectorId.eq(connector_id))
        .filter(sync_checkpoint::Column::Direction.eq(direction))
        .filter(sync_checkpoint::Column::Module.eq(module))
        .one(db)
        .await
}

/// Saves a checkpoint (inside the page's transaction).
pub(crate) async fn save_checkpoint(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    direction: SyncDirection,
    module: CrmModule,
    at: DateTime<Utc>,
    record_id: &str,
) -> Result<(), DbErr> {
    let row = sync_checkpoint::ActiveModel::from(sync_checkpoint::Model {
        tenant_id: tenant.as_str().to_owned(),
        connector_id: connector_id.to_owned(),
        direction,
        module,
        at,
        record_id: record_id.to_owned(),
        saved_at: Utc::now(),
    });
    sync_checkpoint::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                sync_checkpoint::Column::ConnectorId,
                sync_checkpoint::Column::Direction,
                sync_checkpoint::Column::Module,
            ])
            .update_columns([
                sync_checkpoint::Column::At,
                sync_checkpoint::Column::RecordId,
                sync_checkpoint::Column::SavedAt,
            ])
            .to_owned(),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// Keeps the CRM-side e-mail index up to date (one statement per page).
pub(crate) async fn upsert_crm_records(
    db: &impl ConnectionTrait,
    rows: Vec<crm_record::Model>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    crm_record::Entity::insert_many(rows.into_iter().map(crm_record::ActiveModel::from))
        .on_conflict(
            OnConflict::columns([
                crm_record::Column::ConnectorId,
                crm_record::Column::Module,
                crm_record::Column::CrmRecordId,
            ])
            .update_columns([crm_record::Column::Email, crm_record::Column::ModifiedAt])
            .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Links and snapshots, created or updated (one statement per page).
pub(crate) async fn upsert_links(
    db: &impl ConnectionTrait,
    rows: Vec<crm_link::Model>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    crm_link::Entity::insert_many(rows.into_iter().map(crm_link::ActiveModel::from))
        .on_conflict(
            OnConflict::column(crm_link::Column::Id)
                // A converted lead's link moves to its contact (S10).
                .update_columns([
                    crm_link::Column::Module,
                    crm_link::Column::CrmRecordId,
                    crm_link::Column::Snapshot,
                    crm_link::Column::CrmModifiedAt,
                    crm_link::Column::LastSyncedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Items, in one statement per page (chunked to stay under bind limits).
pub(crate) async fn insert_items(
    db: &impl ConnectionTrait,
    rows: &[sync_item::Model],
) -> Result<(), DbErr> {
    for chunk in rows.chunks(500) {
        sync_item::Entity::insert_many(chunk.iter().cloned().map(sync_item::ActiveModel::from))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Links of these CRM records.
pub(crate) async fn links_by_records(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    module: CrmModule,
    ids: Vec<String>,
) -> Result<Vec<crm_link::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    crm_link::Entity::for_tenant(tenant)
        .filter(crm_link::Column::ConnectorId.eq(connector_id))
        .filter(crm_link::Column::Module.eq(module))
        .filter(crm_link::Column::CrmRecordId.is_in(ids))
        .all(db)
        .await
}

/// Links of these contacts.
pub(crate) async fn links_by_contacts(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    ids: Vec<String>,
) -> Result<Vec<crm_link::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    crm_link::Entity::for_tenant(tenant)
        .filter(crm_link::Column::ConnectorId.eq(connector_id))
        .filter(crm_link::Column::ContactId.is_in(ids))
        .all(db)
        .await
}

/// Contacts by id or e-mail.
pub(crate) async fn contacts(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: Vec<String>,
    emails: Vec<String>,
) -> Result<Vec<contact::Model>, DbErr> {
    // Two indexed lookups, not one `id IN .. OR email IN ..`: SQLite plans
    // the OR as a scan of all the tenant's contacts (quadratic over an import).
    let mut found = Vec::new();
    if !ids.is_empty() {
        found = contact::Entity::for_tenant(tenant)
            .filter(contact::Column::Id.is_in(ids))
            .all(db)
            .await?;
    }
    let known: std::collections::HashSet<&str> = found.iter().map(|c| c.email.as_str()).collect();
    let emails: Vec<String> = emails
        .into_iter()
        .filter(|e| !known.contains(e.as_str()))
        .collect();
    if !emails.is_empty() {
        found.extend(
            contact::Entity::for_tenant(tenant)
                .filter(contact::Column::Email.is_in(emails))
                .all(db)
                .await?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|c| seen.insert(c.id.clone()));
    Ok(found)
}

/// CRM records of one module (from the index) with these e-mails.
pub(crate) async fn crm_records_by_email(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    module: CrmModule,
    emails: Vec<String>,
) -> Result<Vec<crm_record::Model>, DbErr> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    crm_record::Entity::for_tenant(tenant)
        .filter(crm_record::Column::ConnectorId.eq(connector_id))
        .filter(crm_record::Column::Module.eq(module))
        .filter(crm_record::Column::Email.is_in(emails))
        .all(db)
        .await
}
