//! sObject Collections: create, update, retrieve and delete in batches of 200.

use serde_json::{Value, json};

use super::{Sf, V, assert_error, assert_record_error};
use crate::common::TestSandbox;

fn lead(i: usize) -> Value {
    json!({ "attributes": { "type": "Lead" }, "LastName": format!("L{i}"), "Company": "Acme", "Email": format!("l{i}@example.com") })
}

async fn count(sf: &Sf<'_>) -> u64 {
    sf.query("SELECT COUNT() FROM Lead").await.body["totalSize"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn two_hundred_records_are_created_in_input_order() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let records: Vec<Value> = (0..200).map(lead).collect();
    let r = sf
        .post(
            &format!("{V}/composite/sobjects"),
            json!({ "allOrNone": false, "records": records }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body.as_array().unwrap();
    assert_eq!(results.len(), 200);
    assert!(
        results
            .iter()
            .all(|x| x["success"] == true && x["errors"] == json!([]))
    );
    let id = results[7]["id"].as_str().unwrap();
    assert_eq!(
        sf.get(&format!("{V}/sobjects/Lead/{id}")).await.body["LastName"],
        "L7"
    );
    assert_eq!(count(&sf).await, 200);
}

#[tokio::test]
async fn two_hundred_and_one_records_are_refused_whole() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let records: Vec<Value> = (0..201).map(lead).collect();
    let r = sf
        .post(
            &format!("{V}/composite/sobjects"),
            json!({ "records": records }),
        )
        .await;
    assert_error(&r, 400, "EXCEEDED_ID_LIMIT");
    assert_eq!(count(&sf).await, 0);
    let r = sf
        .patch(
            &format!("{V}/composite/sobjects"),
            json!({ "records": (0..201).map(lead).collect::<Vec<_>>() }),
        )
        .await;
    assert_error(&r, 400, "EXCEEDED_ID_LIMIT");
}

#[tokio::test]
async fn without_all_or_none_each_record_succeeds_or_fails_alone() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let records = json!([
        lead(0),
        { "attributes": { "type": "Lead" }, "LastName": "NoCompany" },
        { "attributes": { "type": "Lead" }, "LastName": "Bad", "Company": "A", "Email": "bad" },
        { "LastName": "NoType" },
        lead(4),
    ]);
    let r = sf
        .post(
            &format!("{V}/composite/sobjects"),
            json!({ "records": records }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["success"], true);
    let e = assert_record_error(&r.body[1], "REQUIRED_FIELD_MISSING");
    assert_eq!(
        e,
        json!({ "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Company]", "fields": ["Company"] })
    );
    assert_eq!(
        assert_record_error(&r.body[2], "INVALID_EMAIL_ADDRESS")["fields"],
        json!(["Email"])
    );
    assert_record_error(&r.body[3], "INVALID_TYPE");
    assert_eq!(r.body[4]["success"], true);
    assert_eq!(count(&sf).await, 2);
}

#[tokio::test]
async fn with_all_or_none_one_failure_rolls_every_record_back() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let records =
        json!([lead(0), { "attributes": { "type": "Lead" }, "LastName": "NoCompany" }, lead(2)]);
    let r = sf
        .post(
            &format!("{V}/composite/sobjects"),
            json!({ "allOrNone": true, "records": records }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_record_error(&r.body[0], "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_record_error(&r.body[1], "REQUIRED_FIELD_MISSING");
    assert_record_error(&r.body[2], "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(count(&sf).await, 0);
}

#[tokio::test]
async fn updates_go_by_id_and_report_converted_deleted_and_missing_ids() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let a = sf.lead(json!({ "LastName": "A", "Company": "X" })).await;
    let converted = sf.lead(json!({ "LastName": "C", "Company": "X" })).await;
    sb.admin_post(
        &format!("/admin/salesforce/leads/{converted}/convert"),
        json!({}),
    )
    .await;
    let gone = sf.lead(json!({ "LastName": "G", "Company": "X" })).await;
    sf.delete(&format!("{V}/sobjects/Lead/{gone}")).await;
    let records = json!([
        { "attributes": { "type": "Lead" }, "Id": a, "Title": "CEO" },
        { "attributes": { "type": "Lead" }, "Id": converted, "Title": "CEO" },
        { "attributes": { "type": "Lead" }, "Id": gone, "Title": "CEO" },
        { "attributes": { "type": "Lead" }, "Title": "CEO" },
    ]);
    let r = sf
        .patch(
            &format!("{V}/composite/sobjects"),
            json!({ "records": records }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0], json!({ "id": a, "success": true, "errors": [] }));
    assert_record_error(&r.body[1], "CANNOT_UPDATE_CONVERTED_LEAD");
    assert_eq!(r.body[1]["id"], converted.as_str());
    assert_record_error(&r.body[2], "ENTITY_IS_DELETED");
    assert_record_error(&r.body[3], "MISSING_ARGUMENT");
    assert_eq!(
        sf.get(&format!("{V}/sobjects/Lead/{a}")).await.body["Title"],
        "CEO"
    );
}

#[tokio::test]
async fn the_duplicate_rule_sees_earlier_records_of_the_same_call() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    sf.admin_put("/settings", json!({ "duplicate_rule": "block" }))
        .await;
    let records = json!([lead(1), lead(1), lead(2)]);
    let r = sf
        .post(
            &format!("{V}/composite/sobjects"),
            json!({ "records": records }),
        )
        .await;
    assert_eq!(r.body[0]["success"], true);
    let e = assert_record_error(&r.body[1], "DUPLICATES_DETECTED");
    assert_eq!(e["duplicateResult"]["allowSave"], false);
    assert_eq!(r.body[2]["success"], true);
}

#[tokio::test]
async fn retrieve_answers_records_in_the_order_asked_and_null_for_unknown_ids() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let a = sf
        .lead(json!({ "LastName": "A", "Company": "X", "Email": "a@example.com" }))
        .await;
    let b = sf.lead(json!({ "LastName": "B", "Company": "X" })).await;
    let url =
        format!("{V}/composite/sobjects/Lead?ids={b},00Q000000000000AAA,{a}&fields=Id,LastName");
    let r = sf.get(&url).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["LastName"], "B");
    assert_eq!(r.body[1], Value::Null);
    assert_eq!(r.body[2]["Id"], a.as_str());
    assert!(r.body[2].get("Email").is_none());
    let r = sf
        .post(
            &format!("{V}/composite/sobjects/Lead"),
            json!({ "ids": [a], "fields": ["Email"] }),
        )
        .await;
    assert_eq!(r.body[0]["Email"], "a@example.com");
    assert_error(
        &sf.get(&format!("{V}/composite/sobjects/Lead?ids={a}&fields=Nope"))
            .await,
        400,
        "INVALID_FIELD",
    );
}

#[tokio::test]
async fn delete_takes_ids_and_answers_per_record() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let a = sf.lead(json!({ "LastName": "A", "Company": "X" })).await;
    let r = sf
        .delete(&format!(
            "{V}/composite/sobjects?ids={a},00Q000000000000AAA&allOrNone=false"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0], json!({ "id": a, "success": true, "errors": [] }));
    assert_record_error(&r.body[1], "NOT_FOUND");
    assert_eq!(count(&sf).await, 0);
    assert_error(
        &sf.delete(&format!("{V}/composite/sobjects")).await,
        400,
        "MISSING_ARGUMENT",
    );
}
