#![doc = include_str!("../README.md")]

pub mod admin;
pub mod clock;
pub mod faults;
pub mod hubspot;
pub mod kit;
pub mod metrics;
pub mod notify;
pub mod pipedrive;
pub mod salesforce;
pub mod sap_c4c;
pub mod seed;
mod server;
pub mod zendesk_sell;
pub mod zoho;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use server::{Description, Sandbox, SandboxConfig};

/// Which emulated CRM a request, rule or count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// Zoho CRM, API v8, and its accounts (OAuth) server.
    Zoho,
    /// Pipedrive, API v2 for persons and v1 for fields, users and recents.
    Pipedrive,
    /// HubSpot, CRM API v3 for contacts, properties and owners, and its OAuth token endpoint.
    Hubspot,
    /// Salesforce, the REST API (query, sObjects, Collections) and its OAuth token endpoint.
    Salesforce,
    /// SAP Sales Cloud (C4C), the OData v2 service `c4codataapi`.
    #[serde(rename = "sap_c4c")]
    SapC4c,
    /// Zendesk Sell, API v2 (leads, contacts, custom fields, users, lead conversions).
    #[serde(rename = "zendesk_sell")]
    ZendeskSell,
}

/// Everything the handlers share: the clock, faults, counters and every CRM's data.
#[derive(Debug)]
pub struct Shared {
    /// The sandbox clock (real time plus an adjustable offset).
    pub clock: clock::Clock,
    /// Active fault-injection rules.
    pub faults: faults::Faults,
    /// Request counts by endpoint and status.
    pub metrics: metrics::Metrics,
    /// Change notifications on their way to subscribers, and their faults.
    pub notify: notify::Notifier,
    /// Zoho orgs, clients, tokens and records.
    pub zoho: zoho::ZohoState,
    /// Pipedrive companies, tokens and persons.
    pub pipedrive: pipedrive::PipedriveState,
    /// HubSpot portals, tokens and contacts.
    pub hubspot: hubspot::HubspotState,
    /// Salesforce orgs, connected apps, sessions and records.
    pub salesforce: salesforce::SalesforceState,
    /// SAP C4C tenants, their technical users and CSRF sessions.
    pub sap_c4c: sap_c4c::SapC4cState,
    /// Zendesk Sell accounts, tokens and records.
    pub zendesk_sell: zendesk_sell::ZendeskSellState,
    /// `http://127.0.0.1:PORT`, the address the sandbox is reachable at.
    pub base_url: String,
    /// The configuration the sandbox was started with.
    pub config: SandboxConfig,
    /// The description printed at start, served again by `GET /admin`.
    pub description: std::sync::OnceLock<Description>,
}

/// The state handed to every handler.
pub type AppState = Arc<Shared>;
