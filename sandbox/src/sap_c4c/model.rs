//! The data of a C4C tenant: entity sets (leads, individual customers,
//! contacts, corporate accounts), their properties and code lists, records as
//! stored, and the checks a write passes (creatable, updatable, types, lengths,
//! code lists, a lead's company).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The OData namespace of the service's types.
pub const NAMESPACE: &str = "c4codata";

/// A property's EDM type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `Edm.String` of at most this many characters.
    Text(usize),
    /// `Edm.String` holding one code of a code list: `(code, description)`.
    Code(Vec<(String, String)>),
    /// `Edm.Boolean`.
    Bool,
    /// `Edm.DateTimeOffset`, kept as epoch milliseconds.
    Time,
}

impl Kind {
    /// The EDM type name.
    pub fn edm(&self) -> &'static str {
        match self {
            Kind::Text(_) | Kind::Code(_) => "Edm.String",
            Kind::Bool => "Edm.Boolean",
            Kind::Time => "Edm.DateTimeOffset",
        }
    }
}

/// One property of an entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    /// Its name, as in `$metadata`.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// `sap:creatable`.
    pub creatable: bool,
    /// `sap:updatable`.
    pub updatable: bool,
    /// A key user tool extension field (`_KUT`).
    pub extension: bool,
}

impl Prop {
    fn new(name: &str, kind: Kind, creatable: bool, updatable: bool) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            creatable,
            updatable,
            extension: false,
        }
    }

    fn text(name: &str, len: usize) -> Self {
        Self::new(name, Kind::Text(len), true, true)
    }

    fn read_only(name: &str, kind: Kind) -> Self {
        Self::new(name, kind, false, false)
    }

    fn code(name: &str, list: &[(&str, &str)]) -> Self {
        let list = list
            .iter()
            .map(|(c, d)| ((*c).to_owned(), (*d).to_owned()))
            .collect();
        Self::new(name, Kind::Code(list), true, true)
    }
}

/// The entity sets the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Set {
    /// `LeadCollection` of `Lead`.
    Lead,
    /// `IndividualCustomerCollection` of `IndividualCustomer`.
    IndividualCustomer,
    /// `ContactCollection` of `Contact`.
    Contact,
    /// `CorporateAccountCollection` of `CorporateAccount`: what conversion creates.
    CorporateAccount,
    /// `EmployeeCollection` of `Employee`: the users who own records.
    Employee,
}

impl Set {
    /// Every set, in `$metadata` order.
    pub const ALL: [Set; 5] = [
        Set::Lead,
        Set::IndividualCustomer,
        Set::Contact,
        Set::CorporateAccount,
        Set::Employee,
    ];

    /// The entity type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Set::Lead => "Lead",
            Set::IndividualCustomer => "IndividualCustomer",
            Set::Contact => "Contact",
            Set::CorporateAccount => "CorporateAccount",
            Set::Employee => "Employee",
        }
    }

    /// The entity set name, `{Type}Collection`.
    pub fn set_name(self) -> String {
        format!("{}Collection", self.type_name())
    }

    /// The set of this name, as a path or the admin API gives it.
    pub fn parse(name: &str) -> Option<Set> {
        Set::ALL
            .into_iter()
            .find(|s| s.set_name() == name || s.type_name() == name)
    }

    /// The human-readable id property (`LeadID`, `CustomerID`, ...).
    pub fn id_prop(self) -> &'static str {
        match self {
            Set::Lead => "LeadID",
            Set::IndividualCustomer => "CustomerID",
            Set::Contact => "ContactID",
            Set::CorporateAccount => "AccountID",
            Set::Employee => "EmployeeID",
        }
    }

    fn id_base(self) -> u64 {
        match self {
            Set::Lead => 10_000,
            Set::IndividualCustomer => 1_000_000,
            Set::Contact => 2_000_000,
            Set::CorporateAccount => 3_000_000,
            Set::Employee => 4_000_000,
        }
    }

    /// The property naming a record's owner (an employee's
    /// `BusinessPartnerID`), on the sets that have one.
    pub fn owner_prop(self) -> Option<&'static str> {
        match self {
            Set::Lead => Some("OwnerPartyID"),
            Set::IndividualCustomer => Some("OwnerID"),
            _ => None,
        }
    }
}

/// The business partner ids of employees start here (`8000000001`, ...),
/// apart from their `EmployeeID`s, as in a tenant whose employees were
/// migrated with their own numbers.
const PARTNER_BASE: u64 = 8_000_000_000;

/// Lead qualification levels.
pub const QUALIFICATION_LEVELS: &[(&str, &str)] = &[("1", "Hot"), ("2", "Warm"), ("3", "Cold")];
/// Lead statuses. Conversion sets `2` (Qualified).
pub const LEAD_STATUSES: &[(&str, &str)] = &[
    ("1", "Open"),
    ("2", "Qualified"),
    ("3", "Accepted"),
    ("4", "Declined"),
];
/// The qualified status a converted lead carries.
pub const QUALIFIED: &str = "2";
/// Lead sources (`OriginTypeCode`): the seeded sources, coded as a tenant configures them.
pub const ORIGIN_TYPES: &[(&str, &str)] = &[
    ("001", "Advertisement"),
    ("002", "Cold Call"),
    ("003", "Web Form"),
    ("004", "Trade Show"),
    ("005", "Partner"),
    ("006", "Seminar"),
    ("007", "Chat"),
];
/// Lead priorities.
pub const PRIORITIES: &[(&str, &str)] = &[
    ("1", "Immediate"),
    ("2", "Urgent"),
    ("3", "Normal"),
    ("7", "Low"),
];
/// Customer life cycle statuses.
pub const LIFE_CYCLE_STATUSES: &[(&str, &str)] = &[
    ("1", "Preparation"),
    ("2", "Active"),
    ("3", "Blocked"),
    ("4", "Obsolete"),
];

fn base_props(set: Set) -> Vec<Prop> {
    let mut props = vec![
        Prop::read_only("ObjectID", Kind::Text(70)),
        Prop::read_only(set.id_prop(), Kind::Text(20)),
        Prop::read_only("ETag", Kind::Time),
    ];
    let t = Prop::text;
    match set {
        Set::Lead => props.extend([
            t("Name", 255),
            t("ContactFirstName", 40),
            t("ContactLastName", 40),
            t("ContactEMail", 255),
            t("ContactPhone", 40),
            t("ContactMobile", 40),
            t("Company", 80),
            t("AccountPartyID", 20),
            Prop::read_only("ContactID", Kind::Text(20)),
            Prop::code("StatusCode", LEAD_STATUSES),
            Prop::code("QualificationLevelCode", QUALIFICATION_LEVELS),
            Prop::code("OriginTypeCode", ORIGIN_TYPES),
            Prop::code("PriorityCode", PRIORITIES),
            t("OwnerPartyID", 20),
            Prop::read_only("OwnerPartyName", Kind::Text(80)),
        ]),
        Set::IndividualCustomer => props.extend([
            t("FirstName", 40),
            t("LastName", 40),
            t("Email", 255),
            t("Phone", 40),
            t("Mobile", 40),
            Prop::code("LifeCycleStatusCode", LIFE_CYCLE_STATUSES),
            t("OwnerID", 20),
            Prop::read_only("OwnerName", Kind::Text(80)),
        ]),
        Set::Contact => props.extend([
            t("FirstName", 40),
            t("LastName", 40),
            t("Email", 255),
            t("Phone", 40),
            t("Mobile", 40),
            t("AccountID", 20),
            t("JobTitle", 40),
            Prop::code("StatusCode", LIFE_CYCLE_STATUSES),
        ]),
        Set::CorporateAccount => props.extend([
            t("Name", 80),
            Prop::code("LifeCycleStatusCode", LIFE_CYCLE_STATUSES),
        ]),
        Set::Employee => props.extend([
            Prop::read_only("BusinessPartnerID", Kind::Text(10)),
            t("FirstName", 40),
            t("LastName", 40),
            t("Email", 255),
            t("Phone", 40),
            t("Mobile", 40),
            t("UserID", 40),
            Prop::new("UserLockedIndicator", Kind::Bool, true, true),
        ]),
    }
    props.extend([
        Prop::read_only("CreationOn", Kind::Time),
        Prop::read_only("EntityLastChangedOn", Kind::Time),
    ]);
    props
}

/// A record as stored: property values (times as epoch ms numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Values by property name; absent means null.
    pub values: BTreeMap<String, Value>,
}

impl Record {
    /// A text value, or "".
    pub fn text(&self, prop: &str) -> &str {
        self.values
            .get(prop)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// A time value, in epoch ms.
    pub fn time(&self, prop: &str) -> i64 {
        self.values
            .get(prop)
            .and_then(Value::as_i64)
            .unwrap_or_default()
    }
}

/// One entity set's properties and records.
#[derive(Debug, Clone)]
pub struct Table {
    /// The set.
    pub set: Set,
    /// Properties in `$metadata` order.
    pub props: Vec<Prop>,
    /// Records by ObjectID.
    pub records: BTreeMap<String, Record>,
}

impl Table {
    /// The property of this name.
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

/// Behaviour the vendor leaves open or a test wants to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Entries per server page before `__next` (C4C: 1,000).
    pub page_size: usize,
    /// Most operations in one `$batch` changeset.
    pub changeset_max: usize,
    /// Most operations (changesets counted by their operations) in one `$batch`.
    pub batch_max: usize,
    /// Whether an update without `If-Match` is refused with 428.
    pub if_match_required: bool,
    /// Requests allowed per sandbox-clock day (a tenant's fair-use cap); 429 after.
    pub daily_requests: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            page_size: 1000,
            changeset_max: 100,
            batch_max: 1000,
            if_match_required: false,
            daily_requests: 1_000_000,
        }
    }
}

impl Settings {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.page_size) {
            return Err("page_size: must be between 1 and 1000".into());
        }
        if self.changeset_max == 0 {
            return Err("changeset_max: must be at least 1".into());
        }
        if self.batch_max < self.changeset_max {
            return Err("batch_max: must be at least changeset_max".into());
        }
        if self.daily_requests == 0 {
            return Err("daily_requests: must be at least 1".into());
        }
        Ok(())
    }
}

/// A tenant's data: settings, tables and counters.
#[derive(Debug, Clone)]
pub struct TenantData {
    /// The settings.
    pub settings: Settings,
    /// Tables by set.
    pub tables: BTreeMap<Set, Table>,
    /// The last ObjectID / human id number handed out.
    pub counter: u64,
    /// Requests counted today: `(day number, count)`.
    pub usage: (i64, u64),
    tenant_no: u64,
}

/// A write refused: the OData error's status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// HTTP status.
    pub status: u16,
    /// The error code.
    pub code: &'static str,
    /// The message, naming the property.
    pub message: String,
}

impl WriteError {
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
        }
    }
}

/// Epoch ms as `/Date(ms)/`, the OData v2 JSON form C4C writes.
pub fn json_time(ms: i64) -> String {
    format!("/Date({ms})/")
}

/// Epoch ms as ISO 8601 with 7 fractional digits, as C4C's ETags carry them.
pub fn iso_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
        .replace('Z', "0000Z")
}

/// Parses `/Date(ms)/` or `/Date(ms+mmmm)/` (offset in minutes, as SAP writes it).
pub fn parse_json_time(s: &str) -> Option<i64> {
    let inner = s.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let split = inner[1..].find(['+', '-']).map(|i| i + 1);
    let (ms, offset) = match split {
        Some(i) => (&inner[..i], Some(&inner[i..])),
        None => (inner, None),
    };
    let ms: i64 = ms.parse().ok()?;
    // The ticks are UTC already; the offset only says which zone to show them in.
    if let Some(offset) = offset {
        offset.parse::<i64>().ok()?;
    }
    Some(ms)
}

impl TenantData {
    /// Empty tables with the standard properties plus the extension fields.
    pub fn new(settings: Settings, tenant_no: u64, extensions: &[Prop]) -> Self {
        let tables = Set::ALL
            .into_iter()
            .map(|set| {
                let mut props = base_props(set);
                if matches!(set, Set::Lead | Set::Contact | Set::IndividualCustomer) {
                    props.extend(extensions.iter().cloned());
                }
                (
                    set,
                    Table {
                        set,
                        props,
                        records: BTreeMap::new(),
                    },
                )
            })
            .collect();
        Self {
            settings,
            tables,
            counter: 0,
            usage: (0, 0),
            tenant_no,
        }
    }

    /// A table.
    pub fn table(&self, set: Set) -> &Table {
        &self.tables[&set]
    }

    /// A table, to change.
    pub fn table_mut(&mut self, set: Set) -> &mut Table {
        self.tables.get_mut(&set).expect("every set has a table")
    }

    /// A new ObjectID (32 upper-case hex digits, as C4C's GUIDs) and human id.
    fn next_ids(&mut self, set: Set) -> (String, String) {
        self.counter += 1;
        let object_id = format!(
            "00163E{:06X}1EE{:03X}{:014X}",
            self.tenant_no,
            set.id_base() % 0xFFF,
            self.counter
        );
        (object_id, (set.id_base() + self.counter).to_string())
    }

    /// Counts one request against today's cap; false when the cap is reached.
    pub fn admit(&mut self, now_ms: i64) -> bool {
        let day = now_ms.div_euclid(86_400_000);
        if self.usage.0 != day {
            self.usage = (day, 0);
        }
        if self.usage.1 >= self.settings.daily_requests {
            return false;
        }
        self.usage.1 += 1;
        true
    }

    /// Requests counted today.
    pub fn used_today(&self, now_ms: i64) -> u64 {
        if self.usage.0 == now_ms.div_euclid(86_400_000) {
            self.usage.1
        } else {
            0
        }
    }

    /// Creates a record from an OData JSON body (or the admin API's, `admin`
    /// lifting the creatable checks and taking times as given).
    pub fn create(
        &mut self,
        set: Set,
        body: &Map<String, Value>,
        now_ms: i64,
        admin: bool,
    ) -> Result<String, WriteError> {
        let mut values = self.checked_values(set, body, true, admin)?;
        values.retain(|_, v| !v.is_null());
        self.owner_rules(set, &mut values, admin)?;
        if set == Set::Lead {
            lead_rules(&values, &BTreeMap::new())?;
            values
                .entry("StatusCode".into())
                .or_insert_with(|| json!("1"));
        }
        let (object_id, human_id) = self.next_ids(set);
        values.insert("ObjectID".into(), json!(object_id));
        values
            .entry(set.id_prop().to_owned())
            .or_insert_with(|| json!(human_id));
        if set == Set::Employee {
            values
                .entry("BusinessPartnerID".to_owned())
                .or_insert_with(|| json!((PARTNER_BASE + self.counter).to_string()));
        }
        let changed = values
            .get("EntityLastChangedOn")
            .and_then(Value::as_i64)
            .unwrap_or(now_ms);
        values.insert("EntityLastChangedOn".into(), json!(changed));
        values.entry("CreationOn".into()).or_insert(json!(changed));
        values.insert("ETag".into(), json!(changed));
        self.table_mut(set)
            .records
            .insert(object_id.clone(), Record { values });
        Ok(object_id)
    }

    /// Merges an OData JSON body into a record (MERGE/PATCH semantics; PUT
    /// clears what the body leaves out).
    pub fn update(
        &mut self,
        set: Set,
        id: &str,
        body: &Map<String, Value>,
        replace: bool,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let mut values = self.checked_values(set, body, false, false)?;
        self.owner_rules(set, &mut values, false)?;
        let table = self.table(set);
        let Some(old) = table.records.get(id) else {
            return Err(not_found(set, id));
        };
        let mut merged = old.values.clone();
        if replace {
            for prop in table.props.iter().filter(|p| p.updatable) {
                merged.remove(&prop.name);
            }
        }
        for (name, value) in values {
            if value.is_null() {
                merged.remove(&name);
            } else {
                merged.insert(name, value);
            }
        }
        if set == Set::Lead {
            lead_rules(&merged, &old.values)?;
        }
        // A change lands at least a millisecond after the last, so ETags always move.
        let changed = now_ms.max(old.time("EntityLastChangedOn") + 1);
        merged.insert("EntityLastChangedOn".into(), json!(changed));
        merged.insert("ETag".into(), json!(changed));
        self.table_mut(set)
            .records
            .insert(id.to_owned(), Record { values: merged });
        Ok(())
    }

    /// The employee whose business partner id is `partner`.
    pub fn employee(&self, partner: &str) -> Option<&Record> {
        self.table(Set::Employee)
            .records
            .values()
            .find(|e| e.text("BusinessPartnerID") == partner)
    }

    /// An owner must be an employee of the tenant (the admin API may store
    /// any id, as a tenant holds records of employees who left); the owner's
    /// name is derived, as C4C fills `OwnerPartyName`.
    fn owner_rules(
        &self,
        set: Set,
        values: &mut BTreeMap<String, Value>,
        admin: bool,
    ) -> Result<(), WriteError> {
        let Some(prop) = set.owner_prop() else {
            return Ok(());
        };
        let name_prop = if set == Set::Lead {
            "OwnerPartyName"
        } else {
            "OwnerName"
        };
        let Some(partner) = values.get(prop).map(|v| v.as_str().map(str::to_owned)) else {
            return Ok(());
        };
        // A cleared owner clears the name.
        let Some(partner) = partner else {
            values.insert(name_prop.into(), Value::Null);
            return Ok(());
        };
        match self.employee(&partner) {
            Some(e) => {
                let name = format!("{} {}", e.text("FirstName"), e.text("LastName"));
                values.insert(name_prop.into(), json!(name.trim()));
            }
            None if admin || partner.is_empty() => {}
            None => {
                return Err(WriteError::bad(
                    "INVALID_VALUE",
                    format!("Property '{prop}': party {partner} is not an employee of this tenant"),
                ));
            }
        }
        Ok(())
    }

    fn checked_values(
        &self,
        set: Set,
        body: &Map<String, Value>,
        create: bool,
        admin: bool,
    ) -> Result<BTreeMap<String, Value>, WriteError> {
        let table = self.table(set);
        let mut values = BTreeMap::new();
        for (name, value) in body {
            if name == "__metadata" {
                continue;
            }
            let Some(prop) = table.prop(name) else {
                return Err(WriteError::bad(
                    "INVALID_PROPERTY",
                    format!(
                        "Property '{name}' is invalid: {} has no such property",
                        set.type_name()
                    ),
                ));
            };
            let allowed = admin
                || if create {
                    prop.creatable
                } else {
                    prop.updatable
                };
            if !allowed {
                if name == "ObjectID" && !create {
                    continue;
                }
                return Err(WriteError::bad(
                    "PROPERTY_NOT_MODIFIABLE",
                    format!(
                        "Property '{name}' of {} is not {}",
                        set.type_name(),
                        if create { "creatable" } else { "updatable" }
                    ),
                ));
            }
            let value = match (&prop.kind, value) {
                (_, Value::Null) => Value::Null,
                // The admin API stores what a tenant may hold after a code was
                // removed from its list.
                (Kind::Code(_), Value::String(s)) if admin => json!(s),
                _ => check_value(prop, value)?,
            };
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    /// Converts a lead as a rep does: an account (unless the lead names one)
    /// and a contact are created, and the lead becomes qualified and points at them.
    pub fn convert_lead(&mut self, id: &str, now_ms: i64) -> Result<(String, String), WriteError> {
        let lead = self
            .table(Set::Lead)
            .records
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(Set::Lead, id))?;
        if !lead.text("ContactID").is_empty() {
            return Err(WriteError {
                status: 400,
                code: "LEAD_ALREADY_CONVERTED",
                message: format!("Lead {} is already converted", lead.text("LeadID")),
            });
        }
        let account_id = match lead.text("AccountPartyID") {
            "" => {
                let account = json!({ "Name": lead.text("Company"), "LifeCycleStatusCode": "2" });
                let account = account.as_object().cloned().unwrap_or_default();
                let object_id = self.create(Set::CorporateAccount, &account, now_ms, false)?;
                self.table(Set::CorporateAccount).records[&object_id]
                    .text("AccountID")
                    .to_owned()
            }
            given => given.to_owned(),
        };
        let mut contact = Map::new();
        for (from, to) in [
            ("ContactFirstName", "FirstName"),
            ("ContactLastName", "LastName"),
            ("ContactEMail", "Email"),
            ("ContactPhone", "Phone"),
            ("ContactMobile", "Mobile"),
        ] {
            if !lead.text(from).is_empty() {
                contact.insert(to.into(), json!(lead.text(from)));
            }
        }
        contact.insert("AccountID".into(), json!(account_id));
        contact.insert("StatusCode".into(), json!("2"));
        let contact_object = self.create(Set::Contact, &contact, now_ms, false)?;
        let contact_id = self.table(Set::Contact).records[&contact_object]
            .text("ContactID")
            .to_owned();
        let table = self.table_mut(Set::Lead);
        if let Some(record) = table.records.get_mut(id) {
            let changed = now_ms.max(record.time("EntityLastChangedOn") + 1);
            record.values.insert("StatusCode".into(), json!(QUALIFIED));
            record
                .values
                .insert("AccountPartyID".into(), json!(account_id));
            record.values.insert("ContactID".into(), json!(contact_id));
            record
                .values
                .insert("EntityLastChangedOn".into(), json!(changed));
            record.values.insert("ETag".into(), json!(changed));
        }
        Ok((contact_object, contact_id))
    }

    /// A record in OData JSON (`__metadata` first), all properties or the selected ones.
    pub fn to_json(
        &self,
        set: Set,
        record: &Record,
        service_url: &str,
        select: Option<&[String]>,
    ) -> Value {
        let table = self.table(set);
        let id = record.text("ObjectID");
        let uri = format!("{service_url}{}('{id}')", set.set_name());
        let mut out = Map::new();
        out.insert(
            "__metadata".into(),
            json!({
                "uri": uri,
                "type": format!("{NAMESPACE}.{}", set.type_name()),
                "etag": etag(record.time("ETag")),
            }),
        );
        for prop in &table.props {
            if select.is_some_and(|s| !s.iter().any(|n| n == &prop.name)) {
                continue;
            }
            let value = record.values.get(&prop.name);
            let value = match (&prop.kind, value) {
                (_, None) if matches!(prop.kind, Kind::Bool) => Value::Bool(false),
                (Kind::Text(_) | Kind::Code(_), None) => json!(""),
                (_, None) => Value::Null,
                (Kind::Time, Some(v)) => json!(json_time(v.as_i64().unwrap_or_default())),
                (_, Some(v)) => v.clone(),
            };
            out.insert(prop.name.clone(), value);
        }
        Value::Object(out)
    }
}

/// The ETag header of a record changed at `ms`, as C4C writes it.
pub fn etag(ms: i64) -> String {
    format!("W/\"datetimeoffset'{}'\"", iso_time(ms).replace(':', "%3A"))
}

/// "Entity not found" for a key.
pub fn not_found(set: Set, id: &str) -> WriteError {
    WriteError {
        status: 404,
        code: "RESOURCE_NOT_FOUND",
        message: format!(
            "Resource not found for the segment '{}('{id}')'",
            set.set_name()
        ),
    }
}

/// A lead needs a company: `Company` or an account (`AccountPartyID`).
fn lead_rules(
    values: &BTreeMap<String, Value>,
    _old: &BTreeMap<String, Value>,
) -> Result<(), WriteError> {
    let has = |p: &str| {
        values
            .get(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    if !has("Company") && !has("AccountPartyID") {
        return Err(WriteError::bad(
            "MANDATORY_FIELD_MISSING",
            "Lead: enter a company (Company) or an account (AccountPartyID)",
        ));
    }
    if !has("Name") {
        return Err(WriteError::bad(
            "MANDATORY_FIELD_MISSING",
            "Lead: enter a name (Name)",
        ));
    }
    Ok(())
}

fn check_value(prop: &Prop, value: &Value) -> Result<Value, WriteError> {
    let name = &prop.name;
    let mismatch = |expected: &str| {
        WriteError::bad(
            "INVALID_VALUE",
            format!("Property '{name}' has invalid value {value}: expected {expected}"),
        )
    };
    match &prop.kind {
        Kind::Text(len) => {
            let s = value.as_str().ok_or_else(|| mismatch("Edm.String"))?;
            if s.chars().count() > *len {
                return Err(WriteError::bad(
                    "INVALID_VALUE",
                    format!("Property '{name}': value is longer than {len} characters"),
                ));
            }
            Ok(json!(s))
        }
        Kind::Code(list) => {
            let s = value.as_str().ok_or_else(|| mismatch("Edm.String"))?;
            if s.is_empty() || list.iter().any(|(c, _)| c == s) {
                Ok(json!(s))
            } else {
                let codes: Vec<&str> = list.iter().map(|(c, _)| c.as_str()).collect();
                Err(WriteError::bad(
                    "INVALID_CODE",
                    format!(
                        "Property '{name}': code '{s}' is not in the code list ({})",
                        codes.join(", ")
                    ),
                ))
            }
        }
        Kind::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| mismatch("Edm.Boolean")),
        Kind::Time => {
            let ms = match value {
                Value::String(s) => parse_json_time(s).or_else(|| {
                    DateTime::parse_from_rfc3339(s)
                        .ok()
                        .map(|t| t.timestamp_millis())
                }),
                Value::Number(n) => n.as_i64(),
                _ => None,
            };
            ms.map(|ms| json!(ms))
                .ok_or_else(|| mismatch("Edm.DateTimeOffset as /Date(ms)/"))
        }
    }
}

/// The employees every tenant starts with: three sales reps and one whose
/// user is locked (an employee who left).
pub const EMPLOYEES: &[(&str, &str, &str, bool)] = &[
    ("Maria", "Schmidt", "maria.schmidt@sales.example", false),
    ("Jonas", "Keller", "jonas.keller@sales.example", false),
    ("Aiko", "Tanaka", "aiko.tanaka@sales.example", false),
    ("Paul", "Frost", "paul.frost@sales.example", true),
];

impl TenantData {
    /// Adds the standard employees; their business partner ids, in order.
    pub fn add_employees(&mut self, now_ms: i64) -> Vec<String> {
        EMPLOYEES
            .iter()
            .filter_map(|(first, last, email, locked)| {
                let body = json!({
                    "FirstName": first, "LastName": last, "Email": email,
                    "UserID": email.split('@').next().unwrap_or_default().to_uppercase(),
                    "UserLockedIndicator": locked,
                });
                let body = body.as_object().cloned().unwrap_or_default();
                let id = self.create(Set::Employee, &body, now_ms, true).ok()?;
                Some(
                    self.table(Set::Employee).records[&id]
                        .text("BusinessPartnerID")
                        .to_owned(),
                )
            })
            .collect()
    }

    /// The business partner ids of employees whose user is not locked.
    pub fn active_owners(&self) -> Vec<String> {
        self.table(Set::Employee)
            .records
            .values()
            .filter(|e| e.values.get("UserLockedIndicator") != Some(&Value::Bool(true)))
            .map(|e| e.text("BusinessPartnerID").to_owned())
            .collect()
    }
}

/// An extension field a tenant adds through the admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Its name; `_KUT` is appended when missing.
    pub name: String,
    /// `text`, `code` or `bool`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Code list descriptions (codes are `1`, `2`, ...), for `code`.
    #[serde(default)]
    pub codes: Vec<String>,
}

impl FieldSpec {
    /// The property; the error names the field.
    pub fn build(&self) -> Result<Prop, String> {
        let valid = !self.name.is_empty()
            && self.name.starts_with(|c: char| c.is_ascii_alphabetic())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "name: {:?} must be letters, digits and underscores, starting with a letter",
                self.name
            ));
        }
        let name = if self.name.ends_with("_KUT") {
            self.name.clone()
        } else {
            format!("{}_KUT", self.name)
        };
        let kind = match self.kind.as_str() {
            "text" => Kind::Text(255),
            "bool" => Kind::Bool,
            "code" if !self.codes.is_empty() => Kind::Code(
                self.codes
                    .iter()
                    .enumerate()
                    .map(|(i, d)| ((i + 1).to_string(), d.clone()))
                    .collect(),
            ),
            "code" => return Err("codes: a code field needs at least one code".into()),
            other => return Err(format!("type: {other:?} is not text, code or bool")),
        };
        Ok(Prop {
            extension: true,
            ..Prop::new(&name, kind, true, true)
        })
    }
}

/// The extension fields every tenant has: the platform link and the sync filter.
pub fn default_extensions() -> Vec<Prop> {
    vec![
        Prop {
            extension: true,
            ..Prop::text("PleziURL_KUT", 255)
        },
        Prop {
            extension: true,
            ..Prop::new("SyncToPlezi_KUT", Kind::Bool, true, true)
        },
        Prop {
            extension: true,
            ..Prop::new("EmailOptOut_KUT", Kind::Bool, true, true)
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(fields: Value) -> Map<String, Value> {
        fields.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_lead_without_a_company_or_account_is_refused() {
        let mut data = TenantData::new(Settings::default(), 1, &default_extensions());
        let error = data
            .create(
                Set::Lead,
                &lead(json!({"Name": "A", "ContactLastName": "B"})),
                0,
                false,
            )
            .unwrap_err();
        assert_eq!(error.code, "MANDATORY_FIELD_MISSING");
        assert!(
            data.create(
                Set::Lead,
                &lead(json!({"Name": "A", "Company": "C"})),
                0,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn a_code_outside_the_list_is_refused_naming_the_codes() {
        let mut data = TenantData::new(Settings::default(), 1, &[]);
        let body = lead(json!({"Name": "A", "Company": "C", "QualificationLevelCode": "9"}));
        let error = data.create(Set::Lead, &body, 0, false).unwrap_err();
        assert_eq!(error.code, "INVALID_CODE");
        assert!(error.message.contains("1, 2, 3"), "{}", error.message);
    }

    #[test]
    fn an_owner_must_be_an_employee_and_lends_the_record_its_name() {
        let mut data = TenantData::new(Settings::default(), 1, &[]);
        let owners = data.add_employees(0);
        assert_eq!(owners.len(), EMPLOYEES.len());
        assert_eq!(
            data.active_owners().len(),
            EMPLOYEES.len() - 1,
            "one is locked"
        );
        let stranger = lead(json!({"Name": "A", "Company": "C", "OwnerPartyID": "42"}));
        let error = data.create(Set::Lead, &stranger, 0, false).unwrap_err();
        assert_eq!(error.code, "INVALID_VALUE");
        assert!(error.message.contains("OwnerPartyID"), "{}", error.message);
        let owned = lead(json!({"Name": "A", "Company": "C", "OwnerPartyID": owners[1]}));
        let id = data.create(Set::Lead, &owned, 0, false).unwrap();
        let record = &data.table(Set::Lead).records[&id];
        assert_eq!(record.text("OwnerPartyName"), "Jonas Keller");
        let customer = lead(json!({"LastName": "B", "OwnerID": owners[0]}));
        let id = data
            .create(Set::IndividualCustomer, &customer, 0, false)
            .unwrap();
        let record = &data.table(Set::IndividualCustomer).records[&id];
        assert_eq!(record.text("OwnerName"), "Maria Schmidt");
        assert_ne!(
            data.table(Set::Employee)
                .records
                .values()
                .next()
                .unwrap()
                .text("EmployeeID"),
            owners[0],
            "party ids are business partner ids, not employee ids"
        );
    }

    #[test]
    fn json_times_parse_with_and_without_an_offset() {
        assert_eq!(parse_json_time("/Date(1000)/"), Some(1000));
        assert_eq!(parse_json_time("/Date(1000+0060)/"), Some(1000));
        assert_eq!(parse_json_time("/Date(-5)/"), Some(-5));
        assert_eq!(parse_json_time("2020"), None);
    }

    #[test]
    fn an_update_moves_the_etag() {
        let mut data = TenantData::new(Settings::default(), 1, &[]);
        let id = data
            .create(
                Set::Lead,
                &lead(json!({"Name": "A", "Company": "C"})),
                5,
                false,
            )
            .unwrap();
        data.update(Set::Lead, &id, &lead(json!({"Name": "B"})), false, 5)
            .unwrap();
        assert_eq!(data.table(Set::Lead).records[&id].time("ETag"), 6);
    }
}
