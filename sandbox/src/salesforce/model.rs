//! An org's data: the Lead, Contact and User sObjects, their field definitions
//! (standard and custom), the org's settings, and Salesforce's rules for the
//! values a write may carry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::limits::Usage;

/// The API version the sandbox answers to (others answer too, see `docs/salesforce.md`).
pub const API_VERSION: &str = "v62.0";

/// The Lead statuses (a restricted picklist); the first is the default.
pub const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];

/// The status a converted lead takes.
pub const CONVERTED_STATUS: &str = "Closed - Converted";

/// The lead sources of a new org (an unrestricted picklist).
pub const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// The sObjects the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SObject {
    /// Leads (key prefix 00Q).
    Lead,
    /// Contacts (key prefix 003).
    Contact,
    /// Users (key prefix 005); read-only through the API.
    User,
}

impl SObject {
    /// Every served sObject.
    pub const ALL: [SObject; 3] = [SObject::Lead, SObject::Contact, SObject::User];

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            SObject::Lead => "Lead",
            SObject::Contact => "Contact",
            SObject::User => "User",
        }
    }

    /// The plural label.
    pub fn label_plural(self) -> &'static str {
        match self {
            SObject::Lead => "Leads",
            SObject::Contact => "Contacts",
            SObject::User => "Users",
        }
    }

    /// The first three characters of its ids.
    pub fn key_prefix(self) -> &'static str {
        match self {
            SObject::Lead => "00Q",
            SObject::Contact => "003",
            SObject::User => "005",
        }
    }

    /// By API name, case-insensitively (as Salesforce reads names).
    pub fn parse(name: &str) -> Option<SObject> {
        Self::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// By an id's key prefix.
    pub fn of_id(id: &str) -> Option<SObject> {
        Self::ALL
            .into_iter()
            .find(|o| id.len() >= 3 && id.is_char_boundary(3) && &id[..3] == o.key_prefix())
    }

    /// Whether the API may create, update and delete its records.
    pub fn writable(self) -> bool {
        self != SObject::User
    }

    fn index(self) -> usize {
        match self {
            SObject::Lead => 0,
            SObject::Contact => 1,
            SObject::User => 2,
        }
    }
}

/// A field's data type, as `describe` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// The record id.
    Id,
    /// Text.
    String,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A long text.
    Textarea,
    /// A URL.
    Url,
    /// One value of a list.
    Picklist,
    /// true / false.
    Boolean,
    /// The id of another record.
    Reference,
    /// A time, ms precision.
    Datetime,
    /// A calendar date.
    Date,
}

impl FieldType {
    /// The SOAP type `describe` also reports.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Date => "xsd:date",
            _ => "xsd:string",
        }
    }
}

/// A field definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// API name (`Plezi_URL__c` for custom fields).
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Maximum length of text values (0 for others).
    pub length: u32,
    /// May be null.
    pub nillable: bool,
    /// May be given on create.
    pub createable: bool,
    /// May be given on update.
    pub updateable: bool,
    /// A custom field.
    pub custom: bool,
    /// Must be given on create and may not be blanked (LastName, Company).
    pub required: bool,
    /// Picklist values, in order.
    pub picklist_values: Vec<String>,
    /// A restricted picklist refuses values it does not hold.
    pub restricted_picklist: bool,
    /// Default value on create.
    pub default_value: Option<Value>,
    /// For references: the sObjects the id may point to.
    pub reference_to: Vec<String>,
}

impl Field {
    fn new(name: &str, label: &str, kind: FieldType) -> Self {
        let length = match kind {
            FieldType::String | FieldType::Url => 255,
            FieldType::Email => 80,
            FieldType::Phone => 40,
            FieldType::Textarea => 32_000,
            FieldType::Id | FieldType::Reference => 18,
            _ => 0,
        };
        Field {
            name: name.into(),
            label: label.into(),
            kind,
            length,
            nillable: true,
            createable: true,
            updateable: true,
            custom: name.ends_with("__c"),
            required: false,
            picklist_values: Vec::new(),
            restricted_picklist: false,
            default_value: None,
            reference_to: Vec::new(),
        }
    }

    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    fn length(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self.nillable = false;
        self
    }

    fn not_null(mut self) -> Self {
        self.nillable = false;
        self
    }

    fn picklist(mut self, values: &[&str], restricted: bool) -> Self {
        self.picklist_values = values.iter().map(|v| (*v).to_owned()).collect();
        self.restricted_picklist = restricted;
        self
    }

    fn default(mut self, value: Value) -> Self {
        self.default_value = Some(value);
        self
    }

    fn to(mut self, object: &str) -> Self {
        self.reference_to = vec![object.into()];
        self
    }

    /// The field as `describe` lists it.
    pub fn describe(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist_values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let default = self.default_value.as_ref().and_then(Value::as_str) == Some(v)
                    || (i == 0 && self.restricted_picklist && self.default_value.is_none());
                json!({ "active": true, "defaultValue": default, "label": v, "validFor": null, "value": v })
            })
            .collect();
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "soapType": self.kind.soap_type(),
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "custom": self.custom,
            "defaultedOnCreate": self.default_value.is_some() || !self.createable && self.kind != FieldType::Id,
            "defaultValue": self.default_value,
            "picklistValues": picklist,
            "restrictedPicklist": self.restricted_picklist,
            "referenceTo": self.reference_to,
            "relationshipName": if self.kind == FieldType::Reference { Value::from(self.name.trim_end_matches("Id")) } else { Value::Null },
            "externalId": false,
            "unique": self.name == "Username",
            "idLookup": matches!(self.name.as_str(), "Id" | "Email" | "Username"),
            "filterable": true,
            "sortable": self.kind != FieldType::Textarea,
            "groupable": self.kind != FieldType::Textarea && self.kind != FieldType::Datetime,
            "calculated": false,
            "autoNumber": false,
        })
    }
}

/// The fields a new org's Leads, Contacts or Users have.
pub fn standard_fields(object: SObject) -> Vec<Field> {
    use FieldType as T;
    let f = Field::new;
    let mut fields = vec![f("Id", "Record ID", T::Id).read_only().not_null()];
    match object {
        SObject::User => {
            fields.extend([
                f("Username", "Username", T::String)
                    .length(80)
                    .read_only()
                    .not_null(),
                f("Email", "Email", T::Email).read_only().not_null(),
                f("Name", "Full Name", T::String).length(121).read_only(),
                f("FirstName", "First Name", T::String)
                    .length(40)
                    .read_only(),
                f("LastName", "Last Name", T::String)
                    .length(80)
                    .read_only()
                    .not_null(),
                f("IsActive", "Active", T::Boolean).read_only().not_null(),
            ]);
        }
        SObject::Lead | SObject::Contact => {
            fields.extend([
                f("FirstName", "First Name", T::String).length(40),
                f("LastName", "Last Name", T::String).length(80).required(),
            ]);
            if object == SObject::Lead {
                fields.push(f("Company", "Company", T::String).required());
            } else {
                fields.push(f("AccountId", "Account ID", T::Reference).to("Account"));
            }
            fields.extend([
                f("Email", "Email", T::Email),
                f("Phone", "Phone", T::Phone),
                f("Title", "Title", T::String).length(128),
                f("LeadSource", "Lead Source", T::Picklist).picklist(LEAD_SOURCES, false),
            ]);
            if object == SObject::Lead {
                fields.push(
                    f("Status", "Status", T::Picklist)
                        .picklist(LEAD_STATUSES, true)
                        .not_null()
                        .default(json!(LEAD_STATUSES[0])),
                );
            }
            fields.extend([
                f("HasOptedOutOfEmail", "Email Opt Out", T::Boolean)
                    .not_null()
                    .default(json!(false)),
                f("OwnerId", "Owner ID", T::Reference).to("User").not_null(),
            ]);
            if object == SObject::Lead {
                fields.extend([
                    f("IsConverted", "Converted", T::Boolean)
                        .read_only()
                        .not_null(),
                    f("ConvertedContactId", "Converted Contact ID", T::Reference)
                        .to("Contact")
                        .read_only(),
                    f("ConvertedAccountId", "Converted Account ID", T::Reference)
                        .to("Account")
                        .read_only(),
                    f("ConvertedDate", "Converted Date", T::Date).read_only(),
                ]);
            }
        }
    }
    fields.extend([
        f("IsDeleted", "Deleted", T::Boolean).read_only().not_null(),
        f("CreatedDate", "Created Date", T::Datetime)
            .read_only()
            .not_null(),
        f("LastModifiedDate", "Last Modified Date", T::Datetime)
            .read_only()
            .not_null(),
        f("SystemModstamp", "System Modstamp", T::Datetime)
            .read_only()
            .not_null(),
    ]);
    if object == SObject::User {
        fields.retain(|f| f.name != "IsDeleted");
    }
    fields
}

/// The custom fields a new org's Leads and Contacts have.
pub fn default_custom_fields() -> Vec<Field> {
    vec![
        Field::new("Plezi_URL__c", "Plezi URL", FieldType::Url),
        Field::new("Sync_To_Plezi__c", "Sync to Plezi", FieldType::Boolean)
            .not_null()
            .default(json!(false)),
    ]
}

/// A custom field as the admin API creates it: `{name, type, picklist_values}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// API name, ending in `__c`.
    pub name: String,
    /// `string`, `email`, `phone`, `textarea`, `url`, `picklist`, `boolean`, `date`, `datetime`.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Label; the name without `__c` and underscores when absent.
    #[serde(default)]
    pub label: Option<String>,
    /// Picklist values (picklists only).
    #[serde(default)]
    pub picklist_values: Vec<String>,
    /// Whether the picklist refuses other values (false by default).
    #[serde(default)]
    pub restricted: bool,
}

impl FieldSpec {
    /// The field it defines; the error names the field of the spec.
    pub fn build(&self) -> Result<Field, String> {
        let valid_name = self.name.ends_with("__c")
            && self.name.len() > 3
            && self.name.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!(
                "name: {:?} is not a custom field API name (letters, digits and underscores, ending in __c)",
                self.name
            ));
        }
        if matches!(self.kind, FieldType::Id | FieldType::Reference) {
            return Err("type: id and reference fields cannot be added".into());
        }
        if self.kind == FieldType::Picklist && self.picklist_values.is_empty() {
            return Err("picklist_values: a picklist needs at least one value".into());
        }
        if self.kind != FieldType::Picklist && !self.picklist_values.is_empty() {
            return Err("picklist_values: only picklists have values".into());
        }
        let label = self
            .label
            .clone()
            .unwrap_or_else(|| self.name.trim_end_matches("__c").replace('_', " "));
        let mut field = Field::new(&self.name, &label, self.kind);
        if self.kind == FieldType::Boolean {
            field = field.not_null().default(json!(false));
        }
        field.picklist_values = self.picklist_values.clone();
        field.restricted_picklist = self.restricted;
        Ok(field)
    }
}

/// A stored value: kept small, since an org may hold a few hundred thousand records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Val {
    /// No value.
    #[default]
    Null,
    /// A checkbox.
    Bool(bool),
    /// Text, ids, dates (`YYYY-MM-DD`).
    Text(Box<str>),
    /// A date-time, epoch ms.
    Time(i64),
}

impl Val {
    /// Text, or None.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    /// true only for `Bool(true)`.
    pub fn is_true(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    /// The JSON value Salesforce sends.
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Text(s) => Value::String(s.to_string()),
            Val::Time(ms) => Value::String(format_datetime(*ms)),
        }
    }
}

/// `2026-11-21T10:00:00.000+0000`, Salesforce's date-time format.
pub fn format_datetime(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string()
}

/// Reads `2026-11-21T10:00:00.000+0000`, `...Z` or any RFC 3339 time.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_millis());
        }
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// An 18-character id: prefix, org-unique number in base 62, and a checksum
/// suffix computed as Salesforce computes it from the upper-case letters.
pub fn make_id(prefix: &str, n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut body = [b'0'; 12];
    let mut rest = n;
    for slot in body.iter_mut().rev() {
        *slot = DIGITS[(rest % 62) as usize];
        rest /= 62;
    }
    // Ids sort in creation order within one prefix, as the sandbox's Id order needs.
    let id15 = format!("{prefix}{}", String::from_utf8_lossy(&body));
    let suffix_chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut suffix = String::with_capacity(3);
    for chunk in id15.as_bytes().chunks(5) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        suffix.push(suffix_chars[bits] as char);
    }
    id15 + &suffix
}

/// Salesforce's e-mail check, close enough: one `@`, a dotted domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(char::is_whitespace)
}

/// One record: its values in the order of its object's field list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// Values by field position (missing trailing ones are null).
    pub values: Vec<Val>,
    /// When it went to the recycle bin (epoch ms).
    pub deleted_ms: Option<i64>,
}

impl Record {
    /// The value at `index`.
    pub fn get(&self, index: usize) -> &Val {
        static NULL: Val = Val::Null;
        self.values.get(index).unwrap_or(&NULL)
    }

    /// Sets the value at `index`.
    pub fn set(&mut self, index: usize, value: Val) {
        if self.values.len() <= index {
            self.values.resize(index + 1, Val::Null);
        }
        self.values[index] = value;
    }
}

/// The fields of one sObject, with a case-insensitive index.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Fields in describe order.
    pub fields: Vec<Field>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    /// A schema over these fields.
    pub fn new(fields: Vec<Field>) -> Self {
        let mut schema = Schema::default();
        for field in fields {
            schema.push(field);
        }
        schema
    }

    /// Adds a field at the end.
    pub fn push(&mut self, field: Field) {
        self.by_name
            .insert(field.name.to_ascii_lowercase(), self.fields.len());
        self.fields.push(field);
    }

    /// The position of a field, by name in any case.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// A field by name in any case.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.index(name).map(|i| &self.fields[i])
    }

    /// The position of a field the sandbox itself defines (panics if absent: a bug).
    pub fn at(&self, name: &str) -> usize {
        self.index(name)
            .unwrap_or_else(|| panic!("the schema has no field {name}"))
    }
}

/// The records of one sObject.
#[derive(Debug, Default)]
pub struct Table {
    /// Field definitions.
    pub schema: Schema,
    /// Records by id (ids sort in creation order).
    pub records: BTreeMap<Box<str>, Record>,
    /// Live records by lower-cased e-mail, for the duplicate rule.
    pub by_email: HashMap<Box<str>, HashSet<Box<str>>>,
}

impl Table {
    fn new(fields: Vec<Field>) -> Self {
        Table {
            schema: Schema::new(fields),
            ..Table::default()
        }
    }

    /// The record's lower-cased e-mail when it is live.
    fn email_key(&self, record: &Record) -> Option<Box<str>> {
        if record.deleted_ms.is_some() {
            return None;
        }
        let i = self.schema.index("Email")?;
        record
            .get(i)
            .as_str()
            .filter(|e| !e.is_empty())
            .map(|e| e.to_lowercase().into_boxed_str())
    }

    /// Stores a record, keeping the e-mail index right.
    pub fn put(&mut self, id: &str, record: Record) {
        if let Some(old) = self.records.get(id)
            && let Some(key) = self.email_key(old)
            && let Some(ids) = self.by_email.get_mut(&key)
        {
            ids.remove(id);
            if ids.is_empty() {
                self.by_email.remove(&key);
            }
        }
        if let Some(key) = self.email_key(&record) {
            self.by_email.entry(key).or_default().insert(id.into());
        }
        self.records.insert(id.into(), record);
    }

    /// Live records holding this e-mail (any case), other than `except`.
    pub fn holders_of(&self, email: &str, except: Option<&str>) -> Vec<Box<str>> {
        self.by_email
            .get(email.to_lowercase().as_str())
            .map(|ids| {
                ids.iter()
                    .filter(|id| Some(&***id) != except)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A record's value by field name.
    pub fn value<'a>(&self, record: &'a Record, name: &str) -> &'a Val {
        match self.schema.index(name) {
            Some(i) => record.get(i),
            None => {
                static NULL: Val = Val::Null;
                &NULL
            }
        }
    }
}

/// The duplicate rule on e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateRule {
    /// Duplicates are allowed (Salesforce's standard rules only alert).
    #[default]
    Off,
    /// A create or update giving an e-mail another live record of the same
    /// sObject holds (any case) is refused with DUPLICATES_DETECTED.
    Block,
}

/// An org's settings, `PUT /admin/salesforce/orgs/{org}/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `off` or `block`.
    pub duplicate_rule: DuplicateRule,
    /// A session ends this long after its last call (Salesforce: 2 hours by default).
    pub session_timeout_secs: u64,
    /// When set, every query page holds this many records whatever the client
    /// asked (Salesforce does not promise to honour `batchSize`); when null,
    /// the client's `batchSize` (200..2000) or 2000.
    pub batch_size: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            duplicate_rule: DuplicateRule::Off,
            session_timeout_secs: 7200,
            batch_size: None,
        }
    }
}

impl Settings {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_timeout_secs == 0 {
            return Err("session_timeout_secs: must be at least 1".into());
        }
        if let Some(n) = self.batch_size
            && !(1..=2000).contains(&n)
        {
            return Err(format!("batch_size: must be 1 to 2000, got {n}"));
        }
        Ok(())
    }
}

/// A query's result, kept for its `nextRecordsUrl` pages.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The sObject queried.
    pub object: SObject,
    /// The selected fields (positions in the schema), in SELECT order.
    pub fields: Arc<Vec<usize>>,
    /// The matching records' ids, sorted.
    pub ids: Arc<Vec<Box<str>>>,
    /// Records per page.
    pub batch: usize,
    /// Last use (epoch ms), to drop the oldest.
    pub used_ms: i64,
}

/// How many query cursors an org keeps open (Salesforce: 10 per user); the
/// least recently used goes first.
pub const MAX_CURSORS: usize = 10;

/// Everything of one org behind one lock.
#[derive(Debug)]
pub struct OrgData {
    tables: [Table; 3],
    /// Account ids known to the org (made by conversions).
    pub accounts: HashSet<Box<str>>,
    /// The org's settings.
    pub settings: Settings,
    /// Open query cursors by locator.
    pub cursors: HashMap<String, Cursor>,
    next_id: u64,
}

impl OrgData {
    /// A new org's data: the standard and default custom fields, no records.
    /// `org_number` keeps the org's ids apart from every other org's.
    pub fn new(settings: Settings, org_number: u64) -> Self {
        let table = |o: SObject| {
            let mut fields = standard_fields(o);
            if o != SObject::User {
                fields.extend(default_custom_fields());
            }
            Table::new(fields)
        };
        OrgData {
            tables: [
                table(SObject::Lead),
                table(SObject::Contact),
                table(SObject::User),
            ],
            accounts: HashSet::new(),
            settings,
            cursors: HashMap::new(),
            next_id: (org_number << 40) + 1,
        }
    }

    /// The table of an sObject.
    pub fn table(&self, object: SObject) -> &Table {
        &self.tables[object.index()]
    }

    /// Moves a live record to the recycle bin now (`IsDeleted`, its
    /// SystemModstamp the deletion time, listed by `sobjects/{T}/deleted`);
    /// false when there is no such live record.
    pub fn recycle(&mut self, object: SObject, id: &str, now_ms: i64) -> bool {
        let table = self.table_mut(object);
        let Some(mut record) = table
            .records
            .get(id)
            .filter(|r| r.deleted_ms.is_none())
            .cloned()
        else {
            return false;
        };
        record.set(table.schema.at("IsDeleted"), Val::Bool(true));
        record.set(table.schema.at("SystemModstamp"), Val::Time(now_ms));
        record.deleted_ms = Some(now_ms);
        table.put(id, record);
        true
    }

    /// The table of an sObject, to change.
    pub fn table_mut(&mut self, object: SObject) -> &mut Table {
        &mut self.tables[object.index()]
    }

    /// A fresh id of an sObject (or of `Account` with prefix 001).
    pub fn new_id(&mut self, prefix: &str) -> String {
        let n = self.next_id;
        self.next_id += 1;
        make_id(prefix, n)
    }

    /// The first active user: the default owner.
    pub fn default_owner(&self) -> Option<String> {
        let users = self.table(SObject::User);
        let active = users.schema.at("IsActive");
        users
            .records
            .iter()
            .find(|(_, r)| r.get(active).is_true())
            .map(|(id, _)| id.to_string())
    }

    /// The user with this Username (case-insensitive).
    pub fn user_by_username(&self, username: &str) -> Option<String> {
        let users = self.table(SObject::User);
        let i = users.schema.at("Username");
        users
            .records
            .iter()
            .find(|(_, r)| {
                r.get(i)
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(username))
            })
            .map(|(id, _)| id.to_string())
    }

    /// Keeps a cursor, dropping the least recently used beyond [`MAX_CURSORS`].
    pub fn keep_cursor(&mut self, locator: String, cursor: Cursor) {
        while self.cursors.len() >= MAX_CURSORS {
            let Some(oldest) = self
                .cursors
                .iter()
                .min_by_key(|(_, c)| c.used_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.cursors.remove(&oldest);
        }
        self.cursors.insert(locator, cursor);
    }
}

/// One Salesforce org.
#[derive(Debug)]
pub struct Org {
    /// The 18-character org id (00D...).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Records, fields, settings.
    pub data: Mutex<OrgData>,
    /// The daily API request count.
    pub usage: Mutex<Usage>,
}

/// A record as the REST API sends it: `attributes`, then the fields asked for.
pub fn render(
    object: SObject,
    schema: &Schema,
    id: &str,
    record: &Record,
    fields: &[usize],
    version: &str,
) -> Value {
    let mut map = Map::with_capacity(fields.len() + 1);
    map.insert(
        "attributes".into(),
        json!({
            "type": object.name(),
            "url": format!("/services/data/{version}/sobjects/{}/{id}", object.name()),
        }),
    );
    for &i in fields {
        if let Some(field) = schema.fields.get(i) {
            map.insert(field.name.clone(), record.get(i).to_json());
        }
    }
    Value::Object(map)
}

/// One error of a write, as Salesforce reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// `REQUIRED_FIELD_MISSING`, `INVALID_EMAIL_ADDRESS`, ...
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// The fields it is about.
    pub fields: Vec<String>,
}

impl WriteError {
    /// An error about some fields.
    pub fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        WriteError {
            code,
            message: message.into(),
            fields,
        }
    }

    /// As a collection result's error: `{statusCode, message, fields}`.
    pub fn collection_json(&self) -> Value {
        let mut v =
            json!({ "statusCode": self.code, "message": self.message, "fields": self.fields });
        if self.code == "DUPLICATES_DETECTED" {
            v["duplicateResult"] = json!({ "allowSave": false, "duplicateRule": "Standard_Rule_for_Email", "errorMessage": self.message });
        }
        v
    }

    /// As a single call's error: `{message, errorCode, fields}`.
    pub fn rest_json(&self) -> Value {
        json!({ "message": self.message, "errorCode": self.code, "fields": self.fields })
    }
}

/// A JSON value that a field cannot take: the whole request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

/// Turns a JSON value into a stored value of a field, or says why not.
pub fn to_val(field: &Field, value: &Value) -> Result<Val, ParseError> {
    let wrong = |what: &str| {
        ParseError(format!(
            "Cannot deserialize instance of {what} from {} value {value} or request may be missing a required field",
            json_kind(value)
        ))
    };
    match (field.kind, value) {
        (_, Value::Null) => Ok(Val::Null),
        (FieldType::Boolean, Value::Bool(b)) => Ok(Val::Bool(*b)),
        (FieldType::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Ok(Val::Bool(s == "true"))
        }
        (FieldType::Boolean, _) => Err(wrong("boolean")),
        (FieldType::Datetime, Value::String(s)) => parse_datetime(s)
            .map(Val::Time)
            .ok_or_else(|| ParseError(format!("{}: value not of required type: {s}", field.name))),
        (FieldType::Date, Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|_| Val::Text(s.as_str().into()))
            .map_err(|_| ParseError(format!("{}: value not of required type: {s}", field.name))),
        (_, Value::String(s)) => Ok(Val::Text(s.as_str().into())),
        (_, Value::Number(n)) if field.kind != FieldType::Datetime => {
            Ok(Val::Text(n.to_string().into()))
        }
        _ => Err(wrong("string")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Checks one record of a create or update and applies it to `record` (a new
/// record, or a copy of the stored one). `pending` holds the e-mails earlier
/// records of the same call take (for the duplicate rule).
pub fn apply_write(
    data: &OrgData,
    object: SObject,
    id: &str,
    body: &Map<String, Value>,
    record: &mut Record,
    creating: bool,
    pending: &HashMap<String, String>,
) -> Result<(), WriteError> {
    let table = data.table(object);
    let schema = &table.schema;
    let mut changes: Vec<(usize, Val)> = Vec::with_capacity(body.len());
    for (name, value) in body {
        if name == "attributes" {
            continue;
        }
        let Some(index) = schema.index(name) else {
            return Err(WriteError::new(
                "INVALID_FIELD",
                format!(
                    "No such column '{name}' on sobject of type {}",
                    object.name()
                ),
                vec![],
            ));
        };
        let field = &schema.fields[index];
        if field.name == "Id" && !creating {
            // An update names its record by Id; the value itself changes nothing.
            continue;
        }
        let allowed = if creating {
            field.createable
        } else {
            field.updateable
        };
        if !allowed {
            let verb = if creating { "create" } else { "update" };
            return Err(WriteError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to {verb} fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    field.name
                ),
                vec![field.name.clone()],
            ));
        }
        let val = to_val(field, value)
            .map_err(|e| WriteError::new("JSON_PARSER_ERROR", e.0, vec![field.name.clone()]))?;
        changes.push((index, val));
    }
    for (index, val) in &changes {
        check_value(data, object, &schema.fields[*index], val)?;
    }
    for (index, val) in changes {
        record.set(index, val);
    }
    if creating {
        for (i, field) in schema.fields.iter().enumerate() {
            if *record.get(i) == Val::Null
                && let Some(default) = &field.default_value
            {
                record.set(i, to_val(field, default).unwrap_or_default());
            }
        }
    }
    // Required fields: all on create; on update, those the update blanks.
    let missing: Vec<String> = schema
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            f.required
                && (creating || body.keys().any(|k| k.eq_ignore_ascii_case(&f.name)))
                && record.get(*i).as_str().is_none_or(|s| s.trim().is_empty())
        })
        .map(|(_, f)| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(WriteError::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            missing,
        ));
    }
    if data.settings.duplicate_rule == DuplicateRule::Block
        && let Some(email) = table
            .value(record, "Email")
            .as_str()
            .filter(|e| !e.is_empty())
    {
        let key = email.to_lowercase();
        let taken = !table.holders_of(&key, Some(id)).is_empty()
            || pending.get(&key).is_some_and(|holder| holder != id);
        if taken {
            return Err(WriteError::new(
                "DUPLICATES_DETECTED",
                "Use one of these records?",
                vec![],
            ));
        }
    }
    Ok(())
}

fn check_value(
    data: &OrgData,
    object: SObject,
    field: &Field,
    val: &Val,
) -> Result<(), WriteError> {
    let name = || vec![field.name.clone()];
    let Val::Text(text) = val else {
        if *val == Val::Null && field.restricted_picklist {
            return Err(WriteError::new(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{}: bad value for restricted picklist field: null",
                    field.label
                ),
                name(),
            ));
        }
        return Ok(());
    };
    if field.length > 0 && text.chars().count() > field.length as usize {
        return Err(WriteError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {} (max length={})",
                field.label, text, field.length
            ),
            name(),
        ));
    }
    match field.kind {
        FieldType::Email if !text.is_empty() && !valid_email(text) => Err(WriteError::new(
            "INVALID_EMAIL_ADDRESS",
            format!("{}: invalid email address: {text}", field.label),
            name(),
        )),
        FieldType::Picklist
            if field.restricted_picklist
                && !field.picklist_values.iter().any(|v| **v == **text) =>
        {
            Err(WriteError::new(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "{}: bad value for restricted picklist field: {text}",
                    field.label
                ),
                name(),
            ))
        }
        FieldType::Reference => {
            let known = match field.reference_to.first().map(String::as_str) {
                Some("User") => data.table(SObject::User).records.contains_key(&**text),
                Some("Account") => data.accounts.contains(&**text),
                Some("Contact") => data.table(SObject::Contact).records.contains_key(&**text),
                _ => false,
            };
            let inactive_owner = known
                && field.name == "OwnerId"
                && data
                    .table(SObject::User)
                    .records
                    .get(&**text)
                    .is_some_and(|u| !data.table(SObject::User).value(u, "IsActive").is_true());
            if inactive_owner {
                Err(WriteError::new(
                    "INACTIVE_OWNER_OR_USER",
                    format!(
                        "operation performed with inactive user [{text}] as owner of {}",
                        object.name().to_lowercase()
                    ),
                    vec![],
                ))
            } else if known {
                Ok(())
            } else {
                Err(WriteError::new(
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("{}: id value of incorrect type: {text}", field.label),
                    name(),
                ))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_18_characters_and_sort_in_creation_order() {
        let a = make_id("00Q", 61);
        let b = make_id("00Q", 62);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("00Q"));
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn datetimes_read_and_write_salesforces_format() {
        let ms = parse_datetime("2026-11-21T10:00:00.000+0000").unwrap();
        assert_eq!(format_datetime(ms), "2026-11-21T10:00:00.000+0000");
        assert_eq!(parse_datetime("2026-11-21T10:00:00Z"), Some(ms));
    }
}
