//! The query API (COQL).

use serde_json::{Value, json};

use super::Zoho;

const SCOPE: &str = "ZohoCRM.coql.READ,ZohoCRM.modules.all";

/// A sandbox with four known leads and a token that may query.
async fn with_people() -> (Zoho, String) {
    let z = Zoho::start_with(0).await;
    for (first, last, email, score) in [
        ("Anna", "Smith", Some("anna.smith@acme.com"), 10),
        ("Will", "Smithers", Some("w.smithers@globex.com"), 40),
        ("Ann", "Jones", Some("ANNA@Acme.com"), 25),
        ("Oona", "O'Brien", None, 5),
    ] {
        z.insert_lead(
            json!({ "First_Name": first, "Last_Name": last, "Email": email, "score": score }),
        )
        .await;
    }
    let token = z.token_with_scope(SCOPE).await;
    (z, token)
}

async fn coql(z: &Zoho, token: &str, query: &str) -> (u16, Value) {
    z.send(
        z.sb.http
            .post(z.api("/coql"))
            .header("Authorization", format!("Zoho-oauthtoken {token}"))
            .json(&json!({ "select_query": query })),
    )
    .await
}

fn column(body: &Value, name: &str) -> Vec<Value> {
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| r[name].clone())
        .collect()
}

#[tokio::test]
async fn a_query_selects_filters_orders_and_pages() {
    let (z, token) = with_people().await;

    let (s, body) = coql(
        &z,
        &token,
        "select Last_Name, Email from Leads where (Email like '%acme.com' or score > 30) \
         order by score desc limit 0, 2",
    )
    .await;

    assert_eq!(s, 200, "{body}");
    assert_eq!(
        column(&body, "Last_Name"),
        [json!("Smithers"), json!("Jones")]
    );
    assert_eq!(body["info"], json!({ "count": 2, "more_records": true }));
    let mut keys: Vec<&String> = body["data"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["Email", "Last_Name", "id"]);

    let (s, body) = coql(
        &z,
        &token,
        "select Last_Name from Leads where (Email like '%acme.com' or score > 30) \
         order by score desc limit 2 offset 2",
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(column(&body, "Last_Name"), [json!("Smith")]);
    assert_eq!(body["info"], json!({ "count": 1, "more_records": false }));
}

#[tokio::test]
async fn comparison_operators_and_null_tests_match_as_documented() {
    let (z, token) = with_people().await;
    for (criteria, want) in [
        ("Last_Name = 'smith'", vec!["Smith"]),
        ("Last_Name != 'Smith'", vec!["Smithers", "Jones", "O'Brien"]),
        ("score < 10", vec!["O'Brien"]),
        ("score <= 10", vec!["Smith", "O'Brien"]),
        ("score >= 25", vec!["Smithers", "Jones"]),
        ("Last_Name like 'smith%'", vec!["Smith", "Smithers"]),
        (
            "Last_Name in ('Jones', 'O''Brien')",
            vec!["Jones", "O'Brien"],
        ),
        ("Email is null", vec!["O'Brien"]),
        (
            "(Email is not null and First_Name like 'An%')",
            vec!["Smith", "Jones"],
        ),
        (
            "((score > 1 and score < 30) and Email is not null)",
            vec!["Smith", "Jones"],
        ),
    ] {
        let (s, body) = coql(
            &z,
            &token,
            &format!("select Last_Name from Leads where {criteria}"),
        )
        .await;
        assert_eq!(s, 200, "{criteria}: {body}");
        assert_eq!(
            column(&body, "Last_Name"),
            want.iter().map(|w| json!(w)).collect::<Vec<_>>(),
            "{criteria}"
        );
    }
}

#[tokio::test]
async fn no_match_answers_204_without_a_body() {
    let (z, token) = with_people().await;

    let (s, body) = coql(
        &z,
        &token,
        "select Last_Name from Leads where Last_Name = 'Nobody'",
    )
    .await;

    assert_eq!((s, body), (204, Value::Null));
}

#[tokio::test]
async fn a_query_without_where_is_a_syntax_error_naming_the_clause() {
    let (z, token) = with_people().await;

    let (s, body) = coql(&z, &token, "select Last_Name from Leads limit 10").await;

    assert_eq!(s, 400);
    assert_eq!(body["code"], "SYNTAX_ERROR");
    assert_eq!(body["details"], json!({ "clause": "where" }));
}

#[tokio::test]
async fn malformed_queries_are_syntax_errors_near_the_fault() {
    let (z, token) = with_people().await;

    let (s, body) = coql(
        &z,
        &token,
        "select id from Leads where id is not null and Email is null and Phone is null",
    )
    .await;

    assert_eq!(s, 400);
    assert_eq!(body["code"], "SYNTAX_ERROR");
    assert_eq!(body["details"]["near"], "and");
    assert_eq!(body["details"]["line"], 1);
    assert!(body["details"]["column"].as_u64().is_some());
}

#[tokio::test]
async fn unknown_columns_and_unfit_operators_are_invalid_queries_naming_them() {
    let (z, token) = with_people().await;
    for (query, details) in [
        (
            "select Nope from Leads where id is not null",
            json!({ "column_name": "Nope" }),
        ),
        (
            "select id from Leads where Nope = 'x'",
            json!({ "column_name": "Nope" }),
        ),
        (
            "select id from Leads where Last_Name >= 'x'",
            json!({ "column_name": "Last_Name", "operator": ">=", "reason": "invalid operator found" }),
        ),
        (
            "select id from Leads where score = 'many'",
            json!({ "column_name": "score", "expected_data_type": "integer", "value": "many" }),
        ),
        (
            "select id from Leads where Description = 'x'",
            json!({ "column_name": "Description", "data_type": "textarea" }),
        ),
    ] {
        let (s, body) = coql(&z, &token, query).await;
        assert_eq!(
            (s, &body["code"]),
            (400, &json!("INVALID_QUERY")),
            "{query}: {body}"
        );
        assert_eq!(body["details"], details, "{query}");
    }
}

#[tokio::test]
async fn limits_beyond_2000_rows_or_100000_reach_are_refused() {
    let (z, token) = with_people().await;
    for (query, by) in [
        (
            "select id from Leads where id is not null limit 2001",
            "limit",
        ),
        (
            "select id from Leads where id is not null limit 99000, 2000",
            "offset",
        ),
    ] {
        let (s, body) = coql(&z, &token, query).await;
        assert_eq!(
            (s, &body["code"]),
            (400, &json!("LIMIT_EXCEEDED")),
            "{query}: {body}"
        );
        assert_eq!(body["details"]["by"], by, "{query}");
    }
    let (s, _) = coql(
        &z,
        &token,
        "select id from Leads where id is not null limit 98000, 2000",
    )
    .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn coql_needs_the_coql_scope_and_the_modules_read_scope() {
    let (z, _) = with_people().await;
    let query = "select id from Leads where id is not null";
    let modules_only = z.token_with_scope("ZohoCRM.modules.all").await;
    let contacts_only = z
        .token_with_scope("ZohoCRM.coql.READ,ZohoCRM.modules.contacts.READ")
        .await;

    let before = z.usage().await["credits_used"].clone();
    for token in [modules_only, contacts_only] {
        let (s, body) = coql(&z, &token, query).await;
        assert_eq!(
            (s, body["code"].clone()),
            (401, json!("OAUTH_SCOPE_MISMATCH"))
        );
    }
    let after = z.usage().await["credits_used"].clone();
    assert_eq!(after, before, "refused calls spend no credit");
}

#[tokio::test]
async fn a_body_without_select_query_names_the_missing_key() {
    let (z, token) = with_people().await;

    let (s, body) = z
        .send(
            z.sb.http
                .post(z.api("/coql"))
                .header("Authorization", format!("Zoho-oauthtoken {token}"))
                .json(&json!({ "query": "select id from Leads where id is not null" })),
        )
        .await;

    assert_eq!(
        (s, body["code"].clone()),
        (400, json!("MANDATORY_NOT_FOUND"))
    );
    assert_eq!(body["details"]["api_name"], "select_query");
}

#[tokio::test]
async fn a_query_costs_credits_by_the_limit_it_asks_for() {
    let (z, token) = with_people().await;
    let before = z.usage().await["credits_used"].as_u64().unwrap();
    for limit in [200, 1000, 2000] {
        coql(
            &z,
            &token,
            &format!("select id from Leads where id is not null limit {limit}"),
        )
        .await;
    }
    let after = z.usage().await["credits_used"].as_u64().unwrap();
    assert_eq!(after - before, 1 + 2 + 3);
}
