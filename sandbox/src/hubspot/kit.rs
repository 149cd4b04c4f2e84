//! HubSpot's side of the conformance suite: a fresh portal per account, contacts
//! as the module contacts are written to.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::kit::{
    Account, KitError, Person, Picklist, SandboxCrm, Stored, admin, deleted_at_query,
};
use crate::{AppState, System};

/// The HubSpot sandbox as the conformance suite sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxKind;

/// A picklist's property name: lower-case letters, digits and underscores.
pub fn property_name(picklist: &str) -> String {
    let mut name: String = picklist
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "p_");
    }
    name
}

impl SandboxCrm for SandboxKind {
    fn system(&self) -> System {
        System::Hubspot
    }

    /// The search endpoint's page: clients list changes by search (200 a
    /// page); the list endpoint's 100 is for FULL reads by id order only.
    fn list_page_size(&self) -> usize {
        200
    }

    fn write_batch_size(&self) -> usize {
        100
    }

    fn write_endpoints(&self) -> &'static [&'static str] {
        &[
            "POST /hubspot/crm/v3/objects/contacts/batch/upsert",
            "POST /hubspot/crm/v3/objects/contacts/batch/create",
            "POST /hubspot/crm/v3/objects/contacts/batch/update",
            "POST /hubspot/crm/v3/objects/contacts",
            "PATCH /hubspot/crm/v3/objects/contacts/{contactId}",
        ]
    }

    fn list_endpoint(&self) -> &'static str {
        "POST /hubspot/crm/v3/objects/contacts/search"
    }

    async fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> Result<Account, KitError> {
        let mut properties: Vec<Value> = super::model::default_custom_properties()
            .into_iter()
            .map(|p| json!(p))
            .collect();
        properties.extend(picklists.iter().map(|p| {
            let options: Vec<Value> = p
                .options
                .iter()
                .enumerate()
                .map(|(i, o)| json!({ "label": o, "value": o, "displayOrder": i }))
                .collect();
            json!({
                "name": property_name(&p.name),
                "label": p.name,
                "type": "enumeration",
                "fieldType": "select",
                "groupName": "contactinformation",
                "options": options,
            })
        }));
        let body = json!({
            "properties": properties,
            "limits": super::limits::LimitConfig::generous(),
        });
        let portal = admin(state, Method::POST, "/hubspot/portals", Some(body)).await?;
        let text = |key: &str| portal[key].as_str().unwrap_or_default().to_owned();
        let tenant = portal["portal_id"].as_u64().unwrap_or_default().to_string();
        let connect_form = BTreeMap::from([("accessToken".to_owned(), text("access_token"))]);
        Ok(Account {
            system: System::Hubspot,
            tenant,
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
        let contacts: Vec<Value> = people.iter().map(contact).collect();
        let reply = admin(
            state,
            Method::POST,
            &format!("/hubspot/portals/{}/contacts", account.tenant),
            Some(json!({ "contacts": contacts })),
        )
        .await?;
        Ok(reply["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect())
    }

    async fn stored(&self, state: &AppState, account: &Account) -> Result<Vec<Stored>, KitError> {
        let reply = admin(
            state,
            Method::GET,
            &format!("/hubspot/portals/{}/contacts", account.tenant),
            None,
        )
        .await?;
        let text = |c: &Value, key: &str| {
            c["properties"][key]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(reply["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["archived"] != json!(true))
            .map(|c| Stored {
                id: c["id"].as_str().unwrap_or_default().to_owned(),
                email: text(c, "email"),
                first_name: text(c, "firstname"),
                last_name: text(c, "lastname"),
                phone: text(c, "phone"),
            })
            .collect())
    }

    async fn daily_used(&self, state: &AppState, account: &Account) -> Result<u64, KitError> {
        let path = format!("/hubspot/portals/{}/usage", account.tenant);
        let usage = admin(state, Method::GET, &path, None).await?;
        Ok(usage["daily_used"].as_u64().unwrap_or_default())
    }

    async fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> Result<(), KitError> {
        let path = format!("/hubspot/portals/{}/limits", account.tenant);
        admin(
            state,
            Method::PATCH,
            &path,
            Some(json!({ "daily": budget })),
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
        let path = format!("/hubspot/portals/{}/contacts/{id}{query}", account.tenant);
        admin(state, Method::DELETE, &path, None).await?;
        Ok(())
    }

    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError> {
        let portal = account
            .tenant
            .parse::<u64>()
            .ok()
            .and_then(|id| state.hubspot.portal(id))
            .ok_or_else(|| KitError {
                what: format!("revoke_credentials in {}", account.tenant),
                message: "no such portal".into(),
            })?;
        state.hubspot.revoke(portal.id);
        Ok(())
    }
}

/// A contact for the admin contacts route; picklist option labels are the values.
fn contact(p: &Person) -> Value {
    let mut props = Map::new();
    props.insert("firstname".into(), json!(p.first_name));
    props.insert("lastname".into(), json!(p.last_name));
    props.insert("email".into(), json!(p.email));
    props.insert("phone".into(), json!(p.phone));
    for (field, label) in &p.picklists {
        props.insert(property_name(field), json!(label));
    }
    let mut contact = json!({ "properties": props });
    if let Some(at) = p.modified_at {
        contact["created_at"] = json!(at.to_rfc3339());
        contact["updated_at"] = json!(at.to_rfc3339());
    }
    contact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picklist_names_become_property_names() {
        assert_eq!(property_name("Plezi Segment"), "plezi_segment");
        assert_eq!(property_name("segment"), "segment");
        assert_eq!(property_name("1st"), "p_1st");
    }
}
