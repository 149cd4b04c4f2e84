//! API integration tests: the real router on port 0, a fresh database and
//! tenant per test, the sandbox CRMs on port 0 where a CRM is needed.

mod helpers;

mod access;
mod archive;
mod bad_input;
mod clients;
mod connectors;
mod consent;
mod contacts;
mod crm;
mod crm_calls;
mod deletions;
mod dry_run;
mod egress;
mod errors;
mod graphiql;
mod hubspot;
mod idempotency;
mod introspection;
mod isolation;
mod limits;
mod nplus1;
mod ops;
mod rate_limits;
mod realtime;
mod retention;
mod rules;
mod salesforce;
mod sap_c4c;
mod schema;
mod sync_flow;
mod webhooks;
mod ws;
mod zoho;
