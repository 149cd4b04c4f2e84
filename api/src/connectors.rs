//! Connectors (C1-C5): create with sealed credentials (what the CRM's kit
//! made of the credential form: a refresh token a grant code was exchanged
//! for, an API token it proved), validated settings and default mappings;
//! update, delete, test; live CRM fields; mappings replaced as a whole (F1-F4),
//! and sync rules likewise (S13).

use std::sync::Arc;

use chrono::Utc;
use crmsync_entity::enums::{ConnectorKind, ConnectorStatus, CrmModule};
use crmsync_entity::models::{
    connector, crm_deletion, crm_link, crm_record, field_mapping, sync_checkpoint,
};
use crmsync_entity::{TenantId, TenantScoped};
use crmsync_worker::crm::kit::{ConnectEnv, Connected, CredentialsForm};
use crmsync_worker::crm::{self, CrmClient, CrmError, CrmField, CrmKit, Expectations, registry};
use crmsync_worker::platform::{self, Mapping, MappingInput};
use crmsync_worker::settings::ConnectorSettings;
use crmsync_worker::sync_rules::{self, SyncRule, SyncRuleInput};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use crate::ApiState;
use crate::audit::{self, Actor};
use crate::error::ApiError;
use crate::idempotency::{self, IdempotencyKey};
use crate::patch::Patch;

/// Credentials as a client sent them: the kind whose input they came in,
/// and the form's values.
#[derive(Debug)]
pub struct SentCredentials {
    /// The kind the input belongs to.
    pub kind: ConnectorKind,
    /// The values filled in.
    pub form: CredentialsForm,
}

impl SentCredentials {
    /// Credentials sent for `kind`.
    pub fn new(kind: ConnectorKind, form: CredentialsForm) -> Self {
        Self { kind, form }
    }
}

/// Settings as a client sends them: what is left out keeps its current (or
/// default) value; an explicit null clears the optional ones.
#[derive(Debug, Default)]
pub struct SettingsPatch {
    /// Modules imported.
    pub import_modules: Option<Vec<CrmModule>>,
    /// Filter field.
    pub filter_field: Patch<String>,
    /// Filter value.
    pub filter_value: Patch<String>,
    /// Minimum score to export.
    pub min_score_to_export: Option<i32>,
    /// Who is notified.
    pub notify_emails: Option<Vec<String>>,
    /// The schedule.
    pub schedule: Option<String>,
    /// Default owner.
    pub default_owner_email: Patch<String>,
    /// The CRM account's edition.
    pub crm_edition: Patch<String>,
    /// Calls in flight at once.
    pub max_concurrent_calls: Patch<i32>,
    /// Requests per second the account allows.
    pub max_requests_per_second: Patch<i32>,
    /// Workflow rules on our writes.
    pub run_workflows: Option<bool>,
    /// The company of created records that have none.
    pub default_company: Patch<String>,
    /// Deletions found in the CRM archive their contacts.
    pub sync_deletions: Option<bool>,
    /// A deleted record is created again after its contact changes.
    pub recreate_deleted: Option<bool>,
    /// Subscribe to the CRM's change notifications (real time).
    pub realtime: Option<bool>,
}

impl SettingsPatch {
    fn apply(self, mut base: ConnectorSettings) -> ConnectorSettings {
        if let Some(m) = self.import_modules {
            base.import_modules = m;
        }
        base.filter_field = self.filter_field.apply(base.filter_field);
        base.filter_value = self.filter_value.apply(base.filter_value);
        if let Some(s) = self.min_score_to_export {
            base.min_score_to_export = s;
        }
        if let Some(n) = self.notify_emails {
            base.notify_emails = n;
        }
        if let Some(s) = self.schedule {
            base.schedule = s;
        }
        base.default_owner_email = self.default_owner_email.apply(base.default_owner_email);
        base.crm_edition = self.crm_edition.apply(base.crm_edition);
        // A negative count is kept as 0, which validation refuses by name.
        base.max_concurrent_calls = self
            .max_concurrent_calls
            .apply(
                base.max_concurrent_calls
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            )
            .map(|n| u32::try_from(n).unwrap_or(0));
        base.max_requests_per_second = self
            .max_requests_per_second
            .apply(
                base.max_requests_per_second
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            )
            .map(|n| u32::try_from(n).unwrap_or(0));
        if let Some(run) = self.run_workflows {
            base.run_workflows = run;
        }
        base.default_company = self.default_company.apply(base.default_company);
        if let Some(on) = self.sync_deletions {
            base.sync_deletions = on;
        }
        if let Some(on) = self.recreate_deleted {
            base.recreate_deleted = on;
        }
        if let Some(on) = self.realtime {
            base.realtime = on;
        }
        base
    }

    /// Refuses turning real time on for a kind whose CRM offers no change
    /// notifications crmsync uses.
    fn check_realtime(&self, kind: ConnectorKind) -> Result<(), ApiError> {
        if self.realtime == Some(true) && !crmsync_worker::realtime::supported(kind) {
            return Err(ApiError::validation(
                "input.settings.realtime",
                format!(
                    "{kind} offers no change notifications crmsync can use: it is polled on the schedule; leave realtime out or false"
                ),
            ));
        }
        Ok(())
    }
}

/// A new connector.
#[derive(Debug)]
pub struct NewConnector {
    /// Which CRM.
    pub kind: ConnectorKind,
    /// Display name.
    pub name: String,
    /// The credentials sent (those of one kind, unless the input is wrong).
    pub credentials: Vec<SentCredentials>,
    /// Settings.
    pub settings: Option<SettingsPatch>,
    /// Base-URL override.
    pub base_url: Option<String>,
    /// Idempotency key, with the fingerprint of this input.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Changes to a connector.
#[derive(Debug, Default)]
pub struct ConnectorUpdate {
    /// New name.
    pub name: Option<String>,
    /// Sync on or off.
    pub enabled: Option<bool>,
    /// Settings changes.
    pub settings: Option<SettingsPatch>,
    /// New credentials (a fresh grant code, a new token).
    pub credentials: Vec<SentCredentials>,
    /// A new base-URL override; an empty string removes it.
    pub base_url: Option<String>,
}

/// The kit of a connector's kind; a kind not available yet is refused at
/// `field`.
pub fn kit_of(kind: ConnectorKind, field: &str) -> Result<&'static dyn CrmKit, ApiError> {
    registry::kit(kind).ok_or_else(|| ApiError::validation(field, registry::unavailable(kind)))
}

/// The module a connector's mappings and default fields refer to.
pub fn main_module(kind: ConnectorKind) -> Result<CrmModule, ApiError> {
    Ok(kit_of(kind, "kind")?.describe().export_module())
}

/// One of the tenant's connectors, or NOT_FOUND.
pub async fn find(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<connector::Model, ApiError> {
    connector::Entity::find_for_tenant(tenant, id)
        .one(&state.db)
        .await?
        .ok_or(ApiError::NotFound("connector"))
}

/// A connector's settings as stored.
pub fn settings_of(model: &connector::Model) -> Result<ConnectorSettings, ApiError> {
    serde_json::from_value(model.settings.clone())
        .map_err(|e| ApiError::Internal(format!("stored settings of {}: {e}", model.id)))
}

/// The mapping rows of a connector, in order.
pub async fn mappings_of(
    state: &ApiState,
    tenant: &TenantId,
    connector_id: &str,
) -> Result<Vec<field_mapping::Model>, ApiError> {
    Ok(field_mapping::Entity::for_tenant(tenant)
        .filter(field_mapping::Column::ConnectorId.eq(connector_id))
        .order_by_asc(field_mapping::Column::Position)
        .all(&state.db)
        .await?)
}

/// The form sent for a connector of the kit's kind; credentials sent in
/// another kind's input are refused by that input's name. `required`: a
/// missing form is refused (creation) rather than `None` (an update).
fn form_for(
    kit: &'static dyn CrmKit,
    sent: Vec<SentCredentials>,
    required: bool,
) -> Result<Option<CredentialsForm>, ApiError> {
    let described = kit.describe();
    let mut form = None;
    for credentials in sent {
        if credentials.kind == described.kind {
            form = Some(credentials.form);
            continue;
        }
        let (input, name) = registry::describe(credentials.kind)
            .map(|other| (other.credentials_input, other.display_name))
            .unwrap_or(("kind", "these"));
        return Err(ApiError::validation(
            format!("input.{input}"),
            format!(
                "{name} credentials do not belong on a {} connector",
                described.kind
            ),
        ));
    }
    if form.is_none() && required {
        return Err(ApiError::validation(
            format!("input.{}", described.credentials_input),
            described.credentials_needed,
        ));
    }
    Ok(form)
}

/// Has the kit make credentials of a form; what a person must fix is named
/// at `input.<kind's input>.<field>`.
async fn connect(
    state: &ApiState,
    kit: &'static dyn CrmKit,
    form: CredentialsForm,
    base_url: Option<&str>,
) -> Result<Connected, ApiError> {
    let input = format!("input.{}", kit.describe().credentials_input);
    let env = ConnectEnv {
        http: &state.http,
        base_url,
        metrics: &state.metrics,
    };
    kit.connect(form, env)
        .await
        .map_err(|e| ApiError::from_connect(e, &input))
}

fn validate_name(name: &str, field: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation(field, "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

fn validate_base_url(state: &ApiState, url: &str) -> Result<String, ApiError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| ApiError::validation("input.baseUrl", "must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::validation(
            "input.baseUrl",
            "must be an absolute http(s) URL",
        ));
    }
    state
        .http
        .egress()
        .check_url(url)
        .map_err(|e| ApiError::validation("input.baseUrl", e.to_string()))?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// The CRM client of a stored connector.
pub async fn client_of(
    state: &ApiState,
    model: &connector::Model,
) -> Result<Arc<dyn CrmClient>, ApiError> {
    let sealed = model.credentials.as_deref().ok_or_else(|| {
        ApiError::Conflict("the connector has no credentials: set them first".into())
    })?;
    let credentials = state
        .credentials_key
        .open(&model.tenant_id, &model.id, sealed)
        .map_err(|e| ApiError::Internal(format!("credentials of {}: {e}", model.id)))?;
    crm::client_for(
        &credentials,
        model.base_url.as_deref(),
        state.http.clone(),
        &state.metrics,
    )
    .map_err(ApiError::from_crm)
}

/// The CRM's fields for one of the connector's modules, live (F3), or at
/// most a minute old ([`crate::fields_cache`]).
pub async fn crm_fields(
    state: &ApiState,
    model: &connector::Model,
    module: CrmModule,
) -> Result<Vec<CrmField>, ApiError> {
    if !kit_of(model.kind, "kind")?.describe().has_module(module) {
        return Err(ApiError::validation(
            "module",
            format!("{module} is not a module of {}", model.kind),
        ));
    }
    let fields = state
        .fields_cache
        .fields(model, module, || async {
            let client = client_of(state, model).await?;
            client.fields(module).await.map_err(ApiError::from_crm)
        })
        .await?;
    Ok(fields.as_ref().clone())
}

/// Creates a connector: credentials sealed, settings validated, default
/// mappings from the CRM's fields. A replayed idempotency key returns the
/// first connector.
pub async fn create(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    input: NewConnector,
) -> Result<connector::Model, ApiError> {
    const OPERATION: &str = "createConnector";
    if let Some(key) = &input.idempotency_key {
        idempotency::check(&key.key)?;
        if let Some(id) = idempotency::lookup(&state.db, tenant, OPERATION, key).await? {
            return find(state, tenant, &id).await;
        }
    }
    let kit = kit_of(input.kind, "input.kind")?;
    let form = form_for(kit, input.credentials, true)?.expect("a required form is there");
    let name = validate_name(&input.name, "input.name")?;
    let base_url = input
        .base_url
        .as_deref()
        .map(|url| validate_base_url(state, url))
        .transpose()?;
    let patch = input.settings.unwrap_or_default();
    patch.check_realtime(input.kind)?;
    let settings = patch
        .apply(ConnectorSettings::defaults_for(kit.describe()))
        .validate_with(kit.describe(), state.schedule_min_interval)
        .map_err(|e| ApiError::from_field_error("input.settings", e))?;

    // Only now the CRM: everything a person can fix is checked first, because
    // a grant code works once.
    let Connected {
        credentials,
        fields,
    } = connect(state, kit, form, base_url.as_deref()).await?;
    let mappings = platform::default_mappings(kit.describe(), &fields);

    let id = crmsync_entity::new_id();
    let now = Utc::now();
    let sealed = state
        .credentials_key
        .seal(tenant.as_str(), &id, &credentials);
    let names: Vec<&str> = credentials.names_set();
    let txn = state.db.begin().await?;
    let model = connector::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        kind: Set(input.kind),
        name: Set(name.clone()),
        status: Set(ConnectorStatus::Connected),
        status_message: Set(None),
        enabled: Set(true),
        settings: Set(serde_json::to_value(&settings).expect("settings serialise")),
        credentials: Set(Some(sealed)),
        credentials_set: Set(serde_json::json!(names)),
        base_url: Set(base_url.clone()),
        full_resync_recommended: Set(false),
        next_sync_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    insert_mappings(&txn, tenant, &id, &mappings).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "connector.create",
        "connector",
        &id,
        serde_json::json!({ "kind": input.kind.as_str(), "name": name, "baseUrl": base_url }),
    )
    .await?;
    if let Some(key) = &input.idempotency_key {
        idempotency::remember(&txn, tenant, OPERATION, key, &id).await?;
    }
    txn.commit().await?;
    Ok(model)
}

async fn insert_mappings(
    db: &impl sea_orm::ConnectionTrait,
    tenant: &TenantId,
    connector_id: &str,
    mappings: &[Mapping],
) -> Result<(), ApiError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let rows = mappings
        .iter()
        .enumerate()
        .map(|(i, m)| field_mapping::ActiveModel {
            id: Set(crmsync_entity::new_id()),
            tenant_id: Set(tenant.as_str().to_owned()),
            connector_id: Set(connector_id.to_owned()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            platform_field: Set(m.platform_field.clone()),
            crm_field: Set(m.crm_field.clone()),
            direction: Set(m.direction),
            enabled: Set(m.enabled),
            locked: Set(m.locked),
        });
    field_mapping::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Applies changes to a connector.
pub async fn update(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    input: ConnectorUpdate,
) -> Result<connector::Model, ApiError> {
    let model = find(state, tenant, id).await?;
    let kit = kit_of(model.kind, "input.id")?;
    let form = form_for(kit, input.credentials, false)?;
    let mut changed = Vec::new();
    let mut row = connector::ActiveModel::from(model.clone());
    if let Some(name) = &input.name {
        row.name = Set(validate_name(name, "input.name")?);
        changed.push("name");
    }
    if let Some(patch) = input.settings {
        patch.check_realtime(model.kind)?;
        let before = settings_of(&model)?;
        let settings = patch
            .apply(before.clone())
            .validate_with(kit.describe(), state.schedule_min_interval)
            .map_err(|e| ApiError::from_field_error("input.settings", e))?;
        // A new schedule is planned afresh from now by the scheduler.
        if settings.schedule != before.schedule {
            row.next_sync_at = Set(None);
        }
        row.settings = Set(serde_json::to_value(&settings).expect("settings serialise"));
        changed.push("settings");
    }
    // The new base URL comes first: new credentials are checked (a grant code
    // exchanged) there.
    let mut base_url = model.base_url.clone();
    if let Some(url) = &input.base_url {
        base_url = (!url.is_empty())
            .then(|| validate_base_url(state, url))
            .transpose()?;
        if base_url != model.base_url {
            row.base_url = Set(base_url.clone());
            changed.push("baseUrl");
        }
    }
    let other_crm = base_url != model.base_url;
    // The credentials go last, once everything else has passed: a grant code
    // works once.
    let credentials = match form {
        Some(form) => Some(
            connect(state, kit, form, base_url.as_deref())
                .await?
                .credentials,
        ),
        None => None,
    };
    if let Some(credentials) = credentials {
        row.credentials = Set(Some(state.credentials_key.seal(
            tenant.as_str(),
            id,
            &credentials,
        )));
        row.credentials_set = Set(serde_json::json!(credentials.names_set()));
        // New credentials heal NEEDS_REAUTH and ERROR, but do not switch a disabled connector on.
        row.status = Set(if model.enabled {
            ConnectorStatus::Connected
        } else {
            ConnectorStatus::Disabled
        });
        row.status_message = Set(None);
        changed.push("credentials");
    }
    if let Some(enabled) = input.enabled {
        row.enabled = Set(enabled);
        if !enabled {
            row.status = Set(ConnectorStatus::Disabled);
        } else if model.status == ConnectorStatus::Disabled {
            row.status = Set(ConnectorStatus::Connected);
        }
        changed.push("enabled");
    }
    if changed.is_empty() {
        return Ok(model);
    }
    row.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    let saved = row.update(&txn).await?;
    if other_crm {
        forget_sync_state(&txn, tenant, id).await?;
    }
    audit::record(
        &txn,
        tenant,
        actor,
        "connector.update",
        "connector",
        id,
        serde_json::json!({ "changed": changed }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Forgets what a connector knew of the CRM at its previous base URL: its links
/// (contacts are matched by e-mail again), its index of CRM records and its
/// checkpoints (the next run reads everything) and the deletions it found.
/// Runs and mappings stay.
async fn forget_sync_state(
    txn: &sea_orm::DatabaseTransaction,
    tenant: &TenantId,
    connector_id: &str,
) -> Result<(), ApiError> {
    crm_link::Entity::delete_many()
        .filter(crm_link::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_link::Column::ConnectorId.eq(connector_id))
        .exec(txn)
        .await?;
    crm_record::Entity::delete_many()
        .filter(crm_record::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_record::Column::ConnectorId.eq(connector_id))
        .exec(txn)
        .await?;
    sync_checkpoint::Entity::delete_many()
        .filter(sync_checkpoint::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_checkpoint::Column::ConnectorId.eq(connector_id))
        .exec(txn)
        .await?;
    crm_deletion::Entity::delete_many()
        .filter(crm_deletion::Column::TenantId.eq(tenant.as_str()))
        .filter(crm_deletion::Column::ConnectorId.eq(connector_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Deletes a connector with its mappings, links, runs and items.
pub async fn delete(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
) -> Result<(), ApiError> {
    let model = find(state, tenant, id).await?;
    // The CRM stops notifying first (its subscription row goes with the
    // connector).
    state.realtime().forget(&model).await?;
    let txn = state.db.begin().await?;
    connector::Entity::delete_many()
        .filter(connector::Column::TenantId.eq(tenant.as_str()))
        .filter(connector::Column::Id.eq(&model.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "connector.delete",
        "connector",
        id,
        serde_json::json!({ "kind": model.kind.as_str(), "name": model.name }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Tests the connection (C3) and records the connector's status.
pub async fn test(
    state: &ApiState,
    tenant: &TenantId,
    id: &str,
) -> Result<(bool, String), ApiError> {
    let model = find(state, tenant, id).await?;
    let settings = settings_of(&model)?;
    let platform_link_field = mappings_of(state, tenant, id)
        .await?
        .into_iter()
        .find(|m| m.enabled && m.platform_field == "platform_url")
        .map(|m| m.crm_field);
    let expect = Expectations {
        modules: settings.import_modules,
        filter_field: settings.filter_field,
        filter_value: settings.filter_value,
        platform_link_field,
    };
    let client = client_of(state, &model).await?;
    let (ok, message, status) = match client.check(&expect).await {
        Ok(check) => (
            check.ok,
            check.message,
            if check.ok {
                ConnectorStatus::Connected
            } else {
                ConnectorStatus::Error
            },
        ),
        Err(CrmError::Unauthorized(_)) => (
            false,
            kit_of(model.kind, "id")?.refused_credentials(),
            ConnectorStatus::NeedsReauth,
        ),
        Err(e @ (CrmError::RateLimited { .. } | CrmError::DailyLimit(_))) => {
            return Err(ApiError::from_crm(e));
        }
        Err(e) => {
            tracing::warn!(connector_id = id, error = %e, "connection test failed");
            (
                false,
                "the CRM could not be reached or answered unexpectedly; try again later".to_owned(),
                ConnectorStatus::Error,
            )
        }
    };
    if model.enabled
        && (model.status != status || model.status_message.as_deref() != Some(&message))
    {
        let mut row = connector::ActiveModel::from(model);
        row.status = Set(status);
        row.status_message = Set((!ok).then(|| message.clone()));
        row.update(&state.db).await?;
    }
    Ok((ok, message))
}

/// Checks a whole mapping list against the connector's CRM's live fields
/// (F1-F4): for `setFieldMappings`, and for the mappings a dry run previews,
/// so both refuse the same rows with the same `input.mappings[i]...` fields.
pub async fn validate_mappings(
    state: &ApiState,
    model: &connector::Model,
    rows: &[MappingInput],
) -> Result<Vec<Mapping>, ApiError> {
    let fields = crm_fields(state, model, main_module(model.kind)?).await?;
    platform::validate_mappings(rows, &fields).map_err(|e| ApiError::from_field_error("input", e))
}

/// Replaces a connector's mappings, validated as a whole against the CRM's
/// live fields; marks a full resync as recommended.
pub async fn set_mappings(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    rows: Vec<MappingInput>,
) -> Result<connector::Model, ApiError> {
    let model = find(state, tenant, id).await?;
    let mappings = validate_mappings(state, &model, &rows).await?;
    let txn = state.db.begin().await?;
    field_mapping::Entity::delete_many()
        .filter(field_mapping::Column::TenantId.eq(tenant.as_str()))
        .filter(field_mapping::Column::ConnectorId.eq(id))
        .exec(&txn)
        .await?;
    insert_mappings(&txn, tenant, id, &mappings).await?;
    let mut row = connector::ActiveModel::from(model);
    row.full_resync_recommended = Set(true);
    row.updated_at = Set(Utc::now());
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "mappings.set",
        "connector",
        id,
        serde_json::json!({
            "mappings": mappings.iter().map(|m| serde_json::json!({
                "platformField": m.platform_field,
                "crmField": m.crm_field,
                "direction": m.direction.as_str(),
                "enabled": m.enabled,
            })).collect::<Vec<_>>()
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Checks a whole sync rule list (S13) against the connector's CRM's live
/// fields: for `setSyncRules`, and for the rules a dry run previews, so both
/// refuse the same rules with the same fields, named from the rule list as
/// the issue that introduced them names them: `rules[2].conditions[0].field`.
pub async fn validate_rules(
    state: &ApiState,
    model: &connector::Model,
    rows: &[SyncRuleInput],
) -> Result<Vec<SyncRule>, ApiError> {
    let fields = crm_fields(state, model, main_module(model.kind)?).await?;
    sync_rules::validate_rules(rows, &fields).map_err(|e| ApiError::validation(e.field, e.message))
}

/// Replaces a connector's sync rules, validated as a whole against the
/// CRM's live fields; marks a full resync as recommended (the rules decide
/// what syncs, as mappings decide what flows).
pub async fn set_rules(
    state: &ApiState,
    tenant: &TenantId,
    actor: &Actor,
    id: &str,
    rows: Vec<SyncRuleInput>,
) -> Result<connector::Model, ApiError> {
    let model = find(state, tenant, id).await?;
    let rules = validate_rules(state, &model, &rows).await?;
    let txn = state.db.begin().await?;
    sync_rules::replace(&txn, tenant, id, &rules).await?;
    let mut row = connector::ActiveModel::from(model);
    row.full_resync_recommended = Set(true);
    row.updated_at = Set(Utc::now());
    let saved = row.update(&txn).await?;
    audit::record(
        &txn,
        tenant,
        actor,
        "rules.set",
        "connector",
        id,
        serde_json::json!({ "rules": rules }),
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}
