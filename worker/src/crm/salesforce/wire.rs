//! Salesforce's wire shapes (REST API v62.0) and their translation to and
//! from the engine's normalised records. Pure: no I/O, so every rule here is
//! unit-tested.
//!
//! - Records are JSON objects keyed by field api name, with an `attributes`
//!   object; booleans and numbers are JSON values, multi-select picklists
//!   values joined by `;`, date-times `2026-11-21T10:00:00.000+0000`.
//! - Picklists are read as option labels and written as option values,
//!   checked against the describe before anything is sent (F4).
//! - `OwnerId` is read as the owner's e-mail and written from it.
//! - Errors are `[{"message","errorCode","fields"}]` (a call's) or
//!   `{"statusCode","message","fields"}` (a record's in a collection):
//!   [`rejection`] words them all.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use crmsync_entity::enums::CrmModule;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::crm::owners::{Owners, normalise_email};
use crate::crm::picklist::{option_label, option_value};
use crate::crm::{
    CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord, FieldType, PicklistOption,
};

/// The field of a record's owner.
pub(crate) const OWNER: &str = "OwnerId";
/// The field every listing is ordered by.
pub(crate) const MODSTAMP: &str = "SystemModstamp";
/// The company a Lead cannot be created without.
pub(crate) const COMPANY: &str = "Company";

/// The token endpoint's reply, success or refusal.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenReply {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub instance_url: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// One field of `sobjects/{T}/describe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireField {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub defaulted_on_create: bool,
    #[serde(default)]
    pub picklist_values: Vec<WirePicklistValue>,
}

/// One picklist option: Salesforce stores `value`, people see `label`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WirePicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A User row of a SOQL query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireUser {
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_active: bool,
}

/// A page of a SOQL query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryPage {
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub next_records_url: Option<String>,
    #[serde(default)]
    pub records: Vec<Value>,
}

/// One record's result in an sObject Collections reply.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<WireError>,
}

/// An error of a call (`errorCode`) or of one record (`statusCode`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireError {
    #[serde(default, alias = "statusCode")]
    pub error_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The normalised field.
pub(crate) fn to_crm_field(f: &WireField) -> CrmField {
    let field_type = match (f.name.as_str(), f.kind.as_str()) {
        (OWNER, _) => FieldType::User,
        (_, "string" | "textarea" | "encryptedstring") => FieldType::Text,
        (_, "email") => FieldType::Email,
        (_, "phone") => FieldType::Phone,
        (_, "url") => FieldType::Url,
        (_, "boolean") => FieldType::Boolean,
        (_, "int" | "long") => FieldType::Integer,
        (_, "double" | "currency" | "percent") => FieldType::Number,
        (_, "date") => FieldType::Date,
        (_, "datetime") => FieldType::DateTime,
        (_, "picklist" | "combobox") => FieldType::Picklist,
        (_, "multipicklist") => FieldType::MultiPicklist,
        (_, "reference") => FieldType::Lookup,
        _ => FieldType::Other,
    };
    let options = matches!(field_type, FieldType::Picklist | FieldType::MultiPicklist).then(|| {
        f.picklist_values
            .iter()
            .filter(|v| v.active)
            .map(|v| PicklistOption {
                id: v.value.clone(),
                label: v
                    .label
                    .clone()
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| v.value.clone()),
            })
            .collect()
    });
    CrmField {
        api_name: f.name.clone(),
        label: if f.label.is_empty() {
            f.name.clone()
        } else {
            f.label.clone()
        },
        field_type,
        mandatory: f.createable && !f.nillable && !f.defaulted_on_create,
        read_only: !f.updateable,
        custom: f.custom,
        options,
    }
}

/// A User row as a CRM user.
pub(crate) fn to_crm_user(u: &WireUser) -> CrmUser {
    CrmUser {
        id: u.id.clone(),
        email: normalise_email(u.email.as_deref().unwrap_or_default()),
        name: u.name.clone().unwrap_or_default(),
        active: u.is_active,
    }
}

/// What reading and writing records of one sObject needs to know.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// The fields in the describe's order.
    pub field_list: Vec<CrmField>,
    /// Fields by api name.
    pub fields: HashMap<String, CrmField>,
    /// Fields a create may set (`createable`).
    pub createable: Vec<String>,
}

impl Catalog {
    /// The catalog of a describe's fields.
    pub fn new(wire: &[WireField]) -> Self {
        let field_list: Vec<CrmField> = wire.iter().map(to_crm_field).collect();
        Self {
            fields: field_list
                .iter()
                .map(|f| (f.api_name.clone(), f.clone()))
                .collect(),
            createable: wire
                .iter()
                .filter(|f| f.createable)
                .map(|f| f.name.clone())
                .collect(),
            field_list,
        }
    }

    /// The fields a listing selects: the ones the sync needs first, then
    /// every other field whose values can be mapped, while the list stays
    /// under `max_chars` (SOQL travels in the URL).
    pub fn select_list(&self, max_chars: usize) -> String {
        const FIRST: [&str; 6] = ["Id", MODSTAMP, "Email", "LastName", OWNER, "IsConverted"];
        let mut names: Vec<&str> = FIRST
            .iter()
            .copied()
            .filter(|n| *n == "Id" || *n == MODSTAMP || self.fields.contains_key(*n))
            .collect();
        let mut length: usize = names.iter().map(|n| n.len() + 1).sum();
        for f in &self.field_list {
            if f.field_type == FieldType::Other || names.contains(&f.api_name.as_str()) {
                continue;
            }
            if length + f.api_name.len() + 1 > max_chars {
                break;
            }
            length += f.api_name.len() + 1;
            names.push(&f.api_name);
        }
        names.join(",")
    }
}

/// A Salesforce date-time: `2026-11-21T10:00:00.000+0000` (or RFC 3339).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How far back Salesforce's replication calls (`sobjects/{T}/deleted`)
/// reach: an older start is refused (INVALID_REPLICATION_DATE).
pub(crate) const REPLICATION_REACH: chrono::Duration = chrono::Duration::days(30);

/// The `start` and `end` of a deleted-records call covering `since` (the
/// whole reach when `None`) up to `now`. Salesforce ignores seconds, refuses
/// a start beyond its reach, and wants the start more than a minute before
/// the end: the start is `since`'s minute (never before the reach), the end
/// the minute after `now`.
pub(crate) fn replication_window(
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let minute = |t: DateTime<Utc>| {
        t - chrono::Duration::seconds(i64::from(t.second()))
            - chrono::Duration::nanoseconds(i64::from(t.nanosecond()))
    };
    let reach = minute(now - REPLICATION_REACH) + chrono::Duration::minutes(1);
    let end = minute(now) + chrono::Duration::minutes(1);
    let start = since.map_or(reach, |s| minute(s).max(reach));
    let start = start.min(end - chrono::Duration::minutes(2));
    (start, end)
}

/// A replication time as Salesforce's examples write it: `2026-11-21T10:00:00+00:00`.
pub(crate) fn replication_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The `deletedRecords` of a deleted-records reply.
pub(crate) fn deleted_records(body: &Value) -> Result<Vec<DeletedRecord>, CrmError> {
    let rows = body["deletedRecords"].as_array().ok_or_else(|| {
        CrmError::Protocol("Salesforce's deleted-records reply has no deletedRecords".into())
    })?;
    rows.iter()
        .map(|row| {
            let id = row["id"]
                .as_str()
                .filter(|id| is_record_id(id))
                .ok_or_else(|| {
                    CrmError::Protocol(format!("a deleted record has no valid id: {row}"))
                })?;
            Ok(DeletedRecord {
                id: id.to_owned(),
                deleted_at: row["deletedDate"].as_str().and_then(parse_time),
            })
        })
        .collect()
}

/// A date-time as a SOQL literal (no quotes). Salesforce keeps whole
/// seconds; a time with milliseconds keeps them.
pub(crate) fn soql_time(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_millis() == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// A string as a SOQL literal, quotes included.
pub(crate) fn soql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// True for a Salesforce record id (15 or 18 letters and digits): the only
/// ids put in a query.
pub(crate) fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A record of a query as a normalised record.
pub(crate) fn to_record(
    object: &Value,
    module: CrmModule,
    catalog: &Catalog,
    owners: Option<&Owners>,
) -> Result<CrmRecord, CrmError> {
    let fields = object.as_object().ok_or_else(|| {
        CrmError::Protocol(format!("a Salesforce {module} record is not an object"))
    })?;
    let id = fields
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| CrmError::Protocol(format!("a Salesforce {module} record has no Id")))?
        .to_owned();
    let modified_at = fields
        .get(MODSTAMP)
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| {
            CrmError::Protocol(format!("Salesforce record {id}: no valid SystemModstamp"))
        })?;
    let mut values = BTreeMap::new();
    let mut owner_email = None;
    for (name, raw) in fields {
        if matches!(name.as_str(), "attributes" | "Id") {
            continue;
        }
        let value = match (name.as_str(), catalog.fields.get(name)) {
            (OWNER, _) => match raw.as_str().and_then(|id| owners?.email_of(id)) {
                Some(email) => {
                    owner_email = Some(email.to_owned());
                    Value::String(email.to_owned())
                }
                None => continue,
            },
            (_, Some(field)) => value_in(raw, field),
            (_, None) => raw.clone(),
        };
        values.insert(name.clone(), value);
    }
    let email = fields
        .get("Email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    Ok(CrmRecord {
        id,
        module,
        modified_at,
        email,
        values,
        owner_email,
        // A converted lead is owned by sales (S4); its contact makes the
        // platform contact a client (S10).
        converted: fields.get("IsConverted").and_then(Value::as_bool) == Some(true),
    })
}

/// A record's value, normalised: picklists as labels, multi-select
/// picklists as arrays of labels, date-times in RFC 3339.
fn value_in(raw: &Value, field: &CrmField) -> Value {
    let Some(text) = raw.as_str() else {
        return raw.clone();
    };
    match field.field_type {
        FieldType::Picklist => Value::String(option_label(field, text)),
        FieldType::MultiPicklist => Value::Array(
            text.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(option_label(field, p)))
                .collect(),
        ),
        FieldType::DateTime => parse_time(text).map_or_else(
            || raw.clone(),
            |t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ),
        _ => raw.clone(),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn type_error(field: &CrmField, expected: &str) -> CrmError {
    CrmError::Rejected {
        code: "INVALID_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!("Salesforce's {} expects {expected}", field.label),
    }
}

/// A normalised value as Salesforce takes it; `Null` clears.
fn value_out(field: &CrmField, value: &Value) -> Result<Value, CrmError> {
    if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(Value::Null);
    }
    Ok(match field.field_type {
        FieldType::Picklist => Value::String(option_value(field, &plain(value))?),
        FieldType::MultiPicklist => {
            let labels: Vec<String> = match value {
                Value::Array(items) => items.iter().map(plain).collect(),
                other => plain(other)
                    .split(';')
                    .map(|p| p.trim().to_owned())
                    .collect(),
            };
            let values = labels
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| option_value(field, l))
                .collect::<Result<Vec<_>, _>>()?;
            Value::String(values.join(";"))
        }
        FieldType::Boolean => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Value::Bool(false),
            Value::Number(n) => Value::Bool(n.as_f64() != Some(0.0)),
            _ => return Err(type_error(field, "true or false")),
        },
        FieldType::Number | FieldType::Integer => match value {
            Value::Number(_) => value.clone(),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(n) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| serde_json::Number::from_f64(n).map(Value::Number))
                    .ok_or_else(|| type_error(field, "a number"))?,
                Err(_) => return Err(type_error(field, "a number")),
            },
            _ => return Err(type_error(field, "a number")),
        },
        FieldType::Date => match value {
            Value::String(s) if s.trim().len() >= 10 => Value::String(s.trim()[..10].to_owned()),
            _ => return Err(type_error(field, "a date (YYYY-MM-DD)")),
        },
        _ => Value::String(plain(value)),
    })
}

/// The fields of a write, from normalised values: picklists checked,
/// read-only and unknown fields refused, the owner resolved (an owner who
/// is no active user is left out: Salesforce keeps the record's own).
pub(crate) fn record_fields(
    values: &BTreeMap<String, Value>,
    owner_email: Option<&str>,
    creating: bool,
    catalog: &Catalog,
    owners: Option<&Owners>,
) -> Result<Map<String, Value>, CrmError> {
    let mut out = Map::new();
    for (key, value) in values {
        if key == OWNER {
            continue;
        }
        let Some(field) = catalog.fields.get(key) else {
            return Err(CrmError::Rejected {
                code: "UNKNOWN_FIELD".into(),
                field: Some(key.clone()),
                message: format!(
                    "Salesforce has no field \"{key}\" on this object; check the connector's mappings"
                ),
            });
        };
        let writable = if creating {
            catalog.createable.contains(key)
        } else {
            !field.read_only
        };
        if !writable {
            return Err(CrmError::Rejected {
                code: "READ_ONLY_FIELD".into(),
                field: Some(key.clone()),
                message: format!(
                    "{} is read-only in Salesforce: map it FROM_CRM only",
                    field.label
                ),
            });
        }
        out.insert(key.clone(), value_out(field, value)?);
    }
    let owner = owner_email.or_else(|| values.get(OWNER).and_then(Value::as_str));
    if let Some(id) = owner.and_then(|e| owners?.active_id(e)) {
        out.insert(OWNER.into(), Value::String(id.to_owned()));
    }
    Ok(out)
}

/// A Salesforce refusal (of a call or of one record) as our error: the
/// field named, the reason code ours. The one place Salesforce's error
/// codes are read.
pub(crate) fn rejection(error: &WireError) -> CrmError {
    let field = error.fields.first().cloned();
    let said = format!("{}: {}", error.error_code, error.message);
    let rejected = |code: &str, field: Option<String>, message: String| CrmError::Rejected {
        code: code.into(),
        field,
        message,
    };
    match error.error_code.as_str() {
        // Too many long requests at once (ConcurrentPerOrgLongTxn): wait.
        "REQUEST_LIMIT_EXCEEDED" if error.message.contains("Concurrent") => {
            CrmError::RateLimited { retry_after: None }
        }
        "REQUEST_LIMIT_EXCEEDED" => CrmError::DailyLimit(format!(
            "Salesforce's daily API request limit is spent ({said})"
        )),
        "INVALID_SESSION_ID" => CrmError::Unauthorized(format!(
            "Salesforce refused the session ({said})"
        )),
        "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW" => {
            CrmError::Unavailable(format!("Salesforce is busy: {said}"))
        }
        "REQUIRED_FIELD_MISSING" if field.as_deref() == Some("LastName") => rejected(
            "MISSING_LAST_NAME",
            field,
            "Salesforce requires a last name (LastName): map a last name or give the contact one"
                .into(),
        ),
        "REQUIRED_FIELD_MISSING" => {
            let names = if error.fields.is_empty() {
                "a field".to_owned()
            } else {
                error.fields.join(", ")
            };
            rejected(
                "CRM_VALIDATION",
                field,
                format!("Salesforce requires {names}: {}", error.message),
            )
        }
        "INVALID_EMAIL_ADDRESS" => rejected(
            "INVALID_EMAIL",
            field.or_else(|| Some("Email".into())),
            format!("Salesforce refused the e-mail address: {}", error.message),
        ),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" | "INVALID_PICKLIST_VALUE" => rejected(
            "INVALID_PICKLIST_VALUE",
            field,
            format!(
                "Salesforce refused a value outside the picklist: {}",
                error.message
            ),
        ),
        "DUPLICATES_DETECTED" | "DUPLICATE_VALUE" => rejected(
            "DUPLICATE_IN_CRM",
            field,
            format!(
                "a Salesforce duplicate rule blocked the record ({}): merge the duplicates in Salesforce or relax the rule",
                error.message
            ),
        ),
        "CANNOT_UPDATE_CONVERTED_LEAD" => rejected(
            "CONVERTED_LEAD",
            None,
            "the lead was converted in Salesforce and is owned by sales: Salesforce does not let us update it".into(),
        ),
        "ENTITY_IS_DELETED" | "NOT_FOUND" | "INVALID_ID_FIELD" => rejected(
            "NOT_FOUND_IN_CRM",
            field,
            format!("the Salesforce record is deleted or unknown ({said})"),
        ),
        "INVALID_QUERY_LOCATOR" => rejected(
            "INVALID_QUERY_LOCATOR",
            None,
            format!("Salesforce no longer knows the query's locator ({said})"),
        ),
        "INVALID_FIELD_FOR_INSERT_UPDATE" => rejected(
            "READ_ONLY_FIELD",
            field,
            format!("Salesforce does not let us write the field: {}", error.message),
        ),
        "INVALID_FIELD" => rejected(
            "UNKNOWN_FIELD",
            field,
            format!("Salesforce does not know the field: {}", error.message),
        ),
        _ => rejected(
            "CRM_VALIDATION",
            field,
            format!("Salesforce refused the record: {said}"),
        ),
    }
}

/// The usage a reply's `Sforce-Limit-Info` reports: (used, allowed).
pub(crate) fn api_usage(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe() -> Vec<WireField> {
        serde_json::from_value(json!([
            {"name":"Id","label":"Lead ID","type":"id","nillable":false,"createable":false,"updateable":false,"defaultedOnCreate":true},
            {"name":"Email","label":"Email","type":"email","nillable":true,"createable":true,"updateable":true},
            {"name":"LastName","label":"Last Name","type":"string","nillable":false,"createable":true,"updateable":true},
            {"name":"Company","label":"Company","type":"string","nillable":false,"createable":true,"updateable":true},
            {"name":"HasOptedOutOfEmail","label":"Email Opt Out","type":"boolean","nillable":false,"createable":true,"updateable":true,"defaultedOnCreate":true},
            {"name":"Status","label":"Lead Status","type":"picklist","nillable":false,"createable":true,"updateable":true,"defaultedOnCreate":true,"restrictedPicklist":true,
             "picklistValues":[{"value":"Open - Not Contacted","label":"Open - Not Contacted","active":true},{"value":"Closed","label":"Closed - Converted","active":true},{"value":"Old","label":"Old","active":false}]},
            {"name":"Topics__c","label":"Topics","type":"multipicklist","nillable":true,"createable":true,"updateable":true,"custom":true,
             "picklistValues":[{"value":"retail","label":"Retail","active":true},{"value":"energy","label":"Energy","active":true}]},
            {"name":"OwnerId","label":"Owner ID","type":"reference","nillable":false,"createable":true,"updateable":true,"defaultedOnCreate":true},
            {"name":"ConvertedContactId","label":"Converted Contact ID","type":"reference","nillable":true,"createable":false,"updateable":false},
            {"name":"NumberOfEmployees","label":"Employees","type":"int","nillable":true,"createable":true,"updateable":true},
            {"name":"AnnualRevenue","label":"Annual Revenue","type":"currency","nillable":true,"createable":true,"updateable":true},
            {"name":"SystemModstamp","label":"System Modstamp","type":"datetime","nillable":false,"createable":false,"updateable":false,"defaultedOnCreate":true},
            {"name":"Address","label":"Address","type":"address","nillable":true,"createable":false,"updateable":false},
            {"name":"Plezi_URL__c","label":"Plezi URL","type":"url","nillable":true,"createable":true,"updateable":true,"custom":true}
        ]))
        .unwrap()
    }

    fn owners() -> Owners {
        Owners::new(vec![
            CrmUser {
                id: "005000000000001AAA".into(),
                email: "ann@acme.test".into(),
                name: "Ann".into(),
                active: true,
            },
            CrmUser {
                id: "005000000000002AAA".into(),
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
    fn describe_types_mandatory_and_read_only_follow_salesforce() {
        let c = Catalog::new(&describe());
        let f = |n: &str| c.fields[n].clone();
        assert_eq!(f("Email").field_type, FieldType::Email);
        assert_eq!(f("OwnerId").field_type, FieldType::User);
        assert_eq!(f("ConvertedContactId").field_type, FieldType::Lookup);
        assert_eq!(f("NumberOfEmployees").field_type, FieldType::Integer);
        assert_eq!(f("AnnualRevenue").field_type, FieldType::Number);
        assert_eq!(f("HasOptedOutOfEmail").field_type, FieldType::Boolean);
        assert_eq!(f("Plezi_URL__c").field_type, FieldType::Url);
        assert_eq!(f("Address").field_type, FieldType::Other);
        assert!(f("LastName").mandatory && f("Company").mandatory);
        assert!(!f("HasOptedOutOfEmail").mandatory, "defaulted on create");
        assert!(!f("Id").mandatory && f("Id").read_only);
        assert!(f("Plezi_URL__c").custom && !f("Email").custom);
        let labels: Vec<_> = f("Status")
            .options
            .unwrap()
            .into_iter()
            .map(|o| o.label)
            .collect();
        assert_eq!(
            labels,
            ["Open - Not Contacted", "Closed - Converted"],
            "active only"
        );
        let select = c.select_list(10_000);
        assert!(
            select.starts_with("Id,SystemModstamp,Email,LastName,OwnerId"),
            "{select}"
        );
        assert!(!select.contains("Address"));
        assert_eq!(
            c.select_list(30).split(',').count(),
            5,
            "{}",
            c.select_list(30)
        );
    }

    #[test]
    fn reads_labels_booleans_times_the_owner_and_conversion() {
        let record = json!({
            "attributes": {"type": "Lead", "url": "/services/data/v62.0/sobjects/Lead/00Q000000000001AAA"},
            "Id": "00Q000000000001AAA", "Email": "Zoe@X.com", "Status": "Closed",
            "Topics__c": "retail;energy", "HasOptedOutOfEmail": true, "NumberOfEmployees": 12,
            "OwnerId": "005000000000001AAA", "IsConverted": true,
            "ConvertedContactId": "003000000000001AAA", "Company": null,
            "SystemModstamp": "2026-11-21T10:00:00.000+0000"
        });
        let r = to_record(
            &record,
            CrmModule::Leads,
            &Catalog::new(&describe()),
            Some(&owners()),
        )
        .unwrap();
        assert_eq!(r.id, "00Q000000000001AAA");
        assert_eq!(r.email.as_deref(), Some("Zoe@X.com"));
        assert_eq!(r.values["Status"], json!("Closed - Converted"));
        assert_eq!(r.values["Topics__c"], json!(["Retail", "Energy"]));
        assert_eq!(r.values["HasOptedOutOfEmail"], json!(true));
        assert_eq!(r.values["NumberOfEmployees"], json!(12));
        assert_eq!(r.values["OwnerId"], json!("ann@acme.test"));
        assert_eq!(r.values["Company"], Value::Null);
        assert_eq!(r.values["ConvertedContactId"], json!("003000000000001AAA"));
        assert_eq!(r.owner_email.as_deref(), Some("ann@acme.test"));
        assert!(r.converted);
        assert!(!r.values.contains_key("attributes") && !r.values.contains_key("Id"));
        assert_eq!(r.modified_at, parse_time("2026-11-21T10:00:00Z").unwrap());
    }

    #[test]
    fn writes_option_values_types_and_the_active_owner_only() {
        let c = Catalog::new(&describe());
        let v = values(&[
            ("Status", json!("closed - converted")),
            ("Topics__c", json!(["Energy", "Retail"])),
            ("HasOptedOutOfEmail", json!("true")),
            ("NumberOfEmployees", json!("40")),
            ("Email", Value::Null),
            ("OwnerId", json!("ANN@acme.test")),
        ]);
        let out = record_fields(&v, None, true, &c, Some(&owners())).unwrap();
        assert_eq!(out["Status"], json!("Closed"));
        assert_eq!(out["Topics__c"], json!("energy;retail"));
        assert_eq!(out["HasOptedOutOfEmail"], json!(true));
        assert_eq!(out["NumberOfEmployees"], json!(40));
        assert_eq!(out["Email"], Value::Null);
        assert_eq!(out["OwnerId"], json!("005000000000001AAA"));
        let out = record_fields(
            &values(&[]),
            Some("old@acme.test"),
            false,
            &c,
            Some(&owners()),
        )
        .unwrap();
        assert!(
            !out.contains_key("OwnerId"),
            "an inactive owner is left out"
        );
    }

    #[test]
    fn a_value_outside_a_picklist_or_a_read_only_field_is_refused_before_sending() {
        let c = Catalog::new(&describe());
        match record_fields(
            &values(&[("Status", json!("Platinum"))]),
            None,
            true,
            &c,
            None,
        ) {
            Err(CrmError::Rejected {
                code,
                field,
                message,
            }) => {
                assert_eq!(code, "INVALID_PICKLIST_VALUE");
                assert_eq!(field.as_deref(), Some("Status"));
                assert!(message.contains("Open - Not Contacted"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            record_fields(&values(&[("ConvertedContactId", json!("x"))]), None, false, &c, None),
            Err(CrmError::Rejected { code, .. }) if code == "READ_ONLY_FIELD"
        ));
        assert!(matches!(
            record_fields(&values(&[("Nope__c", json!("x"))]), None, false, &c, None),
            Err(CrmError::Rejected { code, field: Some(f), .. }) if code == "UNKNOWN_FIELD" && f == "Nope__c"
        ));
    }

    #[test]
    fn salesforce_error_codes_become_ours_with_the_field_named() {
        let e = |code: &str, fields: &[&str]| {
            rejection(&WireError {
                error_code: code.into(),
                message: "m".into(),
                fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            })
        };
        let code_field = |e: CrmError| match e {
            CrmError::Rejected { code, field, .. } => (code, field),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code_field(e("REQUIRED_FIELD_MISSING", &["Company"])),
            ("CRM_VALIDATION".into(), Some("Company".into()))
        );
        assert_eq!(
            code_field(e("REQUIRED_FIELD_MISSING", &["LastName"])).0,
            "MISSING_LAST_NAME"
        );
        assert_eq!(
            code_field(e("INVALID_EMAIL_ADDRESS", &[])),
            ("INVALID_EMAIL".into(), Some("Email".into()))
        );
        assert_eq!(
            code_field(e("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", &["Status"])),
            ("INVALID_PICKLIST_VALUE".into(), Some("Status".into()))
        );
        assert_eq!(
            code_field(e("DUPLICATES_DETECTED", &[])).0,
            "DUPLICATE_IN_CRM"
        );
        assert_eq!(
            code_field(e("CANNOT_UPDATE_CONVERTED_LEAD", &[])),
            ("CONVERTED_LEAD".into(), None)
        );
        assert_eq!(
            code_field(e("ENTITY_IS_DELETED", &[])).0,
            "NOT_FOUND_IN_CRM"
        );
        assert_eq!(
            code_field(e("INVALID_FIELD_FOR_INSERT_UPDATE", &["IsConverted"])).0,
            "READ_ONLY_FIELD"
        );
        assert!(matches!(
            e("REQUEST_LIMIT_EXCEEDED", &[]),
            CrmError::DailyLimit(_)
        ));
        let concurrent = rejection(&WireError {
            error_code: "REQUEST_LIMIT_EXCEEDED".into(),
            message: "ConcurrentPerOrgLongTxn Limit exceeded.".into(),
            fields: Vec::new(),
        });
        assert!(matches!(concurrent, CrmError::RateLimited { .. }));
        assert!(matches!(
            e("UNABLE_TO_LOCK_ROW", &[]),
            CrmError::Unavailable(_)
        ));
        let record: WireError = serde_json::from_value(
            json!({"statusCode":"INVALID_EMAIL_ADDRESS","message":"bad","fields":["Email"]}),
        )
        .unwrap();
        assert_eq!(record.error_code, "INVALID_EMAIL_ADDRESS");
    }

    #[test]
    fn literals_usage_and_ids_are_read_and_written_safely() {
        assert_eq!(soql_string("o'hara\\x"), "'o\\'hara\\\\x'");
        let t = parse_time("2026-11-21T10:00:00.000+0000").unwrap();
        assert_eq!(soql_time(t), "2026-11-21T10:00:00Z");
        let ms = parse_time("2026-11-21T10:00:00.250+0100").unwrap();
        assert_eq!(soql_time(ms), "2026-11-21T09:00:00.250Z");
        assert_eq!(api_usage("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            api_usage("per-app-api-usage=1/10(appName=x); api-usage=7/100"),
            Some((7, 100))
        );
        assert_eq!(api_usage("nothing"), None);
        assert!(is_record_id("00Q000000000001AAA") && is_record_id("00Q000000000001"));
        assert!(!is_record_id("00Q' OR Id != '") && !is_record_id("short"));
    }
}
