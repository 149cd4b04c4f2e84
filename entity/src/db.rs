//! Connecting to the database: SQLite for the embedded default, PostgreSQL for
//! scale-out. The schema is the same; every query runs on both.

use std::path::{Path, PathBuf};
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
    /// The SQLite file could not be created or narrowed to mode 0600.
    #[error("cannot make {path} readable by its owner only: {source}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Connects with the pool settings the backend needs: for SQLite, WAL, a busy
/// timeout and several connections (the default pool has one), creating the file
/// if missing (mode 0600, see [`make_private`]); for PostgreSQL, a pool sized
/// for API plus worker.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    let file = sqlite_file(url);
    if let Some(file) = &file {
        make_private(file)?;
    }
    let db = open(url).await?;
    // The WAL and shared-memory files appear with the first connection.
    if let Some(file) = &file {
        make_private(file)?;
    }
    Ok(db)
}

async fn open(url: &str) -> Result<DatabaseConnection, DbError> {
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
                    // Set before WAL mode: it applies to new files only.
                    .page_size(PAGE_SIZE)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // A backstop only: a sync's pages have the WAL copied
                    // into the database in the background ([`checkpoint_soon`]).
                    .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string())
                    .row_buffer_size(ROW_BUFFER)
            });
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        options.max_connections(20).min_connections(1);
    } else {
        return Err(DbError::UnsupportedScheme);
    }
    Ok(Database::connect(options).await?)
}

/// The file a SQLite URL names; `None` for other databases and in-memory ones.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    use sea_orm::sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    if !url.starts_with("sqlite:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    // sqlx names an in-memory database `file:sqlx-in-memory-N`.
    let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().starts_with("file:");
    (!in_memory).then(|| path.to_owned())
}

/// Makes a SQLite database readable by its owner only (0600), whatever the
/// umask: it holds contacts' personal data, like the key files beside it.
/// SQLite gives its `-wal`, `-shm` and `-journal` files the database file's
/// mode, so a new database is created here with 0600 before SQLite opens
/// it; the files of an existing one (made by an older version) are narrowed.
#[cfg(unix)]
fn make_private(file: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| DbError::Permissions { path, source }
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        // A missing directory is SQLite's to report, in its words.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(failed(file)(e)),
        _ => {}
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        let path = PathBuf::from(path);
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(failed(&path))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_file: &Path) -> Result<(), DbError> {
    Ok(())
}

/// The page size of a new SQLite database (SQLite's default is 4 KiB). A
/// sync page stores a link and an item of a kilobyte or two per contact;
/// with 8 KiB pages its B-trees split half as often (the 100k-contact
/// export benchmark: about 5 % less CPU; BENCHMARKS.md). An existing database
/// keeps the size it was made with (WAL mode fixes it).
const PAGE_SIZE: u32 = 8192;

/// Rows a SQLite query's connection thread reads ahead of the task taking
/// them (sqlx's default is 50). Past the buffer the thread waits for the task
/// to take a row and is woken again for the next; with a buffer the size of a
/// sync page (1,000 rows for an export at ten batches in flight) it reads the
/// page in one go. The 100k-contact export: 60k context switches instead of
/// 94k, with no CPU or wall-time change that its runs could tell apart
/// (BENCHMARKS.md, the export benchmark).
const ROW_BUFFER: usize = 1024;

/// WAL pages after which the committing connection copies the WAL into the
/// database itself (SQLite's auto-checkpoint; its default is 1,000, 8 MB at
/// [`PAGE_SIZE`]). A sync page's transaction writes a few hundred pages, so at the default
/// every other page's commit also waited for a checkpoint, and the next
/// page's transaction with it; [`checkpoint_soon`] does that work beside the
/// writes instead, and this only bounds the WAL (80 MB) should it fall behind.
const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// Copies the WAL into the database on another connection, in the
/// background (SQLite only; a PASSIVE checkpoint, which neither waits for nor
/// blocks readers and writers). Called after each committed page of a sync,
/// so the next page's transaction does not wait for a checkpoint (BENCHMARKS.md,
/// the export benchmark). One at a time per process: a call made while one runs
/// does nothing, the running one or a later one copies its pages.
pub fn checkpoint_soon(db: &DatabaseConnection) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static RUNNING: AtomicBool = AtomicBool::new(false);
    if !is_sqlite(db) || RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    let db = db.clone();
    tokio::spawn(async move {
        if let Err(e) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(error = %e, "background WAL checkpoint failed; the next one retries");
        }
        RUNNING.store(false, Ordering::Release);
    });
}

/// True on a PostgreSQL server whose autovacuum is off: its tables are
/// never analyzed, so the planner plans lookups without statistics.
pub async fn autovacuum_off(db: &impl ConnectionTrait) -> bool {
    use sea_orm::{DatabaseBackend, Statement};
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return false;
    }
    let shown = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SHOW autovacuum",
        ))
        .await;
    matches!(
        shown
            .ok()
            .flatten()
            .and_then(|row| row.try_get_by_index::<String>(0).ok())
            .as_deref(),
        Some("off")
    )
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
