//! Field lists (standard and per-org custom fields) and the validation of written values.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::org::{Module, OrgData};
use crate::seed::{INDUSTRIES, LEAD_SOURCES, LEAD_STATUSES};

/// Data types a custom field may have.
pub(crate) const CUSTOM_TYPES: &[&str] = &[
    "text",
    "textarea",
    "email",
    "phone",
    "website",
    "integer",
    "bigint",
    "double",
    "currency",
    "percent",
    "boolean",
    "date",
    "datetime",
    "picklist",
    "multiselectpicklist",
];

/// One picklist option. `display_value` differs from `actual_value` for a few options on
/// purpose: writes must use the actual value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PickOption {
    #[serde(default)]
    pub display_value: Option<String>,
    pub actual_value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FieldDef {
    pub api_name: String,
    pub label: String,
    pub data_type: String,
    pub length: u32,
    pub custom: bool,
    pub read_only: bool,
    pub mandatory: bool,
    pub picklist: Vec<PickOption>,
    pub id: u64,
}

/// A custom field as the admin API takes it when creating an org.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSpec {
    /// API name (letters, digits, underscores).
    pub api_name: String,
    /// One of `CUSTOM_TYPES`.
    pub data_type: String,
    /// Label; the api name when absent.
    #[serde(default)]
    pub field_label: Option<String>,
    /// Maximum length for text types (default 255).
    #[serde(default)]
    pub length: Option<u32>,
    /// Options for picklists.
    #[serde(default)]
    pub pick_list_values: Vec<PickOption>,
    /// Modules that get the field (default both).
    #[serde(default)]
    pub modules: Option<Vec<String>>,
}

impl CustomFieldSpec {
    pub(crate) fn validate(&self, index: usize) -> Result<(), String> {
        let at = format!("custom_fields[{index}]");
        if self.api_name.is_empty()
            || !self
                .api_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "{at}.api_name: letters, digits and underscores only, got {:?}",
                self.api_name
            ));
        }
        if !CUSTOM_TYPES.contains(&self.data_type.as_str()) {
            return Err(format!(
                "{at}.data_type: one of {}, got {:?}",
                CUSTOM_TYPES.join(", "),
                self.data_type
            ));
        }
        if self.data_type.contains("picklist") && self.pick_list_values.is_empty() {
            return Err(format!(
                "{at}.pick_list_values: a picklist needs at least one option"
            ));
        }
        for m in self.modules.iter().flatten() {
            if Module::from_api(m).is_none() {
                return Err(format!("{at}.modules: Leads or Contacts, got {m:?}"));
            }
        }
        Ok(())
    }

    fn applies_to(&self, m: Module) -> bool {
        self.modules
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|x| Module::from_api(x) == Some(m)))
    }
}

/// The custom fields every org gets unless it is created with its own list.
pub(crate) fn default_custom_fields() -> Vec<CustomFieldSpec> {
    let f = |api: &str, ty: &str| CustomFieldSpec {
        api_name: api.into(),
        data_type: ty.into(),
        field_label: None,
        length: None,
        pick_list_values: Vec::new(),
        modules: None,
    };
    vec![
        f("sync_to_plezi", "text"),
        f("plezi_url", "website"),
        f("score", "integer"),
        f("status", "text"),
        f("source", "text"),
    ]
}

fn options(values: &[&str], display: &[(&str, &str)]) -> Vec<PickOption> {
    values
        .iter()
        .map(|v| PickOption {
            display_value: Some(
                display
                    .iter()
                    .find(|(a, _)| a == v)
                    .map_or(*v, |(_, d)| d)
                    .to_owned(),
            ),
            actual_value: (*v).to_owned(),
        })
        .collect()
}

struct Builder {
    next_id: u64,
    fields: Vec<FieldDef>,
}

impl Builder {
    fn add(&mut self, api: &str, label: &str, ty: &str, length: u32) -> &mut FieldDef {
        self.next_id += 1;
        self.fields.push(FieldDef {
            api_name: api.into(),
            label: label.into(),
            data_type: ty.into(),
            length,
            custom: false,
            read_only: false,
            mandatory: false,
            picklist: Vec::new(),
            id: self.next_id,
        });
        self.fields.last_mut().expect("just pushed")
    }
}

/// The field list of Leads or Contacts: standard fields plus the org's custom fields.
pub(crate) fn module_fields(m: Module, id_base: u64, custom: &[CustomFieldSpec]) -> Vec<FieldDef> {
    let mut b = Builder {
        next_id: id_base,
        fields: Vec::new(),
    };
    b.add("Owner", "Lead Owner", "ownerlookup", 0);
    if m == Module::Leads {
        b.add("Company", "Company", "text", 200);
    }
    b.add("First_Name", "First Name", "text", 40);
    b.add("Last_Name", "Last Name", "text", 80).mandatory = true;
    b.add("Full_Name", "Full Name", "text", 120).read_only = true;
    if m == Module::Leads {
        b.add("Designation", "Title", "text", 100);
    } else {
        b.add("Account_Name", "Account Name", "lookup", 0);
        b.add("Title", "Title", "text", 100);
        b.add("Date_of_Birth", "Date of Birth", "date", 0);
    }
    b.add("Email", "Email", "email", 100);
    b.add("Secondary_Email", "Secondary Email", "email", 100);
    b.add("Phone", "Phone", "phone", 30);
    b.add("Mobile", "Mobile", "phone", 30);
    b.add("Lead_Source", "Lead Source", "picklist", 120)
        .picklist = options(LEAD_SOURCES, &[("Web Form", "Web-Form")]);
    if m == Module::Leads {
        b.add("Lead_Status", "Lead Status", "picklist", 120)
            .picklist = options(LEAD_STATUSES, &[]);
        b.add("Industry", "Industry", "picklist", 120).picklist = options(
            INDUSTRIES,
            &[
                ("Software", "Software / SaaS"),
                ("Finance", "Finance & Banking"),
            ],
        );
        b.add("Website", "Website", "website", 255);
    }
    b.add("City", "City", "text", 100);
    b.add("Country", "Country", "text", 100);
    b.add("Description", "Description", "textarea", 32000);
    b.add("Email_Opt_Out", "Email Opt Out", "boolean", 0);
    for api in ["Created_Time", "Modified_Time"] {
        b.add(api, &api.replace('_', " "), "datetime", 0).read_only = true;
    }
    for api in ["Created_By", "Modified_By"] {
        b.add(api, &api.replace('_', " "), "ownerlookup", 0)
            .read_only = true;
    }
    if m == Module::Leads {
        b.add("Converted__s", "Converted", "boolean", 0).read_only = true;
    }
    for spec in custom.iter().filter(|s| s.applies_to(m)) {
        let length = match spec.data_type.as_str() {
            "text" | "email" | "phone" | "website" => spec.length.unwrap_or(255),
            "textarea" => spec.length.unwrap_or(2000),
            _ => 0,
        };
        let label = spec
            .field_label
            .clone()
            .unwrap_or_else(|| spec.api_name.clone());
        let f = b.add(&spec.api_name, &label, &spec.data_type, length);
        f.custom = true;
        f.picklist = spec
            .pick_list_values
            .iter()
            .map(|o| PickOption {
                display_value: Some(
                    o.display_value
                        .clone()
                        .unwrap_or_else(|| o.actual_value.clone()),
                ),
                actual_value: o.actual_value.clone(),
            })
            .collect();
    }
    b.fields
}

pub(crate) fn account_fields(id_base: u64) -> Vec<FieldDef> {
    let mut b = Builder {
        next_id: id_base,
        fields: Vec::new(),
    };
    b.add("Owner", "Account Owner", "ownerlookup", 0);
    b.add("Account_Name", "Account Name", "text", 200).mandatory = true;
    for api in ["Created_Time", "Modified_Time"] {
        b.add(api, &api.replace('_', " "), "datetime", 0).read_only = true;
    }
    b.fields
}

fn json_type(data_type: &str) -> &'static str {
    match data_type {
        "integer" => "integer",
        "bigint" => "string",
        "double" | "currency" | "percent" => "double",
        "boolean" => "boolean",
        "multiselectpicklist" => "jsonarray",
        "lookup" | "ownerlookup" => "jsonobject",
        _ => "string",
    }
}

impl FieldDef {
    /// The field as `GET /settings/fields` shows it.
    pub(crate) fn api_json(&self) -> Value {
        let picks: Vec<Value> = self
            .picklist
            .iter()
            .enumerate()
            .map(|(i, o)| {
                json!({
                    "display_value": o.display_value.clone().unwrap_or_else(|| o.actual_value.clone()),
                    "actual_value": o.actual_value,
                    "id": format!("{}{:03}", self.id % 10_000_000_000_000_000, i + 1),
                    "sequence_number": i + 1,
                    "type": "used",
                })
            })
            .collect();
        let lookup = if self.data_type == "lookup" {
            json!({ "module": { "api_name": "Accounts" } })
        } else {
            json!({})
        };
        json!({
            "api_name": self.api_name,
            "field_label": self.label,
            "display_label": self.label,
            "id": self.id.to_string(),
            "data_type": self.data_type,
            "json_type": json_type(&self.data_type),
            "length": self.length,
            "custom_field": self.custom,
            "read_only": self.read_only,
            "field_read_only": self.read_only,
            "system_mandatory": self.mandatory,
            "visible": true,
            "unique": {},
            "pick_list_values": picks,
            "lookup": lookup,
        })
    }
}

/// Why a written value is refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Invalid {
    /// Wrong JSON type or format: INVALID_DATA with `expected_data_type`.
    Type(&'static str),
    /// Too long: INVALID_DATA with `maximum_length`.
    Length(u32),
    /// Not an option of the picklist, not an active user, not an existing account.
    Value,
}

fn expected(data_type: &str) -> &'static str {
    match data_type {
        "text" => "text",
        "textarea" => "textarea",
        "email" => "email",
        "phone" => "phone",
        "website" => "website",
        "integer" => "integer",
        "bigint" => "bigint",
        "double" => "double",
        "currency" => "currency",
        "percent" => "percent",
        "boolean" => "boolean",
        "date" => "date",
        "datetime" => "datetime",
        "picklist" => "picklist",
        "multiselectpicklist" => "jsonarray",
        "lookup" | "ownerlookup" => "jsonobject",
        _ => "text",
    }
}

pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
        && !local.contains('@')
}

/// Checks one written value against its field. Null is always accepted here (the
/// mandatory check is separate).
pub(crate) fn check(def: &FieldDef, value: &Value, data: &OrgData) -> Result<(), Invalid> {
    if value.is_null() {
        return Ok(());
    }
    let ty = def.data_type.as_str();
    let wrong = || Invalid::Type(expected(ty));
    match ty {
        "text" | "textarea" | "email" | "phone" | "website" => {
            let s = value.as_str().ok_or_else(wrong)?;
            if def.length > 0 && s.chars().count() > def.length as usize {
                return Err(Invalid::Length(def.length));
            }
            // Surrounding spaces are tolerated (matching trims them too).
            if ty == "email" && !s.trim().is_empty() && !is_email(s.trim()) {
                return Err(wrong());
            }
            if ty == "phone"
                && !s
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().x".contains(c))
            {
                return Err(wrong());
            }
            Ok(())
        }
        "integer" => match value.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Ok(()),
            _ => Err(wrong()),
        },
        "bigint" => value.as_i64().map(|_| ()).ok_or_else(wrong),
        "double" | "currency" | "percent" => value.as_f64().map(|_| ()).ok_or_else(wrong),
        "boolean" => value.as_bool().map(|_| ()).ok_or_else(wrong),
        "date" => {
            let s = value.as_str().ok_or_else(wrong)?;
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|_| ())
                .map_err(|_| wrong())
        }
        "datetime" => {
            let s = value.as_str().ok_or_else(wrong)?;
            DateTime::parse_from_rfc3339(s)
                .map(|_| ())
                .map_err(|_| wrong())
        }
        "picklist" => {
            let s = value.as_str().ok_or_else(wrong)?;
            def.picklist
                .iter()
                .any(|o| o.actual_value == s)
                .then_some(())
                .ok_or(Invalid::Value)
        }
        "multiselectpicklist" => {
            let items = value.as_array().ok_or_else(wrong)?;
            for item in items {
                let s = item.as_str().ok_or_else(wrong)?;
                if !def.picklist.iter().any(|o| o.actual_value == s) {
                    return Err(Invalid::Value);
                }
            }
            Ok(())
        }
        "ownerlookup" => {
            let id = lookup_id(value).ok_or_else(wrong)?;
            data.user(id)
                .filter(|u| u.status == "active")
                .map(|_| ())
                .ok_or(Invalid::Value)
        }
        "lookup" => {
            let id = lookup_id(value).ok_or_else(wrong)?;
            data.accounts
                .records
                .contains_key(&id)
                .then_some(())
                .ok_or(Invalid::Value)
        }
        _ => Ok(()),
    }
}

/// The id of a lookup value `{"id": "123"}` (a JSON number is accepted too).
pub(crate) fn lookup_id(value: &Value) -> Option<u64> {
    match value.get("id")? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The lookup value as stored: `{"name", "id"}` of the account.
pub(crate) fn stored_lookup(value: &Value, data: &OrgData) -> Value {
    match lookup_id(value) {
        Some(id) => {
            let name = data
                .accounts
                .records
                .get(&id)
                .and_then(|a| a.values.get("Account_Name").cloned())
                .unwrap_or(Value::Null);
            json!({ "name": name, "id": id.to_string() })
        }
        None => Value::Null,
    }
}
