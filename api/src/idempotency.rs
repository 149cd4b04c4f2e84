//! Idempotency keys: a replay of `createConnector` or `startSync` within 24 h
//! returns what the first call made.

use chrono::{Duration, Utc};
use crmsync_entity::TenantId;
use crmsync_entity::models::idempotency_key;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

use crate::error::ApiError;

/// How long a key is remembered.
pub(crate) const WINDOW_HOURS: i64 = 24;

/// Checks a key's shape: 1 to 200 printable characters.
pub(crate) fn check(key: &str, field: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(())
}

/// The id the first call with this key produced, if within the window.
pub(crate) async fn lookup(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    operation: &str,
    key: &str,
) -> Result<Option<String>, ApiError> {
    let row = idempotency_key::Entity::find_by_id((
        tenant.as_str().to_owned(),
        operation.to_owned(),
        key.to_owned(),
    ))
    .one(db)
    .await?;
    Ok(row
        .filter(|r| r.created_at > Utc::now() - Duration::hours(WINDOW_HOURS))
        .map(|r| r.result_id))
}

/// Remembers what a key produced (replacing an expired entry).
pub(crate) async fn remember(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    operation: &str,
    key: &str,
    result_id: &str,
) -> Result<(), ApiError> {
    idempotency_key::Entity::delete_by_id((
        tenant.as_str().to_owned(),
        operation.to_owned(),
        key.to_owned(),
    ))
    .exec(db)
    .await?;
    idempotency_key::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        operation: Set(operation.to_owned()),
        key: Set(key.to_owned()),
        result_id: Set(result_id.to_owned()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
