//! The README's first command: `crmsync serve --demo` serves GraphQL, the demo
//! tenant has contacts and working Pipedrive, Zoho CRM and HubSpot connectors, and a sync
//! of each runs to the end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::graphql;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) struct Demo {
    _running: Running,
    dir: std::path::PathBuf,
    /// The GraphiQL (and GraphQL) URL the demo printed.
    pub(crate) url: String,
    pub(crate) token: String,
    /// The Pipedrive connector's id, then the Zoho CRM one's, then the HubSpot one's.
    pub(crate) connectors: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Starts `crmsync serve --demo` and reads its summary. With `keep_reading`, the
/// rest of stdout is drained; without, the pipe is closed as a script would.
pub(crate) fn start_demo(name: &str, keep_reading: bool) -> Demo {
    let dir = std::env::temp_dir().join(format!("crmsync-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    spawn_demo(dir, keep_reading)
}

/// Stops the demo and starts it again on the same data directory.
fn restart_demo(mut demo: Demo) -> Demo {
    let _ = demo._running.0.kill();
    let _ = demo._running.0.wait();
    let dir = std::mem::take(&mut demo.dir);
    drop(demo);
    spawn_demo(dir, true)
}

fn spawn_demo(dir: std::path::PathBuf, keep_reading: bool) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["serve", "--demo"])
        .env("CRMSYNC_DATA_DIR", &dir)
        .env("CRMSYNC_BIND", "127.0.0.1:0")
        .env("CRMSYNC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (mut url, mut token, mut connectors) = (None, None, Vec::new());
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("the demo prints its summary");
        let field = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        };
        if let Some(u) = field("GraphiQL:") {
            url = Some(u);
        } else if let Some(t) = field("Admin token:") {
            token = Some(t);
        } else if let Some(rest) = line.trim().strip_prefix("Connector:") {
            connectors.extend(
                rest.split('(')
                    .nth(1)
                    .and_then(|s| s.split(')').next())
                    .map(str::to_owned),
            );
        } else if line.trim().starts_with("Sandbox:") {
            break;
        }
    }
    if keep_reading {
        std::thread::spawn(move || lines.for_each(drop));
    }
    Demo {
        _running: running,
        dir,
        url: url.unwrap(),
        token: token.unwrap(),
        connectors,
    }
}

#[tokio::test]
async fn serve_demo_keeps_serving_after_a_script_closes_its_stdout() {
    let _turn = crate::cluster::turn();
    let demo = start_demo("closed", false);
    let http = reqwest::Client::new();
    let data = graphql(
        &http,
        &demo.url,
        &demo.token,
        "{ connectors(first: 10) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(data["connectors"]["totalCount"], 6);
}

#[tokio::test]
async fn serve_demo_answers_introspection_without_a_token() {
    let _turn = crate::cluster::turn();
    let demo = start_demo("introspection", true);
    let response = reqwest::Client::new()
        .post(&demo.url)
        .json(&json!({ "query": "{ __schema { queryType { name } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
}

#[tokio::test]
async fn serve_demo_prints_a_token_that_drives_a_full_sync() {
    let _turn = crate::cluster::turn();
    let demo = start_demo("sync", true);
    let (url, token) = (demo.url.clone(), demo.token.clone());
    assert_eq!(demo.connectors.len(), 6, "{:?}", demo.connectors);
    let http = reqwest::Client::new();

    let data = graphql(
        &http,
        &url,
        &token,
        "{ contacts(first: 1) { totalCount } connectors(first: 10) { totalCount } }",
        json!({}),
    )
    .await;
    assert!(
        data["contacts"]["totalCount"].as_i64().unwrap() >= 150,
        "{data}"
    );
    assert_eq!(data["connectors"]["totalCount"], 6);
    for connector in &demo.connectors {
        full_sync_runs_to_the_end(&http, &url, &token, connector).await;
    }
}

#[tokio::test]
async fn a_demo_restart_keeps_its_connectors_and_contacts() {
    let _turn = crate::cluster::turn();
    let demo = start_demo("restart", true);
    let http = reqwest::Client::new();
    let count =
        "{ contacts(first: 1) { totalCount } connectors(first: 10) { edges { node { id } } } }";
    // A sync brings CRM records in, as a person trying the demo would.
    full_sync_runs_to_the_end(&http, &demo.url, &demo.token, &demo.connectors[0]).await;
    let before = graphql(&http, &demo.url, &demo.token, count, json!({})).await;

    let demo = restart_demo(demo);
    let after = graphql(&http, &demo.url, &demo.token, count, json!({})).await;

    assert_eq!(after, before, "the same contacts and connectors");
    assert_eq!(demo.connectors.len(), 6);
    for connector in &demo.connectors {
        assert!(
            before.to_string().contains(connector.as_str()),
            "{connector} kept its id"
        );
        full_sync_runs_to_the_end(&http, &demo.url, &demo.token, connector).await;
    }
}

async fn full_sync_runs_to_the_end(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    connector: &str,
) {
    let started = graphql(
        http,
        url,
        token,
        "mutation($id: ID!) { startSync(input: {connectorId: $id, mode: FULL}) { run { id status } } }",
        json!({ "id": connector }),
    )
    .await;
    let run_id = started["startSync"]["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let data = graphql(
            http,
            url,
            token,
            "query($id: ID!) { syncRun(id: $id) { status error legs { direction created updated rejected } } }",
            json!({ "id": run_id }),
        )
        .await;
        let status = data["syncRun"]["status"].as_str().unwrap().to_owned();
        if !matches!(status.as_str(), "QUEUED" | "RUNNING") {
            break data["syncRun"].clone();
        }
        assert!(Instant::now() < deadline, "the run did not finish: {data}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        matches!(run["status"].as_str(), Some("SUCCEEDED" | "PARTIAL")),
        "{run}"
    );
    let created: i64 = run["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["created"].as_i64().unwrap())
        .sum();
    assert!(created > 0, "the demo sync created records: {run}");
}
