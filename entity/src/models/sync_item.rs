//! Every contact a run touched, with its outcome and, when rejected, why (R2).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{ItemOutcome, SyncDirection};

/// A sync item.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_items")]
pub struct Model {
    /// ULID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The run.
    pub run_id: String,
    /// The connector.
    pub connector_id: String,
    /// Which leg.
    pub direction: SyncDirection,
    /// What happened.
    pub outcome: ItemOutcome,
    /// The e-mail as seen, when there was one.
    pub email: Option<String>,
    /// The platform contact, when there is one.
    pub contact_id: Option<String>,
    /// The CRM record, when there is one.
    pub crm_record_id: Option<String>,
    /// MISSING_EMAIL, MISSING_NAME, INVALID_PICKLIST_VALUE, ...; on an
    /// UNCHANGED item, why nothing was written (ARCHIVED_IN_PLATFORM).
    pub reason_code: Option<String>,
    /// The field at fault.
    pub field: Option<String>,
    /// What a person can do about it.
    pub message: Option<String>,
    /// The fields the run changed (a dry run: would change) on the item's
    /// target side, as a JSON list of [`FieldChange`]; null when none.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub changes: Option<Json>,
    /// When it was recorded.
    pub created_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

super::tenant_scoped!(Entity, Column);

/// One field a run changed on the item's target side (S6, R2): the CRM's
/// value on a TO_CRM item, the platform's on a FROM_CRM item. Stored lean in
/// [`Model::changes`]: empty values, `false` and the direction (the item's)
/// are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// The platform field; for a CRM with one name field the
    /// name parts sent together, joined with ` + `.
    pub platform_field: String,
    /// The CRM field; `None` for the record's module, which follows the
    /// platform lifecycle (S10: a lead converted to a contact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_field: Option<String>,
    /// The side whose value changes: TO_CRM, the CRM's; FROM_CRM, the platform's.
    #[serde(skip, default = "to_crm")]
    pub direction: SyncDirection,
    /// The value before, as that side held it (null: none, or a creation).
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub from: Json,
    /// The value after, as that side holds it.
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub to: Json,
    /// Changed on both sides since the last sync; this side's value lost to
    /// the side modified last (S6).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

fn to_crm() -> SyncDirection {
    SyncDirection::ToCrm
}

impl FieldChange {
    /// The stored form of one item's changes (all in the item's direction),
    /// as the JSON text a page's insert binds; `None` (null) for none.
    pub fn to_text(changes: &[FieldChange]) -> Option<String> {
        FieldChangeRef::to_text(changes.iter().map(FieldChange::as_ref))
    }

    /// The change, borrowed.
    pub fn as_ref(&self) -> FieldChangeRef<'_> {
        FieldChangeRef {
            platform_field: &self.platform_field,
            crm_field: self.crm_field.as_deref(),
            from: &self.from,
            to: &self.to,
            conflict: self.conflict,
        }
    }
}

/// A [`FieldChange`] borrowed from what made it (the direction is the
/// item's): a page's items are serialised from their decisions without a
/// copy of every value. It serialises to the same stored form.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChangeRef<'a> {
    /// [`FieldChange::platform_field`].
    pub platform_field: &'a str,
    /// [`FieldChange::crm_field`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_field: Option<&'a str>,
    /// [`FieldChange::from`].
    #[serde(skip_serializing_if = "is_null")]
    pub from: &'a Json,
    /// [`FieldChange::to`].
    #[serde(skip_serializing_if = "is_null")]
    pub to: &'a Json,
    /// [`FieldChange::conflict`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

fn is_null(value: &&Json) -> bool {
    value.is_null()
}

impl FieldChangeRef<'_> {
    /// The stored form of one item's changes, as [`FieldChange::to_text`].
    pub fn to_text<'a>(changes: impl IntoIterator<Item = FieldChangeRef<'a>>) -> Option<String> {
        let changes: Vec<FieldChangeRef<'a>> = changes.into_iter().collect();
        (!changes.is_empty())
            .then(|| serde_json::to_string(&changes).expect("field changes serialise"))
    }

    /// The change, owned, in this direction.
    pub fn to_owned(&self, direction: SyncDirection) -> FieldChange {
        FieldChange {
            platform_field: self.platform_field.to_owned(),
            crm_field: self.crm_field.map(str::to_owned),
            direction,
            from: self.from.clone(),
            to: self.to.clone(),
            conflict: self.conflict,
        }
    }
}

impl Model {
    /// The item's field changes, in its direction; none when the column is
    /// null or unreadable.
    pub fn field_changes(&self) -> Vec<FieldChange> {
        let Some(stored) = &self.changes else {
            return Vec::new();
        };
        let mut changes = Vec::<FieldChange>::deserialize(stored).unwrap_or_default();
        for change in &mut changes {
            change.direction = self.direction;
        }
        changes
    }
}
