//! Zendesk Sell's wire shapes and their translation to and from the engine's
//! normalised records. Pure: no I/O, so every rule here is unit-tested.
//!
//! Built-in attributes keep their names (`first_name`, `owner_id`); a custom
//! field is `custom_fields.<name>` (Sell keys `custom_fields` by field name,
//! and a custom field may share a built-in's name, such as `status`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use serde_json::{Map, Value};

use crate::crm::{CrmError, CrmField, CrmRecord, CrmUser, FieldType, PicklistOption};

/// The prefix of a custom field's api name.
pub(crate) const CUSTOM: &str = "custom_fields.";

/// Built-in attributes (api name, type, writable) of leads.
const LEAD_BUILTINS: &[(&str, FieldType, bool)] = &[
    ("first_name", FieldType::Text, true),
    ("last_name", FieldType::Text, true),
    ("organization_name", FieldType::Text, true),
    ("email", FieldType::Email, true),
    ("phone", FieldType::Phone, true),
    ("mobile", FieldType::Phone, true),
    ("fax", FieldType::Phone, true),
    ("title", FieldType::Text, true),
    ("description", FieldType::Text, true),
    ("industry", FieldType::Text, true),
    ("website", FieldType::Url, true),
    ("status", FieldType::Text, true),
    ("twitter", FieldType::Text, true),
    ("facebook", FieldType::Text, true),
    ("linkedin", FieldType::Text, true),
    ("skype", FieldType::Text, true),
    ("owner_id", FieldType::User, true),
    ("created_at", FieldType::DateTime, false),
    ("updated_at", FieldType::DateTime, false),
];

/// Built-in attributes of contacts.
const CONTACT_BUILTINS: &[(&str, FieldType, bool)] = &[
    ("first_name", FieldType::Text, true),
    ("last_name", FieldType::Text, true),
    ("name", FieldType::Text, true),
    ("email", FieldType::Email, true),
    ("phone", FieldType::Phone, true),
    ("mobile", FieldType::Phone, true),
    ("fax", FieldType::Phone, true),
    ("title", FieldType::Text, true),
    ("description", FieldType::Text, true),
    ("industry", FieldType::Text, true),
    ("website", FieldType::Url, true),
    ("twitter", FieldType::Text, true),
    ("facebook", FieldType::Text, true),
    ("linkedin", FieldType::Text, true),
    ("skype", FieldType::Text, true),
    ("is_organization", FieldType::Boolean, true),
    ("customer_status", FieldType::Picklist, true),
    ("prospect_status", FieldType::Picklist, true),
    ("owner_id", FieldType::User, true),
    ("created_at", FieldType::DateTime, false),
    ("updated_at", FieldType::DateTime, false),
];

fn builtins(module: CrmModule) -> &'static [(&'static str, FieldType, bool)] {
    if module == CrmModule::Contacts {
        CONTACT_BUILTINS
    } else {
        LEAD_BUILTINS
    }
}

/// The path segment of a module: `lead` or `contact`.
pub(crate) fn resource(module: CrmModule) -> Result<&'static str, CrmError> {
    match module {
        CrmModule::Leads => Ok("lead"),
        CrmModule::Contacts => Ok("contact"),
        other => Err(CrmError::Protocol(format!(
            "Zendesk Sell has leads and contacts, not {other}"
        ))),
    }
}

/// Built-in fields followed by the module's custom fields (items of
/// `/v2/{lead,contact}/custom_fields`).
pub(crate) fn fields(module: CrmModule, custom: &[Value]) -> Vec<CrmField> {
    let mut out: Vec<CrmField> = builtins(module)
        .iter()
        .map(|(name, field_type, writable)| {
            let options = (*field_type == FieldType::Picklist).then(|| {
                let values: &[&str] = if *name == "customer_status" {
                    &["none", "current", "past"]
                } else {
                    &["none", "current", "lost"]
                };
                values.iter().map(|v| option(v)).collect()
            });
            CrmField {
                api_name: (*name).to_owned(),
                label: name.replace('_', " "),
                field_type: *field_type,
                mandatory: false,
                read_only: !writable,
                custom: false,
                options,
            }
        })
        .collect();
    for field in custom {
        let Some(name) = field["name"].as_str() else {
            continue;
        };
        let field_type = match field["type"].as_str().unwrap_or_default() {
            "string" | "text" => FieldType::Text,
            "number" => FieldType::Number,
            "bool" => FieldType::Boolean,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "email" => FieldType::Email,
            "phone" => FieldType::Phone,
            "url" => FieldType::Url,
            "list" => FieldType::Picklist,
            "multi_select_list" => FieldType::MultiPicklist,
            _ => FieldType::Other,
        };
        let options =
            matches!(field_type, FieldType::Picklist | FieldType::MultiPicklist).then(|| {
                field["choices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .map(option)
                    .collect()
            });
        out.push(CrmField {
            api_name: format!("{CUSTOM}{name}"),
            label: name.to_owned(),
            field_type,
            mandatory: false,
            read_only: false,
            custom: true,
            options,
        });
    }
    out
}

/// Sell's choices are sent by name: the id is the label.
fn option(label: &str) -> PicklistOption {
    PicklistOption {
        id: label.to_owned(),
        label: label.to_owned(),
    }
}

/// A user of `/v2/users`.
pub(crate) fn user(data: &Value) -> Option<CrmUser> {
    Some(CrmUser {
        id: data["id"].as_u64()?.to_string(),
        email: data["email"].as_str()?.trim().to_lowercase(),
        name: data["name"].as_str().unwrap_or_default().to_owned(),
        active: data["status"].as_str() == Some("active"),
    })
}

/// A lead or contact as the engine sees it.
pub(crate) fn to_record(
    module: CrmModule,
    data: &Value,
    fields: &[CrmField],
    users: &[CrmUser],
) -> Result<CrmRecord, CrmError> {
    let id = data["id"]
        .as_u64()
        .ok_or_else(|| CrmError::Protocol(format!("a {module} without an id: {data}")))?;
    let modified_at = data["updated_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| CrmError::Protocol(format!("{module} {id} without updated_at")))?;
    let mut values = BTreeMap::new();
    let owner_email = data["owner_id"].as_u64().and_then(|owner| {
        users
            .iter()
            .find(|u| u.id == owner.to_string())
            .map(|u| u.email.clone())
    });
    for (name, _, _) in builtins(module) {
        // The owner travels as its e-mail, as on every CRM.
        if *name == "owner_id" {
            if let Some(email) = &owner_email {
                values.insert("owner_id".to_owned(), Value::String(email.clone()));
            }
            continue;
        }
        if let Some(v) = data.get(*name).filter(|v| !v.is_null()) {
            values.insert((*name).to_owned(), v.clone());
        }
    }
    if let Some(custom) = data["custom_fields"].as_object() {
        for (name, v) in custom {
            if v.is_null() {
                continue;
            }
            let api_name = format!("{CUSTOM}{name}");
            let number = fields
                .iter()
                .any(|f| f.api_name == api_name && f.field_type == FieldType::Number);
            let v = match v {
                Value::String(s) if number => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| v.clone(), Value::Number),
                other => other.clone(),
            };
            values.insert(api_name, v);
        }
    }
    Ok(CrmRecord {
        id: id.to_string(),
        module,
        modified_at,
        email: data["email"].as_str().map(str::to_owned),
        values,
        owner_email,
        converted: false,
    })
}

/// The `data` of a create or update: built-ins as they are, custom fields
/// gathered into `custom_fields`, the owner by e-mail among active users.
pub(crate) fn body(
    values: &BTreeMap<String, Value>,
    owner_email: Option<&str>,
    fields: &[CrmField],
    users: &[CrmUser],
) -> Result<Value, CrmError> {
    let mut data = Map::new();
    let mut custom = Map::new();
    for (name, value) in values {
        let field = fields.iter().find(|f| &f.api_name == name);
        if field.is_some_and(|f| f.read_only) || name == "owner_id" {
            continue;
        }
        match name.strip_prefix(CUSTOM) {
            Some(custom_name) => {
                if field.is_none() {
                    return Err(CrmError::Rejected {
                        code: "MISSING_FIELD".into(),
                        field: Some(name.clone()),
                        message: format!("Zendesk Sell has no custom field {custom_name}"),
                    });
                }
                custom.insert(custom_name.to_owned(), value.clone());
            }
            None => {
                data.insert(name.clone(), value.clone());
            }
        }
    }
    if !custom.is_empty() {
        data.insert("custom_fields".into(), Value::Object(custom));
    }
    // The owner travels as `owner_email`; a mapped `owner_id` is the same e-mail.
    let owner = owner_email.or_else(|| values.get("owner_id").and_then(Value::as_str));
    if let Some(email) = owner {
        let email = email.trim().to_lowercase();
        if let Some(user) = users.iter().find(|u| u.active && u.email == email) {
            let id: u64 = user.id.parse().unwrap_or_default();
            data.insert("owner_id".into(), Value::from(id));
        }
    }
    Ok(Value::Object(data))
}

/// A Sell error reply as the engine's error: the first error's code, field and details.
pub(crate) fn rejection(body: &Value, status: u16) -> CrmError {
    let error = &body["errors"][0]["error"];
    let details = error["details"]
        .as_str()
        .or(error["message"].as_str())
        .unwrap_or("refused");
    let field = error["field"].as_str().map(str::to_owned);
    let code = match (status, error["code"].as_str()) {
        (404, _) => "NOT_FOUND_IN_CRM",
        (409, _) => "DUPLICATE_IN_CRM",
        (_, Some("unknown_attribute")) => "MISSING_FIELD",
        _ => "CRM_VALIDATION",
    };
    CrmError::Rejected {
        code: code.into(),
        field,
        message: format!("Zendesk Sell refused the record: {details}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalog() -> (Vec<CrmField>, Vec<CrmUser>) {
        let custom = [
            json!({ "name": "score", "type": "number" }),
            json!({ "name": "status", "type": "list", "choices": [{ "id": 1, "name": "Client" }] }),
        ];
        let users = vec![CrmUser {
            id: "7".into(),
            email: "camille@example.com".into(),
            name: "Camille".into(),
            active: true,
        }];
        (fields(CrmModule::Leads, &custom), users)
    }

    #[test]
    fn a_lead_reads_with_custom_fields_prefixed_and_its_owner_by_e_mail() {
        let (fields, users) = catalog();
        let data = json!({ "id": 12, "first_name": "Zoë", "last_name": "N", "email": "z@x.io",
            "owner_id": 7, "updated_at": "2026-11-21T09:30:00Z",
            "custom_fields": { "score": "12.5", "status": "Client" } });

        let record = to_record(CrmModule::Leads, &data, &fields, &users).expect("record");

        assert_eq!(record.id, "12");
        assert_eq!(record.values["custom_fields.score"], json!(12.5));
        assert_eq!(record.values["custom_fields.status"], json!("Client"));
        assert_eq!(record.owner_email.as_deref(), Some("camille@example.com"));
        assert_eq!(record.values["owner_id"], json!("camille@example.com"));
    }

    #[test]
    fn a_write_gathers_custom_fields_and_resolves_the_owner() {
        let (fields, users) = catalog();
        let values = BTreeMap::from([
            ("last_name".to_owned(), json!("N")),
            ("custom_fields.score".to_owned(), json!(40)),
            ("updated_at".to_owned(), json!("2026-01-01T00:00:00Z")),
        ]);

        let data = body(&values, Some("Camille@Example.com"), &fields, &users).expect("body");

        assert_eq!(
            data,
            json!({ "last_name": "N", "custom_fields": { "score": 40 }, "owner_id": 7 })
        );
        let unknown = BTreeMap::from([("custom_fields.nope".to_owned(), json!(1))]);
        assert!(body(&unknown, None, &fields, &users).is_err());
    }
}
