//! SAP's own OData client, `pyodata` (PyPI), unmodified, against the sandbox
//! SAP C4C through `tests/clients/sap_c4c_sdk.py` (pinned in tests/clients and
//! installed by its `setup`): `$metadata`, the CSRF fetch as pyodata's
//! documentation does it, queries with server paging, creates, updates with
//! ETags, deletes and `$batch` changesets, with only the service URL changed.
//! A divergence from the real service that pyodata notices fails here.

use std::time::Duration;

use crate::common::{TestSandbox, run_python};

/// How long the script may run: a few dozen calls, none waiting on a clock.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn pyodata_reads_metadata_queries_and_writes_leads_against_the_sandbox() {
    let sb = TestSandbox::start().await;
    let description = serde_json::to_string(sb.desc()).expect("the description serialises");
    let args = vec!["sap_c4c_sdk.py".to_owned(), description];
    // The sandbox serves on this runtime, so the script waits on a blocking thread.
    let output = tokio::task::spawn_blocking(move || run_python(&args, SCRIPT_TIMEOUT))
        .await
        .expect("the script runner");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sap_c4c_sdk.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("all ") && l.contains("steps ok")),
        "sap_c4c_sdk.py did not finish:\n{stdout}\n{stderr}"
    );
}
