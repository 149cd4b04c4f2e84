//! Sync runs from the API's side: starting (with idempotency keys), cancelling
//! and retrying go to `crmsync_worker::runs`; this module adds the checks.

use crmsync_entity::TenantId;
use crmsync_entity::TenantScoped;
use crmsync_entity::enums::{SyncMode, SyncTrigger};
use crmsync_entity::models::sync_run;
use crmsync_worker::platform::MappingInput;
use crmsync_worker::runs::Proposed;
use crmsync_worker::sync_rules::SyncRuleInput;

use crate::ApiState;
use crate::connectors;
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey};

/// Starts a run of one connector, or returns the one already queued or
/// running (R4). A replayed idempotency key returns the first run; the same
/// key with other input is refused.
///
/// `mappings` previews a mapping change: a DRY_RUN only, validated exactly
/// as `setFieldMappings` validates, used by that run instead of the
/// connector's, and saved nowhere else (the connector keeps its mappings and
/// its `fullResyncRecommended`). Such a run never joins one already going.
/// `rules` previews a sync rule change the same way (S13), validated as
/// `setSyncRules` validates it; both may be previewed at once.
pub async fn start(
    state: &ApiState,
    tenant: &TenantId,
    connector_id: &str,
    trigger: SyncTrigger,
    mode: SyncMode,
    idempotency_key: Option<&IdempotencyKey>,
    proposed: (Option<Vec<MappingInput>>, Option<Vec<SyncRuleInput>>),
) -> Result<sync_run::Model, ApiError> {
    let (mappings, rules) = proposed;
    const OPERATION: &str = "startSync";
    if mappings.is_some() && mode != SyncMode::DryRun {
        return Err(ApiError::validation(
            "input.mappings",
            "proposed mappings are previewed by a dry run only: set mode: DRY_RUN, or apply them with setFieldMappings",
        ));
    }
    if rules.is_some() && mode != SyncMode::DryRun {
        return Err(ApiError::validation(
            "input.rules",
            "proposed rules are previewed by a dry run only: set mode: DRY_RUN, or apply them with setSyncRules",
        ));
    }
    if let Some(key) = idempotency_key {
        idempotency::check(&key.key)?;
        if let Some(id) = idempotency::lookup(&state.db, tenant, OPERATION, key).await? {
            return find(state, tenant, &id).await;
        }
    }
    let connector = connectors::find(state, tenant, connector_id).await?;
    if !connector.enabled {
        return Err(ApiError::Conflict(
            "the connector is disabled: enable it to sync".into(),
        ));
    }
    let run = if mappings.is_some() || rules.is_some() {
        let mappings = match &mappings {
            Some(rows) => Some(connectors::validate_mappings(state, &connector, rows).await?),
            None => None,
        };
        let rules = match &rules {
            Some(rows) => Some(connectors::validate_rules(state, &connector, rows).await?),
            None => None,
        };
        crmsync_worker::runs::preview(
            &state.db,
            &state.queue,
            state.bus.as_ref(),
            tenant,
            connector_id,
            trigger,
            Proposed {
                mappings: mappings.as_deref(),
                rules: rules.as_deref(),
            },
        )
        .await?
    } else {
        crmsync_worker::runs::start_sync(
            &state.db,
            &state.queue,
            state.bus.as_ref(),
            tenant,
            connector_id,
            trigger,
            mode,
        )
        .await?
    };
    if let Some(key) = idempotency_key {
        idempotency::remember(&state.db, tenant, OPERATION, key, &run.id).await?;
    }
    Ok(run)
}

/// One of the tenant's runs, or NOT_FOUND.
pub async fn find(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<sync_run::Model, ApiError> {
    sync_run::Entity::find_for_tenant(tenant, id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("sync run"))
}

/// Cancels a run.
pub async fn cancel(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<sync_run::Model, ApiError> {
    find(state, tenant, id).await?;
    Ok(crmsync_worker::runs::cancel_sync(&state.db, state.bus.as_ref(), tenant, id).await?)
}

/// A new run retrying the rejected contacts of a run.
pub async fn retry_rejected(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<sync_run::Model, ApiError> {
    find(state, tenant, id).await?;
    Ok(crmsync_worker::runs::retry_rejected(
        &state.db,
        &state.queue,
        state.bus.as_ref(),
        tenant,
        id,
    )
    .await?)
}
