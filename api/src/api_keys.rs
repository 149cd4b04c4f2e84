//! Partner API keys (T2): shown once, stored as SHA-256, revocable.

use chrono::Utc;
use crmsync_entity::enums::Role;
use crmsync_entity::models::api_key;
use crmsync_entity::{TenantId, TenantScoped};
use sea_orm::{ActiveModelTrait, Set, TransactionTrait};

use crate::ApiState;
use crate::audit::{self, Actor};
use crate::auth;
use crate::error::ApiError;

/// Creates a key; returns the row and the secret, which is never stored.
pub async fn create(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    name: &str,
    role: Role,
) -> Result<(api_key::Model, String), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation(
            "input.name",
            "must be 1 to 200 characters",
        ));
    }
    if role == Role::Operator {
        return Err(ApiError::validation(
            "input.role",
            "API keys act for a tenant: ADMIN or VIEWER",
        ));
    }
    let secret = auth::generate_api_key(tenant);
    let txn = state.db.begin().await?;
    let model = api_key::ActiveModel {
        id: Set(crmsync_entity::new_id()),
        tenant_id: Set(tenant.as_str().to_owned()),
        name: Set(name.to_owned()),
        role: Set(role),
        key_hash: Set(auth::hash_api_key(&secret)),
        created_by: Set(actor.0.clone()),
        created_at: Set(Utc::now()),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "api_key.create",
        "api_key",
        &model.id,
        serde_json::json!({ "name": name, "role": role.as_str() }),
    )
    .await?;
    txn.commit().await?;
    Ok((model, secret))
}

/// Revokes a key; revoking twice keeps the first revocation time.
pub async fn revoke(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
) -> Result<api_key::Model, ApiError> {
    let model = api_key::Entity::find_for_tenant(tenant, id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("API key"))?;
    if model.revoked_at.is_some() {
        return Ok(model);
    }
    let txn = state.db.begin().await?;
    let mut row = api_key::ActiveModel::from(model);
    row.revoked_at = Set(Some(Utc::now()));
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "api_key.revoke",
        "api_key",
        id,
        serde_json::json!({ "name": saved.name }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}
