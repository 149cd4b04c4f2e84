//! The search endpoint: filters, sorts, paging, the 10,000 cap and its own limit.

use serde_json::{Value, json};

use super::{Hs, assert_error};
use crate::common::TestSandbox;

async fn seeded(sb: &TestSandbox) -> Hs<'_> {
    // More searches a second than HubSpot allows: these tests are not about the limit.
    let hs = Hs::create(sb, json!({ "limits": { "search_per_second": 1000 } })).await;
    let contacts: Vec<Value> = (0..30)
        .map(|i| {
            let mut props = json!({
                "firstname": format!("F{i}"),
                "lastname": format!("L{i}"),
                "lifecyclestage": if i % 3 == 0 { "customer" } else { "lead" },
            });
            if i % 5 != 0 {
                props["email"] = json!(format!("p{i}@example.com"));
            }
            json!({
                "properties": props,
                "updated_at": format!("2026-01-01T00:00:{i:02}Z"),
                "created_at": "2025-12-01T00:00:00Z",
            })
        })
        .collect();
    let (status, body) = sb
        .admin_post(&hs.admin("/contacts"), json!({ "contacts": contacts }))
        .await;
    assert_eq!(status, 201, "{body}");
    hs
}

#[tokio::test]
async fn filters_sorts_and_pages_by_lastmodifieddate() {
    let sb = TestSandbox::start().await;
    let hs = seeded(&sb).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut body = json!({
            "filterGroups": [{ "filters": [
                { "propertyName": "lastmodifieddate", "operator": "GTE", "value": "2026-01-01T00:00:10Z" },
            ] }],
            "sorts": [{ "propertyName": "lastmodifieddate", "direction": "ASCENDING" }],
            "properties": ["email", "lastmodifieddate"],
            "limit": 7,
        });
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let r = hs.post("/crm/v3/objects/contacts/search", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["total"], 20);
        for c in r.body["results"].as_array().unwrap() {
            seen.push(
                c["properties"]["lastmodifieddate"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(seen[0], "2026-01-01T00:00:10.000Z");
}

async fn count(hs: &Hs<'_>, filter_groups: Value) -> u64 {
    let r = hs
        .post(
            "/crm/v3/objects/contacts/search",
            json!({ "filterGroups": filter_groups, "limit": 1 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["total"].as_u64().unwrap()
}

#[tokio::test]
async fn operators_eq_neq_in_has_property_and_groups_or_together() {
    let sb = TestSandbox::start().await;
    let hs = seeded(&sb).await;
    let f = |p: &str, op: &str, v: Value| json!({ "propertyName": p, "operator": op, "value": v });
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [f("lifecyclestage", "EQ", json!("customer"))] }])
        )
        .await,
        10
    );
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [f("lifecyclestage", "NEQ", json!("customer"))] }])
        )
        .await,
        20
    );
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [{ "propertyName": "email", "operator": "HAS_PROPERTY" }] }])
        )
        .await,
        24
    );
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [{ "propertyName": "email", "operator": "NOT_HAS_PROPERTY" }] }])
        )
        .await,
        6
    );
    assert_eq!(
        count(&hs, json!([{ "filters": [{ "propertyName": "firstname", "operator": "IN", "values": ["F1", "F2", "F99"] }] }])).await,
        2
    );
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [f("email", "EQ", json!("P1@EXAMPLE.COM"))] }])
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &hs,
            json!([
                { "filters": [f("firstname", "EQ", json!("F1"))] },
                { "filters": [f("firstname", "EQ", json!("F2"))] },
            ])
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &hs,
            json!([{ "filters": [
            f("hs_object_id", "GTE", json!("0")),
            f("lastmodifieddate", "LTE", json!("2026-01-01T00:00:04.000Z")),
        ] }])
        )
        .await,
        5
    );
}

#[tokio::test]
async fn a_limit_over_200_and_paging_past_10000_are_refused() {
    let sb = TestSandbox::start().await;
    let hs = seeded(&sb).await;
    let r = hs
        .post("/crm/v3/objects/contacts/search", json!({ "limit": 201 }))
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = hs
        .post(
            "/crm/v3/objects/contacts/search",
            json!({ "limit": 200, "after": "10000" }),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = hs
        .post(
            "/crm/v3/objects/contacts/search",
            json!({ "limit": 200, "after": "9999" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn too_many_filters_are_refused() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    let filter = json!({ "propertyName": "email", "operator": "HAS_PROPERTY" });
    let group = json!({ "filters": vec![filter.clone(); 7] });
    let r = hs
        .post(
            "/crm/v3/objects/contacts/search",
            json!({ "filterGroups": [group] }),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let groups = vec![json!({ "filters": [filter] }); 6];
    let r = hs
        .post(
            "/crm/v3/objects/contacts/search",
            json!({ "filterGroups": groups }),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn search_has_its_own_per_second_limit_and_headers() {
    let sb = TestSandbox::start().await;
    let hs = Hs::empty(&sb).await;
    // Freeze the window: every call lands in the same sandbox second.
    sb.admin_post("/admin/clock", json!({ "set": "2031-01-01T00:00:00Z" }))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = hs
            .post("/crm/v3/objects/contacts/search", json!({ "limit": 1 }))
            .await;
        if r.status == 200 {
            assert_eq!(r.header("x-hubspot-ratelimit-secondly"), "5");
            assert!(r.headers.get("x-hubspot-ratelimit-max").is_none());
        } else {
            assert_eq!(r.status, 429);
            assert_eq!(r.body["policyName"], "SECONDLY");
            assert_eq!(r.body["errorType"], "RATE_LIMIT");
        }
        statuses.push(r.status);
        // Pin the clock again so real time does not open a new window.
        sb.admin_post("/admin/clock", json!({ "set": "2031-01-01T00:00:00Z" }))
            .await;
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    // Listing is not limited by the search limit.
    assert_eq!(hs.get("/crm/v3/objects/contacts").await.status, 200);
}
