//! Platform contacts (P1): upsert by e-mail, and form submissions that also
//! trigger a sync of each enabled connector (S3).

use chrono::Utc;
use crmsync_entity::enums::Lifecycle;
use crmsync_entity::models::{consent_event, contact};
use crmsync_entity::{Email, TenantId, TenantScoped};
use sea_orm::sea_query::LikeExpr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, QueryFilter, Set,
    TransactionTrait,
};

use crate::ApiState;
use crate::error::ApiError;
use crate::patch::Patch;

/// The longest free-text value we store.
const MAX_TEXT: usize = 1000;

/// The longest search term: longer ones find nothing a shorter one would not,
/// and SQLite refuses LIKE patterns of 50,000 bytes.
pub(crate) const MAX_SEARCH: usize = 200;

/// The escape character of search patterns (the same on SQLite and PostgreSQL).
const LIKE_ESCAPE: char = '\\';

/// The filter of `contacts(search:)`: contacts whose e-mail, names or company
/// contain the term literally (`%` and `_` are no wildcards). `None` for a
/// blank term, which lists everyone.
pub(crate) fn search_filter(term: &str) -> Result<Option<Condition>, ApiError> {
    let term = term.trim();
    if term.chars().count() > MAX_SEARCH {
        return Err(ApiError::validation(
            "search",
            format!("must be at most {MAX_SEARCH} characters"),
        ));
    }
    if term.is_empty() {
        return Ok(None);
    }
    let contains = |column: contact::Column, text: &str| {
        let pattern = format!("%{}%", escape_like(text));
        column.like(LikeExpr::new(pattern).escape(LIKE_ESCAPE))
    };
    Ok(Some(
        Condition::any()
            .add(contains(contact::Column::Email, &term.to_lowercase()))
            .add(contains(contact::Column::FirstName, term))
            .add(contains(contact::Column::LastName, term))
            .add(contains(contact::Column::Company, term)),
    ))
}

/// `text` with LIKE's wildcards and the escape character escaped.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_') || c == LIKE_ESCAPE {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

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
        check_custom_fields(&at("customFields"), value)?;
    }

    let existing = contact::Entity::for_tenant(tenant)
        .filter(contact::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    let now = Utc::now();
    let is_new = existing.is_none();
    let opted_out_before = existing.as_ref().map(|c| c.opted_out);
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
            archived_at: Set(None),
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
    // The contact and its consent history change together (S9).
    let txn = db.begin().await?;
    let saved = if is_new {
        row.insert(&txn).await?
    } else {
        row.update(&txn).await?
    };
    let consent = consent_event::change(
        tenant.as_str(),
        &saved.id,
        opted_out_before,
        saved.opted_out,
        &consent_event::Source::platform(),
        now,
    );
    consent_event::record(&txn, consent.into_iter().collect()).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Archives (`archived: true`) or unarchives the tenant's contact `id`.
/// Archiving an archived contact keeps its first archive time; either change
/// moves `updated_at`, so an unarchived contact is exported by the next run.
pub async fn set_archived(
    db: &DatabaseConnection,
    tenant: &TenantId,
    id: &str,
    archived: bool,
) -> Result<contact::Model, ApiError> {
    let found = contact::Entity::find_for_tenant(tenant, id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    if found.archived_at.is_some() == archived {
        return Ok(found);
    }
    let now = Utc::now();
    let mut row = contact::ActiveModel::from(found);
    row.archived_at = Set(archived.then_some(now));
    row.updated_at = Set(now);
    Ok(row.update(db).await?)
}

/// The filter of `contacts(archived:)`: archived contacts only, or (the
/// default) those not archived.
pub(crate) fn archived_filter(archived: bool) -> Condition {
    let column = contact::Column::ArchivedAt;
    Condition::all().add(if archived {
        column.is_not_null()
    } else {
        column.is_null()
    })
}

/// At most this many custom fields per contact.
pub(crate) const MAX_CUSTOM_FIELDS: usize = 100;
/// The longest custom field key.
pub(crate) const MAX_CUSTOM_KEY: usize = 64;
/// The largest custom field value, serialized as JSON.
pub(crate) const MAX_CUSTOM_VALUE_BYTES: usize = 2 * 1024;
/// The largest custom field object, serialized as JSON.
pub(crate) const MAX_CUSTOM_TOTAL_BYTES: usize = 32 * 1024;

/// Custom fields must be a JSON object of at most [`MAX_CUSTOM_FIELDS`] plain
/// keys with small values: they are stored on every contact and sent to
/// CRMs, whose fields hold a few kilobytes at most. `path` names the input.
fn check_custom_fields(path: &str, value: &serde_json::Value) -> Result<(), ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::validation(path, "must be a JSON object"));
    };
    if object.len() > MAX_CUSTOM_FIELDS {
        return Err(ApiError::validation(
            path,
            format!(
                "has {} keys; at most {MAX_CUSTOM_FIELDS} are allowed",
                object.len()
            ),
        ));
    }
    for (key, value) in object {
        let plain = key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if key.is_empty() || key.len() > MAX_CUSTOM_KEY || !plain {
            let shown: String = key.chars().take(MAX_CUSTOM_KEY).collect();
            return Err(ApiError::validation(
                path,
                format!(
                    "key \"{shown}\": use 1 to {MAX_CUSTOM_KEY} lower-case letters, digits or '_'"
                ),
            ));
        }
        let size = value.to_string().len();
        if size > MAX_CUSTOM_VALUE_BYTES {
            return Err(ApiError::validation(
                format!("{path}.{key}"),
                format!("is {size} bytes as JSON; a value may be at most {MAX_CUSTOM_VALUE_BYTES}"),
            ));
        }
    }
    let total = value.to_string().len();
    if total > MAX_CUSTOM_TOTAL_BYTES {
        return Err(ApiError::validation(
            path,
            format!(
                "is {total} bytes as JSON; all custom fields together may be at most {MAX_CUSTOM_TOTAL_BYTES}"
            ),
        ));
    }
    Ok(())
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
