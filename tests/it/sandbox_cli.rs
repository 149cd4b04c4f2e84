//! `crmsync sandbox`: the first stdout line describes both CRMs, and they answer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sandbox(args: &[&str]) -> (Running, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .arg("sandbox")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crmsync starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let description: Value = serde_json::from_str(&line).expect("first line is one JSON object");
    (running, description)
}

#[tokio::test]
async fn sandbox_prints_a_json_description_with_the_real_port_and_serves_both_crms() {
    let _turn = crate::cluster::turn();
    let (_running, d) = start_sandbox(&["--bind", "127.0.0.1:0", "--people", "30", "--seed", "7"]);

    let admin_url = d["admin_url"].as_str().expect("admin_url");
    assert!(
        !admin_url.contains(":0/"),
        "port 0 replaced by the real port: {admin_url}"
    );
    for key in [
        "accounts_url",
        "api_domain",
        "client_id",
        "client_secret",
        "grant_code",
        "mint_grant_code_url",
    ] {
        assert!(
            d["zoho"][key].as_str().is_some_and(|s| !s.is_empty()),
            "zoho.{key} in {d}"
        );
    }
    for key in ["base_url", "api_token", "company_domain"] {
        assert!(
            d["pipedrive"][key].as_str().is_some_and(|s| !s.is_empty()),
            "pipedrive.{key} in {d}"
        );
    }
    for key in [
        "base_url",
        "access_token",
        "client_id",
        "client_secret",
        "refresh_token",
    ] {
        assert!(
            d["hubspot"][key].as_str().is_some_and(|s| !s.is_empty()),
            "hubspot.{key} in {d}"
        );
    }
    assert!(
        d["hubspot"]["portal_id"].as_u64().is_some_and(|id| id > 0),
        "hubspot.portal_id in {d}"
    );
    let http = reqwest::Client::new();

    // The printed private-app token works at the printed HubSpot base URL.
    let contacts = http
        .get(format!(
            "{}/crm/v3/objects/contacts?limit=1",
            d["hubspot"]["base_url"].as_str().unwrap()
        ))
        .bearer_auth(d["hubspot"]["access_token"].as_str().unwrap())
        .send()
        .await
        .expect("HubSpot contacts");
    assert_eq!(contacts.status(), 200);

    // The printed grant code works at the printed accounts URL.
    let token: Value = http
        .post(format!(
            "{}/oauth/v2/token",
            d["zoho"]["accounts_url"].as_str().unwrap()
        ))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", d["zoho"]["client_id"].as_str().unwrap()),
            (
                "client_secret",
                d["zoho"]["client_secret"].as_str().unwrap(),
            ),
            ("code", d["zoho"]["grant_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["access_token"].is_string(), "{token}");
    assert_eq!(token["api_domain"], d["zoho"]["api_domain"]);

    // A POST with no body to mint_grant_code_url gives a fresh code for the same client.
    let minted = http
        .post(d["zoho"]["mint_grant_code_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(minted.status().is_success());
    let minted: Value = minted.json().await.unwrap();
    assert!(
        minted["code"]
            .as_str()
            .is_some_and(|c| c != d["zoho"]["grant_code"]),
        "{minted}"
    );

    // The printed Pipedrive token lists the seeded persons.
    let persons: Value = http
        .get(format!(
            "{}/api/v2/persons?limit=500",
            d["pipedrive"]["base_url"].as_str().unwrap()
        ))
        .header("x-api-token", d["pipedrive"]["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(persons["success"], true, "{persons}");
    assert!(
        persons["data"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.len() <= 30)
    );

    // The printed Zendesk Sell token lists the seeded leads at the printed base URL.
    let leads: Value = http
        .get(format!(
            "{}/v2/leads?per_page=100",
            d["zendesk_sell"]["base_url"].as_str().unwrap()
        ))
        .bearer_auth(d["zendesk_sell"]["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        leads["items"]
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.len() <= 30),
        "{leads}"
    );
}

#[test]
fn sandbox_refuses_a_taken_port_naming_the_flag() {
    let _turn = crate::cluster::turn();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["sandbox", "--bind", &addr])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--bind"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when start fails"
    );
}
