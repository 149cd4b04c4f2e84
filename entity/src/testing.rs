//! Fresh, migrated databases for tests: one per test, so tests run in parallel.
//!
//! By default a SQLite file in its own temporary directory. When
//! `CRMSYNC_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/postgres`),
//! a new PostgreSQL database named `crmsync_t_<ulid>` on that server instead;
//! `.ci/run` sets it for its second pass and drops those databases afterwards.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::db;

/// The variable that switches tests to PostgreSQL.
pub const POSTGRES_ENV: &str = "CRMSYNC_TEST_POSTGRES_URL";

/// A test database; the SQLite directory is removed when it is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The connection URL, for code under test that connects by itself.
    pub url: String,
    /// A connection to it, migrated.
    pub db: DatabaseConnection,
    dir: Option<PathBuf>,
}

impl TestDatabase {
    /// Creates and migrates a fresh database.
    pub async fn new() -> Self {
        Self::create(std::env::var(POSTGRES_ENV).ok()).await
    }

    /// A fresh database on this PostgreSQL server, whatever the environment.
    pub async fn postgres(server: &str) -> Self {
        Self::create(Some(server.to_owned())).await
    }

    /// A fresh SQLite database, whatever the environment.
    pub async fn sqlite() -> Self {
        Self::create(None).await
    }

    async fn create(server: Option<String>) -> Self {
        let name = format!("crmsync_t_{}", crate::new_id().to_lowercase());
        let (url, dir) = match server {
            Some(server) if !server.is_empty() => {
                let admin = db::connect(&server)
                    .await
                    .expect("connect to the test PostgreSQL server");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                (replace_database(&server, &name), None)
            }
            _ => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("temp dir");
                (
                    format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
                    Some(dir),
                )
            }
        };
        let db = db::connect(&url)
            .await
            .expect("connect to the test database");
        db::migrate(&db).await.expect("migrations run");
        Self { url, db, dir }
    }

    /// True when running against PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.dir.is_none()
    }

    /// For benchmarks on a PostgreSQL server whose autovacuum is off (the
    /// development machine's): a task that analyzes this database's tables
    /// every `every`, as autovacuum would, so that the planner sees tables
    /// that grow during a run. `None` on SQLite or with autovacuum on.
    pub async fn analyze_as_autovacuum_would(
        &self,
        every: std::time::Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !db::autovacuum_off(&self.db).await {
            return None;
        }
        let db = self.db.clone();
        Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                if let Err(e) = db.execute_unprepared("ANALYZE").await {
                    tracing::warn!(error = %e, "ANALYZE failed");
                }
            }
        }))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `postgres://u@h:p/old?x` -> `postgres://u@h:p/new?x`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name_keeping_host_and_query() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
