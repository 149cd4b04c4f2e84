//! HubSpot's official Node client (npm `@hubspot/api-client`, pinned in tests/clients)
//! against the sandbox: `tests/clients/hubspot_sdk.mjs` runs its contacts operations
//! (basic API, batch, search, properties, owners, OAuth refresh) and the app's webhooks
//! (settings, subscriptions, a delivery its `Signature.isValid` accepts) with only the
//! base path changed and checks every reply, so a divergence from the real API that the SDK
//! notices fails here.

use std::time::Duration;

use crate::common::{TestSandbox, run_node};

/// How long the script may run; it makes about eighty calls, the searches paced to
/// HubSpot's five per second but for one burst that the SDK retries (a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_official_node_client_runs_its_contacts_operations_against_the_sandbox() {
    let sb = TestSandbox::start_with(250).await;
    let hubspot = &sb.desc().hubspot;
    let (status, portal) = sb
        .admin_get(&format!("/admin/hubspot/portals/{}", hubspot.portal_id))
        .await;
    assert_eq!(status, 200, "{portal}");
    let count = portal["contact_count"]
        .as_u64()
        .expect("the portal's contact_count");
    let args = vec![
        "hubspot_sdk.mjs".to_owned(),
        serde_json::to_string(hubspot).expect("the description serialises"),
        count.to_string(),
    ];

    // The sandbox serves on this runtime, so the script waits on a blocking thread.
    let output =
        tokio::task::spawn_blocking(move || run_node("@hubspot/api-client", &args, SCRIPT_TIMEOUT))
            .await
            .expect("the script runner");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hubspot_sdk.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all ok"), "{stdout}\n{stderr}");
}
