//! Mutations: check the role, call a service, map the result.

use async_graphql::{Context, InputType, Object};
use crmsync_entity::enums::{self, Role};

use super::connector_inputs::{CreateConnectorInput, UpdateConnectorInput};
use super::inputs::*;
use super::types::*;
use super::{admin, operator, state};
use crate::connectors::{ConnectorUpdate, NewConnector};
use crate::error::GqlResult;
use crate::idempotency::IdempotencyKey;
use crate::{api_keys, connectors, contacts, runs, tenants, webhooks};

pub(crate) struct Mutation;

#[Object]
impl Mutation {
    /// Creates a tenant (OPERATOR only).
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> GqlResult<TenantPayload> {
        operator(ctx)?;
        let tenant = tenants::create_tenant(
            &state(ctx).db,
            &input.name,
            &input.slug,
            input.retention.map(Into::into).unwrap_or_default(),
        )
        .await?;
        Ok(TenantPayload {
            tenant: tenant.into(),
        })
    }

    /// Sets how long the tenant's history is kept (ADMIN only); values left
    /// out stay as they are. The pruner applies it at its next pass.
    async fn set_retention(
        &self,
        ctx: &Context<'_>,
        input: RetentionInput,
    ) -> GqlResult<TenantPayload> {
        let scope = admin(ctx)?;
        let tenant =
            tenants::set_retention(&state(ctx).db, &scope.tenant, &scope.actor, input.into())
                .await?;
        Ok(TenantPayload {
            tenant: tenant.into(),
        })
    }

    /// Creates an API key; the secret is in this payload only.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> GqlResult<ApiKeyPayload> {
        let scope = admin(ctx)?;
        let (key, secret) = api_keys::create(
            state(ctx),
            &scope.tenant,
            &scope.actor,
            &input.name,
            Role::from(input.role),
        )
        .await?;
        Ok(ApiKeyPayload {
            api_key: key.into(),
            secret: Some(secret),
        })
    }

    /// Revokes an API key: it authenticates nothing from now on.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        input: RevokeApiKeyInput,
    ) -> GqlResult<ApiKeyPayload> {
        let scope = admin(ctx)?;
        let key = api_keys::revoke(state(ctx), &scope.tenant, &scope.actor, &input.id).await?;
        Ok(ApiKeyPayload {
            api_key: key.into(),
            secret: None,
        })
    }

    /// Creates a connector: credentials checked against the CRM (a grant code
    /// exchanged for a refresh token, where the CRM gives one) and stored
    /// encrypted, settings validated, default mappings from the CRM's fields.
    async fn create_connector(
        &self,
        ctx: &Context<'_>,
        mut input: CreateConnectorInput,
    ) -> GqlResult<ConnectorPayload> {
        let scope = admin(ctx)?;
        let idempotency_key = input
            .idempotency_key
            .clone()
            .map(|key| IdempotencyKey::new(state(ctx), key, input.to_value()));
        let new = NewConnector {
            kind: input.kind.into(),
            credentials: input.take_credentials(),
            name: input.name,
            settings: input.settings.map(Into::into),
            base_url: input.base_url,
            idempotency_key,
        };
        let model = connectors::create(state(ctx), &scope.tenant, &scope.actor, new).await?;
        Ok(ConnectorPayload {
            connector: Connector(model),
        })
    }

    /// Changes a connector's name, state, settings or credentials.
    async fn update_connector(
        &self,
        ctx: &Context<'_>,
        mut input: UpdateConnectorInput,
    ) -> GqlResult<ConnectorPayload> {
        let scope = admin(ctx)?;
        let update = ConnectorUpdate {
            credentials: input.take_credentials(),
            name: input.name,
            enabled: input.enabled,
            settings: input.settings.map(Into::into),
            base_url: input.base_url,
        };
        let model =
            connectors::update(state(ctx), &scope.tenant, &scope.actor, &input.id, update).await?;
        Ok(ConnectorPayload {
            connector: Connector(model),
        })
    }

    /// Deletes a connector with its mappings, links and runs.
    async fn delete_connector(
        &self,
        ctx: &Context<'_>,
        input: DeleteConnectorInput,
    ) -> GqlResult<DeleteConnectorPayload> {
        let scope = admin(ctx)?;
        connectors::delete(state(ctx), &scope.tenant, &scope.actor, &input.id).await?;
        Ok(DeleteConnectorPayload {
            deleted_id: input.id,
        })
    }

    /// Calls the CRM and says what works or what is wrong.
    async fn test_connector(
        &self,
        ctx: &Context<'_>,
        input: TestConnectorInput,
    ) -> GqlResult<ConnectionTestPayload> {
        let scope = admin(ctx)?;
        let (ok, message) = connectors::test(state(ctx), &scope.tenant, &input.id).await?;
        Ok(ConnectionTestPayload { ok, message })
    }

    /// Replaces the mapping list, validated as a whole; recommends a full resync.
    async fn set_field_mappings(
        &self,
        ctx: &Context<'_>,
        input: SetFieldMappingsInput,
    ) -> GqlResult<ConnectorPayload> {
        let scope = admin(ctx)?;
        let rows = input.mappings.into_iter().map(Into::into).collect();
        let model = connectors::set_mappings(
            state(ctx),
            &scope.tenant,
            &scope.actor,
            &input.connector_id,
            rows,
        )
        .await?;
        Ok(ConnectorPayload {
            connector: Connector(model),
        })
    }

    /// Replaces the IF/THEN sync rules (S13), validated as a whole against
    /// the CRM's fields; recommends a full resync.
    async fn set_sync_rules(
        &self,
        ctx: &Context<'_>,
        input: SetSyncRulesInput,
    ) -> GqlResult<ConnectorPayload> {
        let scope = admin(ctx)?;
        let rows = input.rules.into_iter().map(Into::into).collect();
        let model = connectors::set_rules(
            state(ctx),
            &scope.tenant,
            &scope.actor,
            &input.connector_id,
            rows,
        )
        .await?;
        Ok(ConnectorPayload {
            connector: Connector(model),
        })
    }

    /// Creates or updates a contact by e-mail; no sync is triggered.
    async fn upsert_contact(
        &self,
        ctx: &Context<'_>,
        input: UpsertContactInput,
    ) -> GqlResult<ContactPayload> {
        let scope = admin(ctx)?;
        let contact =
            contacts::upsert_contact(&state(ctx).db, &scope.tenant, input.into(), "input").await?;
        Ok(ContactPayload {
            contact: Contact(contact),
        })
    }

    /// Archives a contact: it is never exported and never brought back by an
    /// import; no CRM record is deleted. Archiving an archived contact keeps
    /// its first archive time.
    async fn archive_contact(
        &self,
        ctx: &Context<'_>,
        input: ArchiveContactInput,
    ) -> GqlResult<ContactPayload> {
        let scope = admin(ctx)?;
        let contact =
            contacts::set_archived(&state(ctx).db, &scope.tenant, &input.id, true).await?;
        Ok(ContactPayload {
            contact: Contact(contact),
        })
    }

    /// Unarchives a contact: it syncs again from the next run.
    async fn unarchive_contact(
        &self,
        ctx: &Context<'_>,
        input: UnarchiveContactInput,
    ) -> GqlResult<ContactPayload> {
        let scope = admin(ctx)?;
        let contact =
            contacts::set_archived(&state(ctx).db, &scope.tenant, &input.id, false).await?;
        Ok(ContactPayload {
            contact: Contact(contact),
        })
    }

    /// A form submission: upserts the contact and starts a FORM-triggered sync of each enabled connector.
    async fn submit_form(
        &self,
        ctx: &Context<'_>,
        input: SubmitFormInput,
    ) -> GqlResult<ContactPayload> {
        let scope = admin(ctx)?;
        let contact =
            contacts::submit_form(state(ctx), &scope.tenant, &input.form, input.contact.into())
                .await?;
        Ok(ContactPayload {
            contact: Contact(contact),
        })
    }

    /// Enqueues a run and returns it QUEUED (or the run already queued or
    /// running). With `mappings` or `rules` (DRY_RUN only), previews a
    /// mapping or sync rule change.
    async fn start_sync(
        &self,
        ctx: &Context<'_>,
        input: StartSyncInput,
    ) -> GqlResult<SyncRunPayload> {
        let scope = admin(ctx)?;
        let trigger = if scope.via_api_key {
            enums::SyncTrigger::Api
        } else {
            enums::SyncTrigger::Manual
        };
        let idempotency_key = input
            .idempotency_key
            .clone()
            .map(|key| IdempotencyKey::new(state(ctx), key, input.to_value()));
        let run = runs::start(
            state(ctx),
            &scope.tenant,
            &input.connector_id,
            trigger,
            input.mode.into(),
            idempotency_key.as_ref(),
            (
                input
                    .mappings
                    .map(|rows| rows.into_iter().map(Into::into).collect()),
                input
                    .rules
                    .map(|rows| rows.into_iter().map(Into::into).collect()),
            ),
        )
        .await?;
        Ok(SyncRunPayload { run: SyncRun(run) })
    }

    /// Cancels a run: a queued one at once, a running one at its next page.
    async fn cancel_sync(
        &self,
        ctx: &Context<'_>,
        input: CancelSyncInput,
    ) -> GqlResult<SyncRunPayload> {
        let scope = admin(ctx)?;
        let run = runs::cancel(state(ctx), &scope.tenant, &input.run_id).await?;
        Ok(SyncRunPayload { run: SyncRun(run) })
    }

    /// Starts a run retrying only the rejected contacts of a run.
    async fn retry_rejected(
        &self,
        ctx: &Context<'_>,
        input: RetryRejectedInput,
    ) -> GqlResult<SyncRunPayload> {
        let scope = admin(ctx)?;
        let run = runs::retry_rejected(state(ctx), &scope.tenant, &input.run_id).await?;
        Ok(SyncRunPayload { run: SyncRun(run) })
    }

    /// Creates a partner webhook (R5); its signing secret is in this payload only.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> GqlResult<WebhookPayload> {
        let scope = admin(ctx)?;
        let (model, secret) =
            webhooks::create(state(ctx), &scope.tenant, &scope.actor, input.into()).await?;
        Ok(WebhookPayload {
            webhook: Webhook(model),
            secret: Some(secret),
        })
    }

    /// Changes a webhook's URL, events, state or description.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookInput,
    ) -> GqlResult<WebhookPayload> {
        let scope = admin(ctx)?;
        let id = input.id.0.clone();
        let model =
            webhooks::update(state(ctx), &scope.tenant, &scope.actor, &id, input.into()).await?;
        Ok(WebhookPayload {
            webhook: Webhook(model),
            secret: None,
        })
    }

    /// Deletes a webhook with its delivery log; pending deliveries are not sent.
    async fn delete_webhook(
        &self,
        ctx: &Context<'_>,
        input: DeleteWebhookInput,
    ) -> GqlResult<DeleteWebhookPayload> {
        let scope = admin(ctx)?;
        webhooks::delete(state(ctx), &scope.tenant, &scope.actor, &input.id).await?;
        Ok(DeleteWebhookPayload {
            deleted_id: input.id,
        })
    }

    /// Replaces a webhook's signing secret; the new one is in this payload
    /// only. Attempts from now on, retries included, are signed with it.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        input: RotateWebhookSecretInput,
    ) -> GqlResult<WebhookPayload> {
        let scope = admin(ctx)?;
        let (model, secret) =
            webhooks::rotate_secret(state(ctx), &scope.tenant, &scope.actor, &input.id).await?;
        Ok(WebhookPayload {
            webhook: Webhook(model),
            secret: Some(secret),
        })
    }
}
