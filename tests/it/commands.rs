//! The one-shot commands: schema, token, migrate, and configuration errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn crmsync(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CRMSYNC_DATA_DIR", data_dir)
        .env("CRMSYNC_LOG", "warn");
    command
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("crmsync-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn schema_prints_exactly_the_committed_schema_graphql() {
    let dir = temp_dir("schema");
    let output = crmsync(&dir).arg("schema").output().unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        committed,
        "schema.graphql drifted: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn token_prints_one_jwt_alone_on_stdout_and_names_its_secret() {
    let dir = temp_dir("token");
    std::fs::write(
        dir.join("jwt_secret"),
        "a-secret-that-serve-generated-before-0123456789",
    )
    .unwrap();
    let output = crmsync(&dir)
        .args(["token", "--role", "operator", "--ttl", "30m"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0].split('.').count(), 3, "a JWT: {stdout}");
    assert!(
        stderr.contains(&dir.join("jwt_secret").display().to_string()),
        "stderr names the secret's file: {stderr}"
    );
}

#[test]
fn token_without_a_secret_is_refused_and_creates_none() {
    let dir = temp_dir("token-nosecret");
    let output = crmsync(&dir)
        .args(["token", "--role", "operator"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("CRMSYNC_JWT_SECRET"), "{stderr}");
    assert!(stderr.contains("CRMSYNC_DATA_DIR"), "{stderr}");
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "minting created nothing in the data directory"
    );
}

#[test]
fn token_signs_with_the_variable_when_it_is_set() {
    let dir = temp_dir("token-var");
    let output = crmsync(&dir)
        .args(["token", "--role", "operator"])
        .env(
            "CRMSYNC_JWT_SECRET",
            "0123456789abcdef0123456789abcdef-from-env",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("from CRMSYNC_JWT_SECRET"), "{stderr}");
    assert!(!dir.join("jwt_secret").exists());
}

#[test]
fn token_for_an_unknown_tenant_is_refused_naming_the_flag() {
    let dir = temp_dir("token-tenant");
    let migrated = crmsync(&dir).arg("migrate").output().unwrap();
    assert!(migrated.status.success());
    std::fs::write(
        dir.join("jwt_secret"),
        "a-secret-that-serve-generated-before-0123456789",
    )
    .unwrap();
    let output = crmsync(&dir)
        .args(["token", "--role", "admin", "--tenant", "nobody"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tenant"));
    assert!(output.stdout.is_empty());
}

#[test]
fn a_bad_variable_is_named_in_the_error() {
    let dir = temp_dir("badvar");
    let output = crmsync(&dir)
        .arg("migrate")
        .env("CRMSYNC_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CRMSYNC_DATABASE_URL"));
}

#[test]
fn an_expected_error_prints_its_message_without_a_backtrace() {
    let dir = temp_dir("backtrace");
    let output = crmsync(&dir)
        .arg("migrate")
        .env("CRMSYNC_DATABASE_URL", "mysql://nope")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("error: CRMSYNC_DATABASE_URL"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn postgres_without_keys_refuses_to_start() {
    let dir = temp_dir("pgkeys");
    let output = crmsync(&dir)
        .arg("serve")
        .env(
            "CRMSYNC_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CRMSYNC_JWT_SECRET"));
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = temp_dir("migrate");
    let output = crmsync(&dir).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("crmsync.db").exists());
}

#[test]
#[cfg(unix)]
fn migrate_creates_a_data_dir_and_database_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = temp_dir("private");
    let dir = parent.join("data");
    let output = crmsync(&dir).arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("crmsync.db")), 0o600);
    let _ = std::fs::remove_dir_all(parent);
}

#[test]
fn serve_stops_on_sigterm_after_its_log_reader_is_gone() {
    let _turn = crate::cluster::turn();
    let dir = temp_dir("sigterm-log");
    let mut child = crmsync(&dir)
        .args(["serve", "--no-worker"])
        .env("CRMSYNC_BIND", "127.0.0.1:0")
        .env("CRMSYNC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log is read until the server serves, then its pipe is closed, as
    // when the process that collected it died.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("crmsync is serving"));
    drop(lines);
    assert!(serving, "the server starts");

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 20 s after SIGTERM, its log reader gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
