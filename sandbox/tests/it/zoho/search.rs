//! Search.

use serde_json::{Value, json};

use super::Zoho;

fn last_names(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Last_Name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn with_people() -> Zoho {
    let z = Zoho::start_with(0).await;
    for (last, email, phone) in [
        ("Smith", "anna.smith@acme.com", "+33 1 23 45 67 89"),
        ("Smithers", "w.smithers@globex.com", "+44 20 7946 0000"),
        ("Jones", "ANNA@Acme.com", "+1 555 0100"),
        ("O'Brien (EU)", "ob@eu.example", "+353 1 555 1234"),
    ] {
        z.insert_lead(json!({ "Last_Name": last, "Email": email, "Phone": phone, "score": 10 }))
            .await;
    }
    z
}

#[tokio::test]
async fn criteria_with_and_narrows_the_match() {
    let z = with_people().await;
    let (status, body) = z
        .get("/Leads/search?criteria=((Email:equals:acme.com)and(Last_Name:starts_with:Sm))")
        .await;
    assert_eq!(status, 200);
    assert_eq!(last_names(&body), vec!["Smith"]);
    assert_eq!(body["info"]["count"], 1);
}

#[tokio::test]
async fn equals_on_text_behaves_like_case_insensitive_contains() {
    let z = with_people().await;
    let (_, body) = z.get("/Leads/search?criteria=(Email:equals:anna)").await;
    assert_eq!(last_names(&body), vec!["Jones", "Smith"]);
}

#[tokio::test]
async fn or_and_comma_values_mean_any_of() {
    let z = with_people().await;
    let (_, body) = z
        .get("/Leads/search?criteria=(Last_Name:in:Jones,Smithers)")
        .await;
    assert_eq!(last_names(&body), vec!["Jones", "Smithers"]);
    let (_, body) = z
        .get("/Leads/search?criteria=(Last_Name:starts_with:Jo)or(Last_Name:starts_with:O)")
        .await;
    assert_eq!(last_names(&body), vec!["Jones", "O'Brien (EU)"]);
}

#[tokio::test]
async fn escaped_parentheses_match_literally() {
    let z = with_people().await;
    let criteria = r"(Last_Name:equals:O'Brien \(EU\))";
    let url = format!("/Leads/search?criteria={}", urlencode(criteria));
    let (status, body) = z.get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(last_names(&body), vec!["O'Brien (EU)"]);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn numeric_comparisons_use_numbers() {
    let z = with_people().await;
    let (_, body) = z
        .get("/Leads/search?criteria=(score:greater_equal:10)")
        .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    let (status, _) = z
        .get("/Leads/search?criteria=(score:greater_than:10)")
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn email_search_is_an_exact_case_insensitive_match() {
    let z = with_people().await;
    let (_, body) = z.get("/Leads/search?email=anna@acme.com").await;
    assert_eq!(last_names(&body), vec!["Jones"]);
    let (status, _) = z.get("/Leads/search?email=anna").await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn phone_and_word_searches_match() {
    let z = with_people().await;
    let (_, body) = z.get("/Leads/search?phone=5550100").await;
    assert_eq!(last_names(&body), vec!["Jones"]);
    let (_, body) = z.get("/Leads/search?word=globex").await;
    assert_eq!(last_names(&body), vec!["Smithers"]);
}

#[tokio::test]
async fn search_needs_exactly_one_of_criteria_email_phone_word() {
    let z = with_people().await;
    let (s, b) = z.get("/Leads/search").await;
    assert_eq!(
        (s, b["code"].clone()),
        (400, json!("REQUIRED_PARAM_MISSING"))
    );
    let (s, _) = z.get("/Leads/search?email=a@b.com&word=x").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn an_unsupported_operator_is_invalid_query_naming_it() {
    let z = with_people().await;
    let (s, b) = z.get("/Leads/search?criteria=(Email:contains:acme)").await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_QUERY")));
    assert!(b["message"].as_str().unwrap().contains("contains"));
}

#[tokio::test]
async fn malformed_criteria_and_unknown_fields_are_invalid_query() {
    let z = with_people().await;
    let (s, b) = z.get("/Leads/search?criteria=(Email:equals:x").await;
    assert_eq!((s, b["code"].clone()), (400, json!("INVALID_QUERY")));
    let (s, b) = z.get("/Leads/search?criteria=(Nope:equals:x)").await;
    assert_eq!(
        (s, b["code"].clone(), b["details"]["api_name"].clone()),
        (400, json!("INVALID_QUERY"), json!("Nope"))
    );
}

#[tokio::test]
async fn more_than_ten_conditions_is_limit_exceeded() {
    let z = with_people().await;
    let criteria = (0..11)
        .map(|i| format!("(Last_Name:equals:x{i})"))
        .collect::<Vec<_>>()
        .join("or");
    let (s, b) = z.get(&format!("/Leads/search?criteria={criteria}")).await;
    assert_eq!((s, b["code"].clone()), (400, json!("LIMIT_EXCEEDED")));
}

#[tokio::test]
async fn no_match_is_204() {
    let z = with_people().await;
    let (s, b) = z
        .get("/Leads/search?criteria=(Last_Name:equals:Nobody)")
        .await;
    assert_eq!((s, b), (204, Value::Null));
}

#[tokio::test]
async fn search_hides_converted_leads_by_default() {
    let z = with_people().await;
    let (_, body) = z.get("/Leads/search?email=anna.smith@acme.com").await;
    let id = body["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = z
        .post(
            &format!("/Leads/{id}/actions/convert"),
            json!({ "data": [{ "overwrite": true }] }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = z.get("/Leads/search?email=anna.smith@acme.com").await;
    assert_eq!(s, 204);
    let (s, body) = z
        .get("/Leads/search?email=anna.smith@acme.com&converted=true")
        .await;
    assert_eq!((s, body["data"][0]["id"].clone()), (200, json!(id)));
}

#[tokio::test]
async fn search_pages_stop_at_2000_records() {
    let z = with_people().await;
    let (s, b) = z.get("/Leads/search?word=a&per_page=200&page=11").await;
    assert_eq!(
        (s, b["code"].clone()),
        (400, json!("DISCRETE_PAGINATION_LIMIT_EXCEEDED"))
    );
}
