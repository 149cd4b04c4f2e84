//! Pipedrive's wire shapes and their translation to and from the engine's
//! normalised records. Pure: no I/O, so every rule here is unit-tested.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::crm::{
    CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord, FieldType, PicklistOption,
};

/// The envelope of every reply.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    #[serde(default)]
    pub success: bool,
    pub data: Option<T>,
    #[serde(default)]
    pub additional_data: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The deleted person of a recents row (`{"item":"person","id","data":{v1 person}}`),
/// `None` for a live one. v1 marks a deleted person `active_flag: false`
/// (`is_deleted: true` in v2's shape, which is read too); its deletion time
/// is `delete_time` where given, else its last change (a deletion is one).
pub(crate) fn deleted_person(row: &Value) -> Result<Option<DeletedRecord>, CrmError> {
    let person = &row["data"];
    let deleted = person["active_flag"] == json!(false)
        || person["is_deleted"] == json!(true)
        || !person["delete_time"].is_null();
    if !deleted || row["item"].as_str().is_some_and(|i| i != "person") {
        return Ok(None);
    }
    let id = match (&person["id"], &row["id"]) {
        (Value::Number(n), _) | (_, Value::Number(n)) => n.to_string(),
        (Value::String(s), _) | (_, Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(CrmError::Protocol(format!(
                "a recents row has no person id: {row}"
            )));
        }
    };
    let deleted_at = [&person["delete_time"], &person["update_time"]]
        .into_iter()
        .find_map(|t| t.as_str().and_then(parse_any_time));
    Ok(Some(DeletedRecord { id, deleted_at }))
}

/// A time as v1 (`2026-11-21 10:00:00`, UTC) or v2 (RFC 3339) writes it.
fn parse_any_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A v1 person field.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireField {
    pub key: String,
    pub name: String,
    pub field_type: String,
    #[serde(default)]
    pub edit_flag: bool,
    #[serde(default)]
    pub mandatory_flag: Value,
    #[serde(default)]
    pub options: Option<Vec<WireOption>>,
}

/// A picklist option; ids are integers on the wire.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireOption {
    pub id: Value,
    pub label: String,
}

/// A v1 user.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireUser {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub active_flag: bool,
}

/// Keys the CRM sets: never written.
const READ_ONLY_KEYS: &[&str] = &["id", "add_time", "update_time"];

/// The normalised field list.
pub(crate) fn to_crm_field(field: &WireField) -> CrmField {
    let field_type = match (field.key.as_str(), field.field_type.as_str()) {
        ("email", _) => FieldType::Email,
        ("phone", _) | (_, "phone") => FieldType::Phone,
        ("add_time" | "update_time", _) => FieldType::DateTime,
        (_, "varchar" | "varchar_auto" | "text") => FieldType::Text,
        (_, "double" | "monetary_amount") => FieldType::Number,
        (_, "int") => FieldType::Integer,
        (_, "date") => FieldType::Date,
        (_, "enum" | "visible_to" | "status") => FieldType::Picklist,
        (_, "set") => FieldType::MultiPicklist,
        (_, "user") => FieldType::User,
        (_, "org" | "people") => FieldType::Lookup,
        _ => FieldType::Other,
    };
    let options = match field_type {
        FieldType::Picklist | FieldType::MultiPicklist => Some(
            field
                .options
                .iter()
                .flatten()
                .map(|o| PicklistOption {
                    id: id_string(&o.id),
                    label: o.label.clone(),
                })
                .collect(),
        ),
        _ => None,
    };
    let mandatory = match &field.mandatory_flag {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    } || field.key == "name";
    CrmField {
        api_name: field.key.clone(),
        label: field.name.clone(),
        field_type,
        mandatory,
        read_only: READ_ONLY_KEYS.contains(&field.key.as_str()),
        custom: field.edit_flag,
        options,
    }
}

/// A user, e-mail normalised.
pub(crate) fn to_crm_user(user: &WireUser) -> CrmUser {
    CrmUser {
        id: user.id.to_string(),
        email: normalise_email(&user.email),
        name: user.name.clone(),
        active: user.active_flag,
    }
}

fn normalise_email(raw: &str) -> String {
    crmsync_entity::Email::parse(raw)
        .map(|e| e.into_string())
        .unwrap_or_else(|_| raw.trim().to_lowercase())
}

/// An id as a string (`12` and `"12"` alike).
pub(crate) fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What reading and writing persons needs to know about the company.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// The fields in the CRM's order.
    pub field_list: Vec<CrmField>,
    /// Every user.
    pub user_list: Vec<CrmUser>,
    /// Custom and standard fields by key.
    pub fields: HashMap<String, CrmField>,
    /// Users by id.
    pub users_by_id: HashMap<String, CrmUser>,
    /// User ids by normalised e-mail (active users first).
    pub user_by_email: HashMap<String, String>,
}

impl Catalog {
    /// Builds the lookups.
    pub fn new(fields: Vec<CrmField>, users: Vec<CrmUser>) -> Self {
        let mut user_by_email = HashMap::new();
        // Inactive users go first so that an active user with the same e-mail wins.
        for user in users.iter().filter(|u| !u.active) {
            user_by_email.insert(user.email.clone(), user.id.clone());
        }
        for user in users.iter().filter(|u| u.active) {
            user_by_email.insert(user.email.clone(), user.id.clone());
        }
        Self {
            field_list: fields.clone(),
            user_list: users.clone(),
            fields: fields
                .into_iter()
                .map(|f| (f.api_name.clone(), f))
                .collect(),
            users_by_id: users.into_iter().map(|u| (u.id.clone(), u)).collect(),
            user_by_email,
        }
    }
}

/// The primary entry of a v2 `emails`/`phones` list (else the first).
fn primary_value(list: Option<&Value>) -> Option<String> {
    let items = list?.as_array()?;
    let pick = items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first())?;
    let value = pick.get("value")?.as_str()?;
    (!value.trim().is_empty()).then(|| value.to_owned())
}

/// A v2 person as a normalised record.
pub(crate) fn to_record(person: &Value, catalog: &Catalog) -> Result<CrmRecord, CrmError> {
    let id = person
        .get("id")
        .map(id_string)
        .ok_or_else(|| CrmError::Protocol("a person without id".into()))?;
    let modified_at = person
        .get("update_time")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| CrmError::Protocol(format!("person {id}: no valid update_time")))?;
    let mut values = BTreeMap::new();
    let email = primary_value(person.get("emails"));
    if let Some(email) = &email {
        values.insert("email".to_owned(), Value::String(email.trim().to_owned()));
    }
    if let Some(phone) = primary_value(person.get("phones")) {
        values.insert("phone".to_owned(), Value::String(phone));
    }
    for key in ["name", "first_name", "last_name", "marketing_status"] {
        if let Some(v) = person.get(key).filter(|v| !v.is_null()) {
            values.insert(key.to_owned(), v.clone());
        }
    }
    let owner_email = person
        .get("owner_id")
        .filter(|v| !v.is_null())
        .map(id_string)
        .and_then(|owner| catalog.users_by_id.get(&owner))
        .map(|u| u.email.clone());
    if let Some(owner) = &owner_email {
        values.insert("owner_id".to_owned(), Value::String(owner.clone()));
    }
    if let Some(custom) = person.get("custom_fields").and_then(Value::as_object) {
        for (key, raw) in custom {
            let value = match catalog.fields.get(key) {
                Some(field) => custom_value_in(raw, field),
                None => raw.clone(),
            };
            if !value.is_null() {
                values.insert(key.clone(), value);
            }
        }
    }
    Ok(CrmRecord {
        id,
        module: CrmModule::Persons,
        modified_at,
        email,
        values,
        owner_email,
        converted: false,
    })
}

fn option_label(field: &CrmField, id: &Value) -> Value {
    let id = id_string(id);
    field
        .options
        .iter()
        .flatten()
        .find(|o| o.id == id)
        .map_or(Value::String(id), |o| Value::String(o.label.clone()))
}

/// A custom field's wire value, normalised: options as labels.
fn custom_value_in(raw: &Value, field: &CrmField) -> Value {
    match (field.field_type, raw) {
        (_, Value::Null) => Value::Null,
        (FieldType::Picklist, v) => option_label(field, v),
        (FieldType::MultiPicklist, Value::Array(ids)) => {
            Value::Array(ids.iter().map(|id| option_label(field, id)).collect())
        }
        (FieldType::MultiPicklist, Value::String(s)) => Value::Array(
            s.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|id| option_label(field, &Value::String(id.trim().to_owned())))
                .collect(),
        ),
        _ => raw.clone(),
    }
}

/// The option id for a label: exact first, then ignoring case.
fn option_id(field: &CrmField, label: &Value) -> Result<Value, CrmError> {
    let wanted = match label {
        Value::String(s) => s.trim().to_owned(),
        other => id_string(other),
    };
    let options = field.options.as_deref().unwrap_or_default();
    let found = options.iter().find(|o| o.label == wanted).or_else(|| {
        options
            .iter()
            .find(|o| o.label.eq_ignore_ascii_case(&wanted))
    });
    match found {
        Some(option) => Ok(option
            .id
            .parse::<i64>()
            .map_or_else(|_| Value::String(option.id.clone()), Value::from)),
        None => Err(invalid_picklist(field, &wanted)),
    }
}

/// The rejection for a value that is not one of a picklist's options (F4).
pub(crate) fn invalid_picklist(field: &CrmField, wanted: &str) -> CrmError {
    let allowed: Vec<_> = field
        .options
        .iter()
        .flatten()
        .map(|o| o.label.as_str())
        .collect();
    CrmError::Rejected {
        code: "INVALID_PICKLIST_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!(
            "\"{wanted}\" is not an option of {}; allowed values: {}",
            field.label,
            allowed.join(", ")
        ),
    }
}

fn type_error(field: &CrmField, expected: &str) -> CrmError {
    CrmError::Rejected {
        code: "INVALID_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!("{} expects {expected}", field.label),
    }
}

/// A normalised value in the strict v2 form of a custom field.
fn custom_value_out(field: &CrmField, value: &Value) -> Result<Value, CrmError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match field.field_type {
        FieldType::Picklist => option_id(field, value),
        FieldType::MultiPicklist => {
            let labels: Vec<Value> = match value {
                Value::Array(items) => items.clone(),
                Value::String(s) => s
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| Value::String(p.trim().to_owned()))
                    .collect(),
                other => vec![other.clone()],
            };
            labels
                .iter()
                .map(|l| option_id(field, l))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        FieldType::Number | FieldType::Integer => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| type_error(field, "a number")),
            Value::Bool(b) => Ok(Value::from(u8::from(*b))),
            _ => Err(type_error(field, "a number")),
        },
        FieldType::Date => match value {
            Value::String(s) if s.len() >= 10 => Ok(Value::String(s[..10].to_owned())),
            _ => Err(type_error(field, "a date (YYYY-MM-DD)")),
        },
        _ => Ok(match value {
            Value::String(_) => value.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            other => Value::String(other.to_string()),
        }),
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The v2 body of a create (`existing` is `None`) or a patch, from normalised
/// values. Picklist labels are checked here, before anything is sent (F4).
pub(crate) fn person_body(
    values: &BTreeMap<String, Value>,
    owner_email: Option<&str>,
    catalog: &Catalog,
    create: bool,
) -> Result<Value, CrmError> {
    let mut body = Map::new();
    let mut custom = Map::new();
    let names = ["first_name", "last_name", "name"];
    if names.iter().any(|k| values.contains_key(*k)) {
        // F5: Pipedrive has one name field; first and last names are joined.
        let name = if values.contains_key("first_name") || values.contains_key("last_name") {
            let parts = [
                text(values.get("first_name")),
                text(values.get("last_name")),
            ];
            parts
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text(values.get("name"))
        };
        if name.is_empty() {
            return Err(CrmError::Rejected {
                code: "MISSING_NAME".into(),
                field: Some("name".into()),
                message: "Pipedrive requires a name: give the contact a first or last name".into(),
            });
        }
        body.insert("name".into(), Value::String(name));
    } else if create {
        return Err(CrmError::Rejected {
            code: "MISSING_NAME".into(),
            field: Some("name".into()),
            message: "Pipedrive requires a name: give the contact a first or last name".into(),
        });
    }
    for (key, value) in values {
        match key.as_str() {
            "first_name" | "last_name" | "name" => {}
            "email" => {
                let email = text(Some(value));
                body.insert(
                    "emails".into(),
                    if email.is_empty() {
                        json!([])
                    } else {
                        json!([{"value": email, "primary": true, "label": "work"}])
                    },
                );
            }
            "phone" => {
                let phone = text(Some(value));
                body.insert(
                    "phones".into(),
                    if phone.is_empty() {
                        json!([])
                    } else {
                        json!([{"value": phone, "primary": true, "label": "work"}])
                    },
                );
            }
            // The owner travels as `owner_email`; a value here is the same e-mail.
            "owner_id" => {}
            "marketing_status" => {
                body.insert(key.clone(), value.clone());
            }
            _ => match catalog.fields.get(key) {
                Some(field) if field.custom => {
                    custom.insert(key.clone(), custom_value_out(field, value)?);
                }
                Some(field) => {
                    return Err(CrmError::Rejected {
                        code: "READ_ONLY_FIELD".into(),
                        field: Some(key.clone()),
                        message: format!("{} cannot be written through the API", field.label),
                    });
                }
                None => {
                    return Err(CrmError::Rejected {
                        code: "UNKNOWN_FIELD".into(),
                        field: Some(key.clone()),
                        message: format!(
                            "Pipedrive has no person field \"{key}\"; check the connector's mappings"
                        ),
                    });
                }
            },
        }
    }
    let owner = owner_email
        .or_else(|| values.get("owner_id").and_then(Value::as_str))
        .map(normalise_email)
        .and_then(|e| catalog.user_by_email.get(&e));
    if let Some(id) = owner {
        body.insert(
            "owner_id".into(),
            id.parse::<i64>()
                .map_or_else(|_| Value::String(id.clone()), Value::from),
        );
    }
    if !custom.is_empty() {
        body.insert("custom_fields".into(), Value::Object(custom));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let fields = vec![
            CrmField {
                api_name: "aaaa".into(),
                label: "tier".into(),
                field_type: FieldType::Picklist,
                mandatory: false,
                read_only: false,
                custom: true,
                options: Some(vec![
                    PicklistOption {
                        id: "7".into(),
                        label: "Gold".into(),
                    },
                    PicklistOption {
                        id: "8".into(),
                        label: "Silver".into(),
                    },
                ]),
            },
            CrmField {
                api_name: "bbbb".into(),
                label: "industries".into(),
                field_type: FieldType::MultiPicklist,
                mandatory: false,
                read_only: false,
                custom: true,
                options: Some(vec![
                    PicklistOption {
                        id: "1".into(),
                        label: "Retail".into(),
                    },
                    PicklistOption {
                        id: "2".into(),
                        label: "Energy".into(),
                    },
                ]),
            },
            CrmField {
                api_name: "cccc".into(),
                label: "score".into(),
                field_type: FieldType::Number,
                mandatory: false,
                read_only: false,
                custom: true,
                options: None,
            },
        ];
        let users = vec![CrmUser {
            id: "10001".into(),
            email: "ann@acme.test".into(),
            name: "Ann".into(),
            active: true,
        }];
        Catalog::new(fields, users)
    }

    #[test]
    fn reads_options_as_labels_and_the_primary_email() {
        let person = json!({"id": 4, "name": "Zoë Müller", "first_name": "Zoë", "last_name": "Müller",
            "owner_id": 10001, "update_time": "2026-11-21T10:00:00Z",
            "emails": [{"value": "old@x.com", "primary": false}, {"value": "Zoe@X.com", "primary": true}],
            "phones": [], "custom_fields": {"aaaa": 8, "bbbb": [1, 2], "cccc": 42.0}});
        let record = to_record(&person, &catalog()).unwrap();
        assert_eq!(record.id, "4");
        assert_eq!(record.email.as_deref(), Some("Zoe@X.com"));
        assert_eq!(record.values["aaaa"], json!("Silver"));
        assert_eq!(record.values["bbbb"], json!(["Retail", "Energy"]));
        assert_eq!(record.values["cccc"], json!(42.0));
        assert_eq!(record.values["owner_id"], json!("ann@acme.test"));
        assert!(!record.values.contains_key("phone"));
    }

    #[test]
    fn writes_names_joined_options_by_id_and_numbers_as_numbers() {
        let values: BTreeMap<String, Value> = [
            ("first_name", json!("Jean Pierre")),
            ("last_name", json!("de la Tour")),
            ("email", json!("jp@x.com")),
            ("aaaa", json!("gold")),
            ("bbbb", json!(["Energy"])),
            ("cccc", json!("12")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let body = person_body(&values, Some("ANN@acme.test"), &catalog(), true).unwrap();
        assert_eq!(body["name"], json!("Jean Pierre de la Tour"));
        assert_eq!(
            body["emails"],
            json!([{"value": "jp@x.com", "primary": true, "label": "work"}])
        );
        assert_eq!(body["custom_fields"]["aaaa"], json!(7));
        assert_eq!(body["custom_fields"]["bbbb"], json!([2]));
        assert_eq!(body["custom_fields"]["cccc"], json!(12.0));
        assert_eq!(body["owner_id"], json!(10001));
    }

    #[test]
    fn an_unknown_option_is_rejected_with_the_allowed_values() {
        let values: BTreeMap<String, Value> = [
            ("first_name".to_owned(), json!("A")),
            ("aaaa".to_owned(), json!("Platinum")),
        ]
        .into_iter()
        .collect();
        match person_body(&values, None, &catalog(), true) {
            Err(CrmError::Rejected {
                code,
                field,
                message,
            }) => {
                assert_eq!(code, "INVALID_PICKLIST_VALUE");
                assert_eq!(field.as_deref(), Some("aaaa"));
                assert!(message.contains("Gold, Silver"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_create_without_a_name_is_refused() {
        let values: BTreeMap<String, Value> = [("email".to_owned(), json!("a@b.com"))]
            .into_iter()
            .collect();
        assert!(matches!(
            person_body(&values, None, &catalog(), true),
            Err(CrmError::Rejected { code, .. }) if code == "MISSING_NAME"
        ));
    }
}
