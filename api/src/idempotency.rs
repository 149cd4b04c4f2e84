//! Idempotency keys: a replay of `createConnector` or `startSync` within 24 h
//! returns what the first call made; the same key with other input is
//! refused, since answering it with the first call's result would hide that
//! the second request was never carried out.

use chrono::{Duration, Utc};
use crmsync_entity::TenantId;
use crmsync_entity::models::idempotency_key;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};

use crate::ApiState;
use crate::error::ApiError;

/// How long a key is remembered.
pub(crate) const WINDOW_HOURS: i64 = 24;

/// The input path of the key in both mutations.
const FIELD: &str = "input.idempotencyKey";

/// A client's idempotency key and a fingerprint of the input it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The key as the client sent it.
    pub key: String,
    /// A keyed hash of the call's canonical input, the key left out.
    pub fingerprint: String,
}

impl IdempotencyKey {
    /// The key sent with the GraphQL input object `input`. The object in
    /// canonical form (fields in schema order, defaults filled in, variables
    /// and literals alike) is hashed with the credentials key: inputs carry
    /// CRM credentials, and the stored fingerprint must not let a reader of
    /// the database test guesses of them.
    pub(crate) fn new(state: &ApiState, key: String, input: async_graphql::Value) -> Self {
        let canonical = match input {
            async_graphql::Value::Object(mut fields) => {
                fields.shift_remove("idempotencyKey");
                async_graphql::Value::Object(fields)
            }
            other => other,
        };
        let bytes = serde_json::to_vec(&canonical).expect("GraphQL values serialise");
        let fingerprint = state
            .credentials_key
            .fingerprint("idempotency-input", &bytes);
        Self { key, fingerprint }
    }
}

/// Checks a key's shape: 1 to 200 printable characters.
pub(crate) fn check(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        return Err(ApiError::validation(
            FIELD,
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(())
}

/// The id the first call with this key produced, if within the window; an
/// error when that call had other input.
pub(crate) async fn lookup(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    operation: &str,
    key: &IdempotencyKey,
) -> Result<Option<String>, ApiError> {
    let row = idempotency_key::Entity::find_by_id((
        tenant.as_str().to_owned(),
        operation.to_owned(),
        key.key.clone(),
    ))
    .one(db)
    .await?
    .filter(|r| r.created_at > Utc::now() - Duration::hours(WINDOW_HOURS));
    let Some(row) = row else {
        return Ok(None);
    };
    // Keys stored before fingerprints were recorded have none: they replay
    // as they always did until they expire.
    if row
        .input_fingerprint
        .as_deref()
        .is_some_and(|f| f != key.fingerprint)
    {
        return Err(ApiError::validation(
            FIELD,
            format!(
                "this key was used in the last {WINDOW_HOURS} h with different input: send a new key for a different request, or the same input to replay"
            ),
        ));
    }
    Ok(Some(row.result_id))
}

/// Remembers what a key produced (replacing an expired entry).
pub(crate) async fn remember(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    operation: &str,
    key: &IdempotencyKey,
    result_id: &str,
) -> Result<(), ApiError> {
    idempotency_key::Entity::delete_by_id((
        tenant.as_str().to_owned(),
        operation.to_owned(),
        key.key.clone(),
    ))
    .exec(db)
    .await?;
    idempotency_key::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        operation: Set(operation.to_owned()),
        key: Set(key.key.clone()),
        result_id: Set(result_id.to_owned()),
        input_fingerprint: Set(Some(key.fingerprint.clone())),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
