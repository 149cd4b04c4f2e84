//! Connecting to the database: SQLite for the embedded default, PostgreSQL for
//! scale-out. The schema is the same; every query runs on both.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
};

/// Why the database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL scheme (expected sqlite: or postgres:)")]
    UnsupportedScheme,
    /// Connecting, migrating or a query failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Connects with the pool settings the backend needs: for SQLite, WAL, a busy
/// timeout and several connections (the default pool has one), creating the file
/// if missing; for PostgreSQL, a pool sized for API plus worker.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        options
            .max_connections(8)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        options.max_connections(20).min_connections(1);
    } else {
        return Err(DbError::UnsupportedScheme);
    }
    Ok(Database::connect(options).await?)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbError> {
    use crmsync_migration::MigratorTrait;
    crmsync_migration::Migrator::up(db, None).await?;
    Ok(())
}

/// True for SQLite, whose write transactions must begin IMMEDIATE.
pub fn is_sqlite(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Sqlite
}
