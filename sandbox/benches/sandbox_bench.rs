//! Benchmark of the sandbox itself: with N records loaded (default 100,000; set
//! `SANDBOX_BENCH_RECORDS`), the latency of list and write calls at zero configured
//! latency, and how many small reads per second it serves. The load generator runs
//! in the same process, so the figures include the client's share of the 2 cores.
//!
//! Run: `cargo bench -p crmsync-sandbox --bench sandbox_bench`

use std::time::{Duration, Instant};

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const THROUGHPUT_SECS: u64 = 5;
const THROUGHPUT_CLIENTS: usize = 32;

struct Bench {
    http: reqwest::Client,
    base: String,
}

impl Bench {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn row(&mut self, name: &str) -> String {
        self.0.sort();
        let pct = |p: usize| self.0[(self.0.len() * p / 100).min(self.0.len() - 1)];
        format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} |",
            self.0.len(),
            ms(pct(50)),
            ms(pct(99)),
            ms(*self.0.last().unwrap())
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records: usize = std::env::var("SANDBOX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sandbox = Sandbox::start(SandboxConfig {
        people: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("start");
    let d = sandbox.description().clone();
    let bench = Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        base: sandbox.base_url().to_owned(),
    };
    let org = d.zoho.org_id.clone();
    let company = d.pipedrive.company_domain.clone();

    // Limits off: this measures the sandbox, not its emulated limits.
    bench
        .admin(reqwest::Method::PATCH, &format!("/admin/zoho/orgs/{org}/limits"), json!({"concurrency": 1_000_000, "heavy_concurrency": 1_000_000, "daily_credits": 1_000_000_000_u64}))
        .await;
    bench
        .admin(reqwest::Method::PATCH, &format!("/admin/pipedrive/companies/{company}/limits"), json!({"burst_limit": 1_000_000_000_u64, "daily_budget": 1_000_000_000_000_u64, "abuse_threshold": 0}))
        .await;

    let started = Instant::now();
    bench
        .admin(
            reqwest::Method::POST,
            &format!("/admin/zoho/orgs/{org}/seed"),
            json!({"seed": 1, "people": records, "converted": 0.0}),
        )
        .await;
    let zoho_seed = started.elapsed();
    let started = Instant::now();
    bench
        .admin(
            reqwest::Method::POST,
            &format!("/admin/pipedrive/companies/{company}/seed"),
            json!({"seed": 2, "people": records}),
        )
        .await;
    let pipedrive_seed = started.elapsed();

    let token: Value = bench
        .http
        .post(format!("{}/oauth/v2/token", d.zoho.accounts_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", d.zoho.client_id.as_str()),
            ("client_secret", d.zoho.client_secret.as_str()),
            ("code", d.zoho.grant_code.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zoho_auth = format!(
        "Zoho-oauthtoken {}",
        token["access_token"].as_str().expect("access token")
    );
    let zoho_api = format!("{}/crm/v8", d.zoho.api_domain);
    let pd_api = format!("{}/api/v2", d.pipedrive.base_url);
    let pd_token = d.pipedrive.api_token.clone();

    let mut rows = Vec::new();

    // Zoho: walk every lead and contact, 200 a page, by Modified_Time ascending
    // (page up to 2,000 records, then page_token). Seeding puts some people in Contacts.
    let mut zoho_seen = 0;
    for module in ["Leads", "Contacts"] {
        let mut samples = Samples::default();
        let mut page_token: Option<String> = None;
        let mut page = 1;
        loop {
            let mut url = format!(
                "{zoho_api}/{module}?fields=First_Name,Last_Name,Email,Phone,Lead_Source,Owner,Modified_Time&per_page=200&sort_by=Modified_Time&sort_order=asc"
            );
            match &page_token {
                Some(t) => url.push_str(&format!("&page_token={t}")),
                None => url.push_str(&format!("&page={page}")),
            }
            let t = Instant::now();
            let resp = bench
                .http
                .get(&url)
                .header("Authorization", &zoho_auth)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            samples.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            zoho_seen += body["data"].as_array().unwrap().len();
            if body["info"]["more_records"] != true {
                break;
            }
            page += 1;
            if page > 10 {
                page_token = Some(
                    body["info"]["next_page_token"]
                        .as_str()
                        .expect("next_page_token")
                        .to_owned(),
                );
            }
        }
        rows.push(samples.row(&format!(
            "Zoho `GET /{module}` (200 a page, 7 fields, walk all)"
        )));
    }
    assert_eq!(zoho_seen, records, "every lead and contact listed once");

    // Zoho: upsert 100 records a call, half new, half existing.
    let mut samples = Samples::default();
    for call in 0..200 {
        let data: Vec<Value> = (0..100)
            .map(|i| json!({"Last_Name": format!("Bench {call}-{i}"), "Email": format!("bench{}@example.com", (call * 100 + i) / 2), "Lead_Source": "Web Form"}))
            .collect();
        let t = Instant::now();
        let resp = bench
            .http
            .post(format!("{zoho_api}/Leads/upsert"))
            .header("Authorization", &zoho_auth)
            .json(&json!({"data": data, "duplicate_check_fields": ["Email"], "trigger": []}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let _ = resp.bytes().await.unwrap();
        samples.push(t.elapsed());
        assert!(status == 200 || status == 201, "{status}");
    }
    rows.push(samples.row("Zoho `POST /Leads/upsert` (100 records)"));

    // Pipedrive: walk every person, 200 and 500 a page, by update_time ascending.
    for limit in [200, 500] {
        let mut samples = Samples::default();
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        loop {
            let mut url =
                format!("{pd_api}/persons?limit={limit}&sort_by=update_time&sort_direction=asc");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let t = Instant::now();
            let resp = bench
                .http
                .get(&url)
                .header("x-api-token", &pd_token)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            samples.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            seen += body["data"].as_array().unwrap().len();
            match body["additional_data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, records, "every person listed once");
        rows.push(samples.row(&format!(
            "Pipedrive `GET /persons` ({limit} a page, walk all)"
        )));
    }

    // Pipedrive: create persons one by one.
    let mut samples = Samples::default();
    for i in 0..1000 {
        let t = Instant::now();
        let resp = bench
            .http
            .post(format!("{pd_api}/persons"))
            .header("x-api-token", &pd_token)
            .json(&json!({"name": format!("Bench Person {i}"), "emails": [{"value": format!("pd-bench{i}@example.com"), "primary": true, "label": "work"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let _ = resp.bytes().await.unwrap();
        samples.push(t.elapsed());
        assert!(status.is_success(), "{status}");
    }
    rows.push(samples.row("Pipedrive `POST /persons` (one person)"));

    // Throughput of small reads: many clients, one record each call.
    let pd_rps = throughput(&bench.http, move |i| {
        (
            format!("{pd_api}/persons/{}", 1 + i % 1000),
            ("x-api-token".to_owned(), pd_token.clone()),
        )
    })
    .await;
    let ids = zoho_ids(&bench.http, &zoho_api, &zoho_auth).await;
    let zoho_auth2 = zoho_auth.clone();
    let zoho_rps = throughput(&bench.http, move |i| {
        (
            format!("{zoho_api}/Leads/{}", ids[i % ids.len()]),
            ("Authorization".to_owned(), zoho_auth2.clone()),
        )
    })
    .await;

    println!(
        "Sandbox benchmark: {records} records in each CRM, no configured latency, limits off."
    );
    println!(
        "Seeding took {:.1} s (Zoho) and {:.1} s (Pipedrive).\n",
        zoho_seed.as_secs_f64(),
        pipedrive_seed.as_secs_f64()
    );
    println!("| call | calls | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\n| small reads ({THROUGHPUT_CLIENTS} concurrent clients, {THROUGHPUT_SECS} s) | requests/s |"
    );
    println!("| --- | ---: |");
    println!("| Pipedrive `GET /persons/{{id}}` | {pd_rps:.0} |");
    println!("| Zoho `GET /Leads/{{id}}` | {zoho_rps:.0} |");
    sandbox.shutdown().await;
}

async fn zoho_ids(http: &reqwest::Client, api: &str, auth: &str) -> Vec<String> {
    let body: Value = http
        .get(format!("{api}/Leads?fields=Last_Name&per_page=200"))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Requests per second served to `THROUGHPUT_CLIENTS` clients looping for `THROUGHPUT_SECS`.
async fn throughput<F>(http: &reqwest::Client, request: F) -> f64
where
    F: Fn(usize) -> (String, (String, String)) + Send + Sync + 'static,
{
    let request = std::sync::Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECS);
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..THROUGHPUT_CLIENTS {
        let http = http.clone();
        let request = request.clone();
        clients.spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                let (url, (header, value)) = request(client * 7919 + done);
                let resp = http.get(url).header(header, value).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await.unwrap();
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = clients.join_next().await {
        total += done.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}
