//! Black-box tests of the sandbox CRMs: each starts a sandbox on port 0 and talks HTTP to it.

mod common;
mod core;
mod hubspot;
mod hubspot_sdk;
mod pipedrive;
mod salesforce;
mod salesforce_sdk;
mod sap_c4c;
mod sap_c4c_sdk;
mod zendesk_sell;
mod zendesk_sell_sdk;
mod zoho;
