//! Worker integration tests: black-box against the sandbox Pipedrive on port 0
//! and a fresh database per test (SQLite, or PostgreSQL when
//! `CRMSYNC_TEST_POSTGRES_URL` is set). The Redis tests (event bus, queue) run
//! when `CRMSYNC_TEST_REDIS_URL` is set, or against `redis://127.0.0.1:6379`
//! when `CI=true`. The conformance suite (`conformance/`) runs its cases on
//! every CRM kind, each kind on one shared sandbox.
//! when `CI=true`. The engine tests (`engine`) run on an in-memory CRM instead.

mod archive;
mod bus;
mod conformance;
mod consent;
mod crm_events;
mod deletions;
mod dry_run;
mod engine;
mod forms;
mod hubspot_client;
mod leases;
mod metrics;
mod notify;
mod pipedrive_client;
mod redis_queue;
mod retention;
mod runs;
mod salesforce_client;
mod sap_c4c_client;
mod schedule;
mod slots;
mod support;
mod sync;
mod zendesk_sell_client;
mod zoho_client;
mod zoho_sync;
