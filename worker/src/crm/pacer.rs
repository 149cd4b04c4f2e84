//! Client-side pacing for CRMs that count calls in rolling windows.
//!
//! Some CRMs count calls per token or account in a rolling window (a few
//! seconds long; search calls often in a separate one) and block or slow
//! clients that keep calling after 429s. We keep our own record of our calls (when each was answered, or sent while it is
//! in flight: the CRM counts a call when it arrives, which is no later than its
//! reply, however slow the network) and wait before a call that would overflow
//! the window, so 429s stay rare instead of being the signal we steer by.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Slack for the delay between our send time and the CRM's admission time.
const MARGIN: Duration = Duration::from_millis(60);

/// A rolling-window limiter that learns its limit from the CRM's headers.
#[derive(Debug)]
pub(crate) struct Pacer {
    window: Duration,
    /// Calls of the window left to other clients of the same token.
    reserve: u32,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// Calls allowed per window; `None` until a reply says.
    limit: Option<u32>,
    /// Our calls in the current window: when each was sent, or, once it was
    /// answered, when its reply came (the CRM counted it no later than that).
    sent: VecDeque<(u64, Instant)>,
    /// The next call's number.
    next: u64,
    /// No call before this (the CRM said the window is full, or asked us to wait).
    blocked_until: Option<Instant>,
}

/// A call let through by [`Pacer::acquire`]; hand it to [`Pacer::replied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(u64);

impl Pacer {
    /// A pacer for a window of `window` with an initial limit (`None`: learn
    /// it from the first reply).
    pub(crate) fn new(window: Duration, limit: Option<u32>) -> Self {
        Self {
            window,
            reserve: 1,
            state: Mutex::new(PacerState {
                limit,
                sent: VecDeque::new(),
                next: 0,
                blocked_until: None,
            }),
        }
    }

    /// The pacer, leaving no call of the window to other clients: for a
    /// small limit (a few calls a second) one call short is a tenth of the
    /// rate, and a client whose token is its own loses more to the reserve
    /// than to a rare 429.
    pub(crate) fn without_reserve(mut self) -> Self {
        self.reserve = 0;
        self
    }

    /// Waits until a call fits in the window, then counts it as sent.
    pub(crate) async fn acquire(&self) -> Slot {
        loop {
            let wait_until = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let window = self.window;
                state
                    .sent
                    .retain(|(_, t)| now.saturating_duration_since(*t) < window + MARGIN);
                let blocked = state.blocked_until.filter(|t| *t > now);
                // One call short of the limit (unless the pacer keeps no
                // reserve): other clients of the same token (a connection
                // test, another worker) need a little room too.
                let reserve = self.reserve;
                let cap = state
                    .limit
                    .map(|l| l.saturating_sub(reserve).max(1) as usize);
                let full = cap.is_some_and(|cap| state.sent.len() >= cap);
                // Before the first reply we do not know the limit: one call at a time.
                let unknown_busy = state.limit.is_none() && !state.sent.is_empty();
                match (blocked, full || unknown_busy) {
                    (Some(t), _) => t,
                    (None, true) => {
                        let oldest = state
                            .sent
                            .iter()
                            .map(|(_, t)| *t)
                            .min()
                            .expect("a full window has calls");
                        if state.limit.is_none() {
                            // Wait briefly for the first reply to tell us the limit.
                            now + Duration::from_millis(20)
                        } else {
                            oldest + window + MARGIN
                        }
                    }
                    (None, false) => {
                        let slot = Slot(state.next);
                        state.next += 1;
                        state.sent.push_back((slot.0, now));
                        return slot;
                    }
                }
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// The reply to a call came: its place in the window counts from here.
    /// A call may reach the CRM late (a busy network or machine), and the CRM
    /// counts it when it arrives, which is before its reply.
    pub(crate) async fn replied(&self, slot: Slot) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(entry) = state.sent.iter_mut().find(|(id, _)| *id == slot.0) {
            entry.1 = now;
        }
    }

    /// Learns from a reply's rate-limit headers: the window's limit, what
    /// remains of it, and how long to wait when nothing remains.
    pub(crate) async fn observe(
        &self,
        limit: Option<u32>,
        remaining: Option<u32>,
        wait_when_full: Duration,
    ) {
        let mut state = self.state.lock().await;
        if let Some(limit) = limit.filter(|l| *l > 0) {
            state.limit = Some(limit);
        }
        if remaining == Some(0) {
            // The CRM's window is full (perhaps with other clients' calls): wait
            // for it to drain rather than find out with a 429.
            Self::block(&mut state, wait_when_full);
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

    const WINDOW: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn never_sends_more_than_the_limit_in_a_window() {
        let pacer = Pacer::new(WINDOW, Some(5));
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
    async fn a_pacer_without_reserve_sends_the_whole_limit_in_a_window() {
        let pacer = Pacer::new(WINDOW, Some(5)).without_reserve();
        let start = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
        }
        assert_eq!(Instant::now(), start, "five calls fit at once");
        pacer.acquire().await;
        assert!(
            Instant::now() >= start + WINDOW,
            "the sixth waits for the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_counts_from_its_reply_when_it_was_answered_late() {
        let pacer = Pacer::new(WINDOW, Some(3));
        let start = Instant::now();
        let first = pacer.acquire().await;
        pacer.acquire().await;
        // The first call's reply comes a second later: the CRM may have
        // counted it as late as that.
        tokio::time::advance(Duration::from_secs(1)).await;
        pacer.replied(first).await;
        tokio::time::advance(Duration::from_millis(1_100)).await;
        // The second call (sent at the start, never answered) has left the
        // window; the first (answered at 1 s) has not.
        pacer.acquire().await;
        assert_eq!(Instant::now(), start + Duration::from_millis(2_100));
        pacer.acquire().await;
        assert!(
            Instant::now() >= start + Duration::from_secs(1) + WINDOW,
            "the window counts the first call from its reply"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_reported_by_the_crm_pauses_calls() {
        let pacer = Pacer::new(WINDOW, Some(100));
        pacer
            .observe(Some(100), Some(0), Duration::from_secs(2))
            .await;
        let start = Instant::now();
        pacer.acquire().await;
        assert!(Instant::now() >= start + Duration::from_secs(2));
    }
}
