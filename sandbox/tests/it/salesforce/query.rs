//! `query` and `queryAll`: records, paging, batch sizes, deleted records, errors.

use serde_json::{Value, json};

use super::{Sf, V, assert_error};
use crate::common::TestSandbox;
use crate::hubspot::reply;

fn leads(n: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({ "LastName": format!("Lead {i:05}"), "Company": "Acme", "Email": format!("l{i}@example.com") }))
        .collect();
    json!(list)
}

async fn follow(sf: &Sf<'_>, url: &str, headers: &[(&str, &str)]) -> super::Reply {
    let mut request = sf.sb.http.get(sf.sb.url(url)).bearer_auth(&sf.token);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    reply(request.send().await.unwrap()).await
}

async fn query_with(
    sf: &Sf<'_>,
    resource: &str,
    soql: &str,
    headers: &[(&str, &str)],
) -> super::Reply {
    let url =
        reqwest::Url::parse_with_params(&sf.sb.url(&format!("{V}/{resource}")), &[("q", soql)])
            .unwrap();
    let mut request = sf.sb.http.get(url).bearer_auth(&sf.token);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    reply(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_query_answers_records_with_attributes_and_the_selected_fields() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let id = sf.lead(json!({ "FirstName": "Zoë", "LastName": "Faure", "Company": "Acme", "Email": "zoe@example.com" })).await;
    let r = sf
        .query(
            "SELECT Id, Email, IsConverted, CreatedDate FROM Lead WHERE Email = 'zoe@example.com'",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalSize"], 1);
    assert_eq!(r.body["done"], true);
    assert!(r.body.get("nextRecordsUrl").is_none());
    let record = &r.body["records"][0];
    assert_eq!(
        record["attributes"],
        json!({ "type": "Lead", "url": format!("{V}/sobjects/Lead/{id}") })
    );
    assert_eq!(record["Id"], id.as_str());
    assert_eq!(record["IsConverted"], false);
    let created = record["CreatedDate"].as_str().unwrap();
    assert!(
        created.ends_with("+0000") && created.len() == 28,
        "{created}"
    );
    assert_eq!(record.as_object().unwrap().len(), 5, "{record}");
}

#[tokio::test]
async fn results_page_at_2000_through_next_records_url() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.put_raw("Lead", leads(4500)).await;
    let r = sf
        .query("SELECT Id, LastName FROM Lead ORDER BY LastName")
        .await;
    assert_eq!(r.body["totalSize"], 4500);
    assert_eq!(r.body["done"], false);
    assert_eq!(r.body["records"].as_array().unwrap().len(), 2000);
    let next = r.body["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&format!("{V}/query/01g")) && next.ends_with("-2000"),
        "{next}"
    );
    let r2 = follow(&sf, &next, &[]).await;
    assert_eq!(r2.body["records"].as_array().unwrap().len(), 2000);
    assert_eq!(r2.body["records"][0]["LastName"], "Lead 02000");
    let last = follow(&sf, r2.body["nextRecordsUrl"].as_str().unwrap(), &[]).await;
    assert_eq!(last.body["records"].as_array().unwrap().len(), 500);
    assert_eq!(last.body["done"], true);
    assert_eq!(last.body["records"][499]["LastName"], "Lead 04499");
    // The last page closes the cursor.
    let again = follow(&sf, r2.body["nextRecordsUrl"].as_str().unwrap(), &[]).await;
    assert_error(&again, 400, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn batch_size_is_clamped_to_200_2000_and_an_org_setting_overrides_it() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.put_raw("Lead", leads(700)).await;
    let q = "SELECT Id FROM Lead";
    let r = query_with(
        &sf,
        "query",
        q,
        &[("Sforce-Query-Options", "batchSize=500")],
    )
    .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 500);
    assert!(r.body["nextRecordsUrl"].as_str().unwrap().ends_with("-500"));
    let r = query_with(&sf, "query", q, &[("Sforce-Query-Options", "batchSize=50")]).await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 200);
    let (status, _) = sf
        .admin_put("/settings", json!({ "batch_size": 300 }))
        .await;
    assert_eq!(status, 200);
    let r = query_with(
        &sf,
        "query",
        q,
        &[("Sforce-Query-Options", "batchSize=500")],
    )
    .await;
    assert_eq!(r.body["records"].as_array().unwrap().len(), 300);
    let (status, body) = sf.admin_put("/settings", json!({ "batch_size": 0 })).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("batch_size:"));
}

#[tokio::test]
async fn query_all_returns_deleted_records_and_query_does_not() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let keep = sf
        .lead(json!({ "LastName": "Keep", "Company": "Acme" }))
        .await;
    let gone = sf
        .lead(json!({ "LastName": "Gone", "Company": "Acme" }))
        .await;
    assert_eq!(
        sf.delete(&format!("{V}/sobjects/Lead/{gone}")).await.status,
        204
    );
    let q = "SELECT Id, IsDeleted FROM Lead ORDER BY LastName";
    let live = sf.query(q).await;
    assert_eq!(live.body["totalSize"], 1);
    assert_eq!(live.body["records"][0]["Id"], keep.as_str());
    let all = query_with(&sf, "queryAll", q, &[]).await;
    assert_eq!(all.body["totalSize"], 2, "{}", all.body);
    assert_eq!(all.body["records"][0]["Id"], gone.as_str());
    assert_eq!(all.body["records"][0]["IsDeleted"], true);
    let deleted = query_with(
        &sf,
        "queryAll",
        "SELECT Id FROM Lead WHERE IsDeleted = true",
        &[],
    )
    .await;
    assert_eq!(deleted.body["totalSize"], 1);
}

#[tokio::test]
async fn query_all_pages_through_the_query_resource_with_its_deleted_rows() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.put_raw("Lead", leads(2100)).await;
    let r = query_with(&sf, "queryAll", "SELECT Id FROM Lead", &[]).await;
    let next = r.body["nextRecordsUrl"].as_str().unwrap();
    // Salesforce's guide: a queryAll's nextRecordsUrl names `query`.
    assert!(next.starts_with(&format!("{V}/query/")), "{next}");
    assert_eq!(
        follow(&sf, next, &[]).await.body["records"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test]
async fn where_order_by_and_limit_select_and_sort_on_system_modstamp() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.put_raw(
        "Lead",
        json!([
            { "LastName": "Old", "Company": "A", "SystemModstamp": "2026-11-20T10:00:00.000+0000" },
            { "LastName": "New", "Company": "A", "SystemModstamp": "2026-11-22T10:00:00.000+0000" },
            { "LastName": "Mid", "Company": "A", "SystemModstamp": "2026-11-21T12:00:00.000+0000" },
            { "LastName": "Conv", "Company": "A", "SystemModstamp": "2026-11-21T13:00:00.000+0000", "IsConverted": true },
        ]),
    )
    .await;
    let r = sf
        .query("SELECT LastName FROM Lead WHERE SystemModstamp > 2026-11-21T00:00:00Z AND IsConverted = false ORDER BY SystemModstamp, Id LIMIT 5")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Mid", "New"]);
    let r = sf
        .query("SELECT LastName FROM Lead ORDER BY SystemModstamp DESC LIMIT 1")
        .await;
    assert_eq!(r.body["records"][0]["LastName"], "New");
    let r = sf
        .query("SELECT COUNT() FROM Lead WHERE LastName IN ('Old', 'New')")
        .await;
    assert_eq!(r.body["totalSize"], 2);
    assert_eq!(r.body["records"], json!([]));
}

#[tokio::test]
async fn users_are_queryable_by_email() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let r = sf
        .query("SELECT Id, Email, IsActive FROM User WHERE IsActive = true")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalSize"], 2);
    assert!(
        r.body["records"][0]["Id"]
            .as_str()
            .unwrap()
            .starts_with("005")
    );
}

#[tokio::test]
async fn query_errors_are_invalid_type_invalid_field_malformed_query_and_a_bad_locator() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let r = sf.query("SELECT Id FROM Account").await;
    let e = assert_error(&r, 400, "INVALID_TYPE");
    assert_eq!(e["message"], "sObject type 'Account' is not supported.");
    assert_error(
        &sf.query("SELECT Nope__c FROM Lead").await,
        400,
        "INVALID_FIELD",
    );
    assert_error(
        &sf.query("SELECT FROM Lead WHERE").await,
        400,
        "MALFORMED_QUERY",
    );
    let r = sf.get(&format!("{V}/query")).await;
    assert_error(&r, 400, "MALFORMED_QUERY");
    assert_error(
        &sf.get(&format!("{V}/query/01gBOGUS-2000")).await,
        400,
        "INVALID_QUERY_LOCATOR",
    );
}
