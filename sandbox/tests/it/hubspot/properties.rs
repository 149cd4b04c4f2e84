//! Properties and owners.

use serde_json::json;

use super::{Hs, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn properties_list_hubspot_defined_and_custom_ones_with_metadata() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let r = hs.get("/crm/v3/properties/contacts").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let find = |name: &str| {
        results
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no property {name}"))
    };
    let email = find("email");
    assert_eq!(email["type"], "string");
    assert_eq!(email["fieldType"], "text");
    assert_eq!(email["hubspotDefined"], true);
    assert_eq!(email["modificationMetadata"]["readOnlyValue"], false);
    let stage = find("lifecyclestage");
    assert_eq!(stage["type"], "enumeration");
    let values: Vec<&str> = stage["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
            "other"
        ]
    );
    assert_eq!(
        find("hs_object_id")["modificationMetadata"]["readOnlyValue"],
        true
    );
    assert_eq!(find("lastmodifieddate")["calculated"], true);
    assert_eq!(find("hs_email_optout")["type"], "bool");
    let custom = find("plezi_url");
    assert_eq!(custom["hubspotDefined"], false);
    let owner = find("hubspot_owner_id");
    assert!(!owner["options"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn one_property_is_read_and_a_custom_one_created() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let r = hs.get("/crm/v3/properties/contacts/plezi_url").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "plezi_url");
    assert_error(
        &hs.get("/crm/v3/properties/contacts/nope").await,
        404,
        "OBJECT_NOT_FOUND",
    );

    let spec = json!({
        "name": "segment",
        "label": "Segment",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [
            { "label": "A", "value": "a", "displayOrder": 0, "hidden": false },
            { "label": "B", "value": "b", "displayOrder": 1, "hidden": false },
        ],
        "displayOrder": 2,
        "hasUniqueValue": false,
        "hidden": false,
        "formField": true,
    });
    let r = hs.post("/crm/v3/properties/contacts", spec.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["hubspotDefined"], false);
    let r = hs.post("/crm/v3/properties/contacts", spec).await;
    assert_error(&r, 409, "OBJECT_ALREADY_EXISTS");

    hs.contact(json!({ "email": "s@example.com", "segment": "a" }))
        .await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "segment": "z" } }),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn owners_page_and_filter_by_email() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let r = hs.get("/crm/v3/owners?limit=2").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.body["results"].as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["type"], "PERSON");
    assert!(first[0]["userId"].is_u64());
    let after = r.body["paging"]["next"]["after"].as_str().unwrap();
    let r = hs
        .get(&format!("/crm/v3/owners?limit=2&after={after}"))
        .await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert!(r.body.get("paging").is_none());

    let email = first[1]["email"].as_str().unwrap().to_uppercase();
    let r = hs.get(&format!("/crm/v3/owners?email={email}")).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["results"][0]["id"], first[1]["id"]);

    let r = hs.get("/crm/v3/owners?archived=true").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["results"][0]["archived"], true);

    let id = first[0]["id"].as_str().unwrap();
    let r = hs.get(&format!("/crm/v3/owners/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["email"], first[0]["email"]);
}
