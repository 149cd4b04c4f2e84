//! Outbound change notifications, for every CRM that pushes them: an
//! outbound queue that POSTs each notification to its subscriber, retries
//! it on the CRM's schedule, and logs every attempt; and the admin faults
//! that make deliveries go wrong the ways real ones do (dropped, late,
//! duplicated, out of order). A CRM's folder decides what to send (its
//! payload shape, headers and retry policy) and hands it over with
//! [`Notifier::send`]; expiring or deleting a subscription is the CRM's own
//! admin route, since the subscriptions live in its state.
//!
//! Times come from the sandbox clock: a retry is due at the clock's time,
//! so a test advances the clock instead of waiting out a 150-second backoff.
//!
//! Admin routes, under `/admin/notify`: `GET /deliveries` (the latest
//! [`LOG_KEEPS`] attempts, `?system=` to filter, with the count still queued
//! and the count of older attempts the log let go), `PUT /faults` (the rules
//! below, replacing the current ones) and `DELETE /faults`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::admin::{AdminError, parse_body};
use crate::{AppState, Shared, System};

/// When a CRM tries a delivery again, and how long it waits for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long an attempt may take before it counts as failed.
    pub timeout: Duration,
    /// The waits before the second, third, ... attempts; none left: given up.
    pub delays: Vec<chrono::Duration>,
}

/// What a CRM does to each attempt of a delivery as it goes out, for CRMs
/// whose body or headers depend on the attempt or its time (an attempt
/// number in every event of a batch, a signature over a timestamp).
pub trait PrepareAttempt: std::fmt::Debug + Send + Sync {
    /// The body to send and the headers to add (beside the notification's
    /// own) for attempt `attempt` (1 for the first) to `url` at `now`.
    fn prepare(
        &self,
        body: &Value,
        attempt: u32,
        url: &str,
        now: DateTime<Utc>,
    ) -> (String, Vec<(String, String)>);
}

/// One notification to deliver.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The CRM sending it.
    pub system: System,
    /// Its account (org, company, portal) as the request counts name it.
    pub tenant: String,
    /// The CRM's id of the subscription it is for.
    pub subscription: String,
    /// The subscriber's URL.
    pub url: String,
    /// Headers beside `content-type: application/json`.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
    /// Where the body carries the attempt number (a JSON pointer such as
    /// `/meta/attempt`), set on each attempt; `None` when it carries none.
    pub attempt_at: Option<&'static str>,
    /// The CRM's retry policy.
    pub policy: RetryPolicy,
    /// What the CRM does to each attempt (`None`: the body as is, with
    /// `attempt_at` set).
    pub prepare: Option<Arc<dyn PrepareAttempt>>,
}

/// One attempt, as `GET /admin/notify/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The notification's id (duplicates share it).
    pub id: u64,
    /// The CRM.
    pub system: System,
    /// Its account.
    pub tenant: String,
    /// The subscription.
    pub subscription: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The subscriber's status, when it answered.
    pub status: Option<u16>,
    /// `delivered` (2xx), `failed` (retried later), `gave_up` (no retry
    /// left), `dropped` (a fault: never sent).
    pub outcome: String,
    /// When, by the sandbox clock.
    pub at: DateTime<Utc>,
}

/// The delivery faults (`PUT /admin/notify/faults`), for one CRM (`system`)
/// and account (`tenant`), or for all when left out. They apply to first
/// attempts, when a notification is handed over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Only notifications of this CRM.
    #[serde(default)]
    pub system: Option<System>,
    /// Only notifications of this account.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The next this many notifications are never sent.
    #[serde(default)]
    pub drop: u32,
    /// The next this many notifications are sent twice.
    #[serde(default)]
    pub duplicate: u32,
    /// Every notification waits this long (by the sandbox clock) first.
    #[serde(default)]
    pub delay_ms: u64,
    /// The next this many notifications are held, then sent newest first.
    #[serde(default)]
    pub reorder: u32,
}

impl Faults {
    fn applies(&self, outbound: &Outbound) -> bool {
        self.system.is_none_or(|s| s == outbound.system)
            && self.tenant.as_deref().is_none_or(|t| t == outbound.tenant)
    }
}

#[derive(Debug)]
struct Pending {
    id: u64,
    outbound: Arc<Outbound>,
    attempt: u32,
    due: DateTime<Utc>,
}

/// Notifications waiting to be sent, by when they are due: taking the due
/// ones costs what they are, not what waits (a subscriber that keeps
/// failing leaves thousands of retries waiting while its CRM writes on).
#[derive(Debug, Default)]
struct Waiting {
    heap: BinaryHeap<Reverse<Queued>>,
    next_seq: u64,
}

/// A waiting notification, ordered by when it is due, then by when it was
/// queued.
#[derive(Debug)]
struct Queued {
    due: DateTime<Utc>,
    seq: u64,
    pending: Pending,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Waiting {
    fn push_back(&mut self, pending: Pending) {
        self.next_seq += 1;
        self.heap.push(Reverse(Queued {
            due: pending.due,
            seq: self.next_seq,
            pending,
        }));
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    /// The notifications due at `now`, in the order they were queued.
    fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Pending> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|Reverse(q)| q.due <= now) {
            let Some(Reverse(queued)) = self.heap.pop() else {
                break;
            };
            due.push(queued);
        }
        due.sort_by_key(|q| q.seq);
        due.into_iter().map(|q| q.pending).collect()
    }
}

/// How many attempts the log keeps: the oldest go first, so a sandbox that
/// sends for days holds a bounded log.
pub const LOG_KEEPS: usize = 10_000;

/// The latest attempts, and how many older ones were let go.
#[derive(Debug, Default)]
struct Log {
    kept: VecDeque<Attempt>,
    forgotten: u64,
}

/// The outbound queue, its log and its faults.
#[derive(Debug, Default)]
pub struct Notifier {
    queue: Mutex<Waiting>,
    held: Mutex<Vec<Pending>>,
    log: Mutex<Log>,
    faults: Mutex<Faults>,
    in_flight: AtomicU64,
    next_id: AtomicU64,
    wake: tokio::sync::Notify,
}

impl Notifier {
    /// Hands a notification over for delivery (faults apply here).
    pub fn send(&self, outbound: Outbound, now: DateTime<Utc>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let outbound = Arc::new(outbound);
        let mut faults = self.faults.lock();
        let mut copies = 1;
        let mut due = now;
        if faults.applies(&outbound) {
            if faults.drop > 0 {
                faults.drop -= 1;
                drop(faults);
                self.record(&outbound, id, 1, None, "dropped", now);
                return;
            }
            if faults.duplicate > 0 {
                faults.duplicate -= 1;
                copies = 2;
            }
            due = now + chrono::Duration::milliseconds(faults.delay_ms as i64);
            if faults.reorder > 0 {
                faults.reorder -= 1;
                let release = faults.reorder == 0;
                drop(faults);
                let mut held = self.held.lock();
                for _ in 0..copies {
                    held.push(Pending {
                        id,
                        outbound: outbound.clone(),
                        attempt: 1,
                        due,
                    });
                }
                if release {
                    let mut queue = self.queue.lock();
                    while let Some(p) = held.pop() {
                        queue.push_back(p);
                    }
                    self.wake.notify_one();
                }
                return;
            }
        }
        drop(faults);
        let mut queue = self.queue.lock();
        for _ in 0..copies {
            queue.push_back(Pending {
                id,
                outbound: outbound.clone(),
                attempt: 1,
                due,
            });
        }
        self.wake.notify_one();
    }

    /// The attempts the log keeps (the latest [`LOG_KEEPS`]), of one CRM or
    /// all, oldest first.
    pub fn attempts(&self, system: Option<System>) -> Vec<Attempt> {
        self.log
            .lock()
            .kept
            .iter()
            .filter(|a| system.is_none_or(|s| s == a.system))
            .cloned()
            .collect()
    }

    /// How many attempts the log let go to keep the latest [`LOG_KEEPS`].
    pub fn forgotten(&self) -> u64 {
        self.log.lock().forgotten
    }

    /// Notifications queued, held or being sent.
    pub fn pending(&self) -> usize {
        self.queue.lock().len()
            + self.held.lock().len()
            + self.in_flight.load(Ordering::Relaxed) as usize
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock() = faults;
        // Held notifications wait for the rest of their batch no more.
        if self.faults.lock().reorder == 0 {
            let mut held = self.held.lock();
            let mut queue = self.queue.lock();
            while let Some(p) = held.pop() {
                queue.push_back(p);
            }
        }
        self.wake.notify_one();
    }

    fn record(
        &self,
        outbound: &Outbound,
        id: u64,
        attempt: u32,
        status: Option<u16>,
        outcome: &str,
        at: DateTime<Utc>,
    ) {
        let mut log = self.log.lock();
        if log.kept.len() == LOG_KEEPS {
            log.kept.pop_front();
            log.forgotten += 1;
        }
        log.kept.push_back(Attempt {
            id,
            system: outbound.system,
            tenant: outbound.tenant.clone(),
            subscription: outbound.subscription.clone(),
            attempt,
            status,
            outcome: outcome.to_owned(),
            at,
        });
    }

    /// The notifications due at `now`, taken off the queue.
    fn due(&self, now: DateTime<Utc>) -> Vec<Pending> {
        let due = self.queue.lock().take_due(now);
        self.in_flight
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        due
    }
}

/// Delivers due notifications until `shutdown` turns true: one task per
/// subscriber URL and pass, delivering in order (so a reordering fault is
/// seen as made), and a slow subscriber holds up no other.
pub(crate) async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    loop {
        let mut by_url: Vec<(String, Vec<Pending>)> = Vec::new();
        for pending in state.notify.due(state.clock.now()) {
            match by_url
                .iter_mut()
                .find(|(url, _)| *url == pending.outbound.url)
            {
                Some((_, group)) => group.push(pending),
                None => by_url.push((pending.outbound.url.clone(), vec![pending])),
            }
        }
        for (_, group) in by_url {
            let (state, client) = (state.clone(), client.clone());
            tokio::spawn(async move {
                for pending in group {
                    deliver(state.clone(), client.clone(), pending).await;
                }
            });
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = state.notify.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn deliver(state: Arc<Shared>, client: reqwest::Client, pending: Pending) {
    let Pending {
        id,
        outbound,
        attempt,
        ..
    } = pending;
    let (body, extra) = match &outbound.prepare {
        Some(prepare) => prepare.prepare(&outbound.body, attempt, &outbound.url, state.clock.now()),
        None => {
            let mut body = outbound.body.clone();
            if let Some(at) = outbound.attempt_at
                && let Some(slot) = body.pointer_mut(at)
            {
                *slot = json!(attempt);
            }
            (body.to_string(), Vec::new())
        }
    };
    let mut request = client
        .post(&outbound.url)
        .timeout(outbound.policy.timeout)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in outbound.headers.iter().chain(&extra) {
        request = request.header(name, value);
    }
    let status = request.send().await.ok().map(|r| r.status().as_u16());
    let notify = &state.notify;
    let now = state.clock.now();
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    let next = outbound.policy.delays.get(attempt as usize - 1).copied();
    match (delivered, next) {
        (true, _) => notify.record(&outbound, id, attempt, status, "delivered", now),
        (false, Some(wait)) => {
            notify.record(&outbound, id, attempt, status, "failed", now);
            notify.queue.lock().push_back(Pending {
                id,
                outbound: outbound.clone(),
                attempt: attempt + 1,
                due: now + wait,
            });
        }
        (false, None) => notify.record(&outbound, id, attempt, status, "gave_up", now),
    }
    notify.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// `/admin/notify`.
pub(crate) fn admin_router() -> Router<AppState> {
    Router::new().route("/deliveries", get(deliveries)).route(
        "/faults",
        get(get_faults).put(put_faults).delete(clear_faults),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Which {
    system: Option<System>,
}

async fn deliveries(State(state): State<AppState>, Query(which): Query<Which>) -> Json<Value> {
    Json(json!({
        "deliveries": state.notify.attempts(which.system),
        "pending": state.notify.pending(),
        "forgotten": state.notify.forgotten(),
    }))
}

async fn get_faults(State(state): State<AppState>) -> Json<Faults> {
    Json(state.notify.faults.lock().clone())
}

async fn put_faults(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Faults>, AdminError> {
    let faults: Faults = parse_body(&body)?;
    state.notify.set_faults(faults.clone());
    Ok(Json(faults))
}

async fn clear_faults(State(state): State<AppState>) -> Json<Faults> {
    state.notify.set_faults(Faults::default());
    Json(Faults::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        Outbound {
            system: System::Pipedrive,
            tenant: "t".into(),
            subscription: "s".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: Value::Null,
            attempt_at: None,
            policy: RetryPolicy {
                timeout: Duration::from_secs(1),
                delays: Vec::new(),
            },
            prepare: None,
        }
    }

    fn pending(id: u64, due: DateTime<Utc>) -> Pending {
        Pending {
            id,
            outbound: Arc::new(outbound()),
            attempt: 1,
            due,
        }
    }

    #[test]
    fn due_notifications_leave_in_the_order_queued_and_the_rest_wait() {
        let now: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        let s = chrono::Duration::seconds;
        let mut waiting = Waiting::default();
        // Queued newest first on purpose (a reorder fault does so): a later
        // due time queued earlier still leaves first.
        waiting.push_back(pending(1, now - s(1)));
        waiting.push_back(pending(2, now + s(60)));
        waiting.push_back(pending(3, now - s(5)));
        waiting.push_back(pending(4, now));

        let ids: Vec<u64> = waiting.take_due(now).iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![1, 3, 4]);
        assert_eq!(waiting.len(), 1, "the retry due in a minute waits");
        assert!(waiting.take_due(now + s(59)).is_empty());
        let ids: Vec<u64> = waiting.take_due(now + s(60)).iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![2]);
    }

    #[test]
    fn the_log_keeps_the_latest_attempts_and_counts_the_rest() {
        let notify = Notifier::default();
        let sent = LOG_KEEPS as u32 + 3;
        notify.set_faults(Faults {
            drop: sent,
            ..Faults::default()
        });
        for _ in 0..sent {
            notify.send(outbound(), Utc::now());
        }
        let kept = notify.attempts(None);
        assert_eq!(kept.len(), LOG_KEEPS);
        assert_eq!(notify.forgotten(), 3);
        assert_eq!(kept.first().map(|a| a.id), Some(4), "the oldest went first");
        assert_eq!(kept.last().map(|a| a.id), Some(u64::from(sent)));
        assert_eq!(notify.pending(), 0, "dropped: nothing queued");
    }
}
