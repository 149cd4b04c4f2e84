//! What a connection test expects of a CRM besides working credentials (C3), and
//! the words for what is missing. The clients check reachability their own way;
//! the field rules are the same for every CRM, so they live here once.

use crmsync_entity::enums::CrmModule;

use super::{CrmField, FieldType};

/// What a connection test checks besides the credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The modules the connector imports: each must be readable and carry the
    /// filter field. Empty means the CRM's main module.
    pub modules: Vec<CrmModule>,
    /// The import filter's field (api name or label), when set.
    pub filter_field: Option<String>,
    /// The value the filter field must hold, checked against a picklist's options.
    pub filter_value: Option<String>,
    /// The main module's field the link back to the platform is written to (the
    /// enabled `platform_url` mapping), when there is one.
    pub platform_link_field: Option<String>,
}

/// How a CRM names its records and where its users manage fields, for messages.
#[derive(Debug, Clone, Copy)]
pub struct FieldsHelp<'a> {
    /// What the records are called, plural and capitalised as the CRM does: `Leads`.
    pub records: &'a str,
    /// Where fields are created: `Acme CRM (Settings > Fields)`.
    pub settings: &'a str,
}

impl Expectations {
    /// Only an import filter (no module list, no platform link).
    pub fn filter(field: &str, value: &str) -> Self {
        Self {
            filter_field: Some(field.to_owned()),
            filter_value: Some(value.to_owned()),
            ..Self::default()
        }
    }

    /// True when `module` is imported (the main module when none is listed).
    pub fn imports(&self, module: CrmModule, main: CrmModule) -> bool {
        if self.modules.is_empty() {
            module == main
        } else {
            self.modules.contains(&module)
        }
    }

    /// What is wrong with the import filter among a module's fields, if anything:
    /// the field is missing, cannot hold the value, or is a picklist without it.
    pub fn filter_problem(&self, fields: &[CrmField], help: FieldsHelp<'_>) -> Option<String> {
        let name = self.filter_field.as_deref()?.trim();
        let records = help.records;
        // Matched as the import leg matches it: api name, or label ignoring case.
        let Some(field) = fields
            .iter()
            .find(|f| f.api_name == name || f.label.eq_ignore_ascii_case(name))
            .or_else(|| {
                fields
                    .iter()
                    .find(|f| f.api_name.eq_ignore_ascii_case(name))
            })
        else {
            return Some(format!(
                "{records} have no field \"{name}\" for the import filter: create it in {}, or change the filter field",
                help.settings
            ));
        };
        let usable = matches!(
            field.field_type,
            FieldType::Text
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::MultiPicklist
                | FieldType::Boolean
                | FieldType::Integer
                | FieldType::Number
        );
        if !usable {
            return Some(format!(
                "the import filter field \"{name}\" of {records} is a {} field, which the filter cannot compare: use a text, picklist, checkbox or number field",
                field.field_type.as_str()
            ));
        }
        let value = self.filter_value.as_deref()?.trim();
        match (field.field_type, &field.options) {
            (FieldType::Picklist | FieldType::MultiPicklist, Some(options))
                if !options.is_empty()
                    && !options.iter().any(|o| {
                        o.label.trim().eq_ignore_ascii_case(value)
                            || o.id.trim().eq_ignore_ascii_case(value)
                    }) =>
            {
                let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
                Some(format!(
                    "the import filter value \"{value}\" is not an option of the {records} picklist \"{name}\" ({}): no record can match; change the filter value or add the option in {}",
                    labels.join(", "),
                    help.settings
                ))
            }
            (FieldType::Boolean, _)
                if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") =>
            {
                Some(format!(
                    "the import filter field \"{name}\" of {records} is a checkbox: the filter value must be true or false, not \"{value}\""
                ))
            }
            _ => None,
        }
    }

    /// What is wrong with the platform-link field among the main module's fields,
    /// if anything: missing, of a type that cannot hold a URL, or read-only.
    pub fn link_problem(&self, fields: &[CrmField], help: FieldsHelp<'_>) -> Option<String> {
        let name = self.platform_link_field.as_deref()?;
        let records = help.records;
        let Some(field) = fields.iter().find(|f| f.api_name == name) else {
            return Some(format!(
                "{records} have no field \"{name}\" for the link back to the platform: create a URL or text field in {} and map platform_url to it, or remove the platform_url mapping",
                help.settings
            ));
        };
        if !matches!(field.field_type, FieldType::Url | FieldType::Text) {
            return Some(format!(
                "the {records} field \"{name}\" that receives the link back to the platform is a {} field: it needs a URL or text field; change it in {} or map platform_url elsewhere",
                field.field_type.as_str(),
                help.settings
            ));
        }
        if field.read_only {
            return Some(format!(
                "the {records} field \"{name}\" that receives the link back to the platform is read-only: make it editable in {} or map platform_url elsewhere",
                help.settings
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::PicklistOption;

    const HELP: FieldsHelp<'static> = FieldsHelp {
        records: "Leads",
        settings: "Acme CRM (Settings > Fields)",
    };

    fn field(api_name: &str, field_type: FieldType) -> CrmField {
        CrmField {
            api_name: api_name.into(),
            label: api_name.replace('_', " "),
            field_type,
            mandatory: false,
            read_only: false,
            custom: true,
            options: None,
        }
    }

    fn tier() -> CrmField {
        CrmField {
            options: Some(vec![PicklistOption {
                id: "Gold".into(),
                label: "Gold tier".into(),
            }]),
            ..field("Tier", FieldType::Picklist)
        }
    }

    fn fields() -> Vec<CrmField> {
        vec![
            field("sync_to_plezi", FieldType::Text),
            field("plezi_url", FieldType::Url),
            field("score", FieldType::Integer),
            field("Created_Time", FieldType::DateTime),
            field("Opted_In", FieldType::Boolean),
            tier(),
            CrmField {
                read_only: true,
                ..field("Full_Name", FieldType::Text)
            },
        ]
    }

    fn link(name: &str) -> Expectations {
        Expectations {
            platform_link_field: Some(name.into()),
            ..Expectations::default()
        }
    }

    #[test]
    fn nothing_expected_is_nothing_wrong() {
        let none = Expectations::default();
        assert_eq!(none.filter_problem(&fields(), HELP), None);
        assert_eq!(none.link_problem(&fields(), HELP), None);
    }

    #[test]
    fn a_filter_field_is_found_by_api_name_or_label() {
        let by_name = Expectations::filter("sync_to_plezi", "yes");
        assert_eq!(by_name.filter_problem(&fields(), HELP), None);
        let by_label = Expectations::filter("Sync To Plezi", "yes");
        assert_eq!(by_label.filter_problem(&fields(), HELP), None);
    }

    #[test]
    fn a_missing_filter_field_is_named_with_where_to_create_it() {
        let problem = Expectations::filter("No_Such_Field", "yes")
            .filter_problem(&fields(), HELP)
            .unwrap();
        assert!(
            problem.contains("Leads have no field \"No_Such_Field\""),
            "{problem}"
        );
        assert!(problem.contains("Settings > Fields"), "{problem}");
    }

    #[test]
    fn a_filter_field_the_filter_cannot_compare_is_refused() {
        let problem = Expectations::filter("Created_Time", "yes")
            .filter_problem(&fields(), HELP)
            .unwrap();
        assert!(problem.contains("DATETIME"), "{problem}");
    }

    #[test]
    fn a_picklist_filter_value_must_be_one_of_its_options() {
        let problem = Expectations::filter("Tier", "Platinum")
            .filter_problem(&fields(), HELP)
            .unwrap();
        assert!(problem.contains("Gold tier"), "{problem}");
        for value in ["Gold", "gold tier"] {
            let ok = Expectations::filter("Tier", value);
            assert_eq!(ok.filter_problem(&fields(), HELP), None, "{value}");
        }
    }

    #[test]
    fn a_checkbox_filter_value_must_be_true_or_false() {
        let problem = Expectations::filter("Opted_In", "yes").filter_problem(&fields(), HELP);
        assert!(problem.unwrap().contains("true or false"));
        let ok = Expectations::filter("Opted_In", "TRUE");
        assert_eq!(ok.filter_problem(&fields(), HELP), None);
    }

    #[test]
    fn the_platform_link_needs_an_existing_writable_url_or_text_field() {
        assert_eq!(link("plezi_url").link_problem(&fields(), HELP), None);
        assert_eq!(link("sync_to_plezi").link_problem(&fields(), HELP), None);
        let missing = link("plezi_link").link_problem(&fields(), HELP).unwrap();
        assert!(
            missing
                .contains("Leads have no field \"plezi_link\" for the link back to the platform"),
            "{missing}"
        );
        assert!(
            missing.contains("remove the platform_url mapping"),
            "{missing}"
        );
        let number = link("score").link_problem(&fields(), HELP).unwrap();
        assert!(number.contains("INTEGER"), "{number}");
        let read_only = link("Full_Name").link_problem(&fields(), HELP).unwrap();
        assert!(read_only.contains("read-only"), "{read_only}");
    }

    #[test]
    fn the_main_module_is_imported_when_no_module_is_listed() {
        let none = Expectations::default();
        assert!(none.imports(CrmModule::Leads, CrmModule::Leads));
        assert!(!none.imports(CrmModule::Contacts, CrmModule::Leads));
        let contacts = Expectations {
            modules: vec![CrmModule::Contacts],
            ..Expectations::default()
        };
        assert!(!contacts.imports(CrmModule::Leads, CrmModule::Leads));
        assert!(contacts.imports(CrmModule::Contacts, CrmModule::Leads));
    }
}
