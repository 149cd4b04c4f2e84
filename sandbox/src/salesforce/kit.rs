//! Salesforce's side of the conformance suite: a fresh org per account, Leads
//! as the module contacts are written to.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, convert_by_admin,
    deleted_at_query,
};
use crate::{AppState, System};

/// The Salesforce sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

/// A picklist's custom field API name: letters, digits and underscores, then `__c`.
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
    format!("{}__c", name.trim_end_matches('_'))
}

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::Salesforce
    }

    /// A query page: 2000 records unless the org's `batch_size` says otherwise.
    fn list_page_size(&self) -> usize {
        2000
    }

    fn write_batch_size(&self) -> usize {
        200
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /services/data/{version}/composite/sobjects",
            "PATCH /services/data/{version}/composite/sobjects",
            "POST /services/data/{version}/sobjects/{sobject}",
            "PATCH /services/data/{version}/sobjects/{sobject}/{id}",
        ]
    }

    fn list_endpoint(&self) -> &'static str {
        "GET /services/data/{version}/query"
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let fields: Vec<Value> = picklists
            .iter()
            .map(|p| {
                json!({
                    "name": field_name(&p.name),
                    "label": p.name,
                    "type": "picklist",
                    "picklist_values": p.options,
                })
            })
            .collect();
        let body = json!({ "fields": fields, "daily_api_requests": 1_000_000_000u64 });
        let org = admin(state, Method::POST, "/salesforce/orgs", Some(body)).await?;
        let text = |key: &str| org[key].as_str().unwrap_or_default().to_owned();
        let connect_form = BTreeMap::from([
            ("clientId".to_owned(), text("client_id")),
            ("clientSecret".to_owned(), text("client_secret")),
            ("refreshToken".to_owned(), text("refresh_token")),
        ]);
        Ok(Account {
            system: System::Salesforce,
            tenant: text("org_id"),
            base_url: text("login_url"),
            connect_form,
        })
    }

    async fn put_people(
        &self,
        state: &AppState,
        account: &Account,
        people: &[Person],
    ) -> Result<Vec<String>, KitError> {
        let records: Vec<Value> = people.iter().map(lead).collect();
        let reply = admin(
            state,
            Method::POST,
            &format!("/salesforce/orgs/{}/records/Lead", account.tenant),
            Some(json!({ "records": records })),
        )
        .await?;
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["Id"].as_str().map(str::to_owned))
            .collect())
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let reply = admin(
            state,
            Method::GET,
            &format!("/salesforce/orgs/{}/records/Lead", account.tenant),
            None,
        )
        .await?;
        let text =
            |r: &Value, key: &str| r[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["IsDeleted"] != json!(true))
            .map(|r| Stored {
                id: text(r, "Id").unwrap_or_default(),
                email: text(r, "Email"),
                first_name: text(r, "FirstName"),
                last_name: text(r, "LastName"),
                phone: text(r, "Phone"),
            })
            .collect())
    }

    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let path = format!("/salesforce/orgs/{}/usage", account.tenant);
        let usage = admin(state, Method::GET, &path, None).await?;
        Ok(usage["used"].as_u64().unwrap_or_default())
    }

    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = format!("/salesforce/orgs/{}/limits", account.tenant);
        admin(
            state,
            Method::PUT,
            &path,
            Some(json!({ "daily_api_requests": budget.max(1) })),
        )
        .await?;
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
            "/salesforce/orgs/{}/records/Lead/{id}{query}",
            account.tenant
        );
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let org = state
            .salesforce
            .org(&account.tenant)
            .ok_or_else(|| KitError {
                what: format!("revoke_credentials in {}", account.tenant),
                message: "no such org".into(),
            })?;
        state.salesforce.revoke(&org.id);
        Ok(())
    }

    /// Salesforce's REST API has no lead conversion: a rep's Convert button,
    /// through the admin route.
    async fn convert_lead(
        &self,
        state: &AppState,
        _account: &Account,
        lead_id: &str,
    ) -> Result<String, KitError> {
        convert_by_admin(state, &format!("/salesforce/leads/{lead_id}/convert")).await
    }
}

/// A Lead for the admin records route; picklist option labels are the values.
fn lead(p: &Person) -> Value {
    let mut fields = Map::new();
    fields.insert("FirstName".into(), json!(p.first_name));
    fields.insert("LastName".into(), json!(p.last_name));
    fields.insert("Email".into(), json!(p.email));
    fields.insert("Phone".into(), json!(p.phone));
    for (field, label) in &p.picklists {
        fields.insert(field_name(field), json!(label));
    }
    if let Some(at) = p.modified_at {
        let at = super::model::format_datetime(at.timestamp_millis());
        fields.insert("CreatedDate".into(), json!(at));
        fields.insert("LastModifiedDate".into(), json!(at));
        fields.insert("SystemModstamp".into(), json!(at));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picklist_names_become_custom_field_names() {
        assert_eq!(field_name("Plezi Segment"), "Plezi_Segment__c");
        assert_eq!(field_name("segment"), "segment__c");
        assert_eq!(field_name("1st"), "P_1st__c");
    }
}
