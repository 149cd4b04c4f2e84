//! Tenants (T1): created by operators, found by slug when a token names one.

use chrono::Utc;
use crmsync_entity::TenantId;
use crmsync_entity::models::tenant;
use crmsync_worker::retention::{self, Retention};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::audit::{self, Actor};
use crate::error::ApiError;

/// A retention as given: each value left out keeps what the tenant has (or
/// the default, for a new tenant).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionPatch {
    /// Days of sync items.
    pub sync_items_days: Option<i32>,
    /// Days of deliveries.
    pub deliveries_days: Option<i32>,
    /// Days of audit rows.
    pub audit_days: Option<i32>,
}

impl RetentionPatch {
    /// `base` with the values given, validated; a refusal names the field
    /// under `path` (`input`, `input.retention`).
    pub fn apply(&self, base: Retention, path: &str) -> Result<Retention, ApiError> {
        let retention = Retention {
            sync_items_days: self.sync_items_days.unwrap_or(base.sync_items_days),
            deliveries_days: self.deliveries_days.unwrap_or(base.deliveries_days),
            audit_days: self.audit_days.unwrap_or(base.audit_days),
        };
        retention
            .validate()
            .map_err(|e| ApiError::validation(format!("{path}.{}", e.field), e.reason))?;
        Ok(retention)
    }
}

/// Creates a tenant. The slug is 2-63 characters of lower-case letters, digits
/// and `-`, starting with a letter; a taken slug is a CONFLICT.
pub async fn create_tenant(
    db: &impl ConnectionTrait,
    name: &str,
    slug: &str,
    retention: RetentionPatch,
) -> Result<tenant::Model, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::validation(
            "input.name",
            "must be 1 to 200 characters",
        ));
    }
    let valid_slug = (2..=63).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_slug {
        return Err(ApiError::validation(
            "input.slug",
            "must be 2 to 63 lower-case letters, digits or '-', starting with a letter",
        ));
    }
    let retention = retention.apply(Retention::default(), "input.retention")?;
    if find_by_slug(db, slug).await?.is_some() {
        return Err(ApiError::Conflict(format!("the slug \"{slug}\" is taken")));
    }
    let model = tenant::ActiveModel {
        id: Set(crmsync_entity::new_id()),
        name: Set(name.to_owned()),
        slug: Set(slug.to_owned()),
        created_at: Set(Utc::now()),
        retention_sync_items_days: Set(retention.sync_items_days),
        retention_deliveries_days: Set(retention.deliveries_days),
        retention_audit_days: Set(retention.audit_days),
    }
    .insert(db)
    .await?;
    Ok(model)
}

/// The tenant with this slug, if any.
pub async fn find_by_slug(
    db: &impl ConnectionTrait,
    slug: &str,
) -> Result<Option<tenant::Model>, ApiError> {
    Ok(tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug))
        .one(db)
        .await?)
}

/// Changes the tenant's retention (bounded history): the values given, each
/// 1 to 3650 days; the pruner applies them at its next pass.
pub async fn set_retention(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    actor: &Actor,
    patch: RetentionPatch,
) -> Result<tenant::Model, ApiError> {
    let current = tenant::Entity::find_by_id(tenant.as_str().to_owned())
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let retention = patch.apply(Retention::of(&current), "input")?;
    let updated = retention::set(db, tenant, retention)
        .await
        .map_err(|e| match e {
            retention::SetError::Invalid(e) => {
                ApiError::validation(format!("input.{}", e.field), e.reason)
            }
            retention::SetError::Db(e) => e.into(),
        })?
        .ok_or(ApiError::NotFound("tenant"))?;
    audit::record(
        db,
        tenant,
        actor,
        "tenant.retention",
        "tenant",
        tenant.as_str(),
        serde_json::json!({
            "syncItemsDays": retention.sync_items_days,
            "deliveriesDays": retention.deliveries_days,
            "auditDays": retention.audit_days,
        }),
    )
    .await?;
    Ok(updated)
}
