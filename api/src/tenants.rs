//! Tenants (T1): created by operators, found by slug when a token names one.

use chrono::Utc;
use crmsync_entity::models::tenant;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::error::ApiError;

/// Creates a tenant. The slug is 2-63 characters of lower-case letters, digits
/// and `-`, starting with a letter; a taken slug is a CONFLICT.
pub async fn create_tenant(
    db: &impl ConnectionTrait,
    name: &str,
    slug: &str,
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
    if find_by_slug(db, slug).await?.is_some() {
        return Err(ApiError::Conflict(format!("the slug \"{slug}\" is taken")));
    }
    let model = tenant::ActiveModel {
        id: Set(crmsync_entity::new_id()),
        name: Set(name.to_owned()),
        slug: Set(slug.to_owned()),
        created_at: Set(Utc::now()),
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
