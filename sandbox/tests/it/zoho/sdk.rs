//! Zoho's official Python SDK (`zohocrmsdk8_0`, installed by `tests/clients/setup`)
//! runs its basic operations against the sandbox, unmodified: a divergence from the
//! real API fails here.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::Zoho;

const SCOPE: &str = "ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ,\
                     ZohoCRM.org.READ,ZohoCRM.coql.READ";

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_runs_its_basic_operations() {
    let python = clients_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/clients/setup to install the third-party clients",
        python.display()
    );
    let z = Zoho::start_with(0).await;
    let d = z.sb.desc().zoho.clone();
    let (status, minted) =
        z.sb.admin_post(
            &format!("/admin/zoho/orgs/{}/grant-codes", z.org()),
            json!({ "scope": SCOPE }),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let mut command = Command::new(python);
    command
        .arg("zoho_sdk.py")
        .current_dir(clients_dir())
        .env("ZOHO_API_DOMAIN", &d.api_domain)
        .env("ZOHO_ACCOUNTS_URL", &d.accounts_url)
        .env("ZOHO_CLIENT_ID", &d.client_id)
        .env("ZOHO_CLIENT_SECRET", &d.client_secret)
        .env("ZOHO_GRANT_CODE", minted["code"].as_str().unwrap())
        .env("ZOHO_USER_EMAIL", d.users[0]["email"].as_str().unwrap())
        .env("ZOHO_ORG_ID", &d.org_id);

    // The script talks to this process's sandbox, so it must not block the runtime.
    let run = tokio::task::spawn_blocking(move || command.output());
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the SDK script ends within 3 minutes")
        .expect("the script's thread")
        .expect("python starts");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
    println!("{stdout}");
    // The test's own grant, then the SDK's grant and its one refresh.
    let usage = z.usage().await;
    assert_eq!(usage["token_calls"], 3, "{usage}");
}
