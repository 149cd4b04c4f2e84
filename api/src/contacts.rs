//! Platform contacts (P1): upsert by e-mail, and form submissions that also
//! trigger a sync of each enabled connector (S3).

use chrono::Utc;
use crmsync_entity::enums::Lifecycle;
use crmsync_entity::models::contact;
use crmsync_entity::{Email, TenantId, TenantScoped};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, QueryFilter, Set};

use crate::ApiState;
use crate::error::ApiError;
use crate::patch::Patch;

/// The longest free-text value we store.
const MAX_TEXT: usize = 1000;

/// An upsert by e-mail: fields left out are kept, an explicit null clears.
#[derive(Debug, Clone, Default)]
pub struct ContactUpsert {
    /// The identity (S1); normalised.
    pub email: String,
    /// First name.
    pub first_name: Patch<String>,
    /// Last name.
    pub last_name: Patch<String>,
    /// Company.
    pub company: Patch<String>,
    /// Phone.
    pub phone: Patch<String>,
    /// Job title.
    pub job_title: Patch<String>,
    /// Source.
    pub source: Patch<String>,
    /// Behaviour score; null resets it to 0.
    pub behaviour_score: Patch<i32>,
    /// Marketing state.
    pub state: Patch<String>,
    /// PROSPECT or CLIENT; null resets it to PROSPECT.
    pub lifecycle: Patch<String>,
    /// Opted out; null resets it to false.
    pub opted_out: Patch<bool>,
    /// Owner's e-mail.
    pub owner_email: Patch<String>,
    /// Custom fields (a JSON object); null empties them.
    pub custom_fields: Patch<serde_json::Value>,
}

/// Creates or updates the tenant's contact with this e-mail. `prefix` is the
/// input path of the contact (`input`, `input.contact`) for error fields.
pub async fn upsert_contact(
    db: &DatabaseConnection,
    tenant: &TenantId,
    input: ContactUpsert,
    prefix: &str,
) -> Result<contact::Model, ApiError> {
    let at = |field: &str| format!("{prefix}.{field}");
    let email =
        Email::parse(&input.email).map_err(|e| ApiError::validation(at("email"), e.to_string()))?;
    for (name, patch) in [
        ("firstName", &input.first_name),
        ("lastName", &input.last_name),
        ("company", &input.company),
        ("phone", &input.phone),
        ("jobTitle", &input.job_title),
        ("source", &input.source),
        ("state", &input.state),
    ] {
        if patch.as_set().is_some_and(|v| v.chars().count() > MAX_TEXT) {
            return Err(ApiError::validation(
                at(name),
                format!("must be at most {MAX_TEXT} characters"),
            ));
        }
    }
    if input.behaviour_score.as_set().is_some_and(|s| *s < 0) {
        return Err(ApiError::validation(
            at("behaviourScore"),
            "must not be negative",
        ));
    }
    let lifecycle =
        match &input.lifecycle {
            Patch::Set(v) => Patch::Set(Lifecycle::parse(&v.to_uppercase()).ok_or_else(|| {
                ApiError::validation(at("lifecycle"), "must be PROSPECT or CLIENT")
            })?),
            Patch::Clear => Patch::Clear,
            Patch::Keep => Patch::Keep,
        };
    let owner_email = match input.owner_email {
        Patch::Set(v) => Patch::Set(
            Email::parse(&v)
                .map_err(|e| ApiError::validation(at("ownerEmail"), e.to_string()))?
                .into_string(),
        ),
        other => other,
    };
    if let Patch::Set(value) = &input.custom_fields {
        let Some(object) = value.as_object() else {
            return Err(ApiError::validation(
                at("customFields"),
                "must be a JSON object",
            ));
        };
        if let Some(bad) = object.keys().find(|k| {
            k.is_empty()
                || k.len() > 64
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }) {
            return Err(ApiError::validation(
                at("customFields"),
                format!("key \"{bad}\": use 1 to 64 lower-case letters, digits or '_'"),
            ));
        }
    }

    let existing = contact::Entity::for_tenant(tenant)
        .filter(contact::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    let now = Utc::now();
    let is_new = existing.is_none();
    let mut row = match existing {
        Some(model) => contact::ActiveModel::from(model),
        None => contact::ActiveModel {
            id: Set(crmsync_entity::new_id()),
            tenant_id: Set(tenant.as_str().to_owned()),
            email: Set(email.as_str().to_owned()),
            first_name: Set(None),
            last_name: Set(None),
            company: Set(None),
            phone: Set(None),
            job_title: Set(None),
            source: Set(None),
            behaviour_score: Set(0),
            state: Set(None),
            lifecycle: Set(Lifecycle::Prospect),
            opted_out: Set(false),
            owner_email: Set(None),
            custom_fields: Set(serde_json::json!({})),
            created_at: Set(now),
            updated_at: Set(now),
        },
    };
    fn text(field: &mut sea_orm::ActiveValue<Option<String>>, patch: Patch<String>) {
        if !patch.is_keep() {
            let current = field.clone().unwrap();
            *field = Set(patch.apply(current).map(|v| v.trim().to_owned()));
        }
    }
    text(&mut row.first_name, input.first_name);
    text(&mut row.last_name, input.last_name);
    text(&mut row.company, input.company);
    text(&mut row.phone, input.phone);
    text(&mut row.job_title, input.job_title);
    text(&mut row.source, input.source);
    text(&mut row.state, input.state);
    text(&mut row.owner_email, owner_email);
    match input.behaviour_score {
        Patch::Keep => {}
        Patch::Clear => row.behaviour_score = Set(0),
        Patch::Set(v) => row.behaviour_score = Set(v),
    }
    match lifecycle {
        Patch::Keep => {}
        Patch::Clear => row.lifecycle = Set(Lifecycle::Prospect),
        Patch::Set(v) => row.lifecycle = Set(v),
    }
    match input.opted_out {
        Patch::Keep => {}
        Patch::Clear => row.opted_out = Set(false),
        Patch::Set(v) => row.opted_out = Set(v),
    }
    match input.custom_fields {
        Patch::Keep => {}
        Patch::Clear => row.custom_fields = Set(serde_json::json!({})),
        Patch::Set(v) => row.custom_fields = Set(v),
    }
    row.updated_at = Set(now);
    let saved = if is_new {
        row.insert(db).await?
    } else {
        row.update(db).await?
    };
    Ok(saved)
}

/// A form submission: upserts the contact, then pushes it alone, within
/// seconds, to every enabled connector whose export filter it passes (a FORM
/// run; submissions close together share one).
pub async fn submit_form(
    state: &ApiState,
    tenant: &TenantId,
    form: &str,
    input: ContactUpsert,
) -> Result<contact::Model, ApiError> {
    if form.trim().is_empty() || form.len() > 200 {
        return Err(ApiError::validation(
            "input.form",
            "must be 1 to 200 characters",
        ));
    }
    let contact = upsert_contact(&state.db, tenant, input, "input.contact").await?;
    let runs = crmsync_worker::runs::push_contact(
        &state.db,
        &state.queue,
        state.bus.as_ref(),
        tenant,
        &contact,
    )
    .await?;
    for run in &runs {
        tracing::info!(run_id = %run.id, connector_id = %run.connector_id, form, "form submission: contact pushed");
    }
    Ok(contact)
}
