//! Authentication, CSRF, reads, writes, ETags and conversion.

use reqwest::Method;
use serde_json::json;

use super::{C4c, SERVICE};
use crate::common::{TestSandbox, split};

#[tokio::test]
async fn a_read_without_credentials_is_401_with_a_basic_challenge() {
    let sb = TestSandbox::start().await;
    let resp = sb
        .http
        .get(sb.url(&format!("{SERVICE}LeadCollection?$format=json")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
}

#[tokio::test]
async fn the_default_tenant_serves_its_seeded_leads() {
    let sb = TestSandbox::start().await;
    let d = &sb.desc().sap_c4c;
    let resp = sb
        .http
        .get(sb.url(&format!(
            "{SERVICE}LeadCollection?$format=json&$inlinecount=allpages"
        )))
        .basic_auth(&d.username, Some(&d.password))
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["d"]["__count"], json!("20"));
    assert_eq!(body["d"]["results"].as_array().unwrap().len(), 20);
    assert_eq!(
        body["d"]["results"][0]["__metadata"]["type"],
        "c4codata.Lead"
    );
}

#[tokio::test]
async fn a_write_without_the_csrf_token_and_cookie_is_403() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    let lead = json!({"Name": "A", "Company": "Acme"});
    let (status, body) = c4c.post("LeadCollection", lead.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(body, json!("CSRF token validation failed"));

    c4c.fetch_token().await;
    let (token, _) = c4c.csrf.clone().unwrap();
    let without_cookie = c4c
        .sb
        .http
        .post(c4c.url("LeadCollection"))
        .basic_auth(&c4c.username, Some(&c4c.password))
        .header("x-csrf-token", token)
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert_eq!(without_cookie.status(), 403);
    let (status, body) = c4c.post("LeadCollection", lead).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["d"]["StatusCode"], "1");
}

#[tokio::test]
async fn a_lead_needs_a_company_and_codes_from_the_list() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    c4c.fetch_token().await;
    let (status, body) = c4c
        .post(
            "LeadCollection",
            json!({"Name": "A", "ContactLastName": "B"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]["value"]
            .as_str()
            .unwrap()
            .contains("Company")
    );
    let (status, body) = c4c
        .post(
            "LeadCollection",
            json!({"Name": "A", "AccountPartyID": "1001", "QualificationLevelCode": "H"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_CODE");
    let (status, _) = c4c
        .post(
            "LeadCollection",
            json!({"Name": "A", "AccountPartyID": "1001"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn pages_follow_next_links_with_a_skiptoken_until_the_last() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    for i in 0..5 {
        c4c.lead(json!({"Name": format!("L{i}"), "Company": "Acme"}))
            .await;
    }
    c4c.settings(json!({"page_size": 2})).await;
    let (_, first) = c4c
        .get("LeadCollection?$format=json&$orderby=Name desc&$select=Name")
        .await;
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for r in page["d"]["results"].as_array().unwrap() {
            names.push(r["Name"].as_str().unwrap().to_owned());
            assert!(r.get("Company").is_none(), "$select keeps only Name");
        }
        let Some(next) = page["d"]["__next"].as_str() else {
            break;
        };
        assert!(next.contains("$skiptoken="), "{next}");
        let resp = sb
            .http
            .get(next)
            .basic_auth(&c4c.username, Some(&c4c.password))
            .send()
            .await
            .unwrap();
        page = split(resp).await.1;
    }
    assert_eq!(names, ["L4", "L3", "L2", "L1", "L0"]);
}

#[tokio::test]
async fn a_filter_on_the_change_time_returns_what_changed_since() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    c4c.lead(json!({"Name": "Old", "Company": "Acme"})).await;
    sb.admin_post("/admin/clock", json!({"advance_secs": 3600}))
        .await;
    let since = sb.admin_get("/admin/clock").await.1["now"]
        .as_str()
        .unwrap()
        .to_owned();
    c4c.lead(json!({"Name": "New", "Company": "Acme"})).await;
    let filter = format!("EntityLastChangedOn ge datetimeoffset'{since}'");
    let resp = c4c
        .request(Method::GET, "LeadCollection")
        .query(&[("$filter", filter.as_str()), ("$format", "json")])
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 200, "{body}");
    let results = body["d"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["Name"], "New");
    assert!(
        results[0]["EntityLastChangedOn"]
            .as_str()
            .unwrap()
            .starts_with("/Date(")
    );
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_412() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    let id = c4c.lead(json!({"Name": "A", "Company": "Acme"})).await;
    let path = format!("LeadCollection('{id}')");
    let resp = c4c.request(Method::GET, &path).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let patch = |tag: &str| {
        c4c.request(Method::PATCH, &path)
            .header("if-match", tag)
            .json(&json!({"ContactFirstName": "Zoë"}))
            .send()
    };
    assert_eq!(patch(&etag).await.unwrap().status(), 204);
    let stale = patch(&etag).await.unwrap();
    assert_eq!(stale.status(), 412);
    let (_, body) = c4c.get(&path).await;
    assert_eq!(body["d"]["ContactFirstName"], "Zoë");
}

#[tokio::test]
async fn the_metadata_is_edmx_with_the_sets_and_code_lists() {
    let sb = TestSandbox::start().await;
    let c4c = C4c::empty(&sb).await;
    let resp = c4c.request(Method::GET, "$metadata").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let xml = resp.text().await.unwrap();
    for name in [
        "\"LeadCollection\"",
        "\"ContactCollection\"",
        "LeadQualificationLevelCodeCollection",
    ] {
        assert!(xml.contains(name), "{name}");
    }
    let (status, codes) = c4c.get("LeadQualificationLevelCodeCollection").await;
    assert_eq!(status, 200);
    assert_eq!(
        codes["d"]["results"][0],
        json!({"Code": "1", "Description": "Hot"})
    );
}

#[tokio::test]
async fn a_reps_conversion_makes_an_account_and_a_contact() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    let id = c4c
        .lead(json!({"Name": "A", "Company": "Acme", "ContactLastName": "Bé", "ContactEMail": "a@b.example"}))
        .await;
    let (status, reply) = sb
        .admin_post(&format!("/admin/sap_c4c/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(status, 200, "{reply}");
    let contact = reply["contact_id"].as_str().unwrap();
    let (_, body) = c4c.get(&format!("ContactCollection('{contact}')")).await;
    assert_eq!(body["d"]["Email"], "a@b.example");
    let (_, lead) = c4c.get(&format!("LeadCollection('{id}')")).await;
    assert_eq!(lead["d"]["StatusCode"], "2");
    assert_eq!(lead["d"]["ContactID"], body["d"]["ContactID"]);
    let (again, _) = sb
        .admin_post(&format!("/admin/sap_c4c/leads/{id}/convert"), json!({}))
        .await;
    assert_eq!(again, 409);
}

#[tokio::test]
async fn the_service_root_without_its_slash_redirects_with_307() {
    let sb = TestSandbox::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = sb.url(SERVICE.trim_end_matches('/'));
    let resp = http.get(&root).send().await.unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], sb.url(SERVICE).as_str());
}
