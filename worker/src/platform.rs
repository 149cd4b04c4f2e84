//! The platform's side of a mapping: its field catalog (P1), a new connector's
//! default mappings from its kit's candidates (F2, F6), and the rules a
//! mapping list must follow (F1-F4).

use std::collections::HashSet;

use crmsync_entity::enums::MappingDirection;

use crate::crm::{CrmField, Description, FieldType};
use crate::settings::FieldError;

/// A platform contact field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformField {
    /// Its name in mappings (`email`, `behaviour_score`, `custom.<key>`).
    pub name: &'static str,
    /// Its type.
    pub field_type: FieldType,
    /// Computed by the platform: may only flow TO_CRM (F2).
    pub computed: bool,
    /// Mapped by default and locked (F2).
    pub mandatory: bool,
}

const fn field(
    name: &'static str,
    field_type: FieldType,
    computed: bool,
    mandatory: bool,
) -> PlatformField {
    PlatformField {
        name,
        field_type,
        computed,
        mandatory,
    }
}

/// Every built-in platform field. Custom fields are `custom.<key>` (lower-case
/// letters, digits, `_`), of any type, holding JSON.
pub const PLATFORM_FIELDS: &[PlatformField] = &[
    field("email", FieldType::Email, false, true),
    field("first_name", FieldType::Text, false, true),
    field("last_name", FieldType::Text, false, true),
    field("company", FieldType::Text, false, false),
    field("phone", FieldType::Phone, false, false),
    field("job_title", FieldType::Text, false, false),
    field("source", FieldType::Text, false, false),
    field("behaviour_score", FieldType::Integer, true, false),
    field("state", FieldType::Text, true, false),
    field("lifecycle", FieldType::Text, false, false),
    field("opted_out", FieldType::Boolean, false, false),
    field("owner_email", FieldType::Email, false, false),
    field("platform_url", FieldType::Url, true, false),
];

/// A platform field by name; custom fields get type `Other` (they hold any JSON).
pub fn platform_field(name: &str) -> Option<PlatformField> {
    if let Some(field) = PLATFORM_FIELDS.iter().find(|f| f.name == name) {
        return Some(*field);
    }
    let key = name.strip_prefix("custom.")?;
    let valid = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(PlatformField {
        name: "custom",
        field_type: FieldType::Other,
        computed: false,
        mandatory: false,
    })
}

/// A mapping row (F1); its JSON form (a dry run's proposed mappings) is
/// camelCase with the directions' GraphQL names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// Platform field name.
    pub platform_field: String,
    /// CRM field api name or key.
    pub crm_field: String,
    /// Which way it flows.
    pub direction: MappingDirection,
    /// Synced or kept aside.
    pub enabled: bool,
    /// Mandatory: cannot be removed or disabled.
    pub locked: bool,
}

impl Mapping {
    /// True when values flow from the platform to the CRM.
    pub fn to_crm(&self) -> bool {
        self.enabled
            && matches!(
                self.direction,
                MappingDirection::ToCrm | MappingDirection::Both
            )
    }

    /// True when values flow from the CRM to the platform.
    pub fn from_crm(&self) -> bool {
        self.enabled
            && matches!(
                self.direction,
                MappingDirection::FromCrm | MappingDirection::Both
            )
    }
}

/// Default mappings for a new connector: the mandatory fields (locked), the usual
/// ones, and the special fields written back (F6) when the CRM has fields of
/// those names (matched by api name or label, case-insensitively) and types
/// that the mapping rules accept.
pub fn default_mappings(kit: &Description, crm_fields: &[CrmField]) -> Vec<Mapping> {
    let find = |names: &[&str]| {
        crm_fields.iter().find(|f| {
            names
                .iter()
                .any(|n| f.api_name.eq_ignore_ascii_case(n) || f.label.eq_ignore_ascii_case(n))
        })
    };
    kit.default_mappings
        .iter()
        .filter_map(|default| {
            let (name, direction) = (&default.platform_field, &default.direction);
            let crm = find(default.crm_fields)?;
            let platform = platform_field(name)?;
            // A read-only CRM field can only be read.
            let direction = if crm.read_only {
                MappingDirection::FromCrm
            } else {
                *direction
            };
            // A field of the right name but the wrong type (a number where the link
            // goes, a multi-select for the job title) is left for a person to map:
            // defaults must pass the rules `validate_mappings` enforces.
            direction_and_types(platform, name, crm, direction).ok()?;
            Some(Mapping {
                platform_field: (*name).to_owned(),
                crm_field: crm.api_name.clone(),
                direction,
                enabled: true,
                locked: platform.mandatory,
            })
        })
        .collect()
}

/// A mapping row as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingInput {
    /// Platform field name.
    pub platform_field: String,
    /// CRM field api name or key.
    pub crm_field: String,
    /// Which way.
    pub direction: MappingDirection,
    /// Synced or not.
    pub enabled: bool,
}

/// Checks a whole mapping list against the platform catalog and the CRM's fields;
/// on success returns the rows with `locked` set. Errors name the input path
/// (`mappings[2].direction`) relative to the list.
pub fn validate_mappings(
    rows: &[MappingInput],
    crm_fields: &[CrmField],
) -> Result<Vec<Mapping>, FieldError> {
    let mut from_crm_targets = HashSet::new();
    let mut to_crm_targets = HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let at = |part: &str| format!("mappings[{i}].{part}");
        let platform = platform_field(&row.platform_field).ok_or_else(|| {
            FieldError::new(
                at("platformField"),
                format!("unknown platform field \"{}\" (see platformFields; custom fields are custom.<key>)", row.platform_field),
            )
        })?;
        let crm = crm_fields
            .iter()
            .find(|f| f.api_name == row.crm_field)
            .ok_or_else(|| {
                FieldError::new(
                    at("crmField"),
                    format!("the CRM has no field \"{}\" (see crmFields)", row.crm_field),
                )
            })?;
        if let Err((part, message)) =
            direction_and_types(platform, &row.platform_field, crm, row.direction)
        {
            return Err(FieldError::new(at(part), message));
        }
        let reads = matches!(
            row.direction,
            MappingDirection::FromCrm | MappingDirection::Both
        );
        let writes = matches!(
            row.direction,
            MappingDirection::ToCrm | MappingDirection::Both
        );
        if row.enabled && reads && !from_crm_targets.insert(row.platform_field.clone()) {
            return Err(FieldError::new(
                at("platformField"),
                format!(
                    "{} is already filled from another CRM field",
                    row.platform_field
                ),
            ));
        }
        if row.enabled && writes && !to_crm_targets.insert(row.crm_field.clone()) {
            return Err(FieldError::new(
                at("crmField"),
                format!(
                    "{} is already written from another platform field",
                    crm.label
                ),
            ));
        }
        if platform.mandatory && !row.enabled {
            return Err(FieldError::new(
                at("enabled"),
                format!(
                    "the {} mapping is mandatory and cannot be disabled",
                    row.platform_field
                ),
            ));
        }
        out.push(Mapping {
            platform_field: row.platform_field.clone(),
            crm_field: row.crm_field.clone(),
            direction: row.direction,
            enabled: row.enabled,
            locked: platform.mandatory,
        });
    }
    for mandatory in PLATFORM_FIELDS.iter().filter(|f| f.mandatory) {
        if !out.iter().any(|m| m.platform_field == mandatory.name) {
            return Err(FieldError::new(
                "mappings",
                format!(
                    "the {} mapping is mandatory and cannot be removed",
                    mandatory.name
                ),
            ));
        }
    }
    Ok(out)
}

/// The rules one row must follow on its own: which way it may flow and whether
/// the types fit. On failure, the part of the row at fault (`direction`,
/// `crmField`) and why.
fn direction_and_types(
    platform: PlatformField,
    platform_name: &str,
    crm: &CrmField,
    direction: MappingDirection,
) -> Result<(), (&'static str, String)> {
    let reads = matches!(
        direction,
        MappingDirection::FromCrm | MappingDirection::Both
    );
    let writes = matches!(direction, MappingDirection::ToCrm | MappingDirection::Both);
    if platform.computed && reads {
        return Err((
            "direction",
            format!("{platform_name} is computed by the platform: it can only go TO_CRM"),
        ));
    }
    if crm.read_only && writes {
        return Err((
            "direction",
            format!(
                "{} is read-only in the CRM: it can only be FROM_CRM",
                crm.label
            ),
        ));
    }
    // Several values cannot be read into a single-value field; a custom field holds JSON.
    if reads
        && crm.field_type == FieldType::MultiPicklist
        && platform.field_type != FieldType::Other
    {
        return Err((
            "direction",
            format!(
                "{} holds several values; {platform_name} holds one: map it to a custom field or TO_CRM only",
                crm.label
            ),
        ));
    }
    if !compatible(platform.field_type, crm.field_type) {
        return Err((
            "crmField",
            format!(
                "{} ({}) cannot hold {platform_name} ({})",
                crm.label,
                crm.field_type.as_str(),
                platform.field_type.as_str()
            ),
        ));
    }
    Ok(())
}

/// Whether a platform value of one type can live in a CRM field of another.
fn compatible(platform: FieldType, crm: FieldType) -> bool {
    use FieldType::*;
    match (platform, crm) {
        (_, Other | Lookup) => false,
        (Other, _) => true,
        (Email, Email | Text) => true,
        (Email, User) => true,
        (Text, Text | Picklist | Email | Phone | Url) => true,
        (Phone, Phone | Text) => true,
        (Url, Url | Text) => true,
        (Integer, Integer | Number | Text) => true,
        (Boolean, Boolean) => true,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn crm(api_name: &str, field_type: FieldType) -> CrmField {
        CrmField {
            api_name: api_name.into(),
            label: api_name.into(),
            field_type,
            mandatory: false,
            read_only: false,
            custom: false,
            options: None,
        }
    }

    pub(crate) fn fields() -> Vec<CrmField> {
        vec![
            crm("email", FieldType::Email),
            crm("first_name", FieldType::Text),
            crm("last_name", FieldType::Text),
            crm("score", FieldType::Number),
            crm("industries", FieldType::MultiPicklist),
            CrmField {
                read_only: true,
                ..crm("update_time", FieldType::DateTime)
            },
        ]
    }

    fn row(platform: &str, crm: &str, direction: MappingDirection) -> MappingInput {
        MappingInput {
            platform_field: platform.into(),
            crm_field: crm.into(),
            direction,
            enabled: true,
        }
    }

    fn base() -> Vec<MappingInput> {
        vec![
            row("email", "email", MappingDirection::Both),
            row("first_name", "first_name", MappingDirection::Both),
            row("last_name", "last_name", MappingDirection::Both),
        ]
    }

    fn error_with(extra: MappingInput) -> FieldError {
        let mut rows = base();
        rows.push(extra);
        validate_mappings(&rows, &fields()).unwrap_err()
    }

    #[test]
    fn the_mandatory_rows_validate_and_come_back_locked() {
        let mappings = validate_mappings(&base(), &fields()).unwrap();
        assert!(mappings.iter().all(|m| m.locked));
    }

    #[test]
    fn each_rule_names_the_input_path() {
        assert_eq!(
            error_with(row("nope", "score", MappingDirection::ToCrm)).field,
            "mappings[3].platformField"
        );
        assert_eq!(
            error_with(row("source", "nope", MappingDirection::ToCrm)).field,
            "mappings[3].crmField"
        );
        assert_eq!(
            error_with(row("behaviour_score", "score", MappingDirection::Both)).field,
            "mappings[3].direction"
        );
        assert_eq!(
            error_with(row("company", "update_time", MappingDirection::ToCrm)).field,
            "mappings[3].direction"
        );
        assert_eq!(
            error_with(row("company", "industries", MappingDirection::FromCrm)).field,
            "mappings[3].direction"
        );
        assert_eq!(
            error_with(row("opted_out", "score", MappingDirection::ToCrm)).field,
            "mappings[3].crmField"
        );
        assert_eq!(
            error_with(row("first_name", "last_name", MappingDirection::FromCrm)).field,
            "mappings[3].platformField"
        );
    }

    #[test]
    fn locked_rows_cannot_be_removed_or_disabled() {
        let mut rows = base();
        rows.remove(1);
        assert_eq!(
            validate_mappings(&rows, &fields()).unwrap_err().field,
            "mappings"
        );
        let mut rows = base();
        rows[2].enabled = false;
        assert_eq!(
            validate_mappings(&rows, &fields()).unwrap_err().field,
            "mappings[2].enabled"
        );
    }

    #[test]
    fn custom_fields_take_any_crm_type_including_multi_picklists() {
        let mut rows = base();
        rows.push(row(
            "custom.industries",
            "industries",
            MappingDirection::FromCrm,
        ));
        assert!(validate_mappings(&rows, &fields()).is_ok());
        assert!(platform_field("custom.Bad Key").is_none());
    }

    /// Leads fields of a CRM with leads, as its client normalises them.
    pub(crate) fn leads_fields() -> Vec<CrmField> {
        let read_only = |f: CrmField| CrmField {
            read_only: true,
            ..f
        };
        vec![
            crm("Owner", FieldType::User),
            crm("Email", FieldType::Email),
            crm("First_Name", FieldType::Text),
            CrmField {
                mandatory: true,
                ..crm("Last_Name", FieldType::Text)
            },
            read_only(crm("Full_Name", FieldType::Text)),
            crm("Phone", FieldType::Phone),
            crm("Company", FieldType::Text),
            crm("Designation", FieldType::Text),
            crm("Email_Opt_Out", FieldType::Boolean),
            crm("Industry", FieldType::Picklist),
            crm("Interests", FieldType::MultiPicklist),
            crm("Account_Name", FieldType::Lookup),
            crm("Date_of_Birth", FieldType::Date),
            read_only(crm("Created_Time", FieldType::DateTime)),
            crm("sync_to_plezi", FieldType::Text),
            crm("plezi_url", FieldType::Url),
            crm("score", FieldType::Integer),
            crm("status", FieldType::Text),
            crm("source", FieldType::Text),
        ]
    }

    fn leads_base() -> Vec<MappingInput> {
        vec![
            row("email", "Email", MappingDirection::Both),
            row("first_name", "First_Name", MappingDirection::Both),
            row("last_name", "Last_Name", MappingDirection::Both),
        ]
    }

    fn leads_error_with(extra: MappingInput) -> FieldError {
        let mut rows = leads_base();
        rows.push(extra);
        validate_mappings(&rows, &leads_fields()).unwrap_err()
    }

    pub(crate) fn as_inputs(mappings: &[Mapping]) -> Vec<MappingInput> {
        mappings
            .iter()
            .map(|m| MappingInput {
                platform_field: m.platform_field.clone(),
                crm_field: m.crm_field.clone(),
                direction: m.direction,
                enabled: m.enabled,
            })
            .collect()
    }

    #[test]
    fn a_multi_select_is_never_read_into_a_single_value_field() {
        for direction in [MappingDirection::FromCrm, MappingDirection::Both] {
            let error = leads_error_with(row("company", "Interests", direction));
            assert_eq!(error.field, "mappings[3].direction", "{direction:?}");
            assert!(
                error.message.contains("several values"),
                "{}",
                error.message
            );
        }
        let error = leads_error_with(row("job_title", "Interests", MappingDirection::ToCrm));
        assert_eq!(error.field, "mappings[3].crmField");
        let mut rows = leads_base();
        rows.push(row("custom.interests", "Interests", MappingDirection::Both));
        assert!(validate_mappings(&rows, &leads_fields()).is_ok());
    }

    #[test]
    fn a_read_only_crm_field_is_only_ever_read() {
        for direction in [MappingDirection::ToCrm, MappingDirection::Both] {
            let error = leads_error_with(row("company", "Full_Name", direction));
            assert_eq!(error.field, "mappings[3].direction", "{direction:?}");
            assert!(error.message.contains("read-only"), "{}", error.message);
        }
        let mut rows = leads_base();
        rows.push(row("company", "Full_Name", MappingDirection::FromCrm));
        assert!(validate_mappings(&rows, &leads_fields()).is_ok());
    }

    #[test]
    fn types_that_hold_no_platform_value_are_refused() {
        for (platform, crm_field) in [
            ("company", "Account_Name"),
            ("company", "Date_of_Birth"),
            ("company", "Owner"),
            ("opted_out", "sync_to_plezi"),
            ("platform_url", "score"),
        ] {
            let error = leads_error_with(row(platform, crm_field, MappingDirection::ToCrm));
            assert_eq!(
                error.field, "mappings[3].crmField",
                "{platform} <- {crm_field}"
            );
        }
        let mut rows = leads_base();
        rows.push(row("owner_email", "Owner", MappingDirection::Both));
        rows.push(row("company", "Industry", MappingDirection::Both));
        assert!(validate_mappings(&rows, &leads_fields()).is_ok());
    }
}
