//! Client-side pacing for Pipedrive's rolling rate-limit windows.
//!
//! Pipedrive counts calls per API token in a rolling 2-second window (and search
//! calls in a separate one) and blocks clients that keep calling after 429s. We
//! keep our own record of when we sent calls and wait before a call that would
//! overflow the window, so 429s stay rare instead of being the signal we steer by.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Pipedrive's documented window length.
const WINDOW: Duration = Duration::from_secs(2);
/// Slack for the delay between our send time and the CRM's admission time.
const MARGIN: Duration = Duration::from_millis(60);

/// A rolling-window limiter that learns its limit from the CRM's headers.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// Calls allowed per window; `None` until a reply says.
    limit: Option<u32>,
    /// Send times of our calls in the current window, oldest first.
    sent: VecDeque<Instant>,
    /// No call before this (the CRM said the window is full, or asked us to wait).
    blocked_until: Option<Instant>,
}

impl Pacer {
    /// A pacer with an initial limit (`None`: learn it from the first reply).
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self {
            state: Mutex::new(PacerState {
                limit,
                sent: VecDeque::new(),
                blocked_until: None,
            }),
        }
    }

    /// Waits until a call fits in the window, then counts it as sent.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait_until = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                while state
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW + MARGIN)
                {
                    state.sent.pop_front();
                }
                let blocked = state.blocked_until.filter(|t| *t > now);
                // One call short of the limit: other clients of the same token
                // (a connection test, another worker) need a little room too.
                let cap = state.limit.map(|l| l.saturating_sub(1).max(1) as usize);
                let full = cap.is_some_and(|cap| state.sent.len() >= cap);
                // Before the first reply we do not know the limit: one call at a time.
                let unknown_busy = state.limit.is_none() && !state.sent.is_empty();
                match (blocked, full || unknown_busy) {
                    (Some(t), _) => t,
                    (None, true) => {
                        let oldest = *state.sent.front().expect("a full window has calls");
                        if state.limit.is_none() {
                            // Wait briefly for the first reply to tell us the limit.
                            now + Duration::from_millis(20)
                        } else {
                            oldest + WINDOW + MARGIN
                        }
                    }
                    (None, false) => {
                        state.sent.push_back(now);
                        return;
                    }
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// Learns from a reply's rate-limit headers.
    pub(crate) async fn observe(
        &self,
        limit: Option<u32>,
        remaining: Option<u32>,
        reset: Option<u64>,
    ) {
        let mut state = self.state.lock().await;
        if let Some(limit) = limit.filter(|l| *l > 0) {
            state.limit = Some(limit);
        }
        if remaining == Some(0) {
            // The CRM's window is full (perhaps with other clients' calls): wait
            // for it to drain rather than find out with a 429.
            let wait = Duration::from_secs(reset.unwrap_or(1).max(1));
            Self::block(&mut state, wait);
        }
    }

    /// Stops every call for `wait` (after a 429).
    pub(crate) async fn pause(&self, wait: Duration) {
        let mut state = self.state.lock().await;
        Self::block(&mut state, wait);
    }

    fn block(state: &mut PacerState, wait: Duration) {
        let until = Instant::now() + wait;
        if state.blocked_until.is_none_or(|t| t < until) {
            state.blocked_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_sends_more_than_the_limit_in_a_window() {
        let pacer = Pacer::new(Some(5));
        let start = Instant::now();
        for _ in 0..4 {
            pacer.acquire().await;
        }
        assert_eq!(Instant::now(), start, "four calls fit at once");
        pacer.acquire().await;
        assert!(
            Instant::now() >= start + WINDOW,
            "the fifth waits for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_reported_by_the_crm_pauses_calls() {
        let pacer = Pacer::new(Some(100));
        pacer.observe(Some(100), Some(0), Some(2)).await;
        let start = Instant::now();
        pacer.acquire().await;
        assert!(Instant::now() >= start + Duration::from_secs(2));
    }
}
