//! Worker integration tests: black-box against the sandbox Pipedrive on port 0
//! and a fresh database per test (SQLite, or PostgreSQL when
//! `CRMSYNC_TEST_POSTGRES_URL` is set).

mod metrics;
mod pipedrive_client;
mod runs;
mod support;
mod sync;
mod zoho_client;
mod zoho_sync;
