//! GraphQL types: separate from the sea-orm models, which they wrap or copy.

use async_graphql::{ComplexObject, Context, Enum, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use crmsync_entity::TenantScoped;
use crmsync_entity::enums;
use crmsync_entity::models::{
    api_key, audit_log, connector, consent_event, contact, crm_link, delivery, field_mapping,
    sync_item, sync_run, tenant, webhook,
};
use crmsync_worker::events::{LegCounts, Legs, SyncEvent};
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Deserialize;

use super::pagination::{self, Conn};
use super::{loaders, reader, state};
use crate::connectors;
use crate::error::{ApiError, GqlResult};

macro_rules! remote_enum {
    ($(#[$m:meta])* $name:ident = $remote:literal { $($(#[$vm:meta])* $variant:ident $(= $gql:literal)?),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
        #[graphql(remote = $remote)]
        pub(crate) enum $name {
            $($(#[$vm])* $(#[graphql(name = $gql)])? $variant,)+
        }
    };
}

pub(crate) use super::connector_inputs::ConnectorKind;

remote_enum!(
    /// Where a change of a contact's opt-out state came from (S9).
    ConsentOrigin = "crmsync_entity::enums::ConsentOrigin" {
        /// The platform: the API, contact upserts and imports.
        Platform,
        /// A CRM, carried by a connector's sync run.
        Crm,
    }
);
remote_enum!(
    /// Who may do what (T2).
    Role = "crmsync_entity::enums::Role" {
        /// Creates tenants; the platform's own operators.
        Operator,
        /// Configures one tenant.
        Admin,
        /// Reads one tenant.
        Viewer,
    }
);
remote_enum!(
    /// A connector's health.
    ConnectorStatus = "crmsync_entity::enums::ConnectorStatus" {
        /// Credentials work.
        Connected,
        /// The CRM refused the stored credentials: a person must re-authorise.
        NeedsReauth = "NEEDS_REAUTH",
        /// The last attempt failed for another reason.
        Error,
        /// Switched off by the tenant.
        Disabled,
    }
);
remote_enum!(
    /// A CRM module that holds people.
    CrmModule = "crmsync_entity::enums::CrmModule" {
        /// Leads: prospects, in a CRM that keeps them apart from contacts.
        Leads,
        /// Contacts: customers, in a CRM that converts leads into contacts.
        Contacts,
        /// Persons: people, in a CRM with one module for them.
        Persons,
        /// Individual customers: people who buy for themselves (B2C), in a
        /// CRM that keeps them apart from the contacts of companies.
        Customers,
    }
);
remote_enum!(
    /// A leg of a sync run.
    SyncDirection = "crmsync_entity::enums::SyncDirection" {
        /// Platform to CRM.
        ToCrm = "TO_CRM",
        /// CRM to platform.
        FromCrm = "FROM_CRM",
    }
);
remote_enum!(
    /// Which way a mapped field flows.
    MappingDirection = "crmsync_entity::enums::MappingDirection" {
        /// Platform to CRM only.
        ToCrm = "TO_CRM",
        /// CRM to platform only.
        FromCrm = "FROM_CRM",
        /// Both ways.
        Both,
    }
);
remote_enum!(
    /// What started a run.
    SyncTrigger = "crmsync_entity::enums::SyncTrigger" {
        /// The connector's schedule.
        Schedule,
        /// A person, through the API.
        Manual,
        /// A form submission.
        Form,
        /// A partner's automation (an API key).
        Api,
        /// Change notifications from the CRM (real time): reads the records
        /// they named, a burst of them in one run, and never moves the
        /// polling checkpoints.
        CrmEvent = "CRM_EVENT",
    }
);
remote_enum!(
    /// The health of a connector's real-time subscription.
    RealtimeState = "crmsync_entity::enums::RealtimeState" {
        /// Subscribed: CRM changes reach the platform within seconds. For a
        /// CRM that pushes no notifications crmsync can use, crmsync looks
        /// for changes every minute instead, and the message says so.
        Active,
        /// Wanted but not working (refused, deleted in the CRM, silent):
        /// the schedule carries the sync, and crmsync subscribes again; the
        /// message says what a person can do.
        Degraded,
        /// Turned off (setting realtime) or the connector is disabled.
        Off,
        /// The CRM has no real time in crmsync: it is polled on the
        /// connector's schedule only.
        Unsupported,
    }
);
remote_enum!(
    /// How much a run reads and whether it writes.
    SyncMode = "crmsync_entity::enums::SyncMode" {
        /// Changes since the checkpoints.
        Incremental,
        /// Everything, ignoring checkpoints.
        Full,
        /// What the next incremental run would do (from the same
        /// checkpoints), recorded with its field changes; writes nothing to
        /// either side.
        DryRun = "DRY_RUN",
    }
);
remote_enum!(
    /// Where a run is.
    SyncRunStatus = "crmsync_entity::enums::SyncRunStatus" {
        /// Waiting for a worker.
        Queued,
        /// A worker runs it.
        Running,
        /// Done, nothing rejected.
        Succeeded,
        /// Done, some contacts rejected or a limit reached.
        Partial,
        /// Stopped by an error.
        Failed,
        /// Stopped on request.
        Cancelled,
    }
);
remote_enum!(
    /// What a run did to one contact.
    ItemOutcome = "crmsync_entity::enums::ItemOutcome" {
        /// Created on the target side.
        Created,
        /// Updated on the target side.
        Updated,
        /// Nothing to do.
        Unchanged,
        /// Refused, with a reason.
        Rejected,
        /// Changed on both sides; the newer side won.
        Conflict,
        /// The CRM record was deleted: its link is removed (and, with the
        /// connector's `syncDeletions`, the contact archived). Never done to a
        /// CRM record: nothing is deleted in a CRM by a sync.
        Deleted,
    }
);

remote_enum!(
    /// Where a webhook delivery stands.
    DeliveryStatus = "crmsync_entity::enums::DeliveryStatus" {
        /// Waiting for its next attempt (or being attempted now).
        Pending,
        /// The receiver answered 2xx.
        Delivered,
        /// Given up: every attempt failed (or the webhook was disabled meanwhile).
        Failed,
    }
);

/// A company using the platform.
#[derive(SimpleObject)]
pub(crate) struct Tenant {
    /// Its id.
    pub(crate) id: ID,
    /// Display name.
    pub(crate) name: String,
    /// Unique handle, as tokens name it.
    pub(crate) slug: String,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
    /// How long its history is kept.
    pub(crate) retention: Retention,
}

/// How long a tenant's history is kept, in days. The pruner deletes older
/// rows a small batch at a time; a run keeps its summary (status, times,
/// legs) and its first rejected items, marked with `itemsPrunedAt`, and each
/// connector's latest run keeps all its rejected items (to retry them).
/// Deliveries not yet sent are never deleted.
#[derive(SimpleObject)]
pub(crate) struct Retention {
    /// Days a finished run's items are kept.
    pub(crate) sync_items_days: i32,
    /// Days a sent or given-up delivery (webhook call, summary e-mail) is kept.
    pub(crate) deliveries_days: i32,
    /// Days audit entries and consent events are kept (each contact's latest
    /// consent event stays).
    pub(crate) audit_days: i32,
}

impl From<tenant::Model> for Tenant {
    fn from(m: tenant::Model) -> Self {
        Self {
            retention: Retention {
                sync_items_days: m.retention_sync_items_days,
                deliveries_days: m.retention_deliveries_days,
                audit_days: m.retention_audit_days,
            },
            id: ID(m.id),
            name: m.name,
            slug: m.slug,
            created_at: m.created_at,
        }
    }
}

/// Who is calling.
#[derive(SimpleObject)]
pub(crate) struct Viewer {
    /// The token's subject, or `apikey:<id>` for an API key.
    pub(crate) subject: String,
    /// The role.
    pub(crate) role: Role,
    /// The tenant; none for operators.
    pub(crate) tenant: Option<Tenant>,
}

/// A partner API key (the secret is shown once, at creation).
#[derive(SimpleObject)]
pub(crate) struct ApiKey {
    /// Its id.
    pub(crate) id: ID,
    /// What it is for.
    pub(crate) name: String,
    /// The role it acts with.
    pub(crate) role: Role,
    /// Who created it.
    pub(crate) created_by: String,
    /// When it was created.
    pub(crate) created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKey {
    fn from(m: api_key::Model) -> Self {
        Self {
            id: ID(m.id),
            name: m.name,
            role: m.role.into(),
            created_by: m.created_by,
            created_at: m.created_at,
            revoked_at: m.revoked_at,
        }
    }
}

/// One configuration change.
#[derive(SimpleObject)]
pub(crate) struct AuditEntry {
    /// Its id.
    pub(crate) id: ID,
    /// Who: the token's subject or `apikey:<id>`.
    pub(crate) actor: String,
    /// What: `connector.create`, `mappings.set`, `api_key.revoke`, ...
    pub(crate) action: String,
    /// The kind of thing changed: `connector`, `api_key`.
    pub(crate) target_type: String,
    /// Its id.
    pub(crate) target_id: String,
    /// What changed (never secrets).
    pub(crate) detail: Json<serde_json::Value>,
    /// When.
    pub(crate) at: DateTime<Utc>,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(m: audit_log::Model) -> Self {
        Self {
            id: ID(m.id),
            actor: m.actor,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            detail: Json(m.detail),
            at: m.at,
        }
    }
}

/// A platform contact field that mappings can name.
#[derive(SimpleObject)]
pub(crate) struct PlatformField {
    /// Its name in mappings (`email`, `behaviour_score`; custom ones are `custom.<key>`).
    pub(crate) name: String,
    /// Its type (TEXT, EMAIL, INTEGER, ...).
    #[graphql(name = "type")]
    pub(crate) field_type: String,
    /// Computed by the platform: may only go TO_CRM.
    pub(crate) computed: bool,
    /// Mapped by default and locked.
    pub(crate) mandatory: bool,
}

/// A CRM connectors can be created for, as its kit describes it: what a
/// dashboard's "new connector" form needs to know.
#[derive(SimpleObject)]
pub(crate) struct CrmKind {
    /// The kind, as `createConnector` takes it.
    pub(crate) kind: ConnectorKind,
    /// The CRM's name as people write it.
    pub(crate) display_name: String,
    /// Its modules, and which way each flows.
    pub(crate) modules: Vec<CrmModuleFlow>,
    /// True when a person's name is one field in this CRM (first and last
    /// names travel joined).
    pub(crate) joined_name: bool,
    /// True when the CRM converts leads into contacts (converted leads are
    /// owned by sales and never overwritten).
    pub(crate) converts_leads: bool,
    /// The editions `crmEdition` takes, with the calls each lets run at
    /// once; empty when the CRM has no such setting.
    pub(crate) editions: Vec<CrmEdition>,
    /// True when `runWorkflows` may be set.
    pub(crate) runs_workflows: bool,
    /// How crmsync keeps within the CRM's rate limits, in words.
    pub(crate) pacing: String,
    /// The field of `createConnector`'s and `updateConnector`'s input that
    /// carries this CRM's credentials.
    pub(crate) credentials_input: String,
    /// The fields of that input.
    pub(crate) credential_fields: Vec<CredentialField>,
}

/// A CRM module of a kind, and which way its records flow.
#[derive(SimpleObject)]
pub(crate) struct CrmModuleFlow {
    /// The module.
    pub(crate) module: CrmModule,
    /// True for the module platform contacts are written to (it flows both
    /// ways); false for a module read into the platform only.
    pub(crate) to_crm: bool,
    /// Imported by a new connector unless its settings say otherwise.
    pub(crate) imported_by_default: bool,
}

/// An edition of a CRM account.
#[derive(SimpleObject)]
pub(crate) struct CrmEdition {
    /// Its name, as `crmEdition` takes it.
    pub(crate) name: String,
    /// Calls it lets run at once.
    pub(crate) max_concurrent_calls: i32,
}

/// A field of a CRM's credential input.
#[derive(SimpleObject)]
pub(crate) struct CredentialField {
    /// Its name in the input.
    pub(crate) name: String,
    /// True for secrets: stored encrypted, never shown again.
    pub(crate) secret: bool,
    /// False when it may be left out. A field of an alternative is required
    /// when the form takes that alternative.
    pub(crate) required: bool,
    /// The way of connecting it belongs to, where a CRM offers several
    /// (such as `privateApp` and `oauthApp`): a form fills the fields of
    /// exactly one. Null: a field of every form.
    pub(crate) alternative: Option<String>,
}

impl From<&crmsync_worker::crm::Description> for CrmKind {
    fn from(d: &crmsync_worker::crm::Description) -> Self {
        Self {
            kind: d.kind.into(),
            display_name: d.display_name.to_owned(),
            modules: d
                .modules
                .iter()
                .map(|m| CrmModuleFlow {
                    module: m.module.into(),
                    to_crm: m.to_crm,
                    imported_by_default: m.imported_by_default,
                })
                .collect(),
            joined_name: d.joined_name,
            converts_leads: d.converts_leads,
            editions: d
                .limits
                .editions
                .iter()
                .map(|(name, calls)| CrmEdition {
                    name: (*name).to_owned(),
                    max_concurrent_calls: i32::try_from(*calls).unwrap_or(i32::MAX),
                })
                .collect(),
            runs_workflows: d.limits.workflows,
            pacing: d.limits.pacing.to_owned(),
            credentials_input: d.credentials_input.to_owned(),
            credential_fields: d
                .credential_fields
                .iter()
                .map(|f| CredentialField {
                    name: f.name.to_owned(),
                    secret: f.secret,
                    required: f.required,
                    alternative: f.alternative.map(str::to_owned),
                })
                .collect(),
        }
    }
}

/// A CRM field, live from the CRM.
#[derive(SimpleObject)]
pub(crate) struct CrmField {
    /// The api name or key mappings use.
    pub(crate) api_name: String,
    /// What a person sees.
    pub(crate) label: String,
    /// Normalised type (TEXT, EMAIL, PICKLIST, ...).
    #[graphql(name = "type")]
    pub(crate) field_type: String,
    /// The CRM refuses records without it.
    pub(crate) mandatory: bool,
    /// The CRM sets it: it can only be read.
    pub(crate) read_only: bool,
    /// Created by the CRM's users.
    pub(crate) custom: bool,
    /// Picklist options (labels), for picklists.
    pub(crate) options: Option<Vec<String>>,
    /// Picklist options with the value the CRM stores for each (its actual
    /// value or option id), for picklists.
    pub(crate) picklist_values: Option<Vec<PicklistValue>>,
}

/// One option of a CRM picklist.
#[derive(SimpleObject)]
pub(crate) struct PicklistValue {
    /// What the CRM stores and compares (its actual value or option id).
    pub(crate) value: String,
    /// What people see; mappings and platform values use it.
    pub(crate) label: String,
}

impl From<crmsync_worker::crm::CrmField> for CrmField {
    fn from(f: crmsync_worker::crm::CrmField) -> Self {
        Self {
            api_name: f.api_name,
            label: f.label,
            field_type: f.field_type.as_str().to_owned(),
            mandatory: f.mandatory,
            read_only: f.read_only,
            custom: f.custom,
            options: f
                .options
                .as_ref()
                .map(|o| o.iter().map(|o| o.label.clone()).collect()),
            picklist_values: f.options.map(|o| {
                o.into_iter()
                    .map(|o| PicklistValue {
                        value: o.id,
                        label: o.label,
                    })
                    .collect()
            }),
        }
    }
}

remote_enum!(
    /// What a sync rule does when its conditions hold.
    SyncRuleAction = "crmsync_worker::sync_rules::RuleAction" {
        /// The record syncs, with the rule's fields set on the target side.
        Include,
        /// The record does not sync in the rule's direction.
        Exclude,
    }
);
remote_enum!(
    /// How a sync rule's condition compares a field with its value. Text is
    /// compared ignoring case, picklists by label, numbers by value.
    RuleOperator = "crmsync_worker::sync_rules::RuleOperator" {
        /// The field holds the value (a multi-select: one of its items does).
        Equals,
        /// The field does not hold the value (an empty field holds none).
        NotEquals = "NOT_EQUALS",
        /// The field holds one of the values: a comma list or a JSON array.
        In,
        /// The text holds the value; a multi-select holds it as an item.
        Contains,
        /// The field has a value.
        IsSet = "IS_SET",
        /// The field is empty.
        IsNotSet = "IS_NOT_SET",
        /// A number or date at least the value.
        GreaterOrEqual = "GREATER_OR_EQUAL",
        /// A number or date at most the value.
        LessOrEqual = "LESS_OR_EQUAL",
    }
);

/// One condition of a sync rule.
#[derive(SimpleObject)]
pub(crate) struct RuleCondition {
    /// A platform field (TO_CRM rules) or a CRM field's api name (FROM_CRM).
    pub(crate) field: String,
    /// The comparison.
    pub(crate) operator: RuleOperator,
    /// The value compared with; null for IS_SET and IS_NOT_SET.
    pub(crate) value: Option<String>,
}

/// A field an INCLUDE rule sets on the target side.
#[derive(SimpleObject)]
pub(crate) struct RuleSetField {
    /// A CRM field's api name (TO_CRM rules) or a platform field (FROM_CRM).
    pub(crate) field: String,
    /// The value, as text (`true`, `42`, a picklist label; a multi-select's
    /// labels as a JSON array).
    pub(crate) value: String,
}

/// An IF/THEN sync rule (S13). Per direction, the first rule whose
/// conditions all hold decides whether a record syncs; a record no rule
/// matches does not sync that way, unless the connector has no rule for
/// that direction.
#[derive(SimpleObject)]
pub(crate) struct SyncRule {
    /// The direction it decides: TO_CRM reads platform fields and sets CRM
    /// fields, FROM_CRM reads CRM fields and sets platform fields.
    pub(crate) direction: SyncDirection,
    /// All must hold; none always holds.
    pub(crate) conditions: Vec<RuleCondition>,
    /// INCLUDE or EXCLUDE.
    pub(crate) action: SyncRuleAction,
    /// INCLUDE only: fields set on every write the sync makes for the record.
    pub(crate) set_fields: Vec<RuleSetField>,
}

impl From<crmsync_worker::sync_rules::SyncRule> for SyncRule {
    fn from(r: crmsync_worker::sync_rules::SyncRule) -> Self {
        Self {
            direction: r.direction.into(),
            conditions: r
                .conditions
                .into_iter()
                .map(|c| RuleCondition {
                    field: c.field,
                    operator: c.operator.into(),
                    value: c.value,
                })
                .collect(),
            action: r.action.into(),
            set_fields: r
                .set_fields
                .into_iter()
                .map(|f| RuleSetField {
                    field: f.field,
                    value: match f.value {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    },
                })
                .collect(),
        }
    }
}

/// One mapping row.
#[derive(SimpleObject)]
pub(crate) struct FieldMapping {
    /// Platform field name.
    pub(crate) platform_field: String,
    /// CRM field api name or key.
    pub(crate) crm_field: String,
    /// Which way it flows.
    pub(crate) direction: MappingDirection,
    /// Synced or kept aside.
    pub(crate) enabled: bool,
    /// Mandatory mappings (e-mail, names) cannot be removed or disabled.
    pub(crate) locked: bool,
}

impl From<crmsync_worker::platform::Mapping> for FieldMapping {
    fn from(m: crmsync_worker::platform::Mapping) -> Self {
        Self {
            platform_field: m.platform_field,
            crm_field: m.crm_field,
            direction: m.direction.into(),
            enabled: m.enabled,
            locked: m.locked,
        }
    }
}

impl From<field_mapping::Model> for FieldMapping {
    fn from(m: field_mapping::Model) -> Self {
        Self {
            platform_field: m.platform_field,
            crm_field: m.crm_field,
            direction: m.direction.into(),
            enabled: m.enabled,
            locked: m.locked,
        }
    }
}

/// A connector's settings.
#[derive(SimpleObject)]
pub(crate) struct ConnectorSettings {
    /// CRM modules imported.
    pub(crate) import_modules: Vec<CrmModule>,
    /// The CRM field a record must carry to be imported.
    pub(crate) filter_field: Option<String>,
    /// The value it must hold.
    pub(crate) filter_value: Option<String>,
    /// Contacts scoring below this are not exported.
    pub(crate) min_score_to_export: i32,
    /// Who is told after each run.
    pub(crate) notify_emails: Vec<String>,
    /// When the connector syncs by itself: "every 2h", "every 30m", or a
    /// cron expression in UTC.
    pub(crate) schedule: String,
    /// Owner of records whose owner matches no CRM user.
    pub(crate) default_owner_email: Option<String>,
    /// The CRM account's edition, which sets how many calls run at once.
    pub(crate) crm_edition: Option<String>,
    /// Calls in flight at once against the CRM, when set (overrides the edition's).
    pub(crate) max_concurrent_calls: Option<i32>,
    /// Requests per second the CRM account allows, when set (for CRMs paced
    /// per second, where the vendor raised the documented limit).
    pub(crate) max_requests_per_second: Option<i32>,
    /// The CRM runs its workflow rules on the records we write.
    pub(crate) run_workflows: bool,
    /// The company of records created in the CRM without one, when set.
    pub(crate) default_company: Option<String>,
    /// A CRM record found deleted archives its platform contact too.
    pub(crate) sync_deletions: bool,
    /// A contact whose CRM record was deleted, changed afterwards, creates
    /// the record again (else it is rejected with reason DELETED_IN_CRM).
    pub(crate) recreate_deleted: bool,
    /// The CRM's changes reach the platform in real time (its change
    /// notifications, or a look for changes every minute where it pushes
    /// none crmsync can use; see Connector.realtime); polling on the
    /// schedule goes on either way. Always false for CRMs without real time.
    pub(crate) realtime: bool,
}

/// A connector's real-time subscription to its CRM's change notifications.
#[derive(SimpleObject)]
pub(crate) struct ConnectorRealtime {
    /// ACTIVE, DEGRADED, OFF or UNSUPPORTED.
    pub(crate) state: RealtimeState,
    /// When the CRM ends the subscription unless renewed (crmsync renews it
    /// before); null when it does not expire or none is held.
    pub(crate) subscribed_until: Option<DateTime<Utc>>,
    /// When the last verified notification came.
    pub(crate) last_event_at: Option<DateTime<Utc>>,
    /// What a person should know (why DEGRADED, what to do), in words.
    pub(crate) message: Option<String>,
}

/// One CRM account of the tenant.
pub(crate) struct Connector(pub(crate) connector::Model);

#[Object]
impl Connector {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Which CRM.
    async fn kind(&self) -> ConnectorKind {
        self.0.kind.into()
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Health.
    async fn status(&self) -> ConnectorStatus {
        self.0.status.into()
    }
    /// What a person should know about the status.
    async fn status_message(&self) -> Option<&str> {
        self.0.status_message.as_deref()
    }
    /// Sync on or off.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Settings.
    async fn settings(&self) -> GqlResult<ConnectorSettings> {
        let s = connectors::settings_of(&self.0)?;
        Ok(ConnectorSettings {
            import_modules: s.import_modules.into_iter().map(Into::into).collect(),
            filter_field: s.filter_field,
            filter_value: s.filter_value,
            min_score_to_export: s.min_score_to_export,
            notify_emails: s.notify_emails,
            schedule: s.schedule,
            default_owner_email: s.default_owner_email,
            crm_edition: s.crm_edition,
            max_concurrent_calls: s
                .max_concurrent_calls
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            max_requests_per_second: s
                .max_requests_per_second
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            run_workflows: s.run_workflows,
            default_company: s.default_company,
            sync_deletions: s.sync_deletions,
            recreate_deleted: s.recreate_deleted,
            realtime: s.realtime,
        })
    }
    /// Real time: whether the CRM notifies its changes, and how that goes.
    async fn realtime(&self, ctx: &Context<'_>) -> GqlResult<ConnectorRealtime> {
        let health = crmsync_worker::realtime::health(&state(ctx).db, &self.0).await?;
        Ok(ConnectorRealtime {
            state: health.state.into(),
            subscribed_until: health.subscribed_until,
            last_event_at: health.last_event_at,
            message: health.message,
        })
    }
    /// Never the secrets themselves: which ones are set.
    async fn credentials_set(&self) -> Vec<String> {
        serde_json::from_value(self.0.credentials_set.clone()).unwrap_or_default()
    }
    /// The base-URL override, when the CRM is reached elsewhere (sandbox, proxy).
    async fn base_url(&self) -> Option<&str> {
        self.0.base_url.as_deref()
    }
    /// True after a mapping change, until a FULL run succeeds.
    async fn full_resync_recommended(&self) -> bool {
        self.0.full_resync_recommended
    }
    /// When the schedule next starts a sync (trigger SCHEDULE), in UTC; null
    /// until the scheduler has planned it (within seconds of a change), and
    /// while the connector is disabled or needs new credentials it does not fire.
    async fn next_sync_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_sync_at
    }
    /// While the connector's run is QUEUED: its place among the runs waiting
    /// for a worker slot (1: it takes the next slot that frees), in the order
    /// slots are handed out (the tenant served longest ago first, then the
    /// run queued first; FORM and CRM_EVENT runs wait in a lane of their
    /// own). A run whose tenant already holds as many slots as it may
    /// (CRMSYNC_WORKER_TENANT_SLOTS, or half a worker's slots) counts behind
    /// every run whose tenant does not. Null when no run of the connector is
    /// queued.
    async fn queue_position(&self, ctx: &Context<'_>) -> GqlResult<Option<i32>> {
        let tenant = crmsync_entity::TenantId::new(self.0.tenant_id.clone());
        let state = state(ctx);
        let position =
            crmsync_worker::slots::queue_position(&state.db, &tenant, &self.0.id, state.tenant_cap)
                .await?;
        Ok(position.map(|p| i32::try_from(p).unwrap_or(i32::MAX)))
    }
    /// The mapping rows, in order.
    async fn mappings(&self, ctx: &Context<'_>) -> GqlResult<Vec<FieldMapping>> {
        Ok(loaders(ctx)?
            .mappings
            .load_one(self.0.id.clone())
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect())
    }
    /// The IF/THEN sync rules, in order (see setSyncRules).
    async fn sync_rules(&self, ctx: &Context<'_>) -> GqlResult<Vec<SyncRule>> {
        loaders(ctx)?
            .sync_rules
            .load_one(self.0.id.clone())
            .await?
            .unwrap_or_default()
            .iter()
            .map(|row| {
                crmsync_worker::sync_rules::parse(&row.rule)
                    .map(Into::into)
                    .map_err(Into::into)
            })
            .collect()
    }
    /// Live from the CRM: its fields for a module, with types and picklist options.
    async fn crm_fields(&self, ctx: &Context<'_>, module: CrmModule) -> GqlResult<Vec<CrmField>> {
        Ok(connectors::crm_fields(state(ctx), &self.0, module.into())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
    /// The latest run.
    async fn last_run(&self, ctx: &Context<'_>) -> GqlResult<Option<SyncRun>> {
        Ok(loaders(ctx)?
            .last_runs
            .load_one(self.0.id.clone())
            .await?
            .map(SyncRun))
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its configuration last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A platform contact.
pub(crate) struct Contact(pub(crate) contact::Model);

#[Object]
impl Contact {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The identity: trimmed, lower-case.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// First name.
    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }
    /// Last name.
    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }
    /// Company.
    async fn company(&self) -> Option<&str> {
        self.0.company.as_deref()
    }
    /// Phone.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// Job title.
    async fn job_title(&self) -> Option<&str> {
        self.0.job_title.as_deref()
    }
    /// Where the contact came from.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// Behaviour score, computed by the platform.
    async fn behaviour_score(&self) -> i32 {
        self.0.behaviour_score
    }
    /// Marketing state, computed by the platform.
    async fn state(&self) -> Option<&str> {
        self.0.state.as_deref()
    }
    /// PROSPECT or CLIENT.
    async fn lifecycle(&self) -> &'static str {
        self.0.lifecycle.as_str()
    }
    /// Opted out of e-mail.
    async fn opted_out(&self) -> bool {
        self.0.opted_out
    }
    /// E-mail of the owning sales person.
    async fn owner_email(&self) -> Option<&str> {
        self.0.owner_email.as_deref()
    }
    /// Custom fields, a JSON object.
    async fn custom_fields(&self) -> Json<serde_json::Value> {
        Json(self.0.custom_fields.clone())
    }
    /// The CRM records this contact is linked to.
    async fn links(&self, ctx: &Context<'_>) -> GqlResult<Vec<CrmLink>> {
        Ok(loaders(ctx)?
            .links
            .load_one(self.0.id.clone())
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(CrmLink)
            .collect())
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Archived: never exported, and never brought back by an import.
    async fn archived(&self) -> bool {
        self.0.archived_at.is_some()
    }
    /// When it was archived; null when it is not archived.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
    /// Every change of its opt-out state, newest first, with its time and
    /// origin (S9).
    async fn consent_history(&self, ctx: &Context<'_>) -> GqlResult<Vec<ConsentEvent>> {
        Ok(loaders(ctx)?
            .consent
            .load_one(self.0.id.clone())
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(ConsentEvent)
            .collect())
    }
}

/// One change of a contact's opt-out state.
pub(crate) struct ConsentEvent(consent_event::Model);

#[Object]
impl ConsentEvent {
    /// The state set: true when the contact opted out.
    async fn opted_out(&self) -> bool {
        self.0.opted_out
    }
    /// PLATFORM (the API, upserts, imports) or CRM (a sync run).
    async fn origin(&self) -> ConsentOrigin {
        self.0.origin.into()
    }
    /// The connector whose CRM the change came from (origin CRM).
    async fn connector_id(&self) -> Option<ID> {
        self.0.connector_id.clone().map(ID)
    }
    /// That connector's CRM (origin CRM).
    async fn crm_kind(&self) -> Option<ConnectorKind> {
        self.0.crm_kind.map(Into::into)
    }
    /// The sync run that carried the change (origin CRM).
    async fn sync_run_id(&self) -> Option<ID> {
        self.0.run_id.clone().map(ID)
    }
    /// When the change was applied to the contact.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// The link between a contact and a CRM record.
pub(crate) struct CrmLink(crm_link::Model);

#[Object]
impl CrmLink {
    /// The connector of the CRM.
    async fn connector(&self, ctx: &Context<'_>) -> GqlResult<Connector> {
        load_connector(ctx, &self.0.connector_id).await
    }
    /// The CRM module of the record.
    async fn module(&self) -> CrmModule {
        self.0.module.into()
    }
    /// The CRM record id.
    async fn crm_record_id(&self) -> &str {
        &self.0.crm_record_id
    }
    /// When a sync last touched the link.
    async fn last_synced_at(&self) -> Option<DateTime<Utc>> {
        Some(self.0.last_synced_at)
    }
}

async fn load_connector(ctx: &Context<'_>, id: &str) -> GqlResult<Connector> {
    Ok(Connector(
        loaders(ctx)?
            .connectors
            .load_one(id.to_owned())
            .await?
            .ok_or(ApiError::NotFound("connector"))?,
    ))
}

/// Counts of one leg of a run.
#[derive(SimpleObject, Clone, Copy)]
pub(crate) struct SyncLeg {
    /// Which leg.
    pub(crate) direction: SyncDirection,
    /// Created on the target side.
    pub(crate) created: i64,
    /// Updated on the target side.
    pub(crate) updated: i64,
    /// Nothing to do.
    pub(crate) unchanged: i64,
    /// Refused.
    pub(crate) rejected: i64,
    /// Changed on both sides.
    pub(crate) conflicts: i64,
    /// CRM records found deleted, their links removed (FROM_CRM only:
    /// nothing is ever deleted in a CRM).
    pub(crate) deleted: i64,
}

fn legs(legs: Legs) -> Vec<SyncLeg> {
    let leg = |direction, c: LegCounts| SyncLeg {
        direction,
        created: c.created,
        updated: c.updated,
        unchanged: c.unchanged,
        rejected: c.rejected,
        conflicts: c.conflicts,
        deleted: c.deleted,
    };
    vec![
        leg(SyncDirection::ToCrm, legs.to_crm),
        leg(SyncDirection::FromCrm, legs.from_crm),
    ]
}

/// A sync run.
pub(crate) struct SyncRun(pub(crate) sync_run::Model);

#[Object]
impl SyncRun {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The connector it syncs.
    async fn connector(&self, ctx: &Context<'_>) -> GqlResult<Connector> {
        load_connector(ctx, &self.0.connector_id).await
    }
    /// What started it.
    async fn trigger(&self) -> SyncTrigger {
        self.0.trigger.into()
    }
    /// Incremental, full or dry run.
    async fn mode(&self) -> SyncMode {
        self.0.mode.into()
    }
    /// Where it is.
    async fn status(&self) -> SyncRunStatus {
        self.0.status.into()
    }
    /// What it is doing now (`queued`, `import`, `export`, `done`).
    async fn phase(&self) -> &str {
        &self.0.phase
    }
    /// Records processed so far.
    async fn processed(&self) -> i64 {
        self.0.processed
    }
    /// Why it failed or was partial, in words.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The run whose rejected contacts this run retries.
    async fn retry_of(&self) -> Option<ID> {
        self.0.retry_of.clone().map(ID)
    }
    /// The mappings a dry run previewed instead of the connector's (given to
    /// startSync); null when the run used the connector's own.
    async fn proposed_mappings(&self) -> Option<Vec<FieldMapping>> {
        let stored = self.0.mappings.as_ref()?;
        let mappings = Vec::<crmsync_worker::platform::Mapping>::deserialize(stored).ok()?;
        Some(mappings.into_iter().map(Into::into).collect())
    }
    /// The sync rules a dry run previewed instead of the connector's (given
    /// to startSync); null when the run used the connector's own.
    async fn proposed_rules(&self) -> Option<Vec<SyncRule>> {
        let stored = self.0.rules.as_ref()?.as_array()?;
        let rules: Result<Vec<_>, _> = stored
            .iter()
            .map(crmsync_worker::sync_rules::parse)
            .collect();
        Some(rules.ok()?.into_iter().map(Into::into).collect())
    }
    /// When it was queued; for a run handed back to the queue, when it was
    /// queued again.
    async fn queued_at(&self) -> DateTime<Utc> {
        self.0.queued_at
    }
    /// When a worker first started it.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// How many slices of worker time it has had: 1 for a run that went from
    /// start to end in one slot; more for a run that gave its slot back
    /// (its slice was over while other runs waited, or its worker stopped)
    /// and went on from its checkpoints later. 0 while it has not started.
    async fn slices(&self) -> i32 {
        self.0.slices
    }
    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// One leg per direction (the history shows one line per direction).
    async fn legs(&self) -> Vec<SyncLeg> {
        legs(Legs::of_run(&self.0))
    }
    /// When the run's items past the tenant's retention were deleted: the
    /// run keeps its summary and its first rejected items (all of them while
    /// it is its connector's latest run). Null while every item is kept.
    async fn items_pruned_at(&self) -> Option<DateTime<Utc>> {
        self.0.items_pruned_at
    }
    /// The contacts this run touched.
    async fn items(
        &self,
        ctx: &Context<'_>,
        outcome: Option<ItemOutcome>,
        direction: Option<SyncDirection>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<SyncItem>> {
        let scope = reader(ctx)?;
        let mut select = sync_item::Entity::for_tenant(&scope.tenant)
            .filter(sync_item::Column::RunId.eq(self.0.id.as_str()));
        if let Some(o) = outcome {
            select = select.filter(sync_item::Column::Outcome.eq(enums::ItemOutcome::from(o)));
        }
        if let Some(d) = direction {
            select = select.filter(sync_item::Column::Direction.eq(enums::SyncDirection::from(d)));
        }
        let page = pagination::page(
            &state(ctx).db,
            select,
            sync_item::Column::Id,
            first,
            after,
            false,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, SyncItem))
    }
}

/// One contact a run touched.
pub(crate) struct SyncItem(pub(crate) sync_item::Model);

#[Object]
impl SyncItem {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The run.
    async fn run(&self, ctx: &Context<'_>) -> GqlResult<SyncRun> {
        Ok(SyncRun(
            loaders(ctx)?
                .runs
                .load_one(self.0.run_id.clone())
                .await?
                .ok_or(ApiError::NotFound("sync run"))?,
        ))
    }
    /// Which leg.
    async fn direction(&self) -> SyncDirection {
        self.0.direction.into()
    }
    /// What happened.
    async fn outcome(&self) -> ItemOutcome {
        self.0.outcome.into()
    }
    /// The e-mail as seen, when there was one.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// The platform contact, when there is one.
    async fn contact(&self, ctx: &Context<'_>) -> GqlResult<Option<Contact>> {
        let Some(id) = &self.0.contact_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .contacts
            .load_one(id.clone())
            .await?
            .map(Contact))
    }
    /// The CRM record, when there is one.
    async fn crm_record_id(&self) -> Option<&str> {
        self.0.crm_record_id.as_deref()
    }
    /// Machine-readable: MISSING_EMAIL, MISSING_NAME, INVALID_PICKLIST_VALUE, CONVERTED_LEAD, CRM_VALIDATION, DUPLICATE_IN_CRM, ...
    async fn reason_code(&self) -> Option<&str> {
        self.0.reason_code.as_deref()
    }
    /// The field at fault.
    async fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }
    /// What a person can do about it.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// What the run changed on the target side (a dry run: would change),
    /// field by field; empty unless the outcome is CREATED, UPDATED or CONFLICT.
    async fn changes(&self) -> Vec<FieldChange> {
        self.0.field_changes().into_iter().map(Into::into).collect()
    }
    /// When it was recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One field a run changed (a dry run: would change) on one side (S6).
#[derive(SimpleObject)]
pub(crate) struct FieldChange {
    /// The platform field (see platformFields). For a CRM with one name field,
    /// the name parts sent together as one value, joined with " + " (e.g.
    /// "first_name + last_name").
    pub(crate) platform_field: String,
    /// The CRM field (see Connector.crmFields): a CRM's one name field is
    /// "name". Null when the change is the CRM record's module, which follows
    /// the platform lifecycle (a lead converted to a contact: from LEADS to
    /// CONTACTS).
    pub(crate) crm_field: Option<String>,
    /// The side that changes: TO_CRM, the CRM's value; FROM_CRM, the platform's.
    pub(crate) direction: SyncDirection,
    /// The value before, as that side held it; null when it held none (and on creation).
    pub(crate) from: Option<Json<serde_json::Value>>,
    /// The value after, as that side holds it (picklist labels, owners by
    /// e-mail); null when the value is cleared.
    pub(crate) to: Option<Json<serde_json::Value>>,
    /// The field changed on both sides since the last sync, and the side
    /// modified last won (S6): this is the losing side's value being replaced.
    pub(crate) conflict: bool,
}

impl From<sync_item::FieldChange> for FieldChange {
    fn from(c: sync_item::FieldChange) -> Self {
        let json = |v: serde_json::Value| (!v.is_null()).then_some(Json(v));
        Self {
            platform_field: c.platform_field,
            crm_field: c.crm_field,
            direction: c.direction.into(),
            from: json(c.from),
            to: json(c.to),
            conflict: c.conflict,
        }
    }
}

/// A run's progress at one moment.
#[derive(SimpleObject)]
#[graphql(complex)]
pub(crate) struct SyncProgressEvent {
    /// The run.
    pub(crate) run_id: ID,
    /// Its connector.
    pub(crate) connector_id: ID,
    /// The run's status at that moment.
    pub(crate) status: SyncRunStatus,
    /// What it is doing (`queued`, `import`, `export`, `done`).
    pub(crate) phase: String,
    /// Records processed so far.
    pub(crate) processed: i64,
    /// When.
    pub(crate) at: DateTime<Utc>,
    #[graphql(skip)]
    pub(crate) counts: Legs,
}

#[ComplexObject]
impl SyncProgressEvent {
    /// Counts so far, one leg per direction.
    async fn legs(&self) -> Vec<SyncLeg> {
        legs(self.counts)
    }
}

impl From<SyncEvent> for SyncProgressEvent {
    fn from(e: SyncEvent) -> Self {
        Self {
            run_id: ID(e.run_id),
            connector_id: ID(e.connector_id),
            status: e.status.into(),
            phase: e.phase,
            processed: e.processed,
            at: e.at,
            counts: e.legs,
        }
    }
}

/// Payload of `createTenant`.
#[derive(SimpleObject)]
pub(crate) struct TenantPayload {
    /// The tenant.
    pub(crate) tenant: Tenant,
}

/// Payload of the API-key mutations.
#[derive(SimpleObject)]
pub(crate) struct ApiKeyPayload {
    /// The key.
    pub(crate) api_key: ApiKey,
    /// Only on creation: the key to send as `Authorization: Bearer <secret>`.
    pub(crate) secret: Option<String>,
}

/// Payload of the connector mutations.
#[derive(SimpleObject)]
pub(crate) struct ConnectorPayload {
    /// The connector.
    pub(crate) connector: Connector,
}

/// Payload of `deleteConnector`.
#[derive(SimpleObject)]
pub(crate) struct DeleteConnectorPayload {
    /// The id of the deleted connector.
    pub(crate) deleted_id: ID,
}

/// Payload of `testConnector`.
#[derive(SimpleObject)]
pub(crate) struct ConnectionTestPayload {
    /// True when everything needed works.
    pub(crate) ok: bool,
    /// What works or what is wrong, in words.
    pub(crate) message: String,
}

/// Payload of the contact mutations.
#[derive(SimpleObject)]
pub(crate) struct ContactPayload {
    /// The contact.
    pub(crate) contact: Contact,
}

/// Payload of the run mutations.
#[derive(SimpleObject)]
pub(crate) struct SyncRunPayload {
    /// The run.
    pub(crate) run: SyncRun,
}

/// A partner's URL that receives signed run events (R5). Each event is a POST
/// of a JSON body with the headers `X-Crmsync-Event`, `X-Crmsync-Delivery`
/// (the same across retries), `X-Crmsync-Timestamp` (unix seconds) and
/// `X-Crmsync-Signature` (`v1=` and the hex HMAC-SHA256, keyed with the
/// webhook's secret, of `"{timestamp}.{body}"`). The secret is shown once,
/// by `createWebhook` and `rotateWebhookSecret`.
pub(crate) struct Webhook(pub(crate) webhook::Model);

#[Object]
impl Webhook {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Where events are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// The events it receives: `sync.started` (a run went RUNNING) and
    /// `sync.finished` (a run ended, with its counts).
    async fn events(&self) -> Vec<String> {
        self.0.event_names()
    }
    /// What it is for.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Off: no new deliveries, and pending ones are given up.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed (a new secret included).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Its delivery log, newest first, optionally of one status.
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<Conn<WebhookDelivery>> {
        let scope = reader(ctx)?;
        let mut select = delivery::Entity::for_tenant(&scope.tenant)
            .filter(delivery::Column::WebhookId.eq(self.0.id.as_str()));
        if let Some(status) = status {
            select =
                select.filter(delivery::Column::Status.eq(enums::DeliveryStatus::from(status)));
        }
        let page = pagination::page(
            &state(ctx).db,
            select,
            delivery::Column::Id,
            first,
            after,
            true,
        )
        .await?;
        Ok(pagination::connection(page, |m| &m.id, WebhookDelivery))
    }
}

/// One event sent (or being sent) to a webhook, with every attempt.
pub(crate) struct WebhookDelivery(pub(crate) delivery::Model);

#[Object]
impl WebhookDelivery {
    /// Its id, sent as `X-Crmsync-Delivery` (and `deliveryId` in the body), the
    /// same across retries: receivers deduplicate by it.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The event: `sync.started` or `sync.finished`.
    async fn event(&self) -> &str {
        &self.0.event
    }
    /// The run the event is about.
    async fn run_id(&self) -> Option<ID> {
        self.0.run_id.clone().map(ID)
    }
    /// Where it stands.
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    /// How many attempts were made.
    async fn attempt_count(&self) -> i32 {
        self.0.attempts
    }
    /// Every attempt, oldest first.
    async fn attempts(&self) -> Vec<DeliveryAttempt> {
        self.0
            .attempt_list()
            .into_iter()
            .enumerate()
            .map(|(i, a)| DeliveryAttempt {
                number: i32::try_from(i + 1).unwrap_or(i32::MAX),
                at: a.at,
                http_status: a.http_status.map(i32::from),
                error: a.error,
                duration_ms: i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
            })
            .collect()
    }
    /// When the next attempt is due; none once delivered or failed.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// When the event happened (and the delivery was created).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the receiver accepted it.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    /// The JSON body, exactly as sent at each attempt.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(
            serde_json::from_str(&self.0.payload)
                .unwrap_or_else(|_| serde_json::Value::String(self.0.payload.clone())),
        )
    }
}

/// One attempt at a delivery.
#[derive(SimpleObject)]
pub(crate) struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub(crate) number: i32,
    /// When it started.
    pub(crate) at: DateTime<Utc>,
    /// The receiver's HTTP status, when it replied.
    pub(crate) http_status: Option<i32>,
    /// Why it failed (`HTTP 500 Internal Server Error`, `no reply within 10 s`,
    /// `could not connect: ...`); none when it succeeded.
    pub(crate) error: Option<String>,
    /// How long it took, in milliseconds.
    pub(crate) duration_ms: i64,
}

/// Payload of the webhook mutations.
#[derive(SimpleObject)]
pub(crate) struct WebhookPayload {
    /// The webhook.
    pub(crate) webhook: Webhook,
    /// Only from `createWebhook` and `rotateWebhookSecret`: the signing
    /// secret, shown this once. Keep it where the receiver can read it.
    pub(crate) secret: Option<String>,
}

/// Payload of `deleteWebhook`.
#[derive(SimpleObject)]
pub(crate) struct DeleteWebhookPayload {
    /// The id of the deleted webhook.
    pub(crate) deleted_id: ID,
}
