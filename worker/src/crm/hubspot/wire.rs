//! HubSpot's wire shapes (CRM API v3) and their translation to and from the
//! engine's normalised records. Pure: no I/O, so every rule here is unit-tested.
//!
//! - Every property value travels as a string (or null): booleans as
//!   `"true"`/`"false"`, numbers as decimal strings, multi-select checkboxes as
//!   option values joined by `;`.
//! - Enumerations are read as option labels and written as option values,
//!   checked before anything is sent (F4).
//! - `lifecyclestage` is read as the platform's lifecycle (CLIENT from
//!   `customer` on, PROSPECT before it; its options are those two) and
//!   written forward only (S10).
//! - `hubspot_owner_id` is read as the owner's e-mail and written from it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) use crate::crm::owners::{Owners, normalise_email};
use crate::crm::picklist::{option_label, option_value};
use crate::crm::{
    CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord, FieldType, PicklistOption,
};

/// The property of the lifecycle stage.
pub(crate) const LIFECYCLE: &str = "lifecyclestage";
/// The property of the record's owner.
pub(crate) const OWNER: &str = "hubspot_owner_id";
/// HubSpot's lifecycle stages, earliest first (`other` is outside the order).
pub(crate) const STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
];
/// The stage a platform client has in HubSpot.
pub(crate) const CLIENT_STAGE: &str = "customer";
/// The stage a new contact of a platform prospect starts at.
pub(crate) const PROSPECT_STAGE: &str = "lead";

/// A contact property.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireProperty {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub field_type: String,
    #[serde(default)]
    pub options: Vec<WireOption>,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub hubspot_defined: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub modification_metadata: Option<WireModification>,
}

/// Who may change a property's value.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireModification {
    #[serde(default)]
    pub read_only_value: bool,
}

/// An enumeration option.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireOption {
    pub label: String,
    pub value: String,
}

/// An owner.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireOwner {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// The normalised field.
pub(crate) fn to_crm_field(p: &WireProperty) -> CrmField {
    let field_type = match (p.name.as_str(), p.kind.as_str(), p.field_type.as_str()) {
        ("email", _, _) => FieldType::Email,
        (OWNER, _, _) => FieldType::User,
        (_, _, "phonenumber") | ("phone" | "mobilephone", "string", _) => FieldType::Phone,
        (_, "bool", _) | (_, "enumeration", "booleancheckbox") => FieldType::Boolean,
        (_, "enumeration", "checkbox") => FieldType::MultiPicklist,
        (_, "enumeration", _) => FieldType::Picklist,
        (_, "number", _) => FieldType::Number,
        (_, "date", _) => FieldType::Date,
        (_, "datetime", _) => FieldType::DateTime,
        (_, "string", _) if p.name == "website" => FieldType::Url,
        (_, "string", _) => FieldType::Text,
        _ => FieldType::Other,
    };
    // The stage is read and written as the platform's lifecycle: its options
    // are the two lifecycles, each standing for the stage it is written as.
    let lifecycle = (p.name == LIFECYCLE).then(|| {
        vec![
            PicklistOption {
                id: PROSPECT_STAGE.into(),
                label: "PROSPECT".into(),
            },
            PicklistOption {
                id: CLIENT_STAGE.into(),
                label: "CLIENT".into(),
            },
        ]
    });
    let options = lifecycle.or_else(|| {
        matches!(field_type, FieldType::Picklist | FieldType::MultiPicklist).then(|| {
            p.options
                .iter()
                .map(|o| PicklistOption {
                    id: o.value.clone(),
                    label: o.label.clone(),
                })
                .collect()
        })
    });
    let read_only = p.calculated
        || p.modification_metadata
            .as_ref()
            .is_some_and(|m| m.read_only_value);
    CrmField {
        api_name: p.name.clone(),
        label: if p.label.is_empty() {
            p.name.clone()
        } else {
            p.label.clone()
        },
        field_type,
        mandatory: false,
        read_only,
        custom: !p.hubspot_defined,
        options,
    }
}

/// An owner as a user; archived owners are inactive.
pub(crate) fn to_crm_user(owner: &WireOwner) -> CrmUser {
    let name = [owner.first_name.as_deref(), owner.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    CrmUser {
        id: owner.id.clone(),
        email: normalise_email(owner.email.as_deref().unwrap_or_default()),
        name,
        active: !owner.archived,
    }
}

/// What reading and writing contacts needs to know about the portal.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// The properties in HubSpot's order.
    pub field_list: Vec<CrmField>,
    /// Properties by name.
    pub fields: HashMap<String, CrmField>,
}

impl Catalog {
    /// Builds the lookups.
    pub fn new(fields: Vec<CrmField>) -> Self {
        Self {
            fields: fields
                .iter()
                .map(|f| (f.api_name.clone(), f.clone()))
                .collect(),
            field_list: fields,
        }
    }

    /// The property names asked for when reading contacts: the ones the sync
    /// needs, then the custom ones, then the rest that a person can map, at
    /// most `max`.
    pub fn read_names(&self, max: usize) -> Vec<String> {
        const FIRST: [&str; 9] = [
            "email",
            "firstname",
            "lastname",
            "lastmodifieddate",
            "hs_object_id",
            LIFECYCLE,
            OWNER,
            "hs_email_optout",
            "phone",
        ];
        let mut names: Vec<String> = FIRST.iter().map(|n| (*n).to_owned()).collect();
        let custom = self.field_list.iter().filter(|f| f.custom);
        let rest = self
            .field_list
            .iter()
            .filter(|f| !f.custom && f.field_type != FieldType::Other);
        for f in custom.chain(rest) {
            if names.len() >= max {
                break;
            }
            if !names.contains(&f.api_name) {
                names.push(f.api_name.clone());
            }
        }
        names
    }
}

/// The platform lifecycle a stage stands for; `None` outside the order.
pub(crate) fn lifecycle_of(stage: &str) -> Option<&'static str> {
    let rank = stage_rank(stage)?;
    Some(if rank >= stage_rank(CLIENT_STAGE)? {
        "CLIENT"
    } else {
        "PROSPECT"
    })
}

/// A stage's place in HubSpot's forward-only order.
pub(crate) fn stage_rank(stage: &str) -> Option<usize> {
    STAGES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(stage.trim()))
}

/// An archived contact of the list endpoint: its id and `archivedAt`.
pub(crate) fn archived_contact(object: &Value) -> Result<DeletedRecord, CrmError> {
    let id = match &object["id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(CrmError::Protocol(format!(
                "an archived HubSpot contact has no id: {other}"
            )));
        }
    };
    Ok(DeletedRecord {
        id,
        deleted_at: parse_time(object.get("archivedAt")),
    })
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

/// A contact as a normalised record.
pub(crate) fn to_record(
    object: &Value,
    catalog: &Catalog,
    owners: Option<&Owners>,
) -> Result<CrmRecord, CrmError> {
    let id = match &object["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(CrmError::Protocol("a HubSpot contact without id".into())),
    };
    let props = object["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let modified_at = parse_time(props.get("lastmodifieddate"))
        .or_else(|| parse_time(object.get("updatedAt")))
        .ok_or_else(|| {
            CrmError::Protocol(format!("HubSpot contact {id}: no valid lastmodifieddate"))
        })?;
    let mut values = BTreeMap::new();
    let mut owner_email = None;
    for (name, raw) in &props {
        let Some(text) = raw.as_str() else { continue };
        if text.is_empty() {
            continue;
        }
        let value = match (name.as_str(), catalog.fields.get(name)) {
            (LIFECYCLE, _) => match lifecycle_of(text) {
                Some(l) => Value::String(l.to_owned()),
                None => continue,
            },
            (OWNER, _) => match owners.and_then(|o| o.email_of(text)) {
                Some(email) => {
                    owner_email = Some(email.to_owned());
                    Value::String(email.to_owned())
                }
                None => continue,
            },
            (_, Some(field)) => value_in(text, field),
            (_, None) => Value::String(text.to_owned()),
        };
        values.insert(name.clone(), value);
    }
    let email = props
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    Ok(CrmRecord {
        id,
        module: CrmModule::Contacts,
        modified_at,
        email,
        values,
        owner_email,
        converted: false,
    })
}

/// A property's string value, normalised.
fn value_in(text: &str, field: &CrmField) -> Value {
    match field.field_type {
        FieldType::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        FieldType::Number | FieldType::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(text.to_owned())),
        FieldType::Picklist => Value::String(option_label(field, text)),
        FieldType::MultiPicklist => Value::Array(
            text.split(';')
                .filter(|p| !p.trim().is_empty())
                .map(|p| Value::String(option_label(field, p.trim())))
                .collect(),
        ),
        _ => Value::String(text.to_owned()),
    }
}

fn type_error(field: &CrmField, expected: &str) -> CrmError {
    CrmError::Rejected {
        code: "INVALID_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!("{} expects {expected}", field.label),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A normalised value as the string HubSpot stores; `Null` clears (`""`).
fn value_out(field: &CrmField, value: &Value) -> Result<String, CrmError> {
    if value.is_null() {
        return Ok(String::new());
    }
    match field.field_type {
        FieldType::Picklist => option_value(field, &plain(value)),
        FieldType::MultiPicklist => {
            let labels: Vec<String> = match value {
                Value::Array(items) => items.iter().map(plain).collect(),
                other => plain(other)
                    .split(';')
                    .map(|p| p.trim().to_owned())
                    .collect(),
            };
            labels
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| option_value(field, l))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join(";"))
        }
        FieldType::Boolean => match value {
            Value::Bool(b) => Ok(b.to_string()),
            Value::String(s) if matches!(s.trim(), "true" | "false") => Ok(s.trim().to_owned()),
            Value::Number(n) => Ok((n.as_f64() != Some(0.0)).to_string()),
            _ => Err(type_error(field, "true or false")),
        },
        FieldType::Number | FieldType::Integer => match value {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) if s.trim().parse::<f64>().is_ok() => Ok(s.trim().to_owned()),
            _ => Err(type_error(field, "a number")),
        },
        FieldType::Date => match value {
            Value::String(s) if s.len() >= 10 => Ok(s[..10].to_owned()),
            _ => Err(type_error(field, "a date (YYYY-MM-DD)")),
        },
        _ => Ok(plain(value)),
    }
}

/// The stage a platform lifecycle (or a stage name) asks for.
pub(crate) fn wanted_stage(field: Option<&CrmField>, value: &Value) -> Result<String, CrmError> {
    let text = plain(value);
    match text.to_ascii_uppercase().as_str() {
        "CLIENT" => Ok(CLIENT_STAGE.to_owned()),
        "PROSPECT" => Ok(PROSPECT_STAGE.to_owned()),
        _ => match field {
            Some(field) => option_value(field, &text),
            None => Ok(text),
        },
    }
}

/// The properties of a write, from normalised values: enumerations checked,
/// the owner resolved, the lifecycle stage left for [`forward_stage`].
/// Returns the properties and the stage asked for, if any.
pub(crate) fn properties(
    values: &BTreeMap<String, Value>,
    owner_email: Option<&str>,
    catalog: &Catalog,
    owners: Option<&Owners>,
) -> Result<(Map<String, Value>, Option<String>), CrmError> {
    let mut out = Map::new();
    let mut stage = None;
    for (key, value) in values {
        match key.as_str() {
            // The owner travels as `owner_email`; a value here is the same e-mail.
            OWNER => {}
            LIFECYCLE => {
                if !value.is_null() {
                    stage = Some(wanted_stage(catalog.fields.get(LIFECYCLE), value)?);
                }
            }
            _ => match catalog.fields.get(key) {
                Some(field) if field.read_only => {
                    return Err(CrmError::Rejected {
                        code: "READ_ONLY_FIELD".into(),
                        field: Some(key.clone()),
                        message: format!(
                            "{} is read-only in HubSpot: map it FROM_CRM only",
                            field.label
                        ),
                    });
                }
                Some(field) => {
                    out.insert(key.clone(), Value::String(value_out(field, value)?));
                }
                None => {
                    return Err(CrmError::Rejected {
                        code: "UNKNOWN_FIELD".into(),
                        field: Some(key.clone()),
                        message: format!(
                            "HubSpot has no contact property \"{key}\"; check the connector's mappings"
                        ),
                    });
                }
            },
        }
    }
    let owner = owner_email.or_else(|| values.get(OWNER).and_then(Value::as_str));
    // An owner who is no active owner is left out: HubSpot keeps the record's own.
    if let Some(id) = owner.and_then(|e| owners?.active_id(e)) {
        out.insert(OWNER.into(), Value::String(id.to_owned()));
    }
    Ok((out, stage))
}

/// The stage to send, if any: never one before the record's (`current`;
/// `None` for a new record or one without a stage). A record at a stage
/// outside the order (`other`, a custom stage) is left alone.
pub(crate) fn forward_stage(wanted: &str, current: Option<&str>) -> Option<String> {
    let current = current.map(str::trim).filter(|c| !c.is_empty());
    match (current, stage_rank(wanted)) {
        (None, _) => Some(wanted.to_owned()),
        (Some(current), Some(want)) => match stage_rank(current) {
            Some(have) if have < want => Some(wanted.to_owned()),
            _ => None,
        },
        // A stage outside the order (a custom one) only replaces an empty one.
        (Some(_), None) => None,
    }
}

/// A per-property validation detail inside a HubSpot error message:
/// `Property values were not valid: [{"isValid":false,"message":"...","error":"INVALID_EMAIL","name":"email"}]`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PropertyError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// The details a validation message carries, if it carries them.
pub(crate) fn property_errors(message: &str) -> Vec<PropertyError> {
    let Some(start) = message.find('[') else {
        return Vec::new();
    };
    let tail = &message[start..];
    let end = tail.rfind(']').map_or(tail.len(), |e| e + 1);
    serde_json::from_str(&tail[..end]).unwrap_or_default()
}

/// A HubSpot refusal of a record as our rejection: the property named, the
/// reason code ours.
pub(crate) fn rejection(category: &str, message: &str) -> CrmError {
    let details = property_errors(message);
    match details.first() {
        Some(d) => CrmError::Rejected {
            code: match d.error.as_str() {
                "INVALID_EMAIL" => "INVALID_EMAIL",
                "INVALID_OPTION" => "INVALID_PICKLIST_VALUE",
                "PROPERTY_DOESNT_EXIST" => "UNKNOWN_FIELD",
                "READ_ONLY_VALUE" => "READ_ONLY_FIELD",
                _ => "CRM_VALIDATION",
            }
            .into(),
            field: d.name.clone(),
            message: format!(
                "HubSpot refused the contact: {}",
                if d.message.is_empty() {
                    message
                } else {
                    &d.message
                }
            ),
        },
        None => CrmError::Rejected {
            code: match category {
                "CONFLICT" => "DUPLICATE_IN_CRM",
                "OBJECT_NOT_FOUND" => "NOT_FOUND_IN_CRM",
                _ => "CRM_VALIDATION",
            }
            .into(),
            field: None,
            message: format!("HubSpot refused the contact: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn property(v: Value) -> WireProperty {
        serde_json::from_value(v).unwrap()
    }

    fn catalog() -> Catalog {
        let props = [
            json!({"name":"email","label":"Email","type":"string","fieldType":"text","hubspotDefined":true}),
            json!({"name":"tier","label":"Tier","type":"enumeration","fieldType":"select",
                "options":[{"label":"Gold","value":"gold"},{"label":"Silver","value":"silver"}]}),
            json!({"name":"topics","label":"Topics","type":"enumeration","fieldType":"checkbox",
                "options":[{"label":"Retail","value":"retail"},{"label":"Energy","value":"energy"}]}),
            json!({"name":"hs_email_optout","label":"Opted out","type":"bool","fieldType":"booleancheckbox","hubspotDefined":true}),
            json!({"name":"score","label":"Score","type":"number","fieldType":"number"}),
            json!({"name":"lifecyclestage","label":"Lifecycle Stage","type":"enumeration","fieldType":"radio","hubspotDefined":true,
                "options":[{"label":"Lead","value":"lead"},{"label":"Customer","value":"customer"}]}),
            json!({"name":"hs_analytics_source","label":"Source","type":"enumeration","fieldType":"select","hubspotDefined":true,
                "calculated":true,"modificationMetadata":{"readOnlyValue":true}}),
            json!({"name":"hubspot_owner_id","label":"Contact owner","type":"enumeration","fieldType":"select","hubspotDefined":true}),
        ];
        Catalog::new(
            props
                .into_iter()
                .map(|p| to_crm_field(&property(p)))
                .collect(),
        )
    }

    fn owners() -> Owners {
        Owners::new(vec![
            CrmUser {
                id: "41".into(),
                email: "ann@acme.test".into(),
                name: "Ann".into(),
                active: true,
            },
            CrmUser {
                id: "42".into(),
                email: "old@acme.test".into(),
                name: "Old".into(),
                active: false,
            },
        ])
    }

    fn values(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn property_types_follow_type_and_field_type() {
        let c = catalog();
        let t = |n: &str| c.fields[n].field_type;
        assert_eq!(t("email"), FieldType::Email);
        assert_eq!(t("tier"), FieldType::Picklist);
        assert_eq!(t("topics"), FieldType::MultiPicklist);
        assert_eq!(t("hs_email_optout"), FieldType::Boolean);
        assert_eq!(t("score"), FieldType::Number);
        assert_eq!(t("hubspot_owner_id"), FieldType::User);
        assert!(c.fields["hs_analytics_source"].read_only);
        assert!(c.fields["tier"].custom && !c.fields["email"].custom);
        assert_eq!(c.fields["tier"].options.as_ref().unwrap()[0].label, "Gold");
    }

    #[test]
    fn reads_strings_into_types_labels_lifecycle_and_owner() {
        let contact = json!({"id":"7","properties":{"email":"Zoe@X.com","tier":"silver","topics":"retail;energy",
            "hs_email_optout":"true","score":"12","lifecyclestage":"evangelist","hubspot_owner_id":"41",
            "lastmodifieddate":"2026-11-21T10:00:00.123Z","firstname":null},
            "updatedAt":"2026-11-21T10:00:00.123Z","archived":false});
        let r = to_record(&contact, &catalog(), Some(&owners())).unwrap();
        assert_eq!(r.email.as_deref(), Some("Zoe@X.com"));
        assert_eq!(r.values["tier"], json!("Silver"));
        assert_eq!(r.values["topics"], json!(["Retail", "Energy"]));
        assert_eq!(r.values["hs_email_optout"], json!(true));
        assert_eq!(r.values["score"], json!(12));
        assert_eq!(r.values["lifecyclestage"], json!("CLIENT"));
        assert_eq!(r.owner_email.as_deref(), Some("ann@acme.test"));
        assert!(!r.values.contains_key("firstname"));
        assert_eq!(r.modified_at.timestamp_subsec_millis(), 123);
    }

    #[test]
    fn writes_option_values_booleans_and_the_active_owner() {
        let v = values(&[
            ("tier", json!("gold")),
            ("topics", json!(["Energy", "Retail"])),
            ("hs_email_optout", json!(false)),
            ("score", json!(3.5)),
            ("firstname", Value::Null),
            ("lifecyclestage", json!("CLIENT")),
        ]);
        let c = Catalog::new(
            catalog()
                .field_list
                .into_iter()
                .chain([to_crm_field(&property(
                    json!({"name":"firstname","label":"First Name","type":"string","fieldType":"text","hubspotDefined":true}),
                ))])
                .collect(),
        );
        let (props, stage) = properties(&v, Some("ANN@acme.test"), &c, Some(&owners())).unwrap();
        assert_eq!(props["tier"], json!("gold"));
        assert_eq!(props["topics"], json!("energy;retail"));
        assert_eq!(props["hs_email_optout"], json!("false"));
        assert_eq!(props["score"], json!("3.5"));
        assert_eq!(props["firstname"], json!(""));
        assert_eq!(props["hubspot_owner_id"], json!("41"));
        assert_eq!(stage.as_deref(), Some("customer"));
        let (props, _) =
            properties(&values(&[]), Some("old@acme.test"), &c, Some(&owners())).unwrap();
        assert!(
            !props.contains_key("hubspot_owner_id"),
            "an archived owner is left out"
        );
    }

    #[test]
    fn an_unknown_option_is_refused_with_the_allowed_values() {
        match properties(
            &values(&[("tier", json!("Platinum"))]),
            None,
            &catalog(),
            None,
        ) {
            Err(CrmError::Rejected {
                code,
                field,
                message,
            }) => {
                assert_eq!(code, "INVALID_PICKLIST_VALUE");
                assert_eq!(field.as_deref(), Some("tier"));
                assert!(message.contains("Gold, Silver"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            properties(&values(&[("hs_analytics_source", json!("x"))]), None, &catalog(), None),
            Err(CrmError::Rejected { code, .. }) if code == "READ_ONLY_FIELD"
        ));
    }

    #[test]
    fn the_lifecycle_stage_only_moves_forward() {
        assert_eq!(forward_stage("customer", None).as_deref(), Some("customer"));
        assert_eq!(
            forward_stage("customer", Some("lead")).as_deref(),
            Some("customer")
        );
        assert_eq!(forward_stage("customer", Some("customer")), None);
        assert_eq!(forward_stage("customer", Some("evangelist")), None);
        assert_eq!(forward_stage("lead", Some("opportunity")), None);
        assert_eq!(forward_stage("customer", Some("other")), None);
        assert_eq!(lifecycle_of("opportunity"), Some("PROSPECT"));
        assert_eq!(lifecycle_of("other"), None);
    }

    #[test]
    fn a_validation_message_names_the_property_and_the_reason() {
        let message = r#"Property values were not valid: [{"isValid":false,"message":"Email address foo is invalid","error":"INVALID_EMAIL","name":"email","localizedErrorMessage":"x"}]"#;
        assert_eq!(
            rejection("VALIDATION_ERROR", message),
            CrmError::Rejected {
                code: "INVALID_EMAIL".into(),
                field: Some("email".into()),
                message: "HubSpot refused the contact: Email address foo is invalid".into(),
            }
        );
        assert!(matches!(
            rejection("VALIDATION_ERROR", "There was a problem with the request."),
            CrmError::Rejected { code, field: None, .. } if code == "CRM_VALIDATION"
        ));
    }
}
