//! The data of one Pipedrive company: users, person fields, persons and the ordered
//! indexes the list, recents and cursor lookups walk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::limits::{LimitConfig, Usage};
use crate::seed;

/// Deleted persons stay readable by id (with `is_deleted: true`) this long.
pub const DELETED_VISIBLE_SECS: i64 = 30 * 86_400;

/// One company: its data and its limits, each behind its own lock.
#[derive(Debug)]
pub struct Company {
    /// Company id.
    pub id: u64,
    /// The subdomain, e.g. `sandbox` (`https://sandbox.pipedrive.com`).
    pub domain: String,
    /// Display name.
    pub name: String,
    /// Users, fields and persons.
    pub data: Mutex<Data>,
    /// Limits and their counters.
    pub usage: Mutex<Usage>,
}

impl Company {
    /// A company with users and custom fields but no persons.
    pub fn new(id: u64, domain: String, users: Vec<User>, limits: LimitConfig) -> Self {
        Self {
            id,
            name: format!("{domain} (sandbox)"),
            domain,
            data: Mutex::new(Data {
                users,
                next_person_id: 1,
                next_field_id: STANDARD_FIELDS.len() as u64 + 1,
                next_option_id: 100,
                ..Data::default()
            }),
            usage: Mutex::new(Usage::new(limits)),
        }
    }
}

/// A Pipedrive user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// User id (unique across companies, as in Pipedrive).
    pub id: u64,
    /// Full name.
    pub name: String,
    /// Login e-mail.
    pub email: String,
    /// False for a deactivated user.
    pub active_flag: bool,
    /// Company admin.
    pub is_admin: bool,
}

/// The custom field types the sandbox supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Short text.
    Varchar,
    /// Autocomplete text.
    VarcharAuto,
    /// Long text.
    Text,
    /// Number.
    Double,
    /// Single option, by option id.
    Enum,
    /// Multiple options, by an array of option ids.
    Set,
    /// `YYYY-MM-DD`.
    Date,
}

impl FieldType {
    /// Whether values are chosen from options.
    pub fn has_options(self) -> bool {
        matches!(self, FieldType::Enum | FieldType::Set)
    }

    /// Whether values are free text (what search looks at).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Varchar | FieldType::VarcharAuto | FieldType::Text
        )
    }
}

/// An option of an enum or set field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FieldOption {
    /// Option id (what v2 takes and returns).
    pub id: u64,
    /// Label.
    pub label: String,
}

/// A custom person field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustomField {
    /// Field id.
    pub id: u64,
    /// 40-hex key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Type.
    pub field_type: FieldType,
    /// Options of enum and set fields.
    pub options: Option<Vec<FieldOption>>,
}

impl CustomField {
    /// The option with this id.
    pub fn option(&self, id: u64) -> Option<&FieldOption> {
        self.options.as_ref()?.iter().find(|o| o.id == id)
    }

    /// The id of the option with this label.
    pub fn option_id(&self, label: &str) -> Option<u64> {
        self.options
            .as_ref()?
            .iter()
            .find(|o| o.label == label)
            .map(|o| o.id)
    }
}

/// An e-mail address or phone number of a person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// The address or number, as given.
    pub value: String,
    /// The primary one.
    #[serde(default)]
    pub primary: bool,
    /// work, home, mobile or other.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_label() -> String {
    "work".into()
}

/// A postal address: the full address and its components, each optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    /// The full address.
    #[serde(default)]
    pub value: Option<String>,
    /// Country.
    #[serde(default)]
    pub country: Option<String>,
    /// State or region.
    #[serde(default)]
    pub admin_area_level_1: Option<String>,
    /// County.
    #[serde(default)]
    pub admin_area_level_2: Option<String>,
    /// City.
    #[serde(default)]
    pub locality: Option<String>,
    /// Neighbourhood.
    #[serde(default)]
    pub sublocality: Option<String>,
    /// Street.
    #[serde(default)]
    pub route: Option<String>,
    /// Street number.
    #[serde(default)]
    pub street_number: Option<String>,
    /// Apartment or suite.
    #[serde(default)]
    pub subpremise: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
}

/// The keys of a postal address, in Pipedrive's order.
pub const ADDRESS_PARTS: &[&str] = &[
    "value",
    "country",
    "admin_area_level_1",
    "admin_area_level_2",
    "locality",
    "sublocality",
    "route",
    "street_number",
    "subpremise",
    "postal_code",
];

/// The standard person fields Pipedrive fills through contact sync (`job_title`,
/// `birthday`, `notes`, `im`, `postal_address`); the sandbox company has contact sync
/// enabled, so persons always carry them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// Job title.
    #[serde(default)]
    pub job_title: Option<String>,
    /// Birthday, `YYYY-MM-DD`.
    #[serde(default)]
    pub birthday: Option<String>,
    /// Contact sync notes (at most 10,000 characters).
    #[serde(default)]
    pub notes: Option<String>,
    /// Instant messaging accounts, shaped like e-mails and phones.
    #[serde(default)]
    pub im: Vec<Contact>,
    /// Postal address.
    #[serde(default)]
    pub postal_address: Option<PostalAddress>,
}

/// Labels allowed on e-mails and phones.
pub const CONTACT_LABELS: &[&str] = &["work", "home", "mobile", "other"];
/// Values of `visible_to`.
pub const VISIBLE_TO: &[u64] = &[1, 3, 5, 7];
/// Values of `marketing_status`.
pub const MARKETING_STATUSES: &[&str] = &["no_consent", "unsubscribed", "subscribed", "archived"];
/// The person labels (the standard `label` field's options), by id.
pub const PERSON_LABELS: &[(u64, &str)] = &[
    (1, "Customer"),
    (2, "Hot lead"),
    (3, "Warm lead"),
    (4, "Cold lead"),
];

/// A person as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Id, per company.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Owner (a user id).
    pub owner_id: u64,
    /// Organization (organizations are not emulated: always null through the API).
    pub org_id: Option<u64>,
    /// Creation time, Unix seconds.
    pub add_time: i64,
    /// Last change, Unix seconds.
    pub update_time: i64,
    /// E-mail addresses.
    pub emails: Vec<Contact>,
    /// Phone numbers.
    pub phones: Vec<Contact>,
    /// Deleted (kept for recents and `GET /persons/{id}`).
    pub is_deleted: bool,
    /// When it was deleted, Unix seconds.
    pub delete_time: Option<i64>,
    /// 1, 3, 5 or 7.
    pub visible_to: u64,
    /// Person label ids.
    pub label_ids: Vec<u64>,
    /// Marketing status.
    pub marketing_status: String,
    /// Job title, birthday, notes, instant messaging and postal address.
    pub details: Details,
    /// Custom field values by key, in v2 form (option ids for enum and set).
    pub custom_fields: BTreeMap<String, Value>,
}

/// A company's users, fields and persons with the ordered indexes.
#[derive(Debug, Default)]
pub struct Data {
    /// Users, the first is the company's admin.
    pub users: Vec<User>,
    /// Custom person fields.
    pub fields: Vec<CustomField>,
    /// Every person, deleted ones included; shared so pages are cloned cheaply under the lock.
    pub persons: HashMap<u64, Arc<Person>>,
    /// Ids of persons not deleted.
    pub live_ids: BTreeSet<u64>,
    /// (update_time, id) of persons not deleted.
    pub live_by_update: BTreeSet<(i64, u64)>,
    /// (add_time, id) of persons not deleted.
    pub live_by_add: BTreeSet<(i64, u64)>,
    /// (update_time, id) of every person, for recents.
    pub all_by_update: BTreeSet<(i64, u64)>,
    /// The next person id.
    pub next_person_id: u64,
    /// The next field id.
    pub next_field_id: u64,
    /// The next option id.
    pub next_option_id: u64,
    /// Webhooks (`/api/v1/webhooks`), in creation order.
    pub webhooks: Vec<super::webhooks::Webhook>,
    /// The next webhook id.
    pub next_webhook_id: u64,
    /// Person changes made while a webhook existed, not yet handed to the
    /// notifier ([`super::webhooks::flush`]).
    pub events: Vec<super::webhooks::PersonEvent>,
}

impl Data {
    /// The user with this id.
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The custom field with this key.
    pub fn field(&self, key: &str) -> Option<&CustomField> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The custom field with this name.
    pub fn field_named(&self, name: &str) -> Option<&CustomField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Marks a live person deleted now (kept for recents and reads by id);
    /// false when there is no such live person.
    pub fn delete_person(&mut self, id: u64, now: i64) -> bool {
        let Some(mut person) = self
            .persons
            .get(&id)
            .filter(|p| !p.is_deleted)
            .map(|p| Person::clone(p))
        else {
            return false;
        };
        person.is_deleted = true;
        person.delete_time = Some(now);
        person.update_time = now;
        self.put(person);
        true
    }

    /// Stores a person (new or changed) and keeps the indexes up to date.
    pub fn put(&mut self, person: Person) {
        if !self.webhooks.is_empty() {
            let previous = self.persons.get(&person.id).cloned();
            self.events.push(super::webhooks::PersonEvent {
                previous,
                current: Arc::new(person.clone()),
            });
        }
        if let Some(old) = self.persons.remove(&person.id) {
            self.live_ids.remove(&old.id);
            self.live_by_update.remove(&(old.update_time, old.id));
            self.live_by_add.remove(&(old.add_time, old.id));
            self.all_by_update.remove(&(old.update_time, old.id));
        }
        if !person.is_deleted {
            self.live_ids.insert(person.id);
            self.live_by_update.insert((person.update_time, person.id));
            self.live_by_add.insert((person.add_time, person.id));
        }
        self.all_by_update.insert((person.update_time, person.id));
        self.next_person_id = self.next_person_id.max(person.id + 1);
        self.persons.insert(person.id, Arc::new(person));
    }

    /// Adds a custom field with a key drawn from `rng`; options get fresh ids.
    pub fn add_field(
        &mut self,
        rng: &mut ChaCha8Rng,
        spec: &FieldSpec,
    ) -> Result<CustomField, String> {
        if spec.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.field_named(&spec.name).is_some() {
            return Err(format!("name: a field named {:?} exists", spec.name));
        }
        let key = match &spec.key {
            Some(key)
                if key.len() == 40
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
            {
                if self.field(key).is_some() {
                    return Err(format!("key: {key} is taken"));
                }
                key.clone()
            }
            Some(key) => {
                return Err(format!(
                    "key: must be 40 lower-case hex digits, got {key:?}"
                ));
            }
            None => loop {
                let key = hex_key(rng);
                if self.field(&key).is_none() {
                    break key;
                }
            },
        };
        let options = match (spec.field_type.has_options(), &spec.options) {
            (true, Some(labels)) if !labels.is_empty() => Some(
                labels
                    .iter()
                    .map(|label| {
                        self.next_option_id += 1;
                        FieldOption {
                            id: self.next_option_id - 1,
                            label: label.clone(),
                        }
                    })
                    .collect(),
            ),
            (true, _) => return Err("options: enum and set fields need at least one option".into()),
            (false, None) => None,
            (false, Some(_)) => return Err("options: only enum and set fields have options".into()),
        };
        let field = CustomField {
            id: self.next_field_id,
            key,
            name: spec.name.clone(),
            field_type: spec.field_type,
            options,
        };
        self.next_field_id += 1;
        self.fields.push(field.clone());
        Ok(field)
    }

    /// Adds persons from the generator; people without a name are skipped (Pipedrive
    /// requires one). Returns the ids given.
    pub fn seed(&mut self, spec: &seed::SeedSpec, now: i64) -> Vec<u64> {
        let owners: Vec<u64> = self
            .users
            .iter()
            .filter(|u| u.active_flag)
            .map(|u| u.id)
            .collect();
        let owner_fallback = self.users.first().map_or(0, |u| u.id);
        let lookup = |name: &str| self.field_named(name).cloned();
        let (sync, score, source, status, industries) = (
            lookup("sync_to_plezi"),
            lookup("score"),
            lookup("source"),
            lookup("status"),
            lookup("industries"),
        );
        let mut ids = Vec::new();
        for p in seed::generate(spec) {
            let Some(name) = p.full_name() else { continue };
            let mut emails = Vec::new();
            if let Some(email) = &p.email {
                emails.push(Contact {
                    value: email.clone(),
                    primary: true,
                    label: "work".into(),
                });
            }
            if let Some(email) = &p.secondary_email {
                emails.push(Contact {
                    value: email.clone(),
                    primary: false,
                    label: "home".into(),
                });
            }
            let mut phones = Vec::new();
            if let Some(phone) = &p.phone {
                phones.push(Contact {
                    value: phone.clone(),
                    primary: true,
                    label: "work".into(),
                });
            }
            if let Some(mobile) = &p.mobile {
                phones.push(Contact {
                    value: mobile.clone(),
                    primary: phones.is_empty(),
                    label: "mobile".into(),
                });
            }
            let mut custom = BTreeMap::new();
            if let Some(f) = &sync
                && p.sync_flag
                && let Some(id) = f.option_id("yes")
            {
                custom.insert(f.key.clone(), json!(id));
            }
            if let Some(f) = &score {
                custom.insert(f.key.clone(), json!(p.score as f64));
            }
            if let Some(f) = &source
                && let Some(id) = f.option_id(&p.source)
            {
                custom.insert(f.key.clone(), json!(id));
            }
            if let Some(f) = &status
                && let Some(id) = f.option_id(if p.converted { "Client" } else { "Prospect" })
            {
                custom.insert(f.key.clone(), json!(id));
            }
            if let Some(f) = &industries
                && let Some(id) = f.option_id(&p.industry)
            {
                custom.insert(f.key.clone(), json!([id]));
            }
            let id = self.next_person_id;
            self.put(Person {
                id,
                name,
                first_name: p.first_name.clone(),
                last_name: p.last_name.clone(),
                owner_id: if owners.is_empty() {
                    owner_fallback
                } else {
                    owners[p.index % owners.len()]
                },
                org_id: None,
                add_time: now - p.created_secs_ago,
                update_time: now - p.modified_secs_ago,
                emails,
                phones,
                is_deleted: false,
                delete_time: None,
                visible_to: 3,
                label_ids: Vec::new(),
                marketing_status: if p.opted_out {
                    "unsubscribed"
                } else {
                    "subscribed"
                }
                .into(),
                details: Details::default(),
                custom_fields: custom,
            });
            ids.push(id);
        }
        ids
    }
}

/// A custom field to create (admin API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Display name (unique per company).
    pub name: String,
    /// Type.
    pub field_type: FieldType,
    /// Option labels of enum and set fields.
    #[serde(default)]
    pub options: Option<Vec<String>>,
    /// A fixed 40-hex key; drawn from the company's seed when absent.
    #[serde(default)]
    pub key: Option<String>,
}

/// The custom fields every company gets unless told otherwise.
pub fn default_field_specs() -> Vec<FieldSpec> {
    let spec = |name: &str, field_type, options: Option<&[&str]>| FieldSpec {
        name: name.into(),
        field_type,
        options: options.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
        key: None,
    };
    vec![
        spec("sync_to_plezi", FieldType::Enum, Some(&["yes", "no"])),
        spec("plezi_url", FieldType::Varchar, None),
        spec("source", FieldType::Enum, Some(seed::SOURCES)),
        spec("score", FieldType::Double, None),
        spec("status", FieldType::Enum, Some(seed::STATUSES)),
        spec("industries", FieldType::Set, Some(seed::INDUSTRIES)),
    ]
}

/// 40 lower-case hex digits.
pub fn hex_key(rng: &mut ChaCha8Rng) -> String {
    (0..20)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A random source for one company's keys and tokens, derived from the sandbox seed.
pub fn company_rng(seed: u64, company_id: u64, purpose: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ company_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ purpose.rotate_left(32),
    )
}

/// The standard person fields: (key, name, field_type).
pub const STANDARD_FIELDS: &[(&str, &str, &str)] = &[
    ("name", "Name", "varchar"),
    ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"),
    ("email", "Email", "varchar"),
    ("phone", "Phone", "phone"),
    ("owner_id", "Owner", "user"),
    ("org_id", "Organization", "org"),
    ("label", "Label", "enum"),
    ("add_time", "Person created", "date"),
    ("update_time", "Update time", "date"),
    ("visible_to", "Visible to", "visible_to"),
    ("marketing_status", "Marketing status", "enum"),
];

/// RFC 3339 UTC with second precision: `2026-11-21T10:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// v1's `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn v1_time(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Which optional parts of a v2 person to render.
#[derive(Debug, Default, Clone)]
pub struct Render<'a> {
    /// Only these custom field keys (`custom_fields=` on the list).
    pub only_custom: Option<&'a [String]>,
    /// `include_fields=` values to add, in the order asked.
    pub include: &'a [String],
    /// `include_option_labels=true`: enum and set values as `{id, label}` objects.
    pub option_labels: bool,
    /// `include_labels=true`: a `labels` array of `{id, label}` beside `label_ids`.
    pub labels: bool,
    /// The company's domain, for `smart_bcc_email`.
    pub company_domain: &'a str,
}

/// A person in API v2 form. Every custom field of the company appears, null when unset.
pub fn person_v2(p: &Person, fields: &[CustomField], render: &Render<'_>) -> Value {
    serde_json::to_value(PersonV2 { p, fields, render }).unwrap_or(Value::Null)
}

/// Serializes a person in API v2 form straight from the stored person (list pages
/// are written without building a `Value` per person).
pub struct PersonV2<'a> {
    /// The person.
    pub p: &'a Person,
    /// The company's custom fields.
    pub fields: &'a [CustomField],
    /// Optional parts.
    pub render: &'a Render<'a>,
}

/// An enum or set value with its options' labels: `{id, label}` for an enum, an array
/// of them for a set. Ids without an option (and other field types) stay as they are.
fn with_option_labels(field: Option<&CustomField>, value: &Value) -> Value {
    let Some(field) = field.filter(|f| f.field_type.has_options()) else {
        return value.clone();
    };
    let labelled = |id: &Value| match id.as_u64().and_then(|id| field.option(id)) {
        Some(option) => json!({ "id": option.id, "label": option.label }),
        None => id.clone(),
    };
    match value {
        Value::Array(ids) => Value::Array(ids.iter().map(labelled).collect()),
        Value::Null => Value::Null,
        id => labelled(id),
    }
}

struct CustomV2<'a>(&'a PersonV2<'a>);

impl Serialize for CustomV2<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let PersonV2 { p, fields, render } = self.0;
        let mut map = serializer.serialize_map(None)?;
        let mut entry = |key: &String, field: Option<&CustomField>| {
            let value = p.custom_fields.get(key).unwrap_or(&Value::Null);
            if render.option_labels {
                map.serialize_entry(key, &with_option_labels(field, value))
            } else {
                map.serialize_entry(key, value)
            }
        };
        match render.only_custom {
            Some(keys) => {
                for key in keys {
                    entry(key, fields.iter().find(|f| &f.key == key))?;
                }
            }
            None => {
                for f in fields.iter() {
                    entry(&f.key, Some(f))?;
                }
            }
        }
        map.end()
    }
}

/// The value of an `include_fields` entry: the stored marketing status, a smart BCC
/// address, and zero counts or nulls for what the sandbox does not emulate (deals,
/// activities, mail, double opt-in).
fn included(field: &str, p: &Person, render: &Render<'_>) -> Value {
    match field {
        "marketing_status" => json!(p.marketing_status),
        "smart_bcc_email" => json!(format!(
            "{}+{}@pipedrivemail.com",
            render.company_domain, p.id
        )),
        "doi_status" => Value::Null,
        f if f.ends_with("_time") || f.ends_with("_id") => Value::Null,
        _ => json!(0),
    }
}

impl Serialize for PersonV2<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.p;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &p.id)?;
        map.serialize_entry("name", &p.name)?;
        map.serialize_entry("first_name", &p.first_name)?;
        map.serialize_entry("last_name", &p.last_name)?;
        map.serialize_entry("owner_id", &p.owner_id)?;
        map.serialize_entry("org_id", &p.org_id)?;
        map.serialize_entry("add_time", &rfc3339(p.add_time))?;
        map.serialize_entry("update_time", &rfc3339(p.update_time))?;
        map.serialize_entry("emails", &p.emails)?;
        map.serialize_entry("phones", &p.phones)?;
        map.serialize_entry("is_deleted", &p.is_deleted)?;
        map.serialize_entry("visible_to", &p.visible_to)?;
        map.serialize_entry("label_ids", &p.label_ids)?;
        if self.render.labels {
            let labels: Vec<Value> = p
                .label_ids
                .iter()
                .filter_map(|id| PERSON_LABELS.iter().find(|(l, _)| l == id))
                .map(|(id, label)| json!({ "id": id, "label": label }))
                .collect();
            map.serialize_entry("labels", &labels)?;
        }
        // Pictures are not emulated: no person has one.
        map.serialize_entry("picture_id", &Value::Null)?;
        let d = &p.details;
        map.serialize_entry("postal_address", &d.postal_address)?;
        map.serialize_entry("notes", &d.notes)?;
        map.serialize_entry("im", &d.im)?;
        map.serialize_entry("birthday", &d.birthday)?;
        map.serialize_entry("job_title", &d.job_title)?;
        map.serialize_entry("custom_fields", &CustomV2(self))?;
        for field in self.render.include {
            map.serialize_entry(field, &included(field, p, self.render))?;
        }
        map.end()
    }
}

/// A person in API v1 form (recents): `email`/`phone` arrays, `owner_id` as an
/// object, custom fields at the top level (enum as the option id in a string, set as
/// comma-separated ids), `active_flag`.
pub fn person_v1(p: &Person, company_id: u64, data: &Data) -> Value {
    let owner = data.user(p.owner_id);
    let contacts = |list: &[Contact]| -> Value {
        if list.is_empty() {
            // v1 answers an empty list as one empty primary entry.
            json!([{ "value": "", "primary": true }])
        } else {
            json!(
                list.iter()
                    .map(|c| json!({ "label": c.label, "value": c.value, "primary": c.primary }))
                    .collect::<Vec<_>>()
            )
        }
    };
    let mut v = json!({
        "id": p.id,
        "company_id": company_id,
        "owner_id": owner.map(|u| json!({
            "id": u.id, "name": u.name, "email": u.email, "has_pic": 0, "pic_hash": null,
            "active_flag": u.active_flag, "value": u.id,
        })),
        "org_id": null,
        "name": p.name,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "email": contacts(&p.emails),
        "phone": contacts(&p.phones),
        "add_time": v1_time(p.add_time),
        "update_time": v1_time(p.update_time),
        "visible_to": p.visible_to.to_string(),
        "label_ids": p.label_ids,
        "label": p.label_ids.first(),
        "marketing_status": p.marketing_status,
        "active_flag": !p.is_deleted,
        "owner_name": owner.map(|u| u.name.clone()),
        "cc_email": format!("sandbox+{}@pipedrivemail.com", p.id),
    });
    if let Value::Object(map) = &mut v {
        for f in &data.fields {
            let value = match (p.custom_fields.get(&f.key), f.field_type) {
                (None | Some(Value::Null), _) => Value::Null,
                (Some(Value::Number(n)), FieldType::Enum) => json!(n.to_string()),
                (Some(Value::Array(ids)), FieldType::Set) => json!(
                    ids.iter()
                        .map(|id| id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                (Some(other), _) => other.clone(),
            };
            map.insert(f.key.clone(), value);
        }
    }
    v
}

/// A v1 user.
pub fn user_v1(u: &User, is_you: bool, created: i64) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "default_currency": "EUR",
        "locale": "en_US",
        "lang": 1,
        "email": u.email,
        "phone": null,
        "activated": u.active_flag,
        "last_login": v1_time(created),
        "created": v1_time(created),
        "modified": null,
        "has_created_company": u.is_admin,
        "access": [{ "app": "sales", "admin": u.is_admin, "permission_set_id": "sandbox-regular" }],
        "active_flag": u.active_flag,
        "timezone_name": "Europe/Paris",
        "timezone_offset": "+01:00",
        "role_id": 1,
        "icon_url": null,
        "is_you": is_you,
        "is_admin": i32::from(u.is_admin),
    })
}
