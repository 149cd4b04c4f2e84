//! The HubSpot client against the sandbox HubSpot: OAuth tokens, listing past
//! the search cap, limits, lifecycle stages, enumerations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crmsync_entity::enums::CrmModule;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_worker::crm::hubspot::{HubspotClient, kit};
use crmsync_worker::crm::{CrmClient, CrmError, CrmRecord, ListQuery, RecordWrite};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{crm_http, fast_retries};

/// A fresh portal on a sandbox of its own.
struct Hub {
    sandbox: Sandbox,
    http: reqwest::Client,
    portal: Value,
}

impl Hub {
    /// A portal with generous limits unless `limits` says otherwise.
    async fn start(limits: Value) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people: 0,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        let mut hub = Self {
            sandbox,
            http: reqwest::Client::new(),
            portal: Value::Null,
        };
        let mut all = json!({
            "ten_secondly": 1_000_000, "oauth_ten_secondly": 1_000_000,
            "daily": 1_000_000_000u64, "search_per_second": 1_000_000,
        });
        for (k, v) in limits.as_object().into_iter().flatten() {
            all[k] = v.clone();
        }
        hub.portal = hub
            .admin(
                reqwest::Method::POST,
                "/hubspot/portals",
                json!({ "limits": all }),
            )
            .await;
        hub
    }

    fn text(&self, key: &str) -> String {
        self.portal[key].as_str().expect(key).to_owned()
    }

    fn id(&self) -> u64 {
        self.portal["portal_id"].as_u64().expect("portal_id")
    }

    fn private(&self) -> HubspotClient {
        let credentials =
            kit::private_app_credentials(SecretString::from(self.text("access_token")));
        HubspotClient::new(&credentials, Some(&self.text("base_url")), crm_http())
            .expect("client")
            .with_retry_policy(fast_retries())
    }

    fn oauth(&self, refresh_token: &str) -> HubspotClient {
        let credentials = kit::oauth_credentials(
            SecretString::from(self.text("client_id")),
            SecretString::from(self.text("client_secret")),
            SecretString::from(refresh_token.to_owned()),
        );
        HubspotClient::new(&credentials, Some(&self.text("base_url")), crm_http())
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

    async fn portal_path(&self, method: reqwest::Method, tail: &str, body: Value) -> Value {
        self.admin(
            method,
            &format!("/hubspot/portals/{}{tail}", self.id()),
            body,
        )
        .await
    }

    async fn put(&self, contacts: Value) -> Vec<String> {
        let reply = self
            .portal_path(
                reqwest::Method::POST,
                "/contacts",
                json!({ "contacts": contacts }),
            )
            .await;
        reply["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stored(&self) -> Vec<Value> {
        let reply = self
            .portal_path(reqwest::Method::GET, "/contacts", Value::Null)
            .await;
        reply["contacts"].as_array().unwrap().clone()
    }

    async fn stored_with(&self, email: &str) -> Value {
        self.stored()
            .await
            .into_iter()
            .find(|c| c["properties"]["email"] == json!(email))
            .unwrap_or_else(|| panic!("{email} is stored"))
    }

    /// HubSpot calls the sandbox counted whose endpoint contains `part`.
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
                "/requests?system=hubspot",
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

async fn list_all(client: &HubspotClient, page_size: u32) -> Vec<CrmRecord> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list(&ListQuery {
                module: CrmModule::Contacts,
                since: None,
                cursor,
                page_size,
            })
            .await
            .unwrap();
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn concurrent_calls_of_an_oauth_app_share_one_refresh() {
    let hub = Hub::start(json!({})).await;
    let refresh = hub.text("refresh_token");
    let clients: Vec<Arc<HubspotClient>> = (0..6).map(|_| Arc::new(hub.oauth(&refresh))).collect();
    let calls = clients.iter().map(|c| {
        let c = c.clone();
        async move { c.fields(CrmModule::Contacts).await }
    });
    for result in futures::future::join_all(calls).await {
        assert!(result.unwrap().iter().any(|f| f.api_name == "email"));
    }
    assert_eq!(hub.calls("/oauth/v1/token").await, 1, "one refresh for all");
}

#[tokio::test]
async fn a_refused_refresh_token_is_unauthorized() {
    let hub = Hub::start(json!({})).await;
    let error = hub
        .oauth("not-a-refresh-token")
        .fields(CrmModule::Contacts)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CrmError::Unauthorized(m) if m.contains("BAD_REFRESH_TOKEN")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_call_retried() {
    let hub = Hub::start(json!({})).await;
    let client = hub.oauth(&hub.text("refresh_token"));
    client.users().await.unwrap();
    // The sandbox's clock moves past the token's 30 minutes; ours has not.
    hub.admin(
        reqwest::Method::POST,
        "/clock",
        json!({ "advance_secs": 1900 }),
    )
    .await;
    let records = client
        .get_many(CrmModule::Contacts, &["1".to_owned()])
        .await
        .unwrap();
    assert!(records.is_empty());
    assert_eq!(hub.calls("/oauth/v1/token").await, 2);
    assert_eq!(hub.answered(401).await, 1);
}

#[tokio::test]
async fn a_missing_scope_is_said_in_words() {
    let hub = Hub::start(json!({})).await;
    let token = hub
        .portal_path(
            reqwest::Method::POST,
            "/tokens",
            json!({ "kind": "private", "scopes": ["crm.objects.contacts.read", "crm.schemas.contacts.read"] }),
        )
        .await;
    let credentials = kit::private_app_credentials(SecretString::from(
        token["token"].as_str().unwrap().to_owned(),
    ));
    let client = HubspotClient::new(&credentials, Some(&hub.text("base_url")), crm_http())
        .unwrap()
        .with_retry_policy(fast_retries());
    let check = client
        .check(&crmsync_worker::crm::Expectations::default())
        .await
        .unwrap();
    assert!(!check.ok);
    assert!(
        check.message.contains("crm.objects.contacts.write"),
        "{}",
        check.message
    );
}

#[tokio::test]
async fn listing_moves_the_search_window_past_the_10000_cap() {
    let hub = Hub::start(json!({})).await;
    let n = 10_150;
    hub.portal_path(
        reqwest::Method::POST,
        "/seed",
        json!({ "people": n, "missing_email": 0.0, "duplicate_email": 0.0 }),
    )
    .await;
    let stored = hub.stored().await.len();
    let records = list_all(&hub.private(), 200).await;
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert!(
        records
            .windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at),
        "oldest first"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), stored, "every contact once");
    assert_eq!(records.len(), stored, "none twice");
    assert!(stored > 10_000);
    assert_eq!(hub.answered(400).await, 0, "never past the cap");
}

#[tokio::test]
async fn a_spent_daily_limit_is_a_daily_limit_error() {
    let hub = Hub::start(json!({ "daily": 1 })).await;
    let client = hub.private();
    client.fields(CrmModule::Contacts).await.unwrap();
    let error = client.users().await.unwrap_err();
    assert!(matches!(error, CrmError::DailyLimit(_)), "{error:?}");
    assert_eq!(hub.answered(429).await, 1, "no retry of a spent day");
}

#[tokio::test]
async fn the_lifecycle_stage_never_moves_backwards() {
    let hub = Hub::start(json!({})).await;
    hub.portal_path(
        reqwest::Method::PATCH,
        "/settings",
        json!({ "lifecycle_backward": "reject" }),
    )
    .await;
    let ids = hub
        .put(json!([
            {"properties": {"email": "fan@x.com", "lifecyclestage": "evangelist"}},
            {"properties": {"email": "opp@x.com", "lifecyclestage": "opportunity"}},
        ]))
        .await;
    let client = hub.private();
    let results = client
        .write(
            CrmModule::Contacts,
            vec![
                write(
                    Some(&ids[0]),
                    "fan@x.com",
                    &[("lifecyclestage", json!("CLIENT"))],
                ),
                write(
                    Some(&ids[1]),
                    "opp@x.com",
                    &[("lifecyclestage", json!("CLIENT"))],
                ),
                write(None, "new@x.com", &[("lifecyclestage", json!("PROSPECT"))]),
            ],
        )
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stage = |c: Value| c["properties"]["lifecyclestage"].clone();
    assert_eq!(
        stage(hub.stored_with("fan@x.com").await),
        json!("evangelist")
    );
    assert_eq!(stage(hub.stored_with("opp@x.com").await), json!("customer"));
    assert_eq!(stage(hub.stored_with("new@x.com").await), json!("lead"));
    // A client read back is CLIENT; a prospect never moves a customer back.
    let back = client
        .write(
            CrmModule::Contacts,
            vec![write(
                Some(&ids[1]),
                "opp@x.com",
                &[("lifecyclestage", json!("PROSPECT"))],
            )],
        )
        .await;
    assert!(back[0].is_ok(), "{back:?}");
    let records = client.get_many(CrmModule::Contacts, &ids).await.unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.values["lifecyclestage"] == json!("CLIENT"))
    );
}

#[tokio::test]
async fn an_unknown_enumeration_value_is_refused_before_sending() {
    let hub = Hub::start(json!({})).await;
    let client = hub.private();
    let results = client
        .write(
            CrmModule::Contacts,
            vec![
                write(None, "ok@x.com", &[("hs_lead_status", json!("New"))]),
                write(None, "bad@x.com", &[("hs_lead_status", json!("Platinum"))]),
            ],
        )
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    match &results[1] {
        Err(CrmError::Rejected {
            code,
            field,
            message,
        }) => {
            assert_eq!(code, "INVALID_PICKLIST_VALUE");
            assert_eq!(field.as_deref(), Some("hs_lead_status"));
            assert!(message.contains("Open Deal"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hub.calls("batch/upsert").await, 1);
    assert_eq!(hub.answered(400).await, 0, "nothing refused by HubSpot");
}

#[tokio::test]
async fn calls_are_paced_to_the_window_the_headers_announce() {
    let hub = Hub::start(json!({ "ten_secondly": 4 })).await;
    let client = Arc::new(hub.private());
    let started = std::time::Instant::now();
    let calls = (0..5).map(|i| {
        let c = client.clone();
        async move { c.get_many(CrmModule::Contacts, &[i.to_string()]).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(hub.answered(429).await, 0, "the window was never overrun");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "the fifth call waited for the window"
    );
}

#[tokio::test]
async fn a_batch_refused_whole_is_split_until_the_bad_input_stands_alone() {
    let hub = Hub::start(json!({})).await;
    let writes = (0..5)
        .map(|i| {
            let email = if i == 3 {
                "nodot@localhost".to_owned()
            } else {
                format!("w{i}@x.com")
            };
            write(None, &email, &[("firstname", json!(format!("W{i}")))])
        })
        .collect();
    let results = hub.private().write(CrmModule::Contacts, writes).await;
    for (i, result) in results.iter().enumerate() {
        if i == 3 {
            match result {
                Err(CrmError::Rejected { code, field, .. }) => {
                    assert_eq!(code, "INVALID_EMAIL");
                    assert_eq!(field.as_deref(), Some("email"));
                }
                other => panic!("{other:?}"),
            }
        } else {
            let written = result.as_ref().unwrap();
            assert!(written.created);
        }
    }
    assert_eq!(hub.stored().await.len(), 4);
    let upserts = hub.calls("batch/upsert").await;
    assert!(upserts <= 7, "{upserts} calls for one bad input in five");
}

#[tokio::test]
async fn a_listing_loses_no_contact_whatever_order_hubspot_gives_ties() {
    let hub = Hub::start(json!({})).await;
    // HubSpot documents no order among search results of one millisecond:
    // the sandbox gives them in descending id, the order the old client lost
    // records in.
    hub.portal_path(
        reqwest::Method::PATCH,
        "/settings",
        json!({ "search_ties": "reversed" }),
    )
    .await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-01T08:00:00.000Z")
        .unwrap()
        .to_utc();
    let contact = |i: usize, ms: i64| {
        json!({
            "properties": { "email": format!("tie{i}@example.com"), "lastname": format!("Tie{i}") },
            "updated_at": t0 + chrono::Duration::milliseconds(ms),
        })
    };
    // 120 contacts in one millisecond (more than a page), then groups of 7
    // that pages end inside of.
    let mut contacts: Vec<Value> = (0..120).map(|i| contact(i, 0)).collect();
    contacts.extend((120..330).map(|i| contact(i, 1 + (i as i64 - 120) / 7)));
    hub.put(Value::Array(contacts)).await;

    let records = list_all(&hub.private(), 50).await;
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert!(
        records
            .windows(2)
            .all(|w| (w[0].modified_at, w[0].id.len(), &w[0].id)
                < (w[1].modified_at, w[1].id.len(), &w[1].id)),
        "oldest first, ties by id"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 330, "every contact");
    assert_eq!(records.len(), 330, "none twice");
}

/// Ids of the deleted records, sorted.
fn sorted_ids(deleted: &[crmsync_worker::crm::DeletedRecord]) -> Vec<String> {
    let mut ids: Vec<String> = deleted.iter().map(|d| d.id.clone()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn archived_contacts_are_found_from_since_on() {
    let hub = Hub::start(json!({})).await;
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    let ids = hub
        .put(json!([
            {"properties": {"email": "live@x.com"}},
            {"properties": {"email": "now@x.com"}},
            {"properties": {"email": "before@x.com"}, "archived": true,
             "created_at": two_days_ago, "updated_at": two_days_ago},
        ]))
        .await;
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    hub.portal_path(
        reqwest::Method::DELETE,
        &format!("/contacts/{}", ids[1]),
        Value::Null,
    )
    .await;
    let client = hub.private();

    let recent = client
        .deleted(CrmModule::Contacts, Some(since))
        .await
        .unwrap();
    let all = client.deleted(CrmModule::Contacts, None).await.unwrap();

    assert_eq!(sorted_ids(&recent), [ids[1].clone()], "{recent:?}");
    let at = recent[0].deleted_at.expect("archivedAt");
    assert!(
        at >= since && at <= chrono::Utc::now() + chrono::Duration::minutes(1),
        "{at}"
    );
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort_unstable();
    assert_eq!(sorted_ids(&all), expected, "the live contact never comes");
}

#[tokio::test]
async fn more_archived_contacts_than_a_page_are_all_found() {
    let hub = Hub::start(json!({})).await;
    let contacts: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"email": format!("gone{i}@x.com")}, "archived": true}))
        .collect();
    let mut expected = hub.put(Value::Array(contacts)).await;
    expected.sort_unstable();

    let deleted = hub
        .private()
        .deleted(CrmModule::Contacts, None)
        .await
        .unwrap();

    assert_eq!(sorted_ids(&deleted), expected);
    assert_eq!(
        hub.calls("GET /hubspot/crm/v3/objects/contacts").await,
        2,
        "two pages of 100"
    );
}

#[tokio::test]
async fn a_failing_archived_listing_is_an_error_after_retries() {
    let hub = Hub::start(json!({})).await;
    let rule = crate::support::always_unavailable(
        &hub.sandbox,
        crmsync_sandbox::System::Hubspot,
        "GET /hubspot/crm/v3/objects/contacts",
    );

    let result = hub.private().deleted(CrmModule::Contacts, None).await;

    assert!(
        matches!(result, Err(CrmError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        crate::support::fault_hits(&hub.sandbox, rule),
        u64::from(fast_retries().attempts),
        "retried"
    );
}
