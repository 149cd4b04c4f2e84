//! Pipedrive's official Node client (npm `pipedrive`, pinned in tests/clients) against
//! the sandbox: `tests/clients/pipedrive_sdk.mjs` runs its basic operations with only
//! the base path changed and checks every reply, so a divergence from the real API
//! that the SDK notices fails here.

use std::time::Duration;

use super::Pd;
use crate::common::{TestSandbox, run_node};

/// How long the script may run; it makes a few dozen calls.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

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
    let output = tokio::task::spawn_blocking(move || run_node("pipedrive", &args, SCRIPT_TIMEOUT))
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
