//! SAP C4C's wire format: `$metadata` properties, OData v2 JSON entities,
//! `/Date(ms)/` times and ETags, `$batch` multipart bodies, and OData error
//! bodies. The one place C4C's names and errors are read.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use crmsync_entity::enums::CrmModule;
use serde_json::{Map, Value};

use crate::crm::owners::{Owners, normalise_email};
use crate::crm::picklist::{option_label, option_value};
use crate::crm::{CrmError, CrmField, CrmRecord, CrmUser, FieldType, PicklistOption};

/// The OData service's path under a tenant's host.
pub(crate) const SERVICE_PATH: &str = "/sap/c4c/odata/v1/c4codataapi";
/// The modification time every listing is ordered and filtered by.
pub(crate) const MODIFIED: &str = "EntityLastChangedOn";
/// A lead's company (or an account) is required.
pub(crate) const COMPANY: &str = "Company";
/// A lead's name is required.
pub(crate) const NAME: &str = "Name";
/// The lead's contact e-mail, the key a lost create is found by.
pub(crate) const LEAD_EMAIL: &str = "ContactEMail";
/// Set when a lead was converted (its contact).
pub(crate) const CONTACT_ID: &str = "ContactID";
/// A lead's owner: an employee's business partner id (an individual
/// customer's `OwnerID` reads under this name), read and written as the
/// employee's e-mail.
pub(crate) const OWNER: &str = "OwnerPartyID";
/// The employees, C4C's users.
pub(crate) const EMPLOYEES: &str = "EmployeeCollection";
/// What an employee is read with.
pub(crate) const EMPLOYEE_SELECT: &str =
    "ObjectID,EmployeeID,BusinessPartnerID,FirstName,LastName,Email,UserLockedIndicator";
/// The suffix of key user extension fields.
const EXTENSION: &str = "_KUT";

/// The entity set of a module.
pub(crate) fn entity_set(module: CrmModule) -> Result<&'static str, CrmError> {
    match module {
        CrmModule::Leads => Ok("LeadCollection"),
        CrmModule::Contacts => Ok("ContactCollection"),
        CrmModule::Customers => Ok("IndividualCustomerCollection"),
        other => Err(CrmError::Protocol(format!(
            "SAP C4C has Leads, Contacts and Customers, not {other}"
        ))),
    }
}

/// The entity type of a module in `$metadata`.
fn entity_type(module: CrmModule) -> &'static str {
    match module {
        CrmModule::Contacts => "Contact",
        CrmModule::Customers => "IndividualCustomer",
        _ => "Lead",
    }
}

/// A property of a module under the lead's name: a contact's and an
/// individual customer's person fields and owner read as the lead's, so
/// that one mapping reads every module (a converted lead's contact carries
/// the lead's person).
fn lead_name(module: CrmModule, name: &str) -> &str {
    if module == CrmModule::Leads {
        return name;
    }
    match name {
        "FirstName" => "ContactFirstName",
        "LastName" => "ContactLastName",
        "Email" => LEAD_EMAIL,
        "Phone" => "ContactPhone",
        "Mobile" => "ContactMobile",
        "OwnerID" => OWNER,
        "OwnerName" => "OwnerPartyName",
        other => other,
    }
}

/// An employee as a user: its business partner id (what owner properties
/// hold), its e-mail, active unless its user is locked.
pub(crate) fn to_crm_user(employee: &Value) -> Option<CrmUser> {
    let id = employee["BusinessPartnerID"]
        .as_str()
        .filter(|id| !id.is_empty())
        .or_else(|| employee["EmployeeID"].as_str())?;
    let text = |key: &str| employee[key].as_str().unwrap_or_default().trim();
    let name = format!("{} {}", text("FirstName"), text("LastName"));
    Some(CrmUser {
        id: id.to_owned(),
        email: normalise_email(text("Email")),
        name: name.trim().to_owned(),
        active: employee["UserLockedIndicator"].as_bool() != Some(true),
    })
}

/// A property of `$metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    pub name: String,
    pub edm_type: String,
    pub max_length: Option<usize>,
    pub creatable: bool,
    pub updatable: bool,
    /// The code list set of a code property (`c4c:value-help`).
    pub value_help: Option<String>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The properties of a module's entity type in a `$metadata` document.
pub(crate) fn properties(xml: &str, module: CrmModule) -> Result<Vec<Property>, CrmError> {
    let open = format!("<EntityType Name=\"{}\"", entity_type(module));
    let start = xml.find(&open).ok_or_else(|| {
        CrmError::Protocol(format!(
            "SAP C4C's $metadata has no entity type {}",
            entity_type(module)
        ))
    })?;
    let body = &xml[start..];
    let body = &body[..body.find("</EntityType>").unwrap_or(body.len())];
    Ok(body
        .split("<Property ")
        .skip(1)
        .filter_map(|rest| {
            let tag = format!(" {}", &rest[..rest.find('>').unwrap_or(rest.len())]);
            Some(Property {
                name: attribute(&tag, "Name")?,
                edm_type: attribute(&tag, "Type").unwrap_or_default(),
                max_length: attribute(&tag, "MaxLength").and_then(|m| m.parse().ok()),
                creatable: attribute(&tag, "sap:creatable").as_deref() != Some("false"),
                updatable: attribute(&tag, "sap:updatable").as_deref() != Some("false"),
                value_help: attribute(&tag, "c4c:value-help"),
            })
        })
        .collect())
}

/// A module's fields as the engine sees them, by api name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub fields: BTreeMap<String, CrmField>,
    pub field_list: Vec<CrmField>,
    /// Properties a create may carry.
    pub creatable: Vec<String>,
    /// Text lengths.
    pub max_length: BTreeMap<String, usize>,
}

impl Catalog {
    /// The catalog of `module` from its properties and the code lists
    /// (code list set -> `(Code, Description)`).
    pub fn new(
        module: CrmModule,
        props: &[Property],
        code_lists: &BTreeMap<String, Vec<(String, String)>>,
    ) -> Self {
        let mut catalog = Self::default();
        for p in props {
            if matches!(p.name.as_str(), "ObjectID" | "ETag") {
                continue;
            }
            let name = lead_name(module, &p.name).to_owned();
            let field = to_crm_field(module, &name, p, code_lists);
            if p.creatable {
                catalog.creatable.push(name.clone());
            }
            if let Some(len) = p.max_length.filter(|_| p.value_help.is_none()) {
                catalog.max_length.insert(name.clone(), len);
            }
            catalog.field_list.push(field.clone());
            catalog.fields.insert(name, field);
        }
        catalog
    }
}

fn to_crm_field(
    module: CrmModule,
    name: &str,
    p: &Property,
    code_lists: &BTreeMap<String, Vec<(String, String)>>,
) -> CrmField {
    let custom = name.ends_with(EXTENSION);
    let lower = name.to_ascii_lowercase();
    let field_type = match (p.edm_type.as_str(), &p.value_help) {
        (_, Some(_)) => FieldType::Picklist,
        ("Edm.Boolean", _) => FieldType::Boolean,
        ("Edm.DateTimeOffset" | "Edm.DateTime", _) => FieldType::DateTime,
        ("Edm.Decimal" | "Edm.Double", _) => FieldType::Number,
        ("Edm.Int32" | "Edm.Int64" | "Edm.Int16", _) => FieldType::Integer,
        ("Edm.String", _) if lower.contains("email") => FieldType::Email,
        ("Edm.String", _) if lower.contains("phone") || lower.contains("mobile") => {
            FieldType::Phone
        }
        ("Edm.String", _) if lower.ends_with("url") || lower.ends_with("url_kut") => FieldType::Url,
        ("Edm.String", _) if name == OWNER => FieldType::User,
        ("Edm.String", _) if name.ends_with("PartyID") => FieldType::Lookup,
        ("Edm.String", _) => FieldType::Text,
        _ => FieldType::Other,
    };
    let options = p.value_help.as_ref().map(|set| {
        code_lists
            .get(set)
            .into_iter()
            .flatten()
            .map(|(code, description)| PicklistOption {
                id: code.clone(),
                label: if description.is_empty() {
                    code.clone()
                } else {
                    description.clone()
                },
            })
            .collect()
    });
    CrmField {
        api_name: name.to_owned(),
        // Extension fields read as the key user named them, without `_KUT`.
        label: name.strip_suffix(EXTENSION).unwrap_or(name).to_owned(),
        field_type,
        mandatory: module == CrmModule::Leads && name == NAME,
        read_only: !p.updatable,
        custom,
        options,
    }
}

/// A code list set's entries: `(Code, Description)`.
pub(crate) fn code_list(body: &Value) -> Vec<(String, String)> {
    results(body)
        .iter()
        .filter_map(|e| {
            Some((
                e["Code"].as_str()?.to_owned(),
                e["Description"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The entries of a collection reply (`{"d": {"results": [...]}}`).
pub(crate) fn results(body: &Value) -> &[Value] {
    body["d"]["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `/Date(ms)/` or `/Date(ms+mmmm)/` (the offset does not move the instant), or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Some(inner) = text
        .trim()
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        let digits = inner
            .char_indices()
            .find(|(i, c)| *i > 0 && matches!(c, '+' | '-'))
            .map_or(inner, |(i, _)| &inner[..i]);
        return digits
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis);
    }
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The time an ETag carries (`W/"datetimeoffset'2026-11-21T10%3A00%3A00.1230000Z'"`).
pub(crate) fn etag_time(etag: &str) -> Option<DateTime<Utc>> {
    let inner = etag.split('\'').nth(1)?;
    parse_time(&inner.replace("%3A", ":").replace("%3a", ":"))
}

/// A time as a `$filter` literal, to the millisecond.
pub(crate) fn filter_time(t: DateTime<Utc>) -> String {
    format!(
        "datetimeoffset'{}'",
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// A string as a `$filter` literal (`''` escapes a quote).
pub(crate) fn filter_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// True for an ObjectID (C4C's are 32 hexadecimal digits; letters and
/// digits are accepted): the only ids put in a filter or a path.
pub(crate) fn is_object_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 70 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// An entity of a reply as a normalised record.
pub(crate) fn to_record(
    entity: &Value,
    module: CrmModule,
    catalog: &Catalog,
    owners: Option<&Owners>,
) -> Result<CrmRecord, CrmError> {
    let fields = entity
        .as_object()
        .ok_or_else(|| CrmError::Protocol(format!("a SAP C4C {module} entity is not an object")))?;
    let id = fields
        .get("ObjectID")
        .and_then(Value::as_str)
        .ok_or_else(|| CrmError::Protocol(format!("a SAP C4C {module} entity has no ObjectID")))?
        .to_owned();
    let modified_at = fields
        .get(MODIFIED)
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| CrmError::Protocol(format!("SAP C4C entity {id}: no valid {MODIFIED}")))?;
    let mut values = BTreeMap::new();
    let mut owner_email = None;
    for (name, raw) in fields {
        if matches!(name.as_str(), "__metadata" | "ObjectID" | "ETag") {
            continue;
        }
        let name = lead_name(module, name);
        let value = match (name, catalog.fields.get(name)) {
            // The owner reads as its employee's e-mail; an owner who is no
            // employee (or has none) is left out.
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
        values.insert(name.to_owned(), value);
    }
    let email = values
        .get(LEAD_EMAIL)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    // A lead is converted once C4C names its contact (the rep's conversion
    // sets ContactID and qualifies the lead).
    let converted = module == CrmModule::Leads
        && fields
            .get(CONTACT_ID)
            .and_then(Value::as_str)
            .is_some_and(|c| !c.trim().is_empty());
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

/// A value read, normalised: codes as their descriptions, times in RFC 3339.
fn value_in(raw: &Value, field: &CrmField) -> Value {
    let Some(text) = raw.as_str() else {
        return raw.clone();
    };
    match field.field_type {
        FieldType::Picklist if text.is_empty() => Value::Null,
        FieldType::Picklist => Value::String(option_label(field, text)),
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
        message: format!("SAP C4C's {} expects {expected}", field.api_name),
    }
}

/// A normalised value as C4C takes it; `Null` clears. Codes are checked
/// against their code list before anything is sent.
fn value_out(
    field: &CrmField,
    value: &Value,
    max_length: Option<usize>,
) -> Result<Value, CrmError> {
    if value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty()) {
        return Ok(Value::Null);
    }
    Ok(match field.field_type {
        FieldType::Picklist => Value::String(option_value(field, &plain(value))?),
        FieldType::Boolean => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(type_error(field, "true or false")),
        },
        FieldType::DateTime => match parse_time(&plain(value)) {
            Some(t) => Value::String(format!("/Date({})/", t.timestamp_millis())),
            None => return Err(type_error(field, "a date and time")),
        },
        _ => {
            let text = plain(value);
            if let Some(max) = max_length
                && text.chars().count() > max
            {
                return Err(CrmError::Rejected {
                    code: "CRM_VALIDATION".into(),
                    field: Some(field.api_name.clone()),
                    message: format!(
                        "SAP C4C keeps at most {max} characters in {}",
                        field.api_name
                    ),
                });
            }
            Value::String(text)
        }
    })
}

/// The properties of a write, from normalised values: codes checked,
/// read-only and unknown properties refused before sending, the owner
/// resolved from its e-mail (an owner who is no active employee is left
/// out: C4C keeps the record's own).
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
                    "SAP C4C has no property \"{key}\" on leads; check the connector's mappings"
                ),
            });
        };
        let writable = if creating {
            catalog.creatable.contains(key)
        } else {
            !field.read_only
        };
        if !writable {
            return Err(CrmError::Rejected {
                code: "READ_ONLY_FIELD".into(),
                field: Some(key.clone()),
                message: format!("{key} is read-only in SAP C4C: map it FROM_CRM only"),
            });
        }
        out.insert(
            key.clone(),
            value_out(field, value, catalog.max_length.get(key).copied())?,
        );
    }
    let owner = owner_email.or_else(|| values.get(OWNER).and_then(Value::as_str));
    if let Some(id) = owner.and_then(|e| owners?.active_id(e))
        && catalog.fields.contains_key(OWNER)
    {
        out.insert(OWNER.into(), Value::String(id.to_owned()));
    }
    Ok(out)
}

/// An OData error body (`{"error": {"code", "message": {"value"}}}`), or
/// the status's words when the body is none (an HTML logon page, text).
pub(crate) fn odata_error(text: &str, status: u16) -> (String, String) {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or_default().to_owned();
    let message = error["message"]["value"]
        .as_str()
        .or_else(|| error["message"].as_str())
        .map(str::to_owned);
    match message {
        Some(message) => (code, message),
        None => {
            let said = text.trim();
            let said = if said.is_empty() || said.starts_with('<') {
                format!("HTTP {status}")
            } else {
                said.chars().take(200).collect()
            };
            (code, said)
        }
    }
}

/// The property an error message names: `Property 'X'...` or `... (X)`.
fn named_property(message: &str) -> Option<String> {
    if let Some(rest) = message.split("Property '").nth(1) {
        return rest.split('\'').next().map(str::to_owned);
    }
    let start = message.rfind('(')? + 1;
    let end = message[start..].find(')')? + start;
    let name = &message[start..end];
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| name.to_owned())
        .filter(|n| !n.is_empty())
}

/// A refused call or operation as our error: the one place C4C's statuses
/// and error bodies become [`CrmError`]s. C4C's codes are often empty or
/// internal message ids, so the status and the message decide.
pub(crate) fn classify(
    status: u16,
    text: &str,
    retry_after: Option<std::time::Duration>,
) -> CrmError {
    let (code, message) = odata_error(text, status);
    match status {
        401 => CrmError::Unauthorized(format!(
            "SAP C4C refused the technical user's credentials ({message})"
        )),
        403 => CrmError::Unauthorized(format!(
            "the SAP C4C user may not do this ({message}): give the technical user's business role access to leads and contacts"
        )),
        429 if message.to_ascii_lowercase().contains("today") => CrmError::DailyLimit(format!(
            "SAP C4C's request limit for today is reached ({message})"
        )),
        429 => CrmError::RateLimited { retry_after },
        s if s >= 500 => CrmError::Unavailable(format!("SAP C4C answered {s}: {message}")),
        404 => CrmError::Rejected {
            code: "NOT_FOUND_IN_CRM".into(),
            field: None,
            message: format!("SAP C4C does not know this record: {message}"),
        },
        412 => CrmError::Rejected {
            code: "CONCURRENT_CHANGE".into(),
            field: None,
            message: format!("the record changed in SAP C4C meanwhile: {message}"),
        },
        s if s >= 400 => {
            let field = named_property(&message);
            let code = match code.as_str() {
                "INVALID_CODE" => "INVALID_PICKLIST_VALUE",
                "INVALID_PROPERTY" => "UNKNOWN_FIELD",
                "PROPERTY_NOT_MODIFIABLE" => "READ_ONLY_FIELD",
                _ => "CRM_VALIDATION",
            };
            CrmError::Rejected {
                code: code.into(),
                field,
                message: format!("SAP C4C refused the record: {message}"),
            }
        }
        s => CrmError::Protocol(format!("SAP C4C answered {s}: {message}")),
    }
}

/// One operation of a `$batch`, in its own changeset.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub method: &'static str,
    /// Relative to the service root: `LeadCollection('…')`.
    pub target: String,
    pub if_match: Option<String>,
    pub body: Value,
}

/// A `$batch` body: one changeset per operation, so that a refused
/// operation rolls back its own record only.
pub(crate) fn batch_body(boundary: &str, operations: &[Operation]) -> String {
    let mut out = String::new();
    for (i, op) in operations.iter().enumerate() {
        let changeset = format!("changeset_{boundary}_{i}");
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        ));
        out.push_str(&format!(
            "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ));
        out.push_str(&format!(
            "{} {} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n",
            op.method, op.target
        ));
        if let Some(etag) = &op.if_match {
            out.push_str(&format!("If-Match: {etag}\r\n"));
        }
        out.push_str(&format!("\r\n{}\r\n--{changeset}--\r\n", op.body));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// One operation's response in a `$batch` reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpReply {
    pub status: u16,
    pub etag: Option<String>,
    pub body: String,
}

/// The boundary of a multipart content type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The responses of a `$batch` reply, one per changeset, in order: the
/// first response of each part (a changeset of one operation answers one).
pub(crate) fn batch_replies(content_type: &str, text: &str) -> Result<Vec<OpReply>, CrmError> {
    let boundary = boundary_of(content_type).ok_or_else(|| {
        CrmError::Protocol(format!(
            "a $batch reply of type {content_type} has no boundary"
        ))
    })?;
    let delimiter = format!("--{boundary}");
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for part in text.split(&delimiter).skip(1) {
        if part.starts_with("--") {
            break;
        }
        out.push(first_response(part)?);
    }
    Ok(out)
}

fn first_response(part: &str) -> Result<OpReply, CrmError> {
    let bad = || CrmError::Protocol("a $batch reply part holds no HTTP response".into());
    let start = part.find("HTTP/1.1 ").ok_or_else(bad)?;
    let mut lines = part[start..].split('\n');
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let mut etag = None;
    for line in lines.by_ref() {
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("etag")
        {
            etag = Some(v.trim().to_owned());
        }
    }
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("--")).collect();
    Ok(OpReply {
        status,
        etag,
        body: body.join("\n").trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"<Schema><EntityType Name="Lead"><Key><PropertyRef Name="ObjectID"/></Key><Property Name="ObjectID" Type="Edm.String" Nullable="false" MaxLength="70" sap:creatable="false" sap:updatable="false" sap:label="ObjectID"/><Property Name="Name" Type="Edm.String" MaxLength="255" sap:creatable="true" sap:updatable="true"/><Property Name="ContactEMail" Type="Edm.String" MaxLength="255" sap:creatable="true" sap:updatable="true"/><Property Name="ContactID" Type="Edm.String" sap:creatable="false" sap:updatable="false"/><Property Name="EntityLastChangedOn" Type="Edm.DateTimeOffset" Precision="7" sap:creatable="false" sap:updatable="false"/><Property Name="Tier_KUT" Type="Edm.String" MaxLength="10" c4c:value-help="LeadTier_KUTCollection" sap:creatable="true" sap:updatable="true"/></EntityType><EntityType Name="Contact"><Property Name="Email" Type="Edm.String" sap:creatable="true" sap:updatable="true"/></EntityType></Schema>"#;

    fn catalog() -> Catalog {
        let lists = BTreeMap::from([(
            "LeadTier_KUTCollection".to_owned(),
            vec![
                ("1".to_owned(), "Gold".to_owned()),
                ("2".to_owned(), "Silver".to_owned()),
            ],
        )]);
        Catalog::new(
            CrmModule::Leads,
            &properties(METADATA, CrmModule::Leads).unwrap(),
            &lists,
        )
    }

    #[test]
    fn metadata_gives_types_code_lists_and_read_only_properties() {
        let c = catalog();
        assert_eq!(c.fields["ContactEMail"].field_type, FieldType::Email);
        assert!(c.fields["ContactID"].read_only);
        assert!(!c.creatable.contains(&"ContactID".to_owned()));
        let tier = &c.fields["Tier_KUT"];
        assert_eq!(tier.field_type, FieldType::Picklist);
        assert!(tier.custom);
        assert_eq!(tier.label, "Tier");
        assert_eq!(tier.options.as_ref().unwrap()[0].label, "Gold");
        assert!(c.fields["Name"].mandatory);
        assert!(!c.fields.contains_key("ObjectID"));
        let contact = properties(METADATA, CrmModule::Contacts).unwrap();
        assert_eq!(contact.len(), 1);
    }

    #[test]
    fn a_code_outside_its_list_is_refused_naming_the_field() {
        let values = BTreeMap::from([("Tier_KUT".to_owned(), Value::from("Bronze"))]);
        match record_fields(&values, None, true, &catalog(), None) {
            Err(CrmError::Rejected {
                code,
                field,
                message,
            }) => {
                assert_eq!(code, "INVALID_PICKLIST_VALUE");
                assert_eq!(field.as_deref(), Some("Tier_KUT"));
                assert!(message.contains("Gold"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let values = BTreeMap::from([("Tier_KUT".to_owned(), Value::from("silver"))]);
        assert_eq!(
            record_fields(&values, None, true, &catalog(), None).unwrap()["Tier_KUT"],
            "2"
        );
        let values = BTreeMap::from([("ContactID".to_owned(), Value::from("x"))]);
        assert!(record_fields(&values, None, false, &catalog(), None).is_err());
    }

    #[test]
    fn times_etags_and_entities_are_read() {
        let t = parse_time("/Date(1700000000123)/").unwrap();
        assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(parse_time("/Date(1700000000123+0060)/"), Some(t));
        assert_eq!(
            etag_time("W/\"datetimeoffset'2023-11-14T22%3A13%3A20.1230000Z'\""),
            Some(t)
        );
        assert_eq!(filter_time(t), "datetimeoffset'2023-11-14T22:13:20.123Z'");
        assert_eq!(filter_string("O'Neil"), "'O''Neil'");
        let entity = serde_json::json!({
            "__metadata": {"uri": "x"}, "ObjectID": "00163E", "ContactEMail": "a@x.com",
            "ContactID": "1001", "EntityLastChangedOn": "/Date(1700000000123)/", "Tier_KUT": "1"
        });
        let r = to_record(&entity, CrmModule::Leads, &catalog(), None).unwrap();
        assert!(r.converted);
        assert_eq!(r.email.as_deref(), Some("a@x.com"));
        assert_eq!(r.values["Tier_KUT"], "Gold");
        assert!(!r.values.contains_key("__metadata"));
    }

    #[test]
    fn a_customer_reads_under_the_leads_names_with_its_owner_by_e_mail() {
        const CUSTOMER: &str = r#"<EntityType Name="IndividualCustomer"><Property Name="ObjectID" Type="Edm.String" sap:creatable="false" sap:updatable="false"/><Property Name="Email" Type="Edm.String" MaxLength="255"/><Property Name="LastName" Type="Edm.String" MaxLength="40"/><Property Name="OwnerID" Type="Edm.String" MaxLength="20"/><Property Name="EntityLastChangedOn" Type="Edm.DateTimeOffset" sap:creatable="false" sap:updatable="false"/></EntityType>"#;
        let props = properties(CUSTOMER, CrmModule::Customers).unwrap();
        let customers = Catalog::new(CrmModule::Customers, &props, &BTreeMap::new());
        assert_eq!(customers.fields[OWNER].field_type, FieldType::User);
        assert!(customers.fields.contains_key("ContactLastName"));
        let owners = Owners::new(
            [
                serde_json::json!({"EmployeeID": "7", "BusinessPartnerID": "8000000001", "Email": "Ann@Sales.example"}),
                serde_json::json!({"EmployeeID": "8", "BusinessPartnerID": "8000000002", "Email": "old@sales.example", "UserLockedIndicator": true}),
            ]
            .iter()
            .filter_map(to_crm_user)
            .collect(),
        );
        let entity = serde_json::json!({
            "ObjectID": "00C1", "Email": "b@x.com", "LastName": "B", "OwnerID": "8000000001",
            "EntityLastChangedOn": "/Date(1700000000123)/"
        });
        let r = to_record(&entity, CrmModule::Customers, &customers, Some(&owners)).unwrap();
        assert_eq!(r.email.as_deref(), Some("b@x.com"));
        assert_eq!(r.owner_email.as_deref(), Some("ann@sales.example"));
        assert_eq!(r.values[OWNER], "ann@sales.example");
        assert!(!r.converted, "only a lead converts");
        let mut lead = catalog();
        lead.fields
            .insert(OWNER.into(), customers.fields[OWNER].clone());
        let written = |email: &str| {
            record_fields(&BTreeMap::new(), Some(email), true, &lead, Some(&owners))
                .unwrap()
                .get(OWNER)
                .cloned()
        };
        assert_eq!(
            written("ann@sales.example"),
            Some(Value::from("8000000001"))
        );
        assert_eq!(
            written("old@sales.example"),
            None,
            "a locked user owns nothing"
        );
        assert_eq!(written("nobody@x.com"), None);
    }

    #[test]
    fn errors_become_ours_with_the_property_named() {
        let body = |code: &str, m: &str| {
            serde_json::json!({"error": {"code": code, "message": {"lang": "en", "value": m}}})
                .to_string()
        };
        match classify(
            400,
            &body("MANDATORY_FIELD_MISSING", "Lead: enter a name (Name)"),
            None,
        ) {
            CrmError::Rejected { field, .. } => assert_eq!(field.as_deref(), Some("Name")),
            other => panic!("{other:?}"),
        }
        match classify(
            400,
            &body("INVALID_CODE", "Property 'Tier_KUT': code 'x'"),
            None,
        ) {
            CrmError::Rejected { code, field, .. } => {
                assert_eq!(code, "INVALID_PICKLIST_VALUE");
                assert_eq!(field.as_deref(), Some("Tier_KUT"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(401, "<html>", None),
            CrmError::Unauthorized(_)
        ));
        assert!(matches!(classify(503, "", None), CrmError::Unavailable(_)));
        assert!(matches!(
            classify(429, &body("TOO_MANY_REQUESTS", "try again later"), None),
            CrmError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(
                429,
                &body(
                    "TOO_MANY_REQUESTS",
                    "The tenant's request limit for today is reached"
                ),
                None
            ),
            CrmError::DailyLimit(_)
        ));
    }

    #[test]
    fn a_batch_is_one_changeset_per_operation_and_its_reply_one_response_each() {
        let ops = [Operation {
            method: "PATCH",
            target: "LeadCollection('A1')".into(),
            if_match: Some("W/\"x\"".into()),
            body: serde_json::json!({"Name": "A"}),
        }];
        let body = batch_body("b", &ops);
        assert!(body.contains("boundary=changeset_b_0"));
        assert!(body.contains("PATCH LeadCollection('A1') HTTP/1.1\r\n"));
        assert!(body.contains("If-Match: W/\"x\""));
        assert!(body.ends_with("--b--\r\n"));
        let reply = "--batchresponse\r\nContent-Type: multipart/mixed; boundary=cs_0\r\n\r\n--cs_0\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\nETag: W/\"e1\"\r\n\r\n\r\n--cs_0--\r\n--batchresponse\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{}}\r\n--batchresponse--\r\n";
        let replies = batch_replies("multipart/mixed; boundary=batchresponse", reply).unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].status, 204);
        assert_eq!(replies[0].etag.as_deref(), Some("W/\"e1\""));
        assert_eq!(replies[1].status, 400);
        assert_eq!(replies[1].body, "{\"error\":{}}");
    }
}
