//! A CRM held in memory, for engine tests where HTTP adds nothing. It keeps
//! records per module, fields with their picklists, and users; it lists by
//! modification time then id, as every client does; it stamps writes with a
//! clock the test moves, so conflicts between the two sides are exact; and it
//! fails the calls a test scripts, counting every call it answers.
//!
//! Retryable failures are retried inside with the clients' shared
//! [`RetryPolicy`], so a scripted 5xx exercises the same loop a real client
//! runs (with short delays by default).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use serde_json::Value;

use super::{
    ConnectionCheck, Conversion, CrmClient, CrmError, CrmField, CrmRecord, CrmUser, DeletedRecord,
    Expectations, FieldType, FieldsHelp, ListQuery, RecordPage, RecordWrite, RetryPolicy,
    WriteResult,
};

/// The calls a [`MemoryCrm`] answers, for scripted failures and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`CrmClient::check`].
    Check,
    /// [`CrmClient::fields`].
    Fields,
    /// [`CrmClient::users`].
    Users,
    /// [`CrmClient::list`].
    List,
    /// [`CrmClient::get_many`].
    GetMany,
    /// [`CrmClient::write`]: one call per batch, whatever its size.
    Write,
    /// [`CrmClient::convert_lead`].
    ConvertLead,
    /// [`CrmClient::deleted`].
    Deleted,
}

/// Calls of one operation that fail: after `skip` calls that succeed, the
/// next `times` calls fail with `error`.
#[derive(Debug, Clone)]
struct Script {
    skip: u32,
    times: u32,
    error: CrmError,
}

#[derive(Debug, Default)]
struct State {
    clock: DateTime<Utc>,
    next_id: u64,
    records: HashMap<CrmModule, BTreeMap<String, CrmRecord>>,
    fields: HashMap<CrmModule, Vec<CrmField>>,
    users: Vec<CrmUser>,
    /// Records deleted by a person, with the time, in order (a feed).
    deleted: Vec<(CrmModule, DeletedRecord)>,
    scripts: HashMap<Operation, Vec<Script>>,
    /// Writes of these records (by id or e-mail) are refused with the error.
    refusals: HashMap<String, CrmError>,
    calls: HashMap<Operation, u32>,
}

/// An in-memory CRM account (see the module docs).
#[derive(Debug)]
pub struct MemoryCrm {
    kind: ConnectorKind,
    max_page_size: u32,
    converts_leads: bool,
    policy: RetryPolicy,
    state: Mutex<State>,
    before_get_many: Mutex<Option<GetManyHook>>,
}

/// What a test runs before a [`CrmClient::get_many`] call is answered (the
/// world changing while a run reads).
#[derive(Clone)]
struct GetManyHook(std::sync::Arc<HookFn>);

type HookFn = dyn Fn(&[String]) + Send + Sync;

impl std::fmt::Debug for GetManyHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GetManyHook")
    }
}

impl MemoryCrm {
    /// An empty account posing as a CRM of `kind`, its clock at the current
    /// second, pages of at most 500 records, and no lead conversion.
    pub fn new(kind: ConnectorKind) -> Self {
        let clock = Utc::now().trunc_subsecs(0);
        Self {
            kind,
            max_page_size: 500,
            converts_leads: false,
            policy: RetryPolicy {
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            },
            state: Mutex::new(State {
                clock,
                ..State::default()
            }),
            before_get_many: Mutex::new(None),
        }
    }

    /// The largest page `list` returns, whatever the query asks.
    pub fn with_max_page_size(mut self, size: u32) -> Self {
        self.max_page_size = size.max(1);
        self
    }

    /// Converts leads (module Leads) into contacts (module Contacts).
    pub fn with_lead_conversion(mut self) -> Self {
        self.converts_leads = true;
        self
    }

    /// The fields of `module`, replacing any it had.
    pub fn with_fields(self, module: CrmModule, fields: Vec<CrmField>) -> Self {
        self.state().fields.insert(module, fields);
        self
    }

    /// The account's users.
    pub fn with_users(self, users: Vec<CrmUser>) -> Self {
        self.state().users = users;
        self
    }

    /// Runs `hook` with the ids asked before each `get_many` is answered.
    pub fn before_get_many(&self, hook: impl Fn(&[String]) + Send + Sync + 'static) {
        *self.before_get_many.lock().expect("hook lock") =
            Some(GetManyHook(std::sync::Arc::new(hook)));
    }

    /// The CRM's clock: the modification time its next change gets.
    pub fn now(&self) -> DateTime<Utc> {
        self.state().clock
    }

    /// Sets the clock (it may go back: the test decides).
    pub fn set_clock(&self, at: DateTime<Utc>) {
        self.state().clock = at;
    }

    /// Moves the clock on.
    pub fn advance(&self, by: chrono::Duration) {
        self.state().clock += by;
    }

    /// A record made or changed in the CRM by a person: `id: None` creates.
    /// Stamped with the clock like any write, but never refused: a person may
    /// store what the API would not.
    pub fn put(
        &self,
        module: CrmModule,
        id: Option<&str>,
        values: BTreeMap<String, Value>,
    ) -> CrmRecord {
        let mut state = self.state();
        let id = id.map_or_else(|| state.new_id(), str::to_owned);
        state.apply(module, &id, values, None).clone()
    }

    /// A record deleted in the CRM by a person: gone from every read, and in
    /// the deleted-records feed with the clock's time.
    pub fn delete(&self, module: CrmModule, id: &str) -> bool {
        let mut state = self.state();
        let at = state.tick();
        let removed = state
            .records
            .get_mut(&module)
            .and_then(|r| r.remove(id))
            .is_some();
        if removed {
            let record = DeletedRecord {
                id: id.to_owned(),
                deleted_at: Some(at),
            };
            state.deleted.push((module, record));
        }
        removed
    }

    /// A record gone without a trace in the feed, as one deleted longer ago
    /// than the CRM keeps deletions: only a FULL run's reconciliation finds it.
    pub fn purge(&self, module: CrmModule, id: &str) -> bool {
        self.state()
            .records
            .get_mut(&module)
            .and_then(|r| r.remove(id))
            .is_some()
    }

    /// One record as stored.
    pub fn record(&self, module: CrmModule, id: &str) -> Option<CrmRecord> {
        self.state().records.get(&module)?.get(id).cloned()
    }

    /// Every record of `module`, by modification time then id.
    pub fn records(&self, module: CrmModule) -> Vec<CrmRecord> {
        self.state().sorted(module)
    }

    /// After `skip` successful calls of `operation`, the next `times` fail
    /// with `error` (retryable errors are retried inside, each try a call).
    pub fn fail(&self, operation: Operation, skip: u32, times: u32, error: CrmError) {
        if times == 0 {
            return;
        }
        let script = Script { skip, times, error };
        self.state()
            .scripts
            .entry(operation)
            .or_default()
            .push(script);
    }

    /// Calls of `operation` succeed again: its scripted failures are dropped.
    pub fn recover(&self, operation: Operation) {
        self.state().scripts.remove(&operation);
    }

    /// Every write of the record with this id or e-mail is refused with `error`
    /// (the other writes of its batch go through).
    pub fn refuse_writes_of(&self, id_or_email: &str, error: CrmError) {
        let key = id_or_email.to_lowercase();
        self.state().refusals.insert(key, error);
    }

    /// How many calls of `operation` were answered, failed ones included.
    pub fn calls(&self, operation: Operation) -> u32 {
        self.state().calls.get(&operation).copied().unwrap_or(0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the call, then fails it if a script says so.
    fn answer(&self, operation: Operation) -> Result<MutexGuard<'_, State>, CrmError> {
        let mut state = self.state();
        *state.calls.entry(operation).or_default() += 1;
        let scripts = state.scripts.entry(operation).or_default();
        if let Some(script) = scripts.first_mut() {
            if script.skip > 0 {
                script.skip -= 1;
            } else {
                let error = script.error.clone();
                script.times -= 1;
                if script.times == 0 {
                    scripts.remove(0);
                }
                return Err(error);
            }
        }
        Ok(state)
    }

    /// Runs `call` under the shared retry loop, each try answered afresh.
    async fn retried<T>(
        &self,
        operation: Operation,
        call: impl Fn(&mut State) -> Result<T, CrmError>,
    ) -> Result<T, CrmError> {
        let path = format!("{operation:?}");
        let send = || {
            let outcome = self.answer(operation).and_then(|mut s| call(&mut s));
            std::future::ready(outcome)
        };
        self.policy
            .run("memory", &path, send, tokio::time::sleep)
            .await
    }
}

impl State {
    /// The clock's time for a change, then one millisecond on: no two changes
    /// share a time.
    fn tick(&mut self) -> DateTime<Utc> {
        let at = self.clock;
        self.clock += chrono::Duration::milliseconds(1);
        at
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn sorted(&self, module: CrmModule) -> Vec<CrmRecord> {
        let mut records: Vec<CrmRecord> = self
            .records
            .get(&module)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        records.sort_by(|a, b| (a.modified_at, &a.id).cmp(&(b.modified_at, &b.id)));
        records
    }

    fn field(&self, module: CrmModule, api_name: &str) -> Option<&CrmField> {
        self.fields
            .get(&module)?
            .iter()
            .find(|f| f.api_name == api_name)
    }

    fn write_one(
        &mut self,
        module: CrmModule,
        write: RecordWrite,
    ) -> Result<WriteResult, CrmError> {
        for key in write.id.iter().chain([&write.email]) {
            if let Some(error) = self.refusals.get(&key.to_lowercase()) {
                return Err(error.clone());
            }
        }
        for (name, value) in &write.values {
            self.check_value(module, name, value)?;
        }
        let created = write.id.is_none();
        let id = match write.id {
            Some(id) => id,
            None => self.new_id(),
        };
        let existing = self.records.get(&module).and_then(|r| r.get(&id));
        match existing {
            Some(record) if record.converted => return Err(converted(&id)),
            None if !created => {
                return Err(CrmError::Rejected {
                    code: "NOT_FOUND_IN_CRM".into(),
                    field: None,
                    message: format!("no record {id} in {module}"),
                });
            }
            _ => {}
        }
        let record = self.apply(module, &id, write.values, write.owner_email);
        if created && record.email.is_none() {
            record.email = Some(write.email);
        }
        Ok(WriteResult {
            id,
            modified_at: record.modified_at,
            created,
        })
    }

    /// Stores a change stamped with the clock; `Null` clears a value. The
    /// e-mail and owner follow the module's e-mail and user fields.
    fn apply(
        &mut self,
        module: CrmModule,
        id: &str,
        values: BTreeMap<String, Value>,
        owner_email: Option<String>,
    ) -> &mut CrmRecord {
        // The value given for the field of this type: `Some(None)` clears it.
        let given = |field_type| {
            let value = values.get(&self.field_of_type(module, field_type)?)?;
            Some(value.as_str().map(str::to_owned))
        };
        let email = given(FieldType::Email);
        let owner = owner_email.map(Some).or_else(|| given(FieldType::User));
        let at = self.tick();
        let records = self.records.entry(module).or_default();
        let record = records
            .entry(id.to_owned())
            .or_insert_with(|| blank(id.to_owned(), module, at));
        record.modified_at = at;
        if let Some(email) = email {
            record.email = email;
        }
        if let Some(owner) = owner {
            record.owner_email = owner;
        }
        for (name, value) in values {
            if value.is_null() {
                record.values.remove(&name);
            } else {
                record.values.insert(name, value);
            }
        }
        record
    }

    /// Unknown fields and values outside a picklist are refused, as the CRMs do.
    fn check_value(&self, module: CrmModule, name: &str, value: &Value) -> Result<(), CrmError> {
        if !self.fields.contains_key(&module) {
            return Ok(());
        }
        let Some(field) = self.field(module, name) else {
            return Err(CrmError::Rejected {
                code: "UNKNOWN_FIELD".into(),
                field: Some(name.to_owned()),
                message: format!("{module} has no field \"{name}\""),
            });
        };
        let labels: Vec<&str> = field
            .options
            .iter()
            .flatten()
            .map(|o| o.label.as_str())
            .collect();
        let wanted: Vec<&str> = match value {
            Value::String(s) if field.field_type == FieldType::Picklist => vec![s.as_str()],
            Value::Array(items) if field.field_type == FieldType::MultiPicklist => {
                items.iter().filter_map(Value::as_str).collect()
            }
            _ => Vec::new(),
        };
        match wanted.iter().find(|w| !labels.contains(w)) {
            Some(bad) => Err(CrmError::Rejected {
                code: "INVALID_PICKLIST_VALUE".into(),
                field: Some(name.to_owned()),
                message: format!(
                    "\"{bad}\" is not an option of {}; allowed values: {}",
                    field.label,
                    labels.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }

    fn field_of_type(&self, module: CrmModule, field_type: FieldType) -> Option<String> {
        let fields = self.fields.get(&module)?;
        let field = fields.iter().find(|f| f.field_type == field_type)?;
        Some(field.api_name.clone())
    }
}

fn blank(id: String, module: CrmModule, at: DateTime<Utc>) -> CrmRecord {
    CrmRecord {
        id,
        module,
        modified_at: at,
        email: None,
        values: BTreeMap::new(),
        owner_email: None,
        converted: false,
    }
}

fn converted(id: &str) -> CrmError {
    CrmError::Rejected {
        code: "CONVERTED_LEAD".into(),
        field: None,
        message: format!("lead {id} was converted: it belongs to sales now"),
    }
}

/// A cursor is the last listed record's position: its time and id.
fn cursor_of(record: &CrmRecord) -> String {
    format!("{}|{}", record.modified_at.to_rfc3339(), record.id)
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, String), CrmError> {
    let bad = || CrmError::Protocol(format!("not a cursor of this CRM: {cursor}"));
    let (at, id) = cursor.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), id.to_owned()))
}

#[async_trait::async_trait]
impl CrmClient for MemoryCrm {
    fn kind(&self) -> ConnectorKind {
        self.kind
    }

    /// Refused credentials are a scripted `Unauthorized`; field problems are
    /// looked for in every module the expectations import.
    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError> {
        let problem = self
            .retried(Operation::Check, |state| {
                let help = FieldsHelp {
                    records: "records",
                    settings: "the in-memory CRM",
                };
                let mut modules: Vec<_> = state.fields.keys().copied().collect();
                if !expect.modules.is_empty() {
                    modules.retain(|m| expect.modules.contains(m));
                }
                Ok(modules.into_iter().find_map(|m| {
                    let fields = &state.fields[&m];
                    expect
                        .filter_problem(fields, help)
                        .or_else(|| expect.link_problem(fields, help))
                }))
            })
            .await?;
        Ok(ConnectionCheck {
            ok: problem.is_none(),
            message: match problem {
                Some(problem) => format!("connected to the in-memory CRM, but {problem}"),
                None => "connected to the in-memory CRM".into(),
            },
        })
    }

    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError> {
        self.retried(Operation::Fields, |state| {
            state.fields.get(&module).cloned().ok_or_else(|| {
                CrmError::Protocol(format!("the in-memory CRM has no module {module}"))
            })
        })
        .await
    }

    async fn users(&self) -> Result<Vec<CrmUser>, CrmError> {
        self.retried(Operation::Users, |state| Ok(state.users.clone()))
            .await
    }

    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError> {
        let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let size = query.page_size.clamp(1, self.max_page_size) as usize;
        self.retried(Operation::List, |state| {
            let mut records: Vec<CrmRecord> = state
                .sorted(query.module)
                .into_iter()
                .filter(|r| query.since.is_none_or(|since| r.modified_at >= since))
                .filter(|r| {
                    after
                        .as_ref()
                        .is_none_or(|(at, id)| (r.modified_at, &r.id) > (*at, id))
                })
                .collect();
            let more = records.len() > size;
            records.truncate(size);
            let next_cursor = more.then(|| records.last().map(cursor_of)).flatten();
            Ok(RecordPage {
                records,
                next_cursor,
            })
        })
        .await
    }

    async fn get_many(
        &self,
        module: CrmModule,
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        let hook = self.before_get_many.lock().expect("hook lock").clone();
        if let Some(hook) = hook {
            (hook.0)(ids);
        }
        self.retried(Operation::GetMany, |state| {
            let stored = state.records.get(&module);
            Ok(ids
                .iter()
                .filter_map(|id| stored.and_then(|r| r.get(id)).cloned())
                .collect())
        })
        .await
    }

    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>> {
        let count = writes.len();
        let outcome = self
            .retried(Operation::Write, |state| {
                Ok(writes
                    .iter()
                    .map(|w| state.write_one(module, w.clone()))
                    .collect::<Vec<_>>())
            })
            .await;
        outcome.unwrap_or_else(|e| vec![Err(e); count])
    }

    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        self.retried(Operation::Deleted, |state| {
            Ok(state
                .deleted
                .iter()
                .filter(|(m, d)| *m == module && since.is_none_or(|s| d.deleted_at >= Some(s)))
                .map(|(_, d)| d.clone())
                .collect())
        })
        .await
    }

    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        if !self.converts_leads {
            return Err(CrmError::Protocol(format!(
                "{} has no lead conversion (lead {lead_id})",
                self.kind
            )));
        }
        self.retried(Operation::ConvertLead, |state| {
            let at = state.tick();
            let contact_id = state.new_id();
            let lead = state
                .records
                .get_mut(&CrmModule::Leads)
                .and_then(|r| r.get_mut(lead_id))
                .ok_or_else(|| CrmError::Protocol(format!("no lead {lead_id}")))?;
            if lead.converted {
                return Err(converted(lead_id));
            }
            lead.converted = true;
            lead.modified_at = at;
            let contact = CrmRecord {
                id: contact_id.clone(),
                module: CrmModule::Contacts,
                converted: false,
                ..lead.clone()
            };
            let contacts = state.records.entry(CrmModule::Contacts).or_default();
            contacts.insert(contact_id.clone(), contact);
            Ok(Conversion { contact_id })
        })
        .await
    }
}
