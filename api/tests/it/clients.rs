//! Third-party GraphQL clients, as users run them, each following a sync run
//! on the sandbox to its end over a subscription: Python gql 4 (which picks
//! graphql-transport-ws when offered both), gql over the legacy protocol, and
//! Node graphql-ws. The gql and graphql-ws scripts are the README's examples.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crmsync_entity::enums::Role;
use serde_json::{Value, json};

use crate::helpers::*;

const START: &str =
    "mutation($id: ID!) { startSync(input: {connectorId: $id}) { run { id status } } }";

/// Contacts the run exports to the empty sandbox.
const CONTACTS: usize = 5;

/// `tests/clients`, where the scripts and their installed clients live.
fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// The interpreter for a client script, which must have been installed.
fn interpreter(script: &str) -> PathBuf {
    let dir = clients_dir();
    let (program, installed) = if script.ends_with(".py") {
        (dir.join(".venv/bin/python"), dir.join(".venv/.stamp"))
    } else {
        (PathBuf::from("node"), dir.join("node_modules/.stamp"))
    };
    assert!(
        installed.exists(),
        "the third-party clients are not installed: run tests/clients/setup (missing {})",
        installed.display()
    );
    program
}

/// Runs a client script with the app's URL and a token; returns its exit
/// status and output once it ends (killed after a minute).
fn run_client(script: &str, ws_url: &str, token: &str, run_id: &str) -> (bool, String, String) {
    let out_dir = std::env::temp_dir().join(format!("crmsync-client-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let (stdout, stderr) = (out_dir.join("stdout"), out_dir.join("stderr"));
    let mut child = Command::new(interpreter(script))
        .arg(script)
        .arg(run_id)
        .current_dir(clients_dir())
        .env("CRMSYNC_WS_URL", ws_url)
        .env("CRMSYNC_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} did not end within a minute: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |path| std::fs::read_to_string(path).unwrap();
    let output = (status.success(), read(&stdout), read(&stderr));
    let _ = std::fs::remove_dir_all(&out_dir);
    output
}

/// An app with a worker and a Pipedrive connector on an empty sandbox,
/// [`CONTACTS`] contacts to export, and a run started; returns the run id.
async fn started_run() -> (TestApp, crmsync_sandbox::Sandbox, String) {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let connector = app.pipedrive_connector(&sandbox).await;
    for i in 0..CONTACTS {
        app.admin_ok(
            "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id } } }",
            json!({ "input": { "email": format!("client{i}@acme.com"), "firstName": "Client", "lastName": format!("N{i}"), "behaviourScore": 50 } }),
        )
        .await;
    }
    let data = app.admin_ok(START, json!({ "id": connector })).await;
    let run = data["startSync"]["run"]["id"].as_str().unwrap().to_owned();
    (app, sandbox, run)
}

/// Runs `script` against a fresh run; asserts it exited cleanly and that the
/// last event it printed is the run's end with its counts. Returns the lines.
async fn follows_a_run_to_its_end(script: &'static str) -> Vec<Value> {
    let (app, _sandbox, run) = started_run().await;
    let (ws_url, token) = (app.ws_url.clone(), app.token(Role::Viewer));
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_client(script, &ws_url, &token, &run))
            .await
            .unwrap();
    assert!(ok, "{script} failed:\n{stdout}\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let last = lines
        .iter()
        .rev()
        .find(|l| l.get("status").is_some())
        .unwrap_or_else(|| panic!("{script} printed no event:\n{stdout}\n{stderr}"));
    assert_eq!(last["status"], "SUCCEEDED", "{stdout}");
    let to_crm = last["legs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["direction"] == "TO_CRM")
        .unwrap_or_else(|| panic!("no TO_CRM leg in {last}"));
    assert_eq!(to_crm["created"], CONTACTS, "{last}");
    lines
}

#[tokio::test]
async fn python_gql_follows_a_run_over_graphql_transport_ws() {
    follows_a_run_to_its_end("follow_run.py").await;
}

#[tokio::test]
async fn python_gql_follows_a_run_over_the_legacy_protocol() {
    let lines = follows_a_run_to_its_end("follow_run_legacy.py").await;
    assert_eq!(
        lines.last().unwrap()["subprotocol"],
        "graphql-ws",
        "{lines:?}"
    );
}

#[tokio::test]
async fn node_graphql_ws_follows_a_run() {
    follows_a_run_to_its_end("follow_run.mjs").await;
}

#[test]
fn the_readme_subscription_examples_are_the_tested_scripts() {
    let readme = std::fs::read_to_string(clients_dir().join("../../README.md")).unwrap();
    for (script, fence) in [
        ("follow_run.py", "```python\n"),
        ("follow_run.mjs", "```js\n"),
    ] {
        let code = std::fs::read_to_string(clients_dir().join(script)).unwrap();
        assert!(
            readme.contains(&format!("{fence}{code}```\n")),
            "README.md must show tests/clients/{script} verbatim in a {fence:?} block"
        );
    }
}
