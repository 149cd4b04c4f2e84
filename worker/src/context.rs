//! What a running sync is given: the database, the event bus, the
//! credentials key, the outbound HTTP client, the metrics and the run tuning,
//! with this process's name. The engine's modules read it; none of them owns
//! it, so the queue, the sync and the notifications all depend on this file
//! and not on each other.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::credentials::CredentialsKey;
use crate::egress::HttpClient;
use crate::events::EventBus;
use crate::metrics::Metrics;

/// Everything a running sync needs.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// The database.
    pub db: DatabaseConnection,
    /// Where progress goes.
    pub bus: Arc<dyn EventBus>,
    /// Decrypts connector credentials.
    pub credentials_key: Arc<CredentialsKey>,
    /// HTTP client for the CRMs, under the outbound rule.
    pub http: HttpClient,
    /// Tuning.
    pub options: SyncOptions,
    /// Where runs, items and CRM calls are counted.
    pub metrics: Metrics,
}

/// Tuning of runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Base URL of the platform's contact pages, for the platform link (F6):
    /// `{platform_url}/contacts/{id}`.
    pub platform_url: String,
    /// This worker's name (unique per process); a run's lease names it and
    /// the execution (`{holder}/{ulid}`).
    pub holder: String,
    /// How long a run's lease lasts unless renewed (renewed every third):
    /// how soon another worker may take over a run whose worker died.
    pub lease: Duration,
    /// Set when the process is shutting down: runs stop at their next page
    /// and go back to the queue for another worker.
    pub draining: Arc<AtomicBool>,
    /// The CRM client every run uses instead of the one its connector's
    /// credentials make: for engine tests on an in-memory CRM
    /// ([`crate::crm::memory::MemoryCrm`]). `None` in a real process.
    pub crm_client: Option<Arc<dyn crate::crm::CrmClient>>,
    /// How runs share the worker's slots: slices, the per-tenant cap, the
    /// FORM lane ([`crate::slots`]).
    pub slots: crate::slots::SlotSettings,
}

impl SyncOptions {
    /// Defaults: a one-minute lease, this process's name.
    pub fn new(platform_url: impl Into<String>) -> Self {
        Self {
            platform_url: platform_url.into(),
            holder: instance_name(),
            lease: DEFAULT_LEASE,
            draining: Arc::default(),
            crm_client: None,
            slots: crate::slots::SlotSettings::default(),
        }
    }
}

/// A run's lease when nothing else is configured.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Host, process id and a random suffix: a name no other worker holds.
pub(crate) fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    // Short enough for a run's lease column with an execution id after it.
    let host: String = host.chars().take(40).collect();
    let suffix: u32 = rand::random();
    format!("crmsync-{host}-{}-{suffix:08x}", std::process::id())
}

/// This process's name, made once: host, process id and a random suffix
/// (the holder named on the runs it executes).
pub fn instance_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(worker_name).clone()
}
