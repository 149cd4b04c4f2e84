//! Partner webhooks (R5): create (the signing secret shown once), update,
//! delete, rotate the secret; their delivery log is read through the
//! GraphQL types. Secrets are sealed with the credentials key, bound to the
//! tenant and webhook, and never returned again nor written to the audit log.

use chrono::Utc;
use crmsync_entity::models::webhook;
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_worker::notify::{EVENTS, generate_secret};
use sea_orm::{ActiveModelTrait, ModelTrait, Set, TransactionTrait};
use secrecy::SecretString;

use crate::ApiState;
use crate::audit::{self, Actor};
use crate::error::ApiError;
use crate::patch::Patch;

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A new webhook as a client sends it.
#[derive(Debug, Default)]
pub struct NewWebhook {
    /// Where events are POSTed.
    pub url: String,
    /// The events it receives; none: all of them.
    pub events: Option<Vec<String>>,
    /// What it is for.
    pub description: Option<String>,
}

/// Changes to a webhook: what is left out is kept.
#[derive(Debug, Default)]
pub struct WebhookUpdate {
    /// A new URL.
    pub url: Option<String>,
    /// A new list of events.
    pub events: Option<Vec<String>>,
    /// On or off.
    pub enabled: Option<bool>,
    /// A new description, or null to clear it.
    pub description: Patch<String>,
}

/// Creates a webhook; returns it and its signing secret, which is shown this once.
pub async fn create(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    new: NewWebhook,
) -> Result<(webhook::Model, String), ApiError> {
    let url = check_url(state, &new.url, "input.url")?;
    let events = check_events(new.events, "input.events")?;
    let description = check_description(new.description, "input.description")?;
    let id = crmsync_entity::new_id();
    let secret = generate_secret();
    let sealed = state.credentials_key.seal_webhook_secret(
        tenant.as_str(),
        &id,
        &SecretString::from(secret.clone()),
    );
    let now = Utc::now();
    let txn = state.db.begin().await?;
    let model = webhook::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.as_str().to_owned()),
        url: Set(url),
        events: Set(serde_json::json!(events)),
        description: Set(description),
        enabled: Set(true),
        secret: Set(sealed),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "webhook.create",
        "webhook",
        &model.id,
        serde_json::json!({ "url": model.url, "events": model.events }),
    )
    .await?;
    txn.commit().await?;
    Ok((model, secret))
}

/// Changes a webhook's URL, events, state or description.
pub async fn update(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    update: WebhookUpdate,
) -> Result<webhook::Model, ApiError> {
    let current = find(state, tenant, id).await?;
    let mut row = webhook::ActiveModel::from(current);
    let mut changed = serde_json::Map::new();
    if let Some(url) = update.url {
        let url = check_url(state, &url, "input.url")?;
        changed.insert("url".into(), url.clone().into());
        row.url = Set(url);
    }
    if update.events.is_some() {
        let events = check_events(update.events, "input.events")?;
        changed.insert("events".into(), serde_json::json!(events));
        row.events = Set(serde_json::json!(events));
    }
    if let Some(enabled) = update.enabled {
        changed.insert("enabled".into(), enabled.into());
        row.enabled = Set(enabled);
    }
    match update.description {
        Patch::Keep => {}
        Patch::Clear => {
            changed.insert("description".into(), serde_json::Value::Null);
            row.description = Set(None);
        }
        Patch::Set(text) => {
            let text = check_description(Some(text), "input.description")?;
            changed.insert("description".into(), text.clone().into());
            row.description = Set(text);
        }
    }
    row.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "webhook.update",
        "webhook",
        id,
        serde_json::Value::Object(changed),
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Deletes a webhook with its delivery log; pending deliveries are not sent.
pub async fn delete(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
) -> Result<(), ApiError> {
    let model = find(state, tenant, id).await?;
    let txn = state.db.begin().await?;
    let url = model.url.clone();
    model.delete(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "webhook.delete",
        "webhook",
        id,
        serde_json::json!({ "url": url }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Replaces the signing secret; returns the webhook and the new secret, shown
/// this once. Deliveries attempted from now on are signed with it, retries of
/// earlier ones included.
pub async fn rotate_secret(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
) -> Result<(webhook::Model, String), ApiError> {
    let current = find(state, tenant, id).await?;
    let secret = generate_secret();
    let mut row = webhook::ActiveModel::from(current);
    row.secret = Set(state.credentials_key.seal_webhook_secret(
        tenant.as_str(),
        id,
        &SecretString::from(secret.clone()),
    ));
    row.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "webhook.rotate_secret",
        "webhook",
        id,
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok((saved, secret))
}

/// One of the tenant's webhooks, or NOT_FOUND.
pub async fn find(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<webhook::Model, ApiError> {
    webhook::Entity::find_for_tenant(tenant, id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("webhook"))
}

/// An absolute http or https URL with a host and no user name or password in
/// it (they would show in the webhook's `url` to everyone who reads it), whose
/// host the outbound rule allows as written (names are checked again at each
/// delivery, once resolved).
fn check_url(state: &ApiState, url: &str, field: &str) -> Result<String, ApiError> {
    let url = check_url_form(url, field)?;
    state
        .http
        .egress()
        .check_url(&url)
        .map_err(|e| ApiError::validation(field, e.to_string()))?;
    Ok(url)
}

fn check_url_form(url: &str, field: &str) -> Result<String, ApiError> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(ApiError::validation(
            field,
            format!("must be an http:// or https:// URL of at most {MAX_URL_LEN} characters"),
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        ApiError::validation(
            field,
            format!("not a URL ({e}): expected e.g. https://hooks.example.com/crmsync"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::validation(
            field,
            format!(
                "the scheme is {}: webhooks are called over http:// or https:// only",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation(field, "the URL names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::validation(
            field,
            "put no user name or password in the URL: verify our signature instead",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(ApiError::validation(
            field,
            "a fragment (#...) is never sent: remove it",
        ));
    }
    Ok(url.to_owned())
}

/// Known event names, each once; none given: all of them.
fn check_events(events: Option<Vec<String>>, field: &str) -> Result<Vec<String>, ApiError> {
    let Some(events) = events else {
        return Ok(EVENTS.iter().map(|e| (*e).to_owned()).collect());
    };
    if events.is_empty() {
        return Err(ApiError::validation(
            field,
            "choose at least one event, or leave events out to receive all of them",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let event = event.trim().to_owned();
        if !EVENTS.contains(&event.as_str()) {
            return Err(ApiError::validation(
                format!("{field}[{i}]"),
                format!(
                    "unknown event \"{event}\": expected one of {}",
                    EVENTS.join(", ")
                ),
            ));
        }
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

fn check_description(text: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host_and_no_credentials() {
        assert!(check_url_form(" https://hooks.example.com/x?a=1 ", "f").is_ok());
        assert!(check_url_form("http://127.0.0.1:9000/hook", "f").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://hooks.example.com",
            "file:///etc/passwd",
            "https://user:pw@hooks.example.com",
            "https://hooks.example.com/#frag",
        ] {
            let err = check_url_form(bad, "input.url").unwrap_err();
            assert!(
                matches!(&err, ApiError::Validation { field, .. } if field == "input.url"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn events_are_known_names_without_duplicates_and_default_to_all() {
        assert_eq!(check_events(None, "f").unwrap(), EVENTS.to_vec());
        assert_eq!(
            check_events(
                Some(vec!["sync.finished".into(), "sync.finished".into()]),
                "f"
            )
            .unwrap(),
            vec!["sync.finished"]
        );
        let err = check_events(
            Some(vec!["sync.finished".into(), "sync.exploded".into()]),
            "input.events",
        )
        .unwrap_err();
        assert!(
            matches!(&err, ApiError::Validation { field, .. } if field == "input.events[1]"),
            "{err:?}"
        );
        assert!(check_events(Some(vec![]), "f").is_err());
    }
}
