//! SAP C4C's side of the conformance suite: a fresh tenant per account, leads
//! as the module contacts are written to, picklists as code-list extension fields.

use std::collections::BTreeMap;

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::SERVICE_PATH;
use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, convert_by_admin,
    deleted_at_query,
};
use crate::{AppState, System};

/// The SAP C4C sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

/// The company a kit lead carries: C4C refuses a lead without one.
pub const KIT_COMPANY: &str = "Sandbox Kit Ltd";

/// A picklist's extension field name: letters, digits and underscores, then `_KUT`.
pub fn field_name(picklist: &str) -> String {
    let mut name: String = picklist
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "P_");
    }
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    format!("{}_KUT", name.trim_end_matches('_'))
}

fn tenant_path(account: &Account, rest: &str) -> String {
    format!("/sap_c4c/tenants/{}{rest}", account.tenant)
}

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::SapC4c
    }

    /// A server page of an OData read.
    fn list_page_size(&self) -> usize {
        1000
    }

    /// The operations of one `$batch` (the sandbox's `batch_max`; a client
    /// puts each record in a changeset of its own, so one refused record
    /// rolls back alone).
    fn write_batch_size(&self) -> usize {
        1000
    }

    fn list_endpoint(&self) -> &'static str {
        "GET /sap/c4c/odata/v1/c4codataapi/{resource}"
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /sap/c4c/odata/v1/c4codataapi/$batch",
            "POST /sap/c4c/odata/v1/c4codataapi/{resource}",
            "PATCH /sap/c4c/odata/v1/c4codataapi/{resource}",
            "MERGE /sap/c4c/odata/v1/c4codataapi/{resource}",
            "PUT /sap/c4c/odata/v1/c4codataapi/{resource}",
        ]
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let fields: Vec<Value> = picklists
            .iter()
            .map(|p| json!({ "name": field_name(&p.name), "type": "code", "codes": p.options }))
            .collect();
        let body = json!({
            "fields": fields,
            "settings": { "daily_requests": 1_000_000_000u64 },
        });
        let tenant = admin(state, Method::POST, "/sap_c4c/tenants", Some(body)).await?;
        let text = |key: &str| tenant[key].as_str().unwrap_or_default().to_owned();
        let connect_form = BTreeMap::from([
            ("username".to_owned(), text("username")),
            ("password".to_owned(), text("password")),
        ]);
        Ok(Account {
            system: System::SapC4c,
            tenant: text("tenant"),
            base_url: text("base_url"),
            connect_form,
        })
    }

    async fn put_people(
        &self,
        state: &AppState,
        account: &Account,
        people: &[Person],
    ) -> Result<Vec<String>, KitError> {
        let codes = code_lists(state, account)?;
        let records: Vec<Value> = people.iter().map(|p| lead(p, &codes)).collect();
        let reply = admin(
            state,
            Method::POST,
            &tenant_path(account, "/records/LeadCollection"),
            Some(json!({ "records": records })),
        )
        .await?;
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["ObjectID"].as_str().map(str::to_owned))
            .collect())
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let path = tenant_path(account, "/records/LeadCollection");
        let reply = admin(state, Method::GET, &path, None).await?;
        let text =
            |r: &Value, key: &str| r[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Stored {
                id: text(r, "ObjectID").unwrap_or_default(),
                email: text(r, "ContactEMail"),
                first_name: text(r, "ContactFirstName"),
                last_name: text(r, "ContactLastName"),
                phone: text(r, "ContactPhone"),
            })
            .collect())
    }

    /// Requests counted today against the tenant's `daily_requests`.
    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let usage = admin(state, Method::GET, &tenant_path(account, "/usage"), None).await?;
        Ok(usage["used"].as_u64().unwrap_or_default())
    }

    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = tenant_path(account, "/settings");
        let mut settings = admin(state, Method::GET, &path, None).await?;
        settings["daily_requests"] = json!(budget.max(1));
        admin(state, Method::PUT, &path, Some(settings)).await?;
        Ok(())
    }

    async fn delete_record(
        &self,
        state: &AppState,
        account: &Account,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), KitError> {
        let query = deleted_at_query(at);
        let path = format!(
            "/sap_c4c/tenants/{}/records/LeadCollection/{id}{query}",
            account.tenant
        );
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let tenant = state
            .sap_c4c
            .tenant(&account.tenant)
            .ok_or_else(|| KitError {
                what: format!("revoke_credentials in {}", account.tenant),
                message: "no such tenant".into(),
            })?;
        state.sap_c4c.revoke(&tenant);
        Ok(())
    }

    /// C4C's OData API converts no leads: a rep's conversion, through the admin route.
    async fn convert_lead(
        &self,
        state: &AppState,
        _account: &Account,
        lead_id: &str,
    ) -> Result<String, KitError> {
        convert_by_admin(state, &format!("/sap_c4c/leads/{lead_id}/convert")).await
    }
}

/// The code of each option label, by extension field name.
type CodeLists = BTreeMap<String, BTreeMap<String, String>>;

fn code_lists(state: &AppState, account: &Account) -> Result<CodeLists, KitError> {
    let tenant = state
        .sap_c4c
        .tenant(&account.tenant)
        .ok_or_else(|| KitError {
            what: format!("put_people in {}", account.tenant),
            message: "no such tenant".into(),
        })?;
    let data = tenant.data.lock();
    Ok(data
        .table(super::model::Set::Lead)
        .props
        .iter()
        .filter_map(|p| match &p.kind {
            super::model::Kind::Code(list) if p.extension => Some((
                p.name.clone(),
                list.iter().map(|(c, d)| (d.clone(), c.clone())).collect(),
            )),
            _ => None,
        })
        .collect())
}

/// A lead for the admin records route; option labels become their codes
/// (a label no list holds is stored as given, as a removed code would be).
fn lead(p: &Person, codes: &CodeLists) -> Value {
    let mut fields = Map::new();
    let name = match &p.first_name {
        Some(first) => format!("{first} {}", p.last_name),
        None => p.last_name.clone(),
    };
    fields.insert("Name".into(), json!(name));
    fields.insert("Company".into(), json!(KIT_COMPANY));
    fields.insert("ContactFirstName".into(), json!(p.first_name));
    fields.insert("ContactLastName".into(), json!(p.last_name));
    fields.insert("ContactEMail".into(), json!(p.email));
    fields.insert("ContactPhone".into(), json!(p.phone));
    for (picklist, label) in &p.picklists {
        let field = field_name(picklist);
        let code = codes
            .get(&field)
            .and_then(|list| list.get(label))
            .cloned()
            .unwrap_or_else(|| label.clone());
        fields.insert(field, json!(code));
    }
    if let Some(at) = p.modified_at {
        let at = at.to_rfc3339();
        fields.insert("CreationOn".into(), json!(at));
        fields.insert("EntityLastChangedOn".into(), json!(at));
    }
    Value::Object(fields)
}

/// The service root of an account, for clients that take it whole.
pub fn service_url(account: &Account) -> String {
    format!("{}{SERVICE_PATH}/", account.base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picklist_names_become_extension_field_names() {
        assert_eq!(field_name("Plezi Segment"), "Plezi_Segment_KUT");
        assert_eq!(field_name("segment"), "segment_KUT");
        assert_eq!(field_name("1st"), "P_1st_KUT");
    }
}
