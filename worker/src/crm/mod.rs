//! CRM clients: one per kind, behind the `CrmClient` trait (C1). A client speaks
//! its CRM's wire format and hands the engine normalised records: values keyed by
//! the CRM field's api name or key, picklists as option labels, sets as arrays of
//! labels, names as `first_name` / `last_name`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule};
use serde_json::Value;

use crate::credentials::Credentials;
use crate::egress::{EgressError, HttpClient};
use crate::metrics::Metrics;

mod expect;
pub mod kit;
pub mod memory;
mod oauth;
mod owners;
mod pacer;
mod picklist;
pub mod realtime;
pub mod registry;
mod retry;

pub use self::expect::{Expectations, FieldsHelp};
pub use self::kit::{CrmKit, Description};
/// Each CRM's folder (`crm::<kind>`) and the registry's lookups.
pub use self::registry::*;
pub use self::retry::RetryPolicy;

/// A CRM field as the CRM describes it (F3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmField {
    /// The api name or key the CRM's API uses for the field.
    pub api_name: String,
    /// What a person sees.
    pub label: String,
    /// Normalised type.
    pub field_type: FieldType,
    /// The CRM refuses records without it.
    pub mandatory: bool,
    /// The CRM sets it; we cannot write it.
    pub read_only: bool,
    /// Created by the CRM's user, not built in.
    pub custom: bool,
    /// Picklist options, for PICKLIST and MULTI_PICKLIST.
    pub options: Option<Vec<PicklistOption>>,
}

/// One picklist option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PicklistOption {
    /// The value sent on the wire (an option id, or the CRM's actual value).
    pub id: String,
    /// The value people and the platform see.
    pub label: String,
}

/// Field types, normalised across CRMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Free text.
    Text,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// A whole number.
    Integer,
    /// A decimal number.
    Number,
    /// True or false.
    Boolean,
    /// A date.
    Date,
    /// A date and time.
    DateTime,
    /// One option of a list.
    Picklist,
    /// Several options of a list.
    MultiPicklist,
    /// A CRM user (owner).
    User,
    /// A reference to another record.
    Lookup,
    /// Anything else (address, monetary, ...): not mappable.
    Other,
}

impl FieldType {
    /// The name shown in `CrmField.type` and `PlatformField.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::Url => "URL",
            Self::Integer => "INTEGER",
            Self::Number => "NUMBER",
            Self::Boolean => "BOOLEAN",
            Self::Date => "DATE",
            Self::DateTime => "DATETIME",
            Self::Picklist => "PICKLIST",
            Self::MultiPicklist => "MULTI_PICKLIST",
            Self::User => "USER",
            Self::Lookup => "LOOKUP",
            Self::Other => "OTHER",
        }
    }
}

/// A CRM user, for owner matching (S9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmUser {
    /// The CRM's user id.
    pub id: String,
    /// Normalised e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Inactive users cannot own records.
    pub active: bool,
}

/// A record as read from the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmRecord {
    /// The CRM's id.
    pub id: String,
    /// The module it lives in.
    pub module: CrmModule,
    /// The CRM's own modification time (checkpoints use it, never our clock).
    pub modified_at: DateTime<Utc>,
    /// The primary e-mail as stored (not normalised), if any.
    pub email: Option<String>,
    /// Field values keyed by api name, normalised (see the module docs).
    pub values: BTreeMap<String, Value>,
    /// The owner's e-mail, when the owner is a known user.
    pub owner_email: Option<String>,
    /// A converted lead: owned by sales, never overwritten (S4).
    pub converted: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPage {
    /// Records in the order asked for (modification time, then id, ascending).
    pub records: Vec<CrmRecord>,
    /// Where the next page starts; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What to list: records of `module` modified at or after `since`, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// The module.
    pub module: CrmModule,
    /// Lower bound on the CRM's modification time (inclusive); everything when `None`.
    pub since: Option<DateTime<Utc>>,
    /// The cursor of the previous page.
    pub cursor: Option<String>,
    /// Records per page (the client caps it at its CRM's maximum).
    pub page_size: u32,
}

/// A CRM record found deleted (S12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedRecord {
    /// The CRM's id of the record.
    pub id: String,
    /// When the CRM says it was deleted, where it says.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A create (no `id`) or an update of the given values only.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// The record to update; `None` creates.
    pub id: Option<String>,
    /// Values keyed by api name, normalised like `CrmRecord::values`; `Null` clears.
    pub values: BTreeMap<String, Value>,
    /// The owner's e-mail; the client resolves it to a user id.
    pub owner_email: Option<String>,
    /// The e-mail the record is created with, so a timed-out create can be found.
    pub email: String,
}

/// The result of one successful write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    /// The record's id.
    pub id: String,
    /// Its new modification time, as the CRM reports it.
    pub modified_at: DateTime<Utc>,
    /// True for a create.
    pub created: bool,
}

/// A CRM call's failure: retryable ones first, then permanent ones.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrmError {
    /// 429: wait, then retry.
    #[error("rate limited by the CRM")]
    RateLimited {
        /// How long the CRM asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeouts, dropped connections: retry with backoff.
    #[error("the CRM is unavailable: {0}")]
    Unavailable(String),
    /// The daily budget is spent: stop the run cleanly, resume later (S11).
    #[error("the CRM's daily API limit is reached: {0}")]
    DailyLimit(String),
    /// The credentials were refused: a person must fix them (NEEDS_REAUTH).
    #[error("the CRM refused the credentials: {0}")]
    Unauthorized(String),
    /// The CRM refused this record: reported on the item, not retried.
    #[error("{message}")]
    Rejected {
        /// Our reason code (CRM_VALIDATION, INVALID_PICKLIST_VALUE, CONVERTED_LEAD, ...).
        code: String,
        /// The field at fault.
        field: Option<String>,
        /// What a person can do about it.
        message: String,
    },
    /// Anything else (an unexpected reply); not retried.
    #[error("unexpected reply from the CRM: {0}")]
    Protocol(String),
}

/// A call the outbound rule refused (a local or private address): no retry
/// helps until the URL or `CRMSYNC_ALLOW_LOCAL_TARGETS` changes.
impl From<EgressError> for CrmError {
    fn from(error: EgressError) -> Self {
        Self::Rejected {
            code: "TARGET_REFUSED".into(),
            field: None,
            message: format!("the CRM's address was refused: {error}"),
        }
    }
}

impl CrmError {
    /// True for errors worth retrying after a wait.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }
}

/// A lead converted into a contact (S10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The contact the lead became.
    pub contact_id: String,
}

/// How a client treats its CRM account, from the connector's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// Calls in flight at once against the account; `None`: the CRM's usual limit.
    pub max_concurrent_calls: Option<u32>,
    /// Let the CRM run its workflow rules on our writes (`Limits::workflows`).
    pub run_workflows: bool,
    /// The company a created record gets when it has none, for CRMs that
    /// require one (a lead's company); `None`: such a record
    /// is refused, naming the field.
    pub default_company: Option<String>,
    /// Requests per second the account allows, for a CRM the client paces
    /// per second (`Limits::per_second`), where the vendor raised the
    /// account's limit; `None`: the documented limit.
    pub requests_per_second: Option<u32>,
}

impl ClientOptions {
    /// The calls in flight a client runs: the connector's choice, at least
    /// one and at most `max`; `usual` when it made none.
    pub fn calls_in_flight(&self, usual: usize, max: usize) -> usize {
        self.max_concurrent_calls
            .map_or(usual, |n| (n.max(1) as usize).min(max))
    }

    /// The default company, trimmed; `None` when unset or blank.
    pub fn company(&self) -> Option<String> {
        self.default_company
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }
}

/// What a connection test found (C3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCheck {
    /// True when everything needed works.
    pub ok: bool,
    /// What works or what is wrong, in words a person can act on.
    pub message: String,
}

/// One CRM account.
#[async_trait::async_trait]
pub trait CrmClient: Send + Sync + std::fmt::Debug {
    /// Which CRM.
    fn kind(&self) -> ConnectorKind;

    /// Checks the credentials, that the modules are readable, and that the fields
    /// `expect` names exist with usable types (C3). What a person must fix in the
    /// CRM comes back as `ok: false` with a message that says what and how.
    /// Credentials the CRM refuses come back as `Err(Unauthorized)`, on every
    /// CRM: the caller words the fix with the kit's `refused_credentials` and
    /// marks the connector NEEDS_REAUTH.
    async fn check(&self, expect: &Expectations) -> Result<ConnectionCheck, CrmError>;

    /// The fields of a module, with types and picklist options (F3).
    async fn fields(&self, module: CrmModule) -> Result<Vec<CrmField>, CrmError>;

    /// Active and inactive users.
    async fn users(&self) -> Result<Vec<CrmUser>, CrmError>;

    /// One page of records modified at or after `query.since`, oldest first.
    async fn list(&self, query: &ListQuery) -> Result<RecordPage, CrmError>;

    /// The records of `module` with these ids, normalised like `list`, in no
    /// particular order. Ids the CRM does not return (deleted, unknown) are
    /// simply absent. The client batches the ids as its CRM allows.
    async fn get_many(&self, module: CrmModule, ids: &[String])
    -> Result<Vec<CrmRecord>, CrmError>;

    /// Writes records; one result per write, in order. Retryable failures are
    /// retried inside (with backoff, honouring rate-limit headers); a create that
    /// timed out is looked up by e-mail before it is sent again, so it is never
    /// created twice.
    async fn write(
        &self,
        module: CrmModule,
        writes: Vec<RecordWrite>,
    ) -> Vec<Result<WriteResult, CrmError>>;

    /// How many records one round of concurrent writes carries (a batch's
    /// size times the batches in flight); the export leg reads pages at least
    /// this large so that a page keeps every write slot busy.
    fn writes_in_flight(&self) -> usize {
        1
    }

    /// Most records one listing call returns; the import leg asks for pages
    /// at least this large, so that no call returns less than it could (a
    /// CRM whose query answers 2,000 records a call is not read 500 at a time).
    fn records_per_read(&self) -> u32 {
        1
    }

    /// Most records one [`CrmClient::get_many`] call reads: a run reading
    /// records by id (real time) reads them in whole batches of this size
    /// where it can.
    fn records_per_lookup(&self) -> usize {
        100
    }

    /// The records of `module` deleted at or after `since` (all the CRM still
    /// knows of when `None`), found the way the kit's `deletions` says: a
    /// deleted-records API, a listing of archived records, a change feed.
    /// Paged inside; a record deleted twice may come twice. A CRM without a
    /// feed (`Deletions::Reconcile`) finds none here: a FULL run compares its
    /// links with its listing instead. A failure is an `Err`, never a shorter
    /// list: an empty list means nothing was deleted.
    async fn deleted(
        &self,
        module: CrmModule,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<DeletedRecord>, CrmError> {
        let _ = (module, since);
        Ok(Vec::new())
    }

    /// Converts a lead into a contact (S10), where the kit says the CRM
    /// converts leads. A lead converted already is `Rejected` with code
    /// CONVERTED_LEAD. A CRM whose API cannot convert leads answers
    /// `Rejected` without a call, saying how a person converts the lead in
    /// the CRM (a code such as CONVERT_IN_CRM); the next sync reads the
    /// conversion like any other.
    async fn convert_lead(&self, lead_id: &str) -> Result<Conversion, CrmError> {
        Err(CrmError::Protocol(format!(
            "{} has no lead conversion (lead {lead_id})",
            self.kind()
        )))
    }

    /// The client's change-notification subscriptions, where its CRM
    /// notifies changes to our kind of app (the kit's `notifications` says
    /// how inbound calls are verified). `None`: the CRM is polled only.
    fn subscriptions(&self) -> Option<&dyn realtime::Subscriptions> {
        None
    }
}

/// The client for a connector's CRM, counting its calls in `metrics`.
/// `base_url` overrides the CRM's address (sandbox CRMs, proxies).
pub fn client_for(
    credentials: &Credentials,
    base_url: Option<&str>,
    http: HttpClient,
    metrics: &Metrics,
) -> Result<Arc<dyn CrmClient>, CrmError> {
    client_with(
        credentials,
        base_url,
        http,
        &ClientOptions::default(),
        metrics,
    )
}

/// [`client_for`] with the connector's options (concurrency, workflows). The
/// CRM is the one the credentials were made for.
pub fn client_with(
    credentials: &Credentials,
    base_url: Option<&str>,
    http: HttpClient,
    options: &ClientOptions,
    metrics: &Metrics,
) -> Result<Arc<dyn CrmClient>, CrmError> {
    let kit = registry::by_tag(credentials.tag()).ok_or_else(|| {
        CrmError::Protocol(format!(
            "credentials of an unknown CRM ({})",
            credentials.tag()
        ))
    })?;
    kit.client(credentials, base_url, http, options, metrics)
}
