//! The client Zendesk Sell users script with, unmodified, against the sandbox Zendesk
//! Sell: Zendesk's official `basecrm` (PyPI) through `tests/clients/zendesk_sell_sdk.py`,
//! pinned in tests/clients/requirements.txt and installed by its `setup`. It runs its
//! users, leads, contacts, custom field and lead conversion calls (and the errors it
//! raises) with only `base_url` changed, and checks every reply: a divergence from the
//! envelopes, paging or error shapes the SDK expects fails here.

use std::time::Duration;

use crate::common::{TestSandbox, run_python};

/// How long the script may run: a few dozen calls, none of them waiting on a clock.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn basecrm_runs_its_users_leads_contacts_and_custom_field_calls_against_the_sandbox() {
    let sb = TestSandbox::start().await;
    let description = serde_json::to_string(sb.desc()).expect("the description serialises");
    let args = vec!["zendesk_sell_sdk.py".to_owned(), description];
    // The sandbox serves on this runtime, so the script waits on a blocking thread.
    let output = tokio::task::spawn_blocking(move || run_python(&args, SCRIPT_TIMEOUT))
        .await
        .expect("the script runner");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "zendesk_sell_sdk.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("all ") && l.contains("steps ok")),
        "zendesk_sell_sdk.py did not finish:\n{stdout}\n{stderr}"
    );
}
