//! sObject resources: versions, describe, single-record create, get, update and
//! delete with Salesforce's write errors, replication calls and conversion.

use serde_json::{Value, json};

use super::{Sf, V, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn versions_need_no_session_and_resources_list_the_apis() {
    let sb = TestSandbox::start().await;
    let r =
        crate::hubspot::reply(sb.http.get(sb.url("/services/data/")).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    let last = r.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({ "label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0" })
    );
    let sf = Sf::default_org(&sb).await;
    let r = sf.get(&format!("{V}/")).await;
    assert_eq!(r.body["query"], format!("{V}/query"));
    assert_eq!(r.body["sobjects"], format!("{V}/sobjects"));
    assert_error(
        &sf.get("/services/data/v99.0/limits").await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &sf.get(&format!("{V}/nothing/here")).await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn describe_global_basic_info_and_describe_list_objects_and_fields() {
    let sb = TestSandbox::start().await;
    let sf = Sf::default_org(&sb).await;
    let r = sf.get(&format!("{V}/sobjects")).await;
    let names: Vec<&str> = r.body["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lead", "Contact", "User"]);
    let r = sf.get(&format!("{V}/sobjects/Lead")).await;
    assert_eq!(r.body["objectDescribe"]["keyPrefix"], "00Q");
    let r = sf.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(r.status, 200);
    let field = |name: &str| -> Value {
        r.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let status = field("Status");
    assert_eq!(status["type"], "picklist");
    assert_eq!(status["restrictedPicklist"], true);
    assert_eq!(status["picklistValues"][0]["value"], "Open - Not Contacted");
    assert_eq!(field("LeadSource")["restrictedPicklist"], false);
    assert_eq!(field("Company")["nillable"], false);
    assert_eq!(field("IsConverted")["createable"], false);
    assert_eq!(field("Plezi_URL__c")["type"], "url");
    assert_eq!(field("Plezi_URL__c")["custom"], true);
    assert_eq!(field("Sync_To_Plezi__c")["type"], "boolean");
    assert_eq!(field("SystemModstamp")["type"], "datetime");
    let contact = sf.get(&format!("{V}/sobjects/Contact/describe/")).await;
    assert!(
        contact.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "AccountId")
    );
    assert_error(
        &sf.get(&format!("{V}/sobjects/Opportunity/describe")).await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn a_created_lead_reads_back_with_defaults_and_salesforce_times() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    // simple-salesforce posts to the trailing-slash form.
    let r = sf
        .post(
            &format!("{V}/sobjects/Lead/"),
            json!({ "LastName": "Faure", "Company": "Acme", "Email": "a@example.com" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["errors"], json!([]));
    let id = r.body["id"].as_str().unwrap();
    assert!(id.starts_with("00Q") && id.len() == 18);
    let lead = sf.get(&format!("{V}/sobjects/Lead/{id}")).await;
    assert_eq!(lead.body["Status"], "Open - Not Contacted");
    assert_eq!(lead.body["IsConverted"], false);
    assert_eq!(lead.body["HasOptedOutOfEmail"], false);
    assert!(lead.body["OwnerId"].as_str().unwrap().starts_with("005"));
    assert_eq!(lead.body["CreatedDate"], lead.body["SystemModstamp"]);
    let some = sf
        .get(&format!("{V}/sobjects/Lead/{id}?fields=Email,Company"))
        .await;
    assert_eq!(some.body.as_object().unwrap().len(), 3, "{}", some.body);
    let short = sf.get(&format!("{V}/sobjects/Lead/{}", &id[..15])).await;
    assert_eq!(short.body["Id"], id);
    assert_error(
        &sf.get(&format!("{V}/sobjects/Lead/00Q000000000000AAA"))
            .await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn write_errors_name_the_code_and_the_fields() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let url = format!("{V}/sobjects/Lead");
    let e = assert_error(
        &sf.post(&url, json!({ "LastName": "X" })).await,
        400,
        "REQUIRED_FIELD_MISSING",
    );
    assert_eq!(e["message"], "Required fields are missing: [Company]");
    assert_eq!(e["fields"], json!(["Company"]));
    let e = assert_error(
        &sf.post(&url, json!({ "Email": "x@example.com" })).await,
        400,
        "REQUIRED_FIELD_MISSING",
    );
    assert_eq!(e["fields"], json!(["LastName", "Company"]));
    let e = assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "Email": "not an email" }),
        )
        .await,
        400,
        "INVALID_EMAIL_ADDRESS",
    );
    assert_eq!(e["fields"], json!(["Email"]));
    let e = assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "Status": "Hot" }),
        )
        .await,
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    );
    assert_eq!(e["fields"], json!(["Status"]));
    let e = assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "IsConverted": true }),
        )
        .await,
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
    );
    assert_eq!(e["fields"], json!(["IsConverted"]));
    let e = assert_error(
        &sf.post(&url, json!({ "LastName": "X", "Company": "A", "Nope": 1 }))
            .await,
        400,
        "INVALID_FIELD",
    );
    assert_eq!(
        e["message"],
        "No such column 'Nope' on sobject of type Lead"
    );
    assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "OwnerId": "005000000000000AAA" }),
        )
        .await,
        400,
        "INVALID_CROSS_REFERENCE_KEY",
    );
    assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "HasOptedOutOfEmail": "maybe" }),
        )
        .await,
        400,
        "JSON_PARSER_ERROR",
    );
    // An unrestricted picklist takes any value.
    assert_eq!(
        sf.post(
            &url,
            json!({ "LastName": "X", "Company": "A", "LeadSource": "Podcast" })
        )
        .await
        .status,
        201
    );
}

#[tokio::test]
async fn an_update_changes_the_modification_times_and_a_blanked_required_field_is_refused() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let id = sf
        .lead(json!({ "LastName": "Faure", "Company": "Acme" }))
        .await;
    sb.admin_post("/admin/clock", json!({ "advance_secs": 60 }))
        .await;
    let url = format!("{V}/sobjects/Lead/{id}");
    let r = sf
        .patch(
            &url,
            json!({ "Email": "new@example.com", "HasOptedOutOfEmail": true }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let lead = sf.get(&url).await.body;
    assert_eq!(lead["Email"], "new@example.com");
    assert_eq!(lead["HasOptedOutOfEmail"], true);
    assert_ne!(lead["SystemModstamp"], lead["CreatedDate"]);
    assert_eq!(lead["SystemModstamp"], lead["LastModifiedDate"]);
    let e = assert_error(
        &sf.patch(&url, json!({ "Company": "" })).await,
        400,
        "REQUIRED_FIELD_MISSING",
    );
    assert_eq!(e["fields"], json!(["Company"]));
    assert_error(
        &sf.patch(&url, json!({ "Status": null })).await,
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    );
    assert_error(
        &sf.patch(
            &format!("{V}/sobjects/Lead/00Q000000000000AAA"),
            json!({ "Email": "a@b.co" }),
        )
        .await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn a_deleted_record_is_gone_refuses_updates_and_is_listed_as_deleted() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let start = sb.admin_get("/admin/clock").await.1["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = sf
        .lead(json!({ "LastName": "Faure", "Company": "Acme" }))
        .await;
    let other = sf
        .lead(json!({ "LastName": "Other", "Company": "Acme" }))
        .await;
    sf.patch(
        &format!("{V}/sobjects/Lead/{other}"),
        json!({ "Title": "CEO" }),
    )
    .await;
    let url = format!("{V}/sobjects/Lead/{id}");
    assert_eq!(sf.delete(&url).await.status, 204);
    assert_error(&sf.get(&url).await, 404, "ENTITY_IS_DELETED");
    let e = assert_error(
        &sf.patch(&url, json!({ "Title": "CEO" })).await,
        404,
        "ENTITY_IS_DELETED",
    );
    assert_eq!(e["message"], "entity is deleted");
    assert_error(&sf.delete(&url).await, 404, "ENTITY_IS_DELETED");
    sb.admin_post("/admin/clock", json!({ "advance_secs": 1 }))
        .await;
    let end = sb.admin_get("/admin/clock").await.1["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let window = reqwest::Url::parse_with_params(
        &sb.url(&format!("{V}/sobjects/Lead/deleted/")),
        &[("start", &start), ("end", &end)],
    )
    .unwrap();
    let r = crate::hubspot::reply(
        sb.http
            .get(window)
            .bearer_auth(&sf.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deletedRecords"][0]["id"], id.as_str());
    let window = reqwest::Url::parse_with_params(
        &sb.url(&format!("{V}/sobjects/Lead/updated/")),
        &[("start", &start), ("end", &end)],
    )
    .unwrap();
    let r = crate::hubspot::reply(
        sb.http
            .get(window)
            .bearer_auth(&sf.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.body["ids"], json!([other]));
    assert_error(
        &sf.get(&format!("{V}/sobjects/Lead/updated/?start={end}"))
            .await,
        400,
        "MISSING_ARGUMENT",
    );
}

#[tokio::test]
async fn the_duplicate_rule_blocks_a_second_record_with_the_same_email_in_any_case() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let url = format!("{V}/sobjects/Lead");
    sf.lead(json!({ "LastName": "A", "Company": "X", "Email": "dup@example.com" }))
        .await;
    // Off by default.
    sf.lead(json!({ "LastName": "B", "Company": "X", "Email": "DUP@example.com" }))
        .await;
    let (status, _) = sf
        .admin_put("/settings", json!({ "duplicate_rule": "block" }))
        .await;
    assert_eq!(status, 200);
    let e = assert_error(
        &sf.post(
            &url,
            json!({ "LastName": "C", "Company": "X", "Email": "Dup@Example.com" }),
        )
        .await,
        400,
        "DUPLICATES_DETECTED",
    );
    assert_eq!(e["message"], "Use one of these records?");
    let fresh = sf
        .lead(json!({ "LastName": "D", "Company": "X", "Email": "fresh@example.com" }))
        .await;
    assert_error(
        &sf.patch(
            &format!("{url}/{fresh}"),
            json!({ "Email": "dup@example.com" }),
        )
        .await,
        400,
        "DUPLICATES_DETECTED",
    );
    // A record keeping its own e-mail is no duplicate of itself.
    assert_eq!(
        sf.patch(
            &format!("{url}/{fresh}"),
            json!({ "Email": "FRESH@example.com" })
        )
        .await
        .status,
        204
    );
}

#[tokio::test]
async fn converting_a_lead_creates_its_contact_and_locks_the_lead() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let id = sf.lead(json!({ "FirstName": "Zoë", "LastName": "Faure", "Company": "Acme", "Email": "zoe@example.com", "HasOptedOutOfEmail": true })).await;
    let before = sf.get(&format!("{V}/sobjects/Lead/{id}")).await.body;
    sb.admin_post("/admin/clock", json!({ "advance_secs": 5 }))
        .await;
    let (status, body) = sb
        .admin_post(&format!("/admin/salesforce/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let contact_id = body["contact_id"].as_str().unwrap();
    assert!(contact_id.starts_with("003"));
    assert!(body["account_id"].as_str().unwrap().starts_with("001"));
    let lead = sf.get(&format!("{V}/sobjects/Lead/{id}")).await.body;
    assert_eq!(lead["IsConverted"], true);
    assert_eq!(lead["ConvertedContactId"], contact_id);
    assert_eq!(lead["ConvertedAccountId"], body["account_id"]);
    assert_eq!(lead["Status"], "Closed - Converted");
    assert_eq!(lead["ConvertedDate"].as_str().unwrap().len(), 10);
    assert_ne!(lead["SystemModstamp"], before["SystemModstamp"]);
    let contact = sf
        .get(&format!("{V}/sobjects/Contact/{contact_id}"))
        .await
        .body;
    assert_eq!(contact["Email"], "zoe@example.com");
    assert_eq!(contact["HasOptedOutOfEmail"], true);
    assert_eq!(contact["AccountId"], body["account_id"]);
    let e = assert_error(
        &sf.patch(
            &format!("{V}/sobjects/Lead/{id}"),
            json!({ "Title": "CEO" }),
        )
        .await,
        400,
        "CANNOT_UPDATE_CONVERTED_LEAD",
    );
    assert_eq!(e["message"], "cannot reference converted lead");
    let (status, _) = sb
        .admin_post(&format!("/admin/salesforce/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = sb
        .admin_post(
            "/admin/salesforce/leads/00Q000000000000AAA/convert",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn converting_into_an_existing_contact_fills_only_its_blank_fields() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let r = sf
        .post(
            &format!("{V}/sobjects/Contact"),
            json!({ "LastName": "Kept", "Email": "kept@example.com" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let contact = r.body["id"].as_str().unwrap().to_owned();
    let lead = sf.lead(json!({ "LastName": "Lead", "Company": "Acme", "Email": "lead@example.com", "Phone": "+33 1 23 45 67 89" })).await;
    let (status, body) = sb
        .admin_post(
            &format!("/admin/salesforce/leads/{lead}/convert"),
            json!({ "contact_id": contact }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contact_id"], contact.as_str());
    let c = sf
        .get(&format!("{V}/sobjects/Contact/{contact}"))
        .await
        .body;
    assert_eq!(c["LastName"], "Kept");
    assert_eq!(c["Email"], "kept@example.com");
    assert_eq!(c["Phone"], "+33 1 23 45 67 89");
}

#[tokio::test]
async fn users_cannot_be_written_through_the_api() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let r = sf
        .post(&format!("{V}/sobjects/User"), json!({ "LastName": "X" }))
        .await;
    assert_error(&r, 400, "INSUFFICIENT_ACCESS_OR_READONLY");
}

#[tokio::test]
async fn a_method_a_resource_does_not_take_is_405() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let id = sf.lead(json!({ "LastName": "X", "Company": "Y" })).await;
    let r = sf
        .send(
            reqwest::Method::PUT,
            &format!("{V}/sobjects/Lead/{id}"),
            Some(json!({})),
        )
        .await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn an_inactive_user_cannot_own_a_record() {
    let sb = TestSandbox::start().await;
    let sf = Sf::empty(&sb).await;
    let users = sf.query("SELECT Id FROM User WHERE IsActive = false").await;
    let inactive = users.body["records"][0]["Id"].as_str().unwrap().to_owned();
    let r = sf
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({ "LastName": "X", "Company": "Y", "OwnerId": inactive }),
        )
        .await;
    assert_error(&r, 400, "INACTIVE_OWNER_OR_USER");
}
