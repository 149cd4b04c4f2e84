//! Fault injection: rules set through the admin API that make CRM endpoints slow,
//! failing, throttled, or silent, so clients can be tested against what real
//! networks and real CRMs do to them.

use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::System;

/// What a rule does to the requests it hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// Delay the reply by `fixed_ms` plus a uniform random `0..=jitter_ms`.
    Latency {
        /// Fixed delay in milliseconds.
        #[serde(default)]
        fixed_ms: u64,
        /// Extra random delay, uniform in `0..=jitter_ms`.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Answer with a server error (500, 502, 503 or 504) in the CRM's error shape.
    Error {
        /// The HTTP status to send.
        #[serde(default = "default_error_status")]
        status: u16,
    },
    /// Answer 429 in the CRM's shape, as if a rate limit had been hit.
    RateLimit,
    /// Close the connection without a reply; the request is not processed.
    Drop,
    /// Process the write, then withhold the reply for `delay_ms` and close the
    /// connection: the client cannot tell that its write was applied.
    TimeoutAfterWrite {
        /// How long to hold the connection before closing it.
        #[serde(default = "default_timeout_delay_ms")]
        delay_ms: u64,
    },
}

fn default_error_status() -> u16 {
    500
}

fn default_timeout_delay_ms() -> u64 {
    30_000
}

fn default_rate() -> f64 {
    1.0
}

/// A fault rule as sent to and shown by the admin API. (No `deny_unknown_fields`:
/// serde cannot combine it with the flattened `kind`; the kind's own fields are strict.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Assigned by the sandbox.
    #[serde(default)]
    pub id: u64,
    /// Only this CRM (`zoho` or `pipedrive`); both when absent.
    #[serde(default)]
    pub system: Option<System>,
    /// Only this Zoho org id or Pipedrive company domain; all when absent.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only this endpoint: `METHOD /route/template` or just `/route/template`, exactly,
    /// or ending in `*` for a prefix (e.g. `POST /zoho/api/crm/v8/*`). All when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// What happens to a hit request.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Probability that a matching request is hit (0 to 1, default 1).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Hit at most this many requests, then retire; unlimited when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// How many requests this rule has hit so far.
    #[serde(default)]
    pub hits: u64,
}

impl FaultRule {
    /// Checks the values a client sent; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) || self.rate.is_nan() {
            return Err(format!("rate: must be between 0 and 1, got {}", self.rate));
        }
        if let FaultKind::Error { status } = self.kind
            && ![500, 502, 503, 504].contains(&status)
        {
            return Err(format!(
                "status: must be 500, 502, 503 or 504, got {status}"
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && endpoint.trim().is_empty()
        {
            return Err("endpoint: must not be empty when given".into());
        }
        Ok(())
    }

    fn matches(
        &self,
        system: System,
        tenant: Option<&str>,
        endpoint: &str,
        is_write: bool,
    ) -> bool {
        if self.system.is_some_and(|s| s != system) {
            return false;
        }
        if let Some(want) = &self.tenant
            && tenant != Some(want.as_str())
        {
            return false;
        }
        if matches!(self.kind, FaultKind::TimeoutAfterWrite { .. }) && !is_write {
            return false;
        }
        if self.count.is_some_and(|c| c == 0) {
            return false;
        }
        match &self.endpoint {
            None => true,
            Some(pattern) => endpoint_matches(pattern, endpoint),
        }
    }
}

/// `endpoint` is `METHOD /path`; a pattern without a method matches any method.
fn endpoint_matches(pattern: &str, endpoint: &str) -> bool {
    let subject = if pattern.starts_with('/') {
        endpoint.split_once(' ').map_or(endpoint, |(_, path)| path)
    } else {
        endpoint
    };
    match pattern.strip_suffix('*') {
        Some(prefix) => subject.starts_with(prefix),
        None => subject == pattern,
    }
}

/// What to do with one request, decided once at the edge.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FaultPlan {
    /// Delay before anything else happens.
    pub latency: Duration,
    /// Replace the reply (error, 429 or drop); the handler does not run.
    pub action: Option<FaultAction>,
    /// Run the handler, then withhold the reply this long and close the connection.
    pub timeout_after_write: Option<Duration>,
}

/// A reply that replaces the handler's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// A server error with this status.
    Error(u16),
    /// A 429.
    RateLimit,
    /// No reply; the connection is closed.
    Drop,
}

/// The set of active rules and the seeded random source that decides hits.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<FaultRule>,
    next_id: u64,
    rng: ChaCha8Rng,
}

impl Faults {
    /// No rules; hits decided by a random source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rules: Vec::new(),
                next_id: 1,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17),
            }),
        }
    }

    /// Adds a rule (after `validate`) and returns it with its id.
    pub fn add(&self, mut rule: FaultRule) -> FaultRule {
        let mut inner = self.inner.lock();
        rule.id = inner.next_id;
        rule.hits = 0;
        inner.next_id += 1;
        inner.rules.push(rule.clone());
        rule
    }

    /// The active rules.
    pub fn list(&self) -> Vec<FaultRule> {
        self.inner.lock().rules.clone()
    }

    /// Removes one rule; false when there was none with this id.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.rules.len();
        inner.rules.retain(|r| r.id != id);
        inner.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.inner.lock().rules.clear();
    }

    /// Decides what happens to one request.
    pub fn plan(
        &self,
        system: System,
        tenant: Option<&str>,
        endpoint: &str,
        is_write: bool,
    ) -> FaultPlan {
        let mut plan = FaultPlan::default();
        let mut inner = self.inner.lock();
        if inner.rules.is_empty() {
            return plan;
        }
        let Inner { rules, rng, .. } = &mut *inner;
        for rule in rules.iter_mut() {
            if !rule.matches(system, tenant, endpoint, is_write) {
                continue;
            }
            // An action already chosen makes later action rules moot; do not spend their counts.
            let is_action = matches!(
                rule.kind,
                FaultKind::Error { .. } | FaultKind::RateLimit | FaultKind::Drop
            );
            if is_action && plan.action.is_some() {
                continue;
            }
            if rule.rate < 1.0 && !rng.random_bool(rule.rate) {
                continue;
            }
            rule.hits += 1;
            if let Some(count) = rule.count.as_mut() {
                *count -= 1;
            }
            match rule.kind {
                FaultKind::Latency {
                    fixed_ms,
                    jitter_ms,
                } => {
                    let jitter = if jitter_ms > 0 {
                        rng.random_range(0..=jitter_ms)
                    } else {
                        0
                    };
                    plan.latency += Duration::from_millis(fixed_ms + jitter);
                }
                FaultKind::Error { status } => plan.action = Some(FaultAction::Error(status)),
                FaultKind::RateLimit => plan.action = Some(FaultAction::RateLimit),
                FaultKind::Drop => plan.action = Some(FaultAction::Drop),
                FaultKind::TimeoutAfterWrite { delay_ms } => {
                    plan.timeout_after_write
                        .get_or_insert(Duration::from_millis(delay_ms));
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> FaultRule {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_counted_rule_hits_exactly_that_many_requests() {
        let faults = Faults::new(1);
        faults.add(rule(
            serde_json::json!({"kind": "error", "status": 503, "count": 2}),
        ));
        let hits: Vec<_> = (0..4)
            .map(|_| {
                faults
                    .plan(System::Zoho, None, "GET /zoho/api/crm/v8/{module}", false)
                    .action
            })
            .collect();
        assert_eq!(
            hits,
            vec![
                Some(FaultAction::Error(503)),
                Some(FaultAction::Error(503)),
                None,
                None
            ]
        );
    }

    #[test]
    fn endpoint_patterns_match_exactly_by_prefix_and_without_method() {
        assert!(endpoint_matches("GET /a/b", "GET /a/b"));
        assert!(!endpoint_matches("GET /a/b", "POST /a/b"));
        assert!(endpoint_matches("/a/b", "POST /a/b"));
        assert!(endpoint_matches("POST /a/*", "POST /a/b/c"));
        assert!(!endpoint_matches("POST /a/*", "GET /a/b/c"));
    }

    #[test]
    fn timeout_after_write_never_hits_reads() {
        let faults = Faults::new(1);
        faults.add(rule(
            serde_json::json!({"kind": "timeout_after_write", "delay_ms": 5}),
        ));
        assert_eq!(
            faults
                .plan(System::Pipedrive, None, "GET /x", false)
                .timeout_after_write,
            None
        );
        assert_eq!(
            faults
                .plan(System::Pipedrive, None, "POST /x", true)
                .timeout_after_write,
            Some(Duration::from_millis(5))
        );
    }

    #[test]
    fn a_share_of_replies_is_hit_close_to_the_rate() {
        let faults = Faults::new(7);
        faults.add(rule(
            serde_json::json!({"kind": "rate_limit", "rate": 0.25}),
        ));
        let hits = (0..4000)
            .filter(|_| {
                faults
                    .plan(System::Zoho, None, "GET /x", false)
                    .action
                    .is_some()
            })
            .count();
        assert!(
            (800..1200).contains(&hits),
            "{hits} hits of 4000 at rate 0.25"
        );
    }

    #[test]
    fn rule_validation_names_the_field() {
        let bad = rule(serde_json::json!({"kind": "error", "status": 404}));
        assert!(bad.validate().unwrap_err().starts_with("status:"));
        let bad = rule(serde_json::json!({"kind": "drop", "rate": 1.5}));
        assert!(bad.validate().unwrap_err().starts_with("rate:"));
    }
}
