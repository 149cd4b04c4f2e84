//! One Zoho org: its users, field lists, records with their ordered indexes, limits
//! and usage.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, FixedOffset};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::fields::FieldDef;
use crate::seed::Person;

/// A module the sandbox stores. Only Leads and Contacts are exposed by the API;
/// Accounts exist as lead-conversion targets, visible through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Module {
    Leads,
    Contacts,
    Accounts,
}

impl Module {
    /// The module a URL names (case-insensitive, as Zoho accepts); None when not emulated.
    pub(crate) fn from_api(name: &str) -> Option<Module> {
        if name.eq_ignore_ascii_case("Leads") {
            Some(Module::Leads)
        } else if name.eq_ignore_ascii_case("Contacts") {
            Some(Module::Contacts)
        } else {
            None
        }
    }

    /// For the admin API, which also shows Accounts.
    pub(crate) fn from_admin(name: &str) -> Option<Module> {
        Self::from_api(name).or_else(|| {
            name.eq_ignore_ascii_case("Accounts")
                .then_some(Module::Accounts)
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Module::Leads => "Leads",
            Module::Contacts => "Contacts",
            Module::Accounts => "Accounts",
        }
    }

    pub(crate) fn scope_name(self) -> &'static str {
        match self {
            Module::Leads => "leads",
            Module::Contacts => "contacts",
            Module::Accounts => "accounts",
        }
    }
}

/// Settings an org can change through the admin API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Time zone offset record times are shown in, e.g. `+01:00`.
    pub time_zone: String,
    /// Concurrent API calls in flight per org.
    pub concurrency: usize,
    /// Concurrent heavy calls (writes of more than 10 records, lead conversion).
    pub heavy_concurrency: usize,
    /// API credits per rolling 24 hours.
    pub daily_credits: u64,
    /// How long a grant code stays valid.
    pub grant_code_ttl_secs: u64,
    /// How long an access token stays valid.
    pub access_token_ttl_secs: u64,
    /// Access tokens per refresh token per rolling 10 minutes.
    pub token_throttle: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time_zone: "+00:00".into(),
            concurrency: 10,
            heavy_concurrency: 10,
            daily_credits: 5_000_000,
            grant_code_ttl_secs: 180,
            access_token_ttl_secs: 3600,
            token_throttle: 10,
        }
    }
}

/// Credits spent (by time, ms) and token-endpoint calls.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub credits: VecDeque<(i64, u64)>,
    pub token_calls: u64,
}

impl Usage {
    /// Credits spent in the 24 hours before `now_ms` (older entries are dropped).
    pub(crate) fn used(&mut self, now_ms: i64) -> u64 {
        let horizon = now_ms - 86_400_000;
        while self.credits.front().is_some_and(|(at, _)| *at <= horizon) {
            self.credits.pop_front();
        }
        self.credits.iter().map(|(_, c)| c).sum()
    }
}

#[derive(Debug)]
pub(crate) struct Org {
    pub id: String,
    pub name: String,
    pub limits: Mutex<Limits>,
    pub usage: Mutex<Usage>,
    pub data: Mutex<OrgData>,
    pub in_flight: AtomicUsize,
    pub heavy_in_flight: AtomicUsize,
    /// While true, API calls wait (counted in flight) until it turns false: lets tests
    /// hold requests in flight deterministically.
    pub gate: tokio::sync::watch::Sender<bool>,
    /// OAuth client ids registered for this org, oldest first.
    pub clients: Mutex<Vec<String>>,
    /// When the org was created (Unix seconds, sandbox clock).
    pub created: i64,
    /// Notification channels (`actions/watch`), expired ones included until
    /// the next write drops them.
    pub channels: Mutex<Vec<super::watch::Channel>>,
}

impl Org {
    pub(crate) fn new(
        id: String,
        name: String,
        limits: Limits,
        data: OrgData,
        created: i64,
    ) -> Self {
        Self {
            id,
            name,
            created,
            limits: Mutex::new(limits),
            usage: Mutex::new(Usage::default()),
            data: Mutex::new(data),
            in_flight: AtomicUsize::new(0),
            heavy_in_flight: AtomicUsize::new(0),
            gate: tokio::sync::watch::Sender::new(false),
            clients: Mutex::new(Vec::new()),
            channels: Mutex::new(Vec::new()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    #[serde(with = "id_string")]
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// `active` or `disabled`.
    pub status: String,
    pub role: String,
    pub profile: String,
}

impl User {
    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }

    pub(crate) fn reference(&self) -> Value {
        json!({ "name": self.full_name(), "id": self.id.to_string(), "email": self.email })
    }

    pub(crate) fn api_json(&self, index: usize) -> Value {
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "full_name": self.full_name(),
            "first_name": self.first_name,
            "last_name": self.last_name,
            "status": self.status,
            "role": { "name": self.role, "id": (self.id + 101).to_string() },
            "profile": { "name": self.profile, "id": (self.id + 202).to_string() },
            "confirm": true,
            "sort_order_preference__s": index,
        })
    }
}

mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| serde::de::Error::custom("id: not a u64")),
            _ => Err(serde::de::Error::custom("id: expected a string of digits")),
        }
    }
}

/// A stored record. `values` holds the writable fields; system fields live in the struct.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: u64,
    pub values: Map<String, Value>,
    /// Unix seconds.
    pub created: i64,
    pub modified: i64,
    pub owner: u64,
    pub created_by: u64,
    pub modified_by: u64,
    pub converted: bool,
    /// How many writes of this record ran workflow rules.
    pub workflow_runs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Deleted {
    pub id: u64,
    pub display_name: String,
    pub deleted_time: i64,
    pub deleted_by: u64,
    /// Who created the record, shown as `created_by` like `deleted_by`.
    pub created_by: u64,
}

/// One module's records with the indexes pagination and matching need.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub records: BTreeMap<u64, Record>,
    pub by_created: BTreeSet<(i64, u64)>,
    pub by_modified: BTreeSet<(i64, u64)>,
    /// Normalised (trimmed, lower-case) `Email` -> (Created_Time, id).
    pub by_email: HashMap<String, BTreeSet<(i64, u64)>>,
    pub deleted: Vec<Deleted>,
    /// Records changed since the notifier last looked (`insert`, `update`,
    /// `delete`), for the Notification API.
    pub changes: Vec<(u64, &'static str)>,
}

pub(crate) fn norm_email(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Store {
    pub(crate) fn insert(&mut self, record: Record) {
        self.changes.push((record.id, "insert"));
        self.index(&record);
        self.records.insert(record.id, record);
    }

    fn index(&mut self, r: &Record) {
        self.by_created.insert((r.created, r.id));
        self.by_modified.insert((r.modified, r.id));
        if let Some(email) = r
            .values
            .get("Email")
            .and_then(Value::as_str)
            .map(norm_email)
            && !email.is_empty()
        {
            self.by_email
                .entry(email)
                .or_default()
                .insert((r.created, r.id));
        }
    }

    fn unindex(&mut self, r: &Record) {
        self.by_created.remove(&(r.created, r.id));
        self.by_modified.remove(&(r.modified, r.id));
        if let Some(email) = r
            .values
            .get("Email")
            .and_then(Value::as_str)
            .map(norm_email)
            && let Some(set) = self.by_email.get_mut(&email)
        {
            set.remove(&(r.created, r.id));
            if set.is_empty() {
                self.by_email.remove(&email);
            }
        }
    }

    /// Changes a record, keeping the indexes right.
    pub(crate) fn modify<T>(&mut self, id: u64, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let mut record = self.records.remove(&id)?;
        self.changes.push((id, "update"));
        self.unindex(&record);
        let out = f(&mut record);
        self.index(&record);
        self.records.insert(id, record);
        Some(out)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Record> {
        let record = self.records.remove(&id)?;
        self.changes.push((id, "delete"));
        self.unindex(&record);
        Some(record)
    }

    /// Ids of records whose `Email` matches (trimmed, case-insensitive), earliest created first.
    pub(crate) fn with_email(&self, email: &str) -> Vec<u64> {
        self.by_email
            .get(&norm_email(email))
            .map(|set| set.iter().map(|(_, id)| *id).collect())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct OrgData {
    pub users: Vec<User>,
    pub lead_fields: Vec<FieldDef>,
    pub contact_fields: Vec<FieldDef>,
    pub account_fields: Vec<FieldDef>,
    pub leads: Store,
    pub contacts: Store,
    pub accounts: Store,
    pub workflow_runs: u64,
    pub tz: FixedOffset,
    /// The org's own 19-digit id, as `GET /org` shows it (the sandbox's org id is its zgid).
    pub record_id: u64,
    next_id: u64,
}

impl OrgData {
    pub(crate) fn new(
        id_base: u64,
        users: Vec<User>,
        lead_fields: Vec<FieldDef>,
        contact_fields: Vec<FieldDef>,
        tz: FixedOffset,
    ) -> Self {
        Self {
            users,
            lead_fields,
            contact_fields,
            account_fields: super::fields::account_fields(id_base + 900),
            leads: Store::default(),
            contacts: Store::default(),
            accounts: Store::default(),
            workflow_runs: 0,
            tz,
            record_id: id_base + 5,
            next_id: id_base + 10_000,
        }
    }

    /// A fresh 19-digit record id.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn store(&self, m: Module) -> &Store {
        match m {
            Module::Leads => &self.leads,
            Module::Contacts => &self.contacts,
            Module::Accounts => &self.accounts,
        }
    }

    pub(crate) fn store_mut(&mut self, m: Module) -> &mut Store {
        match m {
            Module::Leads => &mut self.leads,
            Module::Contacts => &mut self.contacts,
            Module::Accounts => &mut self.accounts,
        }
    }

    /// Moves a record to the module's recycle bin, deleted now by `user`;
    /// false when the module has no such record.
    pub(crate) fn recycle(&mut self, m: Module, id: u64, now: i64, user: u64) -> bool {
        let Some(r) = self.store_mut(m).remove(id) else {
            return false;
        };
        let display_name = self
            .field_value(m, &r, "Full_Name")
            .as_str()
            .unwrap_or("")
            .to_owned();
        self.store_mut(m).deleted.push(Deleted {
            id,
            display_name,
            deleted_time: now,
            deleted_by: user,
            created_by: r.created_by,
        });
        true
    }

    pub(crate) fn fields(&self, m: Module) -> &[FieldDef] {
        match m {
            Module::Leads => &self.lead_fields,
            Module::Contacts => &self.contact_fields,
            Module::Accounts => &self.account_fields,
        }
    }

    pub(crate) fn field(&self, m: Module, api_name: &str) -> Option<&FieldDef> {
        self.fields(m).iter().find(|f| f.api_name == api_name)
    }

    pub(crate) fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The first active user: the one grant codes authorise by default.
    pub(crate) fn admin_user_id(&self) -> u64 {
        self.users
            .iter()
            .find(|u| u.status == "active")
            .or(self.users.first())
            .map_or(0, |u| u.id)
    }

    fn user_ref(&self, id: u64) -> Value {
        self.user(id).map_or(Value::Null, User::reference)
    }

    pub(crate) fn time(&self, secs: i64) -> String {
        format_time(secs, self.tz)
    }

    /// The value of one field of a record as the API shows it.
    pub(crate) fn field_value(&self, m: Module, r: &Record, api_name: &str) -> Value {
        match api_name {
            "id" => Value::String(r.id.to_string()),
            "Owner" => self.user_ref(r.owner),
            "Created_By" => self.user_ref(r.created_by),
            "Modified_By" => self.user_ref(r.modified_by),
            "Created_Time" => Value::String(self.time(r.created)),
            "Modified_Time" => Value::String(self.time(r.modified)),
            "Converted__s" => Value::Bool(r.converted),
            "Email_Opt_Out" => r
                .values
                .get(api_name)
                .cloned()
                .unwrap_or(Value::Bool(false)),
            "Full_Name" if m != Module::Accounts => {
                let part = |k: &str| {
                    r.values
                        .get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                match (part("First_Name"), part("Last_Name")) {
                    (Some(f), Some(l)) => Value::String(format!("{f} {l}")),
                    (Some(x), None) | (None, Some(x)) => Value::String(x.to_owned()),
                    (None, None) => Value::Null,
                }
            }
            _ => r.values.get(api_name).cloned().unwrap_or(Value::Null),
        }
    }

    /// A record as the API shows it: the named fields (all when None), `id`, and on
    /// Leads the `$converted` flag.
    pub(crate) fn record_json(&self, m: Module, r: &Record, only: Option<&[String]>) -> Value {
        let mut out = Map::new();
        match only {
            Some(names) => {
                for name in names {
                    out.insert(name.clone(), self.field_value(m, r, name));
                }
            }
            None => {
                for f in self.fields(m) {
                    out.insert(f.api_name.clone(), self.field_value(m, r, &f.api_name));
                }
            }
        }
        out.insert("id".into(), Value::String(r.id.to_string()));
        if m == Module::Leads {
            out.insert("$converted".into(), Value::Bool(r.converted));
        }
        Value::Object(out)
    }

    /// What the admin API shows: the record as stored, with metadata.
    pub(crate) fn admin_json(&self, m: Module, r: &Record) -> Value {
        let mut v = self.record_json(m, r, None);
        if let Some(o) = v.as_object_mut() {
            o.insert("$workflow_runs".into(), json!(r.workflow_runs));
            o.insert("$converted".into(), Value::Bool(r.converted));
        }
        v
    }

    /// A recycle-bin row with the keys Zoho documents: `display_name`, `type`,
    /// `deleted_by`, `id`, `deleted_time` and `created_by` (users as `{"name","id"}`).
    pub(crate) fn deleted_json(&self, d: &Deleted) -> Value {
        let minified = |id: u64| {
            self.user(id).map_or(
                Value::Null,
                |u| json!({ "name": u.full_name(), "id": u.id.to_string() }),
            )
        };
        json!({
            "display_name": d.display_name,
            "type": "recycle",
            "deleted_by": minified(d.deleted_by),
            "id": d.id.to_string(),
            "deleted_time": self.time(d.deleted_time),
            "created_by": minified(d.created_by),
        })
    }

    /// Creates a record with the given values and times; returns its id.
    pub(crate) fn create(
        &mut self,
        m: Module,
        values: Map<String, Value>,
        owner: u64,
        by: u64,
        created: i64,
        modified: i64,
    ) -> u64 {
        let id = self.next_id();
        self.store_mut(m).insert(Record {
            id,
            values,
            created,
            modified,
            owner,
            created_by: by,
            modified_by: by,
            converted: false,
            workflow_runs: 0,
        });
        id
    }

    /// Converts a lead: a Contact from the lead's values, an Account when the lead has a
    /// Company (or `account` when given). Returns (contact id, account id).
    pub(crate) fn convert_lead(
        &mut self,
        lead_id: u64,
        by: u64,
        now: i64,
        account: Option<u64>,
    ) -> Option<(u64, Option<u64>)> {
        let lead = self.leads.records.get(&lead_id)?.clone();
        let account_id = match account {
            Some(id) => Some(id),
            None => match lead
                .values
                .get("Company")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|c| !c.is_empty())
            {
                Some(company) => {
                    let mut values = Map::new();
                    values.insert("Account_Name".into(), Value::String(company.to_owned()));
                    Some(self.create(Module::Accounts, values, lead.owner, by, now, now))
                }
                None => None,
            },
        };
        let mut values = Map::new();
        for f in &self.contact_fields {
            if f.read_only || matches!(f.data_type.as_str(), "lookup" | "ownerlookup") {
                continue;
            }
            if let Some(v) = lead.values.get(&f.api_name).filter(|v| !v.is_null()) {
                values.insert(f.api_name.clone(), v.clone());
            }
        }
        if let Some(title) = lead.values.get("Designation").filter(|v| !v.is_null()) {
            values.insert("Title".into(), title.clone());
        }
        if let Some(aid) = account_id {
            let name = self
                .accounts
                .records
                .get(&aid)
                .and_then(|a| a.values.get("Account_Name").cloned())
                .unwrap_or(Value::Null);
            values.insert(
                "Account_Name".into(),
                json!({ "name": name, "id": aid.to_string() }),
            );
        }
        let contact_id = self.create(Module::Contacts, values, lead.owner, by, now, now);
        self.leads.modify(lead_id, |r| {
            r.converted = true;
            r.modified = now;
            r.modified_by = by;
        });
        Some((contact_id, account_id))
    }

    /// Seeds generated people: Leads (converted people become converted leads with their
    /// Contact and Account), and every seventh other person straight as a Contact.
    pub(crate) fn seed(&mut self, people: &[Person], now: i64) -> SeedCount {
        let owners: Vec<u64> = self
            .users
            .iter()
            .filter(|u| u.status == "active")
            .map(|u| u.id)
            .collect();
        let mut count = SeedCount::default();
        for p in people {
            let owner = owners
                .get(p.index % owners.len().max(1))
                .copied()
                .unwrap_or(0);
            let created = now - p.created_secs_ago;
            let modified = now - p.modified_secs_ago;
            let as_contact = !p.converted && p.index % 7 == 6;
            let mut v = Map::new();
            let mut put = |k: &str, val: Option<Value>| {
                if let Some(val) = val {
                    v.insert(k.to_owned(), val);
                }
            };
            let s = |x: &Option<String>| x.clone().map(Value::String);
            put("First_Name", s(&p.first_name));
            put("Last_Name", s(&p.last_name));
            put("Email", s(&p.email));
            put("Secondary_Email", s(&p.secondary_email));
            put("Phone", s(&p.phone));
            put("Mobile", s(&p.mobile));
            put("City", Some(Value::String(p.city.clone())));
            put("Country", Some(Value::String(p.country.clone())));
            put("Lead_Source", Some(Value::String(p.lead_source.clone())));
            put("Email_Opt_Out", Some(Value::Bool(p.opted_out)));
            put("source", Some(Value::String(p.source.clone())));
            put("score", Some(json!(p.score)));
            let flag = if p.sync_flag {
                Some(Value::String("yes".into()))
            } else if p.index % 2 == 0 {
                Some(Value::String("no".into()))
            } else {
                None
            };
            put("sync_to_plezi", flag);
            if as_contact {
                put("Title", s(&p.job_title));
                put("status", Some(Value::String("Prospect".into())));
                self.create(Module::Contacts, v, owner, owner, created, modified);
                count.contacts += 1;
                continue;
            }
            put("Company", s(&p.company));
            put("Designation", s(&p.job_title));
            put("Industry", Some(Value::String(p.industry.clone())));
            put("Lead_Status", Some(Value::String(p.lead_status.clone())));
            put(
                "status",
                Some(Value::String(
                    if p.converted { "Client" } else { "Prospect" }.into(),
                )),
            );
            let id = self.create(Module::Leads, v, owner, owner, created, modified);
            count.leads += 1;
            if p.converted {
                self.convert_lead(id, owner, modified, None);
                count.converted += 1;
                count.contacts += 1;
            }
        }
        count
    }
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct SeedCount {
    pub leads: usize,
    pub contacts: usize,
    pub converted: usize,
}

pub(crate) fn format_time(secs: i64, tz: FixedOffset) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Parses `+01:00` / `-05:30` / `Z`.
pub(crate) fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}
