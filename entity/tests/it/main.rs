//! The entity layer against a real database (SQLite, or PostgreSQL when
//! `CRMSYNC_TEST_POSTGRES_URL` is set).

mod files;
mod isolation;
mod scoped;
mod wal;
