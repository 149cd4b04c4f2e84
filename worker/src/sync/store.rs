//! The database side of a run: batch reads per page, and the writes of a page
//! applied in one transaction (IMMEDIATE on SQLite).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{CrmModule, ItemOutcome, SyncDirection};
use crmsync_entity::models::{
    contact, crm_link, crm_record, pending_push, sync_checkpoint, sync_item, sync_run,
};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::sea_query::{Expr, OnConflict};
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

/// Commits a page's transaction, then has the WAL copied into the database
/// in the background ([`crmsync_entity::db::checkpoint_soon`]), so that the
/// next page's commit does not do it.
pub(crate) async fn commit(txn: DatabaseTransaction, db: &DatabaseConnection) -> Result<(), DbErr> {
    txn.commit().await?;
    crmsync_entity::db::checkpoint_soon(db);
    Ok(())
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

/// Saves a checkpoint (inside the page's transaction), naming the run whose
/// page it is: that run, handed back, goes on from here.
pub(crate) async fn save_checkpoint(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    (direction, module): (SyncDirection, CrmModule),
    (at, record_id): (DateTime<Utc>, &str),
    run_id: &str,
) -> Result<(), DbErr> {
    let row = sync_checkpoint::ActiveModel::from(sync_checkpoint::Model {
        tenant_id: tenant.as_str().to_owned(),
        connector_id: connector_id.to_owned(),
        direction,
        module,
        at,
        record_id: record_id.to_owned(),
        saved_at: Utc::now(),
        run_id: Some(run_id.to_owned()),
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
                sync_checkpoint::Column::RunId,
            ])
            .to_owned(),
        )
        .exec(txn)
        .await?;
    Ok(())
}

/// The CRM-side e-mail index, upserted by record.
const CRM_RECORDS: Rows<'static> = Rows {
    table: "crm_records",
    columns: &[
        "tenant_id",
        "connector_id",
        "module",
        "crm_record_id",
        "email",
        "modified_at",
    ],
    json: &[],
    conflict: Some((
        &["connector_id", "module", "crm_record_id"],
        &["email", "modified_at"],
    )),
};

/// Links, upserted by id: a converted lead's link moves to its contact (S10).
const CRM_LINKS: Rows<'static> = Rows {
    table: "crm_links",
    columns: &[
        "id",
        "tenant_id",
        "connector_id",
        "contact_id",
        "module",
        "crm_record_id",
        "snapshot",
        "crm_modified_at",
        "last_synced_at",
    ],
    json: &["snapshot"],
    conflict: Some((
        &["id"],
        &[
            "module",
            "crm_record_id",
            "snapshot",
            "crm_modified_at",
            "last_synced_at",
        ],
    )),
};

/// Items, inserted.
const SYNC_ITEMS: Rows<'static> = Rows {
    table: "sync_items",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "connector_id",
        "direction",
        "outcome",
        "email",
        "contact_id",
        "crm_record_id",
        "reason_code",
        "field",
        "message",
        "changes",
        "created_at",
    ],
    json: &["changes"],
    conflict: None,
};

/// Keeps the CRM-side e-mail index up to date (one statement per page).
pub(crate) async fn upsert_crm_records(
    db: &impl ConnectionTrait,
    rows: Vec<crm_record::Model>,
) -> Result<(), DbErr> {
    CRM_RECORDS
        .insert(
            db,
            rows.into_iter()
                .map(|r| {
                    vec![
                        r.tenant_id.into(),
                        r.connector_id.into(),
                        r.module.into(),
                        r.crm_record_id.into(),
                        r.email.into(),
                        r.modified_at.into(),
                    ]
                })
                .collect(),
        )
        .await
}

/// A link as a page writes it: [`crm_link::Model`]'s columns, with the
/// snapshot already in its stored form (JSON text), serialised straight from
/// the decision (no JSON tree in between; BENCHMARKS.md, the 100k-contact export).
#[derive(Debug)]
pub(crate) struct LinkRow {
    pub id: String,
    pub tenant_id: String,
    pub connector_id: String,
    pub contact_id: String,
    pub module: CrmModule,
    pub crm_record_id: String,
    /// The snapshot as JSON text.
    pub snapshot: String,
    pub crm_modified_at: Option<DateTime<Utc>>,
    pub last_synced_at: DateTime<Utc>,
}

impl LinkRow {
    /// The link as the database would return it (a dry run's shadow keeps it).
    pub fn into_model(self) -> crm_link::Model {
        crm_link::Model {
            snapshot: serde_json::from_str(&self.snapshot)
                .expect("a link's snapshot is serialised JSON"),
            id: self.id,
            tenant_id: self.tenant_id,
            connector_id: self.connector_id,
            contact_id: self.contact_id,
            module: self.module,
            crm_record_id: self.crm_record_id,
            crm_modified_at: self.crm_modified_at,
            last_synced_at: self.last_synced_at,
        }
    }
}

/// Links and snapshots, created or updated (one statement per page).
pub(crate) async fn upsert_links(
    db: &impl ConnectionTrait,
    rows: Vec<LinkRow>,
) -> Result<(), DbErr> {
    CRM_LINKS
        .insert(
            db,
            rows.into_iter()
                .map(|r| {
                    vec![
                        r.id.into(),
                        r.tenant_id.into(),
                        r.connector_id.into(),
                        r.contact_id.into(),
                        r.module.into(),
                        r.crm_record_id.into(),
                        r.snapshot.into(),
                        r.crm_modified_at.into(),
                        r.last_synced_at.into(),
                    ]
                })
                .collect(),
        )
        .await
}

/// An item as a page writes it: [`sync_item::Model`]'s columns, with the
/// field changes already in their stored form (JSON text; see
/// [`sync_item::FieldChange::to_text`]).
#[derive(Debug)]
pub(crate) struct ItemRow {
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub connector_id: String,
    pub direction: SyncDirection,
    pub outcome: ItemOutcome,
    pub email: Option<String>,
    pub contact_id: Option<String>,
    pub crm_record_id: Option<String>,
    pub reason_code: Option<String>,
    pub field: Option<String>,
    pub message: Option<String>,
    /// The field changes as JSON text; `None` for none.
    pub changes: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Items, in one statement per page (chunked to stay under bind limits);
/// returns each item's direction and outcome, for the metrics once committed.
pub(crate) async fn insert_items(
    db: &impl ConnectionTrait,
    rows: Vec<ItemRow>,
) -> Result<Vec<(SyncDirection, ItemOutcome)>, DbErr> {
    let recorded = rows.iter().map(|r| (r.direction, r.outcome)).collect();
    SYNC_ITEMS
        .insert(
            db,
            rows.into_iter()
                .map(|r| {
                    vec![
                        r.id.into(),
                        r.tenant_id.into(),
                        r.run_id.into(),
                        r.connector_id.into(),
                        r.direction.into(),
                        r.outcome.into(),
                        r.email.into(),
                        r.contact_id.into(),
                        r.crm_record_id.into(),
                        r.reason_code.into(),
                        r.field.into(),
                        r.message.into(),
                        r.changes.into(),
                        r.created_at.into(),
                    ]
                })
                .collect(),
        )
        .await?;
    Ok(recorded)
}

/// A page's rows of one table, written as multi-row INSERT statements built
/// here: the values are moved into the statement, JSON as the text the
/// rows carry. sea-query's `insert_many` builds an expression per value
/// and clones every value, JSON trees included, on its way to the driver,
/// which took most of an export page's transaction (BENCHMARKS.md, the 100k-contact export).
struct Rows<'a> {
    table: &'a str,
    columns: &'a [&'a str],
    /// The columns holding JSON, bound as text (SQLite stores JSON as text;
    /// PostgreSQL casts it to `jsonb`).
    json: &'a [&'a str],
    /// The conflict target and the columns an existing row takes.
    conflict: Option<(&'a [&'a str], &'a [&'a str])>,
}

/// Bind parameters per statement: under SQLite's limit (32,766) and
/// PostgreSQL's (65,535).
const MAX_PARAMS: usize = 30_000;

impl Rows<'_> {
    async fn insert(
        &self,
        db: &impl ConnectionTrait,
        rows: Vec<Vec<sea_orm::Value>>,
    ) -> Result<(), DbErr> {
        let per_statement = (MAX_PARAMS / self.columns.len()).max(1);
        let backend = db.get_database_backend();
        let mut rows = rows.into_iter();
        loop {
            let chunk: Vec<Vec<sea_orm::Value>> = rows.by_ref().take(per_statement).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            let sql = self.sql(backend, chunk.len());
            let values: Vec<sea_orm::Value> = chunk.into_iter().flatten().collect();
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await?;
        }
    }

    /// `INSERT INTO t (..) VALUES (..), .. [ON CONFLICT (..) DO UPDATE SET ..]`.
    fn sql(&self, backend: sea_orm::DbBackend, rows: usize) -> String {
        use std::fmt::Write as _;
        let postgres = backend == sea_orm::DbBackend::Postgres;
        let mut sql = format!(
            "INSERT INTO \"{}\" ({}) VALUES ",
            self.table,
            quoted(self.columns)
        );
        let mut n = 0;
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ",(" });
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                n += 1;
                match (postgres, self.json.contains(column)) {
                    (true, true) => {
                        write!(sql, "CAST(${n} AS jsonb)").expect("a String takes writes")
                    }
                    (true, false) => write!(sql, "${n}").expect("a String takes writes"),
                    (false, _) => sql.push('?'),
                }
            }
            sql.push(')');
        }
        if let Some((target, update)) = self.conflict {
            let set: Vec<String> = update
                .iter()
                .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
                .collect();
            write!(
                sql,
                " ON CONFLICT ({}) DO UPDATE SET {}",
                quoted(target),
                set.join(", ")
            )
            .expect("a String takes writes");
        }
        sql
    }
}

fn quoted(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
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

/// How long a FORM run waits after it was queued before taking its
/// contacts, so that a burst of submissions goes in one small run.
pub(super) const FORM_GATHER: std::time::Duration = std::time::Duration::from_secs(1);

/// The contacts a FORM run pushes: those submitted for its connector and not
/// taken by another run, taken now (once [`FORM_GATHER`] has passed since it
/// was queued), with those it took before it was handed over.
pub(super) async fn take_pushes(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run: &sync_run::Model,
) -> Result<std::collections::HashSet<String>, sea_orm::DbErr> {
    let gathered = run.queued_at + chrono::Duration::from_std(FORM_GATHER).unwrap_or_default();
    if let Ok(wait) = (gathered - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    pending_push::Entity::update_many()
        .col_expr(pending_push::Column::RunId, Expr::value(run.id.clone()))
        .filter(pending_push::Column::TenantId.eq(tenant.as_str()))
        .filter(pending_push::Column::ConnectorId.eq(&run.connector_id))
        .filter(pending_push::Column::RunId.is_null())
        .exec(db)
        .await?;
    Ok(pending_push::Entity::for_tenant(tenant)
        .filter(pending_push::Column::RunId.eq(&run.id))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.contact_id)
        .collect())
}

/// The records a CRM_EVENT run reads, by module: those notified for its
/// connector and not taken by another run, taken now (once [`FORM_GATHER`]
/// has passed since it was queued, so a burst of notifications goes in one
/// run), with those it took before it was handed over. Each record once,
/// deleted when any of its notices said so.
pub(super) async fn take_notices(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run: &sync_run::Model,
) -> Result<super::Notified, sea_orm::DbErr> {
    use crmsync_entity::models::crm_notice;
    let gathered = run.queued_at + chrono::Duration::from_std(FORM_GATHER).unwrap_or_default();
    if let Ok(wait) = (gathered - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    crm_notice::Entity::update_many()
        .col_expr(crm_notice::Column::RunId, Expr::value(run.id.clone()))
        .filter(crm_notice::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_notice::Column::ConnectorId.eq(&run.connector_id))
        .filter(crm_notice::Column::RunId.is_null())
        .exec(db)
        .await?;
    let mut notified = super::Notified::default();
    for notice in crm_notice::Entity::for_tenant(tenant)
        .filter(crm_notice::Column::RunId.eq(&run.id))
        .all(db)
        .await?
    {
        notified.add(notice.module, notice.crm_record_id, notice.deleted);
    }
    Ok(notified)
}

/// The notices that came for the run's connector since it took its own
/// (none waits for a gather here: the run is reading already), taken now.
pub(super) async fn take_more_notices(
    db: &DatabaseConnection,
    tenant: &TenantId,
    run: &sync_run::Model,
) -> Result<super::Notified, sea_orm::DbErr> {
    use crmsync_entity::models::crm_notice;
    // One statement: the notices taken are the rows it returns.
    let taken = crm_notice::Entity::update_many()
        .col_expr(crm_notice::Column::RunId, Expr::value(run.id.clone()))
        .filter(crm_notice::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_notice::Column::ConnectorId.eq(&run.connector_id))
        .filter(crm_notice::Column::RunId.is_null())
        .exec_with_returning(db)
        .await?;
    let mut notified = super::Notified::default();
    for notice in taken {
        notified.add(notice.module, notice.crm_record_id, notice.deleted);
    }
    Ok(notified)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    use super::*;

    fn columns_of<E: EntityTrait>() -> BTreeSet<String> {
        E::Column::iter().map(|c| c.as_str().to_owned()).collect()
    }

    fn written(rows: &Rows<'_>) -> BTreeSet<String> {
        rows.columns.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn each_direct_insert_writes_every_column_of_its_entity() {
        assert_eq!(written(&CRM_RECORDS), columns_of::<crm_record::Entity>());
        assert_eq!(written(&CRM_LINKS), columns_of::<crm_link::Entity>());
        assert_eq!(written(&SYNC_ITEMS), columns_of::<sync_item::Entity>());
    }

    #[test]
    fn postgres_numbers_the_parameters_and_casts_json() {
        let sql = CRM_LINKS.sql(sea_orm::DbBackend::Postgres, 2);
        assert!(
            sql.contains("($1,$2,$3,$4,$5,$6,CAST($7 AS jsonb),$8,$9),($10,"),
            "{sql}"
        );
        assert!(
            sql.ends_with("\"last_synced_at\" = excluded.\"last_synced_at\""),
            "{sql}"
        );
        let sql = CRM_LINKS.sql(sea_orm::DbBackend::Sqlite, 2);
        assert!(
            sql.contains("VALUES (?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?) ON CONFLICT (\"id\")"),
            "{sql}"
        );
    }
}
