//! DataLoaders: one per request and tenant, so nested fields cost one
//! statement per kind of thing, whatever the page size (no N+1).

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use crmsync_entity::models::{
    connector, consent_event, contact, crm_link, field_mapping, sync_rule, sync_run,
};
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, QueryFilter, QueryOrder, QuerySelect};

/// A loader that caches for the request it belongs to. Caching is safe (the
/// loaders live for one request of one tenant) and lets a list resolver
/// prefetch what its nested fields need in one batch, so the statement count
/// does not depend on when the batch timer fires.
type Cached<T> = DataLoader<T, HashMapCache>;

/// The loaders of one request.
pub(crate) struct Loaders {
    pub(crate) connectors: Cached<ById<connector::Entity>>,
    pub(crate) runs: Cached<ById<sync_run::Entity>>,
    pub(crate) contacts: Cached<ById<contact::Entity>>,
    pub(crate) mappings: Cached<MappingsByConnector>,
    pub(crate) sync_rules: Cached<RulesByConnector>,
    pub(crate) links: Cached<LinksByContact>,
    pub(crate) last_runs: Cached<LastRunByConnector>,
    pub(crate) consent: Cached<ConsentByContact>,
}

impl Loaders {
    /// Loaders reading the tenant's rows only.
    pub(crate) fn new(db: &DatabaseConnection, tenant: &TenantId) -> Self {
        let ctx = || Scoped {
            db: db.clone(),
            tenant: tenant.clone(),
        };
        Self {
            connectors: DataLoader::with_cache(
                ById::new(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            runs: DataLoader::with_cache(ById::new(ctx()), tokio::spawn, HashMapCache::default()),
            contacts: DataLoader::with_cache(
                ById::new(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            mappings: DataLoader::with_cache(
                MappingsByConnector(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            sync_rules: DataLoader::with_cache(
                RulesByConnector(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            links: DataLoader::with_cache(
                LinksByContact(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            last_runs: DataLoader::with_cache(
                LastRunByConnector(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            consent: DataLoader::with_cache(
                ConsentByContact(ctx()),
                tokio::spawn,
                HashMapCache::default(),
            ),
        }
    }
}

pub(crate) struct Scoped {
    db: DatabaseConnection,
    tenant: TenantId,
}

/// Rows of a tenant-scoped table by id.
pub(crate) struct ById<E> {
    scoped: Scoped,
    _entity: std::marker::PhantomData<fn() -> E>,
}

impl<E> ById<E> {
    fn new(scoped: Scoped) -> Self {
        Self {
            scoped,
            _entity: std::marker::PhantomData,
        }
    }
}

/// Rows that have a string `id`.
pub(crate) trait HasId {
    fn id(&self) -> &str;
}

macro_rules! has_id {
    ($($m:path),+) => { $(impl HasId for $m { fn id(&self) -> &str { &self.id } })+ };
}
has_id!(connector::Model, sync_run::Model, contact::Model);

impl<E> Loader<String> for ById<E>
where
    E: TenantScoped + Send + Sync + 'static,
    E::Model: HasId + Clone + Send + Sync + 'static,
{
    type Value = E::Model;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, E::Model>, DbErr> {
        let rows = E::for_tenant(&self.scoped.tenant)
            .filter(E::id_column().is_in(keys.iter().cloned()))
            .all(&self.scoped.db)
            .await?;
        Ok(rows.into_iter().map(|r| (r.id().to_owned(), r)).collect())
    }
}

/// A connector's mapping rows, in order.
pub(crate) struct MappingsByConnector(Scoped);

impl Loader<String> for MappingsByConnector {
    type Value = Vec<field_mapping::Model>;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, DbErr> {
        let rows = field_mapping::Entity::for_tenant(&self.0.tenant)
            .filter(field_mapping::Column::ConnectorId.is_in(keys.iter().cloned()))
            .order_by_asc(field_mapping::Column::ConnectorId)
            .order_by_asc(field_mapping::Column::Position)
            .all(&self.0.db)
            .await?;
        let mut out: HashMap<String, Self::Value> = HashMap::new();
        for row in rows {
            out.entry(row.connector_id.clone()).or_default().push(row);
        }
        Ok(out)
    }
}

/// A connector's sync rules (S13), in order.
pub(crate) struct RulesByConnector(Scoped);

impl Loader<String> for RulesByConnector {
    type Value = Vec<sync_rule::Model>;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, DbErr> {
        let rows = sync_rule::Entity::for_tenant(&self.0.tenant)
            .filter(sync_rule::Column::ConnectorId.is_in(keys.iter().cloned()))
            .order_by_asc(sync_rule::Column::ConnectorId)
            .order_by_asc(sync_rule::Column::Position)
            .all(&self.0.db)
            .await?;
        let mut out: HashMap<String, Self::Value> = HashMap::new();
        for row in rows {
            out.entry(row.connector_id.clone()).or_default().push(row);
        }
        Ok(out)
    }
}

/// A contact's CRM links.
pub(crate) struct LinksByContact(Scoped);

impl Loader<String> for LinksByContact {
    type Value = Vec<crm_link::Model>;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, DbErr> {
        let rows = crm_link::Entity::for_tenant(&self.0.tenant)
            .filter(crm_link::Column::ContactId.is_in(keys.iter().cloned()))
            .order_by_asc(crm_link::Column::Id)
            .all(&self.0.db)
            .await?;
        let mut out: HashMap<String, Self::Value> = HashMap::new();
        for row in rows {
            out.entry(row.contact_id.clone()).or_default().push(row);
        }
        Ok(out)
    }
}

/// A contact's consent history, newest first.
pub(crate) struct ConsentByContact(Scoped);

impl Loader<String> for ConsentByContact {
    type Value = Vec<consent_event::Model>;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, DbErr> {
        consent_event::histories(&self.0.db, &self.0.tenant, keys.iter().cloned()).await
    }
}

/// A connector's latest run (ULIDs sort by creation): two statements per batch.
pub(crate) struct LastRunByConnector(Scoped);

impl Loader<String> for LastRunByConnector {
    type Value = sync_run::Model;
    type Error = DbErr;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, DbErr> {
        let latest: Vec<(String, Option<String>)> = sync_run::Entity::for_tenant(&self.0.tenant)
            .filter(sync_run::Column::ConnectorId.is_in(keys.iter().cloned()))
            .select_only()
            .column(sync_run::Column::ConnectorId)
            .column_as(sync_run::Column::Id.max(), "max_id")
            .group_by(sync_run::Column::ConnectorId)
            .into_tuple()
            .all(&self.0.db)
            .await?;
        let ids: Vec<String> = latest.into_iter().filter_map(|(_, id)| id).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sync_run::Entity::for_tenant(&self.0.tenant)
            .filter(sync_run::Column::Id.is_in(ids))
            .all(&self.0.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.connector_id.clone(), r))
            .collect())
    }
}
