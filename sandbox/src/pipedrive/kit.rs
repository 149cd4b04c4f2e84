//! Pipedrive's side of the conformance suite: a fresh company per account,
//! persons as the module contacts are written to.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, deleted_at_query,
};
use crate::{AppState, System};

/// The Pipedrive sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

/// Numbers the companies the kit creates (`conformance-1`, ...).
static NEXT_COMPANY: AtomicU64 = AtomicU64::new(1);

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::Pipedrive
    }

    fn list_page_size(&self) -> usize {
        500
    }

    fn write_batch_size(&self) -> usize {
        1
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /pipedrive/{company}/api/v2/persons",
            "PATCH /pipedrive/{company}/api/v2/persons/{id}",
        ]
    }

    fn list_endpoint(&self) -> &'static str {
        "GET /pipedrive/{company}/api/v2/persons"
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let domain = format!(
            "conformance-{}",
            NEXT_COMPANY.fetch_add(1, Ordering::Relaxed)
        );
        let mut custom_fields: Vec<Value> = super::model::default_field_specs()
            .into_iter()
            .map(|f| json!(f))
            .collect();
        custom_fields.extend(
            picklists
                .iter()
                .map(|p| json!({ "name": p.name, "field_type": "enum", "options": p.options })),
        );
        let body = json!({ "domain": domain, "custom_fields": custom_fields });
        let company = admin(state, Method::POST, "/pipedrive/companies", Some(body)).await?;
        let text = |key: &str| company[key].as_str().unwrap_or_default().to_owned();
        let connect_form = [
            ("apiToken", text("api_token")),
            ("companyDomain", domain.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Account {
            system: System::Pipedrive,
            tenant: domain,
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
        let company = admin(
            state,
            Method::GET,
            &format!("/pipedrive/companies/{}", account.tenant),
            None,
        )
        .await?;
        let fields = picklist_options(&company);
        let persons = people
            .iter()
            .map(|p| person(p, &fields))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|message| KitError {
                what: format!("put_people in {}", account.tenant),
                message,
            })?;
        let reply = admin(
            state,
            Method::POST,
            &format!("/pipedrive/companies/{}/persons", account.tenant),
            Some(json!({ "persons": persons })),
        )
        .await?;
        Ok(reply["persons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_u64().map(|id| id.to_string()))
            .collect())
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let reply = admin(
            state,
            Method::GET,
            &format!("/pipedrive/companies/{}/persons", account.tenant),
            None,
        )
        .await?;
        let primary = |list: &Value| {
            list.as_array()
                .into_iter()
                .flatten()
                .find(|c| c["primary"] == json!(true))
                .and_then(|c| c["value"].as_str())
                .map(str::to_owned)
        };
        let text = |p: &Value, key: &str| p[key].as_str().map(str::to_owned);
        Ok(reply["persons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["is_deleted"] != json!(true))
            .map(|p| Stored {
                id: p["id"]
                    .as_u64()
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                email: primary(&p["emails"]),
                first_name: text(p, "first_name"),
                last_name: text(p, "last_name"),
                phone: primary(&p["phones"]),
            })
            .collect())
    }

    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let path = format!("/pipedrive/companies/{}/usage", account.tenant);
        let usage = admin(state, Method::GET, &path, None).await?;
        Ok(usage["daily_used"].as_u64().unwrap_or_default())
    }

    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = format!("/pipedrive/companies/{}/limits", account.tenant);
        let body = json!({ "daily_budget": budget });
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
        let path = format!(
            "/pipedrive/companies/{}/persons/{id}{query}",
            account.tenant
        );
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let company = state
            .pipedrive
            .company(&account.tenant)
            .ok_or_else(|| KitError {
                what: format!("revoke_credentials in {}", account.tenant),
                message: "no such company".into(),
            })?;
        state
            .pipedrive
            .tokens
            .write()
            .retain(|_, owner| owner.company_id != company.id);
        Ok(())
    }
}

/// Custom picklist fields by name: their key and option ids by label.
type Options = HashMap<String, (String, HashMap<String, u64>)>;

fn picklist_options(company: &Value) -> Options {
    company["custom_fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let options = f["options"].as_array()?;
            let ids = options
                .iter()
                .filter_map(|o| Some((o["label"].as_str()?.to_owned(), o["id"].as_u64()?)))
                .collect();
            Some((
                f["name"].as_str()?.to_owned(),
                (f["key"].as_str()?.to_owned(), ids),
            ))
        })
        .collect()
}

/// A person for the admin persons route; option labels become option ids.
fn person(p: &Person, fields: &Options) -> Result<Value, String> {
    let name = match &p.first_name {
        Some(first) => format!("{first} {}", p.last_name),
        None => p.last_name.clone(),
    };
    let mut custom = Map::new();
    for (field, label) in &p.picklists {
        let (key, ids) = fields
            .get(field)
            .ok_or_else(|| format!("picklists: no picklist field {field:?}"))?;
        let id = ids
            .get(label)
            .ok_or_else(|| format!("picklists.{field}: no option {label:?}"))?;
        custom.insert(key.clone(), json!(id));
    }
    let contact = |value: &Option<String>| {
        value.as_ref().map_or(
            json!([]),
            |v| json!([{ "value": v, "primary": true, "label": "work" }]),
        )
    };
    let mut person = json!({
        "name": name,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "emails": contact(&p.email),
        "phones": contact(&p.phone),
        "custom_fields": custom,
    });
    if let Some(at) = p.modified_at {
        person["add_time"] = json!(at.to_rfc3339());
        person["update_time"] = json!(at.to_rfc3339());
    }
    Ok(person)
}
