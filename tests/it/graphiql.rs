//! GraphiQL in a real browser: `crmsync serve --demo`, then Debian's headless
//! Chromium driven by `tests/clients/graphiql_browser.mjs` (playwright-core)
//! with no network but loopback renders the page, runs a query with the token
//! in the headers pane and streams a sync run's subscription to its end.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve_demo::start_demo;

/// Where the third-party clients live.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Panics (never skips) when the browser or playwright-core is missing.
fn require_browser_clients(dir: &Path) {
    let chromium = std::env::var("CRMSYNC_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists() && dir.join("node_modules/playwright-core").exists(),
        "Chromium ({chromium}) or playwright-core is not installed: run tests/clients/setup"
    );
}

#[test]
fn graphiql_runs_a_query_and_streams_a_subscription_offline_in_chromium() {
    let _turn = crate::cluster::turn();
    let dir = clients_dir();
    require_browser_clients(&dir);
    let demo = start_demo("graphiql", true);

    let output = Command::new("node")
        .arg("graphiql_browser.mjs")
        .args([&demo.url, &demo.token, &demo.connectors[0]])
        .current_dir(&dir)
        .output()
        .expect("node runs: run tests/clients/setup");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser session failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("graphiql ok"), "{stdout}");
    // The summary (run id, final status, events streamed) for `--nocapture`.
    println!("{stdout}");
}
