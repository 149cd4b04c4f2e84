//! The clients Salesforce users script with, unmodified, against the sandbox Salesforce:
//! `simple-salesforce` (PyPI) through `tests/clients/salesforce_sdk.py` and `jsforce`
//! (npm) through `tests/clients/salesforce_sdk.mjs`, both pinned in tests/clients and
//! installed by its `setup`. Each runs its query, sObject, collections, describe and
//! limits calls (and OAuth, session expiry and the errors it surfaces) with only the
//! login / instance URL changed, and checks every reply: a divergence from the real
//! API that an SDK notices fails here.

use std::process::Output;
use std::time::Duration;

use crate::common::{TestSandbox, run_node, run_python};

/// How long a script may run: a few hundred calls, none of them waiting on a clock.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The sandbox's description, as `crmsync sandbox` prints it: the scripts read the
/// `salesforce` object and `admin_url` (to expire sessions and register a certificate).
fn description(sb: &TestSandbox) -> String {
    serde_json::to_string(sb.desc()).expect("the description serialises")
}

fn assert_passed(script: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("all ") && l.contains("steps ok")),
        "{script} did not finish:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn simple_salesforce_runs_its_rest_calls_against_the_sandbox() {
    let sb = TestSandbox::start().await;
    let args = vec!["salesforce_sdk.py".to_owned(), description(&sb)];
    // The sandbox serves on this runtime, so the script waits on a blocking thread.
    let output = tokio::task::spawn_blocking(move || run_python(&args, SCRIPT_TIMEOUT))
        .await
        .expect("the script runner");
    assert_passed("salesforce_sdk.py", &output);
}

#[tokio::test]
async fn jsforce_runs_its_rest_calls_against_the_sandbox() {
    let sb = TestSandbox::start().await;
    let args = vec!["salesforce_sdk.mjs".to_owned(), description(&sb)];
    let output = tokio::task::spawn_blocking(move || run_node("jsforce", &args, SCRIPT_TIMEOUT))
        .await
        .expect("the script runner");
    assert_passed("salesforce_sdk.mjs", &output);
}
