//! The Zoho CRM client against the sandbox Zoho: tokens, fields, listing, upserts.

use std::collections::BTreeMap;

use crmsync_entity::enums::CrmModule;
use crmsync_worker::crm::zoho::{self, ZohoClient};
use crmsync_worker::crm::{CrmClient, CrmError, Expectations, FieldType, ListQuery, RecordWrite};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{Zoho, crm_http, fast_retries};

fn lead(i: usize, last_name: Option<&str>) -> RecordWrite {
    let email = format!("lead{i}@example.com");
    let mut values = BTreeMap::new();
    values.insert("First_Name".to_owned(), json!(format!("Lead{i}")));
    if let Some(last) = last_name {
        values.insert("Last_Name".to_owned(), json!(last));
    }
    values.insert("Email".to_owned(), json!(email));
    RecordWrite {
        id: None,
        values,
        owner_email: None,
        email,
    }
}

async fn list_all(
    client: &ZohoClient,
    module: CrmModule,
) -> (Vec<crmsync_worker::crm::CrmRecord>, Vec<String>) {
    let mut out = Vec::new();
    let mut cursors = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list(&ListQuery {
                module,
                since: None,
                cursor,
                page_size: 200,
            })
            .await
            .unwrap();
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => {
                cursors.push(c.clone());
                cursor = Some(c);
            }
            None => return (out, cursors),
        }
    }
}

#[test]
fn data_centres_have_their_accounts_servers() {
    assert_eq!(zoho::accounts_url("com"), Some("https://accounts.zoho.com"));
    assert_eq!(zoho::accounts_url("eu"), Some("https://accounts.zoho.eu"));
    assert_eq!(
        zoho::accounts_url("com.au"),
        Some("https://accounts.zoho.com.au")
    );
    assert_eq!(
        zoho::accounts_url("ca"),
        Some("https://accounts.zohocloud.ca")
    );
    assert_eq!(zoho::accounts_url("sa"), Some("https://accounts.zoho.sa"));
    assert_eq!(zoho::accounts_url("mars"), None);
}

#[tokio::test]
async fn a_grant_code_gives_a_refresh_token_that_gives_access_tokens() {
    let zoho = Zoho::start(0).await;
    let users = zoho.client().users().await.unwrap();
    assert_eq!(users.len(), 3, "four users, the last disabled: {users:?}");
    assert!(users.iter().all(|u| u.active && u.email.contains('@')));
}

#[tokio::test]
async fn a_used_grant_code_is_refused_naming_the_grant_code() {
    let zoho = Zoho::start(0).await;
    let d = zoho.sandbox.description().zoho.clone();
    let err = zoho::exchange_grant_code(
        &crm_http(),
        &d.accounts_url,
        &d.client_id,
        &d.client_secret,
        &d.grant_code,
    )
    .await
    .unwrap_err();
    let CrmError::Rejected {
        code,
        field,
        message,
    } = err
    else {
        panic!("expected a rejection, got {err:?}");
    };
    assert_eq!(code, "INVALID_GRANT_CODE");
    assert_eq!(field.as_deref(), Some("grantCode"));
    assert!(message.contains("Self Client"), "{message}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_naming_the_secret() {
    let zoho = Zoho::start(0).await;
    let d = zoho.sandbox.description().zoho.clone();
    let code = zoho
        .http
        .post(&d.mint_grant_code_url)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = zoho::exchange_grant_code(&crm_http(), &d.accounts_url, &d.client_id, "nope", &code)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CrmError::Rejected { field: Some(f), .. } if f == "clientSecret"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bad_refresh_token_is_unauthorized_with_a_message_a_person_can_act_on() {
    let mut zoho = Zoho::start(0).await;
    zoho.refresh_token = SecretString::from("1000.nope.nope");
    let err = zoho.client().users().await.unwrap_err();
    let CrmError::Unauthorized(message) = err else {
        panic!("expected Unauthorized, got {err:?}");
    };
    assert!(message.contains("grant code"), "{message}");
    // A refused grant is for a person to fix: check hands it on as Unauthorized.
    let err = zoho
        .client()
        .check(&Expectations::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CrmError::Unauthorized(m) if m.contains("grant code")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_access_token_expiring_mid_run_is_refreshed_transparently() {
    let zoho = Zoho::start(20).await;
    let client = zoho.client();
    let before = zoho.token_calls().await;
    client.fields(CrmModule::Leads).await.unwrap();
    assert_eq!(zoho.token_calls().await, before + 1);

    zoho.advance_clock(3700).await;
    let (leads, _) = list_all(&client, CrmModule::Leads).await;

    assert!(!leads.is_empty());
    assert_eq!(zoho.token_calls().await, before + 2);
}

#[tokio::test]
async fn fifty_jobs_of_one_connector_share_one_access_token() {
    let zoho = Zoho::start(20).await;
    let before = zoho.token_calls().await;
    // Each job (run) makes its own client from the connector's credentials.
    let clients: Vec<ZohoClient> = (0..50).map(|_| zoho.client()).collect();
    let listings = clients.iter().map(|client| {
        client.list(&ListQuery {
            module: CrmModule::Leads,
            since: None,
            cursor: None,
            page_size: 5,
        })
    });
    for page in futures::future::join_all(listings).await {
        page.unwrap();
    }
    assert_eq!(zoho.token_calls().await, before + 1);
    // A later job reuses it too.
    zoho.client().users().await.unwrap();
    assert_eq!(zoho.token_calls().await, before + 1);
}

#[tokio::test]
async fn fifty_concurrent_calls_cause_one_refresh() {
    let zoho = Zoho::start(20).await;
    let client = zoho.client();
    let before = zoho.token_calls().await;

    // A fresh client: fifty callers need a first token at once.
    let calls = (0..50).map(|_| client.get_many(CrmModule::Leads, &[]));
    futures::future::join_all(calls).await;
    let listings = (0..50).map(|_| {
        client.list(&ListQuery {
            module: CrmModule::Leads,
            since: None,
            cursor: None,
            page_size: 5,
        })
    });
    for page in futures::future::join_all(listings).await {
        page.unwrap();
    }
    assert_eq!(zoho.token_calls().await, before + 1);

    // The token expires: fifty callers are refused it at once.
    zoho.advance_clock(3700).await;
    let listings = (0..50).map(|_| {
        client.list(&ListQuery {
            module: CrmModule::Leads,
            since: None,
            cursor: None,
            page_size: 5,
        })
    });
    for page in futures::future::join_all(listings).await {
        page.unwrap();
    }
    assert_eq!(zoho.token_calls().await, before + 2);
}

#[tokio::test]
async fn fields_carry_types_picklist_actual_values_and_flags() {
    let zoho = Zoho::start(0).await;
    let fields = zoho.client().fields(CrmModule::Leads).await.unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.api_name == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .clone()
    };
    assert_eq!(field("Email").field_type, FieldType::Email);
    assert_eq!(field("Owner").field_type, FieldType::User);
    assert!(field("Last_Name").mandatory);
    assert!(field("Full_Name").read_only);
    assert!(field("sync_to_plezi").custom);
    assert!(!field("Email").custom);
    let industry = field("Industry");
    assert_eq!(industry.field_type, FieldType::Picklist);
    let software = industry
        .options
        .unwrap()
        .into_iter()
        .find(|o| o.id == "Software")
        .expect("Software");
    assert_eq!(software.label, "Software / SaaS");
    let contacts = zoho.client().fields(CrmModule::Contacts).await.unwrap();
    assert!(contacts.iter().any(|f| f.api_name == "Date_of_Birth"));
}

#[tokio::test]
async fn two_hundred_fifty_leads_are_written_in_three_upserts() {
    let zoho = Zoho::start(0).await;
    let client = zoho.client();
    let before = zoho.calls("upsert").await;

    let writes = (0..250).map(|i| lead(i, Some("Smith"))).collect();
    let results = client.write(CrmModule::Leads, writes).await;

    assert_eq!(results.len(), 250);
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|w| w.created)));
    assert_eq!(zoho.calls("upsert").await - before, 3);
    assert_eq!(zoho.stored_leads().await.len(), 250);

    // Again: upsert by Email updates, never duplicates.
    let writes = (0..250).map(|i| lead(i, Some("Jones"))).collect();
    let results = client.write(CrmModule::Leads, writes).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|w| !w.created)));
    assert_eq!(zoho.stored_leads().await.len(), 250);
}

#[tokio::test]
async fn a_picklist_value_is_checked_before_sending_and_read_back_as_its_label() {
    let zoho = Zoho::start(0).await;
    let mut bad = lead(1, Some("Smith"));
    bad.values
        .insert("Industry".into(), json!("Basket weaving"));
    let mut by_label = lead(2, Some("Smith"));
    by_label
        .values
        .insert("Industry".into(), json!("Software / SaaS"));

    let results = zoho
        .client()
        .write(CrmModule::Leads, vec![bad, by_label])
        .await;

    let Err(CrmError::Rejected { code, message, .. }) = &results[0] else {
        panic!("{:?}", results[0]);
    };
    assert_eq!(code, "INVALID_PICKLIST_VALUE");
    assert!(message.contains("Software"), "{message}");
    let id = results[1].as_ref().unwrap().id.clone();
    let stored = zoho
        .client()
        .get_many(CrmModule::Leads, &[id])
        .await
        .unwrap();
    // Zoho stores the actual value; the client reads it back as people see it.
    assert_eq!(stored[0].values["Industry"], json!("Software / SaaS"));
    let leads = zoho.stored("Leads").await;
    assert_eq!(leads[0]["Industry"], json!("Software"));
}

#[tokio::test]
async fn listing_goes_past_two_thousand_records_with_page_tokens() {
    let zoho = Zoho::start(0).await;
    let records: Vec<Value> = (0..2100)
        .map(|i| json!({"Last_Name": format!("L{i}"), "Email": format!("p{i}@example.com")}))
        .collect();
    for chunk in records.chunks(500) {
        zoho.admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/records/Leads", zoho.org()),
            json!({ "records": chunk }),
        )
        .await;
    }

    let (leads, cursors) = list_all(&zoho.client(), CrmModule::Leads).await;

    assert_eq!(leads.len(), 2100);
    let mut ids: Vec<_> = leads.iter().map(|l| l.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2100);
    assert!(cursors.iter().any(|c| c.starts_with("t:")), "{cursors:?}");
    assert!(
        leads
            .windows(2)
            .all(|w| w[0].modified_at <= w[1].modified_at)
    );
    assert!(
        leads
            .iter()
            .all(|l| l.owner_email.is_some() && l.email.is_some())
    );
}

#[tokio::test]
async fn listing_goes_past_the_hundred_thousand_records_page_tokens_reach() {
    // Zoho's page tokens reach 100,000 records; the listing starts again
    // from the last record's time, and its later pages (by token) keep that
    // start (Zoho binds a token to the If-Modified-Since it was made with).
    let zoho = Zoho::start(0).await;
    let seeded = zoho
        .admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/seed", zoho.org()),
            json!({ "seed": 3, "people": 117_500, "converted": 0.0, "missing_email": 0.0,
                    "duplicate_email": 0.0, "unknown_picklist": 0.0 }),
        )
        .await;
    let expected = seeded["leads"].as_u64().unwrap() as usize;
    assert!(expected > 100_400, "{seeded}");

    let (leads, cursors) = list_all(&zoho.client(), CrmModule::Leads).await;

    let mut ids: Vec<_> = leads.iter().map(|l| l.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "every lead");
    assert_eq!(leads.len(), expected, "none twice");
    let restarted = cursors.iter().position(|c| c.starts_with("a:"));
    let restarted = restarted.unwrap_or_else(|| panic!("no restart in {} cursors", cursors.len()));
    assert!(
        cursors[restarted + 1..]
            .iter()
            .any(|c| c.starts_with("at:")),
        "the restarted listing goes on by token, keeping its start"
    );
}

#[tokio::test]
async fn nothing_modified_since_is_an_empty_page() {
    let zoho = Zoho::start(10).await;
    let page = zoho
        .client()
        .list(&ListQuery {
            module: CrmModule::Leads,
            since: Some(chrono::Utc::now() + chrono::Duration::days(30)),
            cursor: None,
            page_size: 200,
        })
        .await
        .unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn check_names_a_missing_filter_field() {
    let zoho = Zoho::start(0).await;
    let client = zoho.client();
    assert!(
        client
            .check(&Expectations::filter("sync_to_plezi", "yes"))
            .await
            .unwrap()
            .ok
    );
    let check = client
        .check(&Expectations::filter("No_Such_Field", "yes"))
        .await
        .unwrap();
    assert!(!check.ok);
    assert!(check.message.contains("No_Such_Field"), "{}", check.message);
}

#[tokio::test]
async fn check_reads_contacts_when_they_are_imported_and_names_a_missing_link_field() {
    let zoho = Zoho::start(0).await;
    let client = zoho.client();
    let both = Expectations {
        modules: vec![CrmModule::Leads, CrmModule::Contacts],
        platform_link_field: Some("plezi_url".into()),
        ..Expectations::filter("sync_to_plezi", "yes")
    };
    let check = client.check(&both).await.unwrap();
    assert!(check.ok, "{}", check.message);
    assert!(check.message.contains("Contacts"), "{}", check.message);

    let gone = Expectations {
        platform_link_field: Some("plezi_link".into()),
        ..Expectations::default()
    };
    let check = client.check(&gone).await.unwrap();
    assert!(!check.ok);
    assert!(
        check
            .message
            .contains("Leads have no field \"plezi_link\" for the link back"),
        "{}",
        check.message
    );
}

#[tokio::test]
async fn a_converted_lead_is_never_updated() {
    let zoho = Zoho::start(0).await;
    zoho.admin(
        reqwest::Method::POST,
        &format!("/zoho/orgs/{}/records/Leads", zoho.org()),
        json!({"records": [{"Last_Name": "Sold", "Email": "lead1@example.com", "$converted": true}]}),
    )
    .await;

    let results = zoho
        .client()
        .write(CrmModule::Leads, vec![lead(1, Some("Smith"))])
        .await;

    let Err(CrmError::Rejected { code, message, .. }) = &results[0] else {
        panic!("{:?}", results[0]);
    };
    assert_eq!(code, "CONVERTED_LEAD");
    assert!(message.contains("owned by sales"), "{message}");
}

#[tokio::test]
async fn listing_marks_converted_leads_and_maps_owners() {
    let zoho = Zoho::start(0).await;
    zoho.admin(
        reqwest::Method::POST,
        &format!("/zoho/orgs/{}/records/Contacts", zoho.org()),
        json!({"records": [{"Last_Name": "Client", "Email": "c@example.com"}]}),
    )
    .await;
    let client = zoho.client();
    let (contacts, _) = list_all(&client, CrmModule::Contacts).await;
    assert_eq!(contacts.len(), 1);
    let users = client.users().await.unwrap();
    assert_eq!(
        contacts[0].owner_email.as_deref(),
        Some(users[0].email.as_str())
    );
    assert_eq!(contacts[0].values["Last_Name"], json!("Client"));
    assert!(!contacts[0].converted);
}

#[tokio::test]
async fn the_token_throttle_is_a_rate_limit() {
    let zoho = Zoho::start(0).await;
    zoho.admin(
        reqwest::Method::PATCH,
        &format!("/zoho/orgs/{}/limits", zoho.org()),
        json!({"token_throttle": 1}),
    )
    .await;
    let client = zoho
        .client()
        .with_retry_policy(crmsync_worker::crm::RetryPolicy {
            rate_limit_attempts: 1,
            ..fast_retries()
        });

    let err = client.users().await.unwrap_err();

    assert!(matches!(err, CrmError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_grant_without_a_needed_scope_says_which_scope_to_grant() {
    let mut zoho = Zoho::start(0).await;
    let d = zoho.sandbox.description().zoho.clone();
    let minted = zoho
        .admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/grant-codes", zoho.org()),
            json!({"scope": "ZohoCRM.modules.all"}),
        )
        .await;
    let grant = zoho::exchange_grant_code(
        &crm_http(),
        &d.accounts_url,
        &d.client_id,
        &d.client_secret,
        minted["code"].as_str().unwrap(),
    )
    .await
    .unwrap();
    zoho.refresh_token = grant.refresh_token;

    let err = zoho.client().users().await.unwrap_err();

    let CrmError::Unauthorized(message) = err else {
        panic!("{err:?}");
    };
    assert!(message.contains("ZohoCRM.users.READ"), "{message}");
}

#[tokio::test]
async fn get_many_returns_the_known_ids_only_a_hundred_a_call() {
    let zoho = Zoho::start(0).await;
    let client = zoho.client();
    let written = client
        .write(
            CrmModule::Leads,
            (0..250).map(|i| lead(i, Some("Smith"))).collect(),
        )
        .await;
    let mut ids: Vec<String> = written.into_iter().map(|w| w.unwrap().id).collect();
    ids.push(ids[0].clone());
    ids.push("1234567890123456789".into());
    ids.push("not-an-id".into());
    let listings = async || {
        zoho.count_requests(|r| r["endpoint"] == "GET /zoho/api/crm/v8/{module}")
            .await
    };
    let before = listings().await;

    let records = client.get_many(CrmModule::Leads, &ids).await.unwrap();

    assert_eq!(records.len(), 250, "each known record once");
    assert!(records.iter().all(|r| r.email.is_some()));
    let reads = listings().await - before;
    assert_eq!(reads, 3, "251 ids are three calls of at most 100");
}

/// Deletes a record as a person does in Zoho (to the recycle bin).
async fn delete_in_zoho(zoho: &Zoho, module: &str, id: &str) {
    zoho.admin(
        reqwest::Method::DELETE,
        &format!("/zoho/orgs/{}/records/{module}/{id}", zoho.org()),
        Value::Null,
    )
    .await;
}

#[tokio::test]
async fn deleted_leads_are_found_with_their_deletion_time_from_since_on() {
    let zoho = Zoho::start(0).await;
    let client = zoho.client();
    let written = client
        .write(
            CrmModule::Leads,
            (0..3).map(|i| lead(i, Some("Smith"))).collect(),
        )
        .await;
    let ids: Vec<String> = written.into_iter().map(|w| w.unwrap().id).collect();
    delete_in_zoho(&zoho, "Leads", &ids[0]).await;
    // Ten minutes pass on the sandbox's clock before the second deletion.
    zoho.advance_clock(600).await;
    let since = chrono::Utc::now() + chrono::Duration::minutes(5);
    delete_in_zoho(&zoho, "Leads", &ids[1]).await;

    let all = client.deleted(CrmModule::Leads, None).await.unwrap();
    let recent = client.deleted(CrmModule::Leads, Some(since)).await.unwrap();

    let mut all_ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    all_ids.sort_unstable();
    let mut expected = vec![ids[0].as_str(), ids[1].as_str()];
    expected.sort_unstable();
    assert_eq!(all_ids, expected, "the live lead is never returned");
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0].id, ids[1]);
    let at = recent[0].deleted_at.expect("a deletion time");
    assert!(
        at >= since && at < since + chrono::Duration::minutes(10),
        "{at} vs {since}"
    );
    assert!(
        client
            .deleted(CrmModule::Contacts, None)
            .await
            .unwrap()
            .is_empty(),
        "no contact was deleted"
    );
}

#[tokio::test]
async fn deleted_contacts_are_found_too() {
    let zoho = Zoho::start(0).await;
    let stored = zoho
        .admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/records/Contacts", zoho.org()),
            json!({"records": [{"Last_Name": "Gone", "Email": "gone@example.com"}]}),
        )
        .await;
    let id = stored["ids"][0].as_str().unwrap().to_owned();
    delete_in_zoho(&zoho, "Contacts", &id).await;

    let deleted = zoho
        .client()
        .deleted(CrmModule::Contacts, None)
        .await
        .unwrap();

    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].id, id);
    assert!(deleted[0].deleted_at.is_some());
}

#[tokio::test]
async fn more_deleted_leads_than_a_page_are_all_found() {
    let zoho = Zoho::start(0).await;
    let records: Vec<Value> = (0..201)
        .map(|i| json!({"Last_Name": format!("Gone{i}"), "Email": format!("gone{i}@example.com")}))
        .collect();
    let stored = zoho
        .admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/records/Leads", zoho.org()),
            json!({ "records": records }),
        )
        .await;
    let ids: Vec<String> = stored["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        delete_in_zoho(&zoho, "Leads", id).await;
    }

    let deleted = zoho.client().deleted(CrmModule::Leads, None).await.unwrap();

    let mut found: Vec<String> = deleted.into_iter().map(|d| d.id).collect();
    found.sort_unstable();
    let mut expected = ids.clone();
    expected.sort_unstable();
    assert_eq!(found, expected);
    assert_eq!(zoho.calls("/deleted").await, 2, "two pages of 200");
}

#[tokio::test]
async fn a_failing_deleted_records_feed_is_an_error_after_retries() {
    let zoho = Zoho::start(0).await;
    let rule = crate::support::always_unavailable(
        &zoho.sandbox,
        crmsync_sandbox::System::Zoho,
        "GET /zoho/api/crm/v8/{module}/deleted",
    );

    let result = zoho.client().deleted(CrmModule::Leads, None).await;

    assert!(
        matches!(result, Err(CrmError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        crate::support::fault_hits(&zoho.sandbox, rule),
        u64::from(fast_retries().attempts),
        "retried"
    );
}
