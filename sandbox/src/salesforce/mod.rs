//! The sandbox Salesforce: an org's REST API (`/services/data/...`), its OAuth token endpoint and SOQL.

pub mod soql;
