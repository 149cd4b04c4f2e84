//! Strict checks of v2 person bodies: real booleans, no numbers as strings, known
//! fields only, owners that are users of the company, option ids that exist.

use serde_json::{Map, Value};

use super::ApiError;
use super::model::{
    ADDRESS_PARTS, CONTACT_LABELS, Contact, Data, FieldType, MARKETING_STATUSES, PERSON_LABELS,
    PostalAddress, VISIBLE_TO,
};

/// The message Pipedrive gives for a missing or empty name.
pub const NAME_REQUIRED: &str = "Name must be given.";

/// The longest `notes` Pipedrive takes, in characters.
pub const MAX_NOTES_CHARS: usize = 10_000;

/// The fields of a create or update body, each checked; absent fields are None.
#[derive(Debug, Default)]
pub struct PersonInput {
    pub name: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub owner_id: Option<u64>,
    pub org_id: Option<Option<u64>>,
    pub emails: Option<Vec<Contact>>,
    pub phones: Option<Vec<Contact>>,
    pub visible_to: Option<u64>,
    pub label_ids: Option<Vec<u64>>,
    pub marketing_status: Option<String>,
    pub job_title: Option<Option<String>>,
    pub birthday: Option<Option<String>>,
    pub notes: Option<Option<String>>,
    pub im: Option<Vec<Contact>>,
    pub postal_address: Option<Option<PostalAddress>>,
    /// Creation time (create only), Unix seconds.
    pub add_time: Option<i64>,
    /// Custom field values by key; `Null` clears.
    pub custom_fields: Vec<(String, Value)>,
}

fn invalid(field: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!("Validation failed: {field}: {reason}"))
}

fn integer(value: &Value, field: &str) -> Result<u64, ApiError> {
    value
        .as_u64()
        .ok_or_else(|| invalid(field, "must be an integer"))
}

fn optional_string(value: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid(field, "must be a string")),
    }
}

/// Parses a create (`creating`) or update body against the company's users and fields.
pub fn person_input(body: &[u8], data: &Data, creating: bool) -> Result<PersonInput, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))?
    };
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "Validation failed: body: must be a JSON object",
        ));
    };
    let mut input = PersonInput::default();
    for (key, value) in &map {
        match key.as_str() {
            "name" => match value {
                Value::String(s) if !s.trim().is_empty() => input.name = Some(s.clone()),
                Value::String(_) | Value::Null => return Err(ApiError::bad_request(NAME_REQUIRED)),
                _ => return Err(invalid("name", "must be a string")),
            },
            "first_name" => input.first_name = Some(optional_string(value, "first_name")?),
            "last_name" => input.last_name = Some(optional_string(value, "last_name")?),
            "owner_id" => {
                let id = integer(value, "owner_id")?;
                if data.user(id).is_none() {
                    return Err(invalid(
                        "owner_id",
                        &format!("user {id} is not a user of this company"),
                    ));
                }
                input.owner_id = Some(id);
            }
            "org_id" => match value {
                Value::Null => input.org_id = Some(None),
                other => {
                    let id = integer(other, "org_id")?;
                    return Err(invalid("org_id", &format!("organization {id} not found")));
                }
            },
            "emails" => input.emails = Some(contacts(value, "emails", Some(CONTACT_LABELS))?),
            "phones" => input.phones = Some(contacts(value, "phones", Some(CONTACT_LABELS))?),
            "im" => input.im = Some(contacts(value, "im", None)?),
            "job_title" => input.job_title = Some(optional_string(value, "job_title")?),
            "notes" => {
                let notes = optional_string(value, "notes")?;
                if notes
                    .as_ref()
                    .is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS)
                {
                    return Err(invalid("notes", "must be at most 10000 characters"));
                }
                input.notes = Some(notes);
            }
            "birthday" => input.birthday = Some(birthday(value)?),
            "postal_address" => input.postal_address = Some(postal_address(value)?),
            "visible_to" => {
                let v = integer(value, "visible_to")?;
                if !VISIBLE_TO.contains(&v) {
                    return Err(invalid("visible_to", "must be one of 1, 3, 5, 7"));
                }
                input.visible_to = Some(v);
            }
            "label_ids" => {
                let Value::Array(items) = value else {
                    return Err(invalid("label_ids", "must be an array of integers"));
                };
                let mut ids = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let field = format!("label_ids[{i}]");
                    let id = integer(item, &field)?;
                    if !PERSON_LABELS.iter().any(|(l, _)| *l == id) {
                        return Err(invalid(&field, &format!("label {id} not found")));
                    }
                    ids.push(id);
                }
                input.label_ids = Some(ids);
            }
            "add_time" if creating => match value {
                Value::String(s) => {
                    let at = chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|_| invalid("add_time", "must be an RFC 3339 date-time"))?;
                    input.add_time = Some(at.timestamp());
                }
                _ => return Err(invalid("add_time", "must be an RFC 3339 date-time string")),
            },
            "marketing_status" => match value {
                Value::String(s) if MARKETING_STATUSES.contains(&s.as_str()) => {
                    input.marketing_status = Some(s.clone())
                }
                _ => {
                    return Err(invalid(
                        "marketing_status",
                        "must be one of no_consent, unsubscribed, subscribed, archived",
                    ));
                }
            },
            "custom_fields" => input.custom_fields = custom_fields(value, data)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Validation failed: {other}: unknown field"
                )));
            }
        }
    }
    if creating && input.name.is_none() {
        return Err(ApiError::bad_request(NAME_REQUIRED));
    }
    Ok(input)
}

/// A `YYYY-MM-DD` date that exists, or null.
fn birthday(value: &Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s)
            if s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() =>
        {
            Ok(Some(s.clone()))
        }
        _ => Err(invalid("birthday", "must be a date YYYY-MM-DD")),
    }
}

/// An address object (`value` and components, each a string or null), or null to clear.
fn postal_address(value: &Value) -> Result<Option<PostalAddress>, ApiError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => {
            return Err(invalid(
                "postal_address",
                "must be an object with value and address components",
            ));
        }
    };
    for (key, part) in map {
        let at = format!("postal_address.{key}");
        if !ADDRESS_PARTS.contains(&key.as_str()) {
            return Err(invalid(&at, "unknown field"));
        }
        if !(part.is_string() || part.is_null()) {
            return Err(invalid(&at, "must be a string"));
        }
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|e| invalid("postal_address", &e.to_string()))
}

/// A list of `{value, primary, label}`: e-mails and phones take `labels` only, instant
/// messaging accounts (`labels` None) any non-empty label.
fn contacts(value: &Value, field: &str, labels: Option<&[&str]>) -> Result<Vec<Contact>, ApiError> {
    let Value::Array(items) = value else {
        return Err(invalid(
            field,
            "must be an array of objects with value, primary and label",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Value::Object(obj) = item else {
            return Err(invalid(
                &at,
                "must be an object with value, primary and label",
            ));
        };
        let mut contact = Contact {
            value: String::new(),
            primary: false,
            label: "work".into(),
        };
        let mut has_value = false;
        for (key, v) in obj {
            match (key.as_str(), v) {
                ("value", Value::String(s)) => {
                    contact.value = s.clone();
                    has_value = true;
                }
                ("value", _) => return Err(invalid(&format!("{at}.value"), "must be a string")),
                ("primary", Value::Bool(b)) => contact.primary = *b,
                ("primary", _) => {
                    return Err(invalid(&format!("{at}.primary"), "must be a boolean"));
                }
                ("label", Value::String(s))
                    if labels.map_or(!s.trim().is_empty(), |l| l.contains(&s.as_str())) =>
                {
                    contact.label = s.clone()
                }
                ("label", _) => {
                    let reason = match labels {
                        Some(l) => format!("must be one of {}", l.join(", ")),
                        None => "must be a non-empty string".to_owned(),
                    };
                    return Err(invalid(&format!("{at}.label"), &reason));
                }
                (other, _) => return Err(invalid(&format!("{at}.{other}"), "unknown field")),
            }
        }
        if !has_value {
            return Err(invalid(&format!("{at}.value"), "is required"));
        }
        out.push(contact);
    }
    // As Pipedrive does, the first entry becomes primary when none is marked.
    if !out.is_empty() && !out.iter().any(|c| c.primary) {
        out[0].primary = true;
    }
    Ok(out)
}

fn custom_fields(value: &Value, data: &Data) -> Result<Vec<(String, Value)>, ApiError> {
    let Value::Object(map) = value else {
        return Err(invalid(
            "custom_fields",
            "must be an object keyed by field key",
        ));
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        let at = format!("custom_fields.{key}");
        let Some(field) = data.field(key) else {
            return Err(invalid(&at, "unknown custom field key"));
        };
        let checked = match (field.field_type, v) {
            (_, Value::Null) => Value::Null,
            (t, Value::String(_)) if t.is_text() => v.clone(),
            (t, _) if t.is_text() => return Err(invalid(&at, "must be a string")),
            (FieldType::Double, Value::Number(_)) => v.clone(),
            (FieldType::Double, _) => return Err(invalid(&at, "must be a number")),
            (FieldType::Enum, _) => {
                let id = integer(v, &at)?;
                if field.option(id).is_none() {
                    return Err(invalid(&at, &format!("option {id} not found")));
                }
                v.clone()
            }
            (FieldType::Set, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let id = integer(item, &format!("{at}[{i}]"))?;
                    if field.option(id).is_none() {
                        return Err(invalid(
                            &format!("{at}[{i}]"),
                            &format!("option {id} not found"),
                        ));
                    }
                }
                v.clone()
            }
            (FieldType::Set, _) => return Err(invalid(&at, "must be an array of option ids")),
            (FieldType::Date, Value::String(s))
                if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10 =>
            {
                v.clone()
            }
            (FieldType::Date, _) => return Err(invalid(&at, "must be a date YYYY-MM-DD")),
            _ => return Err(invalid(&at, "unsupported value")),
        };
        out.push((key.clone(), checked));
    }
    Ok(out)
}

/// First and last name from a full name: split at the first space.
pub fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
        None => (Some(name.to_owned()), None),
    }
}
