//! Pipedrive's official Node client (npm `pipedrive`, pinned in tests/clients) against
//! the sandbox: `tests/clients/pipedrive_sdk.mjs` runs its basic operations with only
//! the base path changed and checks every reply, so a divergence from the real API
//! that the SDK notices fails here.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Pd;
use crate::common::TestSandbox;

/// How long the script may run; it makes a few dozen calls.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// Runs `node <args>` in tests/clients, killing it after `timeout`.
fn run_node(args: &[String], timeout: Duration) -> Output {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules/pipedrive/package.json").exists(),
        "the Node clients are not installed: run tests/clients/setup"
    );
    let mut child = Command::new("node")
        .args(args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (install Node.js and run tests/clients/setup)");
    // Pipes are drained while the script runs so a chatty script cannot block on them.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            pipe.read_to_end(&mut out).ok();
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("node {args:?} ran longer than {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

#[tokio::test]
async fn the_official_node_client_runs_its_basic_operations_against_the_sandbox() {
    let sb = TestSandbox::start_with(250).await;
    let pd = Pd::default_company(&sb);
    let count = pd.admin().await["person_count"].as_u64().unwrap();
    let args = vec![
        "pipedrive_sdk.mjs".to_owned(),
        pd.base_url.clone(),
        pd.token.clone(),
        count.to_string(),
    ];

    // The sandbox serves on this runtime, so the script waits on a blocking thread.
    let output = tokio::task::spawn_blocking(move || run_node(&args, SCRIPT_TIMEOUT))
        .await
        .expect("the script runner");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pipedrive_sdk.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all ok"), "{stdout}\n{stderr}");
}
