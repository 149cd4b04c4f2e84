//! Request counts by system, tenant, endpoint and status, readable through the admin API.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::Serialize;

use crate::System;

/// The status recorded for a request that got no reply (a dropped connection, or a
/// write whose reply was withheld by a `timeout_after_write` fault).
pub const NO_REPLY: u16 = 0;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    system: System,
    tenant: Option<String>,
    endpoint: String,
    status: u16,
}

/// One row of the request counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestCount {
    /// Which CRM answered.
    pub system: System,
    /// The Zoho org id or Pipedrive company domain, when known.
    pub tenant: Option<String>,
    /// `METHOD /route/template`, e.g. `GET /pipedrive/{company}/api/v2/persons`.
    pub endpoint: String,
    /// The HTTP status returned, or 0 when no reply was sent.
    pub status: u16,
    /// How many requests.
    pub count: u64,
}

/// Thread-safe request counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<HashMap<Key, u64>>,
}

impl Metrics {
    /// Counts one request.
    pub fn record(&self, system: System, tenant: Option<&str>, endpoint: &str, status: u16) {
        let key = Key {
            system,
            tenant: tenant.map(str::to_owned),
            endpoint: endpoint.to_owned(),
            status,
        };
        *self.counts.lock().entry(key).or_default() += 1;
    }

    /// All counts, sorted by system, tenant, endpoint and status.
    pub fn snapshot(&self) -> Vec<RequestCount> {
        let mut rows: Vec<RequestCount> = self
            .counts
            .lock()
            .iter()
            .map(|(k, &count)| RequestCount {
                system: k.system,
                tenant: k.tenant.clone(),
                endpoint: k.endpoint.clone(),
                status: k.status,
                count,
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.system, &a.tenant, &a.endpoint, a.status).cmp(&(
                b.system,
                &b.tenant,
                &b.endpoint,
                b.status,
            ))
        });
        rows
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}
