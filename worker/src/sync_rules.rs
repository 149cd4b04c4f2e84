//! IF/THEN sync rules (S13): which records sync in each direction, and which
//! fields are set on the way.
//!
//! A connector's rules are an ordered list. Each rule has a direction, its
//! conditions (all must hold; none always holds), an action (INCLUDE or
//! EXCLUDE) and, for INCLUDE, fields to set on the target side. Per direction
//! the first rule whose conditions hold decides; a record no rule matches does
//! not sync that way, unless the connector has no rule for that direction at
//! all (then everything syncs). The connector's filter and minimum score apply
//! first.
//!
//! TO_CRM conditions read platform fields (`source`, `owner_email`, custom
//! fields, ...) and set CRM fields; FROM_CRM conditions read CRM fields by api
//! name (values as the clients normalise them: picklists as labels, owners as
//! e-mails) and set platform fields. Everything here is pure:
//! [`validate_rules`] checks a list against the CRM's fields (as mapping
//! validation does), [`verdict`] evaluates it for one record.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate};
use crmsync_entity::Email;
use crmsync_entity::enums::{Lifecycle, SyncDirection};
use crmsync_entity::models::sync_rule;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crm::{CrmField, FieldType};
use crate::decide::{Decision, Rejection, Values, Write};
use crate::platform::{PLATFORM_FIELDS, platform_field};
use crate::settings::FieldError;

/// The reason code of an item a rule kept from syncing (outcome UNCHANGED).
pub const EXCLUDED_BY_RULE: &str = "EXCLUDED_BY_RULE";

/// What a rule does when its conditions hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleAction {
    /// The record syncs (with the rule's fields set).
    Include,
    /// The record does not sync in the rule's direction.
    Exclude,
}

/// How a condition compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleOperator {
    /// The field holds the value (a list field: one of its items does).
    Equals,
    /// The field does not hold the value (an empty field holds no value).
    NotEquals,
    /// The field holds one of the values (a comma list or a JSON array).
    In,
    /// The text holds the value (ignoring case); a list holds it as an item.
    Contains,
    /// The field has a value.
    IsSet,
    /// The field is empty.
    IsNotSet,
    /// A number or date at least the value.
    GreaterOrEqual,
    /// A number or date at most the value.
    LessOrEqual,
}

impl RuleOperator {
    /// The GraphQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "EQUALS",
            Self::NotEquals => "NOT_EQUALS",
            Self::In => "IN",
            Self::Contains => "CONTAINS",
            Self::IsSet => "IS_SET",
            Self::IsNotSet => "IS_NOT_SET",
            Self::GreaterOrEqual => "GREATER_OR_EQUAL",
            Self::LessOrEqual => "LESS_OR_EQUAL",
        }
    }

    fn takes_value(self) -> bool {
        !matches!(self, Self::IsSet | Self::IsNotSet)
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// A platform field (TO_CRM) or a CRM field's api name (FROM_CRM).
    pub field: String,
    /// The comparison.
    pub operator: RuleOperator,
    /// What the field is compared with; none for IS_SET and IS_NOT_SET.
    pub value: Option<String>,
}

/// A field an INCLUDE rule sets on the target side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetField {
    /// A CRM field's api name (TO_CRM) or a platform field (FROM_CRM).
    pub field: String,
    /// The value, typed for the field (a number, a boolean, a list of labels).
    pub value: Value,
}

/// A rule as stored (validated); its JSON form is camelCase with the GraphQL
/// enum names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRule {
    /// The direction it decides.
    pub direction: SyncDirection,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// INCLUDE or EXCLUDE.
    pub action: RuleAction,
    /// INCLUDE only: fields set on the target side.
    #[serde(default)]
    pub set_fields: Vec<SetField>,
}

/// A rule as a client sends it: set-field values as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRuleInput {
    /// The direction it decides.
    pub direction: SyncDirection,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// INCLUDE or EXCLUDE.
    pub action: RuleAction,
    /// Fields to set: (field, value as text).
    pub set_fields: Vec<(String, String)>,
}

/// What the rules say about one record in one direction: it syncs, with
/// these fields set on the target side, or it is excluded (why, as the
/// item's reason).
pub fn verdict<'a>(
    rules: &'a [SyncRule],
    direction: SyncDirection,
    values: &Values,
) -> Result<&'a [SetField], Rejection> {
    let mut any = false;
    for (i, rule) in rules.iter().enumerate() {
        if rule.direction != direction {
            continue;
        }
        any = true;
        if rule.conditions.iter().all(|c| holds(c, values)) {
            return match rule.action {
                RuleAction::Include => Ok(rule.set_fields.as_slice()),
                RuleAction::Exclude => Err(Rejection {
                    code: EXCLUDED_BY_RULE.into(),
                    field: Some(format!("rules[{i}]")),
                    message: format!(
                        "rule {i} (EXCLUDE) keeps it from syncing {direction}; change the rule to sync it"
                    ),
                }),
            };
        }
    }
    if !any {
        return Ok(&[][..]);
    }
    Err(Rejection {
        code: EXCLUDED_BY_RULE.into(),
        field: None,
        message: format!(
            "no {direction} rule matches it, so it does not sync {direction}; add a rule that includes it"
        ),
    })
}

/// True for the reason of an item a rule excluded: such an item is
/// UNCHANGED, not rejected.
pub fn is_exclusion(reason: Option<&Rejection>) -> bool {
    reason.is_some_and(|r| r.code == EXCLUDED_BY_RULE)
}

/// Adds an INCLUDE rule's platform fields to a platform write the decision
/// makes (a contact created or updated from the CRM); a rule causes no write
/// by itself. `current` is the contact's values, if there is a contact.
pub fn set_platform_fields(decision: &mut Decision, current: Option<&Values>, sets: &[SetField]) {
    if !matches!(decision.to_platform, Write::Create(_) | Write::Update(_)) {
        return;
    }
    for set in sets {
        let field = platform_name(&set.field).unwrap_or_else(|| set.field.clone());
        let now = current.and_then(|c| c.get(&field)).cloned();
        if now.as_ref() != Some(&set.value) {
            let now = now.or(current.map(|_| Value::Null));
            decision.set_platform_field(&field, now, set.value.clone());
        }
    }
}

/// Adds an INCLUDE rule's CRM fields to a CRM write the decision makes (a
/// record created or updated); a rule causes no write by itself. `current`
/// is what the CRM record is known to hold.
pub fn set_crm_fields(decision: &mut Decision, current: Option<&Values>, sets: &[SetField]) {
    for set in sets {
        let now = current.and_then(|c| c.get(&set.field));
        if now != Some(&set.value) {
            decision.set_crm_field(&set.field, now.cloned(), set.value.clone());
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// A field's value; a platform field written in camelCase (`ownerEmail`)
/// by its catalog name.
fn lookup<'a>(values: &'a Values, field: &str) -> &'a Value {
    values
        .get(field)
        .or_else(|| platform_name(field).and_then(|name| values.get(&name)))
        .unwrap_or(&Value::Null)
}

fn holds(condition: &Condition, values: &Values) -> bool {
    let value = lookup(values, &condition.field);
    let set = is_set(value);
    let wanted = condition.value.as_deref().unwrap_or_default();
    match condition.operator {
        RuleOperator::IsSet => set,
        RuleOperator::IsNotSet => !set,
        RuleOperator::Equals => any_item(value, |v| same(v, wanted)),
        RuleOperator::NotEquals => !any_item(value, |v| same(v, wanted)),
        RuleOperator::In => {
            let list = list_of(wanted).unwrap_or_default();
            any_item(value, |v| list.iter().any(|w| same(v, w)))
        }
        RuleOperator::Contains => match value {
            Value::Array(items) => items.iter().any(|v| same(v, wanted)),
            other => text_of(other)
                .is_some_and(|t| t.to_lowercase().contains(&wanted.trim().to_lowercase())),
        },
        RuleOperator::GreaterOrEqual => compare(value, wanted).is_some_and(|o| o != Ordering::Less),
        RuleOperator::LessOrEqual => compare(value, wanted).is_some_and(|o| o != Ordering::Greater),
    }
}

fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        _ => true,
    }
}

/// A list field's items, or the value itself.
fn any_item(value: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(test),
        Value::Null => false,
        other => test(other),
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Equality as people read it: text ignoring case and surrounding spaces
/// (picklists hold labels), numbers by value (`42` = `42.0`).
fn same(value: &Value, wanted: &str) -> bool {
    let wanted = wanted.trim();
    if let (Some(a), Ok(b)) = (number_of(value), wanted.parse::<f64>()) {
        return a == b;
    }
    text_of(value).is_some_and(|t| t.to_lowercase() == wanted.to_lowercase())
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Numbers by value, else dates (a date and a date-time compare by day).
fn compare(value: &Value, wanted: &str) -> Option<Ordering> {
    if let (Some(a), Ok(b)) = (number_of(value), wanted.trim().parse::<f64>()) {
        return a.partial_cmp(&b);
    }
    let a = text_of(value)?;
    match (date_of(&a)?, date_of(wanted.trim())?) {
        (When::At(a), When::At(b)) => Some(a.cmp(&b)),
        (a, b) => Some(a.day().cmp(&b.day())),
    }
}

enum When {
    At(DateTime<chrono::Utc>),
    Day(NaiveDate),
}

impl When {
    fn day(&self) -> NaiveDate {
        match self {
            Self::At(t) => t.date_naive(),
            Self::Day(d) => *d,
        }
    }
}

fn date_of(s: &str) -> Option<When> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(When::At(t.with_timezone(&chrono::Utc)));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(When::Day)
}

/// IN's values: a JSON array (of text, numbers or booleans) or a comma list.
fn list_of(value: &str) -> Option<Vec<String>> {
    let value = value.trim();
    let items: Vec<String> = if value.starts_with('[') {
        let parsed: Vec<Value> = serde_json::from_str(value).ok()?;
        parsed
            .iter()
            .map(|v| text_of(v).ok_or(()))
            .collect::<Result<_, ()>>()
            .ok()?
    } else {
        value.split(',').map(|s| s.trim().to_owned()).collect()
    };
    let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// A field a rule reads or sets, as validation sees it.
struct Target<'a> {
    /// The stored name (a platform field's canonical name, a CRM api name).
    name: String,
    field_type: FieldType,
    label: String,
    options: Option<&'a [crate::crm::PicklistOption]>,
}

/// Checks a whole rule list against the platform catalog and the CRM's
/// fields; returns the rules as stored (fields as written: a platform field
/// by its `platformFields` name or in camelCase; set values typed). Errors
/// name the input path
/// relative to the list (`rules[2].conditions[0].field`).
pub fn validate_rules(
    rows: &[SyncRuleInput],
    crm_fields: &[CrmField],
) -> Result<Vec<SyncRule>, FieldError> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| validate_rule(i, row, crm_fields))
        .collect()
}

fn validate_rule(
    i: usize,
    row: &SyncRuleInput,
    crm_fields: &[CrmField],
) -> Result<SyncRule, FieldError> {
    let to_crm = row.direction == SyncDirection::ToCrm;
    let mut conditions = Vec::with_capacity(row.conditions.len());
    for (j, c) in row.conditions.iter().enumerate() {
        let at = |part: &str| format!("rules[{i}].conditions[{j}].{part}");
        let target = if to_crm {
            platform_target(&c.field)
        } else {
            crm_target(&c.field, crm_fields)
        }
        .ok_or_else(|| FieldError::new(at("field"), unknown(&c.field, to_crm)))?;
        operator_fits(c.operator, &target).map_err(|m| FieldError::new(at("operator"), m))?;
        let value = c.value.as_deref().map(str::trim).filter(|v| !v.is_empty());
        match (c.operator.takes_value(), value) {
            (false, Some(_)) => {
                return Err(FieldError::new(
                    at("value"),
                    format!("{} takes no value", c.operator.as_str()),
                ));
            }
            (true, None) => {
                return Err(FieldError::new(
                    at("value"),
                    format!("{} needs a value", c.operator.as_str()),
                ));
            }
            _ => {}
        }
        // Picklist values are kept as labels (records hold labels), so an
        // option written by its stored value still matches.
        let value = value
            .map(|v| condition_value(c.operator, v, &target))
            .transpose()
            .map_err(|m| FieldError::new(at("value"), m))?;
        conditions.push(Condition {
            field: c.field.trim().to_owned(),
            operator: c.operator,
            value,
        });
    }
    if row.action == RuleAction::Exclude && !row.set_fields.is_empty() {
        return Err(FieldError::new(
            format!("rules[{i}].setFields"),
            "only an INCLUDE rule sets fields: an EXCLUDE rule syncs nothing",
        ));
    }
    let mut set_fields = Vec::with_capacity(row.set_fields.len());
    for (j, (field, value)) in row.set_fields.iter().enumerate() {
        let at = |part: &str| format!("rules[{i}].setFields[{j}].{part}");
        let value = if to_crm {
            let crm = crm_fields
                .iter()
                .find(|f| f.api_name == *field)
                .ok_or_else(|| FieldError::new(at("field"), unknown(field, false)))?;
            let typed =
                crm_set_value(crm, value).map_err(|(part, m)| FieldError::new(at(part), m))?;
            (crm.api_name.clone(), typed)
        } else {
            let name = platform_name(field)
                .ok_or_else(|| FieldError::new(at("field"), unknown(field, true)))?;
            let typed = platform_set_value(&name, value)
                .map_err(|(part, m)| FieldError::new(at(part), m))?;
            (field.trim().to_owned(), typed)
        };
        if set_fields.iter().any(|s: &SetField| s.field == value.0) {
            return Err(FieldError::new(
                at("field"),
                format!("{} is already set by this rule", value.0),
            ));
        }
        set_fields.push(SetField {
            field: value.0,
            value: value.1,
        });
    }
    Ok(SyncRule {
        direction: row.direction,
        conditions,
        action: row.action,
        set_fields,
    })
}

fn unknown(field: &str, platform: bool) -> String {
    if platform {
        format!(
            "unknown platform field \"{field}\" (see platformFields; custom fields are custom.<key>)"
        )
    } else {
        format!("the CRM has no field \"{field}\" (see crmFields)")
    }
}

/// A platform field by its `platformFields` name or its camelCase spelling
/// (`ownerEmail` for `owner_email`); the canonical name.
fn platform_name(name: &str) -> Option<String> {
    let name = name.trim();
    if platform_field(name).is_some() {
        return Some(name.to_owned());
    }
    let snake: String = name
        .chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['_', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect();
    PLATFORM_FIELDS
        .iter()
        .find(|f| f.name == snake)
        .map(|f| f.name.to_owned())
}

fn platform_target(name: &str) -> Option<Target<'static>> {
    let name = platform_name(name)?;
    let field = platform_field(&name)?;
    Some(Target {
        label: name.clone(),
        name,
        field_type: field.field_type,
        options: None,
    })
}

fn crm_target<'a>(name: &str, crm_fields: &'a [CrmField]) -> Option<Target<'a>> {
    let field = crm_fields.iter().find(|f| f.api_name == name.trim())?;
    Some(Target {
        name: field.api_name.clone(),
        field_type: field.field_type,
        label: field.label.clone(),
        options: field.options.as_deref(),
    })
}

/// Which operators a field's type takes.
fn operator_fits(operator: RuleOperator, target: &Target<'_>) -> Result<(), String> {
    use FieldType::*;
    use RuleOperator::*;
    let fits = match (target.field_type, operator) {
        (_, IsSet | IsNotSet) => true,
        // A platform custom field holds any JSON; a CRM field of another
        // type (an address, a lookup) is only ever set or not.
        (Other, _) => target.options.is_none() && target_is_platform_custom(target),
        (Lookup, _) => false,
        (Boolean, Equals | NotEquals) => true,
        (Boolean, _) => false,
        (Integer | Number | Date | DateTime, Contains) => false,
        (Integer | Number | Date | DateTime, _) => true,
        (Picklist, GreaterOrEqual | LessOrEqual | Contains) => false,
        (MultiPicklist, GreaterOrEqual | LessOrEqual) => false,
        (Text | Email | Phone | Url | User, GreaterOrEqual | LessOrEqual) => false,
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{} does not apply to {} ({})",
            operator.as_str(),
            target.label,
            target.field_type.as_str()
        ))
    }
}

fn target_is_platform_custom(target: &Target<'_>) -> bool {
    target.name.starts_with("custom.")
}

/// A condition's value must be one the field can hold; the value as stored
/// (picklist options as their labels; IN's picklist labels as a JSON array).
fn condition_value(
    operator: RuleOperator,
    value: &str,
    target: &Target<'_>,
) -> Result<String, String> {
    let values = if operator == RuleOperator::In {
        list_of(value).ok_or_else(|| {
            "IN takes a comma list or a JSON array of values, at least one".to_owned()
        })?
    } else {
        vec![value.to_owned()]
    };
    values.iter().try_for_each(|v| one_value(v, target))?;
    if !matches!(
        target.field_type,
        FieldType::Picklist | FieldType::MultiPicklist
    ) {
        return Ok(value.to_owned());
    }
    let labels: Vec<String> = values
        .iter()
        .map(|v| option_label(target, v))
        .collect::<Result<_, _>>()?;
    Ok(match operator {
        RuleOperator::In => serde_json::to_string(&labels).expect("labels serialise"),
        _ => labels.into_iter().next().unwrap_or_default(),
    })
}

fn one_value(value: &str, target: &Target<'_>) -> Result<(), String> {
    use FieldType::*;
    let name = &target.label;
    match target.field_type {
        Boolean if value.parse::<bool>().is_err() => {
            Err(format!("{name} is true or false; found \"{value}\""))
        }
        Integer | Number if value.parse::<f64>().is_err() => {
            Err(format!("{name} holds numbers; \"{value}\" is not one"))
        }
        Date | DateTime if date_of(value).is_none() => Err(format!(
            "{name} holds dates: write YYYY-MM-DD or an RFC 3339 time; found \"{value}\""
        )),
        Picklist | MultiPicklist => option_label(target, value).map(drop),
        _ => Ok(()),
    }
}

/// A picklist's label for a label or option value (ignoring case), or why not.
fn option_label(target: &Target<'_>, value: &str) -> Result<String, String> {
    let options = target.options.unwrap_or_default();
    options
        .iter()
        .find(|o| o.label == value || o.id == value)
        .or_else(|| {
            options
                .iter()
                .find(|o| o.label.eq_ignore_ascii_case(value) || o.id.eq_ignore_ascii_case(value))
        })
        .map(|o| o.label.clone())
        .ok_or_else(|| {
            let allowed: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
            format!(
                "\"{value}\" is not an option of {}; allowed values: {}",
                target.label,
                allowed.join(", ")
            )
        })
}

type Refusal = (&'static str, String);

/// The typed value a TO_CRM rule writes into a CRM field.
fn crm_set_value(crm: &CrmField, value: &str) -> Result<Value, Refusal> {
    use FieldType::*;
    if crm.read_only {
        return Err((
            "field",
            format!(
                "{} is read-only in the CRM: a rule cannot set it",
                crm.label
            ),
        ));
    }
    let target = Target {
        name: crm.api_name.clone(),
        field_type: crm.field_type,
        label: crm.label.clone(),
        options: crm.options.as_deref(),
    };
    let value = value.trim();
    let refuse = |m: String| ("value", m);
    Ok(match crm.field_type {
        Lookup | Other => {
            return Err((
                "field",
                format!(
                    "{} ({}) cannot be set by a rule",
                    crm.label,
                    crm.field_type.as_str()
                ),
            ));
        }
        Picklist => Value::String(option_label(&target, value).map_err(refuse)?),
        MultiPicklist => Value::Array(
            list_of(value)
                .unwrap_or_default()
                .iter()
                .map(|v| option_label(&target, v).map(Value::String))
                .collect::<Result<_, _>>()
                .map_err(refuse)?,
        ),
        Boolean => {
            Value::Bool(value.parse().map_err(|_| {
                refuse(format!("{} is true or false; found \"{value}\"", crm.label))
            })?)
        }
        Integer => Value::from(value.parse::<i64>().map_err(|_| {
            refuse(format!(
                "{} holds whole numbers; found \"{value}\"",
                crm.label
            ))
        })?),
        Number => serde_json::Number::from_f64(
            value
                .parse()
                .map_err(|_| refuse(format!("{} holds numbers; found \"{value}\"", crm.label)))?,
        )
        .map(Value::Number)
        .ok_or_else(|| refuse(format!("{} holds finite numbers", crm.label)))?,
        Date | DateTime => {
            one_value(value, &target).map_err(refuse)?;
            Value::String(value.to_owned())
        }
        Email | User => Value::String(
            crmsync_entity::Email::parse(value)
                .map_err(|e| refuse(format!("{}: {e}", crm.label)))?
                .into_string(),
        ),
        Text | Phone | Url => Value::String(value.to_owned()),
    })
}

/// The typed value a FROM_CRM rule writes into a platform field.
fn platform_set_value(name: &str, value: &str) -> Result<Value, Refusal> {
    let field = platform_field(name).expect("a canonical platform name");
    if field.computed || name == "email" {
        return Err((
            "field",
            format!("{name} is not set by rules: it is the identity or computed by the platform"),
        ));
    }
    let value = value.trim();
    let refuse = |m: String| ("value", m);
    Ok(match (name, field.field_type) {
        ("lifecycle", _) => Value::String(
            Lifecycle::parse(&value.to_ascii_uppercase())
                .ok_or_else(|| refuse("lifecycle is PROSPECT or CLIENT".into()))?
                .as_str()
                .to_owned(),
        ),
        (_, FieldType::Boolean) => Value::Bool(
            value
                .parse()
                .map_err(|_| refuse(format!("{name} is true or false; found \"{value}\"")))?,
        ),
        (_, FieldType::Email) => Value::String(
            Email::parse(value)
                .map_err(|e| refuse(format!("{name}: {e}")))?
                .into_string(),
        ),
        _ => Value::String(value.to_owned()),
    })
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

/// A connector's rules, in order.
pub async fn load(
    db: &impl sea_orm::ConnectionTrait,
    tenant: &crmsync_entity::TenantId,
    connector_id: &str,
) -> Result<Vec<SyncRule>, sea_orm::DbErr> {
    use crmsync_entity::TenantScoped;
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    sync_rule::Entity::for_tenant(tenant)
        .filter(sync_rule::Column::ConnectorId.eq(connector_id))
        .order_by_asc(sync_rule::Column::Position)
        .all(db)
        .await?
        .into_iter()
        .map(|row| parse(&row.rule))
        .collect()
}

/// Rules stored as JSON (a connector's row, a dry run's proposal).
pub fn parse(json: &Value) -> Result<SyncRule, sea_orm::DbErr> {
    SyncRule::deserialize(json)
        .map_err(|e| sea_orm::DbErr::Custom(format!("a stored sync rule is unreadable: {e}")))
}

/// Replaces a connector's rules with `rules`, in order.
pub async fn replace(
    db: &impl sea_orm::ConnectionTrait,
    tenant: &crmsync_entity::TenantId,
    connector_id: &str,
    rules: &[SyncRule],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
    sync_rule::Entity::delete_many()
        .filter(sync_rule::Column::TenantId.eq(tenant.as_str()))
        .filter(sync_rule::Column::ConnectorId.eq(connector_id))
        .exec(db)
        .await?;
    if rules.is_empty() {
        return Ok(());
    }
    let rows = rules
        .iter()
        .enumerate()
        .map(|(i, r)| sync_rule::ActiveModel {
            id: Set(crmsync_entity::new_id()),
            tenant_id: Set(tenant.as_str().to_owned()),
            connector_id: Set(connector_id.to_owned()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            rule: Set(serde_json::to_value(r).expect("rules serialise")),
        });
    sync_rule::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
