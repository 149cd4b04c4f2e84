//! The platform contact as decision values, and decision values written back
//! onto a contact row.

use chrono::{DateTime, Utc};
use crmsync_entity::enums::Lifecycle;
use crmsync_entity::models::contact;
use sea_orm::ActiveValue::Set;
use serde_json::{Map, Value};

use crate::decide::Values;

/// The contact's values by platform field (custom fields as `custom.<key>`).
pub(crate) fn contact_values(c: &contact::Model, platform_url: &str) -> Values {
    let mut v = Values::new();
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    v.insert("email".into(), Value::String(c.email.clone()));
    v.insert("first_name".into(), text(&c.first_name));
    v.insert("last_name".into(), text(&c.last_name));
    v.insert("company".into(), text(&c.company));
    v.insert("phone".into(), text(&c.phone));
    v.insert("job_title".into(), text(&c.job_title));
    v.insert("source".into(), text(&c.source));
    v.insert("behaviour_score".into(), Value::from(c.behaviour_score));
    v.insert("state".into(), text(&c.state));
    v.insert(
        "lifecycle".into(),
        Value::String(c.lifecycle.as_str().to_owned()),
    );
    v.insert("opted_out".into(), Value::Bool(c.opted_out));
    v.insert("owner_email".into(), text(&c.owner_email));
    v.insert(
        "platform_url".into(),
        Value::String(format!(
            "{}/contacts/{}",
            platform_url.trim_end_matches('/'),
            c.id
        )),
    );
    if let Some(custom) = c.custom_fields.as_object() {
        for (k, value) in custom {
            v.insert(format!("custom.{k}"), value.clone());
        }
    }
    v
}

fn opt_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().to_owned()),
        other => Some(other.to_string()),
    }
}

/// A new contact from values flowing in (the e-mail already validated).
pub(crate) fn new_contact(
    tenant_id: &str,
    email: &str,
    values: &Values,
    now: DateTime<Utc>,
) -> contact::Model {
    let model = contact::Model {
        id: crmsync_entity::new_id(),
        tenant_id: tenant_id.to_owned(),
        email: email.to_owned(),
        first_name: None,
        last_name: None,
        company: None,
        phone: None,
        job_title: None,
        source: None,
        behaviour_score: 0,
        state: None,
        lifecycle: Lifecycle::Prospect,
        opted_out: false,
        owner_email: None,
        custom_fields: Value::Object(Map::new()),
        created_at: now,
        updated_at: now,
        archived_at: None,
    };
    let mut model = model;
    apply_values(&mut model, values);
    model.email = email.to_owned();
    model
}

/// Writes values flowing in onto a contact (computed fields are never written).
pub(crate) fn apply_values(c: &mut contact::Model, values: &Values) {
    for (field, value) in values {
        match field.as_str() {
            "email" => {
                if let Some(e) = opt_text(value) {
                    c.email = e.to_lowercase();
                }
            }
            "first_name" => c.first_name = opt_text(value),
            "last_name" => c.last_name = opt_text(value),
            "company" => c.company = opt_text(value),
            "phone" => c.phone = opt_text(value),
            "job_title" => c.job_title = opt_text(value),
            "source" => c.source = opt_text(value),
            "owner_email" => c.owner_email = opt_text(value).map(|s| s.to_lowercase()),
            "opted_out" => c.opted_out = value.as_bool().unwrap_or(false),
            "lifecycle" => {
                if let Some(l) = value.as_str().and_then(Lifecycle::parse) {
                    c.lifecycle = l;
                }
            }
            other => {
                if let Some(key) = other.strip_prefix("custom.") {
                    let mut custom = c.custom_fields.as_object().cloned().unwrap_or_default();
                    if value.is_null() {
                        custom.remove(key);
                    } else {
                        custom.insert(key.to_owned(), value.clone());
                    }
                    c.custom_fields = Value::Object(custom);
                }
            }
        }
    }
}

/// The active model that updates a contact to `updated`.
pub(crate) fn update_model(updated: contact::Model, now: DateTime<Utc>) -> contact::ActiveModel {
    let mut am = contact::ActiveModel::from(updated.clone());
    // Every column set: one statement, whatever changed.
    am.email = Set(updated.email);
    am.first_name = Set(updated.first_name);
    am.last_name = Set(updated.last_name);
    am.company = Set(updated.company);
    am.phone = Set(updated.phone);
    am.job_title = Set(updated.job_title);
    am.source = Set(updated.source);
    am.owner_email = Set(updated.owner_email);
    am.opted_out = Set(updated.opted_out);
    am.lifecycle = Set(updated.lifecycle);
    am.custom_fields = Set(updated.custom_fields);
    am.updated_at = Set(now);
    am
}
