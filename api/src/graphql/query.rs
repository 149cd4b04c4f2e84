//! Queries.

use async_graphql::{Context, ID, Object};
use crmsync_entity::enums;
use crmsync_entity::models::{
    api_key, audit_log, connector, contact, sync_item, sync_run, tenant, webhook,
};
use crmsync_entity::{Email, TenantScoped};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::pagination::{self, Conn};
use super::types::*;
use super::{admin, operator, principal, reader, state};
use crate::error::{ApiError, GqlResult};
use crate::{connectors, contacts, runs, webhooks};

pub(crate) struct Query;

#[Object]
impl Query {
    /// Who is calling.
    async fn viewer(&self, ctx: &Context<'_>) -> GqlResult<Viewer> {
        let p = principal(ctx)?;
        Ok(Viewer {
            subject: p.subject.clone(),
            role: p.role.into(),
            tenant: p.tenant.clone().map(Into::into),
        })
    }

    /// The token's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> GqlResult<Tenant> {
        reader(ctx)?;
        let p = principal(ctx)?;
        Ok(p.tenant
            .clone()
            .map(Into::into)
            .expect("reader has a tenant"))
    }

    /// All tenants (OPERATOR only).
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<Tenant>> {
        operator(ctx)?;
        let page = pagination::page(
            &state(ctx).db,
            tenant::Entity::find(),
            tenant::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, Tenant::from))
    }

    /// The tenant's connectors.
    async fn connectors(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<Connector>> {
        let scope = reader(ctx)?;
        let page = pagination::page(
            &state(ctx).db,
            connector::Entity::for_tenant(&scope.tenant),
            connector::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, Connector))
    }

    /// One connector; another tenant's is NOT_FOUND.
    async fn connector(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Connector>> {
        let scope = reader(ctx)?;
        Ok(Some(Connector(
            connectors::find(state(ctx), &scope.tenant, &id).await?,
        )))
    }

    /// The tenant's contacts, optionally those whose e-mail or name contains
    /// `search`. Those not archived by default; `archived: true` lists only
    /// the archived ones.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        archived: Option<bool>,
    ) -> GqlResult<Conn<Contact>> {
        let scope = reader(ctx)?;
        let mut select = contact::Entity::for_tenant(&scope.tenant)
            .filter(contacts::archived_filter(archived.unwrap_or(false)));
        if let Some(filter) = search
            .as_deref()
            .map(contacts::search_filter)
            .transpose()?
            .flatten()
        {
            select = select.filter(filter);
        }
        let page = pagination::page(
            &state(ctx).db,
            select,
            contact::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        // One batch for the page's consent histories (no N+1).
        let consent = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("consentHistory");
        if consent.exists() {
            let ids: Vec<String> = page.items.iter().map(|c| c.id.clone()).collect();
            super::loaders(ctx)?.consent.load_many(ids).await?;
        }
        Ok(pagination::connection(page, |m| &m.id, Contact))
    }

    /// One contact, by id or by e-mail.
    async fn contact(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        email: Option<String>,
    ) -> GqlResult<Option<Contact>> {
        let scope = reader(ctx)?;
        let select = match (id, email) {
            (Some(id), _) => contact::Entity::find_for_tenant(&scope.tenant, &id),
            (None, Some(email)) => {
                let email = Email::parse(&email)
                    .map_err(|e| ApiError::validation("email", e.to_string()))?;
                contact::Entity::for_tenant(&scope.tenant)
                    .filter(contact::Column::Email.eq(email.as_str()))
            }
            (None, None) => {
                return Err(ApiError::validation("id", "give an id or an email").into());
            }
        };
        let found = select
            .one(&state(ctx).db)
            .await?
            .ok_or(ApiError::NotFound("contact"))?;
        Ok(Some(Contact(found)))
    }

    /// Sync runs, newest first.
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        connector_id: Option<ID>,
        status: Option<Vec<SyncRunStatus>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<SyncRun>> {
        let scope = reader(ctx)?;
        let mut select = sync_run::Entity::for_tenant(&scope.tenant);
        if let Some(id) = &connector_id {
            connectors::find(state(ctx), &scope.tenant, id).await?;
            select = select.filter(sync_run::Column::ConnectorId.eq(id.as_str()));
        }
        if let Some(statuses) = status.filter(|s| !s.is_empty()) {
            select = select.filter(
                sync_run::Column::Status
                    .is_in(statuses.into_iter().map(enums::SyncRunStatus::from)),
            );
        }
        let page = pagination::page(
            &state(ctx).db,
            select,
            sync_run::Column::Id,
            first,
            after,
            true,
        )
        .await?;
        // Prefetch what the nested fields ask for, one batch each, so the
        // statement count does not depend on when a loader's timer fires.
        let connector = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("connector");
        if connector.exists() {
            let ids: Vec<String> = page
                .items
                .iter()
                .map(|r| r.connector_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let loaders = super::loaders(ctx)?;
            loaders.connectors.load_many(ids.clone()).await?;
            if connector.field("mappings").exists() {
                loaders.mappings.load_many(ids.clone()).await?;
            }
            if connector.field("lastRun").exists() {
                loaders.last_runs.load_many(ids).await?;
            }
        }
        Ok(pagination::connection(page, |m| &m.id, SyncRun))
    }

    /// One run; another tenant's is NOT_FOUND.
    async fn sync_run(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<SyncRun>> {
        let scope = reader(ctx)?;
        Ok(Some(SyncRun(
            runs::find(state(ctx), &scope.tenant, &id).await?,
        )))
    }

    /// Rejected contacts (R2), filtered by connector, run and reason code.
    /// Dry runs' rejections (what a sync would meet) are listed only with
    /// their `runId`.
    async fn rejected_contacts(
        &self,
        ctx: &Context<'_>,
        connector_id: Option<ID>,
        run_id: Option<ID>,
        reason: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<SyncItem>> {
        let scope = reader(ctx)?;
        let mut select = sync_item::Entity::for_tenant(&scope.tenant)
            .filter(sync_item::Column::Outcome.eq(enums::ItemOutcome::Rejected));
        if let Some(id) = &connector_id {
            connectors::find(state(ctx), &scope.tenant, id).await?;
            select = select.filter(sync_item::Column::ConnectorId.eq(id.as_str()));
        }
        if let Some(id) = &run_id {
            runs::find(state(ctx), &scope.tenant, id).await?;
            select = select.filter(sync_item::Column::RunId.eq(id.as_str()));
        } else {
            // A dry run's rejections are what a sync would meet, not contacts
            // left behind: they are listed by that run only.
            let dry_runs = sea_orm::sea_query::Query::select()
                .column(sync_run::Column::Id)
                .from(sync_run::Entity)
                .and_where(sync_run::Column::TenantId.eq(scope.tenant.as_str()))
                .and_where(sync_run::Column::Mode.eq(enums::SyncMode::DryRun))
                .to_owned();
            select = select.filter(sync_item::Column::RunId.not_in_subquery(dry_runs));
        }
        if let Some(reason) = reason {
            select = select.filter(sync_item::Column::ReasonCode.eq(reason));
        }
        let page = pagination::page(
            &state(ctx).db,
            select,
            sync_item::Column::Id,
            first,
            after,
            true,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, SyncItem))
    }

    /// The platform's contact fields that mappings can name.
    async fn platform_fields(&self, ctx: &Context<'_>) -> GqlResult<Vec<PlatformField>> {
        principal(ctx)?;
        Ok(crmsync_worker::platform::PLATFORM_FIELDS
            .iter()
            .map(|f| PlatformField {
                name: f.name.to_owned(),
                field_type: f.field_type.as_str().to_owned(),
                computed: f.computed,
                mandatory: f.mandatory,
            })
            .collect())
    }

    /// The CRMs connectors can be created for today, as each one's kit
    /// describes it: modules, settings and the credential input.
    async fn crm_kinds(&self, ctx: &Context<'_>) -> GqlResult<Vec<CrmKind>> {
        principal(ctx)?;
        Ok(crmsync_worker::crm::registry::kits()
            .map(|kit| CrmKind::from(kit.describe()))
            .collect())
    }

    /// The tenant's API keys (ADMIN only); secrets are never shown again.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<ApiKey>> {
        let scope = admin(ctx)?;
        let page = pagination::page(
            &state(ctx).db,
            api_key::Entity::for_tenant(&scope.tenant),
            api_key::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, ApiKey::from))
    }

    /// Configuration changes, newest first (ADMIN only).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<AuditEntry>> {
        let scope = admin(ctx)?;
        let page = pagination::page(
            &state(ctx).db,
            audit_log::Entity::for_tenant(&scope.tenant),
            audit_log::Column::Id,
            first,
            after,
            true,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, AuditEntry::from))
    }

    /// The tenant's partner webhooks (R5), oldest first; secrets are never shown again.
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<Webhook>> {
        let scope = reader(ctx)?;
        let page = pagination::page(
            &state(ctx).db,
            webhook::Entity::for_tenant(&scope.tenant),
            webhook::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, Webhook))
    }

    /// One webhook, with its delivery log; another tenant's is NOT_FOUND.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<Webhook>> {
        let scope = reader(ctx)?;
        Ok(Some(Webhook(
            webhooks::find(state(ctx), &scope.tenant, &id).await?,
        )))
    }
}
