//! Test helpers: a sandbox on port 0 and an HTTP client.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crmsync_sandbox::{Description, Sandbox, SandboxConfig};
use serde_json::Value;

/// A running sandbox and a client for it.
pub struct TestSandbox {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

impl TestSandbox {
    /// A sandbox with `people` seeded people in each CRM.
    pub async fn start_with(people: usize) -> Self {
        let config = SandboxConfig {
            people,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config)
            .await
            .expect("sandbox starts on port 0");
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("client");
        Self { sandbox, http }
    }

    /// A sandbox with 20 seeded people in each CRM.
    pub async fn start() -> Self {
        Self::start_with(20).await
    }

    pub fn desc(&self) -> &Description {
        self.sandbox.description()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.base_url(), path)
    }

    /// POST JSON to the admin API and return status and body.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("admin request");
        split(resp).await
    }

    /// GET from the admin API.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("admin request");
        split(resp).await
    }
}

/// A fresh account of `kit` with two people, the first deleted through
/// the kit: checks it is gone from `stored` while the second stays, and
/// that deleting it again is refused. The account and both ids.
pub async fn kit_deletes_the_first_of_two<K: crmsync_sandbox::kit::SandboxCrm>(
    sb: &TestSandbox,
    kit: &K,
) -> (crmsync_sandbox::kit::Account, Vec<String>) {
    use crmsync_sandbox::kit::Person;
    let state = sb.sandbox.state();
    let account = kit.provision(state, &[]).await.expect("provisioned");
    let people: Vec<Person> = ["gone", "kept"]
        .iter()
        .map(|name| Person {
            last_name: (*name).to_owned(),
            email: Some(format!("{name}@kit.example")),
            ..Person::default()
        })
        .collect();
    let ids = kit.put_people(state, &account, &people).await.unwrap();

    kit.delete_record(state, &account, &ids[0], None)
        .await
        .unwrap();

    let stored: Vec<String> = kit
        .stored(state, &account)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stored, [ids[1].clone()]);
    assert!(
        kit.delete_record(state, &account, &ids[0], None)
            .await
            .is_err(),
        "a deleted record is deleted once"
    );
    let tomorrow = state.clock.now() + chrono::Duration::days(1);
    assert!(
        kit.delete_record(state, &account, &ids[1], Some(tomorrow))
            .await
            .is_err(),
        "a deletion is never dated after the sandbox's now"
    );
    (account, ids)
}

/// Status and JSON body (Null when empty).
pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// tests/clients: the third-party clients the tests run (installed by its `setup`).
pub fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// Runs `node <args>` in tests/clients, killing it after `timeout`. `package` is the npm
/// package the script needs: a clear message when the clients are not installed.
pub fn run_node(package: &str, args: &[String], timeout: Duration) -> Output {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules")
            .join(package)
            .join("package.json")
            .exists(),
        "the Node client {package} is not installed: run tests/clients/setup"
    );
    let mut command = Command::new("node");
    command.args(args);
    run_script(
        command,
        "node (install Node.js and run tests/clients/setup)",
        timeout,
    )
}

/// Runs `python <args>` with tests/clients' virtualenv (made by its `setup`), killing it
/// after `timeout`.
pub fn run_python(args: &[String], timeout: Duration) -> Output {
    let python = clients_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/clients/setup to install the third-party clients",
        python.display()
    );
    let mut command = Command::new(python);
    command.args(args);
    run_script(command, "tests/clients/.venv/bin/python", timeout)
}

/// Runs a client script in tests/clients with its output piped, killing it after
/// `timeout`.
fn run_script(mut command: Command, what: &str, timeout: Duration) -> Output {
    // The scripts talk to a sandbox on 127.0.0.1: a proxy from the environment (which
    // jsforce and requests would use) must not sit in between.
    for proxy in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        command.env_remove(proxy);
    }
    let mut child = command
        .current_dir(clients_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
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
    // The script's exit is waited for on a thread; past the timeout it is
    // killed by its pid (the thread owns the child).
    let pid = child.id();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let status = match exit.recv_timeout(timeout) {
        Ok(status) => status.expect("wait for the script"),
        Err(_) => {
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .ok();
            panic!("{command:?} ran longer than {timeout:?}");
        }
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A subscriber on port 0 (for the CRMs that push change notifications)
/// that hands over every call it gets, headers and raw body, failing the
/// first `fail_first` with 500.
pub struct Receiver {
    pub url: String,
    calls: tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
}

pub async fn receiver(fail_first: u32) -> Receiver {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let (tx, calls) = tokio::sync::mpsc::unbounded_channel();
    let failures = Arc::new(AtomicU32::new(fail_first));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            let failures = failures.clone();
            async move {
                let _ = tx.send((headers, body));
                if failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, calls }
}

impl Receiver {
    /// The next call, within ten seconds: headers and raw body.
    pub async fn next(&mut self) -> (axum::http::HeaderMap, String) {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("the receiver runs")
    }

    /// The next call, its body read as JSON (`null` when it is not).
    pub async fn next_json(&mut self) -> (axum::http::HeaderMap, Value) {
        let (headers, body) = self.next().await;
        (headers, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}
