//! An account's data: users, leads, contacts, custom field definitions and
//! lead conversions, and the rules Sell applies when a record is written.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::limits::Limits;

/// Leads or contacts: the two record resources the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// `/v2/leads`.
    Lead,
    /// `/v2/contacts`.
    Contact,
}

/// The attributes of a lead a client may write (the official SDK's list).
const LEAD_WRITABLE: &[&str] = &[
    "address",
    "custom_fields",
    "description",
    "email",
    "facebook",
    "fax",
    "first_name",
    "industry",
    "last_name",
    "linkedin",
    "mobile",
    "organization_name",
    "owner_id",
    "phone",
    "skype",
    "source_id",
    "status",
    "tags",
    "title",
    "twitter",
    "website",
];

/// The attributes of a contact a client may write.
const CONTACT_WRITABLE: &[&str] = &[
    "address",
    "billing_address",
    "shipping_address",
    "contact_id",
    "parent_organization_id",
    "custom_fields",
    "customer_status",
    "description",
    "email",
    "facebook",
    "fax",
    "first_name",
    "industry",
    "is_organization",
    "last_name",
    "linkedin",
    "mobile",
    "name",
    "owner_id",
    "phone",
    "prospect_status",
    "skype",
    "tags",
    "title",
    "twitter",
    "website",
];

/// Text attributes: a string or null.
const TEXT: &[&str] = &[
    "description",
    "email",
    "facebook",
    "fax",
    "first_name",
    "industry",
    "last_name",
    "linkedin",
    "mobile",
    "organization_name",
    "phone",
    "skype",
    "status",
    "title",
    "twitter",
    "website",
    "name",
];

const ADDRESS_KEYS: &[&str] = &["line1", "city", "postal_code", "state", "country"];

impl Resource {
    /// `lead` or `contact`: the envelope's `meta.type` and the custom fields path.
    pub fn type_name(self) -> &'static str {
        match self {
            Resource::Lead => "lead",
            Resource::Contact => "contact",
        }
    }

    /// `leads` or `contacts`: the collection path.
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Lead => "leads",
            Resource::Contact => "contacts",
        }
    }

    /// From `lead`/`leads` or `contact`/`contacts`.
    pub fn parse(s: &str) -> Option<Resource> {
        match s {
            "lead" | "leads" => Some(Resource::Lead),
            "contact" | "contacts" => Some(Resource::Contact),
            _ => None,
        }
    }

    fn writable(self) -> &'static [&'static str] {
        match self {
            Resource::Lead => LEAD_WRITABLE,
            Resource::Contact => CONTACT_WRITABLE,
        }
    }

    /// The attributes `sort_by` accepts.
    pub fn sortable(self) -> &'static [&'static str] {
        match self {
            Resource::Lead => &[
                "id",
                "created_at",
                "updated_at",
                "first_name",
                "last_name",
                "organization_name",
            ],
            Resource::Contact => &[
                "id",
                "created_at",
                "updated_at",
                "name",
                "first_name",
                "last_name",
            ],
        }
    }

    /// The attribute filters a listing (and an upsert) accepts.
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            Resource::Lead => &[
                "creator_id",
                "owner_id",
                "source_id",
                "first_name",
                "last_name",
                "organization_name",
                "status",
                "email",
                "phone",
                "mobile",
            ],
            Resource::Contact => &[
                "creator_id",
                "owner_id",
                "contact_id",
                "is_organization",
                "name",
                "first_name",
                "last_name",
                "email",
                "phone",
                "mobile",
                "customer_status",
                "prospect_status",
            ],
        }
    }
}

/// A Sell user: owners of records and the people tokens belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Numeric id.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// Login e-mail.
    pub email: String,
    /// `active` or `inactive`.
    pub status: String,
    /// `admin` or `user`.
    pub role: String,
    /// Creation time (ms).
    pub created_ms: i64,
}

impl User {
    /// The user as `/v2/users` shows it.
    pub fn render(&self) -> Value {
        let at = format_time(self.created_ms);
        json!({
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "status": self.status,
            "role": self.role,
            "roles": [],
            "invited": true,
            "confirmed": self.status == "active",
            "phone_number": null,
            "team_name": null,
            "group": null,
            "reports_to": null,
            "timezone": "UTC",
            "zendesk_user_id": null,
            "identity_type": "person",
            "system_tags": [],
            "created_at": at,
            "updated_at": at,
            "deleted_at": null,
        })
    }
}

/// The types a custom field may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One line of text.
    String,
    /// Several lines of text.
    Text,
    /// A number (sent as a number or a numeric string).
    Number,
    /// true or false.
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// An e-mail address (text).
    Email,
    /// A phone number (text).
    Phone,
    /// A URL (text).
    Url,
    /// One choice among `choices`.
    List,
    /// Any choices among `choices`.
    MultiSelectList,
}

/// A custom field definition of leads or contacts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomField {
    /// Numeric id.
    pub id: u64,
    /// The name, also the key in a record's `custom_fields`.
    pub name: String,
    /// Its type.
    pub field_type: FieldType,
    /// The choices of a list, by id.
    pub choices: Vec<(u64, String)>,
}

/// A custom field to create (admin API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Its name.
    pub name: String,
    /// Its type (`string`, `number`, `bool`, `list`, ...).
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// The choices of a `list` or `multi_select_list`.
    #[serde(default)]
    pub choices: Vec<String>,
}

impl CustomField {
    /// The definition as `/v2/{lead,contact}/custom_fields` shows it.
    pub fn render(&self, resource: Resource, at: &str) -> Value {
        let mut data = json!({
            "id": self.id,
            "name": self.name,
            "type": self.field_type,
            "search_api_id": format!("custom_fields.{}", self.name),
            "created_at": at,
            "updated_at": at,
        });
        if matches!(
            self.field_type,
            FieldType::List | FieldType::MultiSelectList
        ) {
            data["choices"] = self
                .choices
                .iter()
                .map(|(id, name)| json!({ "id": id, "name": name }))
                .collect();
        }
        if resource == Resource::Contact {
            data["for_contact"] = json!(true);
            data["for_organization"] = json!(true);
        }
        data
    }

    /// Checks a value for this field; the reason when it does not fit.
    fn check(&self, value: &Value) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        let choice = |v: &Value| {
            v.as_str()
                .is_some_and(|s| self.choices.iter().any(|(_, c)| c == s))
        };
        let ok = match self.field_type {
            FieldType::String
            | FieldType::Text
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url => value.is_string(),
            FieldType::Number => {
                value.is_number() || value.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
            }
            FieldType::Bool => value.is_boolean(),
            FieldType::Date => value
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            FieldType::List => choice(value),
            FieldType::MultiSelectList => value.as_array().is_some_and(|a| a.iter().all(choice)),
        };
        if ok {
            return Ok(());
        }
        Err(match self.field_type {
            FieldType::List | FieldType::MultiSelectList => format!(
                "must be one of: {}",
                self.choices
                    .iter()
                    .map(|(_, c)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => format!(
                "must be a {}",
                serde_json::to_value(other).unwrap_or_default()
            ),
        })
    }
}

/// A lead or contact: its id, times, and the attributes as last written.
#[derive(Debug, Clone)]
pub struct Record {
    /// Numeric id, unique per resource within the sandbox.
    pub id: u64,
    /// The user who created it.
    pub creator_id: u64,
    /// Creation time (ms, kept to the second as Sell shows it).
    pub created_ms: i64,
    /// Last change (ms, kept to the second).
    pub updated_ms: i64,
    /// Every writable attribute that has been set.
    pub attrs: Map<String, Value>,
}

impl Record {
    /// A text attribute, or None when unset or null.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Value::as_str)
    }

    /// The record as the API shows it: every attribute, nulls included.
    pub fn render(&self, resource: Resource) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("creator_id".into(), json!(self.creator_id));
        for key in resource.writable() {
            let default = match *key {
                "address" | "billing_address" | "shipping_address" => {
                    let empty: Map<String, Value> = ADDRESS_KEYS
                        .iter()
                        .map(|k| ((*k).into(), Value::Null))
                        .collect();
                    Value::Object(empty)
                }
                "tags" => json!([]),
                "custom_fields" => json!({}),
                "is_organization" => json!(false),
                "customer_status" | "prospect_status" => json!("none"),
                _ => Value::Null,
            };
            out.insert(
                (*key).into(),
                self.attrs.get(*key).cloned().unwrap_or(default),
            );
        }
        if resource == Resource::Lead {
            out.insert("unqualified_reason_id".into(), Value::Null);
        }
        out.insert("created_at".into(), json!(format_time(self.created_ms)));
        out.insert("updated_at".into(), json!(format_time(self.updated_ms)));
        Value::Object(out)
    }
}

/// One table of records, by id.
#[derive(Debug, Default)]
pub struct Table {
    /// Live records.
    pub records: BTreeMap<u64, Record>,
}

/// What a lead conversion made.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// Numeric id.
    pub id: u64,
    /// The converted lead.
    pub lead_id: u64,
    /// The contact (a person) it became.
    pub individual_id: u64,
    /// The organization contact, when the lead named one.
    pub organization_id: Option<u64>,
    /// Who converted it.
    pub creator_id: u64,
    /// When (ms).
    pub created_ms: i64,
}

impl Conversion {
    /// As `/v2/lead_conversions` shows it.
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "lead_id": self.lead_id,
            "individual_id": self.individual_id,
            "organization_id": self.organization_id,
            "deal_id": null,
            "creator_id": self.creator_id,
            "created_at": format_time(self.created_ms),
        })
    }
}

/// Behaviour the documentation leaves open, per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Whether a converted lead stays readable (`GET /v2/leads/{id}`) and listed.
    /// Sell's screens stop showing converted leads; the API's behaviour is not
    /// documented, so the default hides them (404, not listed).
    pub converted_leads_visible: bool,
    /// Whether unknown query parameters are refused (400 `invalid_param`) or ignored.
    pub strict_params: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            converted_leads_visible: false,
            strict_params: true,
        }
    }
}

/// Everything one account holds.
#[derive(Debug, Default)]
pub struct Data {
    /// Users, the first one the account's admin.
    pub users: Vec<User>,
    /// Leads.
    pub leads: Table,
    /// Contacts (people and organizations).
    pub contacts: Table,
    /// Converted leads, kept apart from the live ones (by id).
    pub converted: BTreeMap<u64, Record>,
    /// Custom field definitions of leads.
    pub lead_fields: Vec<CustomField>,
    /// Custom field definitions of contacts.
    pub contact_fields: Vec<CustomField>,
    /// Lead conversions.
    pub conversions: Vec<Conversion>,
    /// Open behaviour.
    pub settings: Settings,
}

/// An account: its data and its rate limits.
#[derive(Debug)]
pub struct Account {
    /// Numeric id (the tenant label of its requests).
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Its data.
    pub data: parking_lot::Mutex<Data>,
    /// Its request counts and limits.
    pub limits: parking_lot::Mutex<Limits>,
}

/// A record error: what Sell reports with 422 (`code`, the field, the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `unknown_attribute`, `invalid`, `blank`.
    pub code: &'static str,
    /// The attribute (`custom_fields.score` for a custom field).
    pub field: String,
    /// Why, in words.
    pub details: String,
}

impl Invalid {
    fn new(code: &'static str, field: impl Into<String>, details: impl Into<String>) -> Self {
        Invalid {
            code,
            field: field.into(),
            details: details.into(),
        }
    }
}

impl Data {
    /// The table of a resource.
    pub fn table(&self, resource: Resource) -> &Table {
        match resource {
            Resource::Lead => &self.leads,
            Resource::Contact => &self.contacts,
        }
    }

    /// The table of a resource, to change.
    pub fn table_mut(&mut self, resource: Resource) -> &mut Table {
        match resource {
            Resource::Lead => &mut self.leads,
            Resource::Contact => &mut self.contacts,
        }
    }

    /// The custom field definitions of a resource.
    pub fn fields(&self, resource: Resource) -> &[CustomField] {
        match resource {
            Resource::Lead => &self.lead_fields,
            Resource::Contact => &self.contact_fields,
        }
    }

    /// Adds a custom field definition; the error names the field.
    pub fn add_field(
        &mut self,
        resource: Resource,
        id: u64,
        spec: &FieldSpec,
    ) -> Result<(), String> {
        let name = spec.name.trim();
        if name.is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.fields(resource).iter().any(|f| f.name == name) {
            return Err(format!("name: {name} already exists"));
        }
        let listed = matches!(
            spec.field_type,
            FieldType::List | FieldType::MultiSelectList
        );
        if listed && spec.choices.is_empty() {
            return Err("choices: a list needs at least one choice".into());
        }
        let field = CustomField {
            id,
            name: name.to_owned(),
            field_type: spec.field_type,
            choices: spec
                .choices
                .iter()
                .enumerate()
                .map(|(i, c)| (id * 100 + i as u64 + 1, c.clone()))
                .collect(),
        };
        match resource {
            Resource::Lead => self.lead_fields.push(field),
            Resource::Contact => self.contact_fields.push(field),
        }
        Ok(())
    }

    /// Checks written attributes against the resource's rules: known
    /// attributes, types, owners, custom fields. Partial: only what is given.
    pub fn check_attrs(
        &self,
        resource: Resource,
        attrs: &Map<String, Value>,
    ) -> Result<(), Invalid> {
        for (key, value) in attrs {
            if !resource.writable().contains(&key.as_str()) {
                return Err(Invalid::new(
                    "unknown_attribute",
                    key,
                    format!("unknown attribute {key} for {}", resource.type_name()),
                ));
            }
            self.check_attr(resource, key, value)?;
        }
        Ok(())
    }

    fn check_attr(&self, resource: Resource, key: &str, value: &Value) -> Result<(), Invalid> {
        let invalid = |why: &str| Invalid::new("invalid", key, format!("{key} {why}"));
        match key {
            k if TEXT.contains(&k) && !(value.is_null() || value.is_string()) => {
                return Err(invalid("must be a string"));
            }
            k if TEXT.contains(&k) => {}
            "owner_id" => {
                let id = value.as_u64().ok_or_else(|| invalid("must be a user id"))?;
                if !self.users.iter().any(|u| u.id == id) {
                    return Err(invalid(&format!("{id} is not a user of this account")));
                }
            }
            "source_id" | "contact_id" | "parent_organization_id"
                if !(value.is_null() || value.is_u64()) =>
            {
                return Err(invalid("must be an id"));
            }
            "is_organization" if !value.is_boolean() => {
                return Err(invalid("must be true or false"));
            }
            "customer_status" | "prospect_status" => {
                let allowed: &[&str] = if key == "customer_status" {
                    &["none", "current", "past"]
                } else {
                    &["none", "current", "lost"]
                };
                if !value.as_str().is_some_and(|s| allowed.contains(&s)) {
                    return Err(invalid(&format!("must be one of: {}", allowed.join(", "))));
                }
            }
            "tags"
                if !value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string)) =>
            {
                return Err(invalid("must be a list of strings"));
            }
            "address" | "billing_address" | "shipping_address" => {
                let Some(map) = value.as_object() else {
                    return Err(invalid("must be an object"));
                };
                if let Some(bad) = map.keys().find(|k| !ADDRESS_KEYS.contains(&k.as_str())) {
                    return Err(Invalid::new(
                        "unknown_attribute",
                        format!("{key}.{bad}"),
                        format!("unknown attribute {bad} in {key}"),
                    ));
                }
            }
            "custom_fields" => {
                let Some(map) = value.as_object() else {
                    return Err(invalid("must be an object of custom field names to values"));
                };
                for (name, v) in map {
                    let field = self
                        .fields(resource)
                        .iter()
                        .find(|f| &f.name == name)
                        .ok_or_else(|| {
                            Invalid::new(
                                "unknown_attribute",
                                format!("custom_fields.{name}"),
                                format!("unknown custom field {name} for {}", resource.type_name()),
                            )
                        })?;
                    field.check(v).map_err(|why| {
                        Invalid::new(
                            "invalid",
                            format!("custom_fields.{name}"),
                            format!("custom field {name} {why}"),
                        )
                    })?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Merges written attributes into a record's: custom fields and addresses key
/// by key, everything else replaced.
pub fn merge(into: &mut Map<String, Value>, attrs: &Map<String, Value>) {
    for (key, value) in attrs {
        match (key.as_str(), into.get_mut(key), value) {
            (
                "custom_fields" | "address" | "billing_address" | "shipping_address",
                Some(Value::Object(old)),
                Value::Object(new),
            ) => {
                for (k, v) in new {
                    old.insert(k.clone(), v.clone());
                }
            }
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The rule a stored record must meet: a lead needs `last_name` or
/// `organization_name`; a person contact a `last_name`, an organization a `name`.
pub fn check_required(resource: Resource, attrs: &Map<String, Value>) -> Result<(), Invalid> {
    let filled = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    match resource {
        Resource::Lead if !filled("last_name") && !filled("organization_name") => {
            Err(Invalid::new(
                "blank",
                "last_name",
                "a lead needs a last_name or an organization_name",
            ))
        }
        Resource::Contact => {
            let organization = attrs.get("is_organization") == Some(&json!(true));
            if organization && !filled("name") {
                Err(Invalid::new(
                    "blank",
                    "name",
                    "an organization contact needs a name",
                ))
            } else if !organization && !filled("last_name") {
                Err(Invalid::new(
                    "blank",
                    "last_name",
                    "a person contact needs a last_name",
                ))
            } else {
                Ok(())
            }
        }
        Resource::Lead => Ok(()),
    }
}

/// Sell's timestamps: UTC, to the second, `2026-11-21T09:30:00Z`.
pub fn format_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time (admin API), in ms.
pub fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Truncates ms to the second, as Sell stores times.
pub fn to_second(ms: i64) -> i64 {
    ms.div_euclid(1000) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_with_score() -> Data {
        let mut data = Data::default();
        let spec = FieldSpec {
            name: "score".into(),
            field_type: FieldType::Number,
            choices: vec![],
        };
        data.add_field(Resource::Lead, 1, &spec).expect("field");
        data
    }

    #[test]
    fn an_unknown_attribute_is_named() {
        let data = data_with_score();
        let attrs = json!({ "nickname": "x" });
        let err = data
            .check_attrs(Resource::Lead, attrs.as_object().expect("object"))
            .expect_err("refused");
        assert_eq!(err.code, "unknown_attribute");
        assert_eq!(err.field, "nickname");
    }

    #[test]
    fn a_custom_field_value_of_the_wrong_type_is_refused() {
        let data = data_with_score();
        let bad = json!({ "custom_fields": { "score": "high" } });
        let err = data
            .check_attrs(Resource::Lead, bad.as_object().expect("object"))
            .expect_err("refused");
        assert_eq!(err.field, "custom_fields.score");
        let good = json!({ "custom_fields": { "score": "12.5" } });
        assert!(
            data.check_attrs(Resource::Lead, good.as_object().expect("object"))
                .is_ok()
        );
    }

    #[test]
    fn a_lead_needs_a_last_name_or_an_organization_name() {
        let none = json!({ "first_name": "Léa" });
        assert!(check_required(Resource::Lead, none.as_object().expect("object")).is_err());
        let org = json!({ "organization_name": "Acme" });
        assert!(check_required(Resource::Lead, org.as_object().expect("object")).is_ok());
    }

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        assert_eq!(format_time(1_764_000_000_123), "2025-11-24T16:00:00Z");
    }
}
