//! Insert, update, upsert, delete and lead conversion.

use serde_json::{Value, json};

use super::Zoho;

fn stored_by_id<'a>(stored: &'a Value, id: &str) -> &'a Value {
    stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .expect("stored record")
}

#[tokio::test]
async fn insert_returns_201_with_zoho_success_shape() {
    let z = Zoho::start().await;
    let (status, body) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "Durand", "Email": "d@example.com" }] }),
        )
        .await;
    assert_eq!(status, 201);
    let r = &body["data"][0];
    assert_eq!(r["code"], "SUCCESS");
    assert_eq!(r["status"], "success");
    assert_eq!(r["message"], "record added");
    assert_eq!(r["action"], "insert");
    for key in [
        "id",
        "Modified_Time",
        "Created_Time",
        "Modified_By",
        "Created_By",
    ] {
        assert!(!r["details"][key].is_null(), "{key}");
    }
    assert_eq!(r["details"]["id"].as_str().unwrap().len(), 19);
}

#[tokio::test]
async fn insert_defaults_the_owner_to_the_token_user() {
    let z = Zoho::start().await;
    let id = z.insert_lead(json!({ "Last_Name": "Owned" })).await;
    let (_, body) = z
        .get(&format!(
            "/Leads/{id}?fields=Owner,Email_Opt_Out,Converted__s"
        ))
        .await;
    let admin = &z.sb.desc().zoho.users[0];
    assert_eq!(body["data"][0]["Owner"]["id"], admin["id"]);
    assert_eq!(body["data"][0]["Email_Opt_Out"], false);
    assert_eq!(body["data"][0]["Converted__s"], false);
}

#[tokio::test]
async fn a_missing_last_name_is_mandatory_not_found_with_a_json_path() {
    let z = Zoho::start().await;
    let (status, body) = z
        .post("/Leads", json!({ "data": [{ "First_Name": "Anne" }] }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"][0],
        json!({
            "code": "MANDATORY_NOT_FOUND",
            "details": { "api_name": "Last_Name", "json_path": "$.data[0].Last_Name" },
            "message": "required field not found",
            "status": "error",
        })
    );
}

#[tokio::test]
async fn a_mixed_batch_is_207_with_results_in_request_order() {
    let z = Zoho::start().await;
    let (status, body) = z
        .post(
            "/Contacts",
            json!({ "data": [{ "Last_Name": "A" }, { "Email": "x@y.com" }, { "Last_Name": "C" }] }),
        )
        .await;
    assert_eq!(status, 207);
    let codes: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["SUCCESS", "MANDATORY_NOT_FOUND", "SUCCESS"]);
    assert_eq!(
        body["data"][1]["details"]["json_path"],
        "$.data[1].Last_Name"
    );
}

#[tokio::test]
async fn more_than_100_records_is_limit_exceeded_for_the_whole_request() {
    let z = Zoho::start_with(0).await;
    let data: Vec<Value> = (0..101)
        .map(|i| json!({ "Last_Name": format!("L{i}") }))
        .collect();
    let (status, body) = z.post("/Leads", json!({ "data": data })).await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("LIMIT_EXCEEDED"))
    );
    assert_eq!(z.stored("Leads").await["count"], 0);
}

#[tokio::test]
async fn a_missing_or_empty_data_array_and_bad_json_are_refused() {
    let z = Zoho::start().await;
    let (s, b) = z.post("/Leads", json!({ "trigger": [] })).await;
    assert_eq!(
        (s, b["code"].clone()),
        (400, json!("REQUIRED_PARAM_MISSING"))
    );
    let (s, b) = z.post("/Leads", json!({ "data": [] })).await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_DATA")));
    let req = z
        .auth(z.sb.http.post(z.api("/Leads")))
        .header("content-type", "application/json")
        .body("{\"data\": [");
    let (s, b) = z.send(req).await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn a_string_in_an_integer_field_is_invalid_data_with_the_expected_type() {
    let z = Zoho::start().await;
    let (status, body) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "X", "score": "12" }] }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"][0],
        json!({
            "code": "INVALID_DATA",
            "details": { "api_name": "score", "json_path": "$.data[0].score", "expected_data_type": "integer" },
            "message": "invalid data",
            "status": "error",
        })
    );
}

#[tokio::test]
async fn type_checks_cover_booleans_emails_lengths_and_dates() {
    let z = Zoho::start().await;
    let cases = [
        (
            json!({ "Last_Name": "X", "Email_Opt_Out": "true" }),
            "Email_Opt_Out",
        ),
        (
            json!({ "Last_Name": "X", "Email": "not-an-email" }),
            "Email",
        ),
        (
            json!({ "Last_Name": "X", "First_Name": "x".repeat(41) }),
            "First_Name",
        ),
    ];
    for (record, api) in cases {
        let (s, b) = z.post("/Leads", json!({ "data": [record] })).await;
        assert_eq!(
            (s, b["data"][0]["details"]["api_name"].clone()),
            (400, json!(api)),
            "{b}"
        );
    }
    let (s, b) = z
        .post(
            "/Contacts",
            json!({ "data": [{ "Last_Name": "X", "Date_of_Birth": "21/11/1990" }] }),
        )
        .await;
    assert_eq!(
        (s, b["data"][0]["details"]["expected_data_type"].clone()),
        (400, json!("date"))
    );
    let (s, _) = z
        .post(
            "/Contacts",
            json!({ "data": [{ "Last_Name": "X", "Date_of_Birth": "1990-11-21" }] }),
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn picklists_take_actual_values_not_display_values() {
    let z = Zoho::start().await;
    let (s, b) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "X", "Industry": "Software / SaaS" }] }),
        )
        .await;
    assert_eq!(
        (
            s,
            b["data"][0]["code"].clone(),
            b["data"][0]["details"]["api_name"].clone()
        ),
        (400, json!("INVALID_DATA"), json!("Industry"))
    );
    let (s, _) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "X", "Industry": "Software" }] }),
        )
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn an_owner_must_be_an_active_user() {
    let z = Zoho::start().await;
    let users = z.sb.desc().zoho.users.clone();
    let disabled = users.iter().find(|u| u["status"] == "disabled").unwrap();
    let active = users
        .iter()
        .filter(|u| u["status"] == "active")
        .nth(1)
        .unwrap();
    let (s, b) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "X", "Owner": { "id": disabled["id"] } }] }),
        )
        .await;
    assert_eq!(
        (s, b["data"][0]["details"]["api_name"].clone()),
        (400, json!("Owner"))
    );
    let id = z
        .insert_lead(json!({ "Last_Name": "X", "Owner": { "id": active["id"] } }))
        .await;
    let (_, body) = z.get(&format!("/Leads/{id}?fields=Owner")).await;
    assert_eq!(body["data"][0]["Owner"]["id"], active["id"]);
}

#[tokio::test]
async fn unknown_and_read_only_fields_are_ignored() {
    let z = Zoho::start().await;
    let id = z.insert_lead(json!({ "Last_Name": "X", "Nope__c": 1, "Full_Name": "Forced", "Created_Time": "2000-01-01T00:00:00+00:00" })).await;
    let (_, body) = z.get(&format!("/Leads/{id}")).await;
    assert_eq!(body["data"][0]["Full_Name"], "X");
    assert_ne!(body["data"][0]["Created_Time"], "2000-01-01T00:00:00+00:00");
    assert!(body["data"][0].get("Nope__c").is_none());
}

#[tokio::test]
async fn update_needs_an_id_per_record() {
    let z = Zoho::start().await;
    let (s, b) = z
        .put("/Leads", json!({ "data": [{ "Last_Name": "X" }] }))
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["data"][0]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(b["data"][0]["details"]["api_name"], "id");
    let (s, b) = z
        .put(
            "/Leads",
            json!({ "data": [{ "id": "6800000000000099999", "Last_Name": "X" }] }),
        )
        .await;
    assert_eq!(
        (s, b["data"][0]["code"].clone()),
        (400, json!("INVALID_DATA"))
    );
}

#[tokio::test]
async fn update_changes_fields_and_modified_time_with_200() {
    let z = Zoho::start().await;
    let id = z
        .insert_lead(json!({ "Last_Name": "Before", "City": "Paris" }))
        .await;
    let (_, before) = z.get(&format!("/Leads/{id}")).await;
    z.advance(60.0).await;
    let (status, body) = z
        .put(
            "/Leads",
            json!({ "data": [{ "id": id, "Last_Name": "After", "City": null }] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["message"], "record updated");
    let (_, after) = z.get(&format!("/Leads/{id}")).await;
    assert_eq!(after["data"][0]["Last_Name"], "After");
    assert_eq!(after["data"][0]["City"], Value::Null);
    assert_ne!(
        after["data"][0]["Modified_Time"],
        before["data"][0]["Modified_Time"]
    );
    assert_eq!(
        after["data"][0]["Created_Time"],
        before["data"][0]["Created_Time"]
    );
}

#[tokio::test]
async fn update_refuses_an_emptied_last_name() {
    let z = Zoho::start().await;
    let id = z.insert_lead(json!({ "Last_Name": "Kept" })).await;
    let (s, b) = z
        .put("/Leads", json!({ "data": [{ "id": id, "Last_Name": "" }] }))
        .await;
    assert_eq!(
        (s, b["data"][0]["code"].clone()),
        (400, json!("MANDATORY_NOT_FOUND"))
    );
}

#[tokio::test]
async fn update_by_id_in_the_path() {
    let z = Zoho::start().await;
    let id = z.insert_lead(json!({ "Last_Name": "Path" })).await;
    let (s, b) = z
        .put(
            &format!("/Leads/{id}"),
            json!({ "data": [{ "City": "Lyon" }] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, after) = z.get(&format!("/Leads/{id}?fields=City")).await;
    assert_eq!(after["data"][0]["City"], "Lyon");
}

#[tokio::test]
async fn upsert_inserts_then_updates_on_a_case_insensitive_email_match() {
    let z = Zoho::start_with(0).await;
    let (s, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "Up", "Email": "up@example.com" }] }),
        )
        .await;
    assert_eq!((s, b["data"][0]["action"].clone()), (201, json!("insert")));
    let id = b["data"][0]["details"]["id"].clone();
    let (s, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "Up2", "Email": " UP@example.com " }] }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["action"], "update");
    assert_eq!(b["data"][0]["duplicate_field"], "Email");
    assert_eq!(b["data"][0]["details"]["id"], id);
}

#[tokio::test]
async fn a_later_record_in_a_batch_sees_an_earlier_insert() {
    let z = Zoho::start_with(0).await;
    let (s, b) = z
        .post("/Leads/upsert", json!({ "data": [{ "Last_Name": "A", "Email": "same@example.com" }, { "Last_Name": "B", "Email": "same@example.com" }] }))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["action"], "insert");
    assert_eq!(b["data"][1]["action"], "update");
    assert_eq!(b["data"][0]["details"]["id"], b["data"][1]["details"]["id"]);
}

#[tokio::test]
async fn upsert_with_several_matches_updates_the_earliest_created() {
    let z = Zoho::start_with(0).await;
    let first = z
        .insert_lead(json!({ "Last_Name": "First", "Email": "dup@example.com" }))
        .await;
    z.advance(10.0).await;
    z.insert_lead(json!({ "Last_Name": "Second", "Email": "DUP@example.com" }))
        .await;
    let (_, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "Merged", "Email": "dup@example.com" }] }),
        )
        .await;
    assert_eq!(b["data"][0]["details"]["id"], json!(first));
}

#[tokio::test]
async fn upsert_uses_the_first_matching_duplicate_check_field() {
    let z = Zoho::start_with(0).await;
    let by_phone = z
        .insert_lead(json!({ "Last_Name": "P", "Phone": "+33 1 00 00 00 01" }))
        .await;
    let (_, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "P2", "Email": "nobody@example.com", "Phone": "+33 1 00 00 00 01" }], "duplicate_check_fields": ["Email", "Phone"] }),
        )
        .await;
    assert_eq!(b["data"][0]["duplicate_field"], "Phone");
    assert_eq!(b["data"][0]["details"]["id"], json!(by_phone));
    let (s, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "P" }], "duplicate_check_fields": ["Nope"] }),
        )
        .await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn upsert_matching_a_converted_lead_is_converted_record() {
    let z = Zoho::start_with(0).await;
    let id = z
        .insert_lead(json!({ "Last_Name": "Conv", "Email": "conv@example.com" }))
        .await;
    z.post(
        &format!("/Leads/{id}/actions/convert"),
        json!({ "data": [{ "overwrite": true }] }),
    )
    .await;
    let (s, b) = z
        .post(
            "/Leads/upsert",
            json!({ "data": [{ "Last_Name": "Conv", "Email": "conv@example.com" }] }),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["data"][0]["code"], "CONVERTED_RECORD");
    assert_eq!(b["data"][0]["message"], "can't update the converted record");
    let (s, b) = z
        .put(
            "/Leads",
            json!({ "data": [{ "id": id, "City": "Nantes" }] }),
        )
        .await;
    assert_eq!(
        (s, b["data"][0]["code"].clone()),
        (400, json!("CONVERTED_RECORD"))
    );
}

#[tokio::test]
async fn trigger_empty_runs_no_workflow_and_absent_runs_them() {
    let z = Zoho::start_with(0).await;
    z.post(
        "/Leads",
        json!({ "data": [{ "Last_Name": "Quiet" }], "trigger": [] }),
    )
    .await;
    assert_eq!(z.usage().await["workflow_runs"], 0);
    z.post("/Leads", json!({ "data": [{ "Last_Name": "Loud" }] }))
        .await;
    assert_eq!(z.usage().await["workflow_runs"], 1);
    z.post(
        "/Leads",
        json!({ "data": [{ "Last_Name": "Loud2" }], "trigger": ["workflow"] }),
    )
    .await;
    assert_eq!(z.usage().await["workflow_runs"], 2);
    let stored = z.stored("Leads").await;
    let quiet = stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Last_Name"] == "Quiet")
        .unwrap();
    assert_eq!(quiet["$workflow_runs"], 0);
}

#[tokio::test]
async fn an_unknown_trigger_is_invalid_data() {
    let z = Zoho::start().await;
    let (s, b) = z
        .post(
            "/Leads",
            json!({ "data": [{ "Last_Name": "X" }], "trigger": ["email"] }),
        )
        .await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn converting_a_lead_creates_a_contact_and_an_account() {
    let z = Zoho::start_with(0).await;
    let id = z
        .insert_lead(json!({
            "Last_Name": "Martin", "First_Name": "Léa", "Email": "lea@acme.fr", "Company": "Acme SA",
            "Designation": "CEO", "Email_Opt_Out": true, "sync_to_plezi": "yes", "Lead_Source": "Partner",
        }))
        .await;
    let (status, body) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{ "overwrite": true, "notify_lead_owner": false }] }),
        )
        .await;
    assert_eq!(status, 200);
    let r = &body["data"][0];
    assert_eq!(r["code"], "SUCCESS");
    assert_eq!(r["message"], "The record has been converted successfully");
    assert_eq!(r["details"]["Deals"], Value::Null);
    let contact_id = r["details"]["Contacts"]["id"].as_str().unwrap();
    assert!(r["details"]["Accounts"]["id"].is_string());
    let (_, contact) = z.get(&format!("/Contacts/{contact_id}")).await;
    let c = &contact["data"][0];
    assert_eq!(c["Last_Name"], "Martin");
    assert_eq!(c["First_Name"], "Léa");
    assert_eq!(c["Email"], "lea@acme.fr");
    assert_eq!(c["Title"], "CEO");
    assert_eq!(c["Email_Opt_Out"], true);
    assert_eq!(c["sync_to_plezi"], "yes");
    assert_eq!(c["Lead_Source"], "Partner");
    assert_eq!(c["Account_Name"]["name"], "Acme SA");
    let (_, lead) = z.get(&format!("/Leads/{id}?fields=Converted__s")).await;
    assert_eq!(lead["data"][0]["$converted"], true);
    assert_eq!(lead["data"][0]["Converted__s"], true);
}

#[tokio::test]
async fn converting_twice_is_id_already_converted() {
    let z = Zoho::start_with(0).await;
    let id = z.insert_lead(json!({ "Last_Name": "Twice" })).await;
    let (s, b) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{}] }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["data"][0]["details"]["Accounts"], Value::Null);
    let (s, b) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{}] }),
        )
        .await;
    assert_eq!(
        (s, b["data"][0]["code"].clone()),
        (400, json!("ID_ALREADY_CONVERTED"))
    );
}

#[tokio::test]
async fn converting_an_unknown_lead_is_invalid_data() {
    let z = Zoho::start().await;
    let (s, b) = z
        .post(
            "/Leads/6800000000000099999/actions/convert",
            json!({ "data": [{}] }),
        )
        .await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn deleted_records_are_listed_in_the_recycle_bin() {
    let z = Zoho::start_with(0).await;
    let (s, _) = z.get("/Leads/deleted?type=all").await;
    assert_eq!(s, 204);
    let a = z
        .insert_lead(json!({ "Last_Name": "Gone", "First_Name": "Al" }))
        .await;
    let b = z.insert_lead(json!({ "Last_Name": "Gone2" })).await;
    let (s, body) = z
        .delete(&format!("/Leads?ids={a},6800000000000099999"))
        .await;
    assert_eq!(s, 207);
    assert_eq!(body["data"][0]["code"], "SUCCESS");
    assert_eq!(body["data"][1]["code"], "INVALID_DATA");
    let (s, _) = z.delete(&format!("/Leads/{b}")).await;
    assert_eq!(s, 200);
    let (s, body) = z.get("/Leads/deleted?type=recycle").await;
    assert_eq!(s, 200);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let gone = rows.iter().find(|r| r["id"] == json!(a)).unwrap();
    assert_eq!(gone["display_name"], "Al Gone");
    assert_eq!(gone["type"], "recycle");
    assert!(gone["deleted_time"].is_string() && gone["deleted_by"]["id"].is_string());
    let (s, _) = z.get(&format!("/Leads/{a}")).await;
    assert_eq!(s, 400);
    let (s, _) = z
        .get_since("/Leads/deleted", "2999-01-01T00:00:00+00:00")
        .await;
    assert_eq!(s, 204);
    let (s, _) = z.get("/Leads/deleted?type=permanent").await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn delete_needs_ids_and_at_most_100() {
    let z = Zoho::start().await;
    let (s, b) = z.delete("/Leads").await;
    assert_eq!(
        (s, b["code"].clone()),
        (400, json!("REQUIRED_PARAM_MISSING"))
    );
    let ids: Vec<String> = (0..101)
        .map(|i| (6_800_000_000_000_000_000u64 + i).to_string())
        .collect();
    let (s, b) = z.delete(&format!("/Leads?ids={}", ids.join(","))).await;
    assert_eq!((s, b["code"].clone()), (400, json!("LIMIT_EXCEEDED")));
}

#[tokio::test]
async fn a_converted_lead_is_stored_with_its_contact() {
    let z = Zoho::start_with(0).await;
    let id = z.insert_lead(json!({ "Last_Name": "Stored" })).await;
    z.post(
        &format!("/Leads/{id}/actions/convert"),
        json!({ "data": [{}] }),
    )
    .await;
    let leads = z.stored("Leads").await;
    assert_eq!(stored_by_id(&leads, &id)["$converted"], true);
    assert_eq!(z.stored("Contacts").await["count"], 1);
}

#[tokio::test]
async fn custom_datetime_fields_need_an_offset() {
    let sb = crate::common::TestSandbox::start().await;
    let (_, org) = sb
        .admin_post(
            "/admin/zoho/orgs",
            json!({ "custom_fields": [{ "api_name": "Last_Seen", "data_type": "datetime" }] }),
        )
        .await;
    let (_, t) = super::token_request(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", org["client_id"].as_str().unwrap()),
            ("client_secret", org["client_secret"].as_str().unwrap()),
            ("code", org["grant_code"].as_str().unwrap()),
        ],
    )
    .await;
    let auth = format!("Zoho-oauthtoken {}", t["access_token"].as_str().unwrap());
    let url = format!("{}/crm/v8/Leads", org["api_domain"].as_str().unwrap());
    let body = json!({ "data": [
        { "Last_Name": "A", "Last_Seen": "2026-11-21T10:00:00+01:00" },
        { "Last_Name": "B", "Last_Seen": "2026-11-21 10:00:00" }
    ] });
    let resp = sb
        .http
        .post(url)
        .header("Authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 207);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["data"][1]["details"]["expected_data_type"], "datetime");
}

#[tokio::test]
async fn deleted_rows_name_the_creator_and_the_deleter() {
    let z = Zoho::start_with(0).await;
    let users = z.sb.desc().zoho.users.clone();
    let (creator, deleter) = (&users[1], &users[0]);
    let (s, stored) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/records/Leads", z.org()),
            json!({ "records": [{ "Last_Name": "Kept", "Created_By": { "id": creator["id"] } }] }),
        )
        .await;
    assert_eq!(s, 201, "{stored}");
    let id = stored["ids"][0].as_str().unwrap().to_owned();
    assert_eq!(z.delete(&format!("/Leads/{id}")).await.0, 200);

    let (s, body) = z.get("/Leads/deleted").await;

    assert_eq!(s, 200);
    let row = &body["data"][0];
    let mut keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_by",
            "deleted_by",
            "deleted_time",
            "display_name",
            "id",
            "type"
        ]
    );
    assert_eq!(
        row["created_by"],
        json!({ "name": creator["full_name"], "id": creator["id"] })
    );
    assert_eq!(
        row["deleted_by"],
        json!({ "name": deleter["full_name"], "id": deleter["id"] })
    );
}
