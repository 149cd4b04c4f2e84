//! Zoho CRM tests.
