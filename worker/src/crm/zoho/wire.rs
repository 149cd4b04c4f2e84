//! Zoho CRM v8 JSON shapes and their translation to and from normalised records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::crm::{
    Conversion, CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord, FieldType, PicklistOption,
    WriteResult,
};

/// The accounts server's token reply; errors come back with HTTP 200 and `error`.
#[derive(Debug, Deserialize)]
pub(super) struct TokenReply {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub api_domain: Option<String>,
    pub expires_in: Option<u64>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// One entry of `settings/fields`.
#[derive(Debug, Deserialize)]
pub(super) struct WireField {
    pub api_name: String,
    #[serde(default)]
    pub field_label: Option<String>,
    #[serde(default)]
    pub display_label: Option<String>,
    #[serde(default)]
    pub data_type: String,
    #[serde(default)]
    pub custom_field: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub field_read_only: bool,
    #[serde(default)]
    pub system_mandatory: bool,
    #[serde(default)]
    pub pick_list_values: Vec<WirePicklistValue>,
}

/// One picklist option: Zoho compares `actual_value`, people see `display_value`.
#[derive(Debug, Deserialize)]
pub(super) struct WirePicklistValue {
    #[serde(default)]
    pub display_value: Option<String>,
    pub actual_value: String,
}

/// One entry of `users`.
#[derive(Debug, Deserialize)]
pub(super) struct WireUser {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

pub(super) fn field_type(data_type: &str) -> FieldType {
    match data_type {
        "text" | "textarea" | "autonumber" => FieldType::Text,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "website" => FieldType::Url,
        "integer" | "bigint" => FieldType::Integer,
        "double" | "currency" | "percent" | "decimal" => FieldType::Number,
        "boolean" => FieldType::Boolean,
        "date" => FieldType::Date,
        "datetime" => FieldType::DateTime,
        "picklist" => FieldType::Picklist,
        "multiselectpicklist" => FieldType::MultiPicklist,
        "ownerlookup" | "userlookup" => FieldType::User,
        "lookup" => FieldType::Lookup,
        _ => FieldType::Other,
    }
}

pub(super) fn to_crm_field(f: &WireField) -> CrmField {
    let field_type = field_type(&f.data_type);
    let options = matches!(field_type, FieldType::Picklist | FieldType::MultiPicklist).then(|| {
        f.pick_list_values
            .iter()
            // Zoho lists "-None-" as an option; it means "empty", not a value.
            .filter(|v| v.actual_value != "-None-")
            .map(|v| PicklistOption {
                id: v.actual_value.clone(),
                label: v
                    .display_value
                    .clone()
                    .unwrap_or_else(|| v.actual_value.clone()),
            })
            .collect()
    });
    CrmField {
        api_name: f.api_name.clone(),
        label: f
            .field_label
            .clone()
            .or_else(|| f.display_label.clone())
            .unwrap_or_else(|| f.api_name.clone()),
        field_type,
        mandatory: f.system_mandatory,
        read_only: f.read_only || f.field_read_only,
        custom: f.custom_field,
        options,
    }
}

pub(super) fn to_crm_user(u: &WireUser) -> CrmUser {
    CrmUser {
        id: u.id.clone(),
        email: u.email.as_deref().unwrap_or_default().trim().to_lowercase(),
        name: u.full_name.clone().unwrap_or_default(),
        active: u.status.as_deref() == Some("active"),
    }
}

/// Zoho's times carry the org's offset: `2026-11-21T10:00:00+01:00`.
pub(super) fn parse_time(value: &Value, what: &str) -> Result<DateTime<Utc>, CrmError> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| CrmError::Protocol(format!("{what}: not a time: {value}")))
}

/// A row of the recycle bin (`/{Module}/deleted`): `id` (a string; a
/// number is read too) and `deleted_time` in the org's offset.
pub(super) fn deleted_record(row: &Value) -> Result<DeletedRecord, CrmError> {
    let id = match &row["id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(CrmError::Protocol(format!(
                "a Zoho deleted record has no id: {other}"
            )));
        }
    };
    let deleted_at = match &row["deleted_time"] {
        Value::Null => None,
        time => Some(parse_time(time, "deleted_time")?),
    };
    Ok(DeletedRecord { id, deleted_at })
}

/// Keys that describe the record rather than hold its values.
fn is_meta(key: &str) -> bool {
    key.starts_with('$')
        || matches!(
            key,
            "id" | "Owner" | "Created_By" | "Modified_By" | "Converted__s"
        )
}

/// A Zoho record, normalised: values by api name, the owner's e-mail as
/// `Owner`. Picklists hold Zoho's actual values until [`show_labels`].
pub(super) fn to_record(record: &Value, module: CrmModule) -> Result<CrmRecord, CrmError> {
    let object = record
        .as_object()
        .ok_or_else(|| CrmError::Protocol(format!("a {module} record is not an object")))?;
    let id = match &object.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(CrmError::Protocol(format!("a {module} record has no id"))),
    };
    let modified_at = parse_time(
        object.get("Modified_Time").unwrap_or(&Value::Null),
        "Modified_Time",
    )?;
    let converted = object.get("$converted").and_then(Value::as_bool) == Some(true)
        || object.get("Converted__s").and_then(Value::as_bool) == Some(true);
    let owner_email = object
        .get("Owner")
        .and_then(|o| o.get("email"))
        .and_then(Value::as_str)
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty());
    let email = object
        .get("Email")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty())
        .map(str::to_owned);
    let mut values: BTreeMap<String, Value> = object
        .iter()
        .filter(|(k, _)| !is_meta(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(owner) = &owner_email {
        values.insert("Owner".into(), Value::String(owner.clone()));
    }
    Ok(CrmRecord {
        id,
        module,
        modified_at,
        email,
        values,
        owner_email,
        converted,
    })
}

/// Picklist values as people see them (display values), as the engine keeps
/// them; writes turn them back into actual values ([`record_body`]).
pub(super) fn show_labels(records: &mut [CrmRecord], fields: &[CrmField]) {
    // The picklists whose labels differ from their values, found once per page.
    let relabelled: Vec<&CrmField> = fields
        .iter()
        .filter(|f| matches!(f.field_type, FieldType::Picklist | FieldType::MultiPicklist))
        .filter(|f| {
            f.options
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o.id != o.label)
        })
        .collect();
    if relabelled.is_empty() {
        return;
    }
    let label = |f: &CrmField, v: &Value| match v {
        Value::String(s) => f
            .options
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|o| o.id == *s)
            .map_or_else(|| v.clone(), |o| Value::String(o.label.clone())),
        other => other.clone(),
    };
    for record in records {
        for f in &relabelled {
            if let Some(v) = record.values.get_mut(&f.api_name) {
                let shown = match &*v {
                    Value::Array(items) => {
                        Value::Array(items.iter().map(|i| label(f, i)).collect())
                    }
                    other => label(f, other),
                };
                *v = shown;
            }
        }
    }
}

/// The reply to one lead conversion.
pub(super) fn conversion(result: &Value, lead_id: &str) -> Result<Conversion, CrmError> {
    match result["code"].as_str().unwrap_or_default() {
        "SUCCESS" => match &result["details"]["Contacts"]["id"] {
            Value::String(s) => Ok(Conversion {
                contact_id: s.clone(),
            }),
            Value::Number(n) => Ok(Conversion {
                contact_id: n.to_string(),
            }),
            _ => Err(CrmError::Protocol(format!(
                "Zoho converted lead {lead_id} but named no contact"
            ))),
        },
        "ID_ALREADY_CONVERTED" => Err(CrmError::Rejected {
            code: "CONVERTED_LEAD".into(),
            field: None,
            message: format!(
                "the lead {lead_id} was converted in Zoho already and is owned by sales; enable the CONTACTS import to follow its contact"
            ),
        }),
        other => Err(CrmError::Rejected {
            code: "CRM_VALIDATION".into(),
            field: None,
            message: format!(
                "Zoho did not convert the lead {lead_id}: {other}: {}",
                result["message"].as_str().unwrap_or("no message")
            ),
        }),
    }
}

/// A value checked against a picklist's actual values: an actual value is kept, a
/// display value (or another case) is turned into its actual value.
fn picklist_value(field: &CrmField, value: &str) -> Result<String, CrmError> {
    let options = field.options.as_deref().unwrap_or_default();
    if let Some(o) = options.iter().find(|o| o.id == value) {
        return Ok(o.id.clone());
    }
    let wanted = value.trim();
    if let Some(o) = options
        .iter()
        .find(|o| o.id.eq_ignore_ascii_case(wanted) || o.label.eq_ignore_ascii_case(wanted))
    {
        return Ok(o.id.clone());
    }
    let allowed: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
    Err(CrmError::Rejected {
        code: "INVALID_PICKLIST_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!(
            "\"{value}\" is not a value of the Zoho picklist {}; allowed: {}",
            field.api_name,
            allowed.join(", ")
        ),
    })
}

/// The upsert body of one record. Picklists are checked here, before sending.
pub(super) fn record_body(
    values: &BTreeMap<String, Value>,
    id: Option<&str>,
    email: &str,
    owner_id: Option<&str>,
    fields: &[CrmField],
) -> Result<Value, CrmError> {
    let mut out = Map::new();
    for (key, value) in values {
        let field = fields.iter().find(|f| &f.api_name == key);
        if field.is_some_and(|f| f.read_only) || is_meta(key) {
            continue;
        }
        let value = match (field, value) {
            (Some(f), Value::String(s)) if f.field_type == FieldType::Picklist && !s.is_empty() => {
                Value::String(picklist_value(f, s)?)
            }
            (Some(f), Value::Array(items)) if f.field_type == FieldType::MultiPicklist => {
                let mut checked = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_str() {
                        Some(s) => checked.push(Value::String(picklist_value(f, s)?)),
                        None => checked.push(item.clone()),
                    }
                }
                Value::Array(checked)
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if !out.contains_key("Email") && !email.trim().is_empty() {
        out.insert("Email".into(), Value::String(email.to_owned()));
    }
    if let Some(id) = id {
        out.insert("id".into(), Value::String(id.to_owned()));
    }
    if let Some(owner) = owner_id {
        out.insert("Owner".into(), json!({ "id": owner }));
    }
    Ok(Value::Object(out))
}

/// An upsert's reply: one result per record, in the order sent. Read into
/// these few fields only, not into a JSON tree: each result is about a third
/// of a kilobyte, mostly the record's creator and modifier.
#[derive(Debug, Deserialize)]
pub(super) struct WireUpsertReply {
    pub data: Vec<WireWriteResult>,
}

/// One per-record result of an upsert.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireWriteResult {
    pub code: String,
    pub message: Option<String>,
    pub action: Option<String>,
    pub details: Option<WireWriteDetails>,
}

/// What a per-record result says of the record, or of the field at fault.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireWriteDetails {
    /// A string (Zoho's ids are 64-bit integers); a number is read too.
    pub id: Value,
    #[serde(rename = "Modified_Time")]
    pub modified_time: Value,
    pub api_name: Option<String>,
    pub expected_data_type: Option<String>,
}

/// One per-record result of an upsert.
pub(super) fn write_result(result: &WireWriteResult) -> Result<WriteResult, CrmError> {
    let code = result.code.as_str();
    let details = result.details.as_ref();
    let field = details.and_then(|d| d.api_name.clone());
    let message = result.message.as_deref().unwrap_or("no message");
    match code {
        "SUCCESS" => {
            let id = match details.map(|d| &d.id) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(CrmError::Protocol("an upsert result has no id".into())),
            };
            Ok(WriteResult {
                id,
                modified_at: parse_time(
                    details.map_or(&Value::Null, |d| &d.modified_time),
                    "upsert Modified_Time",
                )?,
                created: result.action.as_deref() == Some("insert"),
            })
        }
        "MANDATORY_NOT_FOUND" if field.as_deref() == Some("Last_Name") => Err(CrmError::Rejected {
            code: "MISSING_LAST_NAME".into(),
            field,
            message:
                "Zoho requires a last name (Last_Name): map a last name or give the contact one"
                    .into(),
        }),
        "MANDATORY_NOT_FOUND" => Err(CrmError::Rejected {
            code: "CRM_VALIDATION".into(),
            message: format!(
                "Zoho requires the field {}",
                field.as_deref().unwrap_or("(unnamed)")
            ),
            field,
        }),
        "CONVERTED_RECORD" => Err(CrmError::Rejected {
            code: "CONVERTED_LEAD".into(),
            field: None,
            message: "converted lead, owned by sales: Zoho does not let us update it".into(),
        }),
        _ => {
            let expected = details
                .and_then(|d| d.expected_data_type.as_deref())
                .map(|t| format!(" (expected {t})"))
                .unwrap_or_default();
            Err(CrmError::Rejected {
                code: "CRM_VALIDATION".into(),
                message: match &field {
                    Some(f) => {
                        format!("Zoho refused the value of {f}{expected}: {code}: {message}")
                    }
                    None => format!("Zoho refused the record: {code}: {message}"),
                },
                field,
            })
        }
    }
}
