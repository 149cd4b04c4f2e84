//! SQLite's write-ahead log and page size: a sync's commits leave the copy
//! of the WAL into the database to a background checkpoint
//! (`db::checkpoint_soon`), SQLite's own checkpoint on commit is only a
//! backstop, and a new database has pages of 8 KiB.

use std::time::{Duration, Instant};

use crmsync_entity::db;
use crmsync_entity::testing::TestDatabase;
use sea_orm::ConnectionTrait;

/// The SQLite file behind a test database's URL.
fn database_file(url: &str) -> std::path::PathBuf {
    let path = url.trim_start_matches("sqlite://");
    path.split('?').next().unwrap().into()
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_by_a_background_checkpoint() {
    let t = TestDatabase::new().await;
    if t.is_postgres() {
        // Nothing to copy: a no-op on PostgreSQL.
        db::checkpoint_soon(&t.db);
        return;
    }
    let file = database_file(&t.url);
    t.db.execute_unprepared("CREATE TABLE scratch (body TEXT NOT NULL)")
        .await
        .unwrap();
    // About 2 MB, some 250 pages of 8 KiB: well under the backstop, so the
    // commit leaves them in the WAL.
    let before = std::fs::metadata(&file).unwrap().len();
    t.db.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
         INSERT INTO scratch SELECT printf('%.4000d', i) FROM n",
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        before,
        "the commit copied the WAL into the database itself"
    );

    db::checkpoint_soon(&t.db);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::metadata(&file).unwrap().len();
        if now >= before + 2_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file stayed at {now} bytes (from {before})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows =
        t.db.query_one_raw(sea_orm::Statement::from_string(
            t.db.get_database_backend(),
            "SELECT count(*) AS n FROM scratch",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.try_get::<i64>("", "n").unwrap(), 500);
}

#[tokio::test]
async fn a_new_sqlite_database_has_pages_of_8_kib_in_wal_mode() {
    let t = TestDatabase::new().await;
    if t.is_postgres() {
        return;
    }
    let pragma = |name: &str| {
        sea_orm::Statement::from_string(t.db.get_database_backend(), format!("PRAGMA {name}"))
    };
    let page_size =
        t.db.query_one_raw(pragma("page_size"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(page_size.try_get_by_index::<i64>(0).unwrap(), 8192);
    let journal =
        t.db.query_one_raw(pragma("journal_mode"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(journal.try_get_by_index::<String>(0).unwrap(), "wal");
}
