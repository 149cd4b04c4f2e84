//! The basic contacts API: list, get, create, update, archive, and the rules on values.

use serde_json::json;

use super::{Hs, assert_error};
use crate::common::TestSandbox;

#[tokio::test]
async fn the_list_pages_with_after_until_the_last_page_has_no_paging() {
    let sb = TestSandbox::start_with(25).await;
    let hs = Hs::default_portal(&sb);
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/crm/v3/objects/contacts?limit=10&after={a}"),
            None => "/crm/v3/objects/contacts?limit=10".to_owned(),
        };
        let r = hs.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for c in r.body["results"].as_array().unwrap() {
            ids.push(c["id"].as_str().unwrap().to_owned());
            let props = c["properties"].as_object().unwrap();
            let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "createdate",
                    "email",
                    "firstname",
                    "hs_object_id",
                    "lastmodifieddate",
                    "lastname"
                ]
            );
            assert_eq!(c["updatedAt"], props["lastmodifieddate"]);
            assert_eq!(c["archived"], false);
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => {
                assert_eq!(r.body["paging"]["next"]["link"], format!("?after={a}"));
                after = Some(a.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 25);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 25);
}

#[tokio::test]
async fn a_limit_over_100_is_a_validation_error() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let r = hs.get("/crm/v3/objects/contacts?limit=101").await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(
        hs.get("/crm/v3/objects/contacts?limit=100").await.status,
        200
    );
}

#[tokio::test]
async fn properties_choose_what_is_returned_as_a_list_or_repeated() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let id = hs
        .contact(json!({ "email": "x@y.example", "firstname": "X", "plezi_url": "https://p/1" }))
        .await;
    for path in [
        format!("/crm/v3/objects/contacts/{id}?properties=plezi_url,phone"),
        format!("/crm/v3/objects/contacts/{id}?properties=plezi_url&properties=phone"),
    ] {
        let r = hs.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["properties"]["plezi_url"], "https://p/1");
        assert!(r.body["properties"]["phone"].is_null());
        assert!(
            r.body["properties"].get("firstname").is_none(),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn create_get_by_email_update_and_archive() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "Ana@Example.com", "firstname": "Ana" }, "associations": [] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["properties"]["hs_object_id"], id.as_str());
    assert_eq!(r.body["properties"]["email"], "ana@example.com");
    let created = r.body["createdAt"].as_str().unwrap().to_owned();

    let r = hs
        .get("/crm/v3/objects/contacts/ANA@example.com?idProperty=email")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], id.as_str());

    sb.admin_post("/admin/clock", json!({ "advance_secs": 60 }))
        .await;
    let r = hs
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({ "properties": { "lastname": "Lima" } }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["lastname"], "Lima");
    assert_eq!(r.body["createdAt"], created.as_str());
    assert_ne!(r.body["updatedAt"], created.as_str());
    assert_eq!(
        r.body["updatedAt"],
        r.body["properties"]["lastmodifieddate"]
    );

    let r = hs.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(r.status, 204);
    let r = hs.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
    let r = hs
        .get(&format!("/crm/v3/objects/contacts/{id}?archived=true"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["archived"], true);
    assert!(r.body["archivedAt"].is_string());
    let r = hs.get("/crm/v3/objects/contacts?archived=true").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    // The e-mail is free again.
    hs.contact(json!({ "email": "ana@example.com" })).await;
}

#[tokio::test]
async fn emails_are_unique_per_portal_in_any_case() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let id = hs.contact(json!({ "email": "dup@example.com" })).await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "DUP@example.com" } }),
        )
        .await;
    let message = assert_error(&r, 409, "CONFLICT");
    assert_eq!(
        message,
        format!("Contact already exists. Existing ID: {id}")
    );

    let other = hs.contact(json!({ "email": "other@example.com" })).await;
    let r = hs
        .patch(
            &format!("/crm/v3/objects/contacts/{other}"),
            json!({ "properties": { "email": "dup@EXAMPLE.com" } }),
        )
        .await;
    assert_error(&r, 409, "CONFLICT");
    // Another portal may hold the same address.
    let elsewhere = Hs::empty(&sb).await;
    elsewhere
        .contact(json!({ "email": "dup@example.com" }))
        .await;
}

#[tokio::test]
async fn invalid_values_are_listed_inside_the_validation_message() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let r = hs
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "foo", "lifecyclestage": "nope", "unknown_prop": "1", "hs_object_id": "5" } }),
        )
        .await;
    let message = assert_error(&r, 400, "VALIDATION_ERROR");
    let list = message
        .strip_prefix("Property values were not valid: ")
        .expect(&message);
    let errors: serde_json::Value = serde_json::from_str(list).unwrap();
    let find = |name: &str| {
        errors
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no error for {name} in {errors}"))
            .clone()
    };
    assert_eq!(find("email")["error"], "INVALID_EMAIL");
    assert_eq!(find("email")["message"], "Email address foo is invalid");
    assert_eq!(find("email")["isValid"], false);
    assert_eq!(find("lifecyclestage")["error"], "INVALID_OPTION");
    assert!(
        find("lifecyclestage")["message"]
            .as_str()
            .unwrap()
            .contains("was not one of the allowed options")
    );
    assert_eq!(find("unknown_prop")["error"], "PROPERTY_DOESNT_EXIST");
    assert_eq!(find("hs_object_id")["error"], "READ_ONLY_VALUE");
    // Nothing was written.
    let r = hs.get("/crm/v3/objects/contacts").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn lifecyclestage_moves_forward_only_unless_cleared() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let id = hs
        .contact(json!({ "email": "l@example.com", "lifecyclestage": "customer" }))
        .await;
    let path = format!("/crm/v3/objects/contacts/{id}?properties=lifecyclestage");
    let r = hs
        .patch(&path, json!({ "properties": { "lifecyclestage": "lead" } }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        hs.get(&path).await.body["properties"]["lifecyclestage"],
        "customer"
    );

    let r = hs
        .patch(
            &path,
            json!({ "properties": { "lifecyclestage": "evangelist" } }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        hs.get(&path).await.body["properties"]["lifecyclestage"],
        "evangelist"
    );

    let (status, _) = (
        sb.http
            .patch(sb.url(&hs.admin("/settings")))
            .json(&json!({ "lifecycle_backward": "reject" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        (),
    );
    assert_eq!(status, 200);
    let r = hs
        .patch(&path, json!({ "properties": { "lifecyclestage": "lead" } }))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");

    let r = hs
        .patch(&path, json!({ "properties": { "lifecyclestage": "" } }))
        .await;
    assert_eq!(r.status, 200);
    let r = hs
        .patch(&path, json!({ "properties": { "lifecyclestage": "lead" } }))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        hs.get(&path).await.body["properties"]["lifecyclestage"],
        "lead"
    );
}

#[tokio::test]
async fn opt_out_and_owner_are_written_and_checked() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let owners = hs.get("/crm/v3/owners").await;
    let owner = owners.body["results"][0]["id"].as_str().unwrap().to_owned();
    let id = hs
        .contact(
            json!({ "email": "o@example.com", "hs_email_optout": true, "hubspot_owner_id": owner }),
        )
        .await;
    let r = hs
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=hs_email_optout,hubspot_owner_id"
        ))
        .await;
    assert_eq!(r.body["properties"]["hs_email_optout"], "true");
    assert_eq!(r.body["properties"]["hubspot_owner_id"], owner.as_str());
    let r = hs
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({ "properties": { "hubspot_owner_id": "999" } }),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn an_unknown_id_is_object_not_found() {
    let sb = TestSandbox::start().await;
    let hs = Hs::default_portal(&sb);
    let r = hs.get("/crm/v3/objects/contacts/999999").await;
    let message = assert_error(&r, 404, "OBJECT_NOT_FOUND");
    assert_eq!(message, "Object not found.  objectId are usually numeric.");
    assert_eq!(r.body["context"]["id"], json!(["999999"]));
    let r = hs
        .patch(
            "/crm/v3/objects/contacts/999999",
            json!({ "properties": { "firstname": "x" } }),
        )
        .await;
    assert_error(&r, 404, "OBJECT_NOT_FOUND");
}
