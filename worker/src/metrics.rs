//! Prometheus metrics: one [`Metrics`] per process (the API and the worker of
//! one process share it), passed to whatever records into it, so tests get a
//! registry of their own. Rendered in the OpenMetrics text format by
//! [`Metrics::render`].
//!
//! Two kinds of figures:
//! - Counted by this process: sync items by direction and outcome, CRM calls
//!   by CRM, endpoint and status (with their latency), run queue wait and
//!   duration, GraphQL request latency by operation type.
//! - Read from the shared stores at scrape time, so every process reports the
//!   same truth: runs by status (from the database) and pending jobs (from the
//!   queue).
//!
//! **Invariant:** no label carries a tenant, connector, run or record id, a
//! name, a URL or error text: labels are small fixed sets (CRM endpoints are
//! route templates such as `GET /api/v2/persons/{id}`), so the output is safe
//! to show to operators and its series count stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crmsync_entity::enums::{ItemOutcome, SyncDirection, SyncRunStatus};
use crmsync_entity::models::sync_run;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sea_orm::DatabaseConnection;

/// How long a scrape waits for the database.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's metrics; cheap to clone (clones share one registry).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    direction: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    crm: &'static str,
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    crm: &'static str,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    items: Family<ItemLabels, Counter>,
    crm_calls: Family<CallLabels, Counter>,
    crm_latency: Histograms<EndpointLabels>,
    queue_wait: Histogram,
    run_duration: Histograms<StatusLabels>,
    graphql_latency: Histograms<OperationLabels>,
    /// CRM requests ended so far, for the log of a shutdown that waits
    /// ([`Metrics::crm_calls_so_far`]).
    ended: AtomicU64,
    rate_limited: AtomicU64,
    unanswered: AtomicU64,
}

/// CRM requests this process has seen end, for its log: a shutdown that
/// waits says whether its runs' calls still move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallsSoFar {
    /// Every request that ended.
    pub ended: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// No reply (timeout, refused or dropped connection).
    pub unanswered: u64,
}

impl std::fmt::Display for CallsSoFar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CRM requests ended ({} answered 429, {} unanswered)",
            self.ended, self.rate_limited, self.unanswered
        )
    }
}

/// Buckets for HTTP calls and GraphQL requests: 5 ms to about 20 s.
fn request_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    ])
}

/// Buckets for runs and their wait: 50 ms to 6 hours (the job timeout).
fn run_buckets() -> Histogram {
    Histogram::new([
        0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
    ])
}

impl Default for Inner {
    fn default() -> Self {
        let mut registry = Registry::default();
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "crmsync_sync_items",
            "Contacts recorded by sync runs (dry runs included), by direction (TO_CRM, FROM_CRM) and outcome (CREATED, UPDATED, UNCHANGED, REJECTED, CONFLICT)",
            items.clone(),
        );
        let crm_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "crmsync_crm_requests",
            "HTTP requests sent to CRMs, by CRM, endpoint (method and route template) and status (the HTTP status, or `error` when no reply came)",
            crm_calls.clone(),
        );
        let crm_latency: Histograms<EndpointLabels> = Family::new_with_constructor(request_buckets);
        registry.register_with_unit(
            "crmsync_crm_request_duration",
            "Time from sending a CRM request to its reply's headers, by CRM and endpoint",
            Unit::Seconds,
            crm_latency.clone(),
        );
        let queue_wait = run_buckets();
        registry.register_with_unit(
            "crmsync_sync_run_queue_wait",
            "Time from a run's creation (QUEUED) to a worker starting it",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let run_duration: Histograms<StatusLabels> = Family::new_with_constructor(run_buckets);
        registry.register_with_unit(
            "crmsync_sync_run_duration",
            "Time from a run's start to its end, by final status",
            Unit::Seconds,
            run_duration.clone(),
        );
        let graphql_latency: Histograms<OperationLabels> =
            Family::new_with_constructor(request_buckets);
        registry.register_with_unit(
            "crmsync_graphql_request_duration",
            "Time to answer a GraphQL request (parse, validate, execute), by operation type (query, mutation; invalid when the document did not parse or the request named none of its operations)",
            Unit::Seconds,
            graphql_latency.clone(),
        );
        Self {
            registry,
            items,
            crm_calls,
            crm_latency,
            queue_wait,
            run_duration,
            graphql_latency,
            ended: AtomicU64::default(),
            rate_limited: AtomicU64::default(),
            unanswered: AtomicU64::default(),
        }
    }
}

/// What became of one CRM request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// The CRM replied with this HTTP status.
    Replied(u16),
    /// No reply: timeout, refused or dropped connection.
    Error,
}

impl CallStatus {
    /// The outcome of a `reqwest` send.
    pub fn of(response: &Result<reqwest::Response, reqwest::Error>) -> Self {
        match response {
            Ok(r) => Self::Replied(r.status().as_u16()),
            Err(_) => Self::Error,
        }
    }
}

/// A GraphQL operation type, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// A query.
    Query,
    /// A mutation.
    Mutation,
    /// A subscription (over HTTP it fails; over WebSocket it is not timed).
    Subscription,
    /// The document did not parse, or named no operation it holds.
    Invalid,
}

impl OperationKind {
    fn label(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
            Self::Invalid => "invalid",
        }
    }
}

/// `GET /api/v2/persons/{id}` from a method and a request path: path segments
/// made of digits (record ids) become `{id}`, and so does any segment with
/// characters no route name has; the query string is dropped.
pub fn endpoint(method: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::with_capacity(method.len() + path.len() + 1);
    out.push_str(method);
    out.push(' ');
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let is_name = segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        let is_id = segment.chars().any(|c| c.is_ascii_digit())
            && segment.chars().all(|c| c.is_ascii_digit());
        if is_name && !is_id {
            out.push_str(segment);
        } else {
            out.push_str("{id}");
        }
    }
    out
}

impl Metrics {
    /// A fresh registry with every metric this process records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the items a run recorded (call once the page's transaction commits).
    pub fn items_recorded(&self, items: &[(SyncDirection, ItemOutcome)]) {
        for (direction, outcome) in items {
            self.inner
                .items
                .get_or_create(&ItemLabels {
                    direction: direction.as_str(),
                    outcome: outcome.as_str(),
                })
                .inc();
        }
    }

    /// Counts one CRM request and its latency: `crm` is the CRM's kit tag,
    /// `endpoint` comes from [`endpoint`].
    pub fn crm_call(
        &self,
        crm: &'static str,
        endpoint: String,
        status: CallStatus,
        elapsed: Duration,
    ) {
        self.inner.ended.fetch_add(1, Ordering::Relaxed);
        let kind = match status {
            CallStatus::Replied(429) => Some(&self.inner.rate_limited),
            CallStatus::Error => Some(&self.inner.unanswered),
            CallStatus::Replied(_) => None,
        };
        if let Some(kind) = kind {
            kind.fetch_add(1, Ordering::Relaxed);
        }
        let status = match status {
            CallStatus::Replied(code) => code.to_string(),
            CallStatus::Error => "error".to_owned(),
        };
        self.inner
            .crm_latency
            .get_or_create(&EndpointLabels {
                crm,
                endpoint: endpoint.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.inner
            .crm_calls
            .get_or_create(&CallLabels {
                crm,
                endpoint,
                status,
            })
            .inc();
    }

    /// The CRM requests this process has seen end so far.
    pub fn crm_calls_so_far(&self) -> CallsSoFar {
        CallsSoFar {
            ended: self.inner.ended.load(Ordering::Relaxed),
            rate_limited: self.inner.rate_limited.load(Ordering::Relaxed),
            unanswered: self.inner.unanswered.load(Ordering::Relaxed),
        }
    }

    /// Observes a run's wait in the queue, once a worker has marked it RUNNING
    /// (for a run handed back, its wait since it was queued again).
    pub fn run_started(&self, run: &sync_run::Model) {
        if let Some(started) = run.started_at {
            // A run handed back waited again from when it was queued again.
            let started = if run.slices > 1 {
                chrono::Utc::now()
            } else {
                started
            };
            let wait = (started - run.queued_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.inner.queue_wait.observe(wait);
        }
    }

    /// Observes a run's duration by final status (runs that never started are skipped).
    pub fn run_finished(&self, run: &sync_run::Model) {
        if let (Some(started), Some(finished)) = (run.started_at, run.finished_at) {
            let took = (finished - started).num_milliseconds().max(0) as f64 / 1000.0;
            self.inner
                .run_duration
                .get_or_create(&StatusLabels {
                    status: run.status.as_str(),
                })
                .observe(took);
        }
    }

    /// Observes one GraphQL request's latency.
    pub fn graphql_request(&self, operation: OperationKind, elapsed: Duration) {
        self.inner
            .graphql_latency
            .get_or_create(&OperationLabels {
                operation: operation.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The scrape: this process's counters, then runs by status read now from
    /// the database, and `pending_jobs`, the queue's depth as its caller read
    /// it (`JobQueue::depth`). A store that fails to answer leaves its metric
    /// out (and is logged); the rest is still served.
    pub async fn render(&self, db: &DatabaseConnection, pending_jobs: Option<u64>) -> String {
        let mut shared = Registry::default();
        let counts = tokio::time::timeout(STORE_TIMEOUT, sync_run::count_by_status(db)).await;
        match counts {
            Ok(Ok(counts)) => {
                let runs = Family::<StatusLabels, Gauge>::default();
                // Every status is reported, zero included, so a series never
                // vanishes when its last run moves on.
                for status in ALL_STATUSES {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == status)
                        .map_or(0, |(_, n)| *n);
                    runs.get_or_create(&StatusLabels {
                        status: status.as_str(),
                    })
                    .set(n as i64);
                }
                shared.register(
                    "crmsync_sync_runs",
                    "Sync runs in the database by status, across tenants",
                    runs,
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot count runs by status"),
            Err(_) => tracing::warn!("metrics: counting runs by status timed out"),
        }
        if let Some(n) = pending_jobs {
            let pending = Gauge::<i64>::default();
            pending.set(n as i64);
            shared.register(
                "crmsync_queue_pending_jobs",
                "Sync jobs waiting in the queue for a worker (retries due included)",
                pending,
            );
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.inner.registry);
        let _ = encode_registry(&mut out, &shared);
        let _ = encode_eof(&mut out);
        out
    }
}

/// A scrape read back: the samples of an OpenMetrics or Prometheus text page,
/// for tests and tools that check figures.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<Sample>,
}

/// A sample's labels, as `(name, value)` pairs in the page's order.
pub type Labels = Vec<(String, String)>;

/// Name, labels, value.
type Sample = (String, Labels, f64);

impl Scrape {
    /// Parses a page; comment lines and lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// The value of the sample with exactly this name and these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    }

    /// The samples named `name` whose labels include `labels`, each with all its labels.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Labels, f64)> {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }

    /// The sum of [`Scrape::matching`]'s values.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|(_, v)| v).sum()
    }
}

/// `name{k="v",...} value`, with escapes in label values.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' => {}
                '=' => {
                    chars.next(); // the opening quote
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &body[end?..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

const ALL_STATUSES: [SyncRunStatus; 6] = [
    SyncRunStatus::Queued,
    SyncRunStatus::Running,
    SyncRunStatus::Succeeded,
    SyncRunStatus::Partial,
    SyncRunStatus::Failed,
    SyncRunStatus::Cancelled,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_route_templates_without_ids_or_query_strings() {
        assert_eq!(
            endpoint("GET", "/api/v2/persons/123"),
            "GET /api/v2/persons/{id}"
        );
        assert_eq!(
            endpoint("GET", "/api/v2/persons/search?term=a@b.c"),
            "GET /api/v2/persons/search"
        );
        assert_eq!(
            endpoint("POST", "/crm/v8/Leads/5725767000000412001/actions/convert"),
            "POST /crm/v8/Leads/{id}/actions/convert"
        );
        assert_eq!(endpoint("PATCH", "/x/a b@c/y"), "PATCH /x/{id}/y");
        assert_eq!(endpoint("GET", "/api/v1/users/me"), "GET /api/v1/users/me");
    }

    #[test]
    fn calls_so_far_count_every_ended_request_and_the_429s_and_unanswered_apart() {
        let metrics = Metrics::new();
        for status in [
            CallStatus::Replied(200),
            CallStatus::Replied(429),
            CallStatus::Replied(429),
            CallStatus::Replied(500),
            CallStatus::Error,
        ] {
            metrics.crm_call("crm-a", "GET /x".into(), status, Duration::ZERO);
        }
        let calls = metrics.crm_calls_so_far();
        assert_eq!(
            calls,
            CallsSoFar {
                ended: 5,
                rate_limited: 2,
                unanswered: 1
            }
        );
        assert_eq!(
            calls.to_string(),
            "5 CRM requests ended (2 answered 429, 1 unanswered)"
        );
    }

    #[test]
    fn a_render_reads_back_with_its_labels() {
        let metrics = Metrics::new();
        metrics.crm_call(
            "crm-a",
            endpoint("GET", "/api/v2/persons/7"),
            CallStatus::Replied(200),
            Duration::from_millis(30),
        );
        metrics.crm_call(
            "crm-a",
            endpoint("GET", "/api/v2/persons/8"),
            CallStatus::Error,
            Duration::from_millis(30),
        );
        let mut text = String::new();
        encode_registry(&mut text, &metrics.inner.registry).unwrap();
        let scrape = Scrape::parse(&text);
        let call = |status| {
            scrape.value(
                "crmsync_crm_requests_total",
                &[
                    ("crm", "crm-a"),
                    ("endpoint", "GET /api/v2/persons/{id}"),
                    ("status", status),
                ],
            )
        };
        assert_eq!(call("200"), Some(1.0));
        assert_eq!(call("error"), Some(1.0));
        assert_eq!(
            scrape.sum(
                "crmsync_crm_request_duration_seconds_count",
                &[("crm", "crm-a")]
            ),
            2.0
        );
    }
}
