//! Get records, get one record, pagination, fields and users.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::Zoho;

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn visible_leads(z: &Zoho) -> usize {
    z.stored("Leads").await["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["$converted"] == false)
        .count()
}

#[tokio::test]
async fn get_records_requires_fields() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "REQUIRED_PARAM_MISSING");
    assert_eq!(body["details"], json!({ "param": "fields" }));
    assert_eq!(body["status"], "error");
}

#[tokio::test]
async fn more_than_fifty_fields_is_limit_exceeded() {
    let z = Zoho::start().await;
    let fields = vec!["Last_Name"; 51].join(",");
    let (status, body) = z.get(&format!("/Leads?fields={fields}")).await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("LIMIT_EXCEEDED"))
    );
}

#[tokio::test]
async fn an_unknown_field_is_invalid_data_naming_it() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name,Nope").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "INVALID_DATA");
    assert_eq!(body["details"]["api_name"], "Nope");
}

#[tokio::test]
async fn records_carry_only_the_asked_fields_plus_id() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name,Email").await;
    assert_eq!(status, 200);
    let first = body["data"][0].as_object().unwrap();
    let keys: HashSet<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "Last_Name", "Email", "$converted"])
    );
    let id = first["id"].as_str().unwrap();
    assert_eq!(id.len(), 19);
    assert!(id.chars().all(|c| c.is_ascii_digit()));
}

#[tokio::test]
async fn records_show_owner_opt_out_times_and_converted_flags() {
    let z = Zoho::start().await;
    let (_, body) = z
        .get("/Leads?fields=Owner,Email_Opt_Out,Created_Time,Modified_Time,Converted__s,Created_By")
        .await;
    let r = &body["data"][0];
    assert!(
        r["Owner"]["id"].is_string()
            && r["Owner"]["name"].is_string()
            && r["Owner"]["email"].is_string()
    );
    assert!(r["Email_Opt_Out"].is_boolean());
    assert_eq!(r["Converted__s"], false);
    assert_eq!(r["$converted"], false);
    let t = r["Modified_Time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok());
    assert!(t.ends_with("+00:00") && t.len() == 25, "{t}");
}

#[tokio::test]
async fn times_are_shown_in_the_org_time_zone() {
    let z = Zoho::start().await;
    z.set_limits(json!({ "time_zone": "+05:30" })).await;
    let (_, body) = z.get("/Leads?fields=Created_Time").await;
    assert!(
        body["data"][0]["Created_Time"]
            .as_str()
            .unwrap()
            .ends_with("+05:30")
    );
}

#[tokio::test]
async fn the_reply_carries_the_info_block() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name&per_page=5").await;
    assert_eq!(status, 200);
    let info = &body["info"];
    assert_eq!(info["per_page"], 5);
    assert_eq!(info["count"], 5);
    assert_eq!(info["page"], 1);
    assert_eq!(info["more_records"], true);
    assert_eq!(info["sort_by"], "id");
    assert_eq!(info["sort_order"], "desc");
    assert!(info["next_page_token"].is_string());
    assert!(info["page_token_expiry"].is_string());
    assert!(info.get("previous_page_token").is_some());
}

#[tokio::test]
async fn the_default_order_is_id_descending() {
    let z = Zoho::start().await;
    let (_, body) = z.get("/Leads?fields=Last_Name").await;
    let got: Vec<u64> = ids(&body).iter().map(|s| s.parse().unwrap()).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(got, sorted);
}

#[tokio::test]
async fn sort_by_modified_time_ascending_orders_records() {
    let z = Zoho::start().await;
    let (_, body) = z
        .get("/Leads?fields=Modified_Time&sort_by=Modified_Time&sort_order=asc")
        .await;
    let times: Vec<i64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(r["Modified_Time"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn an_unknown_sort_by_is_invalid_data() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name&sort_by=Last_Name").await;
    assert_eq!((status, body["code"].clone()), (400, json!("INVALID_DATA")));
}

#[tokio::test]
async fn page_and_per_page_split_the_records() {
    let z = Zoho::start().await;
    let total = visible_leads(&z).await;
    let (_, p1) = z.get("/Leads?fields=Last_Name&per_page=3&page=1").await;
    let (_, p2) = z.get("/Leads?fields=Last_Name&per_page=3&page=2").await;
    assert_eq!(p2["info"]["page"], 2);
    let a = ids(&p1);
    let b = ids(&p2);
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|id| !b.contains(id)));
    let (status, _) = z
        .get(&format!(
            "/Leads?fields=Last_Name&per_page=200&page={}",
            total / 200 + 2
        ))
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn per_page_over_200_is_refused() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name&per_page=201").await;
    assert_eq!(
        (status, body["details"]["param"].clone()),
        (400, json!("per_page"))
    );
}

#[tokio::test]
async fn pages_past_2000_records_are_discrete_pagination_limit_exceeded() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads?fields=Last_Name&per_page=200&page=11").await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("DISCRETE_PAGINATION_LIMIT_EXCEEDED"))
    );
    let (status, _) = z.get("/Leads?fields=Last_Name&per_page=200&page=10").await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn page_tokens_walk_every_record_once_past_2000() {
    let z = Zoho::start_with(2600).await;
    let total = visible_leads(&z).await;
    assert!(total > 2000);
    let mut seen = HashSet::new();
    let mut path = "/Leads?fields=Last_Name&per_page=200&sort_by=Modified_Time".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = z.get(&path).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for id in ids(&body) {
            assert!(seen.insert(id), "a record came twice");
        }
        match body["info"]["next_page_token"].as_str() {
            Some(token) => {
                path = format!(
                    "/Leads?fields=Last_Name&per_page=200&sort_by=Modified_Time&page_token={token}"
                )
            }
            None => {
                assert_eq!(body["info"]["more_records"], false);
                break;
            }
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(pages, total.div_ceil(200));
}

#[tokio::test]
async fn a_page_token_with_other_parameters_is_refused() {
    let z = Zoho::start().await;
    let (_, body) = z.get("/Leads?fields=Last_Name&per_page=5").await;
    let token = body["info"]["next_page_token"].as_str().unwrap();
    let (status, body) = z
        .get(&format!(
            "/Leads?fields=Last_Name,Email&per_page=5&page_token={token}"
        ))
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!("INVALID_DATA")));
    assert_eq!(body["details"]["param"], "page_token");
    let (status, _) = z
        .get(&format!(
            "/Leads?fields=Last_Name&per_page=5&page_token={token}"
        ))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_page_token_expires_after_a_day() {
    let z = Zoho::start().await;
    let (_, body) = z.get("/Leads?fields=Last_Name&per_page=5").await;
    let token = body["info"]["next_page_token"].as_str().unwrap().to_owned();
    z.advance(86_401.0).await;
    // The access token expired too: take a new one from the refresh token.
    let z = refreshed(z).await;
    let (status, body) = z
        .get(&format!(
            "/Leads?fields=Last_Name&per_page=5&page_token={token}"
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["details"]["reason"], "expired");
}

async fn refreshed(mut z: Zoho) -> Zoho {
    let d = z.sb.desc().zoho.clone();
    let (_, b) = super::token_request(
        &z.sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &d.client_id),
            ("client_secret", &d.client_secret),
            ("refresh_token", &z.refresh),
        ],
    )
    .await;
    z.token = b["access_token"].as_str().unwrap().to_owned();
    z
}

#[tokio::test]
async fn page_token_and_page_together_are_refused() {
    let z = Zoho::start().await;
    let (_, body) = z.get("/Leads?fields=Last_Name&per_page=5").await;
    let token = body["info"]["next_page_token"].as_str().unwrap();
    let (status, _) = z
        .get(&format!(
            "/Leads?fields=Last_Name&per_page=5&page=2&page_token={token}"
        ))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn converted_leads_are_hidden_unless_asked_for() {
    let z = Zoho::start_with(200).await;
    let stored = z.stored("Leads").await;
    let all = stored["records"].as_array().unwrap();
    let converted: HashSet<String> = all
        .iter()
        .filter(|r| r["$converted"] == true)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!converted.is_empty());
    let (_, hidden) = z.get("/Leads?fields=Last_Name").await;
    assert!(ids(&hidden).iter().all(|id| !converted.contains(id)));
    let (_, only) = z.get("/Leads?fields=Last_Name&converted=true").await;
    assert_eq!(ids(&only).into_iter().collect::<HashSet<_>>(), converted);
    assert!(
        only["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["$converted"] == true)
    );
    let (_, both) = z.get("/Leads?fields=Last_Name&converted=both").await;
    assert_eq!(ids(&both).len(), all.len());
}

#[tokio::test]
async fn if_modified_since_returns_only_later_changes_and_304_when_none() {
    let z = Zoho::start().await;
    let since = chrono::Utc::now() + chrono::Duration::days(1);
    let since_s = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let (status, body) = z.get_since("/Leads?fields=Last_Name", &since_s).await;
    assert_eq!(status, 304);
    assert_eq!(body, Value::Null);
    z.advance(2.0 * 86_400.0).await;
    let z = refreshed(z).await;
    let id = z.insert_lead(json!({ "Last_Name": "Later" })).await;
    let (status, body) = z.get_since("/Leads?fields=Last_Name", &since_s).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), vec![id]);
}

#[tokio::test]
async fn an_empty_module_is_204_with_no_body() {
    let z = Zoho::start_with(0).await;
    let (status, body) = z.get("/Contacts?fields=Last_Name").await;
    assert_eq!((status, body), (204, Value::Null));
}

#[tokio::test]
async fn get_one_record_by_id() {
    let z = Zoho::start().await;
    let id = z
        .insert_lead(json!({ "Last_Name": "Solo", "Email": "solo@example.com" }))
        .await;
    let (status, body) = z.get(&format!("/Leads/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["Last_Name"], "Solo");
    assert_eq!(body["data"][0]["Full_Name"], "Solo");
    assert_eq!(body["data"][0]["id"], json!(id));
}

#[tokio::test]
async fn an_unknown_record_id_is_invalid_data() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Leads/6800000000000009999").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "INVALID_DATA");
    assert_eq!(body["message"], "the related id given seems to be invalid");
    assert_eq!(body["details"], json!({ "id": "6800000000000009999" }));
}

#[tokio::test]
async fn an_unknown_module_is_invalid_module() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/Deals?fields=Deal_Name").await;
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("INVALID_MODULE"))
    );
}

#[tokio::test]
async fn fields_lists_standard_and_custom_fields_in_zoho_shape() {
    let z = Zoho::start().await;
    let (status, body) = z.get("/settings/fields?module=Leads").await;
    assert_eq!(status, 200);
    let fields = body["fields"].as_array().unwrap();
    let by = |name: &str| {
        fields
            .iter()
            .find(|f| f["api_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}"))
    };
    assert_eq!(by("Last_Name")["system_mandatory"], true);
    assert_eq!(by("Full_Name")["read_only"], true);
    assert_eq!(by("Email")["data_type"], "email");
    assert_eq!(by("Owner")["data_type"], "ownerlookup");
    assert_eq!(by("score")["data_type"], "integer");
    assert_eq!(by("sync_to_plezi")["custom_field"], true);
    let industry = by("Industry");
    let software = industry["pick_list_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["actual_value"] == "Software")
        .unwrap()
        .clone();
    assert_eq!(software["display_value"], "Software / SaaS");
    for key in [
        "field_label",
        "display_label",
        "id",
        "json_type",
        "length",
        "visible",
        "unique",
    ] {
        assert!(industry.get(key).is_some(), "{key}");
    }
    let (_, contacts) = z.get("/settings/fields?module=Contacts").await;
    let names: Vec<&str> = contacts["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["api_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Account_Name") && names.contains(&"Title") && !names.contains(&"Company")
    );
}

#[tokio::test]
async fn fields_needs_a_known_module() {
    let z = Zoho::start().await;
    let (s, b) = z.get("/settings/fields").await;
    assert_eq!(
        (s, b["code"].clone(), b["details"].clone()),
        (
            400,
            json!("REQUIRED_PARAM_MISSING"),
            json!({ "param": "module" })
        )
    );
    let (s, b) = z.get("/settings/fields?module=Nope").await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_MODULE")));
}

#[tokio::test]
async fn users_filter_by_type_under_the_users_key() {
    let z = Zoho::start().await;
    let (status, all) = z.get("/users?type=AllUsers").await;
    assert_eq!(status, 200);
    let all = all["users"].as_array().unwrap().clone();
    assert!((3..=5).contains(&all.len()));
    let (_, active) = z.get("/users?type=ActiveUsers").await;
    let (_, off) = z.get("/users?type=DeactiveUsers").await;
    assert!(
        active["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["status"] == "active")
    );
    assert_eq!(off["users"].as_array().unwrap().len(), 1);
    assert_eq!(off["users"][0]["status"], "disabled");
    for key in [
        "id",
        "email",
        "full_name",
        "first_name",
        "last_name",
        "role",
        "profile",
    ] {
        assert!(all[0].get(key).is_some(), "{key}");
    }
    assert!(active["info"]["count"].is_number());
}

#[tokio::test]
async fn ids_limit_a_listing_to_the_records_named_a_hundred_at_most() {
    let z = Zoho::start().await;
    let (_, first) = z
        .get("/Leads?fields=Last_Name&per_page=5&sort_by=id&sort_order=asc")
        .await;
    let first = ids(&first);
    let named = format!("{},{},{},9999999999999999999", first[3], first[1], first[1]);

    let (status, body) = z
        .get(&format!(
            "/Leads?fields=Last_Name&sort_by=id&sort_order=asc&ids={named}"
        ))
        .await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body),
        vec![first[1].clone(), first[3].clone()],
        "each known id once, in the listing's order"
    );
    assert_eq!(body["info"]["more_records"], json!(false));

    let too_many = (0..101).map(|i| (5_000_000_000_000_000_000u64 + i).to_string());
    let (status, body) = z
        .get(&format!(
            "/Leads?fields=Last_Name&ids={}",
            too_many.collect::<Vec<_>>().join(",")
        ))
        .await;
    assert_eq!(
        (
            status,
            body["code"].clone(),
            body["details"]["limit"].clone()
        ),
        (400, json!("LIMIT_EXCEEDED"), json!(100))
    );
}
