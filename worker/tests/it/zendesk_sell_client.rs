//! The Zendesk Sell client against the sandbox Sell: fields with prefixed
//! custom fields, listings newest-first turned oldest-first, writes with
//! owners and custom fields, validation errors, lead conversion, a revoked
//! token, a spent hourly allowance and the per-second pacing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_worker::crm::zendesk_sell::{ZendeskSellClient, kit};
use crmsync_worker::crm::{CrmClient, CrmError, FieldType, ListQuery, RecordWrite};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{crm_http, fast_retries};

/// A fresh account on a sandbox of its own.
struct Account {
    sandbox: Sandbox,
    http: reqwest::Client,
    account: Value,
}

impl Account {
    async fn start(spec: Value) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people: 0,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        let http = reqwest::Client::new();
        let account: Value = http
            .post(format!(
                "{}/admin/zendesk_sell/accounts",
                sandbox.base_url()
            ))
            .json(&spec)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("json");
        Self {
            sandbox,
            http,
            account,
        }
    }

    fn client(&self) -> ZendeskSellClient {
        let credentials = kit::credentials(SecretString::from(
            self.account["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        ));
        ZendeskSellClient::new(
            &credentials,
            Some(self.account["base_url"].as_str().expect("base_url")),
            crm_http(),
        )
        .expect("client")
        .with_retry_policy(fast_retries())
    }

    async fn admin(&self, method: reqwest::Method, rest: &str, body: Value) -> Value {
        let id = self.account["account_id"].as_u64().expect("id");
        self.http
            .request(
                method,
                format!(
                    "{}/admin/zendesk_sell/accounts/{id}{rest}",
                    self.sandbox.base_url()
                ),
            )
            .json(&body)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

fn create(email: &str, pairs: &[(&str, Value)]) -> RecordWrite {
    RecordWrite {
        id: None,
        values: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        owner_email: None,
        email: email.to_owned(),
    }
}

fn query(since: Option<DateTime<Utc>>) -> ListQuery {
    ListQuery {
        module: CrmModule::Leads,
        since,
        cursor: None,
        page_size: 100,
    }
}

#[tokio::test]
async fn fields_carry_built_ins_and_custom_fields_by_prefixed_name() {
    let account = Account::start(json!({})).await;

    let fields = account.client().fields(CrmModule::Leads).await.unwrap();

    let by = |k: &str| fields.iter().find(|f| f.api_name == k).cloned().unwrap();
    assert_eq!(by("email").field_type, FieldType::Email);
    assert_eq!(by("owner_id").field_type, FieldType::User);
    assert!(by("updated_at").read_only);
    let status = by("custom_fields.status");
    assert!(status.custom);
    assert_eq!(status.field_type, FieldType::Picklist);
    let labels: Vec<_> = status
        .options
        .unwrap()
        .into_iter()
        .map(|o| o.label)
        .collect();
    assert_eq!(labels, ["Prospect", "Client"]);
    assert_eq!(by("custom_fields.score").field_type, FieldType::Number);
}

#[tokio::test]
async fn a_listing_reads_past_a_page_and_returns_records_since_oldest_first() {
    let account = Account::start(json!({})).await;
    let records: Vec<Value> = (0..130)
        .map(|i| {
            json!({ "last_name": format!("L{i}"), "email": format!("l{i}@example.com"),
                    "updated_at": format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60) })
        })
        .collect();
    account
        .admin(
            reqwest::Method::POST,
            "/records/leads",
            json!({ "records": records }),
        )
        .await;
    let client = account.client();

    let first = client.list(&query(None)).await.unwrap();
    let second = client
        .list(&ListQuery {
            cursor: first.next_cursor.clone(),
            ..query(None)
        })
        .await
        .unwrap();
    let since: DateTime<Utc> = "2026-01-01T00:02:00Z".parse().unwrap();
    let recent = client.list(&query(Some(since))).await.unwrap();

    assert_eq!(first.records.len(), 100);
    assert_eq!(second.records.len(), 30, "the rest, after the cursor");
    assert!(second.next_cursor.is_none());
    let all: Vec<_> = first.records.iter().chain(&second.records).collect();
    assert!(all.windows(2).all(|w| w[0].modified_at <= w[1].modified_at));
    assert!(recent.next_cursor.is_none());
    assert_eq!(recent.records.len(), 10, "00:02:00 to 00:02:09");
    assert_eq!(recent.records[0].email.as_deref(), Some("l120@example.com"));
}

#[tokio::test]
async fn writes_create_and_partially_update_with_custom_fields_and_owner() {
    let account = Account::start(json!({})).await;
    let client = account.client();
    let users = client.users().await.unwrap();
    let owner = users
        .iter()
        .find(|u| u.active && u.name == "Hugo Sales")
        .unwrap();
    let mut write = create(
        "zoe@example.com",
        &[
            ("first_name", json!("Zoë")),
            ("last_name", json!("Nuñez")),
            ("email", json!("zoe@example.com")),
            ("custom_fields.score", json!(12)),
        ],
    );
    write.owner_email = Some(owner.email.to_uppercase());

    let made = client.write(CrmModule::Leads, vec![write]).await;
    let made = made[0].as_ref().unwrap().clone();
    let update = RecordWrite {
        id: Some(made.id.clone()),
        values: BTreeMap::from([("custom_fields.score".to_owned(), json!(40))]),
        owner_email: None,
        email: "zoe@example.com".into(),
    };
    client.write(CrmModule::Leads, vec![update]).await[0]
        .as_ref()
        .unwrap();
    let read = client
        .get_many(CrmModule::Leads, std::slice::from_ref(&made.id))
        .await
        .unwrap();

    assert!(made.created);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].values["custom_fields.score"], json!(40));
    assert_eq!(read[0].values["first_name"], json!("Zoë"));
    assert_eq!(read[0].owner_email.as_deref(), Some(owner.email.as_str()));
}

#[tokio::test]
async fn a_lead_without_a_name_is_rejected_naming_the_field() {
    let account = Account::start(json!({})).await;

    let result = account
        .client()
        .write(
            CrmModule::Leads,
            vec![create(
                "x@example.com",
                &[("email", json!("x@example.com"))],
            )],
        )
        .await;

    match &result[0] {
        Err(CrmError::Rejected { code, field, .. }) => {
            assert_eq!(code, "CRM_VALIDATION");
            assert_eq!(field.as_deref(), Some("last_name"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_converted_lead_becomes_a_contact_and_a_second_conversion_is_refused() {
    let account = Account::start(json!({})).await;
    let client = account.client();
    let made = client
        .write(
            CrmModule::Leads,
            vec![create(
                "ines@example.com",
                &[
                    ("last_name", json!("Nuñez")),
                    ("email", json!("ines@example.com")),
                ],
            )],
        )
        .await;
    let lead = made[0].as_ref().unwrap().id.clone();

    let conversion = client.convert_lead(&lead).await.unwrap();
    let again = client.convert_lead(&lead).await;

    let contacts = client
        .get_many(
            CrmModule::Contacts,
            std::slice::from_ref(&conversion.contact_id),
        )
        .await
        .unwrap();
    assert_eq!(contacts[0].email.as_deref(), Some("ines@example.com"));
    assert!(matches!(again, Err(CrmError::Rejected { code, .. }) if code == "CONVERTED_LEAD"));
    assert!(client.list(&query(None)).await.unwrap().records.is_empty());
    let looked_up = client
        .get_many(CrmModule::Leads, std::slice::from_ref(&lead))
        .await
        .unwrap();
    assert_eq!(looked_up.len(), 1, "a converted lead is not deleted");
    assert!(looked_up[0].converted);
}

#[tokio::test]
async fn a_spent_hourly_allowance_stops_with_the_daily_limit_error() {
    let account = Account::start(json!({ "limits": { "hourly": 3 } })).await;
    let client = account.client();
    client.users().await.unwrap();

    let result = client.list(&query(None)).await;

    assert!(matches!(result, Err(CrmError::DailyLimit(_))), "{result:?}");
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized() {
    let account = Account::start(json!({})).await;
    account
        .admin(reqwest::Method::POST, "/revoke", json!({}))
        .await;

    let result = account.client().users().await;

    assert!(
        matches!(result, Err(CrmError::Unauthorized(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_client_keeps_under_ten_calls_a_second_without_a_429() {
    let account = Account::start(json!({})).await;
    let client = account.client();
    client.users().await.unwrap();

    for _ in 0..25 {
        client
            .get_many(CrmModule::Leads, &["1".into()])
            .await
            .unwrap();
    }

    let requests: Value = account
        .http
        .get(format!(
            "{}/admin/requests?system=zendesk_sell&status=429",
            account.sandbox.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests["total"], 0, "{requests}");
}
