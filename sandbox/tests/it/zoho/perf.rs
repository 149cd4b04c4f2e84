//! Pagination speed with 100,000 records. Ignored by default: run it in a release build,
//! `cargo test --release -p crmsync-sandbox --test it -- --ignored zoho::perf`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Zoho;

#[tokio::test]
#[ignore = "timing test: run in release builds"]
async fn a_200_record_page_of_100k_records_is_served_under_5_ms_at_p99() {
    let z = Zoho::start_with(0).await;
    let (status, seeded) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/seed", z.org()),
            json!({ "people": 100_000, "converted": 0.0 }),
        )
        .await;
    assert_eq!(status, 201, "{seeded}");
    let base = "/Leads?fields=Last_Name,Email,Modified_Time,Owner,sync_to_plezi&per_page=200&sort_by=Modified_Time";
    let mut path = base.to_owned();
    let mut times = Vec::new();
    let mut seen = 0;
    loop {
        let started = Instant::now();
        let resp = z.auth(z.sb.http.get(z.api(&path))).send().await.unwrap();
        let bytes = resp.bytes().await.unwrap();
        times.push(started.elapsed());
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        seen += body["data"].as_array().unwrap().len();
        match body["info"]["next_page_token"].as_str() {
            Some(token) => path = format!("{base}&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, seeded["leads"].as_u64().unwrap() as usize);
    let mut slowest: Vec<(usize, Duration)> = times.iter().copied().enumerate().collect();
    slowest.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    eprintln!("slowest pages: {:?}", &slowest[..8]);
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    eprintln!(
        "pages: {}, p50: {:?}, p99: {:?}",
        times.len(),
        times[times.len() / 2],
        p99
    );
    assert!(p99 < Duration::from_millis(5), "p99 {p99:?}");
}
