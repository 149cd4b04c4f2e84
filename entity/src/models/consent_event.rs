//! Consent history (S9): every change of a contact's opt-out state, with its
//! time and origin. Every writer of `contacts.opted_out` records its changes
//! through [`change`] and [`record`], so the history misses none.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};

use crate::enums::{ConnectorKind, ConsentOrigin};
use crate::{TenantId, TenantScoped};

/// One change of a contact's opt-out state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_events")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The contact.
    pub contact_id: String,
    /// The state the change set: true when the contact opted out.
    pub opted_out: bool,
    /// PLATFORM (API, upserts, imports) or CRM (a sync run).
    pub origin: ConsentOrigin,
    /// The connector whose CRM the change came from (origin CRM).
    pub connector_id: Option<String>,
    /// That connector's CRM (origin CRM).
    pub crm_kind: Option<ConnectorKind>,
    /// The sync run that carried the change (origin CRM).
    pub run_id: Option<String>,
    /// When the change was applied to the contact.
    pub at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);

/// Where a change of opt-out state comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// PLATFORM or CRM.
    pub origin: ConsentOrigin,
    /// The connector, for CRM.
    pub connector_id: Option<String>,
    /// The connector's CRM, for CRM.
    pub crm_kind: Option<ConnectorKind>,
    /// The sync run, for CRM.
    pub run_id: Option<String>,
}

impl Source {
    /// A change made in the platform (API mutation, upsert, import).
    pub fn platform() -> Self {
        Self {
            origin: ConsentOrigin::Platform,
            connector_id: None,
            crm_kind: None,
            run_id: None,
        }
    }

    /// A change a sync run brought from a connector's CRM.
    pub fn sync(connector_id: &str, kind: ConnectorKind, run_id: &str) -> Self {
        Self {
            origin: ConsentOrigin::Crm,
            connector_id: Some(connector_id.to_owned()),
            crm_kind: Some(kind),
            run_id: Some(run_id.to_owned()),
        }
    }
}

/// The event a write of a contact's opt-out state makes, if it changes it:
/// `before` is the stored state (`None` for a new contact, which starts
/// opted in), `after` the state written.
pub fn change(
    tenant_id: &str,
    contact_id: &str,
    before: Option<bool>,
    after: bool,
    source: &Source,
    at: DateTimeUtc,
) -> Option<Model> {
    (before.unwrap_or(false) != after).then(|| Model {
        id: crate::new_id(),
        tenant_id: tenant_id.to_owned(),
        contact_id: contact_id.to_owned(),
        opted_out: after,
        origin: source.origin,
        connector_id: source.connector_id.clone(),
        crm_kind: source.crm_kind,
        run_id: source.run_id.clone(),
        at,
    })
}

/// Stores events [`change`] made (in the writer's transaction), a statement
/// per thousand.
pub async fn record<C: ConnectionTrait>(db: &C, events: Vec<Model>) -> Result<(), DbErr> {
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(1_000));
        Entity::insert_many(rest.into_iter().map(ActiveModel::from))
            .exec_without_returning(db)
            .await?;
        rest = tail;
    }
    Ok(())
}

/// The tenant's contacts' histories, newest first, by contact.
pub async fn histories<C: ConnectionTrait>(
    db: &C,
    tenant: &TenantId,
    contact_ids: impl IntoIterator<Item = String>,
) -> Result<std::collections::HashMap<String, Vec<Model>>, DbErr> {
    let rows = Entity::for_tenant(tenant)
        .filter(Column::ContactId.is_in(contact_ids))
        .order_by_desc(Column::At)
        .order_by_desc(Column::Id)
        .all(db)
        .await?;
    let mut out: std::collections::HashMap<String, Vec<Model>> = Default::default();
    for row in rows {
        out.entry(row.contact_id.clone()).or_default().push(row);
    }
    Ok(out)
}
