//! Zendesk Sell's side of the conformance suite: a fresh Sell account per kit account,
//! leads as the module contacts are written to. Sell has no daily budget: its
//! allowance is per hour (36,000 requests per token), so the kit's "daily"
//! budget is the account's hourly allowance and its use the last hour's count.

use std::collections::BTreeMap;

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::model::format_time;
use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, deleted_at_query,
};
use crate::{AppState, System};

/// The Zendesk Sell sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::ZendeskSell
    }

    /// `per_page` at most 100.
    fn list_page_size(&self) -> usize {
        super::api::MAX_PER_PAGE
    }

    /// Sell writes one record per call.
    fn write_batch_size(&self) -> usize {
        1
    }

    fn list_endpoint(&self) -> &'static str {
        "GET /zendesk_sell/v2/leads"
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /zendesk_sell/v2/leads",
            "PUT /zendesk_sell/v2/leads/{id}",
            "POST /zendesk_sell/v2/leads/upsert",
        ]
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let mut fields: Vec<Value> = super::default_fields().iter().map(|f| json!(f)).collect();
        fields.extend(
            picklists
                .iter()
                .map(|p| json!({ "name": p.name, "type": "list", "choices": p.options })),
        );
        let body = json!({
            "lead_fields": fields,
            "limits": { "hourly": 1_000_000_000u64, "per_second": 1_000_000_000u64 },
        });
        let made = admin(state, Method::POST, "/zendesk_sell/accounts", Some(body)).await?;
        let text = |key: &str| made[key].as_str().unwrap_or_default().to_owned();
        Ok(Account {
            system: System::ZendeskSell,
            tenant: made["account_id"].as_u64().unwrap_or_default().to_string(),
            base_url: text("base_url"),
            connect_form: BTreeMap::from([("accessToken".to_owned(), text("access_token"))]),
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
            &format!("/zendesk_sell/accounts/{}/records/leads", account.tenant),
            Some(json!({ "records": records })),
        )
        .await?;
        Ok(ids(&reply["records"]))
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let reply = admin(
            state,
            Method::GET,
            &format!("/zendesk_sell/accounts/{}/records/leads", account.tenant),
            None,
        )
        .await?;
        let text =
            |r: &Value, key: &str| r[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(reply["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Stored {
                id: r["id"].as_u64().unwrap_or_default().to_string(),
                email: text(r, "email"),
                first_name: text(r, "first_name"),
                last_name: text(r, "last_name"),
                phone: text(r, "phone"),
            })
            .collect())
    }

    /// Requests counted in the last hour (Sell's allowance is hourly).
    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let path = format!("/zendesk_sell/accounts/{}/usage", account.tenant);
        let usage = admin(state, Method::GET, &path, None).await?;
        Ok(usage["used"].as_u64().unwrap_or_default())
    }

    /// Sets the hourly allowance per token.
    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = format!("/zendesk_sell/accounts/{}/limits", account.tenant);
        admin(
            state,
            Method::PATCH,
            &path,
            Some(json!({ "hourly": budget.max(1) })),
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
            "/zendesk_sell/accounts/{}/records/leads/{id}{query}",
            account.tenant
        );
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let id = account
            .tenant
            .parse::<u64>()
            .ok()
            .filter(|id| state.zendesk_sell.account(*id).is_some())
            .ok_or_else(|| KitError {
                what: format!("revoke_credentials in {}", account.tenant),
                message: "no such account".into(),
            })?;
        state.zendesk_sell.revoke(id);
        Ok(())
    }
}

fn ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_u64().map(|id| id.to_string()))
        .collect()
}

/// A lead for the admin records route; picklist option labels are the values.
fn lead(p: &Person) -> Value {
    let mut attrs = Map::new();
    attrs.insert("first_name".into(), json!(p.first_name));
    attrs.insert("last_name".into(), json!(p.last_name));
    attrs.insert("email".into(), json!(p.email));
    attrs.insert("phone".into(), json!(p.phone));
    if !p.picklists.is_empty() {
        let custom: Map<String, Value> = p
            .picklists
            .iter()
            .map(|(field, label)| (field.clone(), json!(label)))
            .collect();
        attrs.insert("custom_fields".into(), Value::Object(custom));
    }
    if let Some(at) = p.modified_at {
        let at = format_time(at.timestamp_millis());
        attrs.insert("created_at".into(), json!(at));
        attrs.insert("updated_at".into(), json!(at));
    }
    Value::Object(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sandbox, SandboxConfig};

    #[tokio::test]
    async fn people_put_through_the_kit_are_stored_as_given_and_revoked_tokens_fail() {
        let sandbox = Sandbox::start(SandboxConfig {
            people: 0,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        let state = sandbox.state();
        let kit = SandboxKind;
        let picklist = Picklist {
            name: "Segment".into(),
            options: vec!["A".into(), "B".into()],
        };
        let account = kit.provision(state, &[picklist]).await.expect("account");
        let person = Person {
            first_name: Some("Zoë".into()),
            last_name: "Nuñez".into(),
            email: Some("zoe@example.com".into()),
            picklists: BTreeMap::from([("Segment".into(), "B".into())]),
            ..Person::default()
        };

        let ids = kit
            .put_people(state, &account, &[person])
            .await
            .expect("put");
        let stored = kit.stored(state, &account).await.expect("stored");

        assert_eq!(ids.len(), 1);
        assert_eq!(stored[0].id, ids[0]);
        assert_eq!(stored[0].email.as_deref(), Some("zoe@example.com"));
        kit.set_daily_budget(state, &account, 5)
            .await
            .expect("budget");
        kit.revoke_credentials(state, &account).expect("revoked");
        let token = &account.connect_form["accessToken"];
        assert!(state.zendesk_sell.owner_of(token).is_none());
    }
}
