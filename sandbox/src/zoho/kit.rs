//! Zoho's side of the conformance suite: a fresh org per account, leads as
//! the module contacts are written to.

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, deleted_at_query,
};
use crate::{AppState, System};

/// The Zoho sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::Zoho
    }

    fn list_page_size(&self) -> usize {
        200
    }

    fn write_batch_size(&self) -> usize {
        100
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /zoho/api/crm/v8/{module}/upsert",
            "POST /zoho/api/crm/v8/{module}",
            "PUT /zoho/api/crm/v8/{module}",
            "PUT /zoho/api/crm/v8/{module}/{id}",
        ]
    }

    fn list_endpoint(&self) -> &'static str {
        "GET /zoho/api/crm/v8/{module}"
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let mut custom_fields: Vec<Value> = super::fields::default_custom_fields()
            .into_iter()
            .map(|f| json!(f))
            .collect();
        custom_fields.extend(picklists.iter().map(|p| {
            json!({
                "api_name": p.name,
                "data_type": "picklist",
                "pick_list_values": p.options.iter().map(|o| json!({ "actual_value": o })).collect::<Vec<_>>(),
            })
        }));
        // Generous limits: every run makes its own client (a token call each).
        let body = json!({
            "concurrency": 200,
            "heavy_concurrency": 200,
            "token_throttle": 1000,
            "custom_fields": custom_fields,
        });
        let org = admin(state, Method::POST, "/zoho/orgs", Some(body)).await?;
        let text = |key: &str| org[key].as_str().unwrap_or_default().to_owned();
        let connect_form = [
            ("clientId", text("client_id")),
            ("clientSecret", text("client_secret")),
            ("dataCenter", "com".to_owned()),
            ("orgId", text("org_id")),
            ("grantCode", text("grant_code")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Account {
            system: System::Zoho,
            tenant: text("org_id"),
            base_url: text("accounts_url"),
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
            &format!("/zoho/orgs/{}/records/Leads", account.tenant),
            Some(json!({ "records": records })),
        )
        .await?;
        Ok(reply["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect())
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let reply = admin(
            state,
            Method::GET,
            &format!("/zoho/orgs/{}/records/Leads", account.tenant),
            None,
        )
        .await?;
        let text = |r: &Value, key: &str| r[key].as_str().map(str::to_owned);
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Stored {
                id: text(r, "id").unwrap_or_default(),
                email: text(r, "Email"),
                first_name: text(r, "First_Name"),
                last_name: text(r, "Last_Name"),
                phone: text(r, "Phone"),
            })
            .collect())
    }

    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let path = format!("/zoho/orgs/{}/usage", account.tenant);
        let usage = admin(state, Method::GET, &path, None).await?;
        Ok(usage["credits_used"].as_u64().unwrap_or_default())
    }

    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = format!("/zoho/orgs/{}/limits", account.tenant);
        let body = json!({ "daily_credits": budget });
        admin(state, Method::PATCH, &path, Some(body)).await?;
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
        let path = format!("/zoho/orgs/{}/records/Leads/{id}{query}", account.tenant);
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let mut registry = state.zoho.registry.write();
        registry
            .refresh_tokens
            .retain(|_, t| t.org_id != account.tenant);
        registry
            .access_tokens
            .retain(|_, t| t.org_id != account.tenant);
        registry
            .grant_codes
            .retain(|_, g| g.org_id != account.tenant);
        Ok(())
    }
}

/// A person as a lead for the admin records route.
fn lead(p: &Person) -> Value {
    let mut lead = Map::new();
    let mut put = |key: &str, value: Option<&String>| {
        if let Some(v) = value {
            lead.insert(key.to_owned(), json!(v));
        }
    };
    put("First_Name", p.first_name.as_ref());
    put("Last_Name", Some(&p.last_name));
    put("Email", p.email.as_ref());
    put("Phone", p.phone.as_ref());
    for (field, option) in &p.picklists {
        put(field, Some(option));
    }
    if let Some(at) = p.modified_at {
        let at = json!(at.to_rfc3339());
        lead.insert("Created_Time".into(), at.clone());
        lead.insert("Modified_Time".into(), at);
    }
    Value::Object(lead)
}
