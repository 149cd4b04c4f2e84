//! A portal's data: contacts, the contact property definitions, owners and the
//! portal's settings, with HubSpot's rules for property values.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::limits::Usage;

/// The properties a read returns when the caller names none.
pub const DEFAULT_PROPERTIES: &[&str] = &[
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];

/// The system properties every read returns, whatever properties the caller names
/// (HubSpot: "basic system fields that cannot be excluded from the response").
pub const ALWAYS_PROPERTIES: &[&str] = &["createdate", "hs_object_id", "lastmodifieddate"];

/// HubSpot's lifecycle stages, in their forward order.
pub const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

/// HubSpot's lead statuses.
pub const LEAD_STATUSES: &[(&str, &str)] = &[
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
];

/// One HubSpot account ("portal", "hub").
#[derive(Debug)]
pub struct Portal {
    /// The portal (hub) id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// When it was created, epoch ms.
    pub created_ms: i64,
    /// Contacts, properties, owners, settings.
    pub data: Mutex<PortalData>,
    /// Rate-limit configuration and windows.
    pub usage: Mutex<Usage>,
}

/// How the portal answers the cases where HubSpot's behaviour is unsure or a choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Setting an earlier `lifecyclestage` than the stored one: `ignore` (the write
    /// succeeds, the stage stays, HubSpot's documented behaviour), `reject` (400) or
    /// `allow` (the stage moves back, as some report of the v3 API).
    pub lifecycle_backward: String,
    /// A batch create/upsert/update with an invalid input: `whole` (the call is
    /// refused with 400, nothing written) or `per_record` (207, the valid inputs written).
    pub batch_errors: String,
    /// Refuse writes of `hs_email_optout` with READ_ONLY_VALUE (real portals manage it
    /// through the subscriptions API); false lets the API write it.
    pub email_optout_read_only: bool,
    /// The order of search results that tie on the sort property: `by_id`
    /// (ascending id) or `reversed` (descending id). HubSpot documents none,
    /// so a client must not rely on one.
    pub search_ties: String,
    /// The wait before every webhook retry, in milliseconds, in place of
    /// HubSpot's schedule (10 retries spread over 24 hours); `None` keeps
    /// HubSpot's. Tests set it to see retries without moving the clock.
    pub webhook_retry_ms: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lifecycle_backward: "ignore".into(),
            batch_errors: "whole".into(),
            email_optout_read_only: false,
            search_ties: "by_id".into(),
            webhook_retry_ms: None,
        }
    }
}

impl Settings {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(
            self.lifecycle_backward.as_str(),
            "ignore" | "reject" | "allow"
        ) {
            return Err(format!(
                "lifecycle_backward: must be \"ignore\", \"reject\" or \"allow\", got {:?}",
                self.lifecycle_backward
            ));
        }
        if !matches!(self.batch_errors.as_str(), "whole" | "per_record") {
            return Err(format!(
                "batch_errors: must be \"whole\" or \"per_record\", got {:?}",
                self.batch_errors
            ));
        }
        if !matches!(self.search_ties.as_str(), "by_id" | "reversed") {
            return Err(format!(
                "search_ties: must be \"by_id\" or \"reversed\", got {:?}",
                self.search_ties
            ));
        }
        Ok(())
    }
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Its id.
    pub id: u64,
    /// Property values (never the computed createdate/lastmodifieddate/hs_object_id).
    pub props: BTreeMap<String, String>,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Last modification time, epoch ms.
    pub updated_ms: i64,
    /// When it was archived, epoch ms.
    pub archived_ms: Option<i64>,
}

/// An option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropOption {
    /// Shown to people.
    pub label: String,
    /// Stored and sent over the API.
    pub value: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Position.
    #[serde(default)]
    pub display_order: i64,
    /// Hidden from forms.
    #[serde(default)]
    pub hidden: bool,
}

/// A contact property definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// string, number, date, datetime, enumeration, bool.
    #[serde(rename = "type")]
    pub kind: String,
    /// text, textarea, number, date, select, radio, checkbox, booleancheckbox, phonenumber, calculation_equation.
    pub field_type: String,
    /// Property group.
    #[serde(default)]
    pub group_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Options of an enumeration.
    #[serde(default)]
    pub options: Vec<PropOption>,
    /// Calculated by HubSpot.
    #[serde(default)]
    pub calculated: bool,
    /// Defined by HubSpot (false for custom properties).
    #[serde(default)]
    pub hubspot_defined: bool,
    /// The value cannot be written through the API.
    #[serde(default)]
    pub read_only_value: bool,
    /// Unique values.
    #[serde(default)]
    pub has_unique_value: bool,
    /// Creation time, epoch ms.
    #[serde(skip)]
    pub created_ms: i64,
}

impl Property {
    fn new(name: &str, label: &str, kind: &str, field_type: &str) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            kind: kind.into(),
            field_type: field_type.into(),
            group_name: "contactinformation".into(),
            description: String::new(),
            options: Vec::new(),
            calculated: false,
            hubspot_defined: true,
            read_only_value: false,
            has_unique_value: false,
            created_ms: 0,
        }
    }

    fn read_only(mut self) -> Self {
        self.read_only_value = true;
        self
    }

    fn with_options(mut self, options: &[(&str, &str)]) -> Self {
        self.options = options
            .iter()
            .enumerate()
            .map(|(i, (value, label))| PropOption {
                label: (*label).into(),
                value: (*value).into(),
                description: String::new(),
                display_order: i as i64,
                hidden: false,
            })
            .collect();
        self
    }

    /// Checks a custom property definition; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = self
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(format!(
                "name: must start with a lower-case letter and hold only lower-case letters, digits and underscores, got {:?}",
                self.name
            ));
        }
        if self.label.trim().is_empty() {
            return Err("label: must not be empty".into());
        }
        let fits = match self.kind.as_str() {
            "string" => matches!(
                self.field_type.as_str(),
                "text" | "textarea" | "phonenumber" | "html" | "file"
            ),
            "number" => matches!(self.field_type.as_str(), "number" | "calculation_equation"),
            "date" | "datetime" => self.field_type == "date",
            "enumeration" => matches!(
                self.field_type.as_str(),
                "select" | "radio" | "checkbox" | "booleancheckbox"
            ),
            "bool" => self.field_type == "booleancheckbox",
            other => return Err(format!("type: unknown property type {other:?}")),
        };
        if !fits {
            return Err(format!(
                "fieldType: {:?} does not fit type {:?}",
                self.field_type, self.kind
            ));
        }
        if self.kind == "enumeration" && self.field_type != "booleancheckbox" {
            let mut seen = std::collections::HashSet::new();
            for (i, o) in self.options.iter().enumerate() {
                if o.value.is_empty() || o.label.is_empty() {
                    return Err(format!("options[{i}]: label and value must not be empty"));
                }
                if !seen.insert(o.value.as_str()) {
                    return Err(format!("options[{i}].value: {:?} appears twice", o.value));
                }
            }
        }
        Ok(())
    }

    /// HubSpot's JSON for the property; `owners` fill `hubspot_owner_id`'s options.
    pub fn render(&self, owners: &[Owner]) -> Value {
        let options: Vec<Value> = if self.name == "hubspot_owner_id" {
            owners
                .iter()
                .filter(|o| !o.archived)
                .enumerate()
                .map(|(i, o)| {
                    json!({
                        "label": o.full_name(),
                        "value": o.id.to_string(),
                        "description": "",
                        "displayOrder": i,
                        "hidden": false,
                    })
                })
                .collect()
        } else {
            self.options.iter().map(|o| json!(o)).collect()
        };
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": options,
            "displayOrder": -1,
            "calculated": self.calculated,
            "externalOptions": self.name == "hubspot_owner_id",
            "hasUniqueValue": self.has_unique_value,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "formField": !self.read_only_value,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.created_ms),
            "archived": false,
        })
    }
}

/// A user who can own records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Owner id (the value of `hubspot_owner_id`).
    pub id: u64,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The user id.
    pub user_id: u64,
    /// A deactivated user.
    pub archived: bool,
}

impl Owner {
    fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned()
    }

    /// HubSpot's JSON for an owner.
    pub fn render(&self, at_ms: i64) -> Value {
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": iso(at_ms),
            "updatedAt": iso(at_ms),
            "archived": self.archived,
            "teams": [],
        })
    }
}

/// One property's value refused, as HubSpot lists it inside a VALIDATION_ERROR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropError {
    /// The property.
    pub name: String,
    /// HubSpot's code: INVALID_EMAIL, INVALID_OPTION, PROPERTY_DOESNT_EXIST, READ_ONLY_VALUE, ...
    pub error: String,
    /// What is wrong.
    pub message: String,
}

impl PropError {
    fn new(name: &str, error: &str, message: String) -> Self {
        Self {
            name: name.into(),
            error: error.into(),
            message,
        }
    }

    /// `{"isValid":false,"message":..,"error":..,"name":..,"localizedErrorMessage":..}`.
    pub fn to_json(&self) -> Value {
        json!({
            "isValid": false,
            "message": self.message,
            "error": self.error,
            "name": self.name,
            "localizedErrorMessage": self.message,
        })
    }
}

/// "Property values were not valid: [...]" as HubSpot words a VALIDATION_ERROR.
pub fn invalid_message(errors: &[PropError]) -> String {
    let list: Vec<Value> = errors.iter().map(PropError::to_json).collect();
    format!("Property values were not valid: {}", Value::Array(list))
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Property values were not valid (400 VALIDATION_ERROR).
    Invalid(Vec<PropError>),
    /// The e-mail belongs to another contact (409 CONFLICT).
    Conflict(u64),
}

impl WriteError {
    /// HubSpot's message.
    pub fn message(&self) -> String {
        match self {
            WriteError::Invalid(errors) => invalid_message(errors),
            WriteError::Conflict(id) => format!("Contact already exists. Existing ID: {id}"),
        }
    }

    /// HubSpot's category.
    pub fn category(&self) -> &'static str {
        match self {
            WriteError::Invalid(_) => "VALIDATION_ERROR",
            WriteError::Conflict(_) => "CONFLICT",
        }
    }

    /// HubSpot's status.
    pub fn status(&self) -> u16 {
        match self {
            WriteError::Invalid(_) => 400,
            WriteError::Conflict(_) => 409,
        }
    }
}

/// The data behind one portal's lock.
#[derive(Debug, Default)]
pub struct PortalData {
    /// Contacts by id, archived ones included.
    pub contacts: BTreeMap<u64, Contact>,
    /// Live contacts' e-mails (primary and additional), lower-cased, to their id.
    pub emails: HashMap<String, u64>,
    /// Property definitions, in display order.
    pub properties: Vec<Property>,
    /// Owners.
    pub owners: Vec<Owner>,
    /// The next contact id.
    pub next_id: u64,
    /// Behaviour settings.
    pub settings: Settings,
    /// True while an app installed in the portal has webhook subscriptions:
    /// contact changes are then kept in `events` for the next delivery.
    pub notifying: bool,
    /// Contact changes not yet handed to the webhooks.
    pub events: Vec<super::webhooks::ContactEvent>,
}

/// `2026-01-02T03:04:05.678Z`.
pub fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch ms from HubSpot's datetime forms: epoch ms, RFC 3339, or a bare date.
pub fn parse_time(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(ms) = value.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.timestamp_millis());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// A plausible e-mail address: one `@`, something before it, a dotted domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// The property definitions every portal starts with.
pub fn default_properties(created_ms: i64) -> Vec<Property> {
    let p = Property::new;
    let mut props = vec![
        p("email", "Email", "string", "text"),
        p("firstname", "First Name", "string", "text"),
        p("lastname", "Last Name", "string", "text"),
        p("phone", "Phone Number", "string", "phonenumber"),
        p(
            "mobilephone",
            "Mobile Phone Number",
            "string",
            "phonenumber",
        ),
        p("company", "Company Name", "string", "text"),
        p("jobtitle", "Job Title", "string", "text"),
        p("city", "City", "string", "text"),
        p("country", "Country/Region", "string", "text"),
        p("industry", "Industry", "string", "text"),
        p("website", "Website URL", "string", "text"),
        p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio")
            .with_options(LIFECYCLE_STAGES),
        p("hs_lead_status", "Lead Status", "enumeration", "radio").with_options(LEAD_STATUSES),
        p(
            "hs_email_optout",
            "Unsubscribed from all email",
            "bool",
            "booleancheckbox",
        )
        .with_options(&[("true", "True"), ("false", "False")]),
        p(
            "hs_additional_emails",
            "Additional email addresses",
            "enumeration",
            "checkbox",
        )
        .read_only(),
        p("hubspot_owner_id", "Contact owner", "enumeration", "select"),
        p("createdate", "Create Date", "datetime", "date"),
        p("lastmodifieddate", "Last Modified Date", "datetime", "date").read_only(),
        p("hs_object_id", "Record ID", "number", "number").read_only(),
    ];
    for prop in &mut props {
        prop.created_ms = created_ms;
        if matches!(
            prop.name.as_str(),
            "lastmodifieddate" | "hs_object_id" | "hs_additional_emails"
        ) {
            prop.calculated = prop.name != "hs_additional_emails";
        }
    }
    props
}

/// The custom properties a portal gets unless told otherwise.
pub fn default_custom_properties() -> Vec<Property> {
    let custom = |name: &str, label: &str, kind: &str, field_type: &str| {
        let mut p = Property::new(name, label, kind, field_type);
        p.hubspot_defined = false;
        p.group_name = "plezi".into();
        p
    };
    let opts = |values: &[&str]| -> Vec<(String, String)> {
        values
            .iter()
            .map(|v| ((*v).to_owned(), (*v).to_owned()))
            .collect()
    };
    let with = |mut p: Property, options: Vec<(String, String)>| {
        p.options = options
            .into_iter()
            .enumerate()
            .map(|(i, (value, label))| PropOption {
                label,
                value,
                description: String::new(),
                display_order: i as i64,
                hidden: false,
            })
            .collect();
        p
    };
    vec![
        custom("plezi_url", "Plezi URL", "string", "text"),
        with(
            custom("sync_to_plezi", "Sync to Plezi", "bool", "booleancheckbox"),
            vec![("true".into(), "Yes".into()), ("false".into(), "No".into())],
        ),
        with(
            custom("source", "Source", "enumeration", "select"),
            opts(crate::seed::SOURCES),
        ),
        custom("score", "Score", "number", "number"),
        with(
            custom("sector", "Sector", "enumeration", "select"),
            opts(crate::seed::INDUSTRIES),
        ),
    ]
}

impl PortalData {
    /// The definition of a property.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// A live (not archived) contact.
    pub fn live(&self, id: u64) -> Option<&Contact> {
        self.contacts.get(&id).filter(|c| c.archived_ms.is_none())
    }

    /// The live contact with this e-mail (primary or additional), any case.
    pub fn by_email(&self, email: &str) -> Option<u64> {
        self.emails.get(&email.trim().to_lowercase()).copied()
    }

    /// A contact's e-mails, primary first, lower-cased.
    fn emails_of(contact: &Contact) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = contact.props.get("email") {
            out.push(e.to_lowercase());
        }
        if let Some(extra) = contact.props.get("hs_additional_emails") {
            out.extend(
                extra
                    .split(';')
                    .map(|e| e.trim().to_lowercase())
                    .filter(|e| !e.is_empty()),
            );
        }
        out
    }

    fn unindex(&mut self, id: u64) {
        if let Some(c) = self.contacts.get(&id) {
            for e in Self::emails_of(c) {
                if self.emails.get(&e) == Some(&id) {
                    self.emails.remove(&e);
                }
            }
        }
    }

    fn index(&mut self, id: u64) {
        if let Some(c) = self.contacts.get(&id) {
            for e in Self::emails_of(c) {
                self.emails.entry(e).or_insert(id);
            }
        }
    }

    /// Checks written values and turns them into stored strings (None clears).
    /// `existing` is the contact being updated.
    pub fn validate(
        &self,
        values: &Map<String, Value>,
        existing: Option<&Contact>,
    ) -> Result<BTreeMap<String, Option<String>>, WriteError> {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, value) in values {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                other => Some(other.to_string()),
            };
            let Some(prop) = self.property(name) else {
                errors.push(PropError::new(
                    name,
                    "PROPERTY_DOESNT_EXIST",
                    format!("Property \"{name}\" does not exist"),
                ));
                continue;
            };
            let read_only = prop.read_only_value
                || (name == "hs_email_optout" && self.settings.email_optout_read_only);
            if read_only {
                // HubSpot ignores a read-only value equal to the stored one? No: it refuses.
                errors.push(PropError::new(
                    name,
                    "READ_ONLY_VALUE",
                    format!("{name} is a read only property; its value cannot be set."),
                ));
                continue;
            }
            let text = text.filter(|t| !t.is_empty());
            let Some(text) = text else {
                out.insert(name.clone(), None);
                continue;
            };
            match self.check_value(prop, &text) {
                Ok(normal) => {
                    if name == "lifecyclestage"
                        && self.settings.lifecycle_backward != "allow"
                        && let Some(stored) = existing.and_then(|c| c.props.get(name))
                        && stage_rank(&normal) < stage_rank(stored)
                    {
                        if self.settings.lifecycle_backward == "reject" {
                            errors.push(PropError::new(
                                name,
                                "INVALID_OPTION",
                                format!(
                                    "lifecyclestage cannot move backwards from {stored:?} to {normal:?}; clear it first, then set the earlier stage"
                                ),
                            ));
                        }
                        // "ignore": the write succeeds and the stage stays.
                        continue;
                    }
                    out.insert(name.clone(), Some(normal));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(WriteError::Invalid(errors))
        }
    }

    fn check_value(&self, prop: &Property, text: &str) -> Result<String, PropError> {
        let name = prop.name.as_str();
        match prop.kind.as_str() {
            "string" if name == "email" => {
                let email = text.trim().to_lowercase();
                if valid_email(&email) {
                    Ok(email)
                } else {
                    Err(PropError::new(
                        name,
                        "INVALID_EMAIL",
                        format!("Email address {text} is invalid"),
                    ))
                }
            }
            "string" => Ok(text.to_owned()),
            "number" => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|_| text.trim().to_owned())
                .ok_or_else(|| {
                    PropError::new(
                        name,
                        "INVALID_DECIMAL",
                        format!("{text} was not a valid number."),
                    )
                }),
            "date" | "datetime" => {
                let ms = parse_time(text).ok_or_else(|| {
                    PropError::new(
                        name,
                        "INVALID_DATE",
                        format!("{text} was not a valid long or an ISO-8601 date/datetime."),
                    )
                })?;
                if prop.kind == "date" {
                    if ms.rem_euclid(86_400_000) != 0 {
                        return Err(PropError::new(
                            name,
                            "INVALID_DATE",
                            format!("{text} is not midnight UTC; date properties hold dates only."),
                        ));
                    }
                    Ok(iso(ms)[..10].to_owned())
                } else {
                    Ok(iso(ms))
                }
            }
            "bool" => match text.trim().to_lowercase().as_str() {
                "true" => Ok("true".into()),
                "false" => Ok("false".into()),
                _ => Err(PropError::new(
                    name,
                    "INVALID_BOOLEAN",
                    format!("{text} was not a valid boolean; use true or false."),
                )),
            },
            _ => {
                let options = self.options_of(prop);
                let parts: Vec<&str> = if prop.field_type == "checkbox" {
                    text.split(';').filter(|p| !p.is_empty()).collect()
                } else {
                    vec![text]
                };
                for part in &parts {
                    if !options.iter().any(|(value, _)| value == part) {
                        let listed: Vec<String> = options
                            .iter()
                            .enumerate()
                            .map(|(i, (value, label))| {
                                format!(
                                    "label: \"{label}\"\nvalue: \"{value}\"\ndisplay_order: {i}\ndouble_data: 0.0\nhidden: false\ndescription: \"\"\nread_only: false\n"
                                )
                            })
                            .collect();
                        return Err(PropError::new(
                            name,
                            "INVALID_OPTION",
                            format!(
                                "{part} was not one of the allowed options: [{}]",
                                listed.join(", ")
                            ),
                        ));
                    }
                }
                Ok(parts.join(";"))
            }
        }
    }

    /// An enumeration's (value, label) pairs; owners for `hubspot_owner_id`.
    pub fn options_of(&self, prop: &Property) -> Vec<(String, String)> {
        if prop.name == "hubspot_owner_id" {
            return self
                .owners
                .iter()
                .filter(|o| !o.archived)
                .map(|o| (o.id.to_string(), o.full_name()))
                .collect();
        }
        prop.options
            .iter()
            .map(|o| (o.value.clone(), o.label.clone()))
            .collect()
    }

    /// Would these changes give contact `id` (None: a new one) an e-mail another live contact holds?
    pub fn conflict(
        &self,
        id: Option<u64>,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Option<u64> {
        let mut emails = Vec::new();
        if let Some(Some(e)) = changes.get("email") {
            emails.push(e.to_lowercase());
        }
        if let Some(Some(extra)) = changes.get("hs_additional_emails") {
            emails.extend(extra.split(';').map(|e| e.trim().to_lowercase()));
        }
        emails.into_iter().filter(|e| !e.is_empty()).find_map(|e| {
            self.emails
                .get(&e)
                .copied()
                .filter(|other| Some(*other) != id)
        })
    }

    /// Creates a contact from validated values.
    pub fn insert(&mut self, changes: BTreeMap<String, Option<String>>, now_ms: i64) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let created_ms = changes
            .get("createdate")
            .and_then(|v| v.as_deref())
            .and_then(parse_time)
            .unwrap_or(now_ms);
        let mut contact = Contact {
            id,
            props: BTreeMap::new(),
            created_ms,
            updated_ms: now_ms,
            archived_ms: None,
        };
        for (k, v) in changes {
            if let Some(v) = v
                && k != "createdate"
            {
                contact.props.insert(k, v);
            }
        }
        self.contacts.insert(id, contact);
        self.index(id);
        self.record(super::webhooks::ContactEvent::created(id, now_ms));
        id
    }

    fn record(&mut self, event: super::webhooks::ContactEvent) {
        if self.notifying {
            self.events.push(event);
        }
    }

    /// The property changes between two versions of a contact.
    fn record_changes(&mut self, id: u64, before: &BTreeMap<String, String>, now_ms: i64) {
        if !self.notifying {
            return;
        }
        let Some(after) = self.contacts.get(&id).map(|c| c.props.clone()) else {
            return;
        };
        let names: std::collections::BTreeSet<&String> =
            before.keys().chain(after.keys()).collect();
        for name in names {
            if before.get(name) != after.get(name) {
                self.events.push(super::webhooks::ContactEvent::changed(
                    id,
                    name,
                    after.get(name).cloned(),
                    now_ms,
                ));
            }
        }
    }

    /// Applies validated values to a live contact.
    pub fn update(&mut self, id: u64, changes: BTreeMap<String, Option<String>>, now_ms: i64) {
        let before = self
            .contacts
            .get(&id)
            .map(|c| c.props.clone())
            .unwrap_or_default();
        self.unindex(id);
        if let Some(contact) = self.contacts.get_mut(&id) {
            for (k, v) in changes {
                if k == "createdate" {
                    if let Some(ms) = v.as_deref().and_then(parse_time) {
                        contact.created_ms = ms;
                    }
                    continue;
                }
                match v {
                    Some(v) => contact.props.insert(k, v),
                    None => contact.props.remove(&k),
                };
            }
            contact.updated_ms = now_ms;
        }
        self.index(id);
        self.record_changes(id, &before, now_ms);
    }

    /// Archives a live contact; false when there is none.
    pub fn archive(&mut self, id: u64, now_ms: i64) -> bool {
        if self.live(id).is_none() {
            return false;
        }
        self.unindex(id);
        if let Some(c) = self.contacts.get_mut(&id) {
            c.archived_ms = Some(now_ms);
        }
        self.record(super::webhooks::ContactEvent::deleted(id, now_ms));
        true
    }

    /// Stores a contact as given (admin API): no validation but e-mail uniqueness.
    pub fn put(&mut self, mut contact: Contact) -> Result<u64, String> {
        if contact.id == 0 {
            self.next_id += 1;
            contact.id = self.next_id;
        } else {
            self.next_id = self.next_id.max(contact.id);
            self.unindex(contact.id);
        }
        if contact.archived_ms.is_none() {
            for e in Self::emails_of(&contact) {
                if let Some(other) = self.emails.get(&e).copied()
                    && other != contact.id
                {
                    let id = contact.id;
                    self.index(id);
                    return Err(format!("email: {e} is already contact {other}'s"));
                }
            }
        }
        let id = contact.id;
        let before = self.contacts.get(&id).cloned();
        let now_ms = contact.updated_ms;
        self.contacts.insert(id, contact);
        if self.contacts[&id].archived_ms.is_none() {
            self.index(id);
        }
        let archived = self.contacts[&id].archived_ms;
        match before {
            None if archived.is_none() => {
                self.record(super::webhooks::ContactEvent::created(id, now_ms));
            }
            Some(b) if b.archived_ms.is_none() && archived.is_some() => {
                self.record(super::webhooks::ContactEvent::deleted(
                    id,
                    archived.unwrap_or(now_ms),
                ));
            }
            Some(b) if b.archived_ms.is_none() => self.record_changes(id, &b.props, now_ms),
            _ => {}
        }
        Ok(id)
    }

    /// HubSpot's JSON for a contact with the named properties and the system ones (the
    /// defaults when none are named).
    pub fn render(&self, contact: &Contact, wanted: &[String]) -> Value {
        let mut props = Map::new();
        let mut put = |name: &str| {
            let value = match name {
                "createdate" => Some(iso(contact.created_ms)),
                "lastmodifieddate" => Some(iso(contact.updated_ms)),
                "hs_object_id" => Some(contact.id.to_string()),
                other => contact.props.get(other).cloned(),
            };
            props.insert(name.to_owned(), json!(value));
        };
        if wanted.is_empty() {
            DEFAULT_PROPERTIES.iter().for_each(|n| put(n));
        } else {
            ALWAYS_PROPERTIES.iter().for_each(|n| put(n));
            for name in wanted {
                if self.property(name).is_some() {
                    put(name);
                }
            }
        }
        let mut out = json!({
            "id": contact.id.to_string(),
            "properties": props,
            "createdAt": iso(contact.created_ms),
            "updatedAt": iso(contact.updated_ms),
            "archived": contact.archived_ms.is_some(),
        });
        if let Some(at) = contact.archived_ms {
            out["archivedAt"] = json!(iso(at));
        }
        out
    }

    /// A property's value for searching and sorting (computed ones included).
    pub fn value_of(&self, contact: &Contact, name: &str) -> Option<String> {
        match name {
            "createdate" => Some(iso(contact.created_ms)),
            "lastmodifieddate" => Some(iso(contact.updated_ms)),
            "hs_object_id" => Some(contact.id.to_string()),
            other => contact.props.get(other).cloned(),
        }
    }
}

/// A lifecycle stage's place in the forward order (unknown values first).
pub fn stage_rank(stage: &str) -> i64 {
    LIFECYCLE_STAGES
        .iter()
        .position(|(v, _)| *v == stage)
        .map_or(-1, |p| p as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PortalData {
        PortalData {
            properties: default_properties(0),
            ..PortalData::default()
        }
    }

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_earlier_stage_is_ignored_or_refused_by_setting() {
        let mut d = data();
        let changes = d
            .validate(&props(json!({"lifecyclestage": "customer"})), None)
            .unwrap();
        let id = d.insert(changes, 1);
        let back = props(json!({"lifecyclestage": "lead"}));
        let contact = d.contacts[&id].clone();
        assert!(d.validate(&back, Some(&contact)).unwrap().is_empty());
        d.settings.lifecycle_backward = "reject".into();
        assert!(matches!(
            d.validate(&back, Some(&contact)),
            Err(WriteError::Invalid(_))
        ));
        d.settings.lifecycle_backward = "allow".into();
        assert_eq!(
            d.validate(&back, Some(&contact)).unwrap()["lifecyclestage"],
            Some("lead".into())
        );
        d.settings.lifecycle_backward = "reject".into();
        // Cleared first, any stage may be set.
        let cleared = props(json!({"lifecyclestage": ""}));
        let changes = d.validate(&cleared, Some(&contact)).unwrap();
        d.update(id, changes, 2);
        let contact = d.contacts[&id].clone();
        assert_eq!(
            d.validate(&back, Some(&contact)).unwrap()["lifecyclestage"],
            Some("lead".into())
        );
    }

    #[test]
    fn emails_are_unique_case_insensitively_across_additional_emails() {
        let mut d = data();
        let changes = d
            .validate(&props(json!({"email": "A@B.com"})), None)
            .unwrap();
        let id = d.insert(changes, 1);
        let again = d
            .validate(&props(json!({"email": "a@b.COM"})), None)
            .unwrap();
        assert_eq!(d.conflict(None, &again), Some(id));
        assert_eq!(d.conflict(Some(id), &again), None);
    }

    #[test]
    fn invalid_values_name_the_property_and_the_error() {
        let d = data();
        let Err(WriteError::Invalid(errors)) = d.validate(
            &props(
                json!({"email": "foo", "lifecyclestage": "x", "nope": "1", "hs_object_id": "3"}),
            ),
            None,
        ) else {
            panic!("expected errors")
        };
        let codes: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.name.as_str(), e.error.as_str()))
            .collect();
        assert!(codes.contains(&("email", "INVALID_EMAIL")));
        assert!(codes.contains(&("lifecyclestage", "INVALID_OPTION")));
        assert!(codes.contains(&("nope", "PROPERTY_DOESNT_EXIST")));
        assert!(codes.contains(&("hs_object_id", "READ_ONLY_VALUE")));
    }
}
