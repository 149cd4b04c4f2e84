//! Mutation inputs, converted into the services' types.

use async_graphql::{ID, InputObject, Json, MaybeUndefined};

use super::types::{
    CrmModule, MappingDirection, Role, RuleOperator, SyncDirection, SyncMode, SyncRuleAction,
};
use crate::connectors::SettingsPatch;
use crate::contacts::ContactUpsert;
use crate::webhooks::{NewWebhook, WebhookUpdate};
use crmsync_worker::platform::MappingInput;
use crmsync_worker::sync_rules::{self, SyncRuleInput as RuleInput};

/// A new tenant.
#[derive(InputObject)]
pub(crate) struct CreateTenantInput {
    /// Display name.
    pub(crate) name: String,
    /// Unique handle: lower-case letters, digits and '-'.
    pub(crate) slug: String,
    /// How long its history is kept; each value left out is the default
    /// (30 days of sync items and deliveries, 365 of audit rows).
    pub(crate) retention: Option<RetentionInput>,
}

/// How long a tenant's history is kept, in days (1 to 3650 each). A value
/// left out keeps the current one. Older rows are deleted by the pruner;
/// every run keeps its summary and its first rejected items, and each
/// connector's latest run keeps all its rejected items.
#[derive(InputObject, Clone, Copy)]
pub(crate) struct RetentionInput {
    /// Days a finished run's items are kept.
    pub(crate) sync_items_days: Option<i32>,
    /// Days a sent or given-up delivery (webhook call, summary e-mail) is kept.
    pub(crate) deliveries_days: Option<i32>,
    /// Days audit entries and consent events are kept (each contact's latest
    /// consent event stays).
    pub(crate) audit_days: Option<i32>,
}

impl From<RetentionInput> for crate::tenants::RetentionPatch {
    fn from(i: RetentionInput) -> Self {
        Self {
            sync_items_days: i.sync_items_days,
            deliveries_days: i.deliveries_days,
            audit_days: i.audit_days,
        }
    }
}

/// A new API key.
#[derive(InputObject)]
pub(crate) struct CreateApiKeyInput {
    /// What it is for.
    pub(crate) name: String,
    /// ADMIN or VIEWER.
    pub(crate) role: Role,
}

/// The key to revoke.
#[derive(InputObject)]
pub(crate) struct RevokeApiKeyInput {
    /// Its id.
    pub(crate) id: ID,
}

/// Settings; what is left out keeps its value, an explicit null clears the optional ones.
#[derive(InputObject, Default)]
pub(crate) struct ConnectorSettingsInput {
    /// CRM modules to import: those of the connector's kind (see ConnectorKind).
    pub(crate) import_modules: Option<Vec<CrmModule>>,
    /// The CRM field a record must carry to be imported (e.g. sync_to_plezi).
    pub(crate) filter_field: MaybeUndefined<String>,
    /// The value it must hold (e.g. yes).
    pub(crate) filter_value: MaybeUndefined<String>,
    /// Contacts scoring below this are not exported (default 0).
    pub(crate) min_score_to_export: Option<i32>,
    /// Who is told after each run.
    pub(crate) notify_emails: Option<Vec<String>>,
    /// When the connector syncs by itself: "every 2h" (the default),
    /// "every 30m", "every 1d", or a cron expression in UTC ("0 */2 * * *";
    /// 6 fields for seconds); at least a minute apart unless the operator
    /// allows less.
    pub(crate) schedule: Option<String>,
    /// Owner of records whose owner matches no CRM user.
    pub(crate) default_owner_email: MaybeUndefined<String>,
    /// The CRM account's edition, for CRMs whose editions set how many calls
    /// run at once (see ConnectorKind for the editions of each).
    pub(crate) crm_edition: MaybeUndefined<String>,
    /// Calls in flight at once against the CRM (1-50); overrides the edition's.
    pub(crate) max_concurrent_calls: MaybeUndefined<i32>,
    /// Requests per second the CRM account allows (1-1000), where its vendor
    /// raised the documented limit, for CRMs paced per second (see
    /// ConnectorKind); unset: the documented limit.
    pub(crate) max_requests_per_second: MaybeUndefined<i32>,
    /// Let the CRM run its workflow rules on the records we write (default
    /// false; for CRMs that have them, see ConnectorKind).
    pub(crate) run_workflows: Option<bool>,
    /// The company a record created in the CRM gets when the contact has
    /// none, for CRMs that require one (a lead's company, see ConnectorKind); when
    /// unset such a contact is rejected, naming the field.
    pub(crate) default_company: MaybeUndefined<String>,
    /// A CRM record found deleted archives its platform contact too
    /// (default false: only the link is removed; nothing is ever deleted).
    pub(crate) sync_deletions: Option<bool>,
    /// A contact whose CRM record was deleted, changed afterwards, creates
    /// the record again (default false: the export rejects it with reason
    /// DELETED_IN_CRM).
    pub(crate) recreate_deleted: Option<bool>,
    /// Real time: subscribe to the CRM's change notifications, so a CRM
    /// change reaches the platform within seconds, or, for a CRM that pushes
    /// none crmsync can use, look for changes every minute (default true
    /// where the CRM has either, see Connector.realtime); the schedule keeps
    /// polling either way.
    pub(crate) realtime: Option<bool>,
}

impl From<ConnectorSettingsInput> for SettingsPatch {
    fn from(i: ConnectorSettingsInput) -> Self {
        Self {
            import_modules: i
                .import_modules
                .map(|m| m.into_iter().map(Into::into).collect()),
            filter_field: i.filter_field.into(),
            filter_value: i.filter_value.into(),
            min_score_to_export: i.min_score_to_export,
            notify_emails: i.notify_emails,
            schedule: i.schedule,
            default_owner_email: i.default_owner_email.into(),
            crm_edition: i.crm_edition.into(),
            max_concurrent_calls: i.max_concurrent_calls.into(),
            max_requests_per_second: i.max_requests_per_second.into(),
            run_workflows: i.run_workflows,
            default_company: i.default_company.into(),
            sync_deletions: i.sync_deletions,
            recreate_deleted: i.recreate_deleted,
            realtime: i.realtime,
        }
    }
}

/// The connector to delete.
#[derive(InputObject)]
pub(crate) struct DeleteConnectorInput {
    /// Its id.
    pub(crate) id: ID,
}

/// The contact to archive.
#[derive(InputObject)]
pub(crate) struct ArchiveContactInput {
    /// Its id.
    pub(crate) id: ID,
}

/// The contact to unarchive.
#[derive(InputObject)]
pub(crate) struct UnarchiveContactInput {
    /// Its id.
    pub(crate) id: ID,
}

/// The connector to test.
#[derive(InputObject)]
pub(crate) struct TestConnectorInput {
    /// Its id.
    pub(crate) id: ID,
}

/// One mapping row.
#[derive(InputObject)]
pub(crate) struct FieldMappingInput {
    /// Platform field name (see platformFields; custom ones are custom.<key>).
    pub(crate) platform_field: String,
    /// CRM field api name or key (see Connector.crmFields).
    pub(crate) crm_field: String,
    /// Which way it flows.
    pub(crate) direction: MappingDirection,
    /// Synced or kept aside.
    pub(crate) enabled: bool,
}

impl From<FieldMappingInput> for MappingInput {
    fn from(m: FieldMappingInput) -> Self {
        Self {
            platform_field: m.platform_field,
            crm_field: m.crm_field,
            direction: m.direction.into(),
            enabled: m.enabled,
        }
    }
}

/// The whole mapping list of a connector.
#[derive(InputObject)]
pub(crate) struct SetFieldMappingsInput {
    /// The connector.
    pub(crate) connector_id: ID,
    /// The rows, in order; they replace the current list.
    pub(crate) mappings: Vec<FieldMappingInput>,
}

/// One condition of a sync rule.
#[derive(InputObject)]
pub(crate) struct RuleConditionInput {
    /// TO_CRM rules: a platform field (see platformFields; `ownerEmail` is
    /// read as `owner_email`; custom ones are custom.<key>). FROM_CRM rules:
    /// a CRM field's api name (see Connector.crmFields).
    pub(crate) field: String,
    /// The comparison; it must fit the field's type.
    pub(crate) operator: RuleOperator,
    /// The value compared with (IN: a comma list or a JSON array; a
    /// picklist: option labels); left out for IS_SET and IS_NOT_SET.
    pub(crate) value: Option<String>,
}

/// A field an INCLUDE rule sets on the target side.
#[derive(InputObject)]
pub(crate) struct RuleSetFieldInput {
    /// TO_CRM rules: a CRM field's api name, mapped or not, not read-only.
    /// FROM_CRM rules: a platform field that is neither the e-mail nor computed.
    pub(crate) field: String,
    /// The value as text: `true`, `42`, a picklist label, a multi-select's
    /// labels as a comma list or JSON array.
    pub(crate) value: String,
}

/// One IF/THEN sync rule (S13).
#[derive(InputObject)]
pub(crate) struct SyncRuleInput {
    /// The direction it decides.
    pub(crate) direction: SyncDirection,
    /// All must hold; an empty list always holds.
    #[graphql(default)]
    pub(crate) conditions: Vec<RuleConditionInput>,
    /// INCLUDE or EXCLUDE.
    pub(crate) action: SyncRuleAction,
    /// INCLUDE only: fields set on every write the sync makes for the record.
    #[graphql(default)]
    pub(crate) set_fields: Vec<RuleSetFieldInput>,
}

impl From<SyncRuleInput> for RuleInput {
    fn from(r: SyncRuleInput) -> Self {
        Self {
            direction: r.direction.into(),
            conditions: r
                .conditions
                .into_iter()
                .map(|c| sync_rules::Condition {
                    field: c.field,
                    operator: c.operator.into(),
                    value: c.value,
                })
                .collect(),
            action: r.action.into(),
            set_fields: r
                .set_fields
                .into_iter()
                .map(|f| (f.field, f.value))
                .collect(),
        }
    }
}

/// The whole rule list of a connector.
#[derive(InputObject)]
pub(crate) struct SetSyncRulesInput {
    /// The connector.
    pub(crate) connector_id: ID,
    /// The rules, in order; they replace the current list (an empty list
    /// removes them all: everything syncs).
    pub(crate) rules: Vec<SyncRuleInput>,
}

/// A contact by e-mail: fields left out are kept, an explicit null clears.
#[derive(InputObject)]
pub(crate) struct UpsertContactInput {
    /// The identity (trimmed, compared case-insensitively).
    pub(crate) email: String,
    /// First name.
    pub(crate) first_name: MaybeUndefined<String>,
    /// Last name.
    pub(crate) last_name: MaybeUndefined<String>,
    /// Company.
    pub(crate) company: MaybeUndefined<String>,
    /// Phone.
    pub(crate) phone: MaybeUndefined<String>,
    /// Job title.
    pub(crate) job_title: MaybeUndefined<String>,
    /// Where the contact came from.
    pub(crate) source: MaybeUndefined<String>,
    /// Behaviour score (not negative; null resets to 0).
    pub(crate) behaviour_score: MaybeUndefined<i32>,
    /// Marketing state.
    pub(crate) state: MaybeUndefined<String>,
    /// PROSPECT or CLIENT (null resets to PROSPECT).
    pub(crate) lifecycle: MaybeUndefined<String>,
    /// Opted out of e-mail (null resets to false).
    pub(crate) opted_out: MaybeUndefined<bool>,
    /// E-mail of the owning sales person.
    pub(crate) owner_email: MaybeUndefined<String>,
    /// Custom fields: a JSON object with lower-case keys (null empties them).
    pub(crate) custom_fields: MaybeUndefined<Json<serde_json::Value>>,
}

impl From<UpsertContactInput> for ContactUpsert {
    fn from(i: UpsertContactInput) -> Self {
        Self {
            email: i.email,
            first_name: i.first_name.into(),
            last_name: i.last_name.into(),
            company: i.company.into(),
            phone: i.phone.into(),
            job_title: i.job_title.into(),
            source: i.source.into(),
            behaviour_score: i.behaviour_score.into(),
            state: i.state.into(),
            lifecycle: i.lifecycle.into(),
            opted_out: i.opted_out.into(),
            owner_email: i.owner_email.into(),
            custom_fields: i.custom_fields.map_value(|j| j.0).into(),
        }
    }
}

/// A form submission.
#[derive(InputObject)]
pub(crate) struct SubmitFormInput {
    /// The form's name.
    pub(crate) form: String,
    /// The contact it submitted.
    pub(crate) contact: UpsertContactInput,
}

/// A run to start.
#[derive(InputObject)]
pub(crate) struct StartSyncInput {
    /// The connector.
    pub(crate) connector_id: ID,
    /// Incremental (default), full or dry run. A dry run reads from the
    /// checkpoints as the next incremental run would, and saves none.
    #[graphql(default_with = "SyncMode::Incremental")]
    pub(crate) mode: SyncMode,
    /// Replays within 24 h return the first run.
    pub(crate) idempotency_key: Option<String>,
    /// A mapping change to preview, with mode DRY_RUN only: the whole list,
    /// validated as setFieldMappings validates it, used by this run instead
    /// of the connector's, and saved nowhere else. Such a dry run reads
    /// everything (as the full resync a mapping change calls for) and never
    /// joins a run already queued or running.
    pub(crate) mappings: Option<Vec<FieldMappingInput>>,
    /// A sync rule change to preview, with mode DRY_RUN only: the whole
    /// list, validated as setSyncRules validates it, used by this run
    /// instead of the connector's, and saved nowhere else. Like proposed
    /// mappings, such a dry run reads everything.
    pub(crate) rules: Option<Vec<SyncRuleInput>>,
}

/// A run to cancel.
#[derive(InputObject)]
pub(crate) struct CancelSyncInput {
    /// The run.
    pub(crate) run_id: ID,
}

/// A run whose rejected contacts to retry.
#[derive(InputObject)]
pub(crate) struct RetryRejectedInput {
    /// The run.
    pub(crate) run_id: ID,
}

/// A new webhook.
#[derive(InputObject)]
pub(crate) struct CreateWebhookInput {
    /// Where events are POSTed: an http:// or https:// URL.
    pub(crate) url: String,
    /// The events to receive (`sync.started`, `sync.finished`); left out: all.
    pub(crate) events: Option<Vec<String>>,
    /// What it is for (at most 500 characters).
    pub(crate) description: Option<String>,
}

impl From<CreateWebhookInput> for NewWebhook {
    fn from(i: CreateWebhookInput) -> Self {
        Self {
            url: i.url,
            events: i.events,
            description: i.description,
        }
    }
}

/// Changes to a webhook; what is left out keeps its value.
#[derive(InputObject)]
pub(crate) struct UpdateWebhookInput {
    /// The webhook.
    pub(crate) id: ID,
    /// A new http:// or https:// URL.
    pub(crate) url: Option<String>,
    /// The events to receive (`sync.started`, `sync.finished`).
    pub(crate) events: Option<Vec<String>>,
    /// On or off: a disabled webhook gets no new deliveries, and its pending
    /// ones are given up.
    pub(crate) enabled: Option<bool>,
    /// A new description; null clears it.
    pub(crate) description: MaybeUndefined<String>,
}

impl From<UpdateWebhookInput> for WebhookUpdate {
    fn from(i: UpdateWebhookInput) -> Self {
        Self {
            url: i.url,
            events: i.events,
            enabled: i.enabled,
            description: i.description.into(),
        }
    }
}

/// The webhook to delete.
#[derive(InputObject)]
pub(crate) struct DeleteWebhookInput {
    /// Its id.
    pub(crate) id: ID,
}

/// The webhook whose signing secret to replace.
#[derive(InputObject)]
pub(crate) struct RotateWebhookSecretInput {
    /// Its id.
    pub(crate) id: ID,
}
