//! Picklist values between a CRM's option values and the labels the engine
//! keeps (F4): read as labels, written as values, checked before sending.

use super::{CrmError, CrmField};

/// The label of an option value; the value itself when no option has it.
pub(crate) fn option_label(field: &CrmField, value: &str) -> String {
    field
        .options
        .iter()
        .flatten()
        .find(|o| o.id == value)
        .map_or_else(|| value.to_owned(), |o| o.label.clone())
}

/// The option value for a label (or a value): exact first, then ignoring case.
pub(crate) fn option_value(field: &CrmField, wanted: &str) -> Result<String, CrmError> {
    let options = field.options.as_deref().unwrap_or_default();
    let found = options
        .iter()
        .find(|o| o.label == wanted || o.id == wanted)
        .or_else(|| {
            options
                .iter()
                .find(|o| o.label.eq_ignore_ascii_case(wanted) || o.id.eq_ignore_ascii_case(wanted))
        });
    match found {
        Some(option) => Ok(option.id.clone()),
        None => Err(invalid_picklist(field, wanted)),
    }
}

/// The rejection for a value that is not one of an enumeration's options (F4).
pub(crate) fn invalid_picklist(field: &CrmField, wanted: &str) -> CrmError {
    let allowed: Vec<_> = field
        .options
        .iter()
        .flatten()
        .map(|o| o.label.as_str())
        .collect();
    CrmError::Rejected {
        code: "INVALID_PICKLIST_VALUE".into(),
        field: Some(field.api_name.clone()),
        message: format!(
            "\"{wanted}\" is not an option of {}; allowed values: {}",
            field.label,
            allowed.join(", ")
        ),
    }
}
