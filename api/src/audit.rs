//! The audit log of configuration changes: who, what, when.

use chrono::Utc;
use crmsync_entity::TenantId;
use crmsync_entity::models::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use crate::error::ApiError;

/// Who did a change, for the audit log: the token's subject or `apikey:<id>`.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Records one change. `detail` never holds secrets.
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    audit_log::ActiveModel {
        id: Set(crmsync_entity::new_id()),
        tenant_id: Set(tenant.as_str().to_owned()),
        actor: Set(actor.0.clone()),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id.to_owned()),
        detail: Set(detail),
        at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
