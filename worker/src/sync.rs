//! INTERFACE (to be implemented): one run from start to end.

/// Tuning of runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Base URL of the platform's contact pages, for the platform link (F6):
    /// `{platform_url}/contacts/{id}`.
    pub platform_url: String,
}
