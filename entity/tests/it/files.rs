//! The embedded database's files hold contacts' personal data: they are
//! readable by their owner only (mode 0600), whatever the umask, like the key
//! files beside them. SQLite only, whatever the test backend.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crmsync_entity::db;
use sea_orm::ConnectionTrait;

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "crmsync-files-{}",
            crmsync_entity::new_id().to_lowercase()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

#[tokio::test]
async fn a_new_database_and_its_wal_and_shm_are_readable_by_their_owner_only() {
    let dir = TempDir::new();
    let file = dir.0.join("crmsync.db");
    let db = db::connect(&url(&file)).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (x TEXT)")
        .await
        .unwrap();
    for name in ["crmsync.db", "crmsync.db-wal", "crmsync.db-shm"] {
        assert_eq!(mode(&dir.0.join(name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn an_existing_database_readable_by_others_is_narrowed_to_its_owner() {
    let dir = TempDir::new();
    let file = dir.0.join("crmsync.db");
    let db = db::connect(&url(&file)).await.unwrap();
    db.execute_unprepared("CREATE TABLE t (x TEXT)")
        .await
        .unwrap();
    db.close().await.unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let db = db::connect(&url(&file)).await.unwrap();
    db.execute_unprepared("INSERT INTO t VALUES ('kept')")
        .await
        .unwrap();
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir.0.join("crmsync.db-wal")), 0o600);
}
