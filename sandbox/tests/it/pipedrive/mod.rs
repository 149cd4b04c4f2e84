//! Pipedrive tests.
