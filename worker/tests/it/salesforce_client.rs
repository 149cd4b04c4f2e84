//! The Salesforce client against the sandbox Salesforce: refresh-token and
//! JWT bearer sessions, their renewal, listings through query locators and
//! past them, sObject Collections writes, converted leads, the daily limit,
//! and the engine reporting a client for sales to convert.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crmsync_entity::enums::CrmModule;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_worker::crm::salesforce::{SalesforceClient, kit};
use crmsync_worker::crm::{ClientOptions, CrmClient, CrmError, CrmRecord, ListQuery, RecordWrite};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{crm_http, fast_retries};

/// The sandbox's test-only key pair (sandbox/tests/fixtures/README.md).
const KEY: &str = include_str!("../../../sandbox/tests/fixtures/test-only-jwt-private-key.pem");
const CERTIFICATE: &str =
    include_str!("../../../sandbox/tests/fixtures/test-only-jwt-certificate.pem");

/// A fresh org on a sandbox of its own.
struct Org {
    sandbox: Sandbox,
    http: reqwest::Client,
    org: Value,
}

impl Org {
    /// An org with generous limits, changed by `spec` (the admin API's org spec).
    async fn start(spec: Value) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people: 0,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        let mut org = Self {
            sandbox,
            http: reqwest::Client::new(),
            org: Value::Null,
        };
        let mut body = json!({ "daily_api_requests": 1_000_000_000u64 });
        for (k, v) in spec.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        org.org = org
            .admin(reqwest::Method::POST, "/salesforce/orgs", body)
            .await;
        org
    }

    fn text(&self, key: &str) -> String {
        self.org[key].as_str().expect(key).to_owned()
    }

    fn refresh(&self, refresh_token: &str) -> SalesforceClient {
        self.client_with(refresh_token, &ClientOptions::default())
    }

    fn client_with(&self, refresh_token: &str, options: &ClientOptions) -> SalesforceClient {
        let credentials = kit::refresh_credentials(
            SecretString::from(self.text("client_id")),
            SecretString::from(self.text("client_secret")),
            SecretString::from(refresh_token.to_owned()),
            None,
        );
        SalesforceClient::new(&credentials, Some(&self.text("login_url")), crm_http())
            .expect("client")
            .with_options(options)
            .with_retry_policy(fast_retries())
    }

    fn client(&self) -> SalesforceClient {
        self.refresh(&self.text("refresh_token"))
    }

    fn jwt(&self, username: &str) -> SalesforceClient {
        let credentials = kit::jwt_credentials(
            SecretString::from(self.text("client_id")),
            username,
            SecretString::from(KEY.to_owned()),
            Some("SANDBOX"),
        );
        SalesforceClient::new(&credentials, Some(&self.text("login_url")), crm_http())
            .expect("client")
            .with_retry_policy(fast_retries())
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.sandbox.description().admin_url);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn org_path(&self, method: reqwest::Method, tail: &str, body: Value) -> Value {
        let path = format!("/salesforce/orgs/{}{tail}", self.text("org_id"));
        self.admin(method, &path, body).await
    }

    /// Stores leads as given; their ids.
    async fn put(&self, leads: Value) -> Vec<String> {
        let reply = self
            .org_path(
                reqwest::Method::POST,
                "/records/Lead",
                json!({ "records": leads }),
            )
            .await;
        reply["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stored(&self) -> Vec<Value> {
        let reply = self
            .org_path(reqwest::Method::GET, "/records/Lead", Value::Null)
            .await;
        reply["records"].as_array().unwrap().clone()
    }

    async fn stored_with(&self, email: &str) -> Value {
        self.stored()
            .await
            .into_iter()
            .find(|r| r["Email"] == json!(email))
            .unwrap_or_else(|| panic!("{email} is stored"))
    }

    /// Salesforce calls the sandbox counted whose endpoint contains `part`.
    async fn calls(&self, part: &str) -> u64 {
        self.count(|r| r["endpoint"].as_str().is_some_and(|e| e.contains(part)))
            .await
    }

    async fn answered(&self, status: u16) -> u64 {
        self.count(|r| r["status"].as_u64() == Some(u64::from(status)))
            .await
    }

    async fn count(&self, keep: impl Fn(&Value) -> bool) -> u64 {
        let reply = self
            .admin(
                reqwest::Method::GET,
                "/requests?system=salesforce",
                Value::Null,
            )
            .await;
        reply["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter(|r| keep(r))
            .map(|r| r["count"].as_u64().unwrap_or(1))
            .sum()
    }
}

fn lead(email: &str, last: &str, at: Option<DateTime<Utc>>) -> Value {
    let mut lead = json!({ "Email": email, "LastName": last, "Company": "Acme" });
    if let Some(at) = at {
        let at = at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
        lead["SystemModstamp"] = json!(at);
        lead["LastModifiedDate"] = json!(at);
        lead["CreatedDate"] = json!(at);
    }
    lead
}

fn write(id: Option<&str>, email: &str, pairs: &[(&str, Value)]) -> RecordWrite {
    RecordWrite {
        id: id.map(str::to_owned),
        values: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        owner_email: None,
        email: email.to_owned(),
    }
}

fn listing(cursor: Option<String>) -> ListQuery {
    ListQuery {
        module: CrmModule::Leads,
        since: None,
        cursor,
        page_size: 500,
    }
}

async fn list_from(client: &SalesforceClient, mut cursor: Option<String>) -> Vec<CrmRecord> {
    let mut out = Vec::new();
    loop {
        let page = client.list(&listing(cursor)).await.unwrap();
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn in_key_order(records: &[CrmRecord]) -> bool {
    records
        .windows(2)
        .all(|w| (w[0].modified_at, &w[0].id) < (w[1].modified_at, &w[1].id))
}

fn rejected(result: &Result<impl std::fmt::Debug, CrmError>) -> (String, Option<String>) {
    match result {
        Err(CrmError::Rejected { code, field, .. }) => (code.clone(), field.clone()),
        other => panic!("not a rejection: {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_clients_of_a_refresh_token_share_one_session() {
    let org = Org::start(json!({})).await;
    let clients: Vec<Arc<SalesforceClient>> = (0..5).map(|_| Arc::new(org.client())).collect();
    let calls = clients.iter().map(|c| {
        let c = c.clone();
        async move { c.fields(CrmModule::Leads).await }
    });
    for fields in futures::future::join_all(calls).await {
        let fields = fields.unwrap();
        let company = fields.iter().find(|f| f.api_name == "Company").unwrap();
        assert!(company.mandatory, "Company is required on leads");
    }
    assert_eq!(org.calls("oauth2/token").await, 1, "one session for all");
}

#[tokio::test]
async fn the_jwt_bearer_flow_signs_in_with_a_registered_certificate_only() {
    let org = Org::start(json!({})).await;
    let username = org.text("username");
    let refused = org.jwt(&username).users().await.unwrap_err();
    assert!(
        matches!(&refused, CrmError::Unauthorized(m) if m.contains("certificate")),
        "{refused:?}"
    );
    org.org_path(
        reqwest::Method::POST,
        "/certificates",
        json!({ "certificate": CERTIFICATE }),
    )
    .await;
    let users = org.jwt(&username).users().await.unwrap();
    assert!(users.iter().any(|u| u.active && !u.email.is_empty()));
    assert!(
        users.iter().any(|u| !u.active),
        "inactive users are listed too"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_is_unauthorized() {
    let org = Org::start(json!({})).await;
    let error = org
        .refresh("not-a-refresh-token")
        .fields(CrmModule::Leads)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CrmError::Unauthorized(m) if m.contains("invalid_grant")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_call_retried() {
    let org = Org::start(json!({})).await;
    let client = org.client();
    client.fields(CrmModule::Leads).await.unwrap();
    org.org_path(reqwest::Method::POST, "/sessions/expire", Value::Null)
        .await;
    let users = client.users().await.unwrap();
    assert!(!users.is_empty());
    assert_eq!(org.calls("oauth2/token").await, 2);
    assert_eq!(org.answered(401).await, 1);
}

#[tokio::test]
async fn a_listing_follows_pages_of_any_size_in_key_order_ties_included() {
    // Salesforce decides page sizes: this org gives 70 records a page.
    let org = Org::start(json!({ "settings": { "batch_size": 70 } })).await;
    let t0 = DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z")
        .unwrap()
        .to_utc();
    // 100 leads in one second (more than a page), then pairs of ties.
    let mut leads: Vec<Value> = (0..100)
        .map(|i| lead(&format!("tie{i}@example.com"), "Tie", Some(t0)))
        .collect();
    leads.extend((100..250).map(|i| {
        let at = t0 + chrono::Duration::seconds(1 + (i - 100) / 2);
        lead(&format!("t{i}@example.com"), "T", Some(at))
    }));
    org.put(Value::Array(leads)).await;

    let client = org.client();
    let records = list_from(&client, None).await;

    assert_eq!(records.len(), 250, "every lead once");
    assert!(in_key_order(&records), "by (SystemModstamp, Id)");
    assert_eq!(
        org.calls("/query").await,
        5,
        "one call a page, and the users"
    );
    let since = client
        .list(&ListQuery {
            since: Some(t0 + chrono::Duration::seconds(75)),
            ..listing(None)
        })
        .await
        .unwrap();
    assert_eq!(since.records.len(), 2, "{:?}", since.records);
    assert!(since.next_cursor.is_none());
}

#[tokio::test]
async fn a_listing_resumes_after_its_key_when_the_locator_is_gone() {
    let org = Org::start(json!({ "settings": { "batch_size": 40 } })).await;
    let t0 = DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z")
        .unwrap()
        .to_utc();
    org.put(Value::Array(
        (0..100)
            .map(|i| {
                let at = t0 + chrono::Duration::seconds(i / 30);
                lead(&format!("r{i}@example.com"), "R", Some(at))
            })
            .collect(),
    ))
    .await;
    let client = org.client();
    let first = client.list(&listing(None)).await.unwrap();
    let cursor = first.next_cursor.clone().unwrap();
    // The cursor outlives its locator (Salesforce drops idle ones, and a
    // resumed process holds a locator of another session).
    let (key, _) = cursor.rsplit_once(':').unwrap();
    let forged = format!("{key}:/services/data/v62.0/query/01gAAAAAAAAAAAAAA-40");

    let rest = list_from(&client, Some(forged)).await;

    let mut all = first.records.clone();
    all.extend(rest);
    assert_eq!(all.len(), 100, "every lead once");
    assert!(in_key_order(&all));
    assert_eq!(
        org.answered(400).await,
        1,
        "the forged locator was refused once"
    );
}

#[tokio::test]
async fn collections_writes_report_each_record_and_check_picklists_before_sending() {
    let org = Org::start(json!({})).await;
    let ids = org.put(json!([lead("old@x.com", "Old", None)])).await;
    let client = org.client();
    let results = client
        .write(
            CrmModule::Leads,
            vec![
                write(
                    None,
                    "new@x.com",
                    &[("LastName", json!("New")), ("Company", json!("Beta"))],
                ),
                write(
                    None,
                    "not-an-email",
                    &[("LastName", json!("Bad")), ("Company", json!("Beta"))],
                ),
                write(
                    None,
                    "pick@x.com",
                    &[
                        ("LastName", json!("Pick")),
                        ("Company", json!("Beta")),
                        ("Status", json!("Platinum")),
                    ],
                ),
                write(
                    Some(&ids[0]),
                    "old@x.com",
                    &[("Title", json!("CEO")), ("HasOptedOutOfEmail", json!(true))],
                ),
                write(None, "nolast@x.com", &[("Company", json!("Beta"))]),
            ],
        )
        .await;
    let created = results[0].as_ref().unwrap();
    assert!(created.created && created.id.starts_with("00Q"));
    assert_eq!(
        rejected(&results[1]),
        ("INVALID_EMAIL".into(), Some("Email".into()))
    );
    assert_eq!(
        rejected(&results[2]),
        ("INVALID_PICKLIST_VALUE".into(), Some("Status".into()))
    );
    let updated = results[3].as_ref().unwrap();
    assert!(!updated.created && updated.id == ids[0]);
    assert_eq!(rejected(&results[4]).0, "MISSING_LAST_NAME");
    assert_eq!(
        org.calls("POST /services/data/{version}/composite/sobjects")
            .await,
        1,
        "one call for the creates that passed the checks"
    );
    let old = org.stored_with("old@x.com").await;
    assert_eq!(old["Title"], json!("CEO"));
    assert_eq!(old["HasOptedOutOfEmail"], json!(true));
    assert!(
        org.stored()
            .await
            .iter()
            .all(|r| r["Email"] != json!("pick@x.com")),
        "refused before sending"
    );
}

#[tokio::test]
async fn a_lead_without_a_company_gets_the_default_or_is_refused_unsent() {
    let org = Org::start(json!({})).await;
    let refused = org
        .client()
        .write(
            CrmModule::Leads,
            vec![write(None, "solo@x.com", &[("LastName", json!("Solo"))])],
        )
        .await;
    assert_eq!(
        rejected(&refused[0]),
        ("CRM_VALIDATION".into(), Some("Company".into()))
    );
    assert_eq!(org.calls("composite/sobjects").await, 0, "nothing sent");

    let options = ClientOptions {
        default_company: Some("Independent".into()),
        ..ClientOptions::default()
    };
    let client = org.client_with(&org.text("refresh_token"), &options);
    let written = client
        .write(
            CrmModule::Leads,
            vec![write(None, "solo@x.com", &[("LastName", json!("Solo"))])],
        )
        .await;
    assert!(written[0].is_ok(), "{written:?}");
    assert_eq!(
        org.stored_with("solo@x.com").await["Company"],
        json!("Independent")
    );
}

#[tokio::test]
async fn the_owner_travels_by_user_email_both_ways() {
    let org = Org::start(json!({})).await;
    let client = org.client();
    let users = client.users().await.unwrap();
    let owner = users.iter().filter(|u| u.active).nth(1).unwrap().clone();
    let mut create = write(
        None,
        "owned@x.com",
        &[("LastName", json!("Owned")), ("Company", json!("Acme"))],
    );
    create.owner_email = Some(owner.email.to_uppercase());
    let written = client.write(CrmModule::Leads, vec![create]).await;
    let id = written[0].as_ref().unwrap().id.clone();
    assert_eq!(
        org.stored_with("owned@x.com").await["OwnerId"],
        json!(owner.id)
    );
    let read = client.get_many(CrmModule::Leads, &[id]).await.unwrap();
    assert_eq!(read[0].owner_email.as_deref(), Some(owner.email.as_str()));
    assert_eq!(read[0].values["OwnerId"], json!(owner.email));
}

#[tokio::test]
async fn converted_leads_are_read_as_converted_and_never_updated() {
    let org = Org::start(json!({})).await;
    let ids = org.put(json!([lead("conv@x.com", "Conv", None)])).await;
    let converted = org
        .admin(
            reqwest::Method::POST,
            &format!("/salesforce/leads/{}/convert", ids[0]),
            Value::Null,
        )
        .await;
    let client = org.client();

    let records = list_from(&client, None).await;
    assert_eq!(records.len(), 1);
    assert!(records[0].converted);
    assert_eq!(
        records[0].values["ConvertedContactId"],
        converted["contact_id"]
    );
    let contacts = client
        .list(&ListQuery {
            module: CrmModule::Contacts,
            ..listing(None)
        })
        .await
        .unwrap();
    assert_eq!(contacts.records[0].email.as_deref(), Some("conv@x.com"));

    let update = client
        .write(
            CrmModule::Leads,
            vec![write(
                Some(&ids[0]),
                "conv@x.com",
                &[("Title", json!("VP"))],
            )],
        )
        .await;
    assert_eq!(rejected(&update[0]).0, "CONVERTED_LEAD");
    let calls = org.count(|_| true).await;
    let conversion = client.convert_lead(&ids[0]).await;
    assert_eq!(rejected(&conversion).0, "CONVERT_IN_SALESFORCE");
    assert_eq!(org.count(|_| true).await, calls, "no call for a conversion");
}

#[tokio::test]
async fn a_duplicate_rule_refuses_the_record_it_blocks() {
    let org = Org::start(json!({ "settings": { "duplicate_rule": "block" } })).await;
    org.put(json!([lead("dup@x.com", "First", None)])).await;
    let results = org
        .client()
        .write(
            CrmModule::Leads,
            vec![write(
                None,
                "dup@x.com",
                &[("LastName", json!("Second")), ("Company", json!("Acme"))],
            )],
        )
        .await;
    assert_eq!(rejected(&results[0]).0, "DUPLICATE_IN_CRM");
}

#[tokio::test]
async fn a_spent_daily_limit_is_a_daily_limit_and_stops_calls_before_sending() {
    let org = Org::start(json!({ "daily_api_requests": 2 })).await;
    let client = org.client();
    client.fields(CrmModule::Leads).await.unwrap();
    client.users().await.unwrap();
    let error = client
        .get_many(CrmModule::Leads, &["00Q000000000001AAA".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(error, CrmError::DailyLimit(_)), "{error:?}");
    assert_eq!(org.answered(403).await, 0, "the budget was known spent");

    let fresh = org.client();
    let error = fresh.fields(CrmModule::Leads).await.unwrap_err();
    assert!(matches!(error, CrmError::DailyLimit(_)), "{error:?}");
    assert_eq!(org.answered(403).await, 1, "no retry of a spent day");
}

#[tokio::test]
async fn a_connection_check_names_a_missing_filter_field() {
    let org = Org::start(json!({})).await;
    let client = org.client();
    let ok = client
        .check(&crmsync_worker::crm::Expectations {
            modules: vec![CrmModule::Leads, CrmModule::Contacts],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ok.ok, "{}", ok.message);
    assert!(ok.message.contains("leads and contacts"), "{}", ok.message);
    let missing = client
        .check(&crmsync_worker::crm::Expectations::filter("Nope__c", "yes"))
        .await
        .unwrap();
    assert!(!missing.ok);
    assert!(missing.message.contains("Nope__c"), "{}", missing.message);
    let refused = org.refresh("revoked").check(&Default::default()).await;
    assert!(
        matches!(refused, Err(CrmError::Unauthorized(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_create_whose_reply_was_lost_is_found_by_email_not_sent_again() {
    let org = Org::start(json!({})).await;
    let client = org.client();
    client.fields(CrmModule::Leads).await.unwrap();
    let rule = org
        .sandbox
        .state()
        .faults
        .add(crmsync_sandbox::faults::FaultRule {
            id: 0,
            system: Some(crmsync_sandbox::System::Salesforce),
            tenant: None,
            endpoint: Some("POST /services/data/{version}/composite/sobjects".into()),
            kind: crmsync_sandbox::faults::FaultKind::TimeoutAfterWrite { delay_ms: 50 },
            rate: 1.0,
            count: Some(1),
            hits: 0,
        });
    let results = client
        .write(
            CrmModule::Leads,
            vec![write(
                None,
                "lost@x.com",
                &[("LastName", json!("Lost")), ("Company", json!("Acme"))],
            )],
        )
        .await;
    let written = results[0].as_ref().unwrap();
    assert_eq!(org.stored_with("lost@x.com").await["Id"], json!(written.id));
    assert_eq!(org.stored().await.len(), 1, "created once");
    assert_eq!(
        org.calls("POST /services/data/{version}/composite/sobjects")
            .await,
        1,
        "not sent again"
    );
    let faults = org.sandbox.state().faults.list();
    let hits = faults.iter().find(|r| r.id == rule.id).map(|r| r.hits);
    assert_eq!(hits, Some(1), "the reply was lost");
    assert_eq!(org.calls("/query").await, 1, "looked up by e-mail");
}

/// The engine on a Salesforce connector: a platform client whose lead the
/// API cannot convert is reported for sales (the item names what to do), and
/// once a rep converts it the link follows the new Contact (S10).
#[tokio::test]
async fn a_client_is_reported_for_sales_to_convert_and_then_follows_the_contact() {
    use crmsync_entity::TenantScoped;
    use crmsync_entity::enums::{
        ConnectorKind, ItemOutcome, Lifecycle, SyncDirection, SyncMode, SyncRunStatus,
    };
    use crmsync_entity::models::crm_link;
    use sea_orm::ActiveValue::Set;
    use sea_orm::{ColumnTrait, QueryFilter};

    let org = Org::start(json!({})).await;
    let fields = org.client().fields(CrmModule::Leads).await.unwrap();
    let credentials = kit::refresh_credentials(
        SecretString::from(org.text("client_id")),
        SecretString::from(org.text("client_secret")),
        SecretString::from(org.text("refresh_token")),
        None,
    );
    let login = org.text("login_url");
    let app = crate::support::App::assemble(
        org,
        ConnectorKind::Salesforce,
        credentials,
        &login,
        &fields,
        |s| {
            s.import_modules = vec![CrmModule::Leads, CrmModule::Contacts];
            s.default_company = Some("Acme".into());
        },
    )
    .await;
    for i in 0..2 {
        app.add_contact(
            &format!("k{i}@x.com"),
            Some("Kim"),
            Some(&format!("Lee{i}")),
            50,
        )
        .await;
    }
    let first = app.sync(SyncMode::Full).await;
    assert_eq!(first.status, SyncRunStatus::Succeeded, "{:?}", first.error);
    assert_eq!(first.to_crm_created, 2);
    let link_of = |contact_id: String| {
        let (tenant, db) = (app.tenant.clone(), app.db.db.clone());
        async move {
            crm_link::Entity::for_tenant(&tenant)
                .filter(crm_link::Column::ContactId.eq(contact_id))
                .one(&db)
                .await
                .unwrap()
                .expect("a link")
        }
    };

    let kim = app.contact("k0@x.com").await.unwrap();
    app.edit_contact(&kim, |c| c.lifecycle = Set(Lifecycle::Client))
        .await;
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Partial, "{:?}", run.error);
    let item = app
        .items(&run)
        .await
        .into_iter()
        .find(|i| i.email.as_deref() == Some("k0@x.com") && i.direction == SyncDirection::ToCrm)
        .expect("the client is an item");
    assert_eq!(item.outcome, ItemOutcome::Rejected);
    assert_eq!(item.reason_code.as_deref(), Some("CONVERT_IN_SALESFORCE"));
    let lead_id = link_of(kim.id.clone()).await.crm_record_id;
    assert!(
        item.message
            .as_deref()
            .unwrap_or_default()
            .contains(&lead_id),
        "names the lead: {item:?}"
    );
    let lead = app
        .crm
        .stored()
        .await
        .into_iter()
        .find(|l| l["Id"] == json!(lead_id))
        .unwrap();
    assert_eq!(lead["IsConverted"], json!(false), "nothing was converted");

    // A sales rep converts it in Salesforce; the next run follows.
    let converted = app
        .crm
        .admin(
            reqwest::Method::POST,
            &format!("/salesforce/leads/{lead_id}/convert"),
            Value::Null,
        )
        .await;
    let contact_id = converted["contact_id"].as_str().unwrap().to_owned();
    let run = app.sync(SyncMode::Incremental).await;
    assert_eq!(run.status, SyncRunStatus::Succeeded, "{:?}", run.error);
    let link = link_of(kim.id.clone()).await;
    assert_eq!(link.module, CrmModule::Contacts);
    assert_eq!(link.crm_record_id, contact_id);
    let kim = app.contact("k0@x.com").await.unwrap();
    assert_eq!(kim.lifecycle, Lifecycle::Client);
    let lee = app.contact("k1@x.com").await.unwrap();
    assert_eq!(link_of(lee.id).await.module, CrmModule::Leads, "untouched");
}

/// Ids of the deleted records, sorted.
fn sorted_ids(deleted: &[crmsync_worker::crm::DeletedRecord]) -> Vec<String> {
    let mut ids: Vec<String> = deleted.iter().map(|d| d.id.clone()).collect();
    ids.sort_unstable();
    ids
}

// The replication call answers in one reply (no paging): no test of pages.
#[tokio::test]
async fn deleted_leads_and_contacts_are_found_from_since_on() {
    let org = Org::start(json!({})).await;
    let two_days_ago = Utc::now() - chrono::Duration::days(2);
    let mut before = lead("before@x.com", "Before", Some(two_days_ago));
    before["IsDeleted"] = json!(true);
    let ids = org
        .put(json!([
            lead("live@x.com", "Live", None),
            lead("now@x.com", "Now", None),
            before,
        ]))
        .await;
    let contact = org
        .org_path(
            reqwest::Method::POST,
            "/records/Contact",
            json!({ "records": [{"LastName": "Gone", "Email": "gone@x.com"}] }),
        )
        .await["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = Utc::now() - chrono::Duration::hours(1);
    org.org_path(
        reqwest::Method::DELETE,
        &format!("/records/Lead/{}", ids[1]),
        Value::Null,
    )
    .await;
    org.org_path(
        reqwest::Method::DELETE,
        &format!("/records/Contact/{contact}"),
        Value::Null,
    )
    .await;
    let client = org.client();

    let recent = client.deleted(CrmModule::Leads, Some(since)).await.unwrap();
    let all = client.deleted(CrmModule::Leads, None).await.unwrap();
    let contacts = client.deleted(CrmModule::Contacts, None).await.unwrap();

    assert_eq!(sorted_ids(&recent), [ids[1].clone()], "{recent:?}");
    let at = recent[0].deleted_at.expect("deletedDate");
    assert!(
        at >= since && at <= Utc::now() + chrono::Duration::minutes(1),
        "{at}"
    );
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort_unstable();
    assert_eq!(sorted_ids(&all), expected, "the live lead never comes");
    assert_eq!(sorted_ids(&contacts), [contact]);
}

#[tokio::test]
async fn a_failing_deleted_records_call_is_an_error_after_retries() {
    let org = Org::start(json!({})).await;
    let rule = crate::support::always_unavailable(
        &org.sandbox,
        crmsync_sandbox::System::Salesforce,
        "GET /services/data/{version}/sobjects/{sobject}/deleted",
    );

    let result = org.client().deleted(CrmModule::Leads, None).await;

    assert!(
        matches!(result, Err(CrmError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        crate::support::fault_hits(&org.sandbox, rule),
        u64::from(fast_retries().attempts),
        "retried"
    );
}
